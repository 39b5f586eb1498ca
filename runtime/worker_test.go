package runtime_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/runtimetest"
)

// workerFixture runs one connector in a Worker. Each run gets a fresh source that resumes shard
// s1 from its checkpoint, emits five records after it and waits; the sink acknowledges at once.
type workerFixture struct {
	w      *runtime.Worker
	store  *runtimetest.MemoryStore
	builds atomic.Int32
	cancel context.CancelFunc
	done   chan error

	mu      sync.Mutex // mu guards the fields below
	resumed []runtime.Mark
	sinks   []*fakeSink
}

func newWorkerFixture(t *testing.T, store *runtimetest.MemoryStore) *workerFixture {
	t.Helper()
	f := &workerFixture{store: store, done: make(chan error, 1)}
	spec := runtime.ConnectorSpec{
		Name: "c1", Stream: stream, Store: store,
		Build: func(ctx context.Context) (runtime.Parts, error) {
			f.builds.Add(1)
			sink := &fakeSink{}
			src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
				m, _ := e.Resume("s1")
				f.mu.Lock()
				f.resumed = append(f.resumed, m)
				f.mu.Unlock()
				return emitN("s1", 100*int(f.builds.Load()), 5)(ctx, e)
			}}
			f.mu.Lock()
			f.sinks = append(f.sinks, sink)
			f.mu.Unlock()
			return runtime.Parts{Options: runtime.ConnectorOptions{
				Source: src, Sink: sink, Store: store, CheckpointInterval: time.Second, ShutdownTimeout: time.Second,
			}}, nil
		},
	}
	w, err := runtime.NewWorker(runtime.NewPool(1000, 1<<20), nil, nil, spec)
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	return f
}

func (f *workerFixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	f.cancel = cancel
	go func() { f.done <- f.w.Run(ctx) }()
}

func (f *workerFixture) stop(t *testing.T) {
	t.Helper()
	f.cancel()
	if err := <-f.done; err != nil {
		t.Fatal(err)
	}
}

// written is what the latest run's sink was given.
func (f *workerFixture) written() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sinks) == 0 {
		return 0
	}
	return f.sinks[len(f.sinks)-1].written()
}

func (f *workerFixture) state(t *testing.T) runtime.State {
	t.Helper()
	st, err := f.w.Status("c1")
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

// A pause sent while a connector is stopped is kept: the restart starts it PAUSED, and it reads
// nothing until it is resumed. The same holds for a pause sent before the Worker starts it.
func TestPauseWhileStoppedSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newWorkerFixture(t, runtimetest.NewMemoryStore())
		if err := f.w.Pause("c1"); err != nil {
			t.Fatal(err)
		}
		f.run(t)
		synctest.Wait()
		if s := f.state(t); s != runtime.StatePaused {
			t.Fatalf("state %s after a pause sent before the start; want PAUSED", s)
		}
		if n := f.written(); n != 0 {
			t.Fatalf("wrote %d records while paused from the start", n)
		}
		if err := f.w.Resume("c1"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := f.written(); n != 5 {
			t.Fatalf("wrote %d records after resume; want 5", n)
		}

		if err := f.w.Stop(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
		if err := f.w.Pause("c1"); err != nil {
			t.Fatal(err)
		}
		if err := f.w.Restart(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s := f.state(t); s != runtime.StatePaused {
			t.Fatalf("state %s after a pause while stopped and a restart; want PAUSED", s)
		}
		if n := f.written(); n != 0 {
			t.Fatalf("the restarted run wrote %d records although the connector was paused", n)
		}
		if err := f.w.Resume("c1"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if s, n := f.state(t), f.written(); s != runtime.StateRunning || n != 5 {
			t.Fatalf("after resume: state %s, %d records written; want RUNNING and 5", s, n)
		}
		f.stop(t)
	})
}

// An offsets edit holds the connector stopped until its write is done: a restart asked for
// meanwhile starts once the edit ends, so it loads the edited checkpoint rather than the old
// one (which it would later write back over the operator's edit).
func TestRestartDuringOffsetsEditWaitsForTheEdit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := runtimetest.NewMemoryStore()
		f := newWorkerFixture(t, store)
		f.run(t)
		synctest.Wait()
		if err := f.w.Stop(t.Context(), "c1"); err != nil {
			t.Fatal(err)
		}
		if m := checkpoint(t, store, "s1"); m.Position.Sequence != "00104" {
			t.Fatalf("checkpoint after stop %+v; want 00104", m)
		}

		unblock := make(chan struct{})
		store.OnCommit(func(ctx context.Context, cps []runtime.Checkpoint) error {
			if len(cps) == 1 && cps[0].Owner.ID == runtime.OffsetsAPIOwner {
				<-unblock
			}
			return nil
		})
		edited := make(chan error, 1)
		go func() {
			edited <- f.w.SetOffsets(t.Context(), "c1", []runtime.Checkpoint{{Shard: "s1", Mark: runtime.Mark{Position: runtime.Position{Sequence: "00050"}}}})
		}()
		synctest.Wait() // the edit is writing
		if err := f.w.Restart(t.Context(), "c1"); err != nil {
			t.Fatalf("restart during an edit: %v", err)
		}
		synctest.Wait()
		if n := f.builds.Load(); n != 1 {
			t.Fatalf("the connector started again (%d builds) while its offsets were being written", n)
		}
		close(unblock)
		if err := <-edited; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := f.builds.Load(); n != 2 {
			t.Fatalf("%d builds; the restart asked for during the edit should start once it ends", n)
		}
		f.mu.Lock()
		resumed := f.resumed[len(f.resumed)-1]
		f.mu.Unlock()
		if resumed.Position.Sequence != "00050" {
			t.Fatalf("the restarted run resumed at %+v; want the edited 00050", resumed)
		}
		f.stop(t)
	})
}

// Offsets written by the API carry an epoch above every stored one, and the next run counts its
// own epoch from them, so an edit is never outranked by what an earlier run wrote.
func TestOffsetsEditEpochAboveStored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := runtimetest.NewMemoryStore(runtime.Checkpoint{Connector: "c1", Stream: stream, Shard: "s2",
			Mark: runtime.Mark{Position: runtime.Position{Sequence: "7"}}, Owner: runtime.Owner{ID: "old", Epoch: 5}})
		f := newWorkerFixture(t, store)
		if err := f.w.SetOffsets(t.Context(), "c1", []runtime.Checkpoint{{Shard: "s1", Mark: runtime.Mark{Position: runtime.Position{Sequence: "00050"}}}}); err != nil {
			t.Fatal(err)
		}
		cp, _ := store.Get("c1", stream, "s1")
		if cp.Owner.Epoch != 6 || cp.Owner.ID != runtime.OffsetsAPIOwner {
			t.Fatalf("edited checkpoint's owner %+v; want %s at epoch 6, above the stored 5", cp.Owner, runtime.OffsetsAPIOwner)
		}
		f.run(t)
		synctest.Wait()
		f.stop(t)
		cp, _ = store.Get("c1", stream, "s1")
		if cp.Owner.Epoch != 7 || cp.Mark.Position.Sequence != "00104" {
			t.Fatalf("the run after the edit wrote %+v; want position 00104 at epoch 7", cp)
		}
	})
}

// A stop that comes while a connector is still being built (its parts connect to Kafka, its group
// is set up) is a stop, not a failure: the Worker returns nil, so the process exits 0 on a
// SIGTERM during its start.
func TestStopWhileBuildingIsNotAFailure(t *testing.T) {
	building := make(chan struct{})
	spec := runtime.ConnectorSpec{
		Name: "c1", Stream: stream, Store: runtimetest.NewMemoryStore(),
		Build: func(ctx context.Context) (runtime.Parts, error) {
			close(building)
			<-ctx.Done()
			return runtime.Parts{}, fmt.Errorf("wait for group coordination topic: %w", ctx.Err())
		},
	}
	w, err := runtime.NewWorker(runtime.NewPool(1000, 1<<20), nil, nil, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-building
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after a stop during the connector's start; want nil", err)
	}
	st, err := w.Status("c1")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.StateStopped || st.Error != "" {
		t.Errorf("status %s %q after a stop during the start; want STOPPED with no error", st.State, st.Error)
	}
}
