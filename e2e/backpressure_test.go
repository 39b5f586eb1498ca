package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestProduceErrorsOnePartition: for 30 s the broker answers every produce to partition 1 with
// NOT_LEADER_FOR_PARTITION (retriable). With delivery_timeout above 30 s franz-go retries those
// records; the records behind them fill the pool and the readers wait; once the errors stop,
// everything arrives once (the idempotent producer never writes a retried batch twice).
func TestProduceErrorsOnePartition(t *testing.T) {
	t.Parallel()
	const (
		pool   = 1000
		window = 30 * time.Second
	)
	s := newScenario(t, 4, 4, runtimeConfig{PoolRecords: pool, DeliveryTimeout: "90s"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	if err := s.writer.put(ctx, 500, 0); err != nil {
		t.Fatal(err)
	}
	p.waitMetric("shardbridge_records_acked_total", 500, time.Minute)

	fault := s.kafka.cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: s.cfg.Topic,
		Partitions: []int32{1}, Err: kerr.NotLeaderForPartition, Count: -1})
	start := time.Now()
	// The records of partition 1 (about a quarter) cannot leave, so the pool fills after about
	// 4 pools' worth of records, and the readers block on it.
	wait := background(func() error { return s.writer.put(ctx, 9500, 1000) })
	var used, waiters float64
	waitUntil(t, window-5*time.Second, "pool full and readers waiting", func() error {
		var err error
		if used, err = p.metric("shardbridge_pool_used_records"); err != nil {
			return err
		}
		if waiters, err = p.metric("shardbridge_pool_waiters"); err != nil {
			return err
		}
		if used < pool*0.9 || waiters < 1 {
			return fmt.Errorf("pool %g of %d records, %g waiters", used, pool, waiters)
		}
		return nil
	})
	t.Logf("pool at %g of %d records with %g readers waiting, %s into the errors", used, pool, waiters, time.Since(start).Round(time.Millisecond))
	if err := fault.Wait(ctx, 3); err != nil {
		t.Fatalf("the fault answered no produce: %v", err)
	}
	time.Sleep(time.Until(start.Add(window))) // the fault's window itself, not a wait for an outcome
	fault.Remove()
	t.Logf("the fault answered %d produce requests in %s", fault.Hits(), window)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finish(p, s.kinesisTruth())
	assertExact(t, rep)
}

// TestPoolFullLongerThanWaitTimeout: the broker delays every produce response by 3 s, longer
// than pool.wait_timeout (2 s). The pool stays full, each reader's wait for space times out, and
// it closes its subscription (reason backpressure_timeout) and resubscribes later from its last
// record. Once Kafka is fast again everything arrives once.
func TestPoolFullLongerThanWaitTimeout(t *testing.T) {
	const pool = 1000
	s := newScenario(t, 4, 4, runtimeConfig{PoolRecords: pool, WaitTimeout: "2s"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)

	var slow atomic.Bool
	slow.Store(true)
	c := s.kafka.cluster()
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if slow.Load() {
			// Yields to other connections while this produce waits; the broker then answers it.
			c.SleepControl(func() { <-time.After(3 * time.Second) })
		}
		return nil, nil, false
	})
	wait := background(func() error { return s.writer.put(ctx, 6000, 1500) })
	p.waitMetric("shardbridge_kinesis_subscriptions_ended_total", 4, time.Minute, `reason="backpressure_timeout"`)
	slow.Store(false)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	closed, _ := p.metric("shardbridge_kinesis_subscriptions_ended_total", `reason="backpressure_timeout"`)
	rep := s.finish(p, s.kinesisTruth())
	assertExact(t, rep)
	t.Logf("%g subscriptions closed for backpressure_timeout", closed)
}
