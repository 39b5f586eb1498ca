package kinesis

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardbridge/shardbridge/internal/syncbuf"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// A closed shard whose reader waits for pool space is not quiet: while the pool stays full the
// source's clock passes closed_shard_quiet_period many times over, yet the reader keeps its
// subscription, reads every record as room appears, and the shard ends with the final event,
// never through the GetRecords probe.
func TestClosedShardPoolWaitIsNotQuiet(t *testing.T) {
	em := newTestEmitter(100, 64<<20, false) // room for two events; the test acknowledges
	f := newFixture(t, "closedpool", 1, func(c *Config) { c.ShardSyncInterval = 1e9 }, em,
		kinesistest.WithMaxRecordsPerEvent(50))
	want := f.put("v", 1000, 10)
	shards, err := f.cli.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String("closedpool")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.SplitShard(t.Context(), &kinesis.SplitShardInput{StreamName: aws.String("closedpool"),
		ShardToSplit: shards.Shards[0].ShardId, NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatalf("split: %v", err)
	}
	f.start()

	// The reader holds its subscription and waits for room, and the shard is listed closed.
	f.em.waitFor(t, "a full pool and shard 0 listed closed", 30*time.Second, func() bool {
		f.src.mu.Lock()
		st := f.src.shards[shard0]
		closed := st != nil && st.closed
		f.src.mu.Unlock()
		return closed && f.em.pool.Stats().Waiters > 0
	})
	// Release the pool a little at a time: each event waits for room a while (well under the
	// pool wait timeout, so the subscription stays open), during which the closed-shard watch
	// advances the source's clock by more than the quiet period.
	start := f.clock.now()
	tick := time.NewTicker(300 * time.Millisecond) // the pool stays full between acknowledgements
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for f.em.count() < 1000 {
		select {
		case <-tick.C:
			f.em.ackAll()
		case <-deadline:
			t.Fatalf("only %d of 1000 records within 60s", f.em.count())
		}
	}
	f.em.ackAll()
	f.em.waitFor(t, "the end of shard 0", 30*time.Second, func() bool { return slices.Contains(f.em.eventLog(), "end "+shard0) })
	f.checkExactlyOnce(want)

	if passed := f.clock.now().Sub(start); passed < 3*DefaultClosedShardQuietPeriod {
		t.Fatalf("the source's clock moved only %v while the pool was full; the test needs more than the quiet period", passed)
	}
	if st := f.em.pool.Stats(); st.Waits < 10 {
		t.Errorf("%d pool waits; the test needs the reader to wait for room on most events", st.Waits)
	}
	if n := f.ended(shard0, "closed_quiet"); n != 0 {
		t.Errorf("%v subscriptions of shard 0 ended closed_quiet: time waiting for pool space counted as quiet", n)
	}
	if n := f.ended(shard0, "shard_end"); n != 1 {
		t.Errorf("%v subscriptions of shard 0 ended shard_end, want 1", n)
	}
	if n := f.ended(shard0, "backpressure_timeout"); n != 0 {
		t.Errorf("%v subscriptions ended backpressure_timeout; the test means to keep one open", n)
	}
}

// manualClock is a clock that moves only when the test says so.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) set(d time.Duration, from time.Time) {
	c.mu.Lock()
	c.t = from.Add(d)
	c.mu.Unlock()
}

// A merge's child whose parents never end is visible: the status names the parents still
// waited for and for how long, shardbridge_kinesis_parent_wait_seconds gives the wait at scrape
// time from the source's clock (0 for shards that do not wait, 0 again once the wait is over,
// gone after Run), and the log warns every 5 minutes of waiting.
func TestParentWaitVisible(t *testing.T) {
	const (
		p1, p2, child = "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"
	)
	closed := &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1"), EndingSequenceNumber: aws.String("9223372036854775807")}
	var lists atomic.Int64
	api := &fakeAPI{t: t,
		describeConsume: func(*kinesis.DescribeStreamConsumerInput) (*kinesis.DescribeStreamConsumerOutput, error) {
			return consumerOut(types.ConsumerStatusActive), nil
		},
		listShards: func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
			lists.Add(1)
			return &kinesis.ListShardsOutput{Shards: []types.Shard{
				{ShardId: aws.String(p1), SequenceNumberRange: closed},
				{ShardId: aws.String(p2), SequenceNumberRange: closed},
				{ShardId: aws.String(child), ParentShardId: aws.String(p1), AdjacentParentShardId: aws.String(p2),
					SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("2")}},
			}}, nil
		},
		// The parents' readers fail and then wait (for ever, see below): nothing ends them.
		subscribe: func(*kinesis.SubscribeToShardInput) (*kinesis.SubscribeToShardOutput, error) {
			return nil, apiErr("InternalFailure")
		},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := &manualClock{t: t0}
	blockWait := func(ctx context.Context, _ time.Duration) error { <-ctx.Done(); return ctx.Err() }
	var logs syncbuf.Buffer
	reg := prometheus.NewRegistry()
	cfg := Config{Stream: "s", Region: "us-east-1", ShardSyncInterval: 1e9}
	src, err := New(cfg, "m", withAPI(api), WithClock(clk.now), WithWait(blockWait), WithRegisterer(reg),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	em := newTestEmitter(10, 1<<20, true)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, em) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	report := func() (state string, waiting []string, secs float64) {
		for _, r := range src.ShardReport() {
			if r.Shard == child {
				return r.State, r.WaitingFor, r.ParentWaitSeconds
			}
		}
		return "", nil, 0
	}
	gauge := func() map[string]float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "shardbridge_kinesis_parent_wait_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["connector"] != "m" {
					t.Errorf("series with connector %q", labels["connector"])
				}
				out[labels["shard"]] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	// afterSync returns once discovery has run a full round after the call, warnings included.
	afterSync := func() {
		t.Helper()
		n := lists.Load() + 2
		if !em.await(10*time.Second, func() bool { return lists.Load() >= n }) {
			t.Fatal("discovery did not run within 10s")
		}
	}
	warnings := func() []string {
		var out []string
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "still waiting for its parents") {
				out = append(out, l)
			}
		}
		return out
	}

	if !em.await(10*time.Second, func() bool { _, w, _ := report(); return len(w) == 2 }) {
		t.Fatalf("the child does not report waiting for both parents: %+v", src.ShardReport())
	}
	clk.set(4*time.Minute+59*time.Second, t0)
	if state, w, secs := report(); state != StateWaitingParent || !slices.Equal(w, []string{p1, p2}) || secs != 299 {
		t.Errorf("child reports %s, waiting for %v for %vs; want waiting_parent, [%s %s], 299s", state, w, secs, p1, p2)
	}
	if g := gauge(); g[child] != 299 || g[p1] != 0 || g[p2] != 0 || len(g) != 3 {
		t.Errorf("parent_wait_seconds %v; want 299 for the child, 0 for each parent", g)
	}
	afterSync()
	if w := warnings(); len(w) != 0 {
		t.Errorf("warned before 5 minutes: %q", w)
	}

	clk.set(5*time.Minute, t0)
	afterSync()
	w := warnings()
	if len(w) != 1 || !strings.Contains(w[0], "level=WARN") || !strings.Contains(w[0], "shard="+child) ||
		!strings.Contains(w[0], fmt.Sprintf("parents=\"[%s %s]\"", p1, p2)) || !strings.Contains(w[0], "waited=5m0s") {
		t.Fatalf("after 5 minutes, warnings %q; want one naming the shard, both parents and 5m0s", w)
	}
	clk.set(9*time.Minute, t0)
	afterSync()
	if w := warnings(); len(w) != 1 {
		t.Errorf("at 9 minutes, %d warnings, want still 1", len(w))
	}
	clk.set(10*time.Minute, t0)
	afterSync()
	if w := warnings(); len(w) != 2 || !strings.Contains(w[1], "waited=10m0s") {
		t.Errorf("at 10 minutes, warnings %q; want a second one at 10m0s", w)
	}

	// One parent ends: the child waits for the other only.
	if err := em.EndShard(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if !em.await(10*time.Second, func() bool { _, w, _ := report(); return len(w) == 1 }) {
		t.Fatalf("after %s ended the child still reports %+v", p1, src.ShardReport())
	}
	if _, w, secs := report(); w[0] != p2 || secs != 600 {
		t.Errorf("child waits for %v for %vs; want [%s] for 600s", w, secs, p2)
	}
	// The other ends: the child is read, and no longer reports a wait.
	if err := em.EndShard(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if !em.await(10*time.Second, func() bool { s, _, _ := report(); return s != StateWaitingParent }) {
		t.Fatalf("after both parents ended the child still reports %+v", src.ShardReport())
	}
	if _, w, secs := report(); len(w) != 0 || secs != 0 {
		t.Errorf("child reading, yet reports waiting for %v for %vs", w, secs)
	}
	if g := gauge(); g[child] != 0 || len(g) != 3 {
		t.Errorf("parent_wait_seconds %v once the wait is over; want 0 for every shard", g)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	done <- nil // for the deferred check
	if g := gauge(); len(g) != 0 {
		t.Errorf("parent_wait_seconds %v after Run returned; want no series", g)
	}
}
