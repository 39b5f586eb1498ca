package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
)

// level is a plugin-owned enum that decodes itself from text.
type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return &valueError{Value: string(b), Problem: "unknown level", Fix: `use "low" or "high"`}
	}
	return nil
}

type decodeTarget struct {
	Name     string                 `koanf:"name"`
	Count    int                    `koanf:"count"`
	Small    int8                   `koanf:"small"`
	Unsigned uint16                 `koanf:"unsigned"`
	Ratio    float64                `koanf:"ratio"`
	On       bool                   `koanf:"on"`
	Tags     []string               `koanf:"tags"`
	Ports    []int                  `koanf:"ports"`
	Size     ByteSize               `koanf:"size"`
	Every    Duration               `koanf:"every"`
	Key      Secret                 `koanf:"key"`
	Level    level                  `koanf:"level"`
	Labels   map[string]string      `koanf:"labels"`
	Inner    *innerTarget           `koanf:"inner"`
	List     []innerTarget          `koanf:"list"`
	Skipped  string                 `koanf:"-"`
	Opt      *bool                  `koanf:"opt"`
	Nodes    map[string]innerTarget `koanf:"nodes"`
	Embedded `koanf:",squash"`
}

type innerTarget struct {
	Depth int `koanf:"depth"`
}

type Embedded struct {
	Flat string `koanf:"flat"`
}

func TestDecodeConvertsStrings(t *testing.T) {
	// Every value a string, as the environment delivers them.
	raw := map[string]any{
		"name": "n", "count": "42", "small": "-7", "unsigned": "65535", "ratio": "0.25", "on": "true",
		"tags": "a, b,c", "ports": "80,443", "size": "2KiB", "every": "1m", "key": "k3y", "level": "high",
		"labels": map[string]any{"x.y": "z"}, "inner": map[string]any{"depth": "3"},
		"list": []any{map[string]any{"depth": 1}}, "flat": "f", "opt": "false",
		"nodes": map[string]any{"a.b": map[string]any{"depth": "4"}},
	}
	var got decodeTarget
	if err := Decode(raw, &got, "sec"); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := decodeTarget{
		Name: "n", Count: 42, Small: -7, Unsigned: 65535, Ratio: 0.25, On: true,
		Tags: []string{"a", "b", "c"}, Ports: []int{80, 443}, Size: 2048, Every: Duration(time.Minute),
		Key: "k3y", Level: 2, Labels: map[string]string{"x.y": "z"}, Inner: &innerTarget{Depth: 3},
		List: []innerTarget{{Depth: 1}}, Embedded: Embedded{Flat: "f"}, Opt: new(bool),
		Nodes: map[string]innerTarget{"a.b": {Depth: 4}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestDecodeKeepsPresetValues(t *testing.T) {
	got := decodeTarget{Name: "default", Count: 7}
	if err := Decode(map[string]any{"count": 8}, &got, ""); err != nil {
		t.Fatal(err)
	}
	if got.Name != "default" || got.Count != 8 || got.Opt != nil {
		t.Errorf("got %+v", got)
	}
	if err := Decode(nil, &got, ""); err != nil || got.Count != 8 {
		t.Errorf("nil raw: %v, %+v", err, got)
	}
	if err := Decode(map[string]any{}, got, ""); err == nil || !strings.Contains(err.Error(), "non-nil pointer") {
		t.Errorf("non-pointer: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  map[string]any
		key  string
		want string
	}{
		{"unknown key", map[string]any{"cont": 1}, "p.cont", "unknown key; did you mean count?"},
		{"unknown key far", map[string]any{"zzzzzz": 1}, "p.zzzzzz", "known keys are "},
		{"skipped field is unknown", map[string]any{"Skipped": "x"}, "p.Skipped", "unknown key"},
		{"unknown nested pointer", map[string]any{"inner": map[string]any{"dept": 1}}, "p.inner.dept", "did you mean depth?"},
		{"unknown in list", map[string]any{"list": []any{map[string]any{}, map[string]any{"dept": 1}}}, "p.list[1].dept", "did you mean depth?"},
		{"int overflow", map[string]any{"small": 300}, "p.small", "300: out of range for int8"},
		{"int from fraction", map[string]any{"count": 2.5}, "p.count", "2.5: not a whole number"},
		{"int from bool", map[string]any{"count": true}, "p.count", "true: expected an integer, got a boolean"},
		{"uint negative", map[string]any{"unsigned": -1}, "p.unsigned", "must not be negative"},
		{"uint overflow", map[string]any{"unsigned": "70000"}, "p.unsigned", "out of range for uint16"},
		{"float from text", map[string]any{"ratio": "half"}, "p.ratio", `"half": not a number`},
		{"float from list", map[string]any{"ratio": []any{1}}, "p.ratio", "expected a number, got a list"},
		{"bool from int", map[string]any{"on": 1}, "p.on", "1: expected a boolean, got an integer; use true or false"},
		{"string from bool", map[string]any{"name": false}, "p.name", "false: expected a string, got a boolean; quote the value"},
		{"list from int", map[string]any{"tags": 5}, "p.tags", "5: expected a list, got an integer"},
		{"list element", map[string]any{"ports": "80,http"}, "p.ports[1]", `"http": not a whole number`},
		{"struct from string", map[string]any{"inner": "deep"}, "p.inner", `"deep": expected a table of keys, got a string`},
		{"map from list", map[string]any{"labels": []any{"a"}}, "p.labels", "expected a table of keys, got a list"},
		{"map value", map[string]any{"labels": map[string]any{"a": 1}}, "p.labels[a]", "1: expected a string, got an integer"},
		{"text unmarshaler", map[string]any{"level": "mid"}, "p.level", `"mid": unknown level; use "low" or "high"`},
		{"size from bool", map[string]any{"size": true}, "p.size", "expected a size, got a boolean"},
		{"duration from list", map[string]any{"every": []any{}}, "p.every", "expected a duration, got a list"},
		{"map of structs unknown key", map[string]any{"nodes": map[string]any{"x.y": map[string]any{"dep": 1}}}, "p.nodes[x.y].dep", "did you mean depth?"},
		{"pointer to bool", map[string]any{"opt": "maybe"}, "p.opt", `"maybe": not a boolean`},
		{"secret from list", map[string]any{"key": []any{"abc"}}, "p.key", "[redacted]: expected a string, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got decodeTarget
			err := Decode(tt.raw, &got, "p")
			p := findProblem(t, err, tt.key)
			assertContains(t, p.Error(), tt.want)
			if n := len(Problems(err)); n != 1 {
				t.Errorf("want exactly one problem, got %d:\n%v", n, err)
			}
		})
	}
}

func TestDecodeReportsAllAndDecodesTheRest(t *testing.T) {
	var got decodeTarget
	err := Decode(map[string]any{"count": "x", "small": 1000, "nme": "a", "ratio": 0.5, "tags": []any{"t"}}, &got, "")
	if n := len(Problems(err)); n != 3 {
		t.Fatalf("want 3 problems, got %d:\n%v", n, err)
	}
	if got.Ratio != 0.5 || !reflect.DeepEqual(got.Tags, []string{"t"}) {
		t.Errorf("valid fields not decoded: %+v", got)
	}
	// Top-level keys have no leading dot when the path is empty.
	findProblem(t, err, "nme")
}

func TestDecodeDoesNotMutateRaw(t *testing.T) {
	raw := map[string]any{"inner": map[string]any{"depth": 1, "bogus": 2}}
	var got decodeTarget
	_ = Decode(raw, &got, "")
	if _, ok := raw["inner"].(map[string]any)["bogus"]; !ok {
		t.Error("Decode removed a key from the caller's map")
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"max_pending_records", "max_pending_bytes", "wait_timeout"}
	for in, want := range map[string]string{
		"max_pending_byte":     "max_pending_bytes",
		"max_pendingbytes":     "max_pending_bytes",
		"MAX_PENDING_BYTES":    "max_pending_bytes",
		"wait_timeuot":         "wait_timeout",
		"wait":                 "",
		"max_pending_bytessss": "",
	} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance = %d", d)
	}
}

func TestDecodeTimestampsIntoStrings(t *testing.T) {
	// yaml.v3 and go-toml both produce time.Time for an unquoted timestamp; TOML's local
	// date and time become go-toml types. A string field gets RFC 3339 text back.
	raw, err := toml.Parser().Unmarshal([]byte("name = 2024-01-02T03:04:05.5Z\nflat = 1979-05-27\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got decodeTarget
	if err := Decode(raw, &got, ""); err != nil {
		t.Fatal(err)
	}
	if got.Name != "2024-01-02T03:04:05.5Z" || got.Flat != "1979-05-27" {
		t.Errorf("name %q, flat %q", got.Name, got.Flat)
	}
	yraw, err := yaml.Parser().Unmarshal([]byte("name: 2024-01-02T03:04:05Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(yraw, &got, ""); err != nil || got.Name != "2024-01-02T03:04:05Z" {
		t.Errorf("yaml: %q, %v", got.Name, err)
	}
	// Not for secrets: a timestamp there is still a type error, and still not echoed.
	err = Decode(map[string]any{"key": time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}, &got, "")
	p := findProblem(t, err, "key")
	if strings.Contains(p.Error(), "2024") {
		t.Errorf("secret error echoes the value: %v", p)
	}
}
