package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// Decode decodes raw, a tree of map[string]any, []any and scalars as koanf produces it
// from YAML, TOML or the environment, into the struct that into points to. path is the key
// prefix of raw in the whole config (such as "connectors[0].sink.kafka") and prefixes every
// key in the returned errors. Plugins may call it for sub-sections they decode themselves.
//
// Fields are matched by their `koanf` tag (or their Go name when untagged), exactly and
// case-sensitively; `koanf:"-"` skips a field and `koanf:",squash"` flattens an embedded
// struct; mapstructure's `,remain` is not supported (its keys would be reported unknown).
// Decode is strict:
//   - An unknown key at any depth is an error naming its full path, with a "did you mean"
//     suggestion when a known key is within edit distance 2.
//   - Strings convert to integers, floats, booleans and, split at commas, to lists, because
//     environment variables are always strings; any other type mismatch is an error (an
//     integer is not silently turned into a string, nor a float truncated into an integer).
//   - An unquoted YAML or TOML timestamp decodes into a string field as RFC 3339 text.
//   - ByteSize, Duration and any type implementing encoding.TextUnmarshaler decode from strings
//     (ByteSize also from whole numbers).
//
// Fields missing from raw keep the value they had, so callers fill defaults before Decode.
// Decode returns every problem at once as errors.Join of *FieldError, and decodes every
// field it can even when others fail.
func Decode(raw any, into any, path string) error {
	rv := reflect.ValueOf(into)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("config: decode %s: into must be a non-nil pointer, got %T", path, into)
	}
	if raw == nil {
		return nil
	}
	var errs []error
	cleaned := checkKeys(rv.Type().Elem(), raw, path, &errs)
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: decodeHook,
		// Unknown keys were reported and removed by checkKeys with better messages; this is a
		// backstop in case a type is walked differently there than here.
		ErrorUnused: true,
		TagName:     "koanf",
		MatchName:   func(mapKey, fieldName string) bool { return mapKey == fieldName },
		Result:      into,
	})
	if err != nil {
		return fmt.Errorf("config: decode %s: %w", path, err)
	}
	if err := dec.Decode(cleaned); err != nil {
		collectDecodeErrors(err, path, &errs)
	}
	return errors.Join(errs...)
}

var (
	byteSizeType        = reflect.TypeFor[ByteSize]()
	durationType        = reflect.TypeFor[Duration]()
	secretType          = reflect.TypeFor[Secret]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// isScalarType reports whether values of t decode from a single scalar even though t's
// kind might be a struct, so checkKeys must not look inside it.
func isScalarType(t reflect.Type) bool {
	return t == byteSizeType || t == durationType || t == secretType ||
		reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// fieldKeys maps each accepted key of struct type t to its field type, following squash.
func fieldKeys(t reflect.Type) map[string]reflect.Type {
	keys := make(map[string]reflect.Type)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("koanf")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",squash,") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range fieldKeys(ft) {
					keys[k] = v
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		keys[name] = f.Type
	}
	return keys
}

// checkKeys walks raw along type t, reports every key that t does not accept and returns a
// copy of raw without those keys. Values of the wrong shape are left for mapstructure (and
// decodeHook) to report.
func checkKeys(t reflect.Type, raw any, path string, errs *[]error) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isScalarType(t) {
		return raw
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return raw
		}
		fields := fieldKeys(t)
		known := make([]string, 0, len(fields))
		for k := range fields {
			known = append(known, k)
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			ft, ok := fields[k]
			if !ok {
				*errs = append(*errs, &FieldError{Key: joinKey(path, k), Problem: "unknown key", Fix: unknownFix(k, known)})
				continue
			}
			out[k] = checkKeys(ft, m[k], joinKey(path, k), errs)
		}
		return out
	case reflect.Slice, reflect.Array:
		l, ok := raw.([]any)
		if !ok {
			return raw
		}
		out := make([]any, len(l))
		for i, v := range l {
			out[i] = checkKeys(t.Elem(), v, path+"["+strconv.Itoa(i)+"]", errs)
		}
		return out
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok || t.Key().Kind() != reflect.String {
			return raw
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			// Map entries are keyed "name[key]", as mapstructure names them, so a key
			// holding a dot stays unambiguous.
			out[k] = checkKeys(t.Elem(), m[k], path+"["+k+"]", errs)
		}
		return out
	}
	return raw
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeHook converts raw values to the target type where the conversion is safe and
// unambiguous, and rejects the rest with a valueError that becomes a FieldError.
func decodeHook(from reflect.Value, to reflect.Value) (any, error) {
	if !from.IsValid() {
		return nil, nil
	}
	data := from.Interface()
	tt := to.Type()
	switch tt {
	case byteSizeType:
		if s, ok := data.(string); ok {
			return ParseByteSize(s)
		}
		return byteSizeFromNumber(data)
	case durationType:
		switch x := data.(type) {
		case string:
			return ParseDuration(x)
		case Duration:
			return x, nil
		}
		if isNumber(data) {
			return nil, &valueError{Value: data, Problem: "a number without a unit is ambiguous", Fix: durationForms}
		}
		return nil, &valueError{Value: data, Problem: "expected a duration, got " + kindName(data), Fix: durationForms}
	case secretType:
		if _, ok := data.(string); ok || from.Kind() == reflect.String {
			return data, nil
		}
		// Never echo what was written: it may be the secret, unquoted.
		return nil, &valueError{Value: Secret("x"), Problem: "expected a string, got " + kindName(data), Fix: "quote the value"}
	}
	if from.Kind() == reflect.String && tt.Kind() != reflect.String && reflect.PointerTo(tt).Implements(textUnmarshalerType) {
		v := reflect.New(tt)
		if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(from.String())); err != nil {
			var ve *valueError
			if errors.As(err, &ve) {
				return nil, ve
			}
			return nil, &valueError{Value: data, Problem: err.Error()}
		}
		return v.Elem().Interface(), nil
	}

	switch tt.Kind() {
	case reflect.String:
		// YAML and TOML both turn an unquoted timestamp into a time.Time (TOML's local dates
		// and times into its own types); give string fields back the text the user wrote,
		// in RFC 3339 form, rather than ask them to quote it.
		if ts, ok := data.(time.Time); ok {
			return ts.Format(time.RFC3339Nano), nil
		}
		if tm, ok := data.(encoding.TextMarshaler); ok && from.Kind() == reflect.Struct {
			b, err := tm.MarshalText()
			if err != nil {
				return nil, &valueError{Value: data, Problem: err.Error(), Fix: "quote the value"}
			}
			return string(b), nil
		}
		if from.Kind() != reflect.String {
			return nil, &valueError{Value: data, Problem: "expected a string, got " + kindName(data), Fix: "quote the value"}
		}
	case reflect.Bool:
		switch from.Kind() {
		case reflect.Bool:
		case reflect.String:
			b, err := strconv.ParseBool(strings.TrimSpace(from.String()))
			if err != nil {
				return nil, &valueError{Value: data, Problem: "not a boolean", Fix: "use true or false"}
			}
			return b, nil
		default:
			return nil, &valueError{Value: data, Problem: "expected a boolean, got " + kindName(data), Fix: "use true or false"}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := toInt64(from)
		if err != nil {
			return nil, err
		}
		if to.OverflowInt(n) {
			return nil, &valueError{Value: data, Problem: "out of range for " + tt.Kind().String(), Fix: "use a smaller number"}
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := toInt64(from)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, &valueError{Value: data, Problem: "must not be negative", Fix: "use a whole number of 0 or more"}
		}
		if to.OverflowUint(uint64(n)) {
			return nil, &valueError{Value: data, Problem: "out of range for " + tt.Kind().String(), Fix: "use a smaller number"}
		}
		return uint64(n), nil
	case reflect.Float32, reflect.Float64:
		switch {
		case isNumber(data):
			return data, nil
		case from.Kind() == reflect.String:
			f, err := strconv.ParseFloat(strings.TrimSpace(from.String()), 64)
			if err != nil {
				return nil, &valueError{Value: data, Problem: "not a number", Fix: "use a number such as 0.5"}
			}
			return f, nil
		default:
			return nil, &valueError{Value: data, Problem: "expected a number, got " + kindName(data), Fix: "use a number such as 0.5"}
		}
	case reflect.Slice, reflect.Array:
		switch from.Kind() {
		case reflect.Slice, reflect.Array:
		case reflect.String:
			// Environment variables carry lists as comma-separated strings.
			s := strings.TrimSpace(from.String())
			if s == "" {
				return []string{}, nil
			}
			parts := strings.Split(s, ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			return parts, nil
		default:
			return nil, &valueError{Value: data, Problem: "expected a list, got " + kindName(data), Fix: "use a list such as [\"a\", \"b\"] or a comma-separated string"}
		}
	case reflect.Struct, reflect.Map:
		if from.Kind() != reflect.Map && from.Type() != tt {
			return nil, &valueError{Value: data, Problem: "expected a table of keys, got " + kindName(data), Fix: "write it as a nested table (YAML mapping or TOML table)"}
		}
	}
	return data, nil
}

func isNumber(v any) bool {
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// toInt64 converts a raw integer, a whole float or a decimal string to int64.
func toInt64(from reflect.Value) (int64, error) {
	data := from.Interface()
	const fix = "use a whole number such as 50000"
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return from.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if from.Uint() > math.MaxInt64 {
			return 0, &valueError{Value: data, Problem: "out of range", Fix: "use a smaller number"}
		}
		return int64(from.Uint()), nil
	case reflect.Float32, reflect.Float64:
		f := from.Float()
		if f != math.Trunc(f) || f >= math.MaxInt64 || f < math.MinInt64 {
			return 0, &valueError{Value: data, Problem: "not a whole number", Fix: fix}
		}
		return int64(f), nil
	case reflect.String:
		n, err := strconv.ParseInt(strings.TrimSpace(from.String()), 10, 64)
		if err != nil {
			return 0, &valueError{Value: data, Problem: "not a whole number", Fix: fix}
		}
		return n, nil
	}
	return 0, &valueError{Value: data, Problem: "expected an integer, got " + kindName(data), Fix: fix}
}

// collectDecodeErrors turns mapstructure's error tree into FieldErrors keyed by full path.
func collectDecodeErrors(err error, path string, errs *[]error) {
	var de *mapstructure.DecodeError
	switch e := err.(type) {
	case *mapstructure.DecodeError:
		inner := e.Unwrap()
		if errors.As(inner, &de) {
			collectDecodeErrors(inner, path, errs)
			return
		}
		key := joinKey(path, e.Name())
		var ve *valueError
		if errors.As(inner, &ve) {
			*errs = append(*errs, &FieldError{Key: key, Value: ve.Value, Problem: ve.Problem, Fix: ve.Fix})
			return
		}
		*errs = append(*errs, &FieldError{Key: key, Problem: inner.Error()})
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			collectDecodeErrors(x, path, errs)
		}
	case interface{ Unwrap() error }:
		if errors.As(err, &de) {
			collectDecodeErrors(e.Unwrap(), path, errs)
			return
		}
		*errs = append(*errs, &FieldError{Key: path, Problem: err.Error()})
	default:
		*errs = append(*errs, &FieldError{Key: path, Problem: err.Error()})
	}
}
