package kinesistest

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
)

// encodedSize estimates the JSON size of recs, to size buffers once.
func encodedSize(recs []record) int {
	n := 2
	for i := range recs {
		n += base64.StdEncoding.EncodedLen(len(recs[i].data)) + len(recs[i].pk) + 160
	}
	return n
}

// appendRecords appends recs, which start at index first of sh, as a JSON
// array of Kinesis Record objects. It is hand-written because encoding/json
// with reflection was the bottleneck of GetRecords and SubscribeToShard.
func appendRecords(b []byte, sh *shard, first int, recs []record) []byte {
	b = append(b, '[')
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"ApproximateArrivalTimestamp":`...)
		b = appendEpochMillis(b, r.arrival)
		b = append(b, `,"Data":"`...)
		b = base64.StdEncoding.AppendEncode(b, r.data)
		b = append(b, `","EncryptionType":"NONE","PartitionKey":`...)
		b = appendJSONString(b, r.pk)
		b = append(b, `,"SequenceNumber":"`...)
		b = sh.appendSeq(b, uint64(first+i+1))
		b = append(b, `"}`...)
	}
	return append(b, ']')
}

// appendEpochMillis appends unix nanoseconds as seconds with millisecond
// precision, e.g. 1732582700.123.
func appendEpochMillis(b []byte, nanos int64) []byte {
	ms := nanos / 1e6
	b = strconv.AppendInt(b, ms/1000, 10)
	frac := ms % 1000
	if frac < 0 {
		frac = -frac
	}
	return append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendJSONString appends s as a JSON string, with a fast path for the
// common printable-ASCII partition key.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendChildShards appends the ChildShards array. It reads only shard
// fields that never change.
func appendChildShards(b []byte, children []*shard) []byte {
	b = append(b, '[')
	for i, c := range children {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"HashKeyRange":{"EndingHashKey":"`...)
		b = append(b, c.end.String()...)
		b = append(b, `","StartingHashKey":"`...)
		b = append(b, c.start.String()...)
		b = append(b, `"},"ParentShards":["`...)
		b = append(b, c.parent...)
		if c.adjacentParent != "" {
			b = append(b, `","`...)
			b = append(b, c.adjacentParent...)
		}
		b = append(b, `"],"ShardId":"`...)
		b = append(b, c.id...)
		b = append(b, `"}`...)
	}
	return append(b, ']')
}
