package kinesis

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/runtimetest"
)

// recordSink acknowledges each record as it is written and remembers its position.
type recordSink struct {
	mu   sync.Mutex
	seen map[runtime.Position]int
}

func (s *recordSink) Write(_ context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	s.mu.Lock()
	for i := range recs {
		s.seen[recs[i].Position]++
	}
	s.mu.Unlock()
	for i := range recs {
		ack(&recs[i], nil)
	}
	return nil
}
func (s *recordSink) Flush(context.Context) error { return nil }
func (s *recordSink) Close(context.Context) error { return nil }
func (s *recordSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// Through the real pipeline, with a split in the first run and a restart from the stored
// checkpoints: no record is lost, none that was checkpointed is read again, and the parent
// ended in the first run is not read again.
func TestPipelineRestartAfterSplit(t *testing.T) {
	f := newFixture(t, "piped", 1, nil, nil)
	store := runtimetest.NewMemoryStore()
	pool := runtime.NewPool(500, 1<<20)
	want := map[runtime.Position]bool{}
	put := func(prefix string, n int) {
		for _, seqs := range f.put(prefix, n, 10) {
			for _, s := range seqs {
				want[runtime.Position{Sequence: s}] = true
			}
		}
	}
	runOnce := func(sink *recordSink, during func()) {
		src, err := New(f.cfg, "test", WithLogger(quietLogger(t)), WithPoolWaitTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := runtime.NewConnector(runtime.ConnectorOptions{
			Name: "test", Source: src, Sink: sink, Store: store, Pool: pool,
			CheckpointInterval: 50 * time.Millisecond, Logger: quietLogger(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- conn.Run(ctx) }()
		during()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("connector: %v", err)
		}
	}
	waitSink := func(s *recordSink, n int) {
		deadline := time.Now().Add(30 * time.Second)
		for s.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("sink has %d records, want %d", s.count(), n)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
		}
	}

	put("a", 300)
	first := &recordSink{seen: map[runtime.Position]int{}}
	runOnce(first, func() {
		waitSink(first, 300)
		if _, err := f.cli.SplitShard(t.Context(), &kinesis.SplitShardInput{
			StreamName: aws.String("piped"), ShardToSplit: aws.String(shard0),
			NewStartingHashKey: aws.String("170141183460469231731687303715884105728"),
		}); err != nil {
			t.Fatal(err)
		}
		put("b", 300)
		waitSink(first, 600)
	})
	cps, err := store.Load(t.Context(), "test", "piped")
	if err != nil {
		t.Fatal(err)
	}
	var parentEnded bool
	for _, cp := range cps {
		if cp.Shard == shard0 && cp.Mark.End {
			parentEnded = true
		}
	}
	if !parentEnded {
		t.Fatalf("parent's end not checkpointed: %+v", cps)
	}

	put("c", 200)
	second := &recordSink{seen: map[runtime.Position]int{}}
	runOnce(second, func() { waitSink(second, 200) })

	for p := range want {
		if first.seen[p]+second.seen[p] == 0 {
			t.Errorf("record %v lost", p)
		}
	}
	for p, n := range first.seen {
		if n != 1 {
			t.Errorf("record %v written %d times in one run", p, n)
		}
		if second.seen[p] > 0 {
			t.Errorf("record %v read again after restart", p)
		}
	}
	if len(second.seen) != 200 {
		t.Errorf("second run wrote %d records, want the 200 new ones", len(second.seen))
	}
}
