package e2e

import (
	"context"
	"testing"
	"time"
)

// consumeUncommitted reads topic read_uncommitted: every record written, also those of aborted
// or open transactions.
func consumeUncommitted(t testing.TB, s *scenario) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := s.kcat.Consume(ctx, s.kafka.addr(), s.cfg.Topic, "-X", "isolation.level=read_uncommitted")
	if err != nil {
		t.Fatalf("read %s read_uncommitted: %v", s.cfg.Topic, err)
	}
	return len(msgs)
}

// TestExactlyOnceKillRestart: with delivery exactly_once, SIGKILL mid-stream and a restart leave
// a read_committed consumer with every record exactly once. The records the killed process had
// written in its open transaction are in the topic too (read_uncommitted sees them), aborted:
// the test checks that there were some, so the kill did land mid-transaction.
func TestExactlyOnceKillRestart(t *testing.T) {
	s := newScenario(t, 4, 4, runtimeConfig{PoolRecords: 2000, Interval: "2s", Delivery: "exactly_once"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const total = 12000
	wait := background(func() error { return s.writer.put(ctx, total, 2000) })
	p := startRuntime(t, "first", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_transactions_total", 2, time.Minute, `result="committed"`)
	p.waitMetric("shardbridge_records_emitted_total", 5000, time.Minute)
	p.kill()
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the kill: the kill was not mid-stream", n)
	}
	p2 := startRuntime(t, "second", s.path)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	rep := s.finish(p2, want)
	assertExact(t, rep)
	all := consumeUncommitted(t, s)
	t.Logf("read_uncommitted sees %d records for %d in Kinesis: %d from aborted transactions", all, len(want), all-len(want))
	if all <= len(want) {
		t.Errorf("read_uncommitted sees %d records for %d: the kill left no open transaction behind, so this run did not test exactly-once", all, len(want))
	}
}
