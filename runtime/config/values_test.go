package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	valid := []struct {
		in   string
		want ByteSize
	}{
		{"64MiB", 64 << 20},
		{"1MiB", 1 << 20},
		{"512KiB", 512 << 10},
		{"1GiB", 1 << 30},
		{"2TiB", 2 << 40},
		{"10MB", 10_000_000},
		{"3KB", 3000},
		{"1GB", 1_000_000_000},
		{"1TB", 1_000_000_000_000},
		{"1024", 1024},
		{"1024B", 1024},
		{"0", 0},
		{"0B", 0},
		{"1.5KiB", 1536},
		{"0.5MB", 500_000},
		{" 64 MiB ", 64 << 20},
		{"64mib", 64 << 20},
	}
	for _, tt := range valid {
		got, err := ParseByteSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}

	invalid := []struct {
		in   string
		want string
	}{
		{"", "empty size"},
		{"-1MiB", "must not be negative"},
		{"-5", "must not be negative"},
		{"0.3KiB", "does not resolve to a whole number of bytes"},
		{"1.5", "does not resolve to a whole number of bytes"},
		{"64XB", `unknown unit "XB"`},
		{"64M", `unknown unit "M"`},
		{"8EiB", `unknown unit "EiB"`},
		{"64 bytes", `unknown unit "bytes"`},
		{"MiB", "not a size"},
		{"1.2.3MiB", "not a size"},
		{".5MiB", "not a size"},
		{"5.MiB", "not a size"},
		{"9999999TiB", "size is too large"},
		{"9223372036854775808", "size is too large"},
	}
	for _, tt := range invalid {
		_, err := ParseByteSize(tt.in)
		if err == nil {
			t.Errorf("ParseByteSize(%q) succeeded; want %q", tt.in, tt.want)
			continue
		}
		assertContains(t, err.Error(), tt.want)
		// Every rejection names the accepted forms.
		assertContains(t, err.Error(), `use a size such as "64MiB"`)
	}
}

func TestByteSizeFromNumbers(t *testing.T) {
	good := []any{int(1024), int64(1024), uint64(1024), float64(1024), int32(1024), uint8(255)}
	for _, v := range good {
		got, err := byteSizeFromNumber(v)
		want := ByteSize(1024)
		if v == uint8(255) {
			want = 255
		}
		if err != nil || got != want {
			t.Errorf("byteSizeFromNumber(%T %v) = %v, %v", v, v, got, err)
		}
	}
	bad := map[any]string{
		int(-1):                "must not be negative",
		float64(-1):            "must not be negative",
		float64(1.5):           "does not resolve to a whole number of bytes",
		uint64(math.MaxUint64): "size is too large",
		float64(1e300):         "size is too large",
		true:                   "expected a size, got a boolean",
	}
	for v, want := range bad {
		_, err := byteSizeFromNumber(v)
		if err == nil {
			t.Errorf("byteSizeFromNumber(%v) succeeded", v)
			continue
		}
		assertContains(t, err.Error(), want)
	}
}

func TestByteSizeStringRoundTrips(t *testing.T) {
	for _, b := range []ByteSize{0, 1, 999, 1000, 1023, 1024, 1536, 64 << 20, 10_000_000, 1_000_001, 3 << 40, math.MaxInt64} {
		s := b.String()
		back, err := ParseByteSize(s)
		if err != nil || back != b {
			t.Errorf("%d -> %q -> %d, %v", int64(b), s, back, err)
		}
	}
	for b, want := range map[ByteSize]string{0: "0B", 64 << 20: "64MiB", 10_000_000: "10MB", 1536: "1536B", 1024: "1KiB", 1000: "1KB", 1_000_001: "1000001B"} {
		if got := b.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(b), got, want)
		}
	}
}

func TestByteSizeJSON(t *testing.T) {
	js, err := json.Marshal(struct{ B ByteSize }{64 << 20})
	if err != nil || string(js) != `{"B":"64MiB"}` {
		t.Errorf("marshal = %s, %v", js, err)
	}
	var v struct{ A, B ByteSize }
	if err := json.Unmarshal([]byte(`{"A":"10MB","B":2048}`), &v); err != nil || v.A != 10_000_000 || v.B != 2048 {
		t.Errorf("unmarshal = %+v, %v", v, err)
	}
	if err := json.Unmarshal([]byte(`{"A":"64XB"}`), &v); err == nil {
		t.Error("unmarshal accepted an unknown unit")
	}
	if err := json.Unmarshal([]byte(`{"A":-3}`), &v); err == nil {
		t.Error("unmarshal accepted a negative size")
	}
	if err := json.Unmarshal([]byte(`{"A":true}`), &v); err == nil {
		t.Error("unmarshal accepted a boolean")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond,
		"0s": 0, " 2h ": 2 * time.Hour,
	} {
		got, err := ParseDuration(in)
		if err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"30":    "a number without a unit is ambiguous",
		"0":     "a number without a unit is ambiguous",
		"1.5":   "a number without a unit is ambiguous",
		"":      "empty duration",
		"soon":  "not a duration",
		"30sec": "not a duration",
		"-5s":   "must not be negative",
	} {
		_, err := ParseDuration(in)
		if err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
			continue
		}
		assertContains(t, err.Error(), want)
		assertContains(t, err.Error(), `"30s"`)
	}
}

func TestDurationTextAndJSON(t *testing.T) {
	d := Duration(90 * time.Second)
	if d.String() != "1m30s" {
		t.Errorf("String = %q", d.String())
	}
	js, err := json.Marshal(map[string]Duration{"d": d})
	if err != nil || string(js) != `{"d":"1m30s"}` {
		t.Errorf("marshal = %s, %v", js, err)
	}
	var back map[string]Duration
	if err := json.Unmarshal(js, &back); err != nil || back["d"] != d {
		t.Errorf("unmarshal = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"d":30}`), &back); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("unmarshal of a bare number = %v; want the ambiguity error", err)
	}
}

// holder puts a Secret where it is usually found: an exported field of a config struct.
type holder struct {
	User     string
	Password Secret
	Nested   struct{ Token Secret }
	Ptr      *Secret
}

func TestSecretNeverPrinted(t *testing.T) {
	const value = "hunter2-very-secret"
	s := Secret(value)
	if s.Reveal() != value {
		t.Fatalf("Reveal = %q", s.Reveal())
	}

	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("connect", "password", s)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("connect", "password", s, slog.Any("any", s))

	h := holder{User: "u", Password: s}
	h.Nested.Token = s
	h.Ptr = &s
	hjs, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	sjs, _ := s.MarshalJSON()
	stx, _ := s.MarshalText()

	outputs := map[string]string{
		"String":            s.String(),
		"GoString":          s.GoString(),
		"%v":                fmt.Sprintf("%v", s),
		"%s":                fmt.Sprintf("%s", s),
		"%+v":               fmt.Sprintf("%+v", s),
		"%#v":               fmt.Sprintf("%#v", s),
		"%q":                fmt.Sprintf("%q", s),
		"%x":                fmt.Sprintf("%x", s),
		"%X":                fmt.Sprintf("%X", s),
		"%10s":              fmt.Sprintf("%10s", s),
		"%d":                fmt.Sprintf("%d", s),
		"Sprint":            fmt.Sprint(s),
		"Sprintln":          fmt.Sprintln("pw", s),
		"MarshalJSON":       string(sjs),
		"MarshalText":       string(stx),
		"slog":              logBuf.String(),
		"LogValue":          s.LogValue().String(),
		"struct %v":         fmt.Sprintf("%v", h),
		"struct %+v":        fmt.Sprintf("%+v", h),
		"struct %#v":        fmt.Sprintf("%#v", h),
		"struct ptr %+v":    fmt.Sprintf("%+v", &h),
		"struct json":       string(hjs),
		"slice %v":          fmt.Sprintf("%v", []Secret{s}),
		"map %v":            fmt.Sprintf("%v", map[string]Secret{"k": s}),
		"FieldError":        (&FieldError{Key: "k", Value: s, Problem: "p"}).Error(),
		"errorf %v wrapped": fmt.Errorf("login %v: %w", s, fmt.Errorf("denied")).Error(),
	}
	for name, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) || strings.Contains(out, fmt.Sprintf("%X", value)) {
			t.Errorf("%s reveals the secret: %s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s does not show [redacted]: %s", name, out)
		}
	}
	if string(hjs) != `{"User":"u","Password":"[redacted]","Nested":{"Token":"[redacted]"},"Ptr":"[redacted]"}` {
		t.Errorf("struct json = %s", hjs)
	}
}

func TestEmptySecretStaysEmpty(t *testing.T) {
	var s Secret
	js, _ := json.Marshal(s)
	tx, _ := s.MarshalText()
	for name, out := range map[string]string{
		"String": s.String(), "%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s),
		"MarshalText": string(tx), "LogValue": s.LogValue().String(),
	} {
		if out != "" {
			t.Errorf("%s of an empty secret = %q, want empty", name, out)
		}
	}
	if string(js) != `""` || fmt.Sprintf("%q", s) != `""` || s.GoString() != `""` {
		t.Errorf("json %s, %%q %q, GoString %s", js, fmt.Sprintf("%q", s), s.GoString())
	}
}

func TestMemoryLimit(t *testing.T) {
	for in, want := range map[string]MemoryLimit{
		"auto": MemoryLimitAuto, " AUTO ": MemoryLimitAuto, "off": MemoryLimitOff, "Off": MemoryLimitOff,
		"1GiB": 1 << 30, "512MiB": 512 << 20, "100MB": 100e6, "16MiB": 16 << 20,
	} {
		got, err := ParseMemoryLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseMemoryLimit(%q) = %v, %v; want %v", in, got, err, want)
			continue
		}
		if back, err := ParseMemoryLimit(got.String()); err != nil || back != got {
			t.Errorf("%q does not round-trip: String %q parses to %v, %v", in, got.String(), back, err)
		}
	}
	for _, in := range []string{"", "0", "0B", "-1GiB", "lots", "64M", "on"} {
		if got, err := ParseMemoryLimit(in); err == nil {
			t.Errorf("ParseMemoryLimit(%q) = %v; want an error", in, got)
		}
	}
	if b := MemoryLimitAuto.Bytes(); b != 0 {
		t.Errorf("auto.Bytes() = %d; want 0", b)
	}
	if b, _ := json.Marshal(struct{ M MemoryLimit }{MemoryLimitAuto}); string(b) != `{"M":"auto"}` {
		t.Errorf("auto marshals to %s", b)
	}
}

// memory_limit loads from a file and from the environment, defaults to auto, and a size below
// 32MiB is reported with the key.
func TestMemoryLimitLoads(t *testing.T) {
	if got := mustLoadYAML(t, "pool: {max_pending_bytes: 1MiB}\n").MemoryLimit; got != MemoryLimitAuto {
		t.Errorf("default memory_limit %v; want auto", got)
	}
	if got := mustLoadYAML(t, "memory_limit: 2GiB\n").MemoryLimit; got != 2<<30 {
		t.Errorf("memory_limit 2GiB loaded as %v", got)
	}
	if got := mustLoadYAML(t, "memory_limit: 2GiB\n", "SHARDBRIDGE_MEMORY_LIMIT=off").MemoryLimit; got != MemoryLimitOff {
		t.Errorf("SHARDBRIDGE_MEMORY_LIMIT=off loaded as %v", got)
	}
	_, err := loadYAML(t, "memory_limit: 16MiB\n")
	if err == nil || !strings.Contains(err.Error(), "memory_limit") || !strings.Contains(err.Error(), "at least 32MiB") {
		t.Errorf("memory_limit 16MiB: %v; want an error naming the key and the minimum", err)
	}
	_, err = loadYAML(t, "memory_limit: plenty\n")
	if err == nil || !strings.Contains(err.Error(), "memory_limit") || !strings.Contains(err.Error(), `"auto", "off"`) {
		t.Errorf("memory_limit plenty: %v; want an error naming the key and the forms", err)
	}
}

// decode_budget loads from a file and from the environment, defaults to 64MiB, and a size below
// 16MiB is a FieldError naming the key and the fix.
func TestDecodeBudgetLoads(t *testing.T) {
	if got := mustLoadYAML(t, "pool: {max_pending_bytes: 1MiB}\n").DecodeBudget; got != 64<<20 {
		t.Errorf("default decode_budget %v; want 64MiB", got)
	}
	if got := mustLoadYAML(t, "decode_budget: 128MiB\n").DecodeBudget; got != 128<<20 {
		t.Errorf("decode_budget 128MiB loaded as %v", got)
	}
	if got := mustLoadYAML(t, "decode_budget: 128MiB\n", "SHARDBRIDGE_DECODE_BUDGET=32MiB").DecodeBudget; got != 32<<20 {
		t.Errorf("SHARDBRIDGE_DECODE_BUDGET=32MiB loaded as %v", got)
	}
	_, err := loadYAML(t, "decode_budget: 8MiB\n")
	p := findProblem(t, err, "decode_budget")
	if !strings.Contains(p.Problem, "at least 16MiB") || !strings.Contains(p.Fix, "64MiB") {
		t.Errorf("decode_budget 8MiB: %v; want the minimum and a fix", p)
	}
}
