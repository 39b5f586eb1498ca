package runtime

import (
	"context"
	"fmt"
	"time"
)

// load reads the checkpoints of the connector's stream from the store.
func (c *Connector) load(ctx context.Context) error {
	cps, err := c.opts.Store.Load(ctx, c.opts.Name, c.stream)
	if err != nil {
		return fmt.Errorf("load checkpoints of connector %s: %w", c.opts.Name, err)
	}
	var epoch int64
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resume = make(map[string]Mark, len(cps))
	for _, cp := range cps {
		c.loadedLocked(cp, nil)
		epoch = max(epoch, cp.Owner.Epoch)
	}
	c.opts.Owner.Epoch = epoch + 1
	return nil
}

// loadedLocked takes in one stored checkpoint: where its shard resumes (when resume accepts the
// shard; every shard when resume is nil), what is known written, and whether the shard has ended.
func (c *Connector) loadedLocked(cp Checkpoint, resume func(shard string) bool) {
	if resume == nil || resume(cp.Shard) {
		c.resume[cp.Shard] = cp.Mark
		c.written[cp.Shard] = cp.Mark
	}
	if cp.Mark.End {
		c.setEndedLocked(cp.Shard)
	}
}

// commit writes every shard's mark that moved since the last write. A store error is logged and
// the marks are written again next time: checkpoints only move forward, so a retry is safe.
func (c *Connector) commit(ctx context.Context) { c.commitShards(ctx, nil, false) }

// commitShards is commit for the shards keep accepts (every tracked shard when keep is nil);
// final says the connector is stopping. Commits are serial, so that a commit that computed older
// marks never lands after a newer one.
//
// Under exactly-once the checkpoints go into the sink's transaction with the records they cover,
// and every shard's mark is written whatever keep says (one transaction holds them all): see
// txn.go. Otherwise they go to the Store.
//
// With several workers (Ownership set), a commit to the Store is written only under a lease: the
// group has just confirmed that this worker still owns its slots, and the write must reach Kafka
// before the lease runs out. The lease is shorter than the group's session timeout, which is the
// soonest the group could give the slots to another worker, so a worker that was frozen (a long
// pause, SIGSTOP) between the check and the write cannot land a stale checkpoint after the new
// owner's: its write's context has expired by the time it runs again, and the Kafka client fails
// a record whose context ended before sending it.
func (c *Connector) commitShards(ctx context.Context, keep func(shard string) bool, final bool) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	if c.tx != nil {
		c.commitTxn(ctx, final)
		return
	}
	cps := c.marks(c.ownerSnapshot(), keep)
	if len(cps) == 0 {
		return
	}
	if own := c.opts.Ownership; own != nil {
		lease, err := own.Lease(ctx)
		if err != nil {
			c.log.Warn("checkpoints not written: the group did not confirm that this worker still owns its shards", "error", err, "shards", len(cps))
			c.opts.Metrics.checkpointFenced(c.opts.Name)
			return
		}
		for i := range cps {
			cps[i].Owner.Epoch = lease.Epoch
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, lease.Until)
		defer cancel()
	}
	start := time.Now()
	if err := c.opts.Store.Commit(ctx, cps); err != nil {
		c.log.Warn("checkpoint commit failed; will retry", "error", err, "shards", len(cps))
		c.opts.Metrics.checkpointFailed(c.opts.Name)
		return
	}
	c.opts.Metrics.checkpointCommitted(c.opts.Name, time.Since(start))
	c.markWritten(cps)
}

func (c *Connector) ownerSnapshot() Owner {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts.Owner
}

// marks returns the checkpoint of every tracked shard (that keep accepts) whose highest
// contiguous acknowledged position moved since it was last written.
func (c *Connector) marks(owner Owner, keep func(shard string) bool) []Checkpoint {
	var cps []Checkpoint
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, shard := range c.tracker.Shards() {
		if keep != nil && !keep(shard) {
			continue
		}
		m, ok := c.tracker.Shard(shard).Committable()
		if !ok {
			continue
		}
		if m.End && m.Position.IsZero() {
			// The shard ended with no record read in this run: keep the position we resumed at.
			m.Position = c.written[shard].Position
		}
		if m == c.written[shard] {
			continue
		}
		cps = append(cps, Checkpoint{
			Connector: c.opts.Name, Stream: c.stream, Shard: shard,
			Mark: m, Owner: owner, Written: now,
		})
	}
	return cps
}

// markWritten records that cps are durable: the next commit starts from them, and a shard whose
// end is among them is ended (its children may start) and no longer tracked.
func (c *Connector) markWritten(cps []Checkpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range cps {
		c.written[cp.Shard] = cp.Mark
		if cp.Mark.End {
			c.setEndedLocked(cp.Shard)
			c.tracker.Remove(cp.Shard)
			c.log.Info("shard end checkpointed", "shard", cp.Shard, "position", cp.Mark.Position.String())
		}
	}
}

// setEndedLocked closes the shard's ended channel (once): its end is in the store.
func (c *Connector) setEndedLocked(shard string) {
	if ch := c.endedLocked(shard); !isClosed(ch) {
		close(ch)
	}
}

func (c *Connector) endedLocked(shard string) chan struct{} {
	ch, ok := c.ended[shard]
	if !ok {
		ch = make(chan struct{})
		c.ended[shard] = ch
	}
	return ch
}

func (c *Connector) requestCommit() {
	select {
	case c.commitCh <- struct{}{}:
	default:
	}
}
