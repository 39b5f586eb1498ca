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

// txSink is a fakeSink that writes in transactions: Commit writes the checkpoints marks gives
// into store, as a transactional sink does with its records; failNext makes the next Commit
// abort (or fence) instead.
type txSink struct {
	*fakeSink
	store *runtimetest.MemoryStore

	mu       sync.Mutex
	commits  int
	aborts   int
	failNext error
	fences   []*runtime.Lease
	hold     chan struct{} // when set, Commit waits for it to close (or for ctx) before it goes on
	holding  chan struct{} // closed once a Commit waits on hold
	heldCut  bool          // the held Commit's context ended before hold closed
}

func (s *txSink) Commit(ctx context.Context, marks func() ([]runtime.Checkpoint, error), fence *runtime.Lease) error {
	s.mu.Lock()
	fail := s.failNext
	s.failNext = nil
	s.fences = append(s.fences, fence)
	hold, holding := s.hold, s.holding
	s.hold = nil
	s.mu.Unlock()
	if hold != nil {
		close(holding)
		select {
		case <-hold:
		case <-ctx.Done():
			s.mu.Lock()
			s.aborts++
			s.heldCut = true
			s.mu.Unlock()
			return fmt.Errorf("%w: %w", runtime.ErrAbortTransaction, ctx.Err())
		}
	}
	cps, err := marks()
	if err == nil {
		err = fail
	}
	if err != nil {
		s.mu.Lock()
		s.aborts++
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.commits++
	s.mu.Unlock()
	if len(cps) == 0 {
		return nil
	}
	return s.store.Commit(ctx, cps)
}

func (s *txSink) Abort(ctx context.Context) error {
	s.mu.Lock()
	s.aborts++
	s.mu.Unlock()
	return nil
}

func (s *txSink) counts() (commits, aborts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits, s.aborts
}

func newTxConnector(t *testing.T, src runtime.Source, sink *txSink, store runtime.CheckpointStore, pool *runtime.Pool, interval time.Duration) *runtime.Connector {
	t.Helper()
	c, err := runtime.NewConnector(runtime.ConnectorOptions{
		Name: "c1", Source: src, Sink: sink, Store: store, Pool: pool, Delivery: runtime.DeliveryExactlyOnce,
		CheckpointInterval: interval, ShutdownTimeout: 10 * time.Second, Owner: runtime.Owner{ID: "worker-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Under exactly-once a record's pool space comes back only when its transaction commits, and the
// checkpoint goes into the transaction (not to the store on its own).
func TestExactlyOnceReleasesAtCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		store := runtimetest.NewMemoryStore()
		sink := &txSink{fakeSink: &fakeSink{}, store: store}
		rd := newOwnedReader()
		rd.limit = 5
		c := newTxConnector(t, funcSource{run: rd.run("s0")}, sink, store, pool, 10*time.Second)
		_, stop := running(t, c)
		synctest.Wait()
		if n := sink.written(); n != 5 {
			t.Fatalf("wrote %d records; want 5", n)
		}
		if st := pool.Stats(); st.UsedRecords != 5 {
			t.Fatalf("pool holds %d records before the commit; acknowledged records keep their space until their transaction commits", st.UsedRecords)
		}
		if _, ok := store.Get("c1", stream, "s0"); ok {
			t.Fatal("a checkpoint was written before the transaction committed")
		}
		time.Sleep(10 * time.Second) // the checkpoint interval
		synctest.Wait()
		if st := pool.Stats(); st.UsedRecords != 0 {
			t.Fatalf("pool holds %d records after the commit", st.UsedRecords)
		}
		if cp, ok := store.Get("c1", stream, "s0"); !ok || cp.Mark.Position.Sequence != "00005" {
			t.Fatalf("checkpoint %+v (found %v) after the commit; want 00005", cp, ok)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A transaction commits early when the pool is half full, so readers never wait on space only a
// commit would give back.
func TestExactlyOnceCommitsAtHalfPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(10, 1<<20)
		store := runtimetest.NewMemoryStore()
		sink := &txSink{fakeSink: &fakeSink{}, store: store}
		rd := newOwnedReader()
		rd.limit = 30
		c := newTxConnector(t, funcSource{run: rd.run("s0")}, sink, store, pool, time.Hour)
		_, stop := running(t, c)
		synctest.Wait()
		if n, _ := rd.state("s0"); n != 30 {
			t.Fatalf("read %d of 30 records with a 10-record pool and an hour's checkpoint interval; commits at half the pool should have let it through", n)
		}
		if commits, _ := sink.counts(); commits < 3 {
			t.Fatalf("%d commits for 30 records through a 10-record pool", commits)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if cp, _ := store.Get("c1", stream, "s0"); cp.Mark.Position.Sequence != "00030" {
			t.Fatalf("final checkpoint %+v; want 00030", cp)
		}
	})
}

// An aborted transaction rewinds: every reader stops, the transaction's records give their space
// back, and the readers resume from the last committed checkpoint.
func TestExactlyOnceAbortRewinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		store := runtimetest.NewMemoryStore()
		sink := &txSink{fakeSink: &fakeSink{}, store: store}
		rd := newOwnedReader()
		rd.limit = 4
		c := newTxConnector(t, funcSource{run: rd.run("s0")}, sink, store, pool, 10*time.Second)
		_, stop := running(t, c)
		synctest.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait() // committed at 00004
		sink.mu.Lock()
		sink.failNext = errors.New("broker said no")
		sink.mu.Unlock()
		rd.raise(7) // 00005..00007 go into the transaction that aborts
		synctest.Wait()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if _, aborts := sink.counts(); aborts < 2 {
			t.Fatalf("%d aborts; want the failed commit and the rewind's abort", aborts)
		}
		rd.mu.Lock()
		resumed := rd.resumed["s0"]
		rd.mu.Unlock()
		if len(resumed) != 2 || resumed[1].Position.Sequence != "00004" {
			t.Fatalf("the reader resumed at %+v; want a second start at the committed 00004", resumed)
		}
		if cp, _ := store.Get("c1", stream, "s0"); cp.Mark.Position.Sequence != "00004" {
			t.Fatalf("checkpoint %+v after the abort; want still 00004", cp)
		}
		if st := pool.Stats(); st.UsedRecords != 0 {
			t.Fatalf("pool holds %d records after the rewind", st.UsedRecords)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A record whose produce failed inside the transaction dooms it: it aborts at once (without
// waiting for the interval) and everything since the last commit is read again.
func TestExactlyOnceFailedProduceAborts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		store := runtimetest.NewMemoryStore()
		fs := &fakeSink{failAt: map[string]error{"00002": fmt.Errorf("%w: NOT_LEADER", runtime.ErrAbortTransaction)}}
		sink := &txSink{fakeSink: fs, store: store}
		rd := newOwnedReader()
		rd.limit = 3
		c := newTxConnector(t, funcSource{run: rd.run("s0")}, sink, store, pool, time.Hour)
		_, stop := running(t, c)
		synctest.Wait()
		if _, aborts := sink.counts(); aborts == 0 {
			t.Fatal("no abort after a produce failed inside the transaction")
		}
		if st := c.Status(); st.State != runtime.StateRunning {
			t.Fatalf("state %s (%s); a failed produce inside a transaction rewinds, it does not stop the connector", st.State, st.Error)
		}
		rd.mu.Lock()
		starts := len(rd.resumed["s0"])
		rd.mu.Unlock()
		if starts < 2 {
			t.Fatalf("the reader started %d times; the abort should have restarted it from the last checkpoint", starts)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A fenced writer (another process took the transactional id) stops, saying so.
func TestExactlyOnceFencedStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		store := runtimetest.NewMemoryStore()
		sink := &txSink{fakeSink: &fakeSink{}, store: store, failNext: fmt.Errorf("commit: %w: PRODUCER_FENCED", runtime.ErrFenced)}
		rd := newOwnedReader()
		rd.limit = 3
		c := newTxConnector(t, funcSource{run: rd.run("s0")}, sink, store, pool, time.Second)
		err := c.Run(t.Context())
		if !errors.Is(err, runtime.ErrFenced) {
			t.Fatalf("Run returned %v; want the fence", err)
		}
		if st := c.Status(); st.State != runtime.StateFailed || st.Error == "" {
			t.Fatalf("status %s %q; want FAILED naming the fence", st.State, st.Error)
		}
		if _, ok := store.Get("c1", stream, "s0"); ok {
			t.Fatal("a fenced writer's checkpoint was written")
		}
		if st := pool.Stats(); st.UsedRecords != 0 {
			t.Fatalf("pool holds %d records", st.UsedRecords)
		}
	})
}

// A worker out of the group (its lease refused) aborts a transaction that holds records, once,
// and rewinds. An empty one it leaves alone: before, every commit tick while the worker waited to
// rejoin aborted an empty transaction and restarted every reader, counting an abort each time.
func TestExactlyOnceNoLeaseAbortsOnlyWhatHoldsRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		store := runtimetest.NewMemoryStore()
		sink := &txSink{fakeSink: &fakeSink{}, store: store}
		own := newFakeOwnership()
		rd := newOwnedReader()
		rd.limit = 3
		c, err := runtime.NewConnector(runtime.ConnectorOptions{
			Name: "c1", Source: funcSource{run: rd.run("s0")}, Sink: sink, Store: store, Pool: pool, Ownership: own,
			Delivery: runtime.DeliveryExactlyOnce, CheckpointInterval: time.Second, ShutdownTimeout: 10 * time.Second,
			Owner: runtime.Owner{ID: "worker-a"},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := running(t, c)
		own.handler().Assigned(ctx, []int32{0}, time.Time{})
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait() // committed at 00003
		if cp, ok := store.Get("c1", stream, "s0"); !ok || cp.Mark.Position.Sequence != "00003" {
			t.Fatalf("checkpoint %+v (found %v); want 00003 under the lease", cp, ok)
		}
		own.mu.Lock()
		own.leaseErr = errors.New("UNKNOWN_MEMBER_ID")
		own.mu.Unlock()
		leases := own.leases.Load()
		_, aborts := sink.counts()
		time.Sleep(10 * time.Second) // ten commit ticks with nothing written
		synctest.Wait()
		if n := own.leases.Load() - leases; n < 5 {
			t.Fatalf("%d lease requests in ten commit intervals; the ticks did not try to commit", n)
		}
		if _, a := sink.counts(); a != aborts {
			t.Fatalf("%d aborts of an empty transaction while the lease was refused; want none", a-aborts)
		}
		rd.raise(5) // 00004 and 00005 go into a transaction that must not commit
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if _, a := sink.counts(); a < aborts+2 {
			t.Fatalf("%d aborts of a transaction holding records without a lease; want its abort and the rewind's", a-aborts)
		}
		time.Sleep(3 * time.Second) // three more ticks: the records are read again and aborted again
		synctest.Wait()
		// Each tick may abort once and rewind once; a commit that asked for the next one at
		// once would spin (in this bubble, without end).
		if _, a := sink.counts(); a > aborts+2*4 {
			t.Fatalf("%d aborts in four commit intervals without a lease; want at most two a tick", a-aborts)
		}
		if cp, _ := store.Get("c1", stream, "s0"); cp.Mark.Position.Sequence != "00003" {
			t.Fatalf("checkpoint %+v after commits without a lease; want still 00003", cp)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

// A stop that comes while a transaction commits lets the commit finish: before, the stop canceled
// it, the transaction was aborted, the abort failed on the same canceled context, and the
// connector ended FAILED (a SIGTERM made the process exit 1).
func TestExactlyOnceStopDuringCommitLetsItFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pool := runtime.NewPool(100, 1<<20)
		store := runtimetest.NewMemoryStore()
		sink := &txSink{fakeSink: &fakeSink{}, store: store, hold: make(chan struct{}), holding: make(chan struct{})}
		release := sink.hold
		rd := newOwnedReader()
		rd.limit = 5
		c := newTxConnector(t, funcSource{run: rd.run("s0")}, sink, store, pool, time.Second)
		_, stop := running(t, c)
		synctest.Wait()
		time.Sleep(time.Second) // the commit starts and waits in the sink
		synctest.Wait()
		select {
		case <-sink.holding:
		default:
			t.Fatal("no commit after one interval")
		}
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		time.Sleep(100 * time.Millisecond) // the broker answers the commit after the stop came
		close(release)
		if err := <-stopped; err != nil {
			t.Fatalf("stop during a commit: %v", err)
		}
		if st := c.Status(); st.State != runtime.StateStopped {
			t.Fatalf("state %s (%s) after a stop during a commit; want STOPPED", st.State, st.Error)
		}
		sink.mu.Lock()
		cut := sink.heldCut
		sink.mu.Unlock()
		if cut {
			t.Fatal("the stop cut the commit in progress short")
		}
		if cp, ok := store.Get("c1", stream, "s0"); !ok || cp.Mark.Position.Sequence != "00005" {
			t.Fatalf("checkpoint %+v (found %v); want 00005 from the commit the stop let finish", cp, ok)
		}
	})
}
