package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/runtimetest"
)

const stream = "orders"

// funcSource is a Source whose Run is a function.
type funcSource struct {
	run func(ctx context.Context, e runtime.Emitter) error
}

func (s funcSource) Stream() string { return stream }
func (s funcSource) Run(ctx context.Context, e runtime.Emitter) error {
	return s.run(ctx, e)
}

// emitN emits n records of one shard, one record per Emit, with sequence numbers from..from+n-1,
// waiting for space first as a real reader does. It stops quietly when ctx ends.
func emitN(shard string, from, n int) func(ctx context.Context, e runtime.Emitter) error {
	return func(ctx context.Context, e runtime.Emitter) error {
		for i := from; i < from+n; i++ {
			if err := e.WaitForSpace(ctx, 0); err != nil {
				return nil
			}
			rec := runtime.Record{Shard: shard, Stream: stream, Value: make([]byte, 10),
				Position: runtime.Position{Sequence: fmt.Sprintf("%05d", i)}}
			if err := e.Emit(ctx, shard, []runtime.Record{rec}); err != nil {
				return nil
			}
		}
		<-ctx.Done()
		return nil
	}
}

// fakeSink records what it is given. With hold set it keeps acks until release is called;
// failAt fails the record at that sequence number.
type fakeSink struct {
	mu      sync.Mutex
	hold    bool
	failAt  map[string]error
	pending []func()
	got     []runtime.Position
	dead    []runtime.Position
	flushed int
}

func (s *fakeSink) Write(ctx context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		r := &recs[i]
		s.got = append(s.got, r.Position)
		if s.hold {
			// The outcome is decided when the ack is released, as a sink's Close decides it late.
			s.pending = append(s.pending, func() {
				s.mu.Lock()
				err := s.failAt[r.Position.Sequence]
				s.mu.Unlock()
				ack(r, err)
			})
			continue
		}
		ack(r, s.failAt[r.Position.Sequence])
	}
	return nil
}

// release acks every held record, in the order they were written.
func (s *fakeSink) release() {
	s.mu.Lock()
	p := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, f := range p {
		f()
	}
}

func (s *fakeSink) setHold(h bool) {
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
}

func (s *fakeSink) written() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

func (s *fakeSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	s.flushed++
	s.mu.Unlock()
	return nil
}

func (s *fakeSink) Close(ctx context.Context) error { return nil }

type dlqSink struct{ *fakeSink }

func (s dlqSink) WriteDeadLetter(ctx context.Context, rec *runtime.Record, cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, rec.Position)
	return nil
}

func newConnector(t *testing.T, src runtime.Source, sink runtime.Sink, store runtime.CheckpointStore, pool *runtime.Pool, policy runtime.ErrorPolicy) *runtime.Connector {
	t.Helper()
	c, err := runtime.NewConnector(runtime.ConnectorOptions{
		Name: "c1", Source: src, Sink: sink, Store: store, Pool: pool,
		CheckpointInterval: time.Second, ShutdownTimeout: 10 * time.Second, ErrorPolicy: policy,
		Owner: runtime.Owner{ID: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// running starts c.Run on a goroutine and returns its context and the function that cancels it
// and returns what Run returned.
func running(t *testing.T, c *runtime.Connector) (context.Context, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return ctx, func() error {
		cancel()
		return <-done
	}
}

func checkpoint(t *testing.T, store *runtimetest.MemoryStore, shard string) runtime.Mark {
	t.Helper()
	cp, ok := store.Get("c1", stream, shard)
	if !ok {
		return runtime.Mark{}
	}
	return cp.Mark
}

// A sink that acknowledges slowly holds the source back: the source never has more in flight than
// the pool allows, and everything arrives once the sink catches up.
func TestSlowSinkHoldsSourceBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(10, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		c := newConnector(t, funcSource{run: emitN("s1", 0, 100)}, sink, store, pool, "")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()

		synctest.Wait()
		if got := sink.written(); got != 10 {
			t.Fatalf("sink got %d records while none were acked; want exactly the pool's 10", got)
		}
		if st := pool.Stats(); st.UsedRecords != 10 || st.Waiters != 1 {
			t.Fatalf("pool %+v; want 10 used and the reader waiting", st)
		}
		time.Sleep(5 * time.Second) // fake time: checkpoint ticks pass
		if m := checkpoint(t, store, "s1"); !m.Position.IsZero() {
			t.Fatalf("checkpoint %v moved with nothing acknowledged", m)
		}
		sink.setHold(false)
		sink.release()
		synctest.Wait()
		if got := sink.written(); got != 100 {
			t.Fatalf("sink got %d records; want 100", got)
		}
		time.Sleep(2 * time.Second)
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00099" {
			t.Fatalf("checkpoint %v; want 00099", m)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i, p := range sink.got {
			if want := fmt.Sprintf("%05d", i); p.Sequence != want {
				t.Fatalf("record %d is %s; want %s (shard order)", i, p.Sequence, want)
			}
		}
		if st := pool.Stats(); st.UsedRecords != 0 || st.UsedBytes != 0 {
			t.Fatalf("pool not empty after the run: %+v", st)
		}
	})
}

// Under errors.policy fail, a record that fails stops the connector, and no checkpoint ever
// passes it, even though records after it were acknowledged.
func TestFailingRecordNeverMovesCheckpointPastIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		sink := &fakeSink{failAt: map[string]error{"00005": errors.New("broker said no")}}
		store := runtimetest.NewMemoryStore()
		c := newConnector(t, funcSource{run: emitN("s1", 0, 20)}, sink, store, pool, runtime.PolicyFail)
		err := c.Run(t.Context())
		if err == nil || !errors.Is(err, sink.failAt["00005"]) {
			t.Fatalf("Run = %v; want the record's error", err)
		}
		if st := c.Status(); st.State != runtime.StateFailed || st.Error == "" {
			t.Fatalf("status %+v; want FAILED with the error", st)
		}
		for _, cp := range store.History() {
			if cp.Mark.Position.Sequence >= "00005" {
				t.Fatalf("checkpoint %v passed the failed record 00005", cp.Mark)
			}
		}
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00004" {
			t.Fatalf("final checkpoint %v; want 00004, the last record before the failure", m)
		}
		if st := pool.Stats(); st.UsedRecords != 0 || st.UsedBytes != 0 {
			t.Fatalf("pool not empty after failure: %+v", st)
		}
	})
}

// errors.policy skip and dlq count a failed record as done, so the checkpoint moves past it.
func TestSkipAndDLQPoliciesCountRecordAsDone(t *testing.T) {
	for _, policy := range []runtime.ErrorPolicy{runtime.PolicySkip, runtime.PolicyDLQ} {
		t.Run(string(policy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pool := runtime.NewPool(1000, 1<<20)
				fs := &fakeSink{failAt: map[string]error{"00003": errors.New("too large")}}
				var sink runtime.Sink = fs
				if policy == runtime.PolicyDLQ {
					sink = dlqSink{fs}
				}
				store := runtimetest.NewMemoryStore()
				c := newConnector(t, funcSource{run: emitN("s1", 0, 10)}, sink, store, pool, policy)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error)
				go func() { done <- c.Run(ctx) }()
				synctest.Wait()
				time.Sleep(2 * time.Second)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00009" {
					t.Fatalf("checkpoint %v; want 00009", m)
				}
				if policy == runtime.PolicyDLQ && (len(fs.dead) != 1 || fs.dead[0].Sequence != "00003") {
					t.Fatalf("dead letters %v; want [00003]", fs.dead)
				}
				if st := pool.Stats(); st.UsedRecords != 0 {
					t.Fatalf("pool not empty: %+v", st)
				}
			})
		})
	}
}

// Shutdown stops reading, waits for in-flight records to be acknowledged, flushes the sink and
// writes the final checkpoint.
func TestShutdownDrains(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		c := newConnector(t, funcSource{run: emitN("s1", 0, 50)}, sink, store, pool, "")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Run returned %v with 50 records in flight", err)
		default:
		}
		time.Sleep(3 * time.Second) // the acks come late, within shutdown_timeout
		sink.release()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00049" {
			t.Fatalf("final checkpoint %v; want 00049", m)
		}
		if sink.flushed == 0 {
			t.Fatal("sink was not flushed on shutdown")
		}
		if st := c.Status(); st.State != runtime.StateStopped {
			t.Fatalf("state %s; want STOPPED", st.State)
		}
	})
}

// When the shutdown timeout passes, Run returns without acknowledging what is still in flight.
func TestShutdownTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		c := newConnector(t, funcSource{run: emitN("s1", 0, 5)}, sink, store, pool, "")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		start := time.Now()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 10*time.Second {
			t.Fatalf("Run waited %v; want the 10s shutdown timeout", waited)
		}
		if _, ok := store.Get("c1", stream, "s1"); ok {
			t.Fatal("a checkpoint was written for records never acknowledged")
		}
		// The sink's Close fails what is left; that only returns pool space.
		sink.mu.Lock()
		sink.failAt = map[string]error{"00000": errors.New("closed"), "00001": errors.New("closed"), "00002": errors.New("closed"), "00003": errors.New("closed"), "00004": errors.New("closed")}
		sink.mu.Unlock()
		sink.release()
		if st := pool.Stats(); st.UsedRecords != 0 || st.UsedBytes != 0 {
			t.Fatalf("pool not empty after the sink failed what was left: %+v", st)
		}
		if st := c.Status(); st.State != runtime.StateStopped {
			t.Fatalf("late failures after Run returned changed the state to %s", st.State)
		}
	})
}

// A shard's end becomes a checkpoint once its records are acknowledged, and WaitEnded, which
// child shards wait on, returns only then.
func TestShardEndAndLineageWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		childStarted := make(chan struct{})
		src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
			for i := range 3 {
				rec := runtime.Record{Shard: "parent", Position: runtime.Position{Sequence: fmt.Sprint(i)}}
				if err := e.Emit(ctx, "parent", []runtime.Record{rec}); err != nil {
					return err
				}
			}
			if err := e.EndShard(ctx, "parent"); err != nil {
				return err
			}
			if err := e.WaitEnded(ctx, "parent"); err != nil {
				return nil
			}
			close(childStarted)
			<-ctx.Done()
			return nil
		}}
		c := newConnector(t, src, sink, store, pool, "")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		time.Sleep(3 * time.Second)
		select {
		case <-childStarted:
			t.Fatal("child started before the parent's records were acknowledged")
		default:
		}
		sink.release()
		synctest.Wait() // the end commits at once, not at the next tick
		select {
		case <-childStarted:
		default:
			t.Fatal("child did not start once the parent's end was checkpointed")
		}
		if m := checkpoint(t, store, "parent"); !m.End || m.Position.Sequence != "2" {
			t.Fatalf("parent checkpoint %+v; want end at 2", m)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Resume exposes the loaded checkpoints, a loaded end releases WaitEnded at once, and the epoch
// grows past the highest one stored.
func TestResumeFromStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := runtimetest.NewMemoryStore(
			runtime.Checkpoint{Connector: "c1", Stream: stream, Shard: "s1", Mark: runtime.Mark{Position: runtime.Position{Sequence: "42", SubSequence: 3}}, Owner: runtime.Owner{ID: "x", Epoch: 7}},
			runtime.Checkpoint{Connector: "c1", Stream: stream, Shard: "s0", Mark: runtime.Mark{Position: runtime.Position{Sequence: "9"}, End: true}},
			runtime.Checkpoint{Connector: "c1", Stream: "other", Shard: "s1", Mark: runtime.Mark{Position: runtime.Position{Sequence: "99"}}},
		)
		var got runtime.Mark
		var ok, ended bool
		src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
			got, ok = e.Resume("s1")
			ended = e.WaitEnded(ctx, "s0") == nil
			rec := runtime.Record{Shard: "s1", Position: runtime.Position{Sequence: "43"}}
			return e.Emit(ctx, "s1", []runtime.Record{rec})
		}}
		c := newConnector(t, src, &fakeSink{}, store, runtime.NewPool(10, 1000), "")
		if err := c.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !ok || got.Position != (runtime.Position{Sequence: "42", SubSequence: 3}) {
			t.Fatalf("Resume = %+v, %v", got, ok)
		}
		if !ended {
			t.Fatal("WaitEnded did not return for a shard whose end was loaded")
		}
		cp, _ := store.Get("c1", stream, "s1")
		if cp.Mark.Position.Sequence != "43" || cp.Owner.Epoch != 8 || cp.Owner.ID != "test" {
			t.Fatalf("checkpoint %+v; want 43 written by test at epoch 8", cp)
		}
	})
}

// Pause stops reading (WaitForSpace blocks, then times out) while in-flight records still finish.
func TestPauseStopsReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		var waitErr error
		gotErr := make(chan struct{})
		src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
			rec := runtime.Record{Shard: "s1", Position: runtime.Position{Sequence: "1"}}
			if err := e.Emit(ctx, "s1", []runtime.Record{rec}); err != nil {
				return err
			}
			<-gotErr
			waitErr = e.WaitForSpace(ctx, 30*time.Second)
			close(gotErr)
			<-ctx.Done()
			return nil
		}}
		c := newConnector(t, src, sink, store, pool, "")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		c.Pause()
		if st := c.Status(); st.State != runtime.StatePaused {
			t.Fatalf("state %s; want PAUSED", st.State)
		}
		gotErr <- struct{}{}
		sink.release() // in flight still completes while paused
		<-gotErr
		if !errors.Is(waitErr, runtime.ErrBackpressureTimeout) {
			t.Fatalf("WaitForSpace while paused = %v; want ErrBackpressureTimeout", waitErr)
		}
		time.Sleep(2 * time.Second)
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "1" {
			t.Fatalf("checkpoint %v; the in-flight record did not complete while paused", m)
		}
		c.Unpause()
		if st := c.Status(); st.State != runtime.StateRunning {
			t.Fatalf("state %s; want RUNNING", st.State)
		}
		if err := c.WaitForSpace(ctx, time.Second); err != nil {
			t.Fatalf("WaitForSpace after resume = %v", err)
		}
		cancel()
		<-done
	})
}

// A checkpoint store that fails is retried: the marks are written once it recovers.
func TestCheckpointStoreErrorIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := runtimetest.NewMemoryStore()
		store.FailCommits(errors.New("broker unavailable"))
		c := newConnector(t, funcSource{run: emitN("s1", 0, 3)}, &fakeSink{}, store, runtime.NewPool(10, 1000), "")
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		time.Sleep(2500 * time.Millisecond) // two failed ticks
		if _, ok := store.Get("c1", stream, "s1"); ok {
			t.Fatal("a failing store holds a checkpoint")
		}
		store.FailCommits(nil)
		time.Sleep(time.Second)
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00002" {
			t.Fatalf("checkpoint %v; want 00002", m)
		}
		cancel()
		<-done
	})
}

// A store that cannot load fails the connector at start with the cause.
func TestLoadErrorFailsStart(t *testing.T) {
	store := runtimetest.NewMemoryStore()
	store.FailLoad(errors.New("topic unreadable"))
	c := newConnector(t, funcSource{run: emitN("s1", 0, 3)}, &fakeSink{}, store, runtime.NewPool(10, 1000), "")
	err := c.Run(t.Context())
	if err == nil || c.Status().State != runtime.StateFailed {
		t.Fatalf("Run = %v, state %s; want a load error and FAILED", err, c.Status().State)
	}
}
