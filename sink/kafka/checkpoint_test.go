package kafka

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/runtime"
)

func cp(connector, stream, shard, seq string, sub int64, end bool, epoch int64, at time.Time) runtime.Checkpoint {
	return runtime.Checkpoint{
		Connector: connector, Stream: stream, Shard: shard,
		Mark:    runtime.Mark{Position: runtime.Position{Sequence: seq, SubSequence: sub}, End: end},
		Owner:   runtime.Owner{ID: "worker-1", Epoch: epoch},
		Written: at,
	}
}

func sortCps(cps []runtime.Checkpoint) {
	sort.Slice(cps, func(i, j int) bool { return cps[i].Shard < cps[j].Shard })
}

func equalCp(a, b runtime.Checkpoint) bool {
	return a.Connector == b.Connector && a.Stream == b.Stream && a.Shard == b.Shard && a.Mark == b.Mark &&
		a.Owner == b.Owner && a.Written.Equal(b.Written)
}

// TestCheckpointStoreLatestPerKey creates the topic, commits several generations of checkpoints
// for two connectors and two streams, deletes one, and loads the latest per shard of one stream.
func TestCheckpointStoreLatestPerKey(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := testCtx(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	reg := prometheus.NewRegistry()
	st, err := NewCheckpointStore(ctx, cfg, "_shardbridge_checkpoints", WithRegisterer(reg), WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)

	// The topic was created compacted.
	adm := kadm.NewClient(mustClient(t, c))
	rcs, err := adm.DescribeTopicConfigs(ctx, "_shardbridge_checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := rcs.On("_shardbridge_checkpoints", nil)
	policy := ""
	for _, cfg := range rc.Configs {
		if cfg.Key == "cleanup.policy" && cfg.Value != nil {
			policy = *cfg.Value
		}
	}
	if policy != "compact" {
		t.Fatalf("created topic has cleanup.policy %q", policy)
	}

	if cps, err := st.Load(ctx, "c1", "orders"); err != nil || len(cps) != 0 {
		t.Fatalf("Load of an empty topic = %v, %v", cps, err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for gen := range 5 {
		g := strconv.Itoa(gen)
		err := st.Commit(ctx, []runtime.Checkpoint{
			cp("c1", "orders", "shardId-0", "10"+g, 0, false, 1, t0.Add(time.Duration(gen)*time.Second)),
			cp("c1", "orders", "shardId-1", "20"+g, int64(gen), gen == 4, 1, t0),
			cp("c1", "orders", "shardId-2", "30"+g, 0, false, 1, t0),
			cp("c1", "other", "shardId-0", "40"+g, 0, false, 1, t0),
			cp("c2", "orders", "shardId-0", "50"+g, 0, false, 1, t0),
			cp("c1/x", "orders", "shardId-0", "60"+g, 0, false, 1, t0), // needs escaping
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Delete(ctx, "c1", "orders", "shardId-2"); err != nil {
		t.Fatal(err)
	}
	// A zero Written is filled from the store's clock.
	if err := st.Put(ctx, cp("c1", "orders", "shardId-3", "70", 0, false, 2, time.Time{})); err != nil {
		t.Fatal(err)
	}

	got, err := st.Load(ctx, "c1", "orders")
	if err != nil {
		t.Fatal(err)
	}
	sortCps(got)
	// Compaction keeps the latest value per key and drops the rest: Load gives the same answer.
	c.Compact()
	compacted, err := st.Load(ctx, "c1", "orders")
	if err != nil {
		t.Fatalf("Load after compaction: %v", err)
	}
	sortCps(compacted)
	if len(compacted) != len(got) {
		t.Fatalf("after compaction Load = %+v, before %+v", compacted, got)
	}
	for i := range got {
		if !equalCp(compacted[i], got[i]) {
			t.Errorf("after compaction checkpoint %d = %+v, before %+v", i, compacted[i], got[i])
		}
	}
	want := []runtime.Checkpoint{
		cp("c1", "orders", "shardId-0", "104", 0, false, 1, t0.Add(4*time.Second)),
		cp("c1", "orders", "shardId-1", "204", 4, true, 1, t0),
		cp("c1", "orders", "shardId-3", "70", 0, false, 2, now),
	}
	if len(got) != len(want) {
		t.Fatalf("Load = %+v, want %+v", got, want)
	}
	for i := range want {
		if !equalCp(got[i], want[i]) {
			t.Errorf("checkpoint %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	esc, err := st.Load(ctx, "c1/x", "orders")
	if err != nil || len(esc) != 1 || esc[0].Connector != "c1/x" || esc[0].Mark.Position.Sequence != "604" {
		t.Errorf("Load with an escaped connector name = %+v, %v", esc, err)
	}

	// Checkpoint metrics.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"shardbridge_checkpoint_commit_latency_seconds", "shardbridge_checkpoint_age_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered; have %v", n, names)
		}
	}
}

func mustClient(t *testing.T, c *kfake.Cluster) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestCheckpointStoreRefusesDeletePolicy: an existing checkpoint topic with cleanup.policy=delete
// is refused with a message naming the topic, the policy and the fix.
func TestCheckpointStoreRefusesDeletePolicy(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(mustClient(t, c))
	for _, policy := range []string{"delete", "compact,delete"} {
		topic := "cp-" + strings.ReplaceAll(policy, ",", "-")
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &policy}, topic); err != nil {
			t.Fatal(err)
		}
		_, err := NewCheckpointStore(ctx, cfg, topic)
		var nc *NotCompactedError
		if !errors.As(err, &nc) || nc.Policy != policy {
			t.Fatalf("policy %s: NewCheckpointStore = %v, want *NotCompactedError", policy, err)
		}
		for _, want := range []string{topic, "cleanup.policy=" + policy, "cleanup.policy=compact"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	}
	// An existing compacted topic is accepted.
	compact := "compact"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &compact}, "cp-ok"); err != nil {
		t.Fatal(err)
	}
	st, err := NewCheckpointStore(ctx, cfg, "cp-ok")
	if err != nil {
		t.Fatal(err)
	}
	st.Close(ctx)
	if _, err := NewCheckpointStore(ctx, cfg, "bad/topic"); err == nil {
		t.Error("illegal checkpoint topic name accepted")
	}
}

// TestCheckpointStoreSurvivesBrokerRestart commits to a kfake cluster persisting to a data dir,
// restarts the cluster on the same port, and loads the checkpoints back.
func TestCheckpointStoreSurvivesBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	c1, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SyncWrites())
	if err != nil {
		t.Fatal(err)
	}
	addr := c1.ListenAddrs()[0]
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	cfg := Config{Brokers: []string{addr}, Topic: "t"}
	st, err := NewCheckpointStore(ctx, cfg, "cps")
	if err != nil {
		c1.Close()
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := []runtime.Checkpoint{
		cp("c1", "orders", "shardId-0", "111", 0, false, 3, t0),
		cp("c1", "orders", "shardId-1", "222", 7, true, 3, t0),
	}
	if err := st.Commit(ctx, want); err != nil {
		t.Fatal(err)
	}
	st.Close(ctx)
	c1.Close()

	c2, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	st2, err := NewCheckpointStore(ctx, cfg, "cps")
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close(ctx)
	got, err := st2.Load(ctx, "c1", "orders")
	if err != nil {
		t.Fatal(err)
	}
	sortCps(got)
	if len(got) != 2 || !equalCp(got[0], want[0]) || !equalCp(got[1], want[1]) {
		t.Errorf("after restart Load = %+v, want %+v", got, want)
	}
}

// TestCheckpointCommitWaitsForAcks: while kfake holds the produce response, Commit does not
// return; once the response comes, it returns and the checkpoint loads.
func TestCheckpointCommitWaitsForAcks(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := testCtx(t)
	st, err := NewCheckpointStore(ctx, cfg, "cps")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)

	release := make(chan struct{})
	seen := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		close(seen)
		c.SleepControl(func() { <-release })
		c.DropControl()
		return nil, nil, false
	})
	done := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		done <- st.Commit(ctx, []runtime.Checkpoint{cp("c1", "s", "sh", "9", 0, false, 1, time.Now())})
	})
	defer wg.Wait()
	<-seen
	// The request is held at the broker, so Kafka has not acknowledged it: Commit cannot have
	// returned.
	select {
	case err := <-done:
		t.Fatalf("Commit returned %v before Kafka acknowledged", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got, err := st.Load(ctx, "c1", "s")
	if err != nil || len(got) != 1 || got[0].Mark.Position.Sequence != "9" {
		t.Errorf("Load = %+v, %v", got, err)
	}
}

// TestCheckpointLoadUnknownVersion: a value of a version this build does not know fails Load with
// an error naming the version and the key.
func TestCheckpointLoadUnknownVersion(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := testCtx(t)
	st, err := NewCheckpointStore(ctx, cfg, "cps")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	cl := mustClient(t, c)
	if err := cl.ProduceSync(ctx,
		&kgo.Record{Topic: "cps", Key: checkpointKey("c1", "s", "sh-9"), Value: []byte(`{"v":2,"position":"x"}`)},
		&kgo.Record{Topic: "cps", Key: checkpointKey("c9", "s", "sh-1"), Value: []byte(`garbage for another connector`)},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	_, err = st.Load(ctx, "c1", "s")
	var uv *UnknownVersionError
	if !errors.As(err, &uv) || uv.Version != 2 || !strings.Contains(err.Error(), "c1/s/sh-9") {
		t.Errorf("Load = %v, want *UnknownVersionError for version 2 naming the key", err)
	}
	// Another connector's bad value does not concern c9's neighbours... but does fail c9's Load.
	if _, err := st.Load(ctx, "c9", "s"); err == nil {
		t.Error("Load accepted an undecodable value")
	}
}

func TestCheckpointKeyEscaping(t *testing.T) {
	for _, c := range [][3]string{
		{"c1", "orders", "shardId-000000000001"},
		{"a/b", "s%2F", "x/y%"},
		{"%", "/", "%2F/"},
	} {
		k := checkpointKey(c[0], c[1], c[2])
		conn, stream, shard, ok := parseCheckpointKey(k)
		if !ok || conn != c[0] || stream != c[1] || shard != c[2] {
			t.Errorf("key %q parses to %q %q %q %v, want %q", k, conn, stream, shard, ok, c)
		}
	}
	if got := string(checkpointKey("c1", "orders", "shardId-1")); got != "c1/orders/shardId-1" {
		t.Errorf("plain key = %q", got)
	}
}

// Several stores opened at once on a new cluster (several connectors sharing the default
// checkpoint topic) race to create the topic. The ones that lose the race must still wait for the
// topic to be usable, or their first Load fails with UNKNOWN_TOPIC_OR_PARTITION.
func TestCheckpointStoresRaceToCreateTopic(t *testing.T) {
	for round := range 5 {
		_, cfg := newCluster(t)
		ctx := testCtx(t)
		const stores = 8
		errs := make(chan error, stores)
		for i := range stores {
			go func() {
				st, err := NewCheckpointStore(ctx, cfg, "_shardbridge_checkpoints")
				if err != nil {
					errs <- fmt.Errorf("store %d: open: %w", i, err)
					return
				}
				defer st.Close(ctx)
				if _, err := st.Load(ctx, fmt.Sprintf("c%d", i), "orders"); err != nil {
					errs <- fmt.Errorf("store %d: first load: %w", i, err)
					return
				}
				errs <- nil
			}()
		}
		for range stores {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
