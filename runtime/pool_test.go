package runtime

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// goAcquire runs Acquire in a new goroutine and returns where its result arrives.
func goAcquire(ctx context.Context, p *Pool, records, bytes int64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.Acquire(ctx, records, bytes) }()
	return ch
}

// goWaitForSpace runs WaitForSpace in a new goroutine and returns where its result arrives.
func goWaitForSpace(ctx context.Context, p *Pool, timeout time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- p.WaitForSpace(ctx, timeout) }()
	return ch
}

// requireBlocked checks, inside a synctest bubble, that the call behind ch has not returned once
// every goroutine of the bubble is blocked.
func requireBlocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-ch:
		t.Fatalf("%s returned %v, want it still blocked", what, err)
	default:
	}
}

// requireDone checks, inside a synctest bubble, that the call behind ch has returned once every
// goroutine of the bubble is blocked, and returns its result.
func requireDone(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	synctest.Wait()
	select {
	case err := <-ch:
		return err
	default:
		t.Fatalf("%s is still blocked, want it returned", what)
		return nil
	}
}

func requireUsage(t *testing.T, p *Pool, records, bytes int64, waiters int) {
	t.Helper()
	s := p.Stats()
	if s.UsedRecords != records || s.UsedBytes != bytes || s.Waiters != waiters {
		t.Fatalf("stats: used %d records, %d bytes, %d waiters; want %d records, %d bytes, %d waiters",
			s.UsedRecords, s.UsedBytes, s.Waiters, records, bytes, waiters)
	}
}

// requirePanic runs f and checks that it panics with a message containing every one of want.
func requirePanic(t *testing.T, f func(), want ...string) {
	t.Helper()
	var got any
	func() {
		defer func() { got = recover() }()
		f()
	}()
	if got == nil {
		t.Fatalf("no panic, want one containing %q", want)
	}
	msg := fmt.Sprint(got)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("panic %q does not contain %q", msg, w)
		}
	}
}

func TestNewPoolRejectsLimitsBelowOne(t *testing.T) {
	for _, tc := range []struct{ records, bytes int64 }{{0, 1}, {1, 0}, {-1, 10}, {10, -5}} {
		requirePanic(t, func() { NewPool(tc.records, tc.bytes) }, fmt.Sprint(tc.records), fmt.Sprint(tc.bytes))
	}
	s := NewPool(3, 7).Stats()
	if s != (PoolStats{LimitRecords: 3, LimitBytes: 7}) {
		t.Fatalf("fresh pool stats %+v", s)
	}
}

// TestPoolLimits checks both limits with TryAcquire, and that Acquire blocks exactly when
// TryAcquire refuses.
func TestPoolLimits(t *testing.T) {
	type amount struct{ records, bytes int64 }
	tests := []struct {
		name   string
		held   []amount // acquired first, in order
		try    amount
		admits bool
	}{
		{"fits both", []amount{{4, 40}}, amount{6, 60}, true},
		{"fills both exactly", []amount{{9, 99}}, amount{1, 1}, true},
		{"records over, bytes fit", []amount{{9, 10}}, amount{2, 10}, false},
		{"bytes over, records fit", []amount{{1, 90}}, amount{1, 11}, false},
		{"records full, bytes free", []amount{{10, 0}}, amount{1, 0}, false},
		{"bytes full, records free", []amount{{0, 100}}, amount{0, 1}, false},
		{"zero amount on a full pool", []amount{{10, 100}}, amount{0, 0}, true},
		{"oversized records on an empty pool", nil, amount{11, 1}, true},
		{"oversized bytes on an empty pool", nil, amount{1, 101}, true},
		{"oversized in both on an empty pool", nil, amount{50, 5000}, true},
		{"oversized records on a nearly empty pool", []amount{{0, 1}}, amount{11, 1}, false},
		{"oversized bytes on a nearly empty pool", []amount{{1, 0}}, amount{1, 101}, false},
		{"anything behind an oversized amount", []amount{{1, 101}}, amount{0, 0}, false},
		{"records behind an oversized byte amount", []amount{{1, 101}}, amount{1, 0}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var heldR, heldB int64
			p := NewPool(10, 100)
			for _, h := range tc.held {
				if !p.TryAcquire(h.records, h.bytes) {
					t.Fatalf("setup: TryAcquire(%d, %d) refused", h.records, h.bytes)
				}
				heldR += h.records
				heldB += h.bytes
			}
			if got := p.TryAcquire(tc.try.records, tc.try.bytes); got != tc.admits {
				t.Fatalf("TryAcquire(%d, %d) = %v, want %v", tc.try.records, tc.try.bytes, got, tc.admits)
			}
			if tc.admits {
				requireUsage(t, p, heldR+tc.try.records, heldB+tc.try.bytes, 0)
				p.Release(tc.try.records, tc.try.bytes)
			}
			requireUsage(t, p, heldR, heldB, 0)

			// Acquire agrees with TryAcquire: it returns at once, or blocks until the held
			// amounts are released.
			synctest.Test(t, func(t *testing.T) {
				q := NewPool(10, 100)
				for _, h := range tc.held {
					if err := q.Acquire(t.Context(), h.records, h.bytes); err != nil {
						t.Fatalf("setup: Acquire: %v", err)
					}
				}
				ch := goAcquire(t.Context(), q, tc.try.records, tc.try.bytes)
				if !tc.admits {
					requireBlocked(t, ch, "Acquire")
					requireUsage(t, q, heldR, heldB, 1)
					for _, h := range tc.held {
						q.Release(h.records, h.bytes)
					}
				}
				if err := requireDone(t, ch, "Acquire"); err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				q.Release(tc.try.records, tc.try.bytes)
				if !tc.admits {
					requireUsage(t, q, 0, 0, 0)
				}
			})
		})
	}
}

func TestAcquireBlocksUntilRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(10, 1000)
		if err := p.Acquire(t.Context(), 8, 800); err != nil {
			t.Fatal(err)
		}
		ch := goAcquire(t.Context(), p, 5, 100)
		requireBlocked(t, ch, "Acquire(5, 100)")

		// Releasing too little in records keeps it blocked: both limits must hold.
		p.Release(1, 700)
		requireBlocked(t, ch, "Acquire(5, 100) after a partial release")
		requireUsage(t, p, 7, 100, 1)

		time.Sleep(3 * time.Second) // fake time inside the bubble: to see WaitTime count it
		p.Release(2, 0)
		if err := requireDone(t, ch, "Acquire(5, 100)"); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		requireUsage(t, p, 10, 200, 0)
		s := p.Stats()
		if s.Waits != 1 || s.WaitTime != 3*time.Second {
			t.Fatalf("Waits = %d, WaitTime = %v; want 1 and 3s", s.Waits, s.WaitTime)
		}
		p.Release(10, 200)
		requireUsage(t, p, 0, 0, 0)
	})
}

func TestWaitForSpace(t *testing.T) {
	tests := []struct {
		name          string
		heldR, heldB  int64
		timeout       time.Duration
		cancelAfter   time.Duration // 0: never
		deadlineAfter time.Duration // 0: none
		releaseAfter  time.Duration // 0: never
		want          error
		wantElapsed   time.Duration
	}{
		{name: "room at once", heldR: 9, heldB: 99, timeout: time.Second, want: nil},
		{name: "records full, times out", heldR: 10, heldB: 0, timeout: 5 * time.Second, want: ErrBackpressureTimeout, wantElapsed: 5 * time.Second},
		{name: "bytes full, times out", heldR: 0, heldB: 100, timeout: 5 * time.Second, want: ErrBackpressureTimeout, wantElapsed: 5 * time.Second},
		{name: "cancelled before the timeout", heldR: 10, timeout: 5 * time.Second, cancelAfter: 2 * time.Second, want: context.Canceled, wantElapsed: 2 * time.Second},
		{name: "ctx deadline before the timeout", heldR: 10, timeout: 5 * time.Second, deadlineAfter: time.Second, want: context.DeadlineExceeded, wantElapsed: time.Second},
		{name: "ctx deadline and timeout at once: ctx wins", heldR: 10, timeout: 5 * time.Second, deadlineAfter: 5 * time.Second, want: context.DeadlineExceeded, wantElapsed: 5 * time.Second},
		{name: "no timeout, cancelled", heldR: 10, timeout: 0, cancelAfter: time.Hour, want: context.Canceled, wantElapsed: time.Hour},
		{name: "negative timeout is none", heldB: 100, timeout: -time.Second, cancelAfter: time.Minute, want: context.Canceled, wantElapsed: time.Minute},
		{name: "release before the timeout", heldR: 10, heldB: 100, timeout: 5 * time.Second, releaseAfter: 4 * time.Second, want: nil, wantElapsed: 4 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := NewPool(10, 100)
				if !p.TryAcquire(tc.heldR, tc.heldB) {
					t.Fatal("setup: TryAcquire refused")
				}
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tc.deadlineAfter > 0 {
					var cancelDeadline context.CancelFunc
					ctx, cancelDeadline = context.WithTimeout(ctx, tc.deadlineAfter)
					defer cancelDeadline()
				}
				var wg sync.WaitGroup
				if tc.cancelAfter > 0 {
					wg.Go(func() {
						time.Sleep(tc.cancelAfter)
						cancel()
					})
				}
				if tc.releaseAfter > 0 {
					wg.Go(func() {
						time.Sleep(tc.releaseAfter)
						p.Release(1, 1)
					})
				}
				start := time.Now()
				err := p.WaitForSpace(ctx, tc.timeout)
				elapsed := time.Since(start)
				if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
					t.Fatalf("WaitForSpace = %v, want %v", err, tc.want)
				}
				if elapsed != tc.wantElapsed {
					t.Fatalf("WaitForSpace returned after %v, want %v", elapsed, tc.wantElapsed)
				}
				// The two failures must be distinguishable.
				if tc.want == ErrBackpressureTimeout && ctx.Err() != nil {
					t.Fatalf("timeout reported while ctx ended: %v", ctx.Err())
				}
				if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
					if errors.Is(err, ErrBackpressureTimeout) {
						t.Fatal("ctx error also matches ErrBackpressureTimeout")
					}
				}
				cancel()
				wg.Wait()
				// It reserved nothing and left no waiter behind.
				s := p.Stats()
				if s.Waiters != 0 {
					t.Fatalf("%d waiters left", s.Waiters)
				}
				if s.UsedRecords > tc.heldR || s.UsedBytes > tc.heldB {
					t.Fatalf("WaitForSpace reserved space: %+v", s)
				}
			})
		})
	}
}

func TestWaitForSpaceFailsAtOnceOnEndedContext(t *testing.T) {
	p := NewPool(10, 100)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.WaitForSpace(ctx, time.Second); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitForSpace on an ended ctx = %v, want context.Canceled", err)
	}
	if err := p.Acquire(ctx, 1, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire on an ended ctx = %v, want context.Canceled", err)
	}
	requireUsage(t, p, 0, 0, 0)
}

func TestAcquireCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(10, 100)
		if err := p.Acquire(t.Context(), 10, 10); err != nil {
			t.Fatal(err)
		}

		ctx, cancel := context.WithCancel(t.Context())
		ch := goAcquire(ctx, p, 1, 1)
		requireBlocked(t, ch, "Acquire")
		requireUsage(t, p, 10, 10, 1)
		cancel()
		if err := requireDone(t, ch, "cancelled Acquire"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Acquire = %v, want context.Canceled", err)
		}
		requireUsage(t, p, 10, 10, 0)

		dctx, dcancel := context.WithTimeout(t.Context(), 7*time.Second)
		defer dcancel()
		start := time.Now()
		err := p.Acquire(dctx, 1, 1)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrBackpressureTimeout) {
			t.Fatalf("Acquire past its ctx deadline = %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 7*time.Second {
			t.Fatalf("Acquire gave up after %v, want 7s", d)
		}
		requireUsage(t, p, 10, 10, 0)
		p.Release(10, 10)
		requireUsage(t, p, 0, 0, 0)
	})
}

func TestOversizedAmountIsAdmittedAloneWhenEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(10, 100)
		if err := p.Acquire(t.Context(), 1, 1); err != nil {
			t.Fatal(err)
		}
		big := goAcquire(t.Context(), p, 3, 500) // five times the byte limit
		requireBlocked(t, big, "oversized Acquire on a non-empty pool")

		p.Release(1, 1)
		if err := requireDone(t, big, "oversized Acquire on an empty pool"); err != nil {
			t.Fatal(err)
		}
		requireUsage(t, p, 3, 500, 0)

		// Nothing else gets in while it is held, not even a zero amount, and there is no room.
		small := goAcquire(t.Context(), p, 0, 0)
		space := goWaitForSpace(t.Context(), p, 0)
		requireBlocked(t, small, "Acquire behind an oversized amount")
		requireBlocked(t, space, "WaitForSpace behind an oversized amount")
		if p.TryAcquire(0, 0) {
			t.Fatal("TryAcquire admitted behind an oversized amount")
		}
		requireUsage(t, p, 3, 500, 2)

		p.Release(3, 500)
		if err := requireDone(t, small, "Acquire"); err != nil {
			t.Fatal(err)
		}
		if err := requireDone(t, space, "WaitForSpace"); err != nil {
			t.Fatal(err)
		}
		requireUsage(t, p, 0, 0, 0)
	})
}

func TestBigWaiterIsNotStarved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(10, 1000)
		if err := p.Acquire(t.Context(), 5, 0); err != nil {
			t.Fatal(err)
		}
		big := goAcquire(t.Context(), p, 10, 0)
		requireBlocked(t, big, "big Acquire")

		// A stream of small amounts that would fit must queue behind the big one.
		var smalls []<-chan error
		for i := range 5 {
			ch := goAcquire(t.Context(), p, 1, 0)
			requireBlocked(t, ch, fmt.Sprintf("small Acquire %d behind the big one", i))
			smalls = append(smalls, ch)
		}
		if p.TryAcquire(1, 0) {
			t.Fatal("TryAcquire overtook a queued waiter")
		}
		requireUsage(t, p, 5, 0, 6)

		p.Release(5, 0)
		if err := requireDone(t, big, "big Acquire"); err != nil {
			t.Fatal(err)
		}
		for i, ch := range smalls {
			requireBlocked(t, ch, fmt.Sprintf("small Acquire %d while the big one holds the pool", i))
		}
		requireUsage(t, p, 10, 0, 5)

		p.Release(10, 0)
		for i, ch := range smalls {
			if err := requireDone(t, ch, fmt.Sprintf("small Acquire %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		requireUsage(t, p, 5, 0, 0)
		p.Release(5, 0)
	})
}

func TestCancelledHeadWaiterUnblocksThoseBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(10, 1000)
		if err := p.Acquire(t.Context(), 8, 0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		head := goAcquire(ctx, p, 5, 0)
		requireBlocked(t, head, "head Acquire")
		behind := goAcquire(t.Context(), p, 2, 0) // fits, but queued behind the head
		requireBlocked(t, behind, "Acquire behind the head")
		space := goWaitForSpace(t.Context(), p, 0) // there is room, but an Acquire is ahead
		requireBlocked(t, space, "WaitForSpace behind queued Acquires")
		requireUsage(t, p, 8, 0, 3)

		// No Release happens: the head giving up alone must let the others through.
		cancel()
		if err := requireDone(t, head, "cancelled head"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled head = %v, want context.Canceled", err)
		}
		if err := requireDone(t, behind, "Acquire behind the cancelled head"); err != nil {
			t.Fatal(err)
		}
		// 8+2 fills the records: WaitForSpace now waits for room, not for a queued Acquire.
		requireBlocked(t, space, "WaitForSpace on a full pool")
		requireUsage(t, p, 10, 0, 1)
		p.Release(2, 0)
		if err := requireDone(t, space, "WaitForSpace"); err != nil {
			t.Fatal(err)
		}
		p.Release(8, 0)
		requireUsage(t, p, 0, 0, 0)
	})
}

func TestTimedOutHeadWaitForSpaceUnblocksThoseBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(10, 1000)
		if err := p.Acquire(t.Context(), 10, 0); err != nil {
			t.Fatal(err)
		}
		head := goWaitForSpace(t.Context(), p, time.Second)
		requireBlocked(t, head, "WaitForSpace")
		behind := goAcquire(t.Context(), p, 0, 10) // fits in bytes, queued behind
		requireBlocked(t, behind, "Acquire behind WaitForSpace")
		time.Sleep(time.Second)
		if err := requireDone(t, head, "WaitForSpace"); !errors.Is(err, ErrBackpressureTimeout) {
			t.Fatalf("WaitForSpace = %v, want ErrBackpressureTimeout", err)
		}
		if err := requireDone(t, behind, "Acquire behind a timed-out head"); err != nil {
			t.Fatal(err)
		}
		p.Release(10, 10)
		requireUsage(t, p, 0, 0, 0)
	})
}

// TestGrantRacingCancellationIsGivenBack drives the race where a waiter's ctx ends and, before the
// waiter takes the lock, a Release grants it. The waiter must give the grant back and wake the
// waiter behind it, or the space leaks.
func TestGrantRacingCancellationIsGivenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool(1, 100)
		if err := p.Acquire(t.Context(), 1, 1); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		first := goAcquire(ctx, p, 1, 1)
		requireBlocked(t, first, "first") // queued before second is started: first is the head
		second := goAcquire(t.Context(), p, 1, 1)
		requireBlocked(t, second, "second")

		// Holding the lock, end first's ctx (its select wakes on Done and then waits for the
		// lock), then grant it as Release would.
		p.mu.Lock()
		cancel()
		p.usedRecords, p.usedBytes = 0, 0
		p.notifyLocked()
		if p.usedRecords != 1 || p.queued != 1 {
			p.mu.Unlock()
			t.Fatalf("setup: the grant did not happen (used %d, queued %d)", p.usedRecords, p.queued)
		}
		p.mu.Unlock()

		if err := requireDone(t, first, "first"); !errors.Is(err, context.Canceled) {
			t.Fatalf("first = %v, want context.Canceled", err)
		}
		if err := requireDone(t, second, "second"); err != nil {
			t.Fatalf("second = %v: the grant given back did not wake it", err)
		}
		requireUsage(t, p, 1, 1, 0)
		p.Release(1, 1)
		requireUsage(t, p, 0, 0, 0)
	})
}

func TestReleaseBelowZeroPanics(t *testing.T) {
	p := NewPool(10, 100)
	if !p.TryAcquire(2, 20) {
		t.Fatal("setup: TryAcquire refused")
	}
	requirePanic(t, func() { p.Release(3, 1) }, "3 records", "1 bytes", "only 2 records and 20 bytes")
	requirePanic(t, func() { p.Release(1, 21) }, "1 records", "21 bytes")
	requirePanic(t, func() { p.Release(-1, 0) }, "-1 records", "negative")
	requirePanic(t, func() { _ = p.Acquire(t.Context(), 0, -5) }, "-5 bytes", "negative")
	requirePanic(t, func() { p.TryAcquire(-1, -1) }, "negative")
	// A refused Release changes nothing.
	requireUsage(t, p, 2, 20, 0)
	p.Release(2, 20)
	requireUsage(t, p, 0, 0, 0)
	requirePanic(t, func() { p.Release(1, 0) }, "1 records", "only 0 records")
}

func TestUncontendedAcquireReleaseDoesNotAllocate(t *testing.T) {
	p := NewPool(10, 100)
	ctx := t.Context()
	allocs := testing.AllocsPerRun(1000, func() {
		if err := p.Acquire(ctx, 3, 30); err != nil {
			t.Fatal(err)
		}
		if !p.TryAcquire(1, 1) {
			t.Fatal("TryAcquire refused")
		}
		if err := p.WaitForSpace(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		p.Release(4, 31)
	})
	if allocs != 0 {
		t.Fatalf("uncontended Acquire/TryAcquire/WaitForSpace/Release allocated %v times per run, want 0", allocs)
	}
}

// TestPoolConcurrentInvariant has many goroutines acquire and release random amounts, some
// oversized, some with contexts that end mid-wait. The test keeps its own count of what is held
// (added after a successful acquire, removed before the release), which is therefore never more
// than the pool has granted, and checks it against the limits after every acquire.
func TestPoolConcurrentInvariant(t *testing.T) {
	const (
		limitR, limitB = 100, 10_000
		workers        = 16
		iterations     = 1500
	)
	p := NewPool(limitR, limitB)
	// A leaked grant would leave the oversized amounts blocked for ever. This bound turns such a
	// hang into a failure that names the pool's state; it is far above the run's real duration.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var heldR, heldB atomic.Int64
	var granted, oversized, ctxEnded atomic.Int64

	check := func(r, b int64) {
		hr, hb := heldR.Add(r), heldB.Add(b)
		if r > limitR || b > limitB {
			oversized.Add(1)
			// Admitted alone: nobody else may hold anything.
			if hr != r || hb != b {
				t.Errorf("oversized (%d, %d) admitted while %d records and %d bytes were held in total", r, b, hr, hb)
			}
		} else if hr > limitR || hb > limitB {
			t.Errorf("held %d records and %d bytes, over the limits %d and %d", hr, hb, limitR, limitB)
		}
		if s := p.Stats(); s.UsedRecords < 0 || s.UsedBytes < 0 {
			t.Errorf("negative usage %+v", s)
		}
		granted.Add(1)
	}
	release := func(r, b int64) {
		heldR.Add(-r)
		heldB.Add(-b)
		p.Release(r, b)
	}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range iterations {
				r, b := rng.Int64N(30), rng.Int64N(3000)
				if rng.IntN(100) == 0 {
					if rng.IntN(2) == 0 {
						r = limitR + 1 + rng.Int64N(50)
					} else {
						b = limitB + 1 + rng.Int64N(5000)
					}
				}
				switch op := rng.IntN(10); {
				case op < 6:
					if err := p.Acquire(ctx, r, b); err != nil {
						t.Errorf("Acquire(%d, %d) stuck: %v; pool %+v", r, b, err, p.Stats())
						return
					}
				case op < 8:
					short, cancelShort := context.WithTimeout(ctx, time.Duration(rng.IntN(50))*time.Microsecond)
					err := p.Acquire(short, r, b)
					cancelShort()
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Errorf("Acquire = %v, want nil or DeadlineExceeded", err)
						}
						ctxEnded.Add(1)
						continue
					}
				case op < 9:
					if err := p.WaitForSpace(ctx, time.Duration(rng.IntN(50))*time.Microsecond); err != nil && !errors.Is(err, ErrBackpressureTimeout) {
						t.Errorf("WaitForSpace = %v, want nil or ErrBackpressureTimeout", err)
					}
					continue
				default:
					if !p.TryAcquire(r, b) {
						continue
					}
				}
				check(r, b)
				release(r, b)
			}
		})
	}
	wg.Wait()

	s := p.Stats()
	if s.UsedRecords != 0 || s.UsedBytes != 0 || s.Waiters != 0 {
		t.Fatalf("after all releases: %+v, want zero usage and no waiters", s)
	}
	if heldR.Load() != 0 || heldB.Load() != 0 {
		t.Fatalf("test bookkeeping off: %d records, %d bytes", heldR.Load(), heldB.Load())
	}
	// The run must have exercised what it claims to: contention and the oversized path.
	if s.Waits == 0 || oversized.Load() == 0 {
		t.Fatalf("no contention or no oversized grant: waits %d, oversized %d", s.Waits, oversized.Load())
	}
	t.Logf("granted %d, oversized %d, ctx ended %d, waits %d, total wait %v",
		granted.Load(), oversized.Load(), ctxEnded.Load(), s.Waits, s.WaitTime)
}
