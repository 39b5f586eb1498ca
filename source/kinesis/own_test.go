package kinesis

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
)

// droppingEmitter is a testEmitter that owns every shard, but drops the first end of shard
// dropEnd as an aborted transaction does: the end is never checkpointed, and the reader's grant
// ends, so the shard must be read again from its (unmoved) checkpoint.
type droppingEmitter struct {
	*testEmitter
	dropEnd string

	mu      sync.Mutex
	dropped bool
	revoke  context.CancelFunc
	owns    map[string]int
}

func (e *droppingEmitter) Own(ctx context.Context, shard string) (context.Context, func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.owns[shard]++
	if shard == e.dropEnd && !e.dropped {
		g, cancel := context.WithCancel(ctx)
		e.revoke = cancel
		return g, cancel, nil
	}
	return ctx, func() {}, nil
}

func (e *droppingEmitter) EndShard(ctx context.Context, shard string) error {
	e.mu.Lock()
	if shard == e.dropEnd && !e.dropped {
		e.dropped = true
		revoke := e.revoke
		e.mu.Unlock()
		revoke() // the transaction holding the end aborted: the end is gone
		return nil
	}
	e.mu.Unlock()
	return e.testEmitter.EndShard(ctx, shard)
}

// A shard's end counts only once it is checkpointed: when the end is lost (an aborted
// transaction, a handover before the commit), the reader owns the shard again and reads it to
// its end again, and only then do its children start.
func TestShardEndNotCheckpointedIsReadAgain(t *testing.T) {
	const stream = "lost-end"
	base := newTestEmitter(100000, 64<<20, true)
	em := &droppingEmitter{testEmitter: base, owns: map[string]int{}}
	f := newFixture(t, stream, 1, nil, base)
	want := f.put("a", 50, 5)
	ctx := context.Background()
	out, err := f.cli.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	parent := out.Shards[0]
	em.dropEnd = aws.ToString(parent.ShardId)
	lo, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.StartingHashKey), 10)
	hi, _ := new(big.Int).SetString(aws.ToString(parent.HashKeyRange.EndingHashKey), 10)
	mid := new(big.Int).Rsh(new(big.Int).Add(lo, hi), 1)
	if _, err := f.cli.SplitShard(ctx, &kinesis.SplitShardInput{
		StreamName: aws.String(stream), ShardToSplit: parent.ShardId, NewStartingHashKey: aws.String(mid.String()),
	}); err != nil {
		t.Fatal(err)
	}
	more := f.put("b", 40, 5)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.src.Run(runCtx, em) }()
	total := len(want[em.dropEnd])
	for _, v := range more {
		total += len(v)
	}
	// The parent twice (its first end was lost), then the children.
	em.waitFor(t, "the parent read twice and the children read", 30*time.Second, func() bool {
		return len(em.shardRecs(em.dropEnd)) == 2*len(want[em.dropEnd]) && em.count() == total+len(want[em.dropEnd])
	})
	em.mu.Lock()
	owns := em.owns[em.dropEnd]
	em.mu.Unlock()
	if owns != 2 {
		t.Fatalf("the parent was owned %d times; want 2 (again after its end was lost)", owns)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
