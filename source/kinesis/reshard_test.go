package kinesis

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// A split and a merge in the middle of the stream: every record arrives once, each parent is
// read to its end before any record of its children is emitted, and per partition key the
// records keep the order they were written in.
//
// The no_end_event cases run EFO against a server that, like kinesis-mock, never sends a
// closed shard's final event: only ListShards shows the shards closed. The readers must
// confirm each parent's end with GetRecords once its subscription is quiet (with heartbeats, as
// kinesis-mock sends, and with nothing at all); without that the children wait for ever.
func TestReshardSplitAndMerge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		efo     bool
		opts    []kinesistest.Option
		drained bool // every parent must end through the closed-shard probe
		faults  []kinesistest.Fault
	}{
		{name: "efo", efo: true},
		{name: "polling"},
		{name: "efo_no_end_event_heartbeats", efo: true, drained: true,
			opts: []kinesistest.Option{kinesistest.WithoutShardEndEvent(), kinesistest.WithHeartbeatInterval(100 * time.Millisecond)}},
		{name: "efo_no_end_event_silent", efo: true, drained: true,
			opts: []kinesistest.Option{kinesistest.WithoutShardEndEvent(), kinesistest.WithHeartbeatInterval(time.Hour)}},
		// The GetRecords that confirm shard 0's end are throttled (3 times: the SDK's own
		// attempts, so the reader sees it once), then meet an expired iterator: the reader backs
		// off, renews the iterator and still ends the shard.
		{name: "efo_no_end_event_faults", efo: true, drained: true,
			opts: []kinesistest.Option{kinesistest.WithoutShardEndEvent(), kinesistest.WithHeartbeatInterval(100 * time.Millisecond)},
			faults: []kinesistest.Fault{
				{Op: "GetRecords", Shard: shard0, Count: 3, Kind: kinesistest.Throttle()},
				{Op: "GetRecords", Shard: shard0, After: 3, Kind: kinesistest.HTTPError("ExpiredIteratorException")},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			efo := tc.efo
			f := newFixture(t, "resharded", 2, func(c *Config) {
				c.EFO.Enabled = &efo
				c.PollInterval = 200 * 1e6
				c.ShardSyncInterval = 1e9
			}, nil, tc.opts...)
			for _, fl := range tc.faults {
				if err := f.srv.Inject(fl); err != nil {
					t.Fatal(err)
				}
			}
			testReshard(t, f, tc.drained)
			f.calls.checkRate(t)
			if len(tc.faults) > 0 {
				got := f.calls.getErrors(shard0)
				want := []string{"ProvisionedThroughputExceededException", "ExpiredIteratorException", ""}
				if !slices.Equal(got, want) {
					t.Errorf("GetRecords on %s answered %q, want %q", shard0, got, want)
				}
			}
		})
	}
}

// testReshard starts f's source on a stream of two shards, splits shard 0, merges the split's
// upper child with shard 1, writing 400 records before, between and after, and checks what
// arrived. drained: every parent must have ended through the closed-shard probe; otherwise
// none may have.
func testReshard(t *testing.T, f *fixture, drained bool) {
	ctx := t.Context()
	stream := aws.String(f.cfg.Stream)
	// Resharding is asynchronous in kinesis-mock: wait for the stream to be ACTIVE again.
	active := func() {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := f.cli.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: stream})
			if err != nil {
				t.Fatal(err)
			}
			if out.StreamDescriptionSummary.StreamStatus == types.StreamStatusActive {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stream %s is %s after 30s", f.cfg.Stream, out.StreamDescriptionSummary.StreamStatus)
			}
			time.Sleep(20 * time.Millisecond) // polling another process's state, with a deadline
		}
	}
	want := map[string][]string{}
	add := func(m map[string][]string) {
		for k, v := range m {
			want[k] = append(want[k], v...)
		}
	}
	add(f.put("a", 400, 20))
	f.start()
	f.waitCount(200, 30*time.Second) // reading is under way

	shards := func() []types.Shard {
		out, err := f.cli.ListShards(ctx, &kinesis.ListShardsInput{StreamName: stream})
		if err != nil {
			t.Fatal(err)
		}
		return out.Shards
	}
	s0 := shards()[0]
	lo, _ := new(big.Int).SetString(aws.ToString(s0.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(s0.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Add(lo, hi)
	mid.Rsh(mid, 1)
	if _, err := f.cli.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: stream, ShardToSplit: s0.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatalf("split: %v", err)
	}
	active()
	add(f.put("b", 400, 20))

	// Merge the upper child of the split with the old second shard.
	var upper, second string
	for _, sh := range shards() {
		if sh.SequenceNumberRange.EndingSequenceNumber != nil {
			continue
		}
		if aws.ToString(sh.ParentShardId) == aws.ToString(s0.ShardId) && aws.ToString(sh.HashKeyRange.StartingHashKey) == mid.String() {
			upper = aws.ToString(sh.ShardId)
		}
		if aws.ToString(sh.ParentShardId) == "" && aws.ToString(sh.ShardId) != aws.ToString(s0.ShardId) {
			second = aws.ToString(sh.ShardId)
		}
	}
	if upper == "" || second == "" {
		t.Fatalf("could not find the shards to merge in %v", shards())
	}
	if _, err := f.cli.MergeShards(ctx, &kinesis.MergeShardsInput{
		StreamName: stream, ShardToMerge: aws.String(upper), AdjacentShardToMerge: aws.String(second),
	}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	active()
	add(f.put("c", 400, 20))

	total := 0
	for _, v := range want {
		total += len(v)
	}
	if !f.em.await(45*time.Second, func() bool { return f.em.count() >= total }) {
		var states []string
		for _, r := range f.src.ShardReport() {
			states = append(states, fmt.Sprintf("%s %s (waiting for %v)", r.Shard, r.State, r.WaitingFor))
		}
		t.Fatalf("only %d of %d records within 45s: a closed parent was never ended, so its children were not read; readers: %s",
			f.em.count(), total, strings.Join(states, "; "))
	}
	f.checkExactlyOnce(want)

	// Lineage: every parent's end comes before its children's first emit.
	log := f.em.eventLog()
	pos := func(ev string) int { return slices.Index(log, ev) }
	pairs := 0
	parents := map[string]bool{}
	for _, sh := range shards() {
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p == nil {
				continue
			}
			parents[*p] = true
			end, first := pos("end "+*p), pos("emit "+aws.ToString(sh.ShardId))
			if end < 0 {
				t.Errorf("parent %s of %s never ended", *p, aws.ToString(sh.ShardId))
			} else if first >= 0 && first < end {
				t.Errorf("child %s emitted (event %d) before parent %s ended (event %d)", aws.ToString(sh.ShardId), first, *p, end)
			}
			pairs++
		}
	}
	if pairs != 4 || len(parents) != 3 {
		t.Errorf("found %d parent-child pairs of %d parents, want 4 of 3 (split: 2, merge: 2)", pairs, len(parents))
	}
	for p := range parents {
		switch n := f.ended(p, "closed_quiet"); {
		case drained && n != 1:
			t.Errorf("parent %s: %v subscriptions ended closed_quiet, want 1 (its end confirmed with GetRecords)", p, n)
		case !drained && n != 0:
			t.Errorf("parent %s: %v subscriptions ended closed_quiet, want 0 (the final event ends it first)", p, n)
		}
	}
	for _, r := range f.src.ShardReport() {
		if len(r.WaitingFor) > 0 || r.ParentWaitSeconds != 0 {
			t.Errorf("shard %s still reports waiting for %v (%vs)", r.Shard, r.WaitingFor, r.ParentWaitSeconds)
		}
	}

	// Per-key order across parents and children.
	f.em.mu.Lock()
	all := append([]runtime.Record(nil), f.em.all...)
	f.em.mu.Unlock()
	lastByKey := map[string]int{}
	for _, r := range all {
		v := string(r.Value)
		batch := strings.Index("abc", v[:1])
		n, err := strconv.Atoi(v[2:])
		if err != nil {
			t.Fatalf("value %q", v)
		}
		order := batch*1000 + n
		k := string(r.Key)
		if prev, ok := lastByKey[k]; ok && order < prev {
			t.Fatalf("key %s: %s emitted after a later record (%d after %d)", k, v, order, prev)
		}
		lastByKey[k] = order
	}
	if len(lastByKey) != 20 {
		t.Errorf("saw %d keys, want 20", len(lastByKey))
	}
}
