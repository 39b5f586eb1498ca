package kpl

import (
	"crypto/md5"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// Aggregate encodes recs as one KPL aggregate: magic, protobuf body and MD5
// trailer, the same format Deaggregate reads. Equal keys share one table
// entry, as the KPL does; an empty ExplicitHashKey is left out. SubSequence
// is ignored: a record's position in recs becomes its sub-sequence.
//
// It exists for tests, benchmarks and sample data; it does not enforce
// Kinesis limits such as the 1 MiB record size. It returns an error for zero
// records, because Deaggregate rejects such an aggregate as corrupt.
func Aggregate(recs []UserRecord) ([]byte, error) {
	if len(recs) == 0 {
		return nil, errors.New("kpl: aggregate needs at least one record")
	}

	type indices struct{ pk, ehk uint64 }
	var (
		pkIndex  = make(map[string]uint64)
		ehkIndex = make(map[string]uint64)
		pkTable  []string
		ehkTable []string
		idx      = make([]indices, len(recs))
	)
	for i, r := range recs {
		pk, ok := pkIndex[r.PartitionKey]
		if !ok {
			pk = uint64(len(pkTable))
			pkIndex[r.PartitionKey] = pk
			pkTable = append(pkTable, r.PartitionKey)
		}
		idx[i].pk = pk
		if r.ExplicitHashKey == "" {
			continue
		}
		ehk, ok := ehkIndex[r.ExplicitHashKey]
		if !ok {
			ehk = uint64(len(ehkTable))
			ehkIndex[r.ExplicitHashKey] = ehk
			ehkTable = append(ehkTable, r.ExplicitHashKey)
		}
		idx[i].ehk = ehk
	}

	// Size the output exactly so it is built in one allocation.
	recordSize := func(i int) int {
		n := protowire.SizeTag(fieldPartitionKeyIndex) + protowire.SizeVarint(idx[i].pk)
		if recs[i].ExplicitHashKey != "" {
			n += protowire.SizeTag(fieldExplicitHashKeyIndex) + protowire.SizeVarint(idx[i].ehk)
		}
		return n + protowire.SizeTag(fieldData) + protowire.SizeBytes(len(recs[i].Data))
	}
	size := len(Magic) + digestLen
	for _, k := range pkTable {
		size += protowire.SizeTag(fieldPartitionKeyTable) + protowire.SizeBytes(len(k))
	}
	for _, k := range ehkTable {
		size += protowire.SizeTag(fieldExplicitHashKeyTable) + protowire.SizeBytes(len(k))
	}
	for i := range recs {
		size += protowire.SizeTag(fieldRecords) + protowire.SizeBytes(recordSize(i))
	}

	out := make([]byte, 0, size)
	out = append(out, Magic[:]...)
	for _, k := range pkTable {
		out = protowire.AppendTag(out, fieldPartitionKeyTable, protowire.BytesType)
		out = protowire.AppendString(out, k)
	}
	for _, k := range ehkTable {
		out = protowire.AppendTag(out, fieldExplicitHashKeyTable, protowire.BytesType)
		out = protowire.AppendString(out, k)
	}
	for i, r := range recs {
		out = protowire.AppendTag(out, fieldRecords, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(recordSize(i)))
		out = protowire.AppendTag(out, fieldPartitionKeyIndex, protowire.VarintType)
		out = protowire.AppendVarint(out, idx[i].pk)
		if r.ExplicitHashKey != "" {
			out = protowire.AppendTag(out, fieldExplicitHashKeyIndex, protowire.VarintType)
			out = protowire.AppendVarint(out, idx[i].ehk)
		}
		out = protowire.AppendTag(out, fieldData, protowire.BytesType)
		out = protowire.AppendBytes(out, r.Data)
	}
	sum := md5.Sum(out[len(Magic):])
	return append(out, sum[:]...), nil
}
