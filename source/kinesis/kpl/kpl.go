package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// Magic is the 4-byte prefix the KPL puts before every aggregate.
var Magic = [4]byte{0xF3, 0x89, 0x9A, 0xC2}

// digestLen is the length of the MD5 trailer.
const digestLen = md5.Size

// Field numbers of the published schema.
const (
	fieldPartitionKeyTable    protowire.Number = 1 // AggregatedRecord
	fieldExplicitHashKeyTable protowire.Number = 2 // AggregatedRecord
	fieldRecords              protowire.Number = 3 // AggregatedRecord

	fieldPartitionKeyIndex    protowire.Number = 1 // Record
	fieldExplicitHashKeyIndex protowire.Number = 2 // Record
	fieldData                 protowire.Number = 3 // Record
	fieldTags                 protowire.Number = 4 // Record
)

var (
	// ErrNotAggregated is returned by Deaggregate for data that is not a KPL
	// aggregate: it lacks the magic prefix or is too short for a digest.
	ErrNotAggregated = errors.New("kpl: not an aggregated record")
	// ErrCorrupt is wrapped by every error Deaggregate returns for data that
	// carries the magic prefix but cannot be decoded.
	ErrCorrupt = errors.New("kpl: corrupt aggregate")
)

// UserRecord is one user record inside an aggregate.
type UserRecord struct {
	// PartitionKey is the user record's own partition key.
	PartitionKey string
	// ExplicitHashKey is the user record's explicit hash key, or "" when it
	// has none.
	ExplicitHashKey string
	// Data is the user payload. After Deaggregate it aliases the input.
	Data []byte
	// SubSequence is the record's index in the aggregate, from 0. Aggregate
	// ignores it: the position in its input decides.
	SubSequence int64
}

// IsAggregated reports whether data starts with the KPL magic and is long
// enough to hold a digest. It does not check the digest or the protobuf body.
func IsAggregated(data []byte) bool {
	return len(data) >= len(Magic)+digestLen && bytes.HasPrefix(data, Magic[:])
}

// Deaggregate decodes an aggregate into its user records, in aggregate order.
//
// It returns ErrNotAggregated for data without the magic (see IsAggregated),
// and an error wrapping ErrCorrupt that says what is wrong for an aggregate
// that cannot be decoded; the package doc lists the cases. On error no
// records are returned.
//
// Each record's Data aliases data, capped at its own length; keys are shared
// between records that use the same table entry. Beyond the result slice it
// allocates one slice for the key tables and one string per table entry.
func Deaggregate(data []byte) ([]UserRecord, error) {
	if !IsAggregated(data) {
		return nil, ErrNotAggregated
	}
	pb := data[len(Magic) : len(data)-digestLen]
	if sum := md5.Sum(pb); !bytes.Equal(sum[:], data[len(data)-digestLen:]) {
		return nil, fmt.Errorf("digest mismatch: MD5 of %d protobuf bytes is %x, trailer says %x: %w",
			len(pb), sum, data[len(data)-digestLen:], ErrCorrupt)
	}

	// Protobuf allows fields in any order, so the tables may follow the
	// records that index them. Pass 1 checks the top-level framing and counts;
	// pass 2 fills the tables; pass 3 decodes the records against them. The
	// top-level scan is cheap: it reads tags and lengths, not payloads.
	var nPK, nEHK, nRec int
	for off := 0; off < len(pb); {
		f, n, err := consumeField(pb[off:])
		if err != nil {
			return nil, fmt.Errorf("aggregate at offset %d: %w", off, err)
		}
		off += n
		switch f.num {
		case fieldPartitionKeyTable:
			nPK++
			err = f.want(protowire.BytesType, "partition_key_table")
		case fieldExplicitHashKeyTable:
			nEHK++
			err = f.want(protowire.BytesType, "explicit_hash_key_table")
		case fieldRecords:
			nRec++
			err = f.want(protowire.BytesType, "records")
		}
		if err != nil {
			return nil, fmt.Errorf("aggregate: %w", err)
		}
	}
	if nRec == 0 {
		return nil, fmt.Errorf("aggregate holds no records: %w", ErrCorrupt)
	}

	// One allocation for both tables; each key is copied out once and shared.
	keys := make([]string, 0, nPK+nEHK)
	pkTable, ehkTable := keys[:0:nPK], keys[nPK:nPK:nPK+nEHK]
	for rest := pb; len(rest) > 0; {
		f, n, _ := consumeField(rest) // framing checked by pass 1
		rest = rest[n:]
		switch f.num {
		case fieldPartitionKeyTable:
			pkTable = append(pkTable, string(f.b))
		case fieldExplicitHashKeyTable:
			ehkTable = append(ehkTable, string(f.b))
		}
	}

	recs := make([]UserRecord, 0, nRec)
	for rest := pb; len(rest) > 0; {
		f, n, _ := consumeField(rest)
		rest = rest[n:]
		if f.num != fieldRecords {
			continue
		}
		r, err := decodeRecord(f.b, len(recs), pkTable, ehkTable)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// decodeRecord decodes the Record message b, the i-th in the aggregate.
func decodeRecord(b []byte, i int, pkTable, ehkTable []string) (UserRecord, error) {
	var (
		r                      = UserRecord{SubSequence: int64(i)}
		pkIdx, ehkIdx          uint64
		hasPK, hasEHK, hasData bool
	)
	for off := 0; off < len(b); {
		f, n, err := consumeField(b[off:])
		if err != nil {
			return UserRecord{}, fmt.Errorf("record %d at offset %d: %w", i, off, err)
		}
		off += n
		switch f.num {
		case fieldPartitionKeyIndex:
			err = f.want(protowire.VarintType, "partition_key_index")
			pkIdx, hasPK = f.v, true
		case fieldExplicitHashKeyIndex:
			err = f.want(protowire.VarintType, "explicit_hash_key_index")
			ehkIdx, hasEHK = f.v, true
		case fieldData:
			err = f.want(protowire.BytesType, "data")
			// Cap the slice so an append by the caller cannot overwrite the
			// bytes that follow it in the aggregate.
			r.Data, hasData = f.b[:len(f.b):len(f.b)], true
		case fieldTags:
			err = f.want(protowire.BytesType, "tags")
		}
		if err != nil {
			return UserRecord{}, fmt.Errorf("record %d: %w", i, err)
		}
	}
	switch {
	case !hasPK:
		return UserRecord{}, fmt.Errorf("record %d: missing required field partition_key_index: %w", i, ErrCorrupt)
	case !hasData:
		return UserRecord{}, fmt.Errorf("record %d: missing required field data: %w", i, ErrCorrupt)
	case pkIdx >= uint64(len(pkTable)):
		return UserRecord{}, fmt.Errorf("record %d: partition_key_index %d out of range, table has %d entries: %w",
			i, pkIdx, len(pkTable), ErrCorrupt)
	case hasEHK && ehkIdx >= uint64(len(ehkTable)):
		return UserRecord{}, fmt.Errorf("record %d: explicit_hash_key_index %d out of range, table has %d entries: %w",
			i, ehkIdx, len(ehkTable), ErrCorrupt)
	}
	r.PartitionKey = pkTable[pkIdx]
	if hasEHK {
		r.ExplicitHashKey = ehkTable[ehkIdx]
	}
	return r, nil
}

// field is one decoded field: v holds a varint value, b a length-delimited
// one; other wire types carry neither.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

// want returns a corrupt error unless f has wire type typ.
func (f field) want(typ protowire.Type, name string) error {
	if f.typ == typ {
		return nil
	}
	return fmt.Errorf("field %s (%d) has wire type %s, want %s: %w",
		name, f.num, wireTypeName(f.typ), wireTypeName(typ), ErrCorrupt)
}

// consumeField decodes the field at the start of b and returns it with its
// encoded length, or an error wrapping ErrCorrupt that says what is wrong.
func consumeField(b []byte) (field, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return field{}, 0, fmt.Errorf("tag: %v: %w", parseError(n), ErrCorrupt)
	}
	if !num.IsValid() {
		return field{}, 0, fmt.Errorf("tag: field number %d is invalid: %w", num, ErrCorrupt)
	}
	f := field{num: num, typ: typ}
	var m int
	switch typ {
	case protowire.VarintType:
		f.v, m = protowire.ConsumeVarint(b[n:])
	case protowire.BytesType:
		f.b, m = protowire.ConsumeBytes(b[n:])
	default:
		// Fixed32, fixed64 and groups are never used by the schema; skip
		// them per protobuf rules (a known field number with one of these
		// wire types is then rejected by want).
		m = protowire.ConsumeFieldValue(num, typ, b[n:])
	}
	if m < 0 {
		return field{}, 0, fmt.Errorf("field %d: %v: %w", num, parseError(m), ErrCorrupt)
	}
	return f, n + m, nil
}

// parseError turns a protowire error code into an error that says
// "truncated" for the common case of a field running past the end.
func parseError(code int) error {
	err := protowire.ParseError(code)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated")
	}
	return err
}

func wireTypeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "bytes"
	case protowire.StartGroupType:
		return "start-group"
	case protowire.EndGroupType:
		return "end-group"
	case protowire.Fixed32Type:
		return "fixed32"
	}
	return fmt.Sprintf("reserved(%d)", t)
}
