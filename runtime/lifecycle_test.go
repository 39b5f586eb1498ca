package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/runtimetest"
)

// A pause that reaches a connector before Run (the Worker pauses a new run before starting it
// when a pause was asked for while it was stopped or starting) is kept: Run starts it PAUSED and
// nothing is read until Unpause.
func TestPauseBeforeRunStartsPaused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		sink := &fakeSink{}
		c := newConnector(t, funcSource{run: emitN("s1", 0, 5)}, sink, runtimetest.NewMemoryStore(), pool, "")
		c.Pause()
		_, stop := running(t, c)
		synctest.Wait()
		if st := c.Status(); st.State != runtime.StatePaused {
			t.Fatalf("state %s after a pause before Run; want PAUSED", st.State)
		}
		if n := sink.written(); n != 0 {
			t.Fatalf("a connector paused before it started wrote %d records", n)
		}
		c.Unpause()
		synctest.Wait()
		if st := c.Status(); st.State != runtime.StateRunning {
			t.Fatalf("state %s after Unpause; want RUNNING", st.State)
		}
		if n := sink.written(); n != 5 {
			t.Fatalf("wrote %d records after Unpause; want 5", n)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// When the drain runs out of the shutdown timeout, the records acknowledged so far still get
// their final checkpoint: the final commit has a budget of its own instead of the drain's
// expired context (the store, like Kafka, fails a commit whose context has ended).
func TestDrainTimeoutStillCheckpointsAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		// Records 00003 and 00004 are never acknowledged before the drain gives up on them.
		sink := &heldAfterSink{fakeSink: &fakeSink{}, holdFrom: "00003"}
		store := runtimetest.NewMemoryStore()
		c, err := runtime.NewConnector(runtime.ConnectorOptions{
			Name: "c1", Source: funcSource{run: emitN("s1", 0, 5)}, Sink: sink, Store: store, Pool: pool,
			CheckpointInterval: time.Hour, ShutdownTimeout: 2 * time.Second, FinalCommitTimeout: time.Second,
			Owner: runtime.Owner{ID: "test"},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, stop := running(t, c)
		synctest.Wait()
		start := time.Now()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Fatalf("drain took %v; want the 2s shutdown timeout", waited)
		}
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00002" {
			t.Fatalf("final checkpoint %+v; want 00002, the last acknowledged record before the held ones", m)
		}
		sink.release() // what the sink's Close does with what is left
	})
}

// heldAfterSink acknowledges records at once up to holdFrom (by sequence number) and holds the
// rest until release.
type heldAfterSink struct {
	*fakeSink
	holdFrom string
}

func (s *heldAfterSink) Write(ctx context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	for i := range recs {
		s.fakeSink.setHold(recs[i].Position.Sequence >= s.holdFrom)
		if err := s.fakeSink.Write(ctx, recs[i:i+1], ack); err != nil {
			return err
		}
	}
	return nil
}

// Under errors.policy dlq, a record that fails after the dead-letter goroutine has ended (the
// drain's final commit runs after it) is released, not queued for nobody: the pool, shared by
// every connector of the process, gets all its space back.
func TestDLQFailureAfterDeadLetterWorkerEndedReleasesPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		fs := &fakeSink{failAt: map[string]error{"00000": errors.New("broker said no")}}
		sink := dlqSink{fs}
		store := runtimetest.NewMemoryStore()
		// Shard s1's record is held until the final commit, then fails; shard s2's is acked at
		// once, so that the final commit has something to write.
		src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
			fs.setHold(true)
			if err := e.Emit(ctx, "s1", []runtime.Record{{Shard: "s1", Stream: stream, Value: []byte("x"), Position: runtime.Position{Sequence: "00000"}}}); err != nil {
				return err
			}
			fs.setHold(false)
			if err := e.Emit(ctx, "s2", []runtime.Record{{Shard: "s2", Stream: stream, Value: []byte("y"), Position: runtime.Position{Sequence: "00001"}}}); err != nil {
				return err
			}
			<-ctx.Done()
			return nil
		}}
		var hooked atomic.Bool
		store.OnCommit(func(ctx context.Context, cps []runtime.Checkpoint) error {
			if hooked.CompareAndSwap(false, true) {
				fs.release() // s1's record fails now, after the dead-letter goroutine ended
			}
			return nil
		})
		c, err := runtime.NewConnector(runtime.ConnectorOptions{
			Name: "c1", Source: src, Sink: sink, Store: store, Pool: pool, ErrorPolicy: runtime.PolicyDLQ,
			CheckpointInterval: time.Hour, ShutdownTimeout: time.Second, Owner: runtime.Owner{ID: "test"},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, stop := running(t, c)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if !hooked.Load() {
			t.Fatal("the final commit did not happen, so the failure was not injected where it should be")
		}
		if st := pool.Stats(); st.UsedRecords != 0 || st.UsedBytes != 0 {
			t.Fatalf("pool holds %d records, %d bytes after Run returned; a late dead-letter failure leaked its space", st.UsedRecords, st.UsedBytes)
		}
		if m := checkpoint(t, store, "s1"); !m.Position.IsZero() {
			t.Fatalf("shard s1 checkpointed at %+v, past a record that was never dead-lettered", m)
		}
	})
}

// A sink's Write error reaches each of its records through its ack and the error policy; Emit
// itself returns nil once the records are registered, so that a reader never reads (and
// registers) them twice.
func TestSinkWriteErrorIsDecidedByAcksNotEmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(1000, 1<<20)
		store := runtimetest.NewMemoryStore()
		var emitErr error
		emitted := make(chan struct{})
		src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
			recs := make([]runtime.Record, 3)
			for i := range recs {
				recs[i] = runtime.Record{Shard: "s1", Stream: stream, Value: []byte("v"), Position: runtime.Position{Sequence: fmt.Sprintf("%05d", i)}}
			}
			emitErr = e.Emit(ctx, "s1", recs)
			close(emitted)
			<-ctx.Done()
			return nil
		}}
		c := newConnector(t, src, failingWriteSink{}, store, pool, runtime.PolicySkip)
		_, stop := running(t, c)
		<-emitted
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if emitErr != nil {
			t.Fatalf("Emit returned %v for records it had registered (and the sink had failed through their acks)", emitErr)
		}
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00002" {
			t.Fatalf("checkpoint %+v; want 00002: errors.policy skip counts the three failed records as done", m)
		}
		if st := pool.Stats(); st.UsedRecords != 0 {
			t.Fatalf("pool holds %d records", st.UsedRecords)
		}
	})
}

// failingWriteSink fails every record through its ack and returns an error, as a sink whose
// Write is cut short does.
type failingWriteSink struct{}

func (failingWriteSink) Write(ctx context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	for i := range recs {
		ack(&recs[i], errors.New("sink is closing"))
	}
	return errors.New("write: sink is closing")
}
func (failingWriteSink) Flush(context.Context) error { return nil }
func (failingWriteSink) Close(context.Context) error { return nil }
