package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// TestKafkaBrokerRestart: the broker goes away mid-stream, for at least 3 s and until the
// records it cannot take fill half the pool, and comes back on the same port with its data
// (kfake DataDir). Produces and checkpoint commits fail meanwhile
// and are retried; nothing is lost. Duplicates are bounded by the records in flight when the
// broker went down (pool.max_pending_records): a batch the broker wrote but could not
// acknowledge is sent again, and the idempotent producer's sequence state may not survive the
// restart.
func TestKafkaBrokerRestart(t *testing.T) {
	const pool = 2000
	s := newScenario(t, 4, 4, runtimeConfig{PoolRecords: pool})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, 8000, 1000) })

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_records_acked_total", 2000, time.Minute)
	s.kafka.stop()
	down := time.Now()
	// The outage lasts until the runtime is visibly held up by it: records it cannot deliver
	// fill half the pool (writes go on at 1,000 records/s), and at least 3 s.
	waitUntil(t, time.Minute, "pool filling while the broker is down", func() error {
		used, err := p.metric("shardbridge_pool_used_records")
		if err != nil {
			return err
		}
		if used < pool/2 || time.Since(down) < 3*time.Second {
			return fmt.Errorf("pool at %g records, down for %s", used, time.Since(down).Round(time.Millisecond))
		}
		return nil
	})
	s.kafka.startAgain()
	t.Logf("broker down for %s", time.Since(down).Round(time.Millisecond))
	if n := s.writer.written.Load(); n >= 8000 {
		t.Fatalf("the writer finished (%d records) before the broker came back: not mid-stream", n)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	failedCommits, _ := p.metric("shardbridge_checkpoint_commits_total", `result="error"`)
	rep := s.finish(p, s.kinesisTruth())
	assertBounded(t, rep, pool)
	t.Logf("duplicates after a broker restart: %d (bound %d); %g checkpoint commits failed while it was down", len(rep.Duplicates), pool, failedCommits)
}

// TestKinesisConnectionResets: every subscription's HTTP/2 stream is reset a few seconds in,
// over and over, while records flow. Each reader resubscribes from its last emitted record, so
// nothing is lost and nothing repeats; the process never restarts.
func TestKinesisConnectionResets(t *testing.T) {
	s := newScenario(t, 4, 4, runtimeConfig{})
	// After 4 events (heartbeats come every 500ms, data events more often), reset: every
	// subscription of every shard, until cleared.
	if err := s.srv.Inject(kinesistest.Fault{Op: "SubscribeToShard", Kind: kinesistest.ResetConnection(), After: 4, Count: -1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, 6000, 600) })

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	resets := waitResets(t, p, 12)
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	s.srv.ClearFaults()
	opened, _ := p.metric("shardbridge_kinesis_subscriptions_opened_total")
	p.terminate(time.Minute)
	rep := check(consume(t, s.kcat, s.kafka.addr(), s.cfg.Topic), want)
	t.Logf("%s; %g subscriptions opened for 4 shards, at least %g ended by a reset", rep, opened, resets)
	assertExact(t, rep)
}

// transportReasons are the subscriptions_ended_total reasons of a connection that broke.
var transportReasons = []string{"http2_stream_error", "connection_reset", "unexpected_eof", "transport_error"}

// TestSplitThenMerge: while records are written, shard 0 is split in two, and then one of its
// children is merged with shard 1. Each parent is read to its end and its end is checkpointed
// before its children start, so per key Kafka holds the records in write order across parent and
// children; nothing is lost or repeated.
func TestSplitThenMerge(t *testing.T) {
	s := newScenario(t, 2, 4, runtimeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	if err := s.writer.put(ctx, 1500, 1500); err != nil {
		t.Fatal(err)
	}
	wait := background(func() error { return s.writer.put(ctx, 4500, 1500) })
	p.waitMetric("shardbridge_records_acked_total", 1000, time.Minute)

	all := splitThenMerge(ctx, t, s, 1000, wait)
	want := s.kinesisTruth()
	rep := s.finish(p, want)
	assertExact(t, rep)

	// Every parent has an end checkpoint, committed before any checkpoint of its children
	// (the checkpoint topic has one partition, so its offsets order the commits).
	log := checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	assertParentsEndedFirst(t, all, log, false)
	t.Logf("%d shards (%d parents ended), %d checkpoint commits", len(all), len(all)-len(openShards(all)), len(log))
}

// splitThenMerge reshards s's two-shard stream while its writer runs: it splits shard 0 at the
// middle of its hash range, waits until between more records are written, then merges the
// split's upper child with shard 1 (adjacent hash ranges). It then waits for the writer (wait)
// and returns the stream's five shards.
func splitThenMerge(ctx context.Context, t testing.TB, s *scenario, between int64, wait func() error) []types.Shard {
	t.Helper()
	client := s.srv.Client()
	shards := listShards(t, client, s.cfg.Stream)
	half := new(big.Int).Rsh(new(big.Int).Lsh(big.NewInt(1), 128), 2) // 2^126: the middle of shard 0's [0, 2^127)
	if _, err := client.SplitShard(ctx, &awskinesis.SplitShardInput{StreamName: aws.String(s.cfg.Stream),
		ShardToSplit: shards[0].ShardId, NewStartingHashKey: aws.String(half.String())}); err != nil {
		t.Fatalf("split: %v", err)
	}
	split := s.writer.written.Load()
	waitUntil(t, time.Minute, "records written after the split", func() error {
		if s.writer.written.Load() < split+between {
			return fmt.Errorf("%d written", s.writer.written.Load())
		}
		return nil
	})
	open := openShards(listShards(t, client, s.cfg.Stream))
	var upper, one string
	for _, sh := range open {
		switch {
		case sh.HashKeyRange.StartingHashKey != nil && *sh.HashKeyRange.StartingHashKey == half.String():
			upper = *sh.ShardId
		case *sh.ShardId == *shards[1].ShardId:
			one = *sh.ShardId
		}
	}
	if upper == "" || one == "" {
		t.Fatalf("after the split: no shard starting at %s or no %s among %d open shards", half, *shards[1].ShardId, len(open))
	}
	if _, err := client.MergeShards(ctx, &awskinesis.MergeShardsInput{StreamName: aws.String(s.cfg.Stream),
		ShardToMerge: aws.String(upper), AdjacentShardToMerge: aws.String(one)}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	all := listShards(t, client, s.cfg.Stream)
	if len(all) != 5 {
		t.Fatalf("%d shards after a split and a merge of 2 shards, want 5", len(all))
	}
	return all
}

// assertParentsEndedFirst fails unless every parent among shards has an end checkpoint in log,
// committed before the first checkpoint of each of its children (the checkpoint topic has one
// partition, or the key puts a connector's shards in one, so its offsets order the commits); with
// childrenRead every child must have a checkpoint too. It returns the parent-child pairs seen.
func assertParentsEndedFirst(t testing.TB, shards []types.Shard, log []checkpointEntry, childrenRead bool) int {
	t.Helper()
	pairs := 0
	for _, sh := range shards {
		for _, parent := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if parent == nil {
				continue
			}
			pairs++
			end, first := int64(-1), int64(-1)
			for _, e := range log {
				if e.shard == *parent && e.end && end < 0 {
					end = e.offset
				}
				if e.shard == *sh.ShardId && first < 0 {
					first = e.offset
				}
			}
			switch {
			case end < 0:
				t.Errorf("parent %s of %s has no end checkpoint", *parent, *sh.ShardId)
			case first < 0 && childrenRead:
				t.Errorf("child %s of %s has no checkpoint: it was not read", *sh.ShardId, *parent)
			case first >= 0 && first < end:
				t.Errorf("child %s checkpointed at offset %d, before its parent %s's end at %d", *sh.ShardId, first, *parent, end)
			}
		}
	}
	return pairs
}

// waitResets waits until p's source has counted at least n subscriptions ended by a transport
// error, and returns how many.
func waitResets(t testing.TB, p *process, n float64) float64 {
	t.Helper()
	var resets float64
	waitUntil(t, time.Minute, "resets seen by the source", func() error {
		resets = 0
		for _, reason := range transportReasons {
			v, err := p.metric("shardbridge_kinesis_subscriptions_ended_total", `reason="`+reason+`"`)
			if err != nil {
				return err
			}
			resets += v
		}
		if resets < n {
			return fmt.Errorf("%g subscriptions ended by a transport error", resets)
		}
		return nil
	})
	return resets
}

func listShards(t testing.TB, client *awskinesis.Client, stream string) []types.Shard {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := client.ListShards(ctx, &awskinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	return out.Shards
}

func openShards(shards []types.Shard) []types.Shard {
	return slices.DeleteFunc(slices.Clone(shards), func(s types.Shard) bool {
		return s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil
	})
}

// checkpointEntry is one checkpoint value of a connector as a read_committed consumer of the
// checkpoint topic sees it.
type checkpointEntry struct {
	partition int32
	offset    int64
	shard     string
	seq       string
	sub       int64
	end       bool
	owner     string // the worker id that wrote it
	epoch     int64  // its owner's epoch: with a group, the group generation its lease confirmed
}

// checkpointLog is every committed checkpoint value of the connector (not only each shard's
// latest), in offset order per partition of the checkpoint topic. It reads read_committed, which
// is all there is for an at_least_once connector and leaves out aborted transactions' values.
func checkpointLog(t testing.TB, kc *kcat.Kcat, broker, connector string) []checkpointEntry {
	t.Helper()
	var out []checkpointEntry
	for _, m := range consumeCommitted(t, kc, broker, "_shardbridge_checkpoints") {
		if m.Key == nil {
			continue
		}
		parts := strings.Split(*m.Key, "/")
		if len(parts) != 3 || parts[0] != connector {
			continue
		}
		if m.Value == nil {
			t.Fatalf("checkpoint %s at offset %d is a tombstone; no scenario deletes checkpoints", *m.Key, m.Offset)
		}
		var v struct {
			Seq   string `json:"sequence_number"`
			Sub   int64  `json:"sub_sequence_number"`
			End   bool   `json:"shard_end"`
			Owner struct {
				ID    string `json:"id"`
				Epoch int64  `json:"epoch"`
			} `json:"owner"`
		}
		if err := json.Unmarshal([]byte(*m.Value), &v); err != nil {
			t.Fatalf("checkpoint %s: %v", *m.Key, err)
		}
		out = append(out, checkpointEntry{partition: m.Partition, offset: m.Offset, shard: parts[2], seq: v.Seq, sub: v.Sub,
			end: v.End, owner: v.Owner.ID, epoch: v.Owner.Epoch})
	}
	slices.SortStableFunc(out, func(a, b checkpointEntry) int {
		if a.partition != b.partition {
			return int(a.partition - b.partition)
		}
		return int(a.offset - b.offset)
	})
	return out
}
