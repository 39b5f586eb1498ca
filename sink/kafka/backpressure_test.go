package kafka

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/runtime"
)

// TestSlowAcksHoldThePool wires the sink to a runtime.Pool the way the pipeline does (acquire
// before Write, release in the ack) while kfake holds every produce response. The pool stays full
// and a further Acquire waits; once Kafka answers again the waiting Acquire gets through and the
// pool drains to zero.
func TestSlowAcksHoldThePool(t *testing.T) {
	c, cfg := newCluster(t, kfake.SeedTopics(3, "mirror.s"))
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	// Hold every produce request until release is closed.
	release := make(chan struct{})
	var releaseOnce sync.Once
	lift := func() { releaseOnce.Do(func() { close(release) }) }
	defer lift()
	var held sync.Mutex
	heldN := 0
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		held.Lock()
		heldN++
		held.Unlock()
		c.SleepControl(func() { <-release })
		return nil, nil, false // then let the broker answer normally
	})

	const limit = 50
	pool := runtime.NewPool(limit, 1<<20)
	ack := func(r *runtime.Record, err error) {
		if err != nil {
			t.Errorf("record %s failed: %v", recID(r), err)
		}
		pool.Release(1, r.Size())
	}
	var recs []runtime.Record
	for i := range limit {
		r := makeRecord("s", "shard-0", keyFor("k", i%3, 3), i, time.Now())
		if err := pool.Acquire(ctx, 1, r.Size()); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if err := s.Write(ctx, recs, ack); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "a held produce request", func() bool {
		held.Lock()
		defer held.Unlock()
		return heldN > 0
	})
	if st := pool.Stats(); st.UsedRecords != limit {
		t.Fatalf("pool holds %d records while Kafka is silent, want %d", st.UsedRecords, limit)
	}

	// The source's next Acquire must wait.
	next := makeRecord("s", "shard-0", "k-next", limit, time.Now())
	acquired := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { acquired <- pool.Acquire(ctx, 1, next.Size()) })
	defer wg.Wait()
	pollUntil(t, 10*time.Second, "the Acquire to block", func() bool { return pool.Stats().Waiters == 1 })
	select {
	case err := <-acquired:
		t.Fatalf("Acquire returned (%v) while the pool is full", err)
	default:
	}
	if st := pool.Stats(); st.UsedRecords != limit {
		t.Fatalf("pool holds %d records, want %d", st.UsedRecords, limit)
	}

	lift()
	if err := <-acquired; err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, []runtime.Record{next}, ack); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pool.Stats(); st.UsedRecords != 0 || st.UsedBytes != 0 {
		t.Errorf("pool after recovery: %+v, want empty", st)
	}
}
