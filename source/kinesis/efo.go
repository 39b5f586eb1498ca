package kinesis

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"

	"github.com/shardbridge/shardbridge/runtime"
)

// runEFO reads the shard with SubscribeToShard until it ends (errShardEnded), ctx ends, or a
// fatal error. It owns its retries: every transient error is retried here, after backoff, from
// the last position.
func (r *shardReader) runEFO(ctx context.Context) error {
	s := r.run.s
	bo := newBackoff()
	var lastCall time.Time
	var delay time.Duration
	isBackoff := false
	for {
		// Never more than one call per second per shard, whatever the backoff says.
		if !lastCall.IsZero() {
			delay = max(delay, lastCall.Add(subscribeEvery).Sub(s.now()))
		}
		if err := r.pause(ctx, delay, isBackoff); err != nil {
			return err
		}
		// No connection is held yet, so waiting for space has no deadline.
		s.setState(r.st, StateBackpressure)
		if err := r.run.e.WaitForSpace(ctx, 0); err != nil {
			return err
		}
		s.setState(r.st, StateSubscribing)
		typ, seq, ts := r.startingPosition()
		pos := &types.StartingPosition{Type: typ, Timestamp: ts}
		if seq != "" {
			pos.SequenceNumber = aws.String(seq)
		}
		lastCall = s.now()
		gate := newReadGate()
		out, err := r.run.api.SubscribeToShard(withReadGate(ctx, gate), &kinesis.SubscribeToShardInput{
			ConsumerARN: aws.String(r.run.consumerARN), ShardId: aws.String(r.st.id), StartingPosition: pos,
		}, ownEventStreamCodec)
		if err != nil {
			var stop error
			if delay, stop = r.fail(ctx, err, bo); stop != nil {
				return stop
			}
			isBackoff = true
			r.log.Debug("kinesis: subscribe failed, retrying", "error", err, "retry_in", delay)
			continue
		}
		r.met.subsOpened.Inc()
		s.update(r.st, func(st *shardState) { st.subStart = s.now(); st.state = StateReading })
		stream := out.GetStream()
		delivered, rerr := r.readSubscription(ctx, stream, gate)
		// Close is clean: it stops the SDK's reader goroutine and the HTTP/2 stream.
		_ = stream.Close()
		if delivered {
			bo.reset()
		}
		delay, isBackoff = 0, false
		switch {
		case rerr == nil:
			// The subscription's lifetime ended (5 minutes on AWS): resubscribe at once, still
			// at most once a second, at the continuation point.
			if delivered {
				r.met.ended("expired")
				continue
			}
			// A stream that ends with no events at all is a transient failure.
			r.met.ended("empty")
			delay, isBackoff = bo.next(), true
		case errors.Is(rerr, errShardEnded):
			r.met.ended("shard_end")
			return rerr
		case errors.Is(rerr, errBackpressure):
			r.met.ended("backpressure_timeout")
			delay, isBackoff = bo.next(), true
			r.log.Info("kinesis: pool full past wait timeout, closed subscription", "retry_in", delay)
		case errors.Is(rerr, errIdle):
			r.met.ended("idle")
			delay, isBackoff = bo.next(), true
			r.log.Warn("kinesis: subscription idle, closed it", "idle_timeout", s.cfg.IdleTimeout.D())
		case ctx.Err() != nil:
			r.met.ended("canceled")
			return ctx.Err()
		default:
			r.met.ended(reasonOf(rerr))
			var err error
			if delay, err = r.fail(ctx, rerr, bo); err != nil {
				return err
			}
			isBackoff = true
			r.log.Info("kinesis: subscription failed, resubscribing", "error", rerr, "retry_in", delay)
		}
	}
}

// ownEventStreamCodec gives one SubscribeToShard call its own protocol instance.
//
// aws-sdk-go-v2's schema-based Kinesis client (service/kinesis v1.56, smithy-go v1.28) keeps a
// single event-stream codec per client, with one decoder and one payload buffer, and uses it for
// the initial response and for every event of every subscription. Subscriptions of different
// shards read concurrently, so they would race on that buffer and could hand one shard's bytes
// to another (go test -race shows it). A protocol per call gives each stream its own codec; it
// costs one small allocation per subscription.
func ownEventStreamCodec(o *kinesis.Options) {
	o.Protocol = awsjson.New11(schemas.Kinesis_20131202)
}

// readSubscription reads events until the subscription ends. It returns whether any event
// arrived, and why it ended: nil for a clean end of the stream, errShardEnded, errBackpressure,
// errIdle, or the stream's error.
func (r *shardReader) readSubscription(ctx context.Context, stream *kinesis.SubscribeToShardEventStream, gate *readGate) (bool, error) {
	s := r.run.s
	events := stream.Events()
	delivered := false
	r.emitTimeout = s.poolWait
	defer func() { r.emitTimeout = 0 }()
	idle := time.NewTimer(s.cfg.IdleTimeout.D())
	defer idle.Stop()
	for {
		// Wait for room before reading the next event, bounded so that a subscription is never
		// held open (and buffered) indefinitely while the pool is full.
		s.setState(r.st, StateBackpressure)
		if err := r.run.e.WaitForSpace(ctx, s.poolWait); err != nil {
			if errors.Is(err, runtime.ErrBackpressureTimeout) {
				return delivered, errBackpressure
			}
			return delivered, err
		}
		s.setState(r.st, StateReading)
		// Only now may the SDK read the next event off the connection.
		gate.grant()
		// The watchdog counts only time spent waiting for an event, not for pool space.
		idle.Reset(s.cfg.IdleTimeout.D())
		var ev types.SubscribeToShardEventStream
		var ok bool
		select {
		case ev, ok = <-events:
		case <-idle.C:
			return delivered, errIdle
		case <-ctx.Done():
			return delivered, ctx.Err()
		}
		if !idle.Stop() {
			select { // drain a fire that raced with the event
			case <-idle.C:
			default:
			}
		}
		if !ok {
			return delivered, stream.Err()
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			continue // an event type this SDK version does not know; nothing to read from it
		}
		delivered = true
		if err := r.handleEvent(ctx, &e.Value); err != nil {
			return delivered, err
		}
	}
}

// handleEvent emits one event's records and records its progress.
func (r *shardReader) handleEvent(ctx context.Context, ev *types.SubscribeToShardEvent) error {
	if ev.MillisBehindLatest != nil {
		mb := *ev.MillisBehindLatest
		r.met.millisBehind.Set(float64(mb))
		r.run.s.update(r.st, func(st *shardState) { st.millisBehind = mb })
	}
	if err := r.emit(ctx, ev.Records); err != nil {
		return err
	}
	if ev.ContinuationSequenceNumber == nil {
		// A null continuation number means the shard is closed and fully delivered.
		return r.end(ctx, ev.ChildShards)
	}
	r.cont = *ev.ContinuationSequenceNumber
	return nil
}
