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
//
// A closed shard normally ends with an event whose ContinuationSequenceNumber is null. Some
// servers never send it: kinesis-mock (what LocalStack runs) keeps a subscription to a closed
// shard open, sending events with no records, and renews it every 5 minutes, so the reader would
// never end the shard and its children would wait for ever. So, step by step:
//
//  1. Discovery marks a shard closed when ListShards shows its EndingSequenceNumber (the value
//     itself is not used; kinesis-mock writes 9223372036854775807 there).
//  2. readSubscription counts r.quiet, the time spent waiting for events since the last new
//     record was emitted, on the source's clock. Waiting for pool space or for the decode
//     budget and emitting are outside that wait, so backpressure never counts as quiet.
//  3. Once the shard is marked closed, watchClosed wakes the reader every quarter of
//     closed_shard_quiet_period (with the source's wait), so a subscription that sends nothing
//     at all is looked at too; an event without new records is looked at as it arrives.
//  4. When the shard is marked closed and r.quiet reaches closed_shard_quiet_period, the reader
//     closes the subscription cleanly (reason closed_quiet) and reads the rest of the shard with
//     runPoll: GetShardIterator at startingPosition (the same rule as a resubscription), then
//     GetRecords at most 5 times a second, with the same emit path, backoff and error classes,
//     until GetRecords returns no next iterator. It then ends the shard as usual: EndShard, and
//     the children GetRecords named (ListShards is the backstop), which wait for the end
//     checkpoint.
//
// Against Kinesis the final event ends the shard first: a subscription at a closed shard's end
// gets it at once, and one behind keeps delivering records, which resets r.quiet.
func (r *shardReader) runEFO(ctx context.Context) error {
	s := r.run.s
	// The watch of step 3 is owned here and stops before runEFO returns.
	tick := make(chan struct{}, 1)
	wctx, cancelWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watchClosed(wctx, tick)
	}()
	stopWatch := func() {
		cancelWatch()
		<-watched
	}
	defer stopWatch()
	r.quietTick = tick
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
		gate := newReadGate(true)
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
		case errors.Is(rerr, errDecodeBudget):
			r.met.ended("decode_budget_timeout")
			delay, isBackoff = bo.next(), true
			r.log.Info("kinesis: decode budget taken past wait timeout, closed subscription", "retry_in", delay)
		case errors.Is(rerr, errClosedQuiet):
			r.met.ended("closed_quiet")
			stopWatch()
			return r.drainClosed(ctx)
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

// watchClosed sends on tick every quarter of closed_shard_quiet_period once ListShards shows
// the shard closed, until ctx ends (step 3 of runEFO). It waits with the source's wait, so tests
// control the time; a tick that finds one pending is dropped.
func (r *shardReader) watchClosed(ctx context.Context, tick chan<- struct{}) {
	select {
	case <-r.st.closedCh:
	case <-ctx.Done():
		return
	}
	step := r.run.s.cfg.ClosedShardQuietPeriod.D() / 4
	for r.run.s.wait(ctx, step) == nil {
		select {
		case tick <- struct{}{}:
		default:
		}
	}
}

// closedQuiet reports whether the shard is listed closed and the reader has waited for new
// records for closed_shard_quiet_period, counting waiting, the wait for the current event so far.
func (r *shardReader) closedQuiet(waiting time.Duration) bool {
	s := r.run.s
	return r.quiet+waiting >= s.cfg.ClosedShardQuietPeriod.D() && s.listedClosed(r.st)
}

// drainClosed confirms the end of a closed shard whose subscription went quiet (step 4 of
// runEFO): it reads what is left with GetRecords from the last position until the shard ends.
func (r *shardReader) drainClosed(ctx context.Context) error {
	s := r.run.s
	r.log.Info("kinesis: shard is closed and its subscription quiet; reading its end with GetRecords",
		"quiet", r.quiet, "closed_shard_quiet_period", s.cfg.ClosedShardQuietPeriod.D())
	return r.runPoll(ctx)
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
// errDecodeBudget, errIdle, errClosedQuiet, or the stream's error.
//
// Per event: wait for pool space, grant the gate a credit, wait for the event's first bytes (the
// gate reports its length), take the event's share of the decode budget and admit it, wait for
// the SDK to decode it, emit its records, and give the share back.
func (r *shardReader) readSubscription(ctx context.Context, stream *kinesis.SubscribeToShardEventStream, gate *readGate) (bool, error) {
	s := r.run.s
	events := stream.Events()
	delivered := false
	r.emitTimeout = s.poolWait
	defer func() { r.emitTimeout = 0 }()
	defer r.decode.Release()
	idle := time.NewTimer(s.cfg.IdleTimeout.D())
	defer idle.Stop()
	for {
		// The previous event's records are in the pool (or it had none).
		r.decode.Release()
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
		// The watchdog and r.quiet count only time spent waiting for an event, not for pool
		// space or the decode budget.
		idle.Reset(s.cfg.IdleTimeout.D())
		var ev types.SubscribeToShardEventStream
		var ok bool
		from := s.now()
	wait:
		for {
			select {
			case ev, ok = <-events:
				break wait
			case n := <-gate.arrived:
				// The event is arriving: take its share of the decode budget before the SDK
				// reads it, with the watchdog stopped.
				idle.Stop()
				began := s.now()
				if err := r.takeDecode(ctx, n, s.poolWait); err != nil {
					return delivered, err
				}
				from = from.Add(s.now().Sub(began))
				gate.admitted()
				idle.Reset(s.cfg.IdleTimeout.D())
			case <-idle.C:
				r.quiet += s.now().Sub(from)
				return delivered, errIdle
			case <-r.quietTick:
				if w := s.now().Sub(from); r.closedQuiet(w) {
					r.quiet += w
					return delivered, errClosedQuiet
				}
			case <-ctx.Done():
				return delivered, ctx.Err()
			}
		}
		waited := s.now().Sub(from)
		idle.Stop() // a fire that raced with the event is not delivered after Stop (Go 1.23 timers)
		if !ok {
			r.quiet += waited
			return delivered, stream.Err()
		}
		e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			r.quiet += waited
			continue // an event type this SDK version does not know; nothing to read from it
		}
		delivered = true
		before := r.last
		if err := r.handleEvent(ctx, &e.Value); err != nil {
			return delivered, err
		}
		if r.last != before {
			r.quiet = 0
			continue
		}
		// Nothing new: a heartbeat, or records emitted before (a resubscription's first).
		r.quiet += waited
		if r.closedQuiet(0) {
			return delivered, errClosedQuiet
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
