package runtime

import (
	"context"
	"fmt"
	"math"
	"time"
)

// DefaultDecodeBudget is the decode_budget default: 64 MiB, room for four or five full 2 MiB
// Kinesis events at once (each takes about 12 to 17 MiB to decode), which on 2 cores is more
// than can be decoded at the same moment anyway.
const DefaultDecodeBudget = 64 << 20

// DecodeBudget bounds the memory that sources spend on what they have read but not yet put in
// the pending pool: an event (or a response) read off the connection, the buffers the SDK
// decodes it into, and the records decoded from it. One budget is shared by every shard reader
// of the process, of every connector, so that this memory follows the work being decoded rather
// than the number of shards being read.
//
// A reader takes a share sized from what it is about to decode ([DecodeBudget.Acquire]) before it
// lets the SDK read it, and gives the share back ([DecodeShare.Release]) once the records are in
// the pool (or the read ended without them). Shares are handed out first in, first out, so a
// shard with a steady stream of events cannot starve one with a single event: it is the [Pool]'s
// queue, counting bytes (and reads, one per share). A share larger than the whole budget is cut
// to the budget, so it is admitted alone once nothing else is being decoded.
//
// A DecodeBudget is safe for concurrent use. The zero value is not usable; call
// [NewDecodeBudget].
type DecodeBudget struct {
	p     *Pool
	limit int64 // immutable
}

// NewDecodeBudget returns a budget of limit bytes (decode_budget; by default
// [DefaultDecodeBudget]). It panics if limit is below 1; config validation rejects such values
// before this point.
func NewDecodeBudget(limit int64) *DecodeBudget {
	if limit < 1 {
		panic(fmt.Sprintf("runtime: NewDecodeBudget(%d bytes): the limit must be at least 1", limit))
	}
	// Reads are counted in the pool's record dimension, which never binds.
	return &DecodeBudget{p: NewPool(math.MaxInt64, limit), limit: limit}
}

// DecodeShare is a part of a [DecodeBudget] that one read holds. The zero value holds nothing.
type DecodeShare struct {
	b *DecodeBudget
	n int64
}

// Bytes returns the bytes the share holds (0 when it holds nothing).
func (s DecodeShare) Bytes() int64 { return s.n }

// Held reports whether the share holds a part of a budget.
func (s DecodeShare) Held() bool { return s.b != nil }

// Release gives the share back to its budget and leaves s holding nothing. Releasing a share that
// holds nothing does nothing, so a reader may release on every path out of a read.
func (s *DecodeShare) Release() {
	if s.b == nil {
		return
	}
	s.b.p.Release(1, s.n)
	*s = DecodeShare{}
}

// Acquire waits until bytes fit in the budget and every reader queued before it has been served,
// and returns the share. bytes above the budget's limit are cut to the limit; negative bytes
// count as 0. It returns ctx.Err() (with a share that holds nothing) when ctx ends first; a ctx
// that has already ended fails at once, even when the share would fit.
func (b *DecodeBudget) Acquire(ctx context.Context, bytes int64) (DecodeShare, error) {
	n := min(max(bytes, 0), b.limit)
	if err := b.p.Acquire(ctx, 1, n); err != nil {
		return DecodeShare{}, err
	}
	return DecodeShare{b: b, n: n}, nil
}

// TryAcquire returns a share of bytes (cut and floored as by Acquire) and true if it fits right
// now and nobody is queued (it never overtakes a waiter); otherwise it holds nothing and returns
// false.
func (b *DecodeBudget) TryAcquire(bytes int64) (DecodeShare, bool) {
	n := min(max(bytes, 0), b.limit)
	if !b.p.TryAcquire(1, n) {
		return DecodeShare{}, false
	}
	return DecodeShare{b: b, n: n}, true
}

// DecodeBudgetStats is a snapshot of a [DecodeBudget], for metrics and tests.
type DecodeBudgetStats struct {
	// UsedBytes and LimitBytes are the bytes held now and the budget.
	UsedBytes, LimitBytes int64
	// Reads is the number of shares held now: reads being decoded.
	Reads int64
	// Waiters is the number of readers waiting for a share now.
	Waiters int
	// Waits is the cumulative number of Acquire calls that had to wait, and WaitTime the time
	// they waited, counted when each wait ends.
	Waits    int64
	WaitTime time.Duration
}

// Stats returns a consistent snapshot of the budget.
func (b *DecodeBudget) Stats() DecodeBudgetStats {
	s := b.p.Stats()
	return DecodeBudgetStats{UsedBytes: s.UsedBytes, LimitBytes: s.LimitBytes, Reads: s.UsedRecords,
		Waiters: s.Waiters, Waits: s.Waits, WaitTime: s.WaitTime}
}
