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
)

// A split and a merge in the middle of the stream: every record arrives once, each parent is
// read to its end before any record of its children is emitted, and per partition key the
// records keep the order they were written in.
func TestReshardSplitAndMerge(t *testing.T) {
	for _, efo := range []bool{true, false} {
		t.Run(map[bool]string{true: "efo", false: "polling"}[efo], func(t *testing.T) {
			f := newFixture(t, "resharded", 2, func(c *Config) {
				c.EFO.Enabled = &efo
				c.PollInterval = 200 * 1e6
				c.ShardSyncInterval = 1e9
			}, nil)
			ctx := t.Context()
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
				out, err := f.cli.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("resharded")})
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
				StreamName: aws.String("resharded"), ShardToSplit: s0.ShardId, NewStartingHashKey: aws.String(mid.String()),
			}); err != nil {
				t.Fatalf("split: %v", err)
			}
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
				StreamName: aws.String("resharded"), ShardToMerge: aws.String(upper), AdjacentShardToMerge: aws.String(second),
			}); err != nil {
				t.Fatalf("merge: %v", err)
			}
			add(f.put("c", 400, 20))

			total := 0
			for _, v := range want {
				total += len(v)
			}
			f.waitCount(total, 45*time.Second)
			f.checkExactlyOnce(want)
			f.calls.checkRate(t)

			// Lineage: every parent's end comes before its children's first emit.
			log := f.em.eventLog()
			pos := func(ev string) int { return slices.Index(log, ev) }
			pairs := 0
			for _, sh := range shards() {
				for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
					if p == nil {
						continue
					}
					end, first := pos("end "+*p), pos("emit "+aws.ToString(sh.ShardId))
					if end < 0 {
						t.Errorf("parent %s of %s never ended", *p, aws.ToString(sh.ShardId))
					} else if first >= 0 && first < end {
						t.Errorf("child %s emitted (event %d) before parent %s ended (event %d)", aws.ToString(sh.ShardId), first, *p, end)
					}
					pairs++
				}
			}
			if pairs != 4 {
				t.Errorf("found %d parent-child pairs, want 4 (split: 2, merge: 2)", pairs)
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
			_ = fmt.Sprint
		})
	}
}
