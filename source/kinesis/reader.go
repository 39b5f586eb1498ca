package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/runtime"
)

// shardReader reads one shard. It is owned by one goroutine; only the shardState it shares
// with ShardReport is locked (by Source.mu).
type shardReader struct {
	run  *run
	st   *shardState
	log  *slog.Logger
	met  *shardMetrics
	conv converter
	// child is true when the shard has a parent this source read or checkpointed: with no
	// checkpoint of its own it starts at TRIM_HORIZON, because its parents were read to their
	// end and every record of the child comes after them.
	child bool

	// last is the position of the last record emitted, or the checkpoint's. Zero before either.
	last runtime.Position
	// cont is the ContinuationSequenceNumber of the last event handled; used only while no
	// record has been emitted (see startingPosition).
	cont string
	// firstAttempt is when the first read was attempted; latest turns into AT_TIMESTAMP of it on
	// a retry, so a retry never skips what arrived meanwhile.
	firstAttempt time.Time
	// children are the shards the final event named.
	children []types.ChildShard
	// quiet is how long the EFO reader has waited for events since it last emitted a new record
	// (or started), on the source's clock. Waits for pool space, Emit and the pauses between
	// subscriptions do not count. See runEFO.
	quiet time.Duration
	// quietTick wakes readSubscription to look at quiet while the shard is listed closed (see
	// watchClosed); nil when polling.
	quietTick <-chan struct{}
	// emitTimeout bounds the pool wait inside Emit while a subscription is open (0: unbounded).
	// WaitForSpace only waits for room for one record; an event may need more, and the reader
	// must not hold a subscription open past pool.wait_timeout either way.
	emitTimeout time.Duration
	// decode is the reader's share of the decode budget, held from before the SDK reads an event
	// (or a GetRecords response) until its records are in the pool; at most one at a time.
	decode runtime.DecodeShare
}

// takeDecode waits for a share of the decode budget for a read of length bytes (see
// decodeShare), and holds it in r.decode. While it waits, the shard's state is decode_wait and
// the wait counts in shardbridge_kinesis_decode_wait_seconds_total (on the wall clock, like the
// pool's wait time). timeout > 0 bounds the wait (an open subscription must not idle past
// pool.wait_timeout), and passing it returns errDecodeBudget.
func (r *shardReader) takeDecode(ctx context.Context, length int64, timeout time.Duration) error {
	s := r.run.s
	r.decode.Release() // one read at a time
	n := decodeShare(length, s.cfg.MaxRecords)
	if sh, ok := s.budget.TryAcquire(n); ok {
		r.decode = sh
		return nil
	}
	actx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		actx, cancel = context.WithTimeoutCause(ctx, timeout, errDecodeBudget)
		defer cancel()
	}
	prev := s.swapState(r.st, StateDecodeWait)
	start := time.Now()
	sh, err := s.budget.Acquire(actx, n)
	r.met.decodeWait.Add(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), errDecodeBudget) {
			return errDecodeBudget
		}
		return err
	}
	s.setState(r.st, prev)
	r.decode = sh
	return nil
}

// startingPosition is where the next subscription or iterator starts. The rule, in order:
//
//  1. A record was emitted (or a checkpoint loaded): AT_SEQUENCE_NUMBER of its sequence number,
//     and convert drops every user record at or before it. AT rather than AFTER because a
//     checkpoint may lie inside a KPL aggregate, whose remaining user records share the
//     sequence number; and AT plus the drop is right whatever an emulator means by the
//     continuation number, so it never skips and never repeats.
//  2. No record yet, but an event gave a continuation number: AFTER_SEQUENCE_NUMBER of it, as
//     Kinesis documents (this moves an idle reader on without re-reading history).
//  3. Nothing yet: a child starts at TRIM_HORIZON; other shards at the configured start
//     position, except that latest becomes AT_TIMESTAMP of the first attempt once one was made,
//     so a retry is never LATEST.
func (r *shardReader) startingPosition() (typ types.ShardIteratorType, seq string, ts *time.Time) {
	switch {
	case r.last.Sequence != "":
		return types.ShardIteratorTypeAtSequenceNumber, r.last.Sequence, nil
	case r.cont != "":
		return types.ShardIteratorTypeAfterSequenceNumber, r.cont, nil
	case r.child:
		return types.ShardIteratorTypeTrimHorizon, "", nil
	}
	cfg := &r.run.s.cfg
	switch cfg.StartPosition {
	case StartAtTimestamp:
		t := cfg.startTime()
		return types.ShardIteratorTypeAtTimestamp, "", &t
	case StartLatest:
		if r.firstAttempt.IsZero() {
			r.firstAttempt = r.run.s.now()
			return types.ShardIteratorTypeLatest, "", nil
		}
		t := r.firstAttempt
		return types.ShardIteratorTypeAtTimestamp, "", &t
	}
	return types.ShardIteratorTypeTrimHorizon, "", nil
}

// emit hands one batch of Kinesis records to the pipeline, in order, once.
func (r *shardReader) emit(ctx context.Context, recs []types.Record) error {
	if len(recs) == 0 {
		return nil
	}
	out, n := r.conv.convert(make([]runtime.Record, 0, len(recs)), recs, r.last)
	r.met.bytesRead.Add(float64(n))
	if len(out) == 0 {
		return nil
	}
	lastPos := out[len(out)-1].Position
	ectx := ctx
	if r.emitTimeout > 0 {
		var cancel context.CancelFunc
		ectx, cancel = context.WithTimeoutCause(ctx, r.emitTimeout, runtime.ErrBackpressureTimeout)
		defer cancel()
	}
	if err := r.run.e.Emit(ectx, r.st.id, out); err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(ectx), runtime.ErrBackpressureTimeout) {
			// Nothing of the event was registered: the next subscription starts at r.last and
			// reads it again.
			return errBackpressure
		}
		return fmt.Errorf("emit shard %s: %w", r.st.id, err)
	}
	r.last = lastPos
	r.met.recordsRead.Add(float64(len(out)))
	r.run.s.update(r.st, func(st *shardState) { st.records += int64(len(out)) })
	return nil
}

// end records the shard's end with the pipeline.
func (r *shardReader) end(ctx context.Context, children []types.ChildShard) error {
	if err := r.run.e.EndShard(ctx, r.st.id); err != nil {
		return fmt.Errorf("end shard %s: %w", r.st.id, err)
	}
	r.children = children
	return errShardEnded
}

// notFound handles ResourceNotFound from a shard call: when the stream (and, with EFO, the
// consumer) still exist, the shard has gone (passed retention), which is its end; otherwise
// the error is fatal.
func (r *shardReader) notFound(ctx context.Context, cause error) error {
	s := r.run.s
	_, err := r.run.api.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{
		StreamName: r.run.streamName(), StreamARN: r.run.streamARNParam(),
	})
	if err != nil && errorCode(err) == "ResourceNotFoundException" {
		return &FatalError{Stream: s.Stream(), Shard: r.st.id, Fix: fatalFix(err), Err: fmt.Errorf("stream was deleted: %w", cause)}
	}
	if err == nil && r.run.consumerARN != "" {
		_, cerr := r.run.api.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(r.run.consumerARN)})
		if cerr != nil && errorCode(cerr) == "ResourceNotFoundException" {
			return &FatalError{Stream: s.Stream(), Shard: r.st.id,
				Fix: "the EFO consumer was deregistered while in use; restart to register it again",
				Err: fmt.Errorf("efo consumer %s: %w", r.run.consumerARN, cause)}
		}
		err = cerr
	}
	if err != nil {
		// Could not tell; treat the original error as transient.
		return cause
	}
	r.log.Warn("kinesis: shard not found, treating it as ended", "error", cause)
	return r.end(ctx, nil)
}

// fail turns an error of a shard call into what the reader does next: nil to retry after delay,
// or an error to return (fatal, canceled, or errShardEnded).
func (r *shardReader) fail(ctx context.Context, err error, bo *backoff) (time.Duration, error) {
	r.run.s.update(r.st, func(st *shardState) { st.lastErr = err.Error() })
	switch classify(ctx, err) {
	case classCanceled:
		return 0, ctx.Err()
	case classFatal:
		return 0, &FatalError{Stream: r.run.s.Stream(), Shard: r.st.id, Fix: fatalFix(err), Err: err}
	case classNotFound:
		if e := r.notFound(ctx, err); e != err {
			return 0, e
		}
	case classInUse:
		return max(inUseWait, bo.next()), nil
	}
	return bo.next(), nil
}

// pause waits d, reporting the wait as backoff when it is one.
func (r *shardReader) pause(ctx context.Context, d time.Duration, backoff bool) error {
	if d <= 0 {
		return ctx.Err()
	}
	if backoff {
		r.run.s.setState(r.st, StateBackoff)
		r.met.backoffSeconds.Observe(d.Seconds())
	}
	return r.run.s.wait(ctx, d)
}

// errBackpressure ends a subscription whose reader waited for pool space past the timeout.
var errBackpressure = errors.New("pool stayed full past the wait timeout")

// errDecodeBudget ends a subscription whose reader waited for its share of the decode budget
// past the pool wait timeout.
var errDecodeBudget = errors.New("decode budget stayed taken past the wait timeout")

// errIdle ends a subscription that delivered nothing for idle_timeout.
var errIdle = errors.New("subscription delivered nothing within idle_timeout")

// errClosedQuiet ends the subscription of a shard that ListShards shows closed and that has
// delivered no new record for closed_shard_quiet_period.
var errClosedQuiet = errors.New("shard is listed closed and its subscription delivered nothing new within closed_shard_quiet_period")
