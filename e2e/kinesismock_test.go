package e2e

import (
	"context"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/internal/kinesismock"
)

// TestKinesisMockSplitThenMerge runs the binary against kinesis-mock (the emulator LocalStack
// runs) instead of kinesistest, with EFO over its HTTPS port. kinesis-mock never ends a
// subscription at a closed shard (no null continuation, no ChildShards; it keeps sending empty
// events), so the parents of a split and a merge end only through the closed-shard probe:
// ListShards shows them closed, their subscriptions go quiet for closed_shard_quiet_period (the
// default, 10s), and the reader reads their ends with GetRecords.
//
// Shard 0 is split, then the split's upper child is merged with shard 1, with 1,000 records
// written before, between and after (kinesis-mock takes about 3,000 records/s). Every record
// arrives exactly once, per key in write order across parents and children, each parent's end
// checkpoint is committed before any checkpoint of its children, each of the 3 parents ended
// through the probe once, and no shard is left waiting for a parent.
func TestKinesisMockSplitThenMerge(t *testing.T) {
	kc := kcat.Find(t)
	mock := kinesismock.Start(t, "orders:2")
	client := kinesismock.NewClient(mock.Endpoint)
	cfg := runtimeConfig{Stream: "orders", Endpoint: mock.Endpoint}.defaults()
	k := startKafka(t, 4, cfg.Topic)
	cfg.Broker = k.addr()
	s := &scenario{t: t, kcat: kc, kafka: k, cfg: cfg, path: writeConfig(t, cfg), writer: newWriter(client, cfg.Stream, 32)}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Resharding is asynchronous in kinesis-mock: the stream is UPDATING for a moment.
	waitActive := func(what string) {
		t.Helper()
		waitUntil(t, 30*time.Second, "stream ACTIVE after the "+what, func() error {
			out, err := client.DescribeStreamSummary(ctx, &awskinesis.DescribeStreamSummaryInput{StreamName: aws.String(cfg.Stream)})
			if err != nil {
				return err
			}
			if st := out.StreamDescriptionSummary.StreamStatus; st != types.StreamStatusActive {
				return fmt.Errorf("stream is %s", st)
			}
			return nil
		})
	}

	p := startRuntime(t, "runtime", s.path)
	p.waitState(cfg.Connector, "RUNNING", 30*time.Second)
	if err := s.writer.put(ctx, 1000, 0); err != nil {
		t.Fatal(err)
	}
	p.waitMetric("shardbridge_records_acked_total", 500, time.Minute)

	// Split shard 0 at the middle of its hash range.
	shards := listShards(t, client, cfg.Stream)
	half := new(big.Int).Rsh(new(big.Int).Lsh(big.NewInt(1), 128), 2) // 2^126: the middle of shard 0's [0, 2^127)
	if _, err := client.SplitShard(ctx, &awskinesis.SplitShardInput{StreamName: aws.String(cfg.Stream),
		ShardToSplit: shards[0].ShardId, NewStartingHashKey: aws.String(half.String())}); err != nil {
		t.Fatalf("split: %v", err)
	}
	waitActive("split")
	if err := s.writer.put(ctx, 1000, 0); err != nil {
		t.Fatal(err)
	}
	// Merge the upper child of shard 0 with shard 1: adjacent hash ranges.
	var upper, one string
	for _, sh := range openShards(listShards(t, client, cfg.Stream)) {
		switch {
		case aws.ToString(sh.HashKeyRange.StartingHashKey) == half.String():
			upper = *sh.ShardId
		case *sh.ShardId == *shards[1].ShardId:
			one = *sh.ShardId
		}
	}
	if upper == "" || one == "" {
		t.Fatalf("after the split: no open shard starting at %s or no open %s", half, *shards[1].ShardId)
	}
	if _, err := client.MergeShards(ctx, &awskinesis.MergeShardsInput{StreamName: aws.String(cfg.Stream),
		ShardToMerge: aws.String(upper), AdjacentShardToMerge: aws.String(one)}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	waitActive("merge")
	if err := s.writer.put(ctx, 1000, 0); err != nil {
		t.Fatal(err)
	}

	all := listShards(t, client, cfg.Stream)
	if len(all) != 5 {
		t.Fatalf("%d shards after a split and a merge of 2 shards, want 5", len(all))
	}
	want, err := readKinesis(ctx, client, cfg.Stream)
	if err != nil {
		t.Fatalf("read kinesis: %v", err)
	}
	if n := int(s.writer.written.Load()); len(want) != n {
		t.Fatalf("kinesis-mock holds %d records, the writer wrote %d", len(want), n)
	}
	// The children's records arrive only after their parents ended, so this waits for the
	// probes too: a parent that never ends fails here with the children's records missing.
	waitMirrored(t, kc, k.addr(), cfg.Topic, want, 2*time.Minute)
	if n, err := p.metric("shardbridge_kinesis_subscriptions_ended_total", `reason="closed_quiet"`); err != nil || n != 3 {
		t.Errorf("subscriptions ended closed_quiet: %v (%v); want 3, one per parent", n, err)
	}
	st, err := p.status(cfg.Connector)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Shards) != 5 {
		t.Errorf("status lists %d shards, want 5", len(st.Shards))
	}
	for _, sh := range st.Shards {
		if sh.Reader == nil || sh.Reader.State == "waiting_parent" {
			t.Errorf("shard %s reader %+v: want it read", sh.Shard, sh.Reader)
		}
	}
	if n, err := p.metric("shardbridge_kinesis_parent_wait_seconds"); err != nil || n != 0 {
		t.Errorf("parent_wait_seconds sums to %v (%v); want 0, no shard waiting", n, err)
	}
	rep := s.finish(p, want)
	assertExact(t, rep)

	// Every parent has an end checkpoint, committed before any checkpoint of its children
	// (the checkpoint topic has one partition, so its offsets order the commits).
	log := checkpointLog(t, kc, k.addr(), cfg.Connector)
	parents := assertParentsEndedFirst(t, all, log, true)
	if parents != 4 {
		t.Errorf("%d parent-child pairs, want 4 (split: 2, merge: 2)", parents)
	}
	t.Logf("%d shards, %d checkpoint commits", len(all), len(log))
}
