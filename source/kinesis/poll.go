package kinesis

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// runPoll reads the shard with GetShardIterator and GetRecords (efo.enabled: false), under the
// same pool, lineage and position rules as runEFO. Each GetRecords response takes its share of
// the decode budget once its length is known and before the SDK reads it (see decodeMeter), and
// gives it back once its records are in the pool.
func (r *shardReader) runPoll(ctx context.Context) error {
	s := r.run.s
	defer r.decode.Release()
	// Polling holds no connection between calls, so the wait for the budget has no deadline.
	meter := &decodeMeter{admit: func(ctx context.Context, length int64) error { return r.takeDecode(ctx, length, 0) }}
	bo := newBackoff()
	iter := ""
	var lastCall time.Time
	var delay time.Duration
	isBackoff := false
	for {
		// At most 5 GetRecords calls per second per shard.
		if !lastCall.IsZero() {
			delay = max(delay, lastCall.Add(getRecordsEvery).Sub(s.now()))
		}
		if err := r.pause(ctx, delay, isBackoff); err != nil {
			return err
		}
		delay, isBackoff = 0, false
		// Polling holds no connection between calls, so the wait has no deadline. An iterator
		// that expires meanwhile is renewed below.
		s.setState(r.st, StateBackpressure)
		if err := r.run.e.WaitForSpace(ctx, 0); err != nil {
			return err
		}
		if iter == "" {
			s.setState(r.st, StateSubscribing)
			typ, seq, ts := r.startingPosition()
			in := &kinesis.GetShardIteratorInput{
				StreamName: r.run.streamName(), StreamARN: r.run.streamARNParam(),
				ShardId: aws.String(r.st.id), ShardIteratorType: typ, Timestamp: ts,
			}
			if seq != "" {
				in.StartingSequenceNumber = aws.String(seq)
			}
			out, err := r.run.api.GetShardIterator(ctx, in)
			if err != nil {
				var stop error
				if delay, stop = r.fail(ctx, err, bo); stop != nil {
					return stop
				}
				isBackoff = true
				continue
			}
			iter = aws.ToString(out.ShardIterator)
			s.update(r.st, func(st *shardState) { st.subStart = s.now() })
		}
		s.setState(r.st, StateReading)
		lastCall = s.now()
		out, err := r.run.api.GetRecords(withDecodeMeter(ctx, meter), &kinesis.GetRecordsInput{
			ShardIterator: aws.String(iter), Limit: aws.Int32(int32(s.cfg.MaxRecords)),
			StreamARN: r.run.streamARNParam(),
		})
		if err != nil {
			r.decode.Release()
			if classify(ctx, err) == classExpiredIterator {
				iter = "" // renew from the last position at once
				continue
			}
			var stop error
			if delay, stop = r.fail(ctx, err, bo); stop != nil {
				return stop
			}
			isBackoff = true
			continue
		}
		bo.reset()
		if out.MillisBehindLatest != nil {
			mb := *out.MillisBehindLatest
			r.met.millisBehind.Set(float64(mb))
			s.update(r.st, func(st *shardState) { st.millisBehind = mb })
		}
		if err := r.emit(ctx, out.Records); err != nil {
			return err
		}
		r.decode.Release() // the records are in the pool
		if out.NextShardIterator == nil {
			// A closed shard read to its end.
			return r.end(ctx, out.ChildShards)
		}
		iter = *out.NextShardIterator
		if len(out.Records) == 0 {
			// Caught up: poll_interval between empty reads.
			if err := realWait(ctx, s.cfg.PollInterval.D()); err != nil {
				return err
			}
		}
	}
}
