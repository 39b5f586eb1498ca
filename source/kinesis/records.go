package kinesis

import (
	"log/slog"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/source/kinesis/kpl"
)

// Header keys the source puts on every record.
const (
	HeaderStream            = "kinesis.stream"
	HeaderStreamARN         = "kinesis.stream_arn"
	HeaderShardID           = "kinesis.shard_id"
	HeaderSequenceNumber    = "kinesis.sequence_number"
	HeaderSubSequenceNumber = "kinesis.sub_sequence_number" // only on de-aggregated user records
	HeaderExplicitHashKey   = "kinesis.explicit_hash_key"   // only when set
)

// compareSeq compares two Kinesis sequence numbers, which are unsigned decimal integers of up to
// 128 bits: the longer one is larger, equal lengths compare as strings.
func compareSeq(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// comparePos orders positions by sequence number, then sub-sequence number.
func comparePos(a, b runtime.Position) int {
	if c := compareSeq(a.Sequence, b.Sequence); c != 0 {
		return c
	}
	switch {
	case a.SubSequence < b.SubSequence:
		return -1
	case a.SubSequence > b.SubSequence:
		return 1
	}
	return 0
}

// converter turns Kinesis records of one shard into runtime records. It is owned by the shard
// reader's goroutine.
type converter struct {
	stream, streamARN, shard string
	deaggregate              bool
	log                      *slog.Logger
	met                      *shardMetrics

	// The stream, ARN and shard header values are the same for every record of the shard, so
	// all its records share one copy of each (header values are read-only downstream).
	streamB, streamARNB, shardB []byte
	// Headers and the per-record byte values (sequence number, partition key) are cut from
	// chunks rather than allocated one by one: a record costs no allocation of its own. A chunk
	// lives until its last record is released, which is soon, since records are released in
	// about the order they were read. Chunks are sized for the batch being converted (up to the
	// sizes below) and what is left of them is dropped at the end of the batch, so a reader
	// keeps none between events.
	hdrs  []runtime.Header
	bytes []byte
	// hdrChunk and bytesChunk are the chunk sizes for the batch being converted.
	hdrChunk, bytesChunk int
}

const (
	maxHeaderChunk = 4 * 256 // headers: 256 records' worth
	maxBytesChunk  = 16 << 10
	// chunkRecordBytes is about what a record's sequence number and partition key take.
	chunkRecordBytes = 96
)

// headers returns n zeroed headers of length 0 and capacity n, cut from the current chunk.
func (c *converter) headers(n int) []runtime.Header {
	if len(c.hdrs) < n {
		c.hdrs = make([]runtime.Header, max(c.hdrChunk, n))
	}
	h := c.hdrs[:0:n]
	c.hdrs = c.hdrs[n:]
	return h
}

// fixedBytes returns v as bytes whose capacity is their length, so that an append copies.
func fixedBytes(v string) []byte {
	b := []byte(v)
	return b[:len(b):len(b)]
}

// copyBytes returns a copy of v cut from the current chunk, with its capacity capped at its
// length so that an append can never write into a neighbour.
func (c *converter) copyBytes(v string) []byte {
	if len(v) > maxBytesChunk/4 {
		return []byte(v)
	}
	if cap(c.bytes)-len(c.bytes) < len(v) {
		c.bytes = make([]byte, 0, max(c.bytesChunk, len(v)))
	}
	start := len(c.bytes)
	c.bytes = append(c.bytes, v...)
	return c.bytes[start:len(c.bytes):len(c.bytes)]
}

// convert appends to out the records of recs that come after last, de-aggregating KPL
// aggregates, and returns out and the bytes of Kinesis data read.
//
// Records at or before last are dropped: that is how a resubscription AT_SEQUENCE_NUMBER of the
// last emitted record, or a restart inside a KPL aggregate, neither repeats nor skips a record.
func (c *converter) convert(out []runtime.Record, recs []types.Record, last runtime.Position) ([]runtime.Record, int64) {
	// Four headers a record (more for de-aggregated records, which take further chunks).
	c.hdrChunk = min(maxHeaderChunk, 4*len(recs))
	c.bytesChunk = min(maxBytesChunk, chunkRecordBytes*len(recs))
	defer func() { c.hdrs, c.bytes = nil, nil }()
	var n int64
	for i := range recs {
		kr := &recs[i]
		seq := aws.ToString(kr.SequenceNumber)
		n += int64(len(kr.Data))
		// Whole record already emitted, for a plain record or the last user record of an
		// aggregate alike: skip without decoding.
		if last.Sequence != "" && compareSeq(seq, last.Sequence) < 0 {
			continue
		}
		if c.deaggregate && kpl.IsAggregated(kr.Data) {
			users, err := kpl.Deaggregate(kr.Data)
			if err == nil {
				c.met.kplAggregates.Inc()
				c.met.kplUserRecords.Add(float64(len(users)))
				for _, u := range users {
					pos := runtime.Position{Sequence: seq, SubSequence: u.SubSequence}
					if !last.IsZero() && comparePos(pos, last) <= 0 {
						continue
					}
					out = append(out, c.record(kr, pos, c.copyBytes(u.PartitionKey), u.Data, u.ExplicitHashKey, true))
				}
				continue
			}
			// Never drop data: pass the aggregate through as it is, and say so.
			c.met.kplCorrupt.Inc()
			c.log.Warn("kinesis: corrupt KPL aggregate passed through raw",
				"sequence_number", seq, "error", err)
		}
		pos := runtime.Position{Sequence: seq}
		if !last.IsZero() && comparePos(pos, last) <= 0 {
			continue
		}
		out = append(out, c.record(kr, pos, c.copyBytes(aws.ToString(kr.PartitionKey)), kr.Data, "", false))
	}
	return out, n
}

func (c *converter) record(kr *types.Record, pos runtime.Position, key, value []byte, ehk string, sub bool) runtime.Record {
	if c.shardB == nil {
		c.streamB, c.streamARNB, c.shardB = fixedBytes(c.stream), fixedBytes(c.streamARN), fixedBytes(c.shard)
	}
	n := 4
	if sub {
		n++
	}
	if ehk != "" {
		n++
	}
	h := c.headers(n)
	h = append(h,
		runtime.Header{Key: HeaderStream, Value: c.streamB},
		runtime.Header{Key: HeaderStreamARN, Value: c.streamARNB},
		runtime.Header{Key: HeaderShardID, Value: c.shardB},
		runtime.Header{Key: HeaderSequenceNumber, Value: c.copyBytes(pos.Sequence)},
	)
	if sub {
		h = append(h, runtime.Header{Key: HeaderSubSequenceNumber, Value: strconv.AppendInt(nil, pos.SubSequence, 10)})
	}
	if ehk != "" {
		h = append(h, runtime.Header{Key: HeaderExplicitHashKey, Value: c.copyBytes(ehk)})
	}
	return runtime.Record{
		Key:       key,
		Value:     value,
		Timestamp: aws.ToTime(kr.ApproximateArrivalTimestamp),
		Headers:   h,
		Stream:    c.stream,
		Shard:     c.shard,
		Position:  pos,
	}
}
