package runtime_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
)

// Shares are handed out in the order they were asked for: a reader that asks often cannot pass
// one that asked before it, even when its own share would fit.
func TestDecodeBudgetFIFO(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runtime.NewDecodeBudget(100)
		ctx := context.Background()
		first, err := b.Acquire(ctx, 80)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]chan runtime.DecodeShare{"quiet": make(chan runtime.DecodeShare, 1), "busy": make(chan runtime.DecodeShare, 1)}
		take := func(name string, n int64) {
			s, err := b.Acquire(ctx, n)
			if err != nil {
				t.Error(err)
			}
			got[name] <- s
		}
		granted := func(name string) bool { return len(got[name]) > 0 }
		// quiet asks for the whole budget first and waits; busy then asks for 10, which would
		// fit next to first.
		go take("quiet", 100)
		synctest.Wait()
		go take("busy", 10)
		synctest.Wait()
		if st := b.Stats(); st.Waiters != 2 || st.UsedBytes != 80 || st.Reads != 1 || granted("busy") {
			t.Fatalf("stats %+v, busy granted %v; want 2 waiters behind 80 bytes held by 1 read", st, granted("busy"))
		}
		time.Sleep(time.Second)
		first.Release()
		first.Release() // a second release does nothing
		synctest.Wait()
		if !granted("quiet") || granted("busy") {
			t.Fatalf("after the release: quiet granted %v, busy granted %v; want quiet only", granted("quiet"), granted("busy"))
		}
		quiet := <-got["quiet"]
		if quiet.Bytes() != 100 {
			t.Fatalf("quiet's share holds %d bytes; want 100", quiet.Bytes())
		}
		time.Sleep(time.Second)
		quiet.Release()
		busy := <-got["busy"]
		if busy.Bytes() != 10 || quiet.Held() {
			t.Fatalf("busy's share holds %d bytes, quiet's still held %v; want 10, false", busy.Bytes(), quiet.Held())
		}
		busy.Release()
		if st := b.Stats(); st.UsedBytes != 0 || st.Reads != 0 || st.Waits != 2 || st.WaitTime != 3*time.Second {
			t.Fatalf("stats %+v; want nothing held, 2 waits of 1s and 2s", st)
		}
	})
}

// A share above the whole budget is cut to it, so it is admitted alone, and only once nothing
// else is held.
func TestDecodeBudgetOversizedShareAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runtime.NewDecodeBudget(100)
		ctx := context.Background()
		small, err := b.Acquire(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan runtime.DecodeShare, 1)
		go func() {
			s, err := b.Acquire(ctx, 1000)
			if err != nil {
				t.Error(err)
			}
			got <- s
		}()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("an oversized share was admitted next to another")
		default:
		}
		small.Release()
		big := <-got
		if big.Bytes() != 100 || b.Stats().UsedBytes != 100 {
			t.Fatalf("oversized share holds %d, budget used %d; want both 100", big.Bytes(), b.Stats().UsedBytes)
		}
		big.Release()
	})
}

// A wait that ends with ctx leaves nothing held and lets the waiters behind it through.
func TestDecodeBudgetCanceledWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := runtime.NewDecodeBudget(100)
		held, _ := b.Acquire(context.Background(), 90)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			s, err := b.Acquire(ctx, 50)
			if s.Held() {
				t.Error("a canceled Acquire returned a share")
			}
			errc <- err
		}()
		synctest.Wait()
		behind := make(chan runtime.DecodeShare, 1)
		go func() {
			s, _ := b.Acquire(context.Background(), 10)
			behind <- s
		}()
		synctest.Wait()
		cancel()
		if err := <-errc; err != context.Canceled {
			t.Fatalf("canceled Acquire returned %v", err)
		}
		s := <-behind // 90 + 10 fit once the head gave up
		if st := b.Stats(); st.UsedBytes != 100 || st.Waiters != 0 {
			t.Fatalf("stats %+v; want 100 bytes held, nobody waiting", st)
		}
		s.Release()
		held.Release()
		if _, err := b.Acquire(ctx, 1); err != context.Canceled {
			t.Fatalf("Acquire with an ended ctx returned %v", err)
		}
	})
}
