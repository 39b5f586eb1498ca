package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
)

// seqSource emits records 0..n-1 of one shard, resuming after its checkpoint, in batches of 10,
// then ends the shard. Record i has a key that the Java partitioner puts in partition i%3 of 3.
type seqSource struct {
	n int
}

const pipeShard = "shardId-000000000000"

func (s *seqSource) Stream() string { return "s" }

func (s *seqSource) Run(ctx context.Context, e runtime.Emitter) error {
	start := 0
	if m, ok := e.Resume(pipeShard); ok {
		if m.End {
			<-ctx.Done()
			return nil
		}
		last, err := strconv.Atoi(m.Position.Sequence)
		if err != nil {
			return fmt.Errorf("bad checkpoint %q: %w", m.Position.Sequence, err)
		}
		start = last + 1
	}
	base := time.UnixMilli(1_700_000_000_000)
	for i := start; i < s.n; i += 10 {
		if err := e.WaitForSpace(ctx, 0); err != nil {
			return nil
		}
		var recs []runtime.Record
		for j := i; j < min(i+10, s.n); j++ {
			recs = append(recs, makeRecord("s", pipeShard, keyFor("k", j%3, 3), j, base))
		}
		if err := e.Emit(ctx, pipeShard, recs); err != nil {
			return nil // stopping
		}
	}
	if err := e.EndShard(ctx, pipeShard); err != nil {
		return nil
	}
	<-ctx.Done()
	return nil
}

type pipelineEnv struct {
	c     *kfake.Cluster
	cfg   Config
	store *CheckpointStore
}

func newPipelineEnv(t *testing.T) *pipelineEnv {
	t.Helper()
	c, cfg := newCluster(t, kfake.SeedTopics(3, "mirror.s"), kfake.SeedTopics(1, "dlq"))
	cfg.RequestTimeout = config.Duration(300 * time.Millisecond)
	cfg.DeliveryTimeout = config.Duration(time.Second)
	ctx := testCtx(t)
	st, err := NewCheckpointStore(ctx, cfg, "cps", fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	return &pipelineEnv{c: c, cfg: cfg, store: st}
}

// run runs one connector over seqSource until the shard's end is checkpointed (wantEnd) or Run
// returns, and returns Run's error.
func (p *pipelineEnv) run(t *testing.T, n int, policy runtime.ErrorPolicy, wantEnd bool) error {
	t.Helper()
	ctx := testCtx(t)
	sink, err := NewSink(ctx, p.cfg, WithDeadLetterTopic("dlq"), fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	pool := runtime.NewPool(1000, 1<<20)
	conn, err := runtime.NewConnector(runtime.ConnectorOptions{
		Name: "c1", Source: &seqSource{n: n}, Sink: sink, Store: p.store, Pool: pool,
		CheckpointInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
		ErrorPolicy: policy, Owner: runtime.Owner{ID: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- conn.Run(runCtx) }()
	if wantEnd {
		pollUntil(t, 20*time.Second, "the shard end checkpoint", func() bool {
			select {
			case err := <-done:
				t.Fatalf("connector stopped early: %v", err)
			default:
			}
			m, ok := p.mark(t)
			return ok && m.End
		})
		cancel()
	}
	err = <-done
	if st := pool.Stats(); st.UsedRecords != 0 || st.UsedBytes != 0 {
		t.Errorf("pool after Run: %+v, want empty", st)
	}
	return err
}

func (p *pipelineEnv) mark(t *testing.T) (runtime.Mark, bool) {
	t.Helper()
	cps, err := p.store.Load(testCtx(t), "c1", "s")
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		if cp.Shard == pipeShard {
			return cp.Mark, true
		}
	}
	return runtime.Mark{}, false
}

func (p *pipelineEnv) failPartition2() *kfake.FaultHandle {
	return p.c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "mirror.s", Partitions: []int32{2},
		Err: kerr.NotEnoughReplicas, Count: -1})
}

// consumeIndexes reads a topic with kcat and counts each record index (from its sequence header).
func consumeIndexes(t *testing.T, kc *kcat.Kcat, addr, topic string) (map[int]int, []kcat.Message) {
	t.Helper()
	msgs, err := kc.Consume(testCtx(t), addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for _, m := range msgs {
		for _, h := range m.Headers {
			if h.Key == "kinesis.sequence_number" {
				i, _ := strconv.Atoi(h.Value)
				got[i]++
			}
		}
	}
	return got, msgs
}

// TestPolicyFailStopsAndRestartResends: under errors.policy fail, a record that exhausts its
// retries stops the connector, the checkpoint never passes it, and a restart sends it again.
func TestPolicyFailStopsAndRestartResends(t *testing.T) {
	kc := kcat.Find(t)
	p := newPipelineEnv(t)
	const n = 30
	h := p.failPartition2()
	err := p.run(t, n, runtime.PolicyFail, false)
	if err == nil || !errors.Is(err, ErrDeliveryTimeout) {
		t.Fatalf("Run = %v, want a failure carrying ErrDeliveryTimeout", err)
	}
	// Record 2 is the first on the failing partition: no checkpoint may reach it.
	if m, ok := p.mark(t); ok {
		seq, _ := strconv.Atoi(m.Position.Sequence)
		if m.End || seq >= 2 {
			t.Fatalf("checkpoint %+v passes record 2, which Kafka never acknowledged", m)
		}
	}
	h.Remove()
	if err := p.run(t, n, runtime.PolicyFail, true); err != nil {
		t.Fatalf("restart: %v", err)
	}
	got, _ := consumeIndexes(t, kc, p.c.ListenAddrs()[0], "mirror.s")
	for i := range n {
		if got[i] < 1 {
			t.Errorf("record %d missing after restart", i)
		}
	}
	if got[2] != 1 {
		t.Errorf("record 2 written %d times, want once (re-sent after the restart)", got[2])
	}
}

// TestPolicyDLQ: records that exhaust their retries go to the dead-letter topic with their
// position, the others to the mirror topic, and the shard completes.
func TestPolicyDLQ(t *testing.T) {
	kc := kcat.Find(t)
	p := newPipelineEnv(t)
	const n = 30
	h := p.failPartition2()
	defer h.Remove()
	if err := p.run(t, n, runtime.PolicyDLQ, true); err != nil {
		t.Fatal(err)
	}
	mirrored, _ := consumeIndexes(t, kc, p.c.ListenAddrs()[0], "mirror.s")
	dead, dlqMsgs := consumeIndexes(t, kc, p.c.ListenAddrs()[0], "dlq")
	for i := range n {
		if i%3 == 2 {
			if dead[i] != 1 || mirrored[i] != 0 {
				t.Errorf("record %d: %d dead letters, %d mirrored; want 1 and 0", i, dead[i], mirrored[i])
			}
		} else if mirrored[i] != 1 || dead[i] != 0 {
			t.Errorf("record %d: %d mirrored, %d dead letters; want 1 and 0", i, mirrored[i], dead[i])
		}
	}
	for _, m := range dlqMsgs {
		hdr := map[string]string{}
		for _, h := range m.Headers {
			hdr[h.Key] = h.Value
		}
		if hdr[HeaderOriginalTopic] != "mirror.s" || hdr[HeaderShardID] != pipeShard || hdr[HeaderSequenceNumber] == "" ||
			hdr[HeaderError] == "" {
			t.Errorf("dead letter headers %v", hdr)
		}
	}
}

// TestPolicySkip: records that exhaust their retries are dropped, the others mirrored once, and
// the shard completes.
func TestPolicySkip(t *testing.T) {
	kc := kcat.Find(t)
	p := newPipelineEnv(t)
	const n = 30
	h := p.failPartition2()
	defer h.Remove()
	if err := p.run(t, n, runtime.PolicySkip, true); err != nil {
		t.Fatal(err)
	}
	mirrored, _ := consumeIndexes(t, kc, p.c.ListenAddrs()[0], "mirror.s")
	for i := range n {
		want := 1
		if i%3 == 2 {
			want = 0
		}
		if mirrored[i] != want {
			t.Errorf("record %d mirrored %d times, want %d", i, mirrored[i], want)
		}
	}
}
