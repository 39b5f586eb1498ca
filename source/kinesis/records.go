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
}

// convert appends to out the records of recs that come after last, de-aggregating KPL
// aggregates, and returns out and the bytes of Kinesis data read.
//
// Records at or before last are dropped: that is how a resubscription AT_SEQUENCE_NUMBER of the
// last emitted record, or a restart inside a KPL aggregate, neither repeats nor skips a record.
func (c *converter) convert(out []runtime.Record, recs []types.Record, last runtime.Position) ([]runtime.Record, int64) {
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
					out = append(out, c.record(kr, pos, []byte(u.PartitionKey), u.Data, u.ExplicitHashKey, true))
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
		out = append(out, c.record(kr, pos, []byte(aws.ToString(kr.PartitionKey)), kr.Data, "", false))
	}
	return out, n
}

func (c *converter) record(kr *types.Record, pos runtime.Position, key, value []byte, ehk string, sub bool) runtime.Record {
	h := make([]runtime.Header, 0, 6)
	h = append(h,
		runtime.Header{Key: HeaderStream, Value: []byte(c.stream)},
		runtime.Header{Key: HeaderStreamARN, Value: []byte(c.streamARN)},
		runtime.Header{Key: HeaderShardID, Value: []byte(c.shard)},
		runtime.Header{Key: HeaderSequenceNumber, Value: []byte(pos.Sequence)},
	)
	if sub {
		h = append(h, runtime.Header{Key: HeaderSubSequenceNumber, Value: []byte(strconv.FormatInt(pos.SubSequence, 10))})
	}
	if ehk != "" {
		h = append(h, runtime.Header{Key: HeaderExplicitHashKey, Value: []byte(ehk)})
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
