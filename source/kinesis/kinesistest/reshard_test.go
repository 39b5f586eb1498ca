package kinesistest

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// readLineage reads every shard of a stream the way a correct consumer
// does: a shard only after all its parents were read to their end, each
// closed shard until its nil iterator. It returns every record's data in
// reading order and checks the ChildShards the server reports against the
// ListShards parent links.
func readLineage(t *testing.T, ctx context.Context, c *kinesis.Client, stream string) []string {
	t.Helper()
	out, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	shards := map[string]types.Shard{}
	children := map[string][]string{}
	for _, sh := range out.Shards {
		id := aws.ToString(sh.ShardId)
		shards[id] = sh
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil {
				children[*p] = append(children[*p], id)
			}
		}
	}
	done := map[string]bool{}
	var all []string
	for len(done) < len(shards) {
		progressed := false
		ids := make([]string, 0, len(shards))
		for id := range shards {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			sh := shards[id]
			if done[id] || (sh.ParentShardId != nil && !done[*sh.ParentShardId]) || (sh.AdjacentParentShardId != nil && !done[*sh.AdjacentParentShardId]) {
				continue
			}
			data, kids := readAll(t, ctx, c, stream, id)
			closed := sh.SequenceNumberRange.EndingSequenceNumber != nil
			var kidIDs []string
			for _, k := range kids {
				kidIDs = append(kidIDs, aws.ToString(k.ShardId))
			}
			sort.Strings(kidIDs)
			want := append([]string(nil), children[id]...)
			sort.Strings(want)
			if closed && fmt.Sprint(kidIDs) != fmt.Sprint(want) {
				t.Fatalf("shard %s ended with children %v, ListShards says %v", id, kidIDs, want)
			}
			if !closed && len(kids) != 0 {
				t.Fatalf("open shard %s reported children %v", id, kidIDs)
			}
			all = append(all, data...)
			done[id] = true
			progressed = true
		}
		if !progressed {
			t.Fatalf("lineage has a cycle or a missing parent: %v", shards)
		}
	}
	return all
}

// checkExactlyOnce asserts data holds r000000 … r(n-1) each exactly once.
func checkExactlyOnce(t *testing.T, data []string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, d := range data {
		seen[d]++
	}
	for i := range n {
		k := fmt.Sprintf("r%06d", i)
		if seen[k] != 1 {
			t.Fatalf("record %s read %d times, want exactly once", k, seen[k])
		}
	}
	if len(data) != n {
		t.Fatalf("read %d records, want %d", len(data), n)
	}
}

func bigOf(s *string) *big.Int {
	b, _ := new(big.Int).SetString(aws.ToString(s), 10)
	return b
}

func TestSplitAndMergeKeepEveryRecordOnce(t *testing.T) {
	srv := newServer(t, WithStream("s", 2))
	ctx := testCtx(t)
	c := srv.Client()

	putN(t, ctx, c, "s", 0, 300)
	before, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	s0 := before.Shards[0]
	mid := new(big.Int).Add(bigOf(s0.HashKeyRange.StartingHashKey), bigOf(s0.HashKeyRange.EndingHashKey))
	mid.Rsh(mid, 1)
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: s0.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatalf("split: %v", err)
	}
	putN(t, ctx, c, "s", 300, 300)
	// shardId-3 is the upper half of shard 0, adjacent to shard 1.
	if _, err := c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String("shardId-000000000003"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	putN(t, ctx, c, "s", 600, 300)

	after, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	byID := map[string]types.Shard{}
	for _, sh := range after.Shards {
		byID[aws.ToString(sh.ShardId)] = sh
	}
	if len(byID) != 5 {
		t.Fatalf("have %d shards, want 5", len(byID))
	}
	s2, s3, s4 := byID["shardId-000000000002"], byID["shardId-000000000003"], byID["shardId-000000000004"]
	if aws.ToString(s2.ParentShardId) != "shardId-000000000000" || aws.ToString(s3.ParentShardId) != "shardId-000000000000" ||
		aws.ToString(s4.ParentShardId) != "shardId-000000000003" || aws.ToString(s4.AdjacentParentShardId) != "shardId-000000000001" {
		t.Fatalf("parent links wrong: 2←%v 3←%v 4←%v,%v", aws.ToString(s2.ParentShardId), aws.ToString(s3.ParentShardId), aws.ToString(s4.ParentShardId), aws.ToString(s4.AdjacentParentShardId))
	}
	if bigOf(s2.HashKeyRange.StartingHashKey).Cmp(bigOf(s0.HashKeyRange.StartingHashKey)) != 0 ||
		new(big.Int).Add(bigOf(s2.HashKeyRange.EndingHashKey), big.NewInt(1)).Cmp(mid) != 0 ||
		bigOf(s3.HashKeyRange.StartingHashKey).Cmp(mid) != 0 ||
		bigOf(s4.HashKeyRange.StartingHashKey).Cmp(mid) != 0 ||
		aws.ToString(s4.HashKeyRange.EndingHashKey) != "340282366920938463463374607431768211455" {
		t.Fatalf("hash ranges wrong: %+v %+v %+v", s2.HashKeyRange, s3.HashKeyRange, s4.HashKeyRange)
	}
	for _, id := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000003"} {
		sh := byID[id]
		if sh.SequenceNumberRange.EndingSequenceNumber == nil {
			t.Fatalf("closed shard %s has no EndingSequenceNumber", id)
		}
		data, kids := readAll(t, ctx, c, "s", id)
		if len(kids) == 0 {
			t.Fatalf("closed shard %s reported no children at its end", id)
		}
		// The ending number is the last record's.
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(id), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: sh.SequenceNumberRange.EndingSequenceNumber})
		if err != nil {
			t.Fatalf("iterator at the ending sequence number of %s: %v", id, err)
		}
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil || len(out.Records) != 1 || string(out.Records[0].Data) != data[len(data)-1] || out.NextShardIterator != nil {
			t.Fatalf("record at ending sequence number of %s: %v %+v", id, err, out)
		}
	}
	for _, id := range []string{"shardId-000000000002", "shardId-000000000004"} {
		if byID[id].SequenceNumberRange.EndingSequenceNumber != nil {
			t.Fatalf("open shard %s has an EndingSequenceNumber", id)
		}
	}
	checkExactlyOnce(t, readLineage(t, ctx, c, "s"), 900)

	// New records go only to open shards.
	p, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("x"), ExplicitHashKey: aws.String("0"), Data: []byte("lo")},
		{PartitionKey: aws.String("x"), ExplicitHashKey: aws.String("340282366920938463463374607431768211455"), Data: []byte("hi")},
	}})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if a, b := aws.ToString(p.Records[0].ShardId), aws.ToString(p.Records[1].ShardId); a != "shardId-000000000002" || b != "shardId-000000000004" {
		t.Fatalf("records routed to %s and %s, want the open shards 2 and 4", a, b)
	}
}

func TestReshardErrors(t *testing.T) {
	srv := newServer(t, WithStream("s", 3))
	ctx := testCtx(t)
	c := srv.Client()
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"split unknown shard", func() error {
			_, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000099"), NewStartingHashKey: aws.String("5")})
			return err
		}, "ResourceNotFoundException"},
		{"split at the shard's start", func() error {
			_, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("0")})
			return err
		}, "InvalidArgumentException"},
		{"merge non-adjacent", func() error {
			_, err := c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("s"), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000002")})
			return err
		}, "InvalidArgumentException"},
		{"update to more than double", func() error {
			_, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(7), ScalingType: types.ScalingTypeUniformScaling})
			return err
		}, "InvalidArgumentException"},
	} {
		if got := errorCode(tc.call()); got != tc.code {
			t.Errorf("%s: code %q, want %s", tc.name, got, tc.code)
		}
	}
}

func TestUpdateShardCountKeepsEveryRecordOnce(t *testing.T) {
	srv := newServer(t, WithStream("s", 2))
	ctx := testCtx(t)
	c := srv.Client()
	putN(t, ctx, c, "s", 0, 200)
	for i, target := range []int32{4, 3, 2} {
		out, err := c.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(target), ScalingType: types.ScalingTypeUniformScaling})
		if err != nil {
			t.Fatalf("update shard count to %d: %v", target, err)
		}
		if aws.ToInt32(out.TargetShardCount) != target {
			t.Fatalf("target %d, want %d", aws.ToInt32(out.TargetShardCount), target)
		}
		putN(t, ctx, c, "s", 200*(i+1), 200)
		open, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
		if err != nil {
			t.Fatalf("list open shards: %v", err)
		}
		if len(open.Shards) != int(target) {
			t.Fatalf("%d open shards, want %d", len(open.Shards), target)
		}
		// Uniform: every open range has the same width, give or take the
		// remainder in the last.
		w0 := new(big.Int).Sub(bigOf(open.Shards[0].HashKeyRange.EndingHashKey), bigOf(open.Shards[0].HashKeyRange.StartingHashKey))
		for _, sh := range open.Shards[1 : len(open.Shards)-1] {
			w := new(big.Int).Sub(bigOf(sh.HashKeyRange.EndingHashKey), bigOf(sh.HashKeyRange.StartingHashKey))
			if w.Cmp(w0) != 0 {
				t.Fatalf("open shard widths differ: %s vs %s", w, w0)
			}
		}
	}
	checkExactlyOnce(t, readLineage(t, ctx, c, "s"), 800)
}
