package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// FieldError is one problem with one config key. Load, Decode and the Validate methods
// return every problem at once as errors.Join of *FieldError; walk them with Problems.
//
// Error() is one line: `key: value: problem; fix`, for example
//
//	pool.max_pending_bytes: "64XB": unknown unit "XB"; use a size such as "64MiB", ...
//
// The value part is left out when Value is nil. A secret's value is never put in Value;
// errors about a Secret field carry the Secret itself, which prints as "[redacted]".
//
// Key is a config key path, except for problems with an environment variable that cannot be
// mapped to a key (a connector index that does not exist, say), where it is the variable's
// name.
type FieldError struct {
	Key     string // full key path, e.g. "connectors[0].sink.kafka.brokers"
	Value   any    // the offending value as written, or nil
	Problem string // what is wrong, lowercase, no trailing period
	Fix     string // how to fix it, or ""
}

// Error implements error.
func (e *FieldError) Error() string {
	var parts []string
	if e.Key != "" {
		parts = append(parts, e.Key)
	}
	if e.Value != nil {
		parts = append(parts, formatValue(e.Value))
	}
	parts = append(parts, oneLine(e.Problem))
	var b strings.Builder
	b.WriteString(strings.Join(parts, ": "))
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(oneLine(e.Fix))
	}
	return b.String()
}

// Problems returns every *FieldError inside err (as built by errors.Join, possibly wrapped),
// in order. Errors that are not FieldErrors are returned as FieldErrors with an empty Key
// so a caller printing problems loses none.
func Problems(err error) []*FieldError {
	var out []*FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
			return
		case interface{ Unwrap() error }:
			var fe *FieldError
			if errors.As(err, &fe) {
				walk(u.Unwrap())
				return
			}
		}
		out = append(out, &FieldError{Problem: err.Error()})
	}
	walk(err)
	return out
}

// valueError is a problem with a value, before the key it belongs to is known. Decode
// turns it into a FieldError once mapstructure names the field.
type valueError struct {
	Value   any
	Problem string
	Fix     string
}

func (e *valueError) Error() string {
	s := formatValue(e.Value) + ": " + e.Problem
	if e.Fix != "" {
		s += "; " + e.Fix
	}
	return s
}

// maxValueLen bounds how much of a value an error message shows, so one huge value
// cannot drown the other problems.
const maxValueLen = 80

func formatValue(v any) string {
	var s string
	switch x := v.(type) {
	case Secret:
		s = x.String()
		if s == "" {
			return `""`
		}
		return s
	case string:
		s = fmt.Sprintf("%q", x)
	default:
		s = fmt.Sprintf("%v", x)
	}
	s = oneLine(s)
	if r := []rune(s); len(r) > maxValueLen {
		s = string(r[:maxValueLen]) + "..."
	}
	return s
}

func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// kindName names a raw config value's type in user terms.
func kindName(v any) string {
	if v == nil {
		return "nothing"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Map:
		return "a table"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return fmt.Sprintf("a %T", v)
}

// suggest returns the candidate nearest to key within edit distance 2, or "".
func suggest(key string, candidates []string) string {
	best, bestD := "", 3
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	for _, c := range sorted {
		if d := editDistance(strings.ToLower(key), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// unknownFix is the Fix text for an unknown name: a suggestion when one is close,
// otherwise the list of known names.
func unknownFix(name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return "did you mean " + s + "?"
	}
	if len(known) == 0 {
		return "remove it; nothing is accepted here"
	}
	k := append([]string(nil), known...)
	sort.Strings(k)
	return "known keys are " + strings.Join(k, ", ")
}

// editDistance is the Levenshtein distance between a and b, counted in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// joinKey appends a child key or an index ("[2]") to a path.
func joinKey(path, child string) string {
	switch {
	case path == "":
		return child
	case child == "":
		return path
	case strings.HasPrefix(child, "["):
		return path + child
	}
	return path + "." + child
}
