package kpl

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"pgregory.net/rapid"
)

// The helpers below are the test's own encoder, written from the published
// schema and independent of Aggregate, so the decoder is not only checked
// against its own encoder.

// frame wraps a protobuf body in the magic prefix and its MD5 trailer.
func frame(pb []byte) []byte {
	sum := md5.Sum(pb)
	out := append([]byte{0xF3, 0x89, 0x9A, 0xC2}, pb...)
	return append(out, sum[:]...)
}

// cat concatenates encoded fields into one message body.
func cat(fields ...[]byte) []byte { return bytes.Join(fields, nil) }

// fb encodes a length-delimited field.
func fb(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// fs encodes a string field.
func fs(num protowire.Number, v string) []byte { return fb(num, []byte(v)) }

// fv encodes a varint field.
func fv(num protowire.Number, v uint64) []byte {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// fraw encodes a tag with any wire type followed by raw value bytes.
func fraw(num protowire.Number, typ protowire.Type, v []byte) []byte {
	return append(protowire.AppendTag(nil, num, typ), v...)
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// fataler is what equalRecords needs; both *testing.T and *rapid.T have it.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func equalRecords(t fataler, got, want []UserRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d:\n got  %+v\n want %+v", len(got), len(want), got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey ||
			!bytes.Equal(g.Data, w.Data) || g.SubSequence != w.SubSequence {
			t.Fatalf("record %d:\n got  %+v (data %q)\n want %+v (data %q)", i, g, g.Data, w, w.Data)
		}
	}
}

// knownVector was assembled by hand from the schema:
//
//	partition_key_table: "a", "b"; explicit_hash_key_table: "1"
//	records: {pk 0, data "x"}, {pk 1, ehk 0, data "yz"}
//
// and its trailer computed with the md5sum tool over the protobuf bytes.
const knownVector = `
	f3899ac2
	0a 01 61                      # field 1 (bytes) "a"
	0a 01 62                      # field 1 (bytes) "b"
	12 01 31                      # field 2 (bytes) "1"
	1a 05  08 00  1a 01 78        # field 3: {1: 0, 3: "x"}
	1a 08  08 01  10 00  1a 02 79 7a  # field 3: {1: 1, 2: 0, 3: "yz"}
	deac51cc175540e059074e3301655977`

var knownRecords = []UserRecord{
	{PartitionKey: "a", Data: []byte("x"), SubSequence: 0},
	{PartitionKey: "b", ExplicitHashKey: "1", Data: []byte("yz"), SubSequence: 1},
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "#")
		b.WriteString(line)
		b.WriteByte(' ')
	}
	return b.String()
}

func TestKnownVector(t *testing.T) {
	data := mustHex(t, stripComments(knownVector))
	if !IsAggregated(data) {
		t.Fatal("IsAggregated = false for the known vector")
	}
	got, err := Deaggregate(data)
	if err != nil {
		t.Fatalf("Deaggregate: %v", err)
	}
	equalRecords(t, got, knownRecords)

	// Aggregate writes tables first and record fields in schema order, as
	// the vector does, so it must reproduce it byte for byte.
	enc, err := Aggregate(knownRecords)
	if err != nil {
		t.Fatalf("Aggregate: %v", err)
	}
	if !bytes.Equal(enc, data) {
		t.Fatalf("Aggregate:\n got  %x\n want %x", enc, data)
	}
}

// TestThirdPartyVector decodes an aggregate published in the documentation
// of ex_kpl, an Elixir KPL aggregator: one record, key "partition_key",
// data "data".
func TestThirdPartyVector(t *testing.T) {
	data := mustHex(t, `f3899ac2 0a0d706172746974696f6e5f6b6579 1a08 0800 1a0464617461
		d03699da5a222fa32108ad1bd955a14e`)
	got, err := Deaggregate(data)
	if err != nil {
		t.Fatalf("Deaggregate: %v", err)
	}
	equalRecords(t, got, []UserRecord{{PartitionKey: "partition_key", Data: []byte("data")}})
}

// TestDeaggregateProtobufRules checks what any proto2 decoder must accept:
// fields in any order (tables after the records that use them), unknown
// fields of every wire type, tags, and the last value winning for a
// repeated non-repeated field.
func TestDeaggregateProtobufRules(t *testing.T) {
	group := cat(protowire.AppendTag(nil, 9, protowire.StartGroupType),
		fv(1, 5), protowire.AppendTag(nil, 9, protowire.EndGroupType))
	tag := cat(fs(1, "k"), fs(2, "v"))
	pb := cat(
		fb(3, cat(fv(1, 1), fs(3, "first"))),
		fv(7, 42), // unknown varint
		fraw(8, protowire.Fixed32Type, []byte{1, 2, 3, 4}), // unknown fixed32
		fs(1, "pk0"),
		group, // unknown group with a nested field
		fb(3, cat(
			fs(3, "old"),
			fb(4, tag), // tags are skipped
			fv(2, 0),
			fraw(15, protowire.Fixed64Type, make([]byte, 8)), // unknown fixed64
			fv(1, 0),
			fs(3, "second"), // last data wins
			fs(99, "unknown bytes"),
		)),
		fs(2, "ehk0"),
		fs(1, "pk1"),
		fb(3, cat(fs(3, ""), fv(1, 1))), // empty data is present data
	)
	got, err := Deaggregate(frame(pb))
	if err != nil {
		t.Fatalf("Deaggregate: %v", err)
	}
	equalRecords(t, got, []UserRecord{
		{PartitionKey: "pk1", Data: []byte("first"), SubSequence: 0},
		{PartitionKey: "pk0", ExplicitHashKey: "ehk0", Data: []byte("second"), SubSequence: 1},
		{PartitionKey: "pk1", Data: []byte{}, SubSequence: 2},
	})
	if got[2].Data == nil {
		t.Error("empty data decoded as nil; want an empty, present slice")
	}
}

// TestRoundTripIndependentEncoder generates aggregates with the test's own
// encoder, in shuffled field order with shared and unused table entries,
// and checks the decoder returns exactly what was encoded.
func TestRoundTripIndependentEncoder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pks := rapid.SliceOfN(rapid.String(), 1, 5).Draw(t, "pks")
		ehks := rapid.SliceOfN(rapid.String(), 0, 3).Draw(t, "ehks")
		n := rapid.IntRange(1, 20).Draw(t, "n")
		var fields [][]byte
		var want []UserRecord
		for _, k := range pks {
			fields = append(fields, fs(1, k))
		}
		for _, k := range ehks {
			fields = append(fields, fs(2, k))
		}
		var recFields [][]byte
		for i := range n {
			pk := rapid.IntRange(0, len(pks)-1).Draw(t, "pk")
			data := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "data")
			r := UserRecord{PartitionKey: pks[pk], Data: data, SubSequence: int64(i)}
			body := cat(fv(1, uint64(pk)), fb(3, data))
			if len(ehks) > 0 && rapid.Bool().Draw(t, "hasEHK") {
				e := rapid.IntRange(0, len(ehks)-1).Draw(t, "ehk")
				r.ExplicitHashKey = ehks[e]
				body = cat(fb(3, data), fv(2, uint64(e)), fv(1, uint64(pk)))
			}
			want = append(want, r)
			recFields = append(recFields, fb(3, body))
		}
		// Shuffle table fields among the records, keeping record order
		// (it defines SubSequence) and each table's own order.
		var all [][]byte
		ti, ri := 0, 0
		for ti < len(fields) || ri < len(recFields) {
			if ri == len(recFields) || (ti < len(fields) && rapid.Bool().Draw(t, "tableFirst")) {
				all = append(all, fields[ti])
				ti++
			} else {
				all = append(all, recFields[ri])
				ri++
			}
		}
		got, err := Deaggregate(frame(cat(all...)))
		if err != nil {
			t.Fatalf("Deaggregate: %v", err)
		}
		equalRecords(t, got, want)
	})
}

// TestRoundTripAggregate checks Deaggregate(Aggregate(recs)) == recs.
func TestRoundTripAggregate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		keys := rapid.SliceOfN(rapid.String(), 1, 4).Draw(t, "keys")
		recs := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) UserRecord {
			return UserRecord{
				PartitionKey:    rapid.SampledFrom(keys).Draw(t, "pk"),
				ExplicitHashKey: rapid.SampledFrom(append([]string{""}, keys...)).Draw(t, "ehk"),
				Data:            rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "data"),
			}
		}), 1, 50).Draw(t, "recs")
		for i := range recs {
			recs[i].SubSequence = int64(i)
		}
		enc, err := Aggregate(recs)
		if err != nil {
			t.Fatalf("Aggregate: %v", err)
		}
		got, err := Deaggregate(enc)
		if err != nil {
			t.Fatalf("Deaggregate: %v", err)
		}
		equalRecords(t, got, recs)
	})
}

func TestDeaggregateCorrupt(t *testing.T) {
	valid := cat(fs(1, "pk"), fb(3, cat(fv(1, 0), fs(3, "d"))))
	badDigest := frame(valid)
	badDigest[len(badDigest)-1] ^= 0xFF
	flippedBody := frame(valid)
	flippedBody[6] ^= 0x01

	for _, tc := range []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"bad digest", badDigest, "digest mismatch"},
		{"body changed after digest", flippedBody, "digest mismatch"},
		{"empty body", frame(nil), "no records"},
		{"tables but no records", frame(cat(fs(1, "pk"), fs(2, "e"))), "no records"},
		{"truncated tag", frame(cat(valid, []byte{0x80})), "truncated"},
		{"truncated length", frame(cat(fs(1, "pk"), []byte{0x1a})), "truncated"},
		{"length past end", frame(cat(fs(1, "pk"), []byte{0x1a, 0x05, 0x08})), "truncated"},
		{"truncated varint in record", frame(cat(fs(1, "pk"), fb(3, []byte{0x08, 0x80}))), "truncated"},
		{"varint overflow", frame(cat(valid, fv(7, 0), bytes.Repeat([]byte{0xFF}, 10), []byte{0x01})), "overflow"},
		{"field number zero", frame(cat(valid, []byte{0x02, 0x00})), "invalid field number"},
		{"field number too large", frame(cat(valid, protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3))), "invalid"},
		{"stray end group", frame(cat(valid, protowire.AppendTag(nil, 9, protowire.EndGroupType))), "end group"},
		{"reserved wire type", frame(cat(valid, []byte{0x0e})), "reserved"},
		{"partition key table as varint", frame(cat(fv(1, 3), fb(3, cat(fv(1, 0), fs(3, "d"))))), "partition_key_table (1) has wire type varint"},
		{"hash key table as fixed32", frame(cat(valid, fraw(2, protowire.Fixed32Type, make([]byte, 4)))), "explicit_hash_key_table (2) has wire type fixed32"},
		{"records as varint", frame(cat(fs(1, "pk"), fv(3, 1))), "records (3) has wire type varint"},
		{"partition key index as bytes", frame(cat(fs(1, "pk"), fb(3, cat(fs(1, "0"), fs(3, "d"))))), "partition_key_index (1) has wire type bytes"},
		{"hash key index as fixed64", frame(cat(fs(1, "pk"), fs(2, "e"), fb(3, cat(fv(1, 0), fraw(2, protowire.Fixed64Type, make([]byte, 8)), fs(3, "d"))))), "explicit_hash_key_index (2) has wire type fixed64"},
		{"data as varint", frame(cat(fs(1, "pk"), fb(3, cat(fv(1, 0), fv(3, 1))))), "data (3) has wire type varint"},
		{"tags as varint", frame(cat(fs(1, "pk"), fb(3, cat(fv(1, 0), fs(3, "d"), fv(4, 1))))), "tags (4) has wire type varint"},
		{"partition key index out of range", frame(cat(fs(1, "pk"), fb(3, cat(fv(1, 1), fs(3, "d"))))), "partition_key_index 1 out of range"},
		{"partition key index huge", frame(cat(fs(1, "pk"), fb(3, cat(fv(1, 1<<63), fs(3, "d"))))), "out of range"},
		{"no partition key table", frame(fb(3, cat(fv(1, 0), fs(3, "d")))), "partition_key_index 0 out of range, table has 0"},
		{"hash key index out of range", frame(cat(fs(1, "pk"), fs(2, "e"), fb(3, cat(fv(1, 0), fv(2, 1), fs(3, "d"))))), "explicit_hash_key_index 1 out of range"},
		{"hash key index without table", frame(cat(fs(1, "pk"), fb(3, cat(fv(1, 0), fv(2, 0), fs(3, "d"))))), "explicit_hash_key_index 0 out of range, table has 0"},
		{"missing partition key index", frame(cat(fs(1, "pk"), fb(3, fs(3, "d")))), "missing required field partition_key_index"},
		{"missing data", frame(cat(fs(1, "pk"), fb(3, fv(1, 0)))), "missing required field data"},
		{"second record bad", frame(cat(valid, fb(3, fv(1, 0)))), "record 1: missing required field data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !IsAggregated(tc.data) {
				t.Fatal("test case is not framed as an aggregate")
			}
			recs, err := Deaggregate(tc.data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want one wrapping ErrCorrupt", err)
			}
			if errors.Is(err, ErrNotAggregated) {
				t.Errorf("err = %v also wraps ErrNotAggregated", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to mention %q", err, tc.want)
			}
			if recs != nil {
				t.Errorf("got %d records alongside the error, want none", len(recs))
			}
		})
	}
}

func TestDeaggregateNotAggregated(t *testing.T) {
	magic := []byte{0xF3, 0x89, 0x9A, 0xC2}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"plain json", []byte(`{"hello":"world","padding":"long enough for a digest"}`)},
		{"magic only", magic},
		{"magic and 15 bytes", cat(magic, make([]byte, 15))},
		{"near magic", cat([]byte{0xF3, 0x89, 0x9A, 0xC3}, make([]byte, 40))},
		{"magic not at start", cat([]byte{0}, frame(fs(1, "pk")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if IsAggregated(tc.data) {
				t.Error("IsAggregated = true")
			}
			recs, err := Deaggregate(tc.data)
			if !errors.Is(err, ErrNotAggregated) || recs != nil {
				t.Errorf("Deaggregate = %v, %v; want nil, ErrNotAggregated", recs, err)
			}
		})
	}
}

// TestDataCapped checks that appending to one record's Data cannot
// overwrite the input, which holds the next record right after it.
func TestDataCapped(t *testing.T) {
	data, err := Aggregate([]UserRecord{{PartitionKey: "k", Data: []byte("aa")}, {PartitionKey: "k", Data: []byte("bb")}})
	if err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(data)
	recs, err := Deaggregate(data)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(recs[0].Data, "XXXXXXXX"...)
	if !bytes.Equal(data, before) {
		t.Fatal("append to a record's Data changed the input")
	}
	// Data does alias the input, as documented.
	if &recs[1].Data[0] != &data[bytes.Index(data, []byte("bb"))] {
		t.Error("Data does not alias the input")
	}
}

func TestAggregateRejectsEmpty(t *testing.T) {
	if b, err := Aggregate(nil); err == nil {
		t.Fatalf("Aggregate(nil) = %x, nil; want an error", b)
	}
}

// TestDeaggregateAllocs pins the allocation contract: the result slice, the
// key table slice and one string per table entry.
func TestDeaggregateAllocs(t *testing.T) {
	recs := benchRecords(100, 100, 10)
	data, err := Aggregate(recs)
	if err != nil {
		t.Fatal(err)
	}
	const want = 1 + 1 + 10
	got := testing.AllocsPerRun(50, func() {
		if _, err := Deaggregate(data); err != nil {
			t.Fatal(err)
		}
	})
	if got > want {
		t.Errorf("Deaggregate of 100 records, 10 keys: %v allocs, want at most %d", got, want)
	}
}

// benchRecords makes n records of size bytes over keys distinct keys.
func benchRecords(n, size, keys int) []UserRecord {
	recs := make([]UserRecord, n)
	for i := range recs {
		recs[i] = UserRecord{
			PartitionKey: fmt.Sprintf("partition-key-%04d", i%keys),
			Data:         bytes.Repeat([]byte{byte('a' + i%26)}, size),
		}
	}
	return recs
}

func BenchmarkDeaggregate(b *testing.B) {
	data, err := Aggregate(benchRecords(100, 100, 10))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		recs, err := Deaggregate(data)
		if err != nil {
			b.Fatal(err)
		}
		n += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkAggregate(b *testing.B) {
	recs := benchRecords(100, 100, 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Aggregate(recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "records/s")
}
