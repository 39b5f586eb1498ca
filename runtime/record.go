package runtime

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Position is a record's place in its shard: the Kinesis sequence number and, for a record
// de-aggregated from a KPL aggregate, its sub-sequence number (0 otherwise).
type Position struct {
	Sequence    string `json:"sequence_number"`
	SubSequence int64  `json:"sub_sequence_number"`
}

// IsZero reports whether p names no record.
func (p Position) IsZero() bool { return p.Sequence == "" && p.SubSequence == 0 }

func (p Position) String() string {
	if p.SubSequence == 0 {
		return p.Sequence
	}
	return fmt.Sprintf("%s/%d", p.Sequence, p.SubSequence)
}

// Header is one record header, as a Kafka header. Its Value is read-only: a source may share one
// value between records (the Kinesis source shares the stream and shard names).
type Header struct {
	Key   string
	Value []byte
}

// Record is one record on its way from a source to a sink. A source fills the exported fields; the
// pipeline fills the bookkeeping when the record is emitted. After Emit the record belongs to the
// pipeline and the sink: the source must not touch it or the slice that holds it again.
type Record struct {
	Key       []byte
	Value     []byte
	Timestamp time.Time
	// Headers travel with the record unchanged. Sources put their metadata here (for Kinesis:
	// kinesis.stream, kinesis.shard_id, kinesis.sequence_number, ...).
	Headers []Header
	// Stream and Shard name where the record came from. Sinks use them in topic templates.
	Stream string
	Shard  string
	// Position is the record's place in its shard; checkpoints are made of positions.
	Position Position

	// Set by the pipeline in Emit.
	size    int64
	ticket  Ticket
	track   *ShardTracker
	conn    *Connector
	pending *atomic.Int64 // the shard's pending bytes, for status
}

// Size is what the record counts for in the pool's byte limit: key, value and header bytes.
// Once the record is emitted it returns the figure Emit counted, without touching the headers
// again (a sink that asks on acknowledgement would otherwise fault them back into the cache).
func (r *Record) Size() int64 {
	if r.size > 0 {
		return r.size
	}
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}
