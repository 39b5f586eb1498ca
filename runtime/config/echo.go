package config

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
)

// keyed returns v as the config file writes it, for JSON output: structs become maps keyed by
// their koanf tags (the keys a user writes, such as "secret_access_key"), whatever their JSON
// tags say, so that the HTTP API echoes a connector's config in the config's own keys. Values
// that marshal themselves (Secret, Duration, ByteSize, time.Time) are kept as they are, so a
// Secret still prints "[redacted]". Every field is shown, including defaults filled in by
// Validate: the echo is the config in force.
func keyed(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	if marshalsItself(v) {
		return v.Interface()
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return keyed(v.Elem())
	case reflect.Struct:
		out := make(map[string]any, v.NumField())
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := fieldKey(f)
			if name == "-" {
				continue
			}
			out[name] = keyed(v.Field(i))
		}
		return out
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = keyed(v.Index(i))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		out := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			out[keyString(it.Key())] = keyed(it.Value())
		}
		return out
	}
	return v.Interface()
}

// fieldKey is the key a config file uses for f: its koanf tag, else its JSON tag, else its name.
func fieldKey(f reflect.StructField) string {
	for _, tag := range []string{"koanf", "json"} {
		if name, _, _ := strings.Cut(f.Tag.Get(tag), ","); name != "" {
			return name
		}
	}
	return f.Name
}

func keyString(k reflect.Value) string {
	if k.Kind() == reflect.String {
		return k.String()
	}
	if tm, ok := k.Interface().(encoding.TextMarshaler); ok {
		if b, err := tm.MarshalText(); err == nil {
			return string(b)
		}
	}
	b, _ := json.Marshal(k.Interface())
	return strings.Trim(string(b), `"`)
}

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// marshalsItself reports whether v's type (or a pointer to it) writes its own JSON or text, as
// Secret, Duration, ByteSize and time.Time do.
func marshalsItself(v reflect.Value) bool {
	t := v.Type()
	if t.Kind() == reflect.Interface || t.Kind() == reflect.Pointer && v.IsNil() {
		return false
	}
	return t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType)
}
