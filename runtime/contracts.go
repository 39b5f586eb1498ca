package runtime

import (
	"context"
	"errors"
	"time"
)

// Source reads records from upstream and hands them to the pipeline through an [Emitter].
//
// Run owns every goroutine it starts and returns only after they have all ended. It returns nil
// once ctx is done, or an error when the source cannot go on (a fatal error: the stream does not
// exist, access is denied, the config is wrong). Retryable upstream errors are the source's own
// business: it retries them itself and never returns them.
type Source interface {
	// Stream names what the source reads (for Kinesis, the stream name). It is part of every
	// checkpoint key, so that checkpoints of one stream never apply to another.
	Stream() string
	Run(ctx context.Context, e Emitter) error
}

// Emitter is the source's view of the pipeline. All methods are safe for concurrent use by the
// source's shard readers; each shard must be emitted from one goroutine at a time, in shard order.
type Emitter interface {
	// WaitForSpace blocks until the pending pool has room and the connector is not paused. It
	// returns ErrBackpressureTimeout when timeout (> 0) passes first, and ctx.Err() when ctx ends.
	// A reader calls it before it reads the next batch from upstream; timeout <= 0 waits forever,
	// which suits a reader that holds no upstream connection yet.
	WaitForSpace(ctx context.Context, timeout time.Duration) error
	// Emit acquires pool space for recs (blocking until it fits), registers their positions and
	// hands them to the sink. recs must all belong to shard, in shard order. An error means ctx
	// ended while waiting for the pool or the connector is stopping; no record of recs is then
	// registered, and the reader may read them again. A nil return means every record was
	// registered and belongs to the pipeline: its outcome, a sink failure included, is decided by
	// its ack and the error policy, never by reading it again.
	Emit(ctx context.Context, shard string, recs []Record) error
	// EndShard records that the shard has been read to its end. The end becomes a checkpoint once
	// every record emitted for the shard has been acknowledged.
	EndShard(ctx context.Context, shard string) error
	// Resume returns the shard's checkpoint as loaded when the connector started, if any. A reader
	// resumes after Mark.Position, or skips the shard when Mark.End is set.
	Resume(shard string) (Mark, bool)
	// WaitEnded blocks until the shard's end has been written to the checkpoint store (or was
	// already there at start). Readers of child shards wait on their parents with it.
	WaitEnded(ctx context.Context, shard string) error
}

// AckFunc reports the outcome of one record. err == nil means the record is durable downstream.
// err != nil means it failed for good (the sink's own retries are exhausted, or the record can never
// be delivered, such as one over the size limit); the connector's ErrorPolicy decides what follows.
// An AckFunc never blocks, so it may be called from a produce promise.
type AckFunc func(rec *Record, err error)

// Sink writes records downstream.
type Sink interface {
	// Write hands the records of one shard, in shard order, to the sink. It may return before they
	// are durable. The sink calls ack exactly once for every record in recs, from any goroutine,
	// even when Write returns an error. The sink keeps order per record key, and must not block for
	// delivery except to bound its own buffers. ctx bounds only that wait: a record the sink has
	// accepted must not fail because ctx ends later (the pipeline cancels its read context on
	// shutdown and then drains what is in flight).
	Write(ctx context.Context, recs []Record, ack AckFunc) error
	// Flush returns once every record written before the call has been acked, or ctx ends.
	Flush(ctx context.Context) error
	// Close releases the sink's resources. Records not yet acked are acked with an error.
	Close(ctx context.Context) error
}

// DeadLetterWriter is an optional ability of a Sink: it parks a record that failed for good, with
// its cause, so the connector can go on (errors.policy dlq). It returns once the dead letter is
// durable. It is called from a goroutine the pipeline owns, never from a produce promise.
type DeadLetterWriter interface {
	WriteDeadLetter(ctx context.Context, rec *Record, cause error) error
}

// Transactor is the optional ability of a Sink to deliver exactly once: the records written
// since the last Commit or Abort become visible together with the checkpoints that cover them,
// in one transaction, or not at all. The pipeline uses it under DeliveryExactlyOnce.
type Transactor interface {
	// Commit ends the transaction. It lets no Write hand over records meanwhile, waits until
	// every record written so far has been acked, then calls marks for the checkpoints that
	// cover them (an error from marks aborts), writes those in the same transaction and commits
	// it. fence, when set, ties the commit to this worker's membership in its group (KIP-447): a
	// worker the group no longer counts as a member cannot commit. Whatever the outcome, a new
	// transaction is open for the next Write when Commit returns.
	//
	// nil means the records and the checkpoints are durable and visible. An error wrapping
	// ErrFenced means another writer took over the transactional id: nothing may be written any
	// more. Any other error means the transaction was aborted: none of it is visible.
	Commit(ctx context.Context, marks func() ([]Checkpoint, error), fence *Lease) error
	// Abort aborts the transaction: nothing written since the last Commit becomes visible, and
	// a new transaction is open. The caller stops writing first.
	Abort(ctx context.Context) error
}

// Errors of exactly-once delivery.
var (
	// ErrFenced marks an error of a writer that another writer has fenced off: a process with
	// the same transactional id started (and so took over the connector, or this worker). The
	// connector stops; it never retries its way past a fence. (A worker that its group counts
	// out is refused its commit too; that only aborts the transaction, and the worker goes on
	// with what the group gives it after it rejoins.)
	ErrFenced = errors.New("fenced: another writer took over")
	// ErrAbortTransaction marks the ack error of a record whose produce failed inside a
	// transaction: the transaction can only be aborted, and its records are read again.
	ErrAbortTransaction = errors.New("the transaction must be aborted")
)

// Delivery is a connector's delivery guarantee.
type Delivery string

const (
	// DeliveryAtLeastOnce checkpoints what Kafka acknowledged; a crash sends what was
	// acknowledged after the last checkpoint again.
	DeliveryAtLeastOnce Delivery = "at_least_once"
	// DeliveryExactlyOnce writes records and the checkpoints that cover them in one Kafka
	// transaction (the sink must be a Transactor); read_committed consumers see each record
	// once.
	DeliveryExactlyOnce Delivery = "exactly_once"
)

// Mark is a checkpoint's content: the highest contiguous acknowledged position of a shard, and
// whether the shard has been read and acknowledged to its end.
type Mark struct {
	Position Position `json:"position"`
	End      bool     `json:"end"`
}

// Owner identifies the writer of a checkpoint. Epoch grows with every start of a connector, so a
// store can fence a stale writer once several workers share a connector.
type Owner struct {
	ID    string `json:"id"`
	Epoch int64  `json:"epoch"`
}

// Checkpoint is one shard's mark as stored.
type Checkpoint struct {
	Connector string    `json:"connector"`
	Stream    string    `json:"stream"`
	Shard     string    `json:"shard"`
	Mark      Mark      `json:"mark"`
	Owner     Owner     `json:"owner"`
	Written   time.Time `json:"written"`
}

// CheckpointStore keeps checkpoints durably.
type CheckpointStore interface {
	// Load returns the latest checkpoint of every shard of the connector's stream.
	Load(ctx context.Context, connector, stream string) ([]Checkpoint, error)
	// Commit writes checkpoints and returns once they are durable. A Commit that returns an error
	// may have written some of them; the pipeline writes them again later.
	Commit(ctx context.Context, cps []Checkpoint) error
}

// ErrorPolicy says what happens to a record that failed for good.
type ErrorPolicy string

const (
	// PolicyFail stops the connector. No checkpoint passes the record, so a restart sends it again.
	PolicyFail ErrorPolicy = "fail"
	// PolicyDLQ writes the record to the sink's dead-letter destination, then counts it as done.
	PolicyDLQ ErrorPolicy = "dlq"
	// PolicySkip logs and counts the record, then counts it as done.
	PolicySkip ErrorPolicy = "skip"
)
