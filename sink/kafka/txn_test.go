package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
)

// txnSink starts a transactional sink (and its checkpoint store) on the cluster of cfg.
func txnSink(t *testing.T, ctx context.Context, cfg Config, id string) (*Sink, *CheckpointStore) {
	t.Helper()
	return txnSinkTimeout(t, ctx, cfg, id, 10*time.Second)
}

// txnSinkTimeout is txnSink with the transaction timeout given.
func txnSinkTimeout(t *testing.T, ctx context.Context, cfg Config, id string, timeout time.Duration) (*Sink, *CheckpointStore) {
	t.Helper()
	store, err := NewCheckpointStore(ctx, cfg, "_checkpoints", WithConnector("c1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	s, err := NewSink(ctx, cfg, WithConnector("c1"), fastRetries, WithTransactions(TxnOptions{ID: id, Timeout: timeout, Store: store}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, store
}

// count reads topic from its start to its end offsets (for read_committed, the last stable
// offsets, past every ended transaction) with the isolation level and counts its data records.
// It reads to those offsets rather than until a poll comes back empty, which a slow first fetch
// on a loaded machine would end too soon.
func count(t *testing.T, ctx context.Context, cfg Config, topic string, level kgo.IsolationLevel) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(level),
		kgo.KeepControlRecords()) // a marker may be the last offset before the end
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	list := adm.ListEndOffsets
	if level == kgo.ReadCommitted() {
		list = adm.ListCommittedOffsets
	}
	ends, err := list(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	n := 0
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %s to its end offsets %v: %v", topic, left, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				n++
			}
			if r.Offset == end-1 {
				delete(left, r.Partition)
			}
		})
	}
	return n
}

func writeN(t *testing.T, ctx context.Context, s *Sink, from, n int) {
	t.Helper()
	a := newAcks()
	recs := make([]runtime.Record, n)
	for i := range recs {
		recs[i] = makeRecord("orders", "s0", "k", from+i, time.Now())
	}
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatal(err)
	}
	a.wait(ctx, t, n)
}

// assertLoadedAt fails unless store loads exactly one checkpoint of c1's stream orders, at the
// record written as number seq (writeN's numbering); want says why.
func assertLoadedAt(t *testing.T, ctx context.Context, store *CheckpointStore, seq int, want string) {
	t.Helper()
	cps, err := store.Load(ctx, "c1", "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 || cps[0].Mark.Position != makeRecord("orders", "s0", "k", seq, time.Now()).Position {
		t.Fatalf("loaded %+v; %s", cps, want)
	}
}

func checkpointAt(seq int) func() ([]runtime.Checkpoint, error) {
	return func() ([]runtime.Checkpoint, error) {
		r := makeRecord("orders", "s0", "k", seq, time.Now())
		return []runtime.Checkpoint{{Connector: "c1", Stream: "orders", Shard: "s0", Mark: runtime.Mark{Position: r.Position},
			Owner: runtime.Owner{ID: "w", Epoch: 1}}}, nil
	}
}

// Records and the checkpoint that covers them become visible together at Commit; what an Abort
// ends is never visible to read_committed consumers, nor to the store's Load.
func TestTxnCommitAndAbort(t *testing.T) {
	_, cfg := newCluster(t)
	ctx := testCtx(t)
	s, store := txnSink(t, ctx, cfg, "shardbridge-c1")
	writeN(t, ctx, s, 0, 10)
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 0 {
		t.Fatalf("read_committed sees %d records before the commit", n)
	}
	if err := s.Commit(ctx, checkpointAt(9), nil); err != nil {
		t.Fatal(err)
	}
	writeN(t, ctx, s, 10, 5)
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 10 {
		t.Fatalf("read_committed sees %d records; want the 10 committed, not the 5 aborted", n)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadUncommitted()); n != 15 {
		t.Fatalf("read_uncommitted sees %d records; want all 15 written", n)
	}
	assertLoadedAt(t, ctx, store, 9, "want the committed checkpoint at 9")
	// A doomed transaction (marks says so) aborts instead of committing.
	writeN(t, ctx, s, 15, 3)
	err := s.Commit(ctx, func() ([]runtime.Checkpoint, error) { return nil, errors.New("doomed") }, nil)
	if err == nil || errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("Commit of a doomed transaction returned %v; want an abort error", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 10 {
		t.Fatalf("read_committed sees %d records after a doomed commit; want 10", n)
	}
}

// A second producer with the same transactional id (a new process of the connector) fences the
// first: the first's commit fails with ErrFenced, and nothing it wrote after becomes visible.
func TestTxnZombieFencedByTransactionalID(t *testing.T) {
	_, cfg := newCluster(t)
	ctx := testCtx(t)
	old, _ := txnSink(t, ctx, cfg, "shardbridge-c1")
	writeN(t, ctx, old, 0, 5)
	if err := old.Commit(ctx, checkpointAt(4), nil); err != nil {
		t.Fatal(err)
	}
	writeN(t, ctx, old, 5, 5) // the zombie's transaction, open when the new process starts
	_, store := txnSink(t, ctx, cfg, "shardbridge-c1")
	err := old.Commit(ctx, checkpointAt(9), nil)
	if !errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("the zombie's late commit returned %v; want ErrFenced", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 5 {
		t.Fatalf("read_committed sees %d records; want only the 5 committed before the fence", n)
	}
	assertLoadedAt(t, ctx, store, 4, "the zombie's late checkpoint must not count")
}

// In group mode each transaction carries the worker's group membership (KIP-447): once the
// worker is out of the group (here it left; a zombie is evicted), its commit is refused and
// nothing of the transaction becomes visible.
func TestTxnZombieFencedByGroupGeneration(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := testCtx(t)
	if err := c.CreateTopic("_coord", 2, nil); err != nil {
		t.Fatal(err)
	}
	member, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("_coord"))
	if err != nil {
		t.Fatal(err)
	}
	var id string
	var gen int32
	pollUntil(t, 30*time.Second, "the member joined the group", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		member.PollFetches(pctx)
		cancel()
		id, gen = member.GroupMetadata()
		return id != "" && gen > 0
	})
	md, err := kadm.NewClient(member).Metadata(ctx, "_coord")
	if err != nil {
		t.Fatal(err)
	}
	lease := &runtime.Lease{Epoch: int64(gen), Group: "g1", Member: id, Topic: "_coord", TopicID: md.Topics["_coord"].ID, Slot: 0}
	s, _ := txnSink(t, ctx, cfg, "shardbridge-c1-w1")
	writeN(t, ctx, s, 0, 5)
	if err := s.Commit(ctx, checkpointAt(4), lease); err != nil {
		t.Fatalf("commit as a member of the group: %v", err)
	}
	member.Close() // leaves the group: the member id is gone
	writeN(t, ctx, s, 5, 5)
	err = s.Commit(ctx, checkpointAt(9), lease)
	if err == nil {
		t.Fatal("a commit as a member that left the group succeeded")
	}
	if errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("commit error %v: the group counting the worker out aborts, it is not a transactional-id fence", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 5 {
		t.Fatalf("read_committed sees %d records; want only the 5 committed while a member", n)
	}
}

// A transaction the broker timed out (the process was frozen past the transaction timeout, say)
// is refused like a fenced one, but nobody else took the transactional id: the commit reports an
// aborted transaction, not a fence, none of it becomes visible, and the sink goes on with a new
// producer whose transactions commit.
func TestTxnTimedOutAtTheBrokerIsNotAFence(t *testing.T) {
	_, cfg := newCluster(t)
	ctx := testCtx(t)
	const id = "shardbridge-c1"
	s, store := txnSinkTimeout(t, ctx, cfg, id, time.Second)
	writeN(t, ctx, s, 0, 5)
	if err := s.Commit(ctx, checkpointAt(4), nil); err != nil {
		t.Fatal(err)
	}
	writeN(t, ctx, s, 5, 5) // the transaction the broker times out
	adm := kadm.NewClient(s.cl)
	pollUntil(t, 30*time.Second, "the broker to abort the transaction at its timeout", func() bool {
		d, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return false
		}
		st := d[id].State
		return st != "" && st != "Ongoing"
	})
	err := s.Commit(ctx, checkpointAt(9), nil)
	if err == nil || errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("the commit of a transaction the broker timed out returned %v; want an aborted transaction, not a fence", err)
	}
	writeN(t, ctx, s, 10, 5)
	if err := s.Commit(ctx, checkpointAt(14), nil); err != nil {
		t.Fatalf("the commit after the timed-out transaction: %v", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 10 {
		t.Fatalf("read_committed sees %d records; want the 10 of the two committed transactions", n)
	}
	assertLoadedAt(t, ctx, store, 14, "want the checkpoint at 14")
}

// A commit whose records Kafka does not take gives up at three quarters of the transaction
// timeout and aborts the transaction itself, while the producer still can: it reports an abort,
// never a fence, and the next transaction commits once Kafka takes records again.
func TestTxnCommitAbortsBeforeTheTransactionTimesOut(t *testing.T) {
	c, cfg := newCluster(t, kfake.SeedTopics(2, "mirror.orders"))
	cfg.DeliveryTimeout = config.Duration(time.Minute)
	ctx := testCtx(t)
	const timeout = 2 * time.Second
	s, _ := txnSinkTimeout(t, ctx, cfg, "shardbridge-c1", timeout)
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "mirror.orders", Err: kerr.NotLeaderForPartition, Count: -1})
	a := newAcks()
	recs := make([]runtime.Record, 10)
	for i := range recs {
		recs[i] = makeRecord("orders", "s0", fmt.Sprintf("k%d", i), i, time.Now())
	}
	start := time.Now()
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*timeout)
	err := s.Commit(cctx, checkpointAt(9), nil)
	cancel()
	took := time.Since(start)
	if err == nil || errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("the commit of records Kafka refused returned %v after %s; want an abort before the %s transaction timeout", err, took, timeout)
	}
	if took >= timeout {
		t.Errorf("the commit aborted %s after the first record; want within the %s transaction timeout", took, timeout)
	}
	a.wait(ctx, t, len(recs))
	for i := range recs {
		if err, _ := a.get(recID(&recs[i])); err == nil {
			t.Errorf("record %d acked without error in an aborted transaction", i)
		}
	}
	fault.Remove()
	writeN(t, ctx, s, 10, 5)
	if err := s.Commit(ctx, checkpointAt(14), nil); err != nil {
		t.Fatalf("the commit once Kafka takes records again: %v", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 5 {
		t.Fatalf("read_committed sees %d records; want the 5 of the committed transaction", n)
	}
}

// In group mode too, a transaction the broker timed out is not a fence, whichever request is
// refused first: here the commit writes no checkpoint, so the first is AddOffsetsToTxn, which
// carries the worker's membership (KIP-447). The worker is still a member; the commit reports
// an aborted transaction, and the next commits as a member go through.
func TestTxnTimedOutInGroupModeIsNotAFence(t *testing.T) {
	c, cfg := newCluster(t)
	ctx := testCtx(t)
	if err := c.CreateTopic("_coord", 2, nil); err != nil {
		t.Fatal(err)
	}
	member, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumerGroup("g1"), kgo.ConsumeTopics("_coord"))
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	var memberID string
	var gen int32
	pollUntil(t, 30*time.Second, "the member joined the group", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		member.PollFetches(pctx)
		cancel()
		memberID, gen = member.GroupMetadata()
		return memberID != "" && gen > 0
	})
	md, err := kadm.NewClient(member).Metadata(ctx, "_coord")
	if err != nil {
		t.Fatal(err)
	}
	lease := &runtime.Lease{Epoch: int64(gen), Group: "g1", Member: memberID, Topic: "_coord", TopicID: md.Topics["_coord"].ID, Slot: 0}
	const id = "shardbridge-c1-w1"
	s, _ := txnSinkTimeout(t, ctx, cfg, id, time.Second)
	writeN(t, ctx, s, 0, 5)
	adm := kadm.NewClient(s.cl)
	pollUntil(t, 30*time.Second, "the broker to abort the transaction at its timeout", func() bool {
		d, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return false
		}
		st := d[id].State
		return st != "" && st != "Ongoing"
	})
	noCheckpoints := func() ([]runtime.Checkpoint, error) { return nil, nil }
	err = s.Commit(ctx, noCheckpoints, lease)
	if err == nil || errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("the commit of a transaction the broker timed out returned %v; want an aborted transaction, not a fence", err)
	}
	writeN(t, ctx, s, 5, 5)
	if err := s.Commit(ctx, checkpointAt(9), lease); err != nil {
		t.Fatalf("the commit after the timed-out transaction, as a member: %v", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 5 {
		t.Fatalf("read_committed sees %d records; want the 5 of the committed transaction", n)
	}
}

// A commit that starts when its transaction has been open for three quarters of its timeout or
// longer (by the sink's clock: the process was frozen, say) aborts it rather than race the
// broker's abort; the next transaction commits.
func TestTxnCommitPastItsDeadlineAborts(t *testing.T) {
	_, cfg := newCluster(t)
	ctx := testCtx(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	const timeout = 10 * time.Second
	store, err := NewCheckpointStore(ctx, cfg, "_checkpoints", WithConnector("c1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(context.Background()) })
	s, err := NewSink(ctx, cfg, WithConnector("c1"), fastRetries, WithClock(clock),
		WithTransactions(TxnOptions{ID: "shardbridge-c1", Timeout: timeout, Store: store}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	writeN(t, ctx, s, 0, 5)
	if err := s.Commit(ctx, checkpointAt(4), nil); err != nil {
		t.Fatal(err)
	}
	writeN(t, ctx, s, 5, 5)
	advance(timeout * 3 / 4)
	err = s.Commit(ctx, checkpointAt(9), nil)
	if err == nil || errors.Is(err, runtime.ErrFenced) {
		t.Fatalf("the commit of a transaction open for three quarters of its timeout returned %v; want it aborted", err)
	}
	writeN(t, ctx, s, 10, 5)
	if err := s.Commit(ctx, checkpointAt(14), nil); err != nil {
		t.Fatalf("the next commit: %v", err)
	}
	if n := count(t, ctx, cfg, "mirror.orders", kgo.ReadCommitted()); n != 10 {
		t.Fatalf("read_committed sees %d records; want the 10 of the two committed transactions, not the 5 of the aborted one", n)
	}
}
