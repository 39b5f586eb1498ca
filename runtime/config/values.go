package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// ByteSize is an amount of memory or data in bytes.
//
// In a config file or an environment variable it is written as a whole number of bytes
// (1048576, "1024", "1024B") or as a number with a unit: binary units KiB, MiB, GiB, TiB
// (powers of 1024, e.g. "64MiB") or SI units KB, MB, GB, TB (powers of 1000, e.g. "10MB").
// Units are matched case-insensitively. A fraction is accepted only when it resolves to a
// whole number of bytes ("1.5KiB" is 1536; "0.3KiB" is rejected). Negative sizes and
// single-letter units such as "64M" are rejected, because "M" is ambiguous between MB and MiB.
//
// String, MarshalText and MarshalJSON write the shortest exact form ("64MiB", "10MB",
// "1000001B"), which parses back to the same value.
type ByteSize int64

// byteUnits lists the accepted units, largest first so String picks the largest exact one.
var byteUnits = []struct {
	name string
	size int64
}{
	{"TiB", 1 << 40}, {"TB", 1e12},
	{"GiB", 1 << 30}, {"GB", 1e9},
	{"MiB", 1 << 20}, {"MB", 1e6},
	{"KiB", 1 << 10}, {"KB", 1e3},
	{"B", 1},
}

const byteSizeForms = `use a size such as "64MiB", "512KiB", "10MB" or a whole number of bytes such as "1024"`

// ParseByteSize parses s as described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, &valueError{Value: s, Problem: "empty size", Fix: byteSizeForms}
	}
	if strings.HasPrefix(t, "-") {
		return 0, &valueError{Value: s, Problem: "size must not be negative", Fix: byteSizeForms}
	}
	// Split the number from the unit at the first character that is neither digit nor dot.
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	if num == "" || strings.Count(num, ".") > 1 || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, &valueError{Value: s, Problem: "not a size", Fix: byteSizeForms}
	}
	mult := int64(0)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			mult = u.size
			break
		}
	}
	if mult == 0 {
		return 0, &valueError{Value: s, Problem: fmt.Sprintf("unknown unit %q", unit), Fix: byteSizeForms}
	}
	// Exact rational arithmetic: a float would silently round "0.1MB" and overflow quietly.
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, &valueError{Value: s, Problem: "not a size", Fix: byteSizeForms}
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, &valueError{Value: s, Problem: "does not resolve to a whole number of bytes", Fix: byteSizeForms}
	}
	if !r.Num().IsInt64() {
		return 0, &valueError{Value: s, Problem: "size is too large", Fix: byteSizeForms}
	}
	return ByteSize(r.Num().Int64()), nil
}

// byteSizeFromNumber converts a YAML or TOML number into a ByteSize.
func byteSizeFromNumber(v any) (ByteSize, error) {
	switch n := v.(type) {
	case ByteSize:
		return byteSizeFromInt(int64(n), v)
	case int:
		return byteSizeFromInt(int64(n), v)
	case int8:
		return byteSizeFromInt(int64(n), v)
	case int16:
		return byteSizeFromInt(int64(n), v)
	case int32:
		return byteSizeFromInt(int64(n), v)
	case int64:
		return byteSizeFromInt(n, v)
	case uint:
		return byteSizeFromUint(uint64(n), v)
	case uint8:
		return byteSizeFromUint(uint64(n), v)
	case uint16:
		return byteSizeFromUint(uint64(n), v)
	case uint32:
		return byteSizeFromUint(uint64(n), v)
	case uint64:
		return byteSizeFromUint(n, v)
	case float32:
		return byteSizeFromFloat(float64(n), v)
	case float64:
		return byteSizeFromFloat(n, v)
	}
	return 0, &valueError{Value: v, Problem: fmt.Sprintf("expected a size, got %s", kindName(v)), Fix: byteSizeForms}
}

func byteSizeFromInt(n int64, raw any) (ByteSize, error) {
	if n < 0 {
		return 0, &valueError{Value: raw, Problem: "size must not be negative", Fix: byteSizeForms}
	}
	return ByteSize(n), nil
}

func byteSizeFromUint(n uint64, raw any) (ByteSize, error) {
	if n > math.MaxInt64 {
		return 0, &valueError{Value: raw, Problem: "size is too large", Fix: byteSizeForms}
	}
	return ByteSize(n), nil
}

func byteSizeFromFloat(f float64, raw any) (ByteSize, error) {
	switch {
	case f < 0:
		return 0, &valueError{Value: raw, Problem: "size must not be negative", Fix: byteSizeForms}
	case f != math.Trunc(f):
		return 0, &valueError{Value: raw, Problem: "does not resolve to a whole number of bytes", Fix: byteSizeForms}
	case f >= math.MaxInt64:
		return 0, &valueError{Value: raw, Problem: "size is too large", Fix: byteSizeForms}
	}
	return ByteSize(f), nil
}

// String returns the shortest exact form, such as "64MiB", "10MB" or "1000001B".
func (b ByteSize) String() string {
	if b < 0 {
		// Not produced by parsing; printed plainly so a bug stays visible.
		return strconv.FormatInt(int64(b), 10) + "B"
	}
	for _, u := range byteUnits {
		if b != 0 && int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return "0B"
}

// Int64 returns the size in bytes.
func (b ByteSize) Int64() int64 { return int64(b) }

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalJSON writes the size as a string such as "64MiB".
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON accepts a string ("64MiB") or a number of bytes.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		return b.UnmarshalText([]byte(s))
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return &valueError{Value: string(data), Problem: "not a size", Fix: byteSizeForms}
	}
	v, err := ParseByteSize(n.String())
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Duration is a length of time written as a Go duration string: "30s", "1m30s", "250ms".
//
// A bare number is rejected, because it is ambiguous (seconds? milliseconds?), and so is
// a negative duration, which no setting accepts. String, MarshalText and MarshalJSON write
// time.Duration's form ("30s", "1m30s").
type Duration time.Duration

const durationForms = `use a duration with a unit such as "30s", "1m30s" or "250ms"`

// ParseDuration parses s as described on Duration.
func ParseDuration(s string) (Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, &valueError{Value: s, Problem: "empty duration", Fix: durationForms}
	}
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return 0, &valueError{Value: s, Problem: "a number without a unit is ambiguous", Fix: durationForms}
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, &valueError{Value: s, Problem: "not a duration", Fix: durationForms}
	}
	if d < 0 {
		return 0, &valueError{Value: s, Problem: "duration must not be negative", Fix: durationForms}
	}
	return Duration(d), nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String returns time.Duration's form, such as "30s" or "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes the duration as a string such as "30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON accepts only a string; a bare number is ambiguous.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return &valueError{Value: string(data), Problem: "a number without a unit is ambiguous", Fix: durationForms}
	}
	return d.UnmarshalText([]byte(s))
}

// Secret is a string that must never reach a log, an error message or an API response,
// such as a SASL password, an AWS secret key or the HTTP API's bearer token.
//
// Every way of printing it — String, GoString, fmt's verbs (%v, %+v, %#v, %s, %q, %x...),
// MarshalText, MarshalJSON and slog's LogValue — shows "[redacted]" when it is set and ""
// when it is empty, so a struct holding a Secret in an exported field can be printed or
// marshalled safely. Call Reveal to use the value. A Secret in an unexported field is not
// protected from fmt, which cannot call methods on unexported fields.
type Secret string

// redacted is what every printing path shows for a non-empty Secret.
const redacted = "[redacted]"

// Reveal returns the secret value. Call it only where the value is handed to the
// system that needs it, never to build a message.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format implements fmt.Formatter so every verb and flag prints the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		_, _ = fmt.Fprint(f, strconv.Quote(s.String()))
	case 'v':
		if f.Flag('#') {
			_, _ = fmt.Fprint(f, s.GoString())
			return
		}
		_, _ = fmt.Fprint(f, s.String())
	default:
		_, _ = fmt.Fprint(f, s.String())
	}
}

// MarshalText implements encoding.TextMarshaler with the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON writes "[redacted]", or "" when the secret is empty.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue implements slog.LogValuer with the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

var (
	_ encoding.TextUnmarshaler = (*ByteSize)(nil)
	_ encoding.TextMarshaler   = ByteSize(0)
	_ json.Unmarshaler         = (*ByteSize)(nil)
	_ encoding.TextUnmarshaler = (*Duration)(nil)
	_ encoding.TextMarshaler   = Duration(0)
	_ json.Unmarshaler         = (*Duration)(nil)
	_ fmt.Formatter            = Secret("")
	_ fmt.Stringer             = Secret("")
	_ fmt.GoStringer           = Secret("")
	_ slog.LogValuer           = Secret("")
	_ json.Marshaler           = Secret("")
)

// MemoryLimit is the memory_limit setting: the soft limit the process gives Go's memory
// manager (runtime/debug.SetMemoryLimit). It is written as "auto" (the limit follows what the
// process may hold: the pool, the shards being read and a fixed base; see the README's
// "Memory"), "off" (no limit: the collector lets the heap grow to about twice what is live), or
// a size such as "1GiB" (at least MinMemoryLimit). A GOMEMLIMIT environment variable takes
// precedence over all three.
type MemoryLimit int64

const (
	// MemoryLimitOff sets no limit.
	MemoryLimitOff MemoryLimit = 0
	// MemoryLimitAuto sizes the limit from the configuration and the shards being read.
	MemoryLimitAuto MemoryLimit = -1
	// MinMemoryLimit is the smallest fixed memory_limit: below it the collector would run
	// almost without pause.
	MinMemoryLimit = MemoryLimit(32 << 20)
)

const memoryLimitForms = `use "auto", "off" or a size such as "1GiB"`

// ParseMemoryLimit parses s as described on MemoryLimit. A size below MinMemoryLimit parses;
// Validate rejects it.
func ParseMemoryLimit(s string) (MemoryLimit, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return MemoryLimitAuto, nil
	case "off":
		return MemoryLimitOff, nil
	}
	b, err := ParseByteSize(s)
	if err != nil {
		return 0, &valueError{Value: s, Problem: "not auto, off or a size", Fix: memoryLimitForms}
	}
	if b == 0 {
		return 0, &valueError{Value: s, Problem: "a zero limit is ambiguous", Fix: `use "off" for no limit, or a size such as "1GiB"`}
	}
	return MemoryLimit(b), nil
}

// String returns "auto", "off" or the size ("1GiB").
func (m MemoryLimit) String() string {
	switch {
	case m == MemoryLimitAuto:
		return "auto"
	case m <= 0:
		return "off"
	}
	return ByteSize(m).String()
}

// Bytes returns the fixed limit in bytes, or 0 for "auto" and "off".
func (m MemoryLimit) Bytes() int64 { return max(int64(m), 0) }

// MarshalText implements encoding.TextMarshaler.
func (m MemoryLimit) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MemoryLimit) UnmarshalText(text []byte) error {
	v, err := ParseMemoryLimit(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
