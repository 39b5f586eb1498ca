package runtime

import (
	"context"
	"time"
)

var _ Emitter = (*Connector)(nil)

// WaitForSpace implements Emitter.
func (c *Connector) WaitForSpace(ctx context.Context, timeout time.Duration) error {
	c.mu.Lock()
	gate := c.running
	c.mu.Unlock()
	select {
	case <-gate:
	default:
		start := time.Now()
		var deadline <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return ErrBackpressureTimeout
		}
		if timeout > 0 {
			timeout -= time.Since(start)
			if timeout <= 0 {
				return ErrBackpressureTimeout
			}
		}
	}
	return c.opts.Pool.WaitForSpace(ctx, timeout)
}

// Emit implements Emitter.
func (c *Connector) Emit(ctx context.Context, shard string, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	if c.closed.Load() {
		return ErrStopping
	}
	var bytes int64
	for i := range recs {
		s := recs[i].Size()
		recs[i].size = s
		bytes += s
	}
	n := int64(len(recs))
	if err := c.opts.Pool.Acquire(ctx, n, bytes); err != nil {
		return err
	}
	st := c.tracker.Shard(shard)
	pending := c.pendingBytes(shard)
	pending.Add(bytes)
	for i := range recs {
		r := &recs[i]
		r.ticket = st.Register(r.Position)
		r.track = st
		r.conn = c
		r.pending = pending
	}
	c.inflight.Add(n)
	c.opts.Metrics.emitted(c.opts.Name, n, bytes)
	// From here on the records are registered and belong to the pipeline. A sink acks every
	// record of a Write, also when Write returns an error, so such an error reaches each record
	// through its ack and the error policy. Returning it here as well would tell the reader that
	// nothing was taken, and a reader that read the records again would register them twice.
	if err := c.opts.Sink.Write(c.writeCtx, recs, c.ackFn); err != nil {
		c.log.Debug("sink write returned an error; its records are failed through their acks", "shard", shard, "records", n, "error", err)
	}
	return nil
}

// EndShard implements Emitter.
func (c *Connector) EndShard(ctx context.Context, shard string) error {
	st := c.tracker.Shard(shard)
	st.Ack(st.RegisterEnd())
	c.requestCommit()
	return nil
}

// Resume implements Emitter.
func (c *Connector) Resume(shard string) (Mark, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.resume[shard]
	return m, ok
}

// WaitEnded implements Emitter.
//
// With Ownership set another worker may read the parent, so its end may reach the store from
// elsewhere: while anyone waits, the lineage watcher reloads the checkpoints every checkpoint
// interval and closes the ends it finds.
func (c *Connector) WaitEnded(ctx context.Context, shard string) error {
	c.mu.Lock()
	ch := c.endedLocked(shard)
	if c.opts.Ownership != nil && !isClosed(ch) {
		c.waiters[shard]++
		defer func() {
			c.mu.Lock()
			if c.waiters[shard]--; c.waiters[shard] <= 0 {
				delete(c.waiters, shard)
			}
			c.mu.Unlock()
		}()
		select {
		case c.lineageWake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
