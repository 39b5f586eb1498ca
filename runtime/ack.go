package runtime

import (
	"fmt"
	"sync/atomic"
)

// ack is the AckFunc the sink calls once per record. It never blocks.
func (c *Connector) ack(r *Record, err error) {
	if err == nil {
		c.done(r)
		return
	}
	if c.closed.Load() {
		// Run has returned; the sink is failing what is left. Nothing is acknowledged, so a
		// restart reads these records again.
		c.release(r)
		return
	}
	switch c.opts.ErrorPolicy {
	case PolicySkip:
		c.log.Warn("record failed; skipped by errors.policy skip", "shard", r.Shard, "position", r.Position.String(), "error", err)
		c.opts.Metrics.skipped(c.opts.Name)
		c.done(r)
	case PolicyDLQ:
		c.dlqMu.Lock()
		if c.dlqClosed {
			// The dead-letter goroutine has ended (the drain is past it) but Run has not
			// returned yet: nobody would write this record, so release it unacknowledged, as
			// runDeadLetters does with what it leaves queued; a restart reads it again.
			c.dlqMu.Unlock()
			c.release(r)
			return
		}
		c.dlqQueue = append(c.dlqQueue, deadLetter{rec: r, cause: err})
		c.dlqMu.Unlock()
		select {
		case c.dlqWake <- struct{}{}:
		default:
		}
	default:
		c.opts.Metrics.failed(c.opts.Name)
		c.release(r)
		c.fail(fmt.Errorf("record of shard %s at position %s failed (errors.policy fail): %w", r.Shard, r.Position, err))
	}
}

// done acknowledges r's position and releases its pool space.
func (c *Connector) done(r *Record) {
	r.track.Ack(r.ticket)
	if m, _ := r.track.Committable(); m.End {
		// The shard's end just became committable: write it now, so its children need not wait
		// for the next checkpoint tick.
		c.requestCommit()
	}
	if c.ackedTotal != nil {
		c.ackedTotal.Inc()
	}
	c.release(r)
}

// pendingBytes returns the shard's pending-bytes counter, made on first use.
func (c *Connector) pendingBytes(shard string) *atomic.Int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[shard]
	if !ok {
		p = new(atomic.Int64)
		c.pending[shard] = p
	}
	return p
}

func (c *Connector) release(r *Record) {
	c.opts.Pool.Release(1, r.size)
	r.pending.Add(-r.size)
	if c.inflight.Add(-1) == 0 {
		select {
		case c.zero <- struct{}{}:
		default:
		}
	}
}
