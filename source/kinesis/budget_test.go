package kinesis

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	dto "github.com/prometheus/client_model/go"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// decodeWaited returns shardbridge_kinesis_decode_wait_seconds_total of a shard.
func (f *fixture) decodeWaited(shard string) float64 {
	var m dto.Metric
	if err := f.src.met.decodeWait.WithLabelValues("test", shard).Write(&m); err != nil {
		f.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// fillShards writes perShard records of size bytes into every shard of the fixture's stream,
// through explicit hash keys, and returns how many it wrote.
func (f *fixture) fillShards(perShard, size int) int {
	f.t.Helper()
	ctx := context.Background()
	ls, err := f.cli.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(f.cfg.Stream)})
	if err != nil {
		f.t.Fatal(err)
	}
	payload := []byte(strings.Repeat("x", size))
	n := 0
	for _, sh := range ls.Shards {
		for start := 0; start < perShard; start += 500 {
			var entries []types.PutRecordsRequestEntry
			for i := start; i < min(perShard, start+500); i++ {
				entries = append(entries, types.PutRecordsRequestEntry{
					Data: payload, PartitionKey: aws.String(fmt.Sprint(i)), ExplicitHashKey: sh.HashKeyRange.StartingHashKey,
				})
			}
			if _, err := f.cli.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(f.cfg.Stream), Records: entries}); err != nil {
				f.t.Fatal(err)
			}
			n += len(entries)
		}
	}
	return n
}

// decodeWaiting reports whether n readers wait for the budget and every shard's state says so.
func (f *fixture) decodeWaiting(b *runtime.DecodeBudget, n int) bool {
	if b.Stats().Waiters != n {
		return false
	}
	reports := f.src.ShardReport()
	if len(reports) != n {
		return false
	}
	for _, r := range reports {
		if r.State != StateDecodeWait {
			return false
		}
	}
	return true
}

// A reader takes its share of the decode budget before the SDK reads an event: while the budget
// is taken, no shard reads anything, every shard's status says decode_wait, and the wait counts in
// its metric. Once the budget is free, every record arrives once, and no subscription was given
// up (the wait was well within the pool wait timeout).
func TestDecodeBudgetWaitBeforeEvent(t *testing.T) {
	budget := runtime.NewDecodeBudget(1 << 20)
	f := newFixture(t, "budget", 3, nil, nil)
	f.src.budget = budget
	f.src.poolWait = time.Minute
	want := f.put("v", 300, 30)
	all, err := budget.Acquire(t.Context(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f.start()
	f.em.waitFor(t, "every reader waiting for the decode budget", 30*time.Second, func() bool { return f.decodeWaiting(budget, 3) })
	if n := f.em.count(); n != 0 {
		t.Fatalf("%d records emitted while the decode budget was taken", n)
	}
	all.Release()
	f.waitCount(300, 30*time.Second)
	f.checkExactlyOnce(want)
	for _, shard := range sortedKeys(want) {
		if w := f.decodeWaited(shard); w <= 0 {
			t.Errorf("shard %s: decode_wait_seconds_total %v after waiting for the budget", shard, w)
		}
		if n := f.ended(shard, "decode_budget_timeout"); n != 0 {
			t.Errorf("shard %s: %v subscriptions ended decode_budget_timeout", shard, n)
		}
	}
	for _, r := range f.src.ShardReport() {
		if r.State == StateDecodeWait {
			t.Errorf("shard %s still shows decode_wait with the budget free", r.Shard)
		}
	}
}

// Polling takes the budget too: a GetRecords response is not read while the budget is taken (the
// shard shows decode_wait), and is once it is free.
func TestDecodeBudgetPolling(t *testing.T) {
	budget := runtime.NewDecodeBudget(1 << 20)
	off := false
	f := newFixture(t, "budgetpoll", 2, func(c *Config) { c.EFO.Enabled = &off }, nil)
	f.src.budget = budget
	want := f.put("v", 200, 20)
	all, err := budget.Acquire(t.Context(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f.start()
	f.em.waitFor(t, "both polling readers waiting for the decode budget", 30*time.Second, func() bool { return f.decodeWaiting(budget, 2) })
	if n := f.em.count(); n != 0 {
		t.Fatalf("%d records emitted while the decode budget was taken", n)
	}
	all.Release()
	f.waitCount(200, 30*time.Second)
	f.checkExactlyOnce(want)
	for _, shard := range sortedKeys(want) {
		if w := f.decodeWaited(shard); w <= 0 {
			t.Errorf("shard %s: decode_wait_seconds_total %v after waiting for the budget", shard, w)
		}
	}
}

// Waiting for the decode budget is not idleness: the watchdog stays quiet however long the wait,
// and the subscription then goes on.
func TestDecodeBudgetWaitIsNotIdle(t *testing.T) {
	budget := runtime.NewDecodeBudget(1 << 20)
	f := newFixture(t, "budgetidle", 1, func(c *Config) { c.IdleTimeout = 200e6 }, nil,
		kinesistest.WithHeartbeatInterval(50*time.Millisecond))
	f.src.budget = budget
	f.src.poolWait = time.Minute
	want := f.put("v", 100, 10)
	all, err := budget.Acquire(t.Context(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f.start()
	f.em.waitFor(t, "the reader waiting for the decode budget", 30*time.Second, func() bool { return f.decodeWaiting(budget, 1) })
	// Five idle timeouts pass while the reader waits; the watchdog must not end the subscription.
	if f.em.await(time.Second, func() bool { return f.ended(shard0, "idle") > 0 }) {
		t.Fatal("the idle watchdog ended a subscription that waited for the decode budget")
	}
	all.Release()
	f.waitCount(100, 30*time.Second)
	f.checkExactlyOnce(want)
	if n := f.ended(shard0, "idle"); n != 0 {
		t.Errorf("%v subscriptions ended idle", n)
	}
	if n := f.calls.calls(shard0); n != 1 {
		t.Errorf("%d subscriptions; the first should have gone on", n)
	}
}

// A closed shard whose reader waits for the decode budget is not quiet, as with pool space: the
// source's clock passes closed_shard_quiet_period many times over while the test holds the
// budget, yet the reader keeps its subscription and the shard ends with its final event.
func TestClosedShardDecodeWaitIsNotQuiet(t *testing.T) {
	budget := runtime.NewDecodeBudget(1 << 20)
	f := newFixture(t, "closedbudget", 1, func(c *Config) { c.ShardSyncInterval = 1e9 }, nil,
		kinesistest.WithMaxRecordsPerEvent(50))
	f.src.budget = budget
	f.src.poolWait = time.Minute
	want := f.put("v", 500, 10)
	shards, err := f.cli.ListShards(t.Context(), &kinesis.ListShardsInput{StreamName: aws.String("closedbudget")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.SplitShard(t.Context(), &kinesis.SplitShardInput{StreamName: aws.String("closedbudget"),
		ShardToSplit: shards.Shards[0].ShardId, NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatalf("split: %v", err)
	}
	all, err := budget.Acquire(t.Context(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f.start()
	f.em.waitFor(t, "shard 0 listed closed and its reader waiting for the decode budget", 30*time.Second, func() bool {
		f.src.mu.Lock()
		st := f.src.shards[shard0]
		f.src.mu.Unlock()
		return st != nil && f.src.listedClosed(st) && budget.Stats().Waiters > 0
	})
	start := f.clock.now()
	// Hold the whole budget a while before each event of shard 0 (well under the pool wait
	// timeout): the closed-shard watch advances the source's clock meanwhile.
	for f.em.count() < 500 {
		if !f.em.await(300*time.Millisecond, func() bool { return f.em.count() >= 500 }) { // the hold
			all.Release()
			if all, err = budget.Acquire(t.Context(), 1<<20); err != nil {
				t.Fatal(err)
			}
		}
	}
	all.Release()
	f.em.waitFor(t, "the end of shard 0", 30*time.Second, func() bool { return slices.Contains(f.em.eventLog(), "end "+shard0) })
	f.checkExactlyOnce(want)
	if passed := f.clock.now().Sub(start); passed < 3*DefaultClosedShardQuietPeriod {
		t.Fatalf("the source's clock moved only %v while the reader waited; the test needs more than the quiet period", passed)
	}
	if n := f.ended(shard0, "closed_quiet"); n != 0 {
		t.Errorf("%v subscriptions of shard 0 ended closed_quiet: time waiting for the decode budget counted as quiet", n)
	}
	if n := f.ended(shard0, "shard_end"); n != 1 {
		t.Errorf("%v subscriptions of shard 0 ended shard_end, want 1", n)
	}
}

// A reader that waits for the decode budget past the pool wait timeout closes its subscription
// cleanly (reason decode_budget_timeout) and resubscribes later from its last position: every
// record arrives once.
func TestDecodeBudgetTimeoutResubscribes(t *testing.T) {
	budget := runtime.NewDecodeBudget(1 << 20)
	f := newFixture(t, "budgettimeout", 1, nil, nil, kinesistest.WithMaxRecordsPerEvent(20))
	f.src.budget = budget
	f.src.poolWait = 200 * time.Millisecond
	want := f.put("v", 200, 10)
	f.start()
	timeouts := 0.0
	for f.em.count() < 200 {
		all, err := budget.Acquire(t.Context(), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		f.em.waitFor(t, "a decode budget timeout", 30*time.Second, func() bool {
			return f.ended(shard0, "decode_budget_timeout") > timeouts || f.em.count() >= 200
		})
		timeouts = f.ended(shard0, "decode_budget_timeout")
		all.Release()
	}
	f.checkExactlyOnce(want)
	f.calls.checkRate(t)
	if timeouts < 2 {
		t.Errorf("decode_budget_timeout counted %v times, want several", timeouts)
	}
	// Every resubscription starts at a record already emitted, or before any.
	f.calls.mu.Lock()
	starts := slices.Clone(f.calls.starts[shard0])
	f.calls.mu.Unlock()
	for i, s := range starts[1:] {
		if !strings.HasPrefix(s, string(types.ShardIteratorTypeAtSequenceNumber)) && !strings.HasPrefix(s, string(types.ShardIteratorTypeTrimHorizon)) {
			t.Errorf("resubscription %d starts %q", i+1, s)
		}
	}
}

// Readers waiting for the decode budget leave their streams' HTTP/2 windows full. Many of them
// share one connection, so its window must hold all of theirs and still let the events of the
// readers holding the budget in; if it did not, those events would stop arriving and every
// reader would wait until its subscription timed out. 40 shards with 16 KiB windows, events of
// 256 KiB, and a budget of one event at a time.
func TestDecodeBudgetManyStreamsOneConnection(t *testing.T) {
	const (
		shards   = 40
		perShard = 64 // 2 events each
		recSize  = 8 << 10
	)
	budget := runtime.NewDecodeBudget(2 << 20) // an event of 256 KiB takes about 1.4 MiB
	f := newFixture(t, "manystreams", shards, func(c *Config) { c.HTTP2MaxReceiveBufferPerStream = 16 << 10 }, nil,
		kinesistest.WithMaxEventBytes(256<<10))
	f.src.budget = budget
	f.src.poolWait = 5 * time.Second
	total := f.fillShards(perShard, recSize)
	f.start()
	f.waitCount(total, 60*time.Second)
	timeouts := 0.0
	for i := range shards {
		timeouts += f.ended(fmt.Sprintf("shardId-%012d", i), "decode_budget_timeout")
	}
	if timeouts != 0 {
		t.Errorf("%v subscriptions ended decode_budget_timeout: readers holding the budget were starved of their events' bytes", timeouts)
	}
	if st := budget.Stats(); st.Waits == 0 {
		t.Errorf("no reader waited for the budget; the test needs them to")
	}
}

// liveHeap returns the heap in use, as of a fresh collection, by allocations that were not made
// under the in-process Kinesis (kinesistest), which keeps encoded events of its own per
// subscription; and the goroutine stacks in use. It needs runtime.MemProfileRate = 1, set before
// the allocations it is to see.
func liveHeap(t *testing.T) (heap, stacks int64) {
	t.Helper()
	goruntime.GC()
	goruntime.GC()
	var recs []goruntime.MemProfileRecord
	for {
		n, ok := goruntime.MemProfile(recs, true)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]goruntime.MemProfileRecord, n+100)
	}
	for i := range recs {
		inuse := recs[i].InUseBytes()
		if inuse == 0 {
			continue
		}
		server := false
		frames := goruntime.CallersFrames(recs[i].Stack())
		for {
			fr, more := frames.Next()
			if strings.Contains(fr.Function, "/kinesistest.") {
				server = true
				break
			}
			if !more {
				break
			}
		}
		if !server {
			heap += inuse
		}
	}
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	return heap, int64(ms.StackInuse)
}

// With a sink that never acknowledges and every shard holding full events, the memory outside
// the pool is the decode budget plus each shard's window and state, not an event per shard. 48
// shards with events of 1 MiB; the budget admits one at a time.
func TestDecodeBudgetBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 96 MiB")
	}
	if raceEnabled {
		t.Skip("memory bound is measured without -race; scripts/test runs it again without the race detector")
	}
	const (
		shards    = 48
		recSize   = 8 << 10
		perShard  = 256 // 2 MiB a shard, two events
		window    = 64 << 10
		poolBytes = 2 << 20
		budgetMax = 6 << 20 // one event of 1 MiB takes about 5.5 MiB
	)
	defer func(r int) { goruntime.MemProfileRate = r }(goruntime.MemProfileRate)
	goruntime.MemProfileRate = 1
	budget := runtime.NewDecodeBudget(budgetMax)
	em := newTestEmitter(1<<20, poolBytes, false)
	f := newFixture(t, "budgetmem", shards, func(c *Config) { c.HTTP2MaxReceiveBufferPerStream = window }, em,
		kinesistest.WithMaxEventBytes(1<<20))
	f.src.budget = budget
	f.src.poolWait = time.Minute // keep every subscription open while measuring
	f.fillShards(perShard, recSize)
	before, beforeStacks := liveHeap(t)

	f.start()
	// Every reader blocked: on the pool (for room, or for an event's records) or on the budget.
	f.em.waitFor(t, "every shard subscribed, the pool full and every reader waiting", 60*time.Second, func() bool {
		st := f.em.pool.Stats()
		return f.srv.Calls("SubscribeToShard") >= shards && st.UsedBytes >= st.LimitBytes-(1<<20) &&
			st.Waiters+budget.Stats().Waiters >= shards
	})
	// The pool, the budget, each shard's window and state, and slack for the clients and the
	// source's fixed parts.
	bound := int64(poolBytes + budgetMax + shards*f.cfg.ShardHeldBytes() + 8<<20)
	var peak int64
	for range 5 { // sample for half a second while readers sit on full windows
		time.Sleep(100 * time.Millisecond) // sampling interval, not a wait for an outcome
		heap, stacks := liveHeap(t)
		peak = max(peak, heap-before+stacks-beforeStacks)
	}
	t.Logf("memory outside the server grew %.1f MiB, bound %.1f MiB (pool %d MiB, budget %d MiB, %d shards x %d KiB)",
		float64(peak)/(1<<20), float64(bound)/(1<<20), poolBytes>>20, budgetMax>>20, shards, f.cfg.ShardHeldBytes()>>10)
	if peak > bound {
		t.Errorf("memory outside the server grew %d bytes, over the bound %d", peak, bound)
	}
	if st := budget.Stats(); st.UsedBytes > budgetMax || st.Reads > 1 {
		t.Errorf("budget holds %d bytes in %d reads; want at most %d in one", st.UsedBytes, st.Reads, budgetMax)
	}
}

// countingEmitter counts records and keeps none, so that a heap measurement sees only what the
// source keeps. reached is closed once want records were emitted.
type countingEmitter struct {
	n       atomic.Int64
	want    int64
	reached chan struct{}
}

func (e *countingEmitter) WaitForSpace(ctx context.Context, _ time.Duration) error { return ctx.Err() }
func (e *countingEmitter) Emit(_ context.Context, _ string, recs []runtime.Record) error {
	n := e.n.Add(int64(len(recs)))
	if n >= e.want && n-int64(len(recs)) < e.want {
		close(e.reached)
	}
	return nil
}
func (e *countingEmitter) EndShard(context.Context, string) error { return nil }
func (e *countingEmitter) Resume(string) (runtime.Mark, bool)     { return runtime.Mark{}, false }
func (e *countingEmitter) WaitEnded(context.Context, string) error {
	return nil
}

// Between events a shard being read keeps only its reader's small state: after every shard has
// decoded an event of 1 MiB, the readers idle between heartbeats holding well under
// shardStateBytes each, so neither the SDK nor the source keeps an event's buffers per stream.
func TestIdleShardStateBoundedMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("memory is measured without -race; scripts/test runs it again without the race detector")
	}
	const (
		shards   = 32
		recSize  = 8 << 10
		perShard = 128 // one event of 1 MiB
		window   = 16 << 10
	)
	defer func(r int) { goruntime.MemProfileRate = r }(goruntime.MemProfileRate)
	goruntime.MemProfileRate = 1
	f := newFixture(t, "idlestate", shards, func(c *Config) { c.HTTP2MaxReceiveBufferPerStream = window }, nil,
		kinesistest.WithMaxEventBytes(1<<20), kinesistest.WithHeartbeatInterval(200*time.Millisecond))
	total := f.fillShards(perShard, recSize)
	before, beforeStacks := liveHeap(t)
	em := &countingEmitter{want: int64(total), reached: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.src.Run(ctx, em) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	select {
	case <-em.reached:
	case <-time.After(60 * time.Second):
		t.Fatalf("%d of %d records within 60s", em.n.Load(), total)
	}
	// Every reader waits for its next event (heartbeats come and go).
	f.em.waitFor(t, "every reader waiting for its next event", 30*time.Second, func() bool {
		if f.src.budget.Stats().Reads != 0 {
			return false
		}
		for _, r := range f.src.ShardReport() {
			if r.State != StateReading {
				return false
			}
		}
		return true
	})
	heap, stacks := liveHeap(t)
	perShardHeap, perShardStacks := (heap-before)/shards, (stacks-beforeStacks)/shards
	t.Logf("per shard between events: %.1f KiB of heap outside the server, %.1f KiB of goroutine stacks (the server's handlers included); budget %d KiB",
		float64(perShardHeap)/1024, float64(perShardStacks)/1024, shardStateBytes>>10)
	if perShardHeap+perShardStacks > shardStateBytes {
		t.Errorf("a shard keeps %d bytes between events, over shardStateBytes (%d)", perShardHeap+perShardStacks, shardStateBytes)
	}
}
