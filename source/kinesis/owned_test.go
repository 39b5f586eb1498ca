package kinesis

import (
	"context"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardbridge/shardbridge/runtime"
)

// ownedEmitter is a testEmitter that shares its shards with other workers, as the runtime does
// with a group: a reader owns a shard only between grant and take, and a shard's end counts only
// once checkpointed (mark), not when the reader reports it (EndShard).
type ownedEmitter struct {
	*testEmitter

	omu      sync.Mutex
	grants   map[string]*grant
	owns     map[string]int // Own calls per shard
	releases map[string]int // release calls per shard
	endCalls map[string]int // EndShard calls per shard
	marked   map[string]chan struct{}
	ochanged chan struct{}
}

// grant is one stint of ownership of a shard: ctx ends when it is taken away.
type grant struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newOwnedEmitter() *ownedEmitter {
	return &ownedEmitter{testEmitter: newTestEmitter(100000, 64<<20, true), grants: map[string]*grant{},
		owns: map[string]int{}, releases: map[string]int{}, endCalls: map[string]int{}, marked: map[string]chan struct{}{},
		ochanged: make(chan struct{})}
}

var _ runtime.ShardOwner = (*ownedEmitter)(nil)

func (e *ownedEmitter) bumpOwnedLocked() {
	close(e.ochanged)
	e.ochanged = make(chan struct{})
}

// Own blocks until the test grants shard.
func (e *ownedEmitter) Own(ctx context.Context, shard string) (context.Context, func(), error) {
	e.omu.Lock()
	e.owns[shard]++
	e.bumpOwnedLocked()
	e.omu.Unlock()
	for {
		e.omu.Lock()
		g, changed := e.grants[shard], e.ochanged
		e.omu.Unlock()
		if g != nil && g.ctx.Err() == nil {
			octx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(g.ctx, cancel)
			return octx, func() {
				stop()
				cancel()
				e.omu.Lock()
				e.releases[shard]++
				e.bumpOwnedLocked()
				e.omu.Unlock()
			}, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

func (e *ownedEmitter) give(shard string) {
	e.omu.Lock()
	defer e.omu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	e.grants[shard] = &grant{ctx, cancel}
	e.bumpOwnedLocked()
}

// take ends the shard's ownership without its end being checkpointed: what a worker that missed
// its session (runtime.OwnershipHandler.Lost) goes through.
func (e *ownedEmitter) take(shard string) {
	e.omu.Lock()
	defer e.omu.Unlock()
	if g := e.grants[shard]; g != nil {
		g.cancel()
		delete(e.grants, shard)
	}
	e.bumpOwnedLocked()
}

func (e *ownedEmitter) markedCh(shard string) chan struct{} {
	ch, ok := e.marked[shard]
	if !ok {
		ch = make(chan struct{})
		e.marked[shard] = ch
	}
	return ch
}

// mark checkpoints the shard's end.
func (e *ownedEmitter) mark(shard string) {
	e.omu.Lock()
	defer e.omu.Unlock()
	close(e.markedCh(shard))
	e.bumpOwnedLocked()
}

func (e *ownedEmitter) EndShard(ctx context.Context, shard string) error {
	e.omu.Lock()
	defer e.omu.Unlock()
	e.endCalls[shard]++
	e.bumpOwnedLocked()
	return nil
}

func (e *ownedEmitter) WaitEnded(ctx context.Context, shard string) error {
	e.omu.Lock()
	ch := e.markedCh(shard)
	e.omu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitOwned waits until cond holds, checking it after every change of ownership.
func (e *ownedEmitter) waitOwned(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		e.omu.Lock()
		ok, changed := cond(), e.ochanged
		e.omu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			e.omu.Lock()
			defer e.omu.Unlock()
			t.Fatalf("%s: not within 20s (Own calls %v, releases %v, EndShard calls %v)", what, e.owns, e.releases, e.endCalls)
		}
	}
}

// A closed shard that this worker read to its end, but lost before the end was checkpointed (it
// missed its session: no final commit), must be read again when this worker owns it again:
// otherwise nobody ever writes its end, and its children wait for ever. Once its end is
// checkpointed, the reader is done with it for good.
func TestClosedShardLostBeforeEndCheckpointIsReadAgain(t *testing.T) {
	em := newOwnedEmitter()
	polling := false
	f := newFixture(t, "owned", 1, func(c *Config) {
		c.EFO.Enabled = &polling
		c.PollInterval = 200 * 1e6
	}, em.testEmitter)
	f.put("r", 20, 4)
	half := new(big.Int).Lsh(big.NewInt(1), 127)
	if _, err := f.cli.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String("owned"),
		ShardToSplit: aws.String(shard0), NewStartingHashKey: aws.String(half.String())}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.src.Run(ctx, em) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	defer stop()

	em.give(shard0)
	em.waitOwned(t, "shard 0 read to its end", func() bool { return em.endCalls[shard0] == 1 })
	em.take(shard0) // lost before the end's checkpoint
	em.waitOwned(t, "shard 0 given back by its reader", func() bool { return em.releases[shard0] == 1 })
	em.give(shard0)
	em.waitOwned(t, "shard 0 read to its end again once owned again", func() bool { return em.endCalls[shard0] == 2 })
	em.mark(shard0) // now the end is checkpointed
	em.waitOwned(t, "shard 0's reader done", func() bool { return em.releases[shard0] == 2 })
	em.take(shard0)
	stop() // Run waits for every reader: one that went back to Own has called it by now
	em.omu.Lock()
	defer em.omu.Unlock()
	if em.owns[shard0] != 2 {
		t.Errorf("shard 0's reader asked to own it %d times; want 2: once its end is checkpointed it is done", em.owns[shard0])
	}
}
