package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/runtimetest"
)

// fakeOwnership is a group of one worker that the test drives: it calls the handler when told.
type fakeOwnership struct {
	mu       sync.Mutex
	h        runtime.OwnershipHandler
	ready    chan struct{}
	leaseErr error
	epoch    int64
	leases   atomic.Int32
}

func newFakeOwnership() *fakeOwnership { return &fakeOwnership{ready: make(chan struct{}), epoch: 7} }

// Slot is the shard's last digit: s0 is slot 0, s1 slot 1.
func (f *fakeOwnership) Slot(shard string) int32 {
	n, _ := strconv.Atoi(shard[len(shard)-1:])
	return int32(n)
}
func (f *fakeOwnership) Listed([]string) {}
func (f *fakeOwnership) Run(ctx context.Context, h runtime.OwnershipHandler) error {
	f.mu.Lock()
	f.h = h
	f.mu.Unlock()
	close(f.ready)
	<-ctx.Done()
	return nil
}
func (f *fakeOwnership) Lease(ctx context.Context) (runtime.Lease, error) {
	f.leases.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaseErr != nil {
		return runtime.Lease{}, f.leaseErr
	}
	return runtime.Lease{Epoch: f.epoch, Until: time.Now().Add(time.Hour)}, nil
}
func (f *fakeOwnership) handler() runtime.OwnershipHandler {
	<-f.ready
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}

// ownedReader reads shards as a group-aware source does: Own, read under the context it gives
// until it ends, give it back, and wait to own the shard again. It emits one record at a time and
// counts what each shard emitted; stopped[shard] is set while its reader is between stints.
type ownedReader struct {
	mu      sync.Mutex
	limit   int           // records per shard, in all; 0: no limit
	more    chan struct{} // closed when limit is raised
	emitted map[string]int
	reading map[string]bool
	resumed map[string][]runtime.Mark
}

func newOwnedReader() *ownedReader {
	return &ownedReader{more: make(chan struct{}), emitted: map[string]int{}, reading: map[string]bool{}, resumed: map[string][]runtime.Mark{}}
}

func (r *ownedReader) run(shards ...string) func(ctx context.Context, e runtime.Emitter) error {
	return func(ctx context.Context, e runtime.Emitter) error {
		owner := e.(runtime.ShardOwner)
		var wg sync.WaitGroup
		for _, shard := range shards {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					octx, done, err := owner.Own(ctx, shard)
					if err != nil {
						return
					}
					m, _ := e.Resume(shard)
					r.mu.Lock()
					r.reading[shard] = true
					r.resumed[shard] = append(r.resumed[shard], m)
					r.mu.Unlock()
					for octx.Err() == nil {
						if err := e.WaitForSpace(octx, 0); err != nil {
							break
						}
						if more := r.atLimit(shard); more != nil {
							select { // read all there is, for now
							case <-more:
								continue
							case <-octx.Done():
							}
							break
						}
						r.mu.Lock()
						r.emitted[shard]++
						seq := fmt.Sprintf("%05d", r.emitted[shard])
						r.mu.Unlock()
						rec := runtime.Record{Shard: shard, Stream: stream, Value: []byte("v"), Position: runtime.Position{Sequence: seq}}
						if err := e.Emit(octx, shard, []runtime.Record{rec}); err != nil {
							break
						}
					}
					r.mu.Lock()
					r.reading[shard] = false
					r.mu.Unlock()
					done()
				}
			}()
		}
		wg.Wait()
		return nil
	}
}

// atLimit returns a channel closed when the limit is raised, if shard is at the limit; else nil.
func (r *ownedReader) atLimit(shard string) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit > 0 && r.emitted[shard] >= r.limit {
		return r.more
	}
	return nil
}

func (r *ownedReader) raise(limit int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.limit = limit
	close(r.more)
	r.more = make(chan struct{})
}

func (r *ownedReader) state(shard string) (emitted int, reading bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.emitted[shard], r.reading[shard]
}

func newGroupConnector(t *testing.T, src runtime.Source, sink runtime.Sink, store runtime.CheckpointStore, own runtime.Ownership, pool *runtime.Pool) *runtime.Connector {
	t.Helper()
	c, err := runtime.NewConnector(runtime.ConnectorOptions{
		Name: "c1", Source: src, Sink: sink, Store: store, Pool: pool, Ownership: own,
		CheckpointInterval: time.Hour, ShutdownTimeout: 10 * time.Second, Owner: runtime.Owner{ID: "worker-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A shard is read only once its slot is assigned; giving the slot up stops its reader, waits for
// its records in flight and writes its checkpoint, under the group's lease and epoch, before
// Revoked returns (so before the group hands the slot to another worker). The other slot's shard
// reads on throughout.
func TestRevokedHandsOverDrainedAndCheckpointed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		own := newFakeOwnership()
		rd := newOwnedReader()
		rd.limit = 3 // s0 gets 3 records in flight, s1 3 before the handover and 3 after
		c := newGroupConnector(t, funcSource{run: rd.run("s0", "s1")}, sink, store, own, pool)
		ctx, stop := running(t, c)
		h := own.handler()
		synctest.Wait()
		if n, _ := rd.state("s0"); n != 0 {
			t.Fatalf("shard s0 emitted %d records before its slot was assigned", n)
		}
		h.Assigned(ctx, []int32{0, 1}, time.Time{})
		synctest.Wait() // both readers have their records in flight, held by the sink
		n0, _ := rd.state("s0")
		n1, _ := rd.state("s1")
		if n0 != 3 || n1 != 3 {
			t.Fatalf("emitted s0=%d s1=%d; want 3 each", n0, n1)
		}
		revoked := make(chan struct{})
		go func() { h.Revoked(ctx, []int32{0}); close(revoked) }()
		synctest.Wait()
		if _, reading := rd.state("s0"); reading {
			t.Fatal("s0's reader still reads after its slot was revoked")
		}
		rd.raise(6) // s1 reads on, s0 would too if it could
		select {
		case <-revoked:
			t.Fatal("Revoked returned while s0's records were still in flight")
		default:
		}
		if _, ok := store.Get("c1", stream, "s0"); ok {
			t.Fatal("s0 was checkpointed before its records in flight were done")
		}
		sink.setHold(false)
		sink.release() // Kafka acknowledges what was in flight
		<-revoked
		cp, ok := store.Get("c1", stream, "s0")
		if !ok || cp.Mark.Position.Sequence != fmt.Sprintf("%05d", n0) {
			t.Fatalf("s0's checkpoint after the handover %+v (found %v); want its last record %05d", cp, ok, n0)
		}
		if cp.Owner.Epoch != 7 || cp.Owner.ID != "worker-a" {
			t.Fatalf("s0's checkpoint owner %+v; want worker-a at the lease's epoch 7", cp.Owner)
		}
		synctest.Wait()
		if n, _ := rd.state("s0"); n != n0 {
			t.Fatalf("s0 emitted %d records after its slot was revoked", n-n0)
		}
		if n, reading := rd.state("s1"); n != 6 || !reading {
			t.Fatalf("s1 stopped with s0's handover: emitted %d (had %d, want 6), reading %v", n, n1, reading)
		}
		// Given back, s0 resumes from its checkpoint as stored, where another worker may have moved it.
		if err := store.Commit(ctx, []runtime.Checkpoint{{Connector: "c1", Stream: stream, Shard: "s0",
			Mark: runtime.Mark{Position: runtime.Position{Sequence: "00900"}}, Owner: runtime.Owner{ID: "worker-b", Epoch: 8}}}); err != nil {
			t.Fatal(err)
		}
		h.Assigned(ctx, []int32{0}, time.Time{})
		synctest.Wait()
		rd.mu.Lock()
		last := rd.resumed["s0"][len(rd.resumed["s0"])-1]
		rd.mu.Unlock()
		if last.Position.Sequence != "00900" {
			t.Fatalf("s0 resumed at %+v after it was assigned again; want worker-b's 00900", last)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// Lost slots stop at once and get no checkpoint: the group already gave them to another worker.
func TestLostStopsWithoutCommitting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(4, 1<<20)
		sink := &fakeSink{hold: true}
		store := runtimetest.NewMemoryStore()
		own := newFakeOwnership()
		rd := newOwnedReader()
		c := newGroupConnector(t, funcSource{run: rd.run("s0")}, sink, store, own, pool)
		ctx, stop := running(t, c)
		h := own.handler()
		h.Assigned(ctx, []int32{0}, time.Time{})
		synctest.Wait()
		h.Lost(ctx, []int32{0})
		if _, reading := rd.state("s0"); reading {
			t.Fatal("s0's reader still reads after its slot was lost")
		}
		sink.setHold(false)
		sink.release() // its records in flight still finish
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if cp, ok := store.Get("c1", stream, "s0"); ok {
			t.Fatalf("a lost shard was checkpointed: %+v", cp)
		}
		if st := pool.Stats(); st.UsedRecords != 0 {
			t.Fatalf("pool holds %d records", st.UsedRecords)
		}
	})
}

// A worker whose lease the group refuses (it was evicted while frozen, say) writes no checkpoint.
func TestNoCommitWithoutLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(4, 1<<20)
		store := runtimetest.NewMemoryStore()
		own := newFakeOwnership()
		own.leaseErr = errors.New("UNKNOWN_MEMBER_ID")
		rd := newOwnedReader()
		rd.limit = 5
		c := newGroupConnector(t, funcSource{run: rd.run("s0")}, &fakeSink{}, store, own, pool)
		ctx, stop := running(t, c)
		own.handler().Assigned(ctx, []int32{0}, time.Time{})
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if own.leases.Load() == 0 {
			t.Fatal("the final commit never asked for a lease")
		}
		if cp, ok := store.Get("c1", stream, "s0"); ok {
			t.Fatalf("a checkpoint was written without a lease: %+v", cp)
		}
	})
}

// A child shard waits for its parent's end even when another worker reads the parent: the end
// is found in the store within a checkpoint interval of its commit.
func TestWaitEndedSeesOtherWorkersEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := runtimetest.NewMemoryStore()
		own := newFakeOwnership()
		ended := make(chan time.Time, 1)
		src := funcSource{run: func(ctx context.Context, e runtime.Emitter) error {
			if err := e.WaitEnded(ctx, "parent-9"); err != nil {
				return nil
			}
			ended <- time.Now()
			<-ctx.Done()
			return nil
		}}
		c, err := runtime.NewConnector(runtime.ConnectorOptions{
			Name: "c1", Source: src, Sink: &fakeSink{}, Store: store, Pool: runtime.NewPool(4, 1<<20), Ownership: own,
			CheckpointInterval: 2 * time.Second, Owner: runtime.Owner{ID: "worker-a"},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := running(t, c)
		time.Sleep(10 * time.Second)
		select {
		case <-ended:
			t.Fatal("WaitEnded returned before the parent ended")
		default:
		}
		committed := time.Now()
		if err := store.Commit(ctx, []runtime.Checkpoint{{Connector: "c1", Stream: stream, Shard: "parent-9",
			Mark: runtime.Mark{Position: runtime.Position{Sequence: "5"}, End: true}, Owner: runtime.Owner{ID: "worker-b", Epoch: 3}}}); err != nil {
			t.Fatal(err)
		}
		at := <-ended
		if waited := at.Sub(committed); waited > 2*time.Second {
			t.Fatalf("the child saw its parent's end %v after another worker wrote it; want within the 2s checkpoint interval", waited)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}
