package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// newKinesis starts a kinesistest server with one stream and the suite's short subscription
// lifetime and heartbeat, so resubscriptions happen during every scenario.
func newKinesis(t testing.TB, stream string, shards int, opts ...kinesistest.Option) *kinesistest.Server {
	t.Helper()
	opts = append([]kinesistest.Option{
		kinesistest.WithStream(stream, shards),
		kinesistest.WithSubscriptionLifetime(5 * time.Second),
		kinesistest.WithHeartbeatInterval(500 * time.Millisecond),
	}, opts...)
	srv, err := kinesistest.NewServer(opts...)
	if err != nil {
		t.Fatalf("start kinesistest: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// scenario is the common setup: a stream, a broker, a config, a writer.
type scenario struct {
	t      *testing.T
	kcat   *kcat.Kcat
	srv    *kinesistest.Server
	kafka  *kafkaBroker
	cfg    runtimeConfig
	path   string
	writer *writer
}

func newScenario(t *testing.T, shards int, partitions int32, cfg runtimeConfig, opts ...kinesistest.Option) *scenario {
	t.Helper()
	kc := kcat.Find(t)
	cfg.Stream = "orders"
	srv := newKinesis(t, cfg.Stream, shards, opts...)
	cfg = cfg.defaults()
	topics := []string{cfg.Topic}
	if cfg.DLQTopic != "" {
		topics = append(topics, cfg.DLQTopic)
	}
	k := startKafka(t, partitions, topics...)
	cfg.Endpoint, cfg.Broker = srv.Endpoint(), k.addr()
	return &scenario{t: t, kcat: kc, srv: srv, kafka: k, cfg: cfg, path: writeConfig(t, cfg),
		writer: newWriter(srv.Client(), cfg.Stream, 32)}
}

// kinesisTruth reads back what the stream holds.
func (s *scenario) kinesisTruth() []kinesisRecord {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	want, err := readKinesis(ctx, s.srv.Client(), s.cfg.Stream)
	if err != nil {
		s.t.Fatalf("read kinesis: %v", err)
	}
	if n := int(s.writer.written.Load()); len(want) != n {
		s.t.Fatalf("kinesis holds %d records, the writer wrote %d", len(want), n)
	}
	return want
}

// finish waits for every record in Kafka, stops p gracefully, reads the topic once more (a late
// duplicate would show now) and returns the report.
func (s *scenario) finish(p *process, want []kinesisRecord) mirrorReport {
	s.t.Helper()
	waitMirrored(s.t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	// Every byte acquired is released exactly once: with everything acknowledged the pool is empty.
	waitUntil(s.t, 30*time.Second, "pool empty after the mirror", func() error {
		used, err := p.metric("shardbridge_pool_used_bytes")
		if err != nil {
			return err
		}
		recs, err := p.metric("shardbridge_pool_used_records")
		if err != nil {
			return err
		}
		if used != 0 || recs != 0 {
			return fmt.Errorf("pool holds %g records, %g bytes", recs, used)
		}
		return nil
	})
	p.terminate(time.Minute)
	rep := check(consume(s.t, s.kcat, s.kafka.addr(), s.cfg.Topic), want)
	s.t.Logf("%s", rep)
	return rep
}

// assertExact fails unless the report shows every record exactly once, in order, intact.
func assertExact(t testing.TB, rep mirrorReport) {
	t.Helper()
	assertBounded(t, rep, 0)
}

// assertBounded fails on loss, on content or order problems, or on more duplicates than bound.
func assertBounded(t testing.TB, rep mirrorReport, bound int) {
	t.Helper()
	if len(rep.Missing) > 0 {
		t.Errorf("lost %d records, e.g. %s", len(rep.Missing), firstFew(rep.Missing))
	}
	for _, p := range rep.Problems {
		t.Errorf("problem: %s", p)
	}
	if len(rep.Duplicates) > bound {
		t.Errorf("%d duplicates, bound %d; e.g. %s", len(rep.Duplicates), bound, firstFew(rep.Duplicates))
	}
}

// TestGracefulStopRestart: SIGTERM mid-stream drains and writes final checkpoints, so the
// restart resumes exactly after the last record in Kafka: 0 duplicates, 0 lost.
func TestGracefulStopRestart(t *testing.T) {
	s := newScenario(t, 4, 4, runtimeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const total = 9000
	wait := background(func() error { return s.writer.put(ctx, total, 1500) })

	p := startRuntime(t, "first", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_records_acked_total", 1500, time.Minute)
	// memory_limit is auto by default: Go's limit is 2 x the pool's bytes (32MiB) + its 2,000
	// records x 1KiB + the decode budget (64MiB) + 4 shards being read x (256KiB window + 128KiB)
	// + 48MiB, as the README documents.
	const wantLimit = 2*32<<20 + 2000*1024 + 64<<20 + 4*(256<<10+128<<10) + 48<<20
	if got := p.waitMetric("go_gc_gomemlimit_bytes", wantLimit, 30*time.Second); got != wantLimit {
		t.Errorf("go_gc_gomemlimit_bytes = %.0f, want %d", got, wantLimit)
	}
	p.terminate(time.Minute)
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the stop: the stop was not mid-stream", n)
	}
	// The drain acknowledged everything in flight and committed it: each shard's checkpoint is
	// the last record of that shard in Kafka.
	cps := checkpoints(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	lastInKafka := map[string]string{}
	for _, m := range consume(t, s.kcat, s.kafka.addr(), s.cfg.Topic) {
		shard, seq := header(m, "kinesis.shard_id"), header(m, "kinesis.sequence_number")
		if seqLess(lastInKafka[shard], seq) {
			lastInKafka[shard] = seq
		}
	}
	for shard, seq := range lastInKafka {
		if cps[shard].Seq != seq {
			t.Errorf("after the drain, %s's checkpoint is %q, but its last record in Kafka is %s", shard, cps[shard].Seq, seq)
		}
	}

	p2 := startRuntime(t, "second", s.path)
	// The API's offsets are the stored checkpoints the restart resumes from.
	apiOffsets := p2.offsets(s.cfg.Connector)
	for shard, cp := range cps {
		if apiOffsets[shard] != cp.Seq {
			t.Errorf("GET offsets: %s at %q, the checkpoint topic has %s", shard, apiOffsets[shard], cp.Seq)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finish(p2, s.kinesisTruth())
	assertExact(t, rep)
}

// TestKillRestart: SIGKILL mid-stream (no drain, no final checkpoint), then a restart. Nothing is
// lost; the only duplicates are records after the last committed checkpoint, and there are at
// most pool.max_pending_records + the records acknowledged in one checkpoint interval (plus the
// commit's own latency, bounded here by a second interval) of them. The ack rate is the larger
// of the write rate and the rate measured in the last interval before the kill.
func TestKillRestart(t *testing.T) {
	const (
		pool     = 2000
		rate     = 2000 // records/s written; the mirror keeps up, so also the ack rate
		interval = time.Second
		total    = 16000
	)
	s := newScenario(t, 4, 4, runtimeConfig{PoolRecords: pool, Interval: interval.String()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, total, rate) })

	p := startRuntime(t, "first", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_records_acked_total", 4000, time.Minute)
	p.waitMetric("shardbridge_checkpoint_commits_total", 2, time.Minute, `result="ok"`)
	// Measure the ack rate over the interval just before the kill, so the bound below does not
	// rest on the mirror keeping up with the writer (a mirror catching up acks faster).
	a0, err := p.metric("shardbridge_records_acked_total")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(interval) // the measurement window itself, not a wait for an outcome
	a1, err := p.metric("shardbridge_records_acked_total")
	if err != nil {
		t.Fatal(err)
	}
	p.kill()
	ackRate := max(rate, int(a1-a0))
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the kill: the kill was not mid-stream", n)
	}
	cps := checkpoints(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	if len(cps) == 0 {
		t.Fatal("no checkpoint committed before the kill")
	}

	p2 := startRuntime(t, "second", s.path)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finish(p2, s.kinesisTruth())
	bound := pool + ackRate*int(2*interval/time.Second)
	assertBounded(t, rep, bound)
	for _, d := range rep.Duplicates {
		cp, ok := cps[d.Shard]
		if ok && !seqLess(cp.Seq, d.Seq) {
			t.Errorf("duplicate %s/%s is at or before the checkpoint %s committed before the kill", d.Shard, d.Seq, cp.Seq)
		}
	}
	t.Logf("duplicates after kill -9: %d (bound %d = pool %d + %d records/s x 2 x %s; acks in the last interval %g)", len(rep.Duplicates), bound, pool, ackRate, interval, a1-a0)
}
