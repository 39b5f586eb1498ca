package kafka

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shardbridge/shardbridge/runtime"
)

// recordBatchOverhead is the size of a Kafka v2 record batch header (RECORD_BATCH_OVERHEAD in
// Kafka's DefaultRecordBatch): base offset 8, length 4, leader epoch 4, magic 1, crc 4,
// attributes 2, last offset delta 4, first and max timestamp 8+8, producer id 8, producer epoch
// 2, base sequence 4, record count 4.
const recordBatchOverhead = 61

// recordBatchSize is the size of an uncompressed Kafka v2 record batch holding only this record:
// what a broker compares with max.message.bytes when the record is sent alone.
func recordBatchSize(r *runtime.Record) int64 {
	n := recordBody(r.Key, r.Value, len(r.Headers))
	for _, h := range r.Headers {
		n += headerLen(len(h.Key), len(h.Value))
	}
	return recordBatchOverhead + int64(varintLen(n)) + n
}

// kgoBatchSize is recordBatchSize for a franz-go record.
func kgoBatchSize(r *kgo.Record) int64 {
	n := recordBody(r.Key, r.Value, len(r.Headers))
	for _, h := range r.Headers {
		n += headerLen(len(h.Key), len(h.Value))
	}
	return recordBatchOverhead + int64(varintLen(n)) + n
}

// recordBody is a record's length field without headers' bodies: attributes (1), timestamp delta
// and offset delta (0 for a lone record: 1 byte each), key and value with their varint lengths
// (-1 for null), and the header count.
func recordBody(key, value []byte, nHeaders int) int64 {
	n := int64(1 + 1 + 1)
	n += bytesLen(key)
	n += bytesLen(value)
	n += int64(varintLen(int64(nHeaders)))
	return n
}

func bytesLen(b []byte) int64 {
	if b == nil {
		return int64(varintLen(-1))
	}
	return int64(varintLen(int64(len(b)))) + int64(len(b))
}

func headerLen(k, v int) int64 {
	return int64(varintLen(int64(k))) + int64(k) + int64(varintLen(int64(v))) + int64(v)
}

// varintLen is the length of v as a zig-zag varint, as Kafka encodes record fields.
func varintLen(v int64) int {
	u := uint64((v << 1) ^ (v >> 63))
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
