package kinesistest

import (
	"strings"
	"testing"
)

// FuzzDecodeIterator feeds arbitrary shard iterators, which clients send
// back to us, to the decoder: it must never panic, and whatever it accepts
// must encode back to an iterator that decodes the same.
func FuzzDecodeIterator(f *testing.F) {
	f.Add(iterator{"s", 1, "shardId-000000000000", 0, 1700000000000000000}.encode())
	f.Add(iterator{"a.b-c_d", 99, "shardId-000000000007", 12345, 0}.encode())
	f.Add("")
	f.Add("not base64 !")
	f.Fuzz(func(t *testing.T, s string) {
		it, ok := decodeIterator(s)
		if !ok {
			return
		}
		if it.pos < 0 {
			t.Fatalf("accepted a negative position: %+v", it)
		}
		if strings.Contains(it.stream, "|") || strings.Contains(it.shard, "|") {
			return // cannot round-trip; such names never pass validName
		}
		again, ok := decodeIterator(it.encode())
		if !ok || again != it {
			t.Fatalf("round trip of %+v gave %+v, %v", it, again, ok)
		}
	})
}

// FuzzParseHashKey checks that accepted hash keys are canonical decimal
// numbers below 2^128 that format back to themselves.
func FuzzParseHashKey(f *testing.F) {
	for _, s := range []string{"0", "1", "340282366920938463463374607431768211455", "340282366920938463463374607431768211456", "-1", "007", "1e5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseHashKey(s)
		if !ok {
			return
		}
		trimmed := strings.TrimLeft(s, "0")
		if trimmed == "" {
			trimmed = "0"
		}
		if h.String() != trimmed {
			t.Fatalf("parseHashKey(%q) = %s", s, h)
		}
	})
}
