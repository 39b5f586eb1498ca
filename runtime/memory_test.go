package runtime_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
)

// The limit is 2 x pool bytes + pool records x RecordOverhead + decode budget + held + base, set
// before Govern returns, and followed as held changes.
func TestMemoryBudgetFollowsHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var held atomic.Int64
		b := runtime.MemoryBudget{PoolBytes: 10, PoolRecords: 2, Decode: 1000, Base: 100, Held: held.Load}
		var mu sync.Mutex
		var sets []int64
		set := func(n int64) int64 {
			mu.Lock()
			sets = append(sets, n)
			mu.Unlock()
			return 0
		}
		got := func() []int64 {
			mu.Lock()
			defer mu.Unlock()
			return append([]int64(nil), sets...)
		}
		follow := b.Govern(set, slog.New(slog.NewTextHandler(io.Discard, nil)))
		const base = 2*10 + 2*runtime.RecordOverhead + 1000 + 100
		if s := got(); len(s) != 1 || s[0] != base {
			t.Fatalf("after Govern: sets %v, want [%d]", s, base)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); follow(ctx, time.Second) }()

		time.Sleep(3 * time.Second) // nothing changed: nothing set again
		synctest.Wait()
		if s := got(); len(s) != 1 {
			t.Fatalf("unchanged held: sets %v, want one", s)
		}
		held.Store(50)
		time.Sleep(time.Second)
		synctest.Wait()
		held.Store(0)
		time.Sleep(time.Second)
		synctest.Wait()
		if s := got(); len(s) != 3 || s[1] != base+50 || s[2] != base {
			t.Fatalf("sets %v, want [%d %d %d]", s, base, base+50, base)
		}
		cancel()
		<-done
	})
}
