package kpl

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDeaggregate checks that Deaggregate never panics, returns only its
// two documented error kinds, and that whatever it decodes survives a
// round trip through Aggregate.
//
// Random bytes almost never carry a valid MD5 trailer, which would leave the
// protobuf decoder unexplored, so each input is also tried as a protobuf
// body wrapped in the magic and its correct digest.
func FuzzDeaggregate(f *testing.F) {
	f.Add(mustHex(f, stripComments(knownVector)))
	f.Add(knownBodyOf(f))
	if agg, err := Aggregate(benchRecords(5, 8, 2)); err == nil {
		f.Add(agg)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDeaggregate(t, data)
		checkDeaggregate(t, frame(data))
	})
}

// knownBodyOf returns the protobuf body of the known vector, a seed for the
// framed half of the fuzz target.
func knownBodyOf(tb testing.TB) []byte {
	v := mustHex(tb, stripComments(knownVector))
	return v[4 : len(v)-16]
}

func checkDeaggregate(t *testing.T, data []byte) {
	recs, err := Deaggregate(data)
	if err != nil {
		if recs != nil {
			t.Fatalf("records returned alongside error %v", err)
		}
		switch {
		case errors.Is(err, ErrNotAggregated):
			if IsAggregated(data) {
				t.Fatalf("ErrNotAggregated for data IsAggregated accepts")
			}
		case errors.Is(err, ErrCorrupt):
			if !IsAggregated(data) {
				t.Fatalf("ErrCorrupt for data IsAggregated rejects: %v", err)
			}
		default:
			t.Fatalf("error wraps neither sentinel: %v", err)
		}
		return
	}
	if len(recs) == 0 {
		t.Fatal("success with zero records")
	}
	for i, r := range recs {
		if r.SubSequence != int64(i) {
			t.Fatalf("record %d has SubSequence %d", i, r.SubSequence)
		}
	}
	again, err := Aggregate(recs)
	if err != nil {
		t.Fatalf("Aggregate of decoded records: %v", err)
	}
	recs2, err := Deaggregate(again)
	if err != nil {
		t.Fatalf("Deaggregate of re-aggregated records: %v", err)
	}
	if len(recs2) != len(recs) {
		t.Fatalf("round trip: %d records, want %d", len(recs2), len(recs))
	}
	for i := range recs {
		a, b := recs[i], recs2[i]
		if a.PartitionKey != b.PartitionKey || a.ExplicitHashKey != b.ExplicitHashKey ||
			!bytes.Equal(a.Data, b.Data) || a.SubSequence != b.SubSequence {
			t.Fatalf("round trip record %d: %+v, want %+v", i, b, a)
		}
	}
}
