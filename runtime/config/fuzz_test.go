package config

import "testing"

// FuzzParseByteSize checks that any accepted size is non-negative and survives
// String -> ParseByteSize unchanged, and that parsing never panics.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"64MiB", "10MB", "1024", "1.5KiB", "0.3KiB", "-1", "9223372036854775807", "1e3", "", "KiB", "1..2MB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("ParseByteSize(%q) = %d, negative", s, int64(b))
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, int64(b), b.String(), int64(back), err)
		}
	})
}

// FuzzParseDuration checks that accepted durations are non-negative and round-trip.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1m30s", "250ms", "30", "-1s", "", "1h2m3.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v, negative", s, d)
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, d, d.String(), back, err)
		}
	})
}
