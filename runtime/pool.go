package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBackpressureTimeout is returned by [Pool.WaitForSpace] when the pool stayed full for the whole
// wait timeout. A shard reader that gets it should close its upstream subscription cleanly and
// reopen it later from its last position, rather than hold an idle connection open.
var ErrBackpressureTimeout = errors.New("runtime: pending pool stayed full past the wait timeout")

// Pool is the global pending pool: it bounds the records that have been read from a source but not
// yet acknowledged by a sink, in count and in bytes, across every shard of every connector. Both
// limits hold at once.
//
// Space is taken with [Pool.Acquire] or [Pool.TryAcquire] and given back with [Pool.Release] once
// the sink has acknowledged the records (or a failure has ended them). Every amount acquired must
// be released exactly once.
//
// Waiters are served first in, first out: an Acquire that does not fit waits, and everything queued
// behind it waits too, even amounts that would fit. So a large amount at the head of the queue is
// never starved by a stream of small ones.
//
// An amount larger than the whole pool (in either dimension) would never fit. Rather than livelock,
// it is admitted alone once the pool is completely empty (no records and no bytes in use). While it
// is held the usage exceeds the limit by exactly that one amount and nothing else is admitted.
//
// A Pool is safe for concurrent use. The zero value is not usable; call [NewPool].
type Pool struct {
	limitRecords int64 // immutable after NewPool
	limitBytes   int64 // immutable after NewPool

	// mu guards everything below.
	mu          sync.Mutex
	usedRecords int64
	usedBytes   int64
	// head and tail are the FIFO queue of blocked callers, linked through poolWaiter.next/prev.
	head, tail *poolWaiter
	queued     int
	waits      int64
	waitTime   time.Duration
}

// poolWaiter is one blocked caller of Acquire or WaitForSpace. It is allocated only when a caller
// has to block, so the uncontended path allocates nothing.
type poolWaiter struct {
	// records and bytes are the amount an Acquire waits for. For a WaitForSpace waiter (space is
	// true) they are unused: it waits for room and reserves nothing.
	records, bytes int64
	space          bool
	// ready is closed, under Pool.mu, when the waiter is granted and unlinked from the queue.
	// For an Acquire waiter the amount has been added to the usage by then.
	ready      chan struct{}
	next, prev *poolWaiter
}

// PoolStats is a snapshot of a [Pool], for metrics and tests.
type PoolStats struct {
	UsedRecords, LimitRecords, UsedBytes, LimitBytes int64
	// Waiters is the number of goroutines blocked in WaitForSpace or Acquire right now.
	Waiters int
	// Waits is the cumulative number of WaitForSpace and Acquire calls that had to block.
	Waits int64
	// WaitTime is the cumulative time those calls spent blocked, counted when each wait ends.
	WaitTime time.Duration
}

// NewPool returns an empty pool that holds at most maxRecords records and maxBytes bytes at once.
// The limits come from pool.max_pending_records and pool.max_pending_bytes (by default 50000 and
// 64MiB); NewPool itself has no defaults. It panics if either limit is below 1; config validation
// rejects such values before this point, so reaching the panic is a bug.
func NewPool(maxRecords, maxBytes int64) *Pool {
	if maxRecords < 1 || maxBytes < 1 {
		panic(fmt.Sprintf("runtime: NewPool(%d records, %d bytes): both limits must be at least 1", maxRecords, maxBytes))
	}
	return &Pool{limitRecords: maxRecords, limitBytes: maxBytes}
}

// WaitForSpace blocks until the pool has room for at least one more record and one more byte
// (usage below the limit in both dimensions) and no Acquire is queued ahead of the caller. It
// reserves nothing: the room it saw may be taken by the time the caller acts, so callers still
// Acquire what they read. Its purpose is to keep a shard reader from pulling more from upstream
// while the pool is full.
//
// It returns nil when there is room, [ErrBackpressureTimeout] when timeout passes first (timeout <= 0
// means no timeout), and ctx.Err() when ctx ends first. Ties go to ctx, so a caller that is shutting
// down does not mistake its own cancellation for backpressure: if ctx has a deadline at or before
// the timeout, only ctx ends the wait; if the timeout fires after ctx has ended, ctx.Err() is
// returned. A ctx that has already ended fails at once, even when there is room.
func (p *Pool) WaitForSpace(ctx context.Context, timeout time.Duration) error {
	done := ctx.Done()
	p.mu.Lock()
	select {
	case <-done:
		p.mu.Unlock()
		return ctx.Err()
	default:
	}
	if p.head == nil && p.hasRoomLocked() {
		p.mu.Unlock()
		return nil
	}
	w := &poolWaiter{space: true, ready: make(chan struct{})}
	start := p.enqueueLocked(w)
	p.mu.Unlock()

	var expired <-chan time.Time
	// A ctx deadline at or before the timeout makes the timer pointless, and skipping it makes the
	// tie deterministic: ctx.Done alone ends the wait, so a caller whose ctx deadline equals the
	// timeout gets ctx.Err(), not ErrBackpressureTimeout.
	if dl, ok := ctx.Deadline(); timeout > 0 && (!ok || dl.After(start.Add(timeout))) {
		// time.NewTimer rather than time.After so the timer is stopped as soon as the wait ends, and
		// so testing/synctest can drive it.
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		expired = timer.C
	}

	select {
	case <-w.ready:
		p.finishWait(start)
		return nil
	case <-done:
		p.abandon(w, start)
		return ctx.Err()
	case <-expired:
		p.abandon(w, start)
		if err := ctx.Err(); err != nil {
			return err
		}
		return ErrBackpressureTimeout
	}
}

// Acquire blocks until records and bytes fit in the pool and every caller queued before it has been
// served, then adds them to the usage. The caller must [Pool.Release] the same amounts exactly once.
// Amounts of zero are allowed; negative amounts panic.
//
// An amount larger than the pool's limit in either dimension is admitted alone, once the pool is
// completely empty (see [Pool]).
//
// It returns nil when the amount is held, and ctx.Err() when ctx ends first; on error nothing is
// held. A ctx that has already ended fails at once, even when the amount fits. If ctx ends at the
// moment the amount is granted, Acquire either returns nil holding the amount, or gives the amount
// back (waking the waiters behind it) and returns ctx.Err(); it never returns an error while
// holding space.
//
// When the amount fits at once, Acquire does not allocate.
func (p *Pool) Acquire(ctx context.Context, records, bytes int64) error {
	checkAmount("Acquire", records, bytes)
	done := ctx.Done()
	p.mu.Lock()
	select {
	case <-done:
		p.mu.Unlock()
		return ctx.Err()
	default:
	}
	if p.head == nil && p.fitsLocked(records, bytes) {
		p.usedRecords += records
		p.usedBytes += bytes
		p.mu.Unlock()
		return nil
	}
	w := &poolWaiter{records: records, bytes: bytes, ready: make(chan struct{})}
	start := p.enqueueLocked(w)
	p.mu.Unlock()

	select {
	case <-w.ready:
		p.finishWait(start)
		return nil
	case <-done:
		p.abandon(w, start)
		return ctx.Err()
	}
}

// TryAcquire adds records and bytes to the usage and returns true if they fit right now and nobody
// is queued (it never overtakes a waiter); otherwise it changes nothing and returns false. An amount
// larger than the pool is admitted only when the pool is empty, as with [Pool.Acquire]. Negative
// amounts panic.
func (p *Pool) TryAcquire(records, bytes int64) bool {
	checkAmount("TryAcquire", records, bytes)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head != nil || !p.fitsLocked(records, bytes) {
		return false
	}
	p.usedRecords += records
	p.usedBytes += bytes
	return true
}

// Release gives back records and bytes that were acquired, and wakes the waiters that now fit, in
// queue order. Releasing more than is in use, or a negative amount, is a bug in the caller: Release
// panics with a message naming the amounts, and leaves the pool unchanged.
func (p *Pool) Release(records, bytes int64) {
	checkAmount("Release", records, bytes)
	p.mu.Lock()
	if records > p.usedRecords || bytes > p.usedBytes {
		usedR, usedB := p.usedRecords, p.usedBytes
		p.mu.Unlock()
		panic(fmt.Sprintf("runtime: Pool.Release(%d records, %d bytes) with only %d records and %d bytes in use: released more than was acquired",
			records, bytes, usedR, usedB))
	}
	p.usedRecords -= records
	p.usedBytes -= bytes
	p.notifyLocked()
	p.mu.Unlock()
}

// Stats returns a consistent snapshot of the pool.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{
		UsedRecords:  p.usedRecords,
		LimitRecords: p.limitRecords,
		UsedBytes:    p.usedBytes,
		LimitBytes:   p.limitBytes,
		Waiters:      p.queued,
		Waits:        p.waits,
		WaitTime:     p.waitTime,
	}
}

func checkAmount(op string, records, bytes int64) {
	if records < 0 || bytes < 0 {
		panic(fmt.Sprintf("runtime: Pool.%s(%d records, %d bytes): amounts must not be negative", op, records, bytes))
	}
}

// fitsLocked reports whether an amount may be added to the usage now. An empty pool admits any
// amount, which is what lets an oversized amount through alone.
func (p *Pool) fitsLocked(records, bytes int64) bool {
	if p.usedRecords == 0 && p.usedBytes == 0 {
		return true
	}
	return p.usedRecords+records <= p.limitRecords && p.usedBytes+bytes <= p.limitBytes
}

// hasRoomLocked reports whether one more record and one more byte would fit.
func (p *Pool) hasRoomLocked() bool {
	return p.usedRecords < p.limitRecords && p.usedBytes < p.limitBytes
}

// enqueueLocked appends w to the queue and returns when the wait started.
func (p *Pool) enqueueLocked(w *poolWaiter) time.Time {
	w.prev = p.tail
	if p.tail == nil {
		p.head = w
	} else {
		p.tail.next = w
	}
	p.tail = w
	p.queued++
	p.waits++
	return time.Now()
}

func (p *Pool) unlinkLocked(w *poolWaiter) {
	if w.prev == nil {
		p.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		p.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.next, w.prev = nil, nil
	p.queued--
}

// notifyLocked grants waiters from the head of the queue for as long as they are satisfied, and
// stops at the first one that is not: that is what makes the queue FIFO and keeps a large head
// from being starved.
func (p *Pool) notifyLocked() {
	for w := p.head; w != nil; w = p.head {
		if w.space {
			if !p.hasRoomLocked() {
				return
			}
		} else {
			if !p.fitsLocked(w.records, w.bytes) {
				return
			}
			p.usedRecords += w.records
			p.usedBytes += w.bytes
		}
		p.unlinkLocked(w)
		close(w.ready)
	}
}

func (p *Pool) finishWait(start time.Time) {
	d := time.Since(start)
	p.mu.Lock()
	p.waitTime += d
	p.mu.Unlock()
}

// abandon ends the wait of a caller whose ctx ended or whose timeout passed.
//
// The race it resolves: the caller's select chose ctx.Done (or the timer), but between that and
// taking p.mu a Release may have granted w (unlinked it, added its amount to the usage and closed
// ready). Checking ready under the lock tells the two cases apart:
//   - granted: the amount (if any) is given back and the queue re-checked, since the space the grant
//     consumed may now satisfy the waiters behind w. Without this the amount would leak.
//   - not granted: w is unlinked. If it was the head, the waiters behind it may fit now (a head that
//     did not fit was blocking them), so the queue is re-checked; otherwise no wake-up is lost.
func (p *Pool) abandon(w *poolWaiter, start time.Time) {
	d := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waitTime += d
	select {
	case <-w.ready:
		if !w.space {
			p.usedRecords -= w.records
			p.usedBytes -= w.bytes
		}
		p.notifyLocked()
	default:
		wasHead := p.head == w
		p.unlinkLocked(w)
		if wasHead {
			p.notifyLocked()
		}
	}
}
