package runtime

import (
	"errors"
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
	if c.tx != nil && errors.Is(err, ErrAbortTransaction) {
		// The produce failed inside the transaction, which can now only abort: its records
		// are read again from the last committed checkpoint. Abort as soon as possible.
		c.release(r)
		c.doomTxn(fmt.Errorf("record of shard %s at position %s failed: %w", r.Shard, r.Position, err))
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

// done acknowledges r's position and releases its pool space. Under exactly-once the space
// comes back only when the transaction holding r commits (see txn.go); until then r counts as
// done for the drain and for the checkpoint written in that transaction.
func (c *Connector) done(r *Record) {
	r.track.Ack(r.ticket)
	if m, _ := r.track.Committable(); m.End {
		// The shard's end just became committable: write it now, so its children need not wait
		// for the next checkpoint tick.
		c.requestCommit()
	}
	if c.tx != nil {
		c.txnMu.Lock()
		c.txnDone = append(c.txnDone, r)
		c.txnMu.Unlock()
		c.finish()
		// Commit early when the pool is half full, so that readers never wait on space that
		// only a commit gives back, while the commit itself never waits on the pool.
		if st := c.opts.Pool.Stats(); 2*st.UsedBytes >= st.LimitBytes || 2*st.UsedRecords >= st.LimitRecords {
			c.requestCommit()
		}
		return
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

// release gives r's pool space back and counts it out of flight.
func (c *Connector) release(r *Record) {
	c.releaseSpace(r)
	c.finish()
}

// releaseSpace gives r's pool space back.
func (c *Connector) releaseSpace(r *Record) {
	c.opts.Pool.Release(1, r.size)
	r.pending.Add(-r.size)
}

// finish counts one record out of flight: acknowledged, or failed for good.
func (c *Connector) finish() {
	if c.inflight.Add(-1) == 0 {
		select {
		case c.zero <- struct{}{}:
		default:
		}
	}
}
