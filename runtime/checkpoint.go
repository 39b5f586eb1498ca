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
	c.resume = make(map[string]Mark, len(cps))
	var epoch int64
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range cps {
		c.resume[cp.Shard] = cp.Mark
		c.written[cp.Shard] = cp.Mark
		if cp.Mark.End {
			c.endedLocked(cp.Shard) // create
			close(c.ended[cp.Shard])
		}
		epoch = max(epoch, cp.Owner.Epoch)
	}
	c.opts.Owner.Epoch = epoch + 1
	return nil
}

// commit writes every shard's mark that moved since the last write. A store error is logged and
// the marks are written again next time: checkpoints only move forward, so a retry is safe.
func (c *Connector) commit(ctx context.Context) {
	var cps []Checkpoint
	now := time.Now()
	c.mu.Lock()
	for _, shard := range c.tracker.Shards() {
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
			Mark: m, Owner: c.opts.Owner, Written: now,
		})
	}
	c.mu.Unlock()
	if len(cps) == 0 {
		return
	}
	start := time.Now()
	if err := c.opts.Store.Commit(ctx, cps); err != nil {
		c.log.Warn("checkpoint commit failed; will retry", "error", err, "shards", len(cps))
		c.opts.Metrics.checkpointFailed(c.opts.Name)
		return
	}
	c.opts.Metrics.checkpointCommitted(c.opts.Name, time.Since(start))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range cps {
		c.written[cp.Shard] = cp.Mark
		if cp.Mark.End {
			ch := c.endedLocked(cp.Shard)
			select {
			case <-ch:
			default:
				close(ch)
			}
			c.tracker.Remove(cp.Shard)
			c.log.Info("shard end checkpointed", "shard", cp.Shard, "position", cp.Mark.Position.String())
		}
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
