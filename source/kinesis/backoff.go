package kinesis

import (
	"context"
	"math/rand/v2"
	"time"
)

// Retry pacing, as Kinesis asks of a consumer.
const (
	backoffMin = 300 * time.Millisecond
	backoffMax = 5 * time.Second
	// subscribeEvery is the least time between two SubscribeToShard calls for one shard: Kinesis
	// allows 1 call per second per consumer per shard.
	subscribeEvery = time.Second
	// inUseWait is the least wait after ResourceInUseException: a second subscription within
	// 5 s of the first is refused.
	inUseWait = 5 * time.Second
	// getRecordsEvery keeps a polling reader within 5 GetRecords calls per second per shard.
	getRecordsEvery = 200 * time.Millisecond
)

// backoff is exponential with jitter: each delay is the current step plus up to half of it,
// capped at max; the step doubles up to max. It is owned by one goroutine.
type backoff struct {
	min, max, cur time.Duration
	jitter        func(n int64) int64 // returns [0, n)
}

func newBackoff() *backoff {
	return &backoff{min: backoffMin, max: backoffMax, cur: backoffMin, jitter: rand.Int64N}
}

func (b *backoff) next() time.Duration {
	d := b.cur
	if half := int64(b.cur / 2); half > 0 {
		d += time.Duration(b.jitter(half))
	}
	b.cur = min(b.cur*2, b.max)
	return min(d, b.max)
}

func (b *backoff) reset() { b.cur = b.min }

// realWait waits d or until ctx ends. It is the default of WithWait.
func realWait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
