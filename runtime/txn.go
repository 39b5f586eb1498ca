package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Exactly-once delivery (DeliveryExactlyOnce) runs the connector in transactions of the sink (a
// Transactor). This file is how one ends.
//
//  1. Records are written into the open transaction. Each ack marks the record's position in
//     the tracker, as under at-least-once, but its pool space is kept (txnDone): the record is
//     not durable for a read_committed consumer until the transaction commits.
//  2. Every checkpoint interval, at once when a shard ends, and early when the pool is half full
//     (done in ack.go), commitTxn asks the sink to commit. The sink stops taking writes, waits
//     for every ack, then asks marks for the checkpoints: the highest contiguous acknowledged
//     position of each shard, which now covers exactly what the transaction holds. It writes
//     them in the same transaction and commits.
//  3. Committed: the pool space of every record of the transaction comes back, and the marks
//     count as written. Aborted (a produce failed, the group counts this worker out, the broker
//     refused): rewind. Fenced (another process took the transactional id): the connector
//     stops; it never writes past a fence.
//
// A rewind reads everything since the last committed checkpoint again: every reader stops (its
// grant from Own ends), what they emitted finishes, the transaction is aborted, its records'
// space is released, the positions are forgotten, the checkpoints are loaded again (read
// committed), and the readers get new grants and resume from them. The aborted records stay
// invisible, so nothing is written twice where read_committed consumers look.

// doomTxn marks the open transaction as one that must abort, and asks for the abort now.
func (c *Connector) doomTxn(why error) {
	c.markDoomed(why)
	c.requestCommit()
}

// markDoomed marks the open transaction as one that must abort; the first reason stays.
func (c *Connector) markDoomed(why error) {
	c.txnMu.Lock()
	if c.txnDoom == nil {
		c.txnDoom = why
	}
	c.txnMu.Unlock()
}

// commitTxn ends the open transaction: it commits it with the checkpoints of every tracked
// shard, or, when it fails, rewinds (unless final: the connector is stopping anyway). The caller
// holds commitMu.
func (c *Connector) commitTxn(ctx context.Context, final bool) {
	if c.isFenced() {
		return // a fenced writer writes nothing more
	}
	var fence *Lease
	owner := c.ownerSnapshot()
	if own := c.opts.Ownership; own != nil {
		lease, err := own.Lease(ctx)
		switch {
		case err != nil && c.txnEmpty():
			// Nothing was written since the last commit, so there is nothing to abort: a rewind
			// would only stop and restart every reader, and count an abort, on every commit
			// tick until the worker is back in the group. The next commit asks again.
			c.log.Debug("commit skipped: the group did not confirm this worker's membership, and the transaction is empty", "error", err)
			return
		case err != nil:
			// This commit is the abort; asking for another one would come straight back here and
			// spin while the worker is out of the group.
			c.markDoomed(fmt.Errorf("the group did not confirm this worker's membership: %w", err))
		default:
			fence = &lease
			owner.Epoch = lease.Epoch
		}
	}
	var batch []*Record
	var cps []Checkpoint
	marks := func() ([]Checkpoint, error) {
		c.txnMu.Lock()
		batch, c.txnDone = c.txnDone, nil
		doom := c.txnDoom
		c.txnMu.Unlock()
		if doom != nil {
			return nil, doom
		}
		cps = c.marks(owner, nil)
		return cps, nil
	}
	start := time.Now()
	err := c.tx.Commit(ctx, marks, fence)
	c.txnMu.Lock()
	c.txnDoom = nil // the transaction that was doomed is over, one way or the other
	c.txnMu.Unlock()
	switch {
	case err == nil:
		for _, r := range batch {
			c.releaseSpace(r)
		}
		if c.ackedTotal != nil {
			c.ackedTotal.Add(float64(len(batch)))
		}
		if len(batch) > 0 || len(cps) > 0 {
			c.opts.Metrics.transaction(c.opts.Name, "committed")
		}
		if len(cps) > 0 {
			c.opts.Metrics.checkpointCommitted(c.opts.Name, time.Since(start))
			c.markWritten(cps)
		}
	case errors.Is(err, ErrFenced):
		c.releaseAll(batch)
		c.opts.Metrics.transaction(c.opts.Name, "fenced")
		c.stopFenced(err)
	default:
		c.releaseAll(batch)
		c.opts.Metrics.transaction(c.opts.Name, "aborted")
		if final {
			c.log.Warn("transaction aborted while stopping; its records are read again after a restart", "error", err)
			return
		}
		c.log.Warn("transaction aborted; reading again from the last committed checkpoints", "error", err, "records", len(batch))
		c.rewind(ctx)
	}
}

// isFenced says whether another writer fenced this one: it commits and aborts nothing more.
func (c *Connector) isFenced() bool {
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	return c.fenced
}

// stopFenced records that another writer fenced this one (err says how) and stops the
// connector: it never writes past a fence.
func (c *Connector) stopFenced(err error) {
	c.txnMu.Lock()
	c.fenced = true
	c.txnMu.Unlock()
	c.fail(fmt.Errorf("exactly-once writer stopped: %w", err))
}

// txnEmpty says whether the open transaction holds nothing: no record written into it (acknowledged
// or in flight) and no reason to abort it.
func (c *Connector) txnEmpty() bool {
	c.txnMu.Lock()
	defer c.txnMu.Unlock()
	return c.txnDoom == nil && len(c.txnDone) == 0 && c.inflight.Load() == 0
}

// releaseAll gives back the pool space of records of a transaction that did not commit, and of
// those acknowledged since (they belong to it too).
func (c *Connector) releaseAll(batch []*Record) {
	c.txnMu.Lock()
	rest := c.txnDone
	c.txnDone = nil
	c.txnMu.Unlock()
	for _, r := range batch {
		c.releaseSpace(r)
	}
	for _, r := range rest {
		c.releaseSpace(r)
	}
}

// rewind reads everything again from the last committed checkpoints, after an aborted
// transaction: see the top of this file. The caller holds commitMu.
func (c *Connector) rewind(ctx context.Context) {
	c.opts.Metrics.rewound(c.opts.Name)
	// 1. Every reader stops: its grant ends, and it says so when its subscription is closed.
	c.mu.Lock()
	var idle []chan struct{}
	held := make(map[int32]*slotState, len(c.slots))
	for s, st := range c.slots {
		st.cancel()
		held[s] = st
		if st.readers > 0 {
			if st.idle == nil {
				st.idle = make(chan struct{})
			}
			idle = append(idle, st.idle)
		}
	}
	c.mu.Unlock()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.ShutdownTimeout)
	defer cancel()
	for _, ch := range idle {
		select {
		case <-ch:
		case <-dctx.Done():
		}
	}
	// 2. What they emitted finishes (in the transaction being aborted).
	if err := c.waitInFlight(dctx); err != nil {
		c.log.Warn("rewind: records still in flight after the shutdown timeout", "in_flight", c.inflight.Load())
	}
	// 3. The transaction is aborted: none of it becomes visible.
	if err := c.tx.Abort(ctx); err != nil {
		if errors.Is(err, ErrFenced) {
			c.stopFenced(err)
		} else {
			c.fail(fmt.Errorf("abort transaction: %w", err))
		}
		c.releaseAll(nil)
		return
	}
	c.releaseAll(nil)
	// 4. Positions are forgotten and loaded again as committed.
	for _, shard := range c.tracker.Shards() {
		c.tracker.Remove(shard)
	}
	cps, err := c.loadRetrying(ctx)
	if err != nil {
		c.fail(fmt.Errorf("load checkpoints after an aborted transaction: %w", err))
		return
	}
	// 5. New grants for the slots still owned; readers resume from the loaded checkpoints.
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resume = make(map[string]Mark, len(cps))
	c.written = make(map[string]Mark, len(cps))
	for _, cp := range cps {
		c.loadedLocked(cp, nil)
	}
	for s, st := range held {
		if c.slots[s] != st {
			continue // given up meanwhile
		}
		st.ctx, st.cancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	close(c.slotsChanged)
	c.slotsChanged = make(chan struct{})
}
