package runtime

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Ownership splits a connector's shards among the workers (processes) that share it; package
// group implements it over Kafka's group protocol. Every shard belongs to one slot, the unit of
// ownership, by a rule all workers share; the worker that owns a slot reads the slot's shards
// and writes their checkpoints, and nobody else does.
type Ownership interface {
	// Slot returns the slot of shard. Every worker computes the same, and it never changes.
	Slot(shard string) int32
	// Listed tells the group which shards are open now, so that it balances them by count.
	Listed(open []string)
	// Run takes part in the group until ctx ends, then leaves it. It tells h which slots this
	// worker gains and gives up, one call at a time. It returns nil once ctx ended, or an error
	// that stops the connector.
	Run(ctx context.Context, h OwnershipHandler) error
	// Lease confirms with the group that this worker still owns the slots it was given. A
	// checkpoint commit is sent only after a Lease and only until Lease.Until.
	Lease(ctx context.Context) (Lease, error)
}

// Lease is the group's word that this worker owns its slots, for a while.
type Lease struct {
	// Epoch is the group generation the worker is a member of; checkpoints carry it as their
	// owner's epoch.
	Epoch int64
	// Until is when the word runs out: earlier than the soonest the group could give the slots
	// to another worker.
	Until time.Time
	// Group, Member, Topic and Slot identify the membership for a transactional commit that the
	// group coordinator fences (KIP-447): the commit carries them, and the coordinator refuses it
	// once Member of generation Epoch is no longer in Group. Slot is a partition of the group's
	// Topic that the worker owns, whose offset the commit writes; -1 when it owns none.
	Group, Member, Topic string
	TopicID              [16]byte
	Slot                 int32
}

// OwnershipHandler is what Ownership.Run tells. Its calls never overlap.
type OwnershipHandler interface {
	// Assigned says this worker now owns slots. since is when the rebalance that moved them
	// began (zero if unknown). The slots' shards are read only after Assigned returns.
	Assigned(ctx context.Context, slots []int32, since time.Time)
	// Revoked says this worker gives slots up. It returns once their shards have stopped
	// reading (subscriptions closed), their records in flight are done (up to the shutdown
	// timeout) and their checkpoints are written; only then does the group give the slots to
	// another worker.
	Revoked(ctx context.Context, slots []int32)
	// Lost says the slots were taken without a handover: this worker was presumed dead (it
	// missed its session). Their shards stop at once, and nothing more is committed for them.
	Lost(ctx context.Context, slots []int32)
}

// ShardOwner is the optional ability of an Emitter that shares a connector among workers. A
// reader calls Own before it reads a shard, and reads it only under the context Own returns.
type ShardOwner interface {
	// Own blocks until this worker owns shard (at once without Ownership), then returns a
	// context that ends when it stops owning the shard (or when ctx ends), and the function
	// the reader calls once it has stopped reading (its subscription closed): a handover
	// waits for it. Own returns ctx's error when ctx ends first.
	Own(ctx context.Context, shard string) (context.Context, func(), error)
}

// ShardLister is the optional ability of an Emitter to hear which shards are open, for an
// Ownership that balances them.
type ShardLister interface {
	Listed(open []string)
}

var (
	_                   ShardOwner       = (*Connector)(nil)
	_                   ShardLister      = (*Connector)(nil)
	_                   OwnershipHandler = (*Connector)(nil)
	ownPollEvery                         = 5 * time.Millisecond // how often a handover looks at the drain's progress
	lineageReloadMinGap                  = 100 * time.Millisecond
)

// slotState is one owned slot. Connector.mu guards it.
type slotState struct {
	ctx     context.Context // ends when the slot is given up
	cancel  context.CancelFunc
	readers int           // readers holding Own on a shard of the slot
	idle    chan struct{} // closed when readers drops to zero while the slot is given up; nil otherwise
	since   time.Time     // start of the rebalance that brought the slot, for the handover metric
}

// allShards is the one slot of a connector without Ownership: this worker owns every shard. It
// is there so that a rewind (txn.go) stops and restarts every reader the same way a group hands
// shards over.
const allShards int32 = -1

// slotOf returns the slot of shard: its Ownership slot, or allShards without Ownership.
func (c *Connector) slotOf(shard string) int32 {
	if own := c.opts.Ownership; own != nil {
		return own.Slot(shard)
	}
	return allShards
}

// Own implements ShardOwner.
func (c *Connector) Own(ctx context.Context, shard string) (context.Context, func(), error) {
	slot := c.slotOf(shard)
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		c.mu.Lock()
		st := c.slots[slot]
		if st != nil && st.ctx.Err() == nil {
			st.readers++
			since := st.since
			st.since = time.Time{} // the first reader of the slot measures the handover
			c.mu.Unlock()
			if !since.IsZero() {
				c.opts.Metrics.handover(c.opts.Name, time.Since(since))
			}
			rctx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(st.ctx, cancel)
			done := func() {
				stop()
				cancel()
				c.mu.Lock()
				st.readers--
				if st.readers == 0 && st.idle != nil {
					close(st.idle)
					st.idle = nil
				}
				c.mu.Unlock()
			}
			return rctx, done, nil
		}
		changed := c.slotsChanged
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// Listed implements ShardLister.
func (c *Connector) Listed(open []string) {
	if c.opts.Ownership != nil {
		c.opts.Ownership.Listed(open)
	}
}

// Assigned implements OwnershipHandler: it loads the checkpoints (another worker may have moved
// them since this one last owned the slots), then lets the slots' shards be read.
func (c *Connector) Assigned(ctx context.Context, slots []int32, since time.Time) {
	if len(slots) == 0 || c.closed.Load() {
		return
	}
	cps, err := c.loadRetrying(ctx)
	if err != nil {
		c.fail(fmt.Errorf("load checkpoints for the shards this worker was given: %w", err))
		return
	}
	own := c.opts.Ownership
	gained := make(map[int32]bool, len(slots))
	for _, s := range slots {
		gained[s] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cp := range cps {
		c.loadedLocked(cp, func(shard string) bool { return gained[own.Slot(shard)] })
	}
	for _, s := range slots {
		if st := c.slots[s]; st != nil && st.ctx.Err() == nil {
			continue // already owned
		}
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c.slots[s] = &slotState{ctx: sctx, cancel: cancel, since: since}
	}
	close(c.slotsChanged)
	c.slotsChanged = make(chan struct{})
	c.log.Info("group: shards assigned to this worker", "slots", slots)
}

// loadRetrying loads the connector's checkpoints, retrying a failed load until ctx ends: a
// worker cannot read a shard it was given without knowing where it stands.
func (c *Connector) loadRetrying(ctx context.Context) ([]Checkpoint, error) {
	wait := 100 * time.Millisecond
	for {
		cps, err := c.opts.Store.Load(ctx, c.opts.Name, c.stream)
		if err == nil {
			return cps, nil
		}
		c.log.Warn("group: loading checkpoints failed, retrying", "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Revoked implements OwnershipHandler: the handover. Readers of the slots' shards stop first
// (their subscriptions close), then their records in flight finish (up to the shutdown
// timeout), then their checkpoints are written; the slots are free for another worker after.
func (c *Connector) Revoked(ctx context.Context, slots []int32) {
	c.giveUp(ctx, slots, true)
}

// Lost implements OwnershipHandler: the slots' readers stop and nothing is committed for them;
// the new owner resumes from the last checkpoint written while this worker owned them.
func (c *Connector) Lost(ctx context.Context, slots []int32) {
	c.giveUp(ctx, slots, false)
}

func (c *Connector) giveUp(ctx context.Context, slots []int32, handover bool) {
	own := c.opts.Ownership
	if own == nil || len(slots) == 0 {
		return
	}
	mine := make(map[int32]bool, len(slots))
	var idle []chan struct{}
	c.mu.Lock()
	for _, s := range slots {
		st := c.slots[s]
		if st == nil {
			continue
		}
		mine[s] = true
		st.cancel()
		if st.readers > 0 {
			if st.idle == nil { // a rewind may be waiting on it already
				st.idle = make(chan struct{})
			}
			idle = append(idle, st.idle)
		}
		delete(c.slots, s)
	}
	c.mu.Unlock()
	if len(mine) == 0 {
		return
	}
	if !handover && c.tx != nil {
		// Under exactly-once the open transaction holds records of the lost shards, which
		// their new owner reads again from the last committed checkpoint: it must never commit,
		// even if this worker is a member again (in a new generation) by the time it ends.
		c.doomTxn(errors.New("this worker lost shards to the group"))
	}
	inSlots := func(shard string) bool { return mine[own.Slot(shard)] }
	deadline := time.Now().Add(c.opts.ShutdownTimeout)
	dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	// 1. Readers stop: every subscription of these shards is closed before anyone else opens one.
	for _, ch := range idle {
		select {
		case <-ch:
		case <-dctx.Done():
			c.log.Warn("group: a reader did not stop within the shutdown timeout while handing its shard over")
		}
	}
	if handover && !c.closed.Load() {
		// 2. What they emitted finishes, so that the checkpoint covers it all.
		if !c.waitShardsDone(dctx, inSlots) {
			c.log.Warn("group: records still in flight when the shutdown timeout passed during a handover; the next owner reads them again",
				"shutdown_timeout", c.opts.ShutdownTimeout)
		}
		// 3. Their checkpoints.
		fctx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FinalCommitTimeout)
		c.commitShards(fctx, inSlots, false)
		cancelFinal()
	}
	c.commitMu.Lock() // no commit is computing marks of these shards while they are dropped
	c.mu.Lock()
	for _, shard := range c.tracker.Shards() {
		if inSlots(shard) {
			c.tracker.Remove(shard)
		}
	}
	for shard := range c.resume {
		if inSlots(shard) {
			delete(c.resume, shard)
		}
	}
	c.mu.Unlock()
	c.commitMu.Unlock()
	what := "revoked"
	if !handover {
		what = "lost"
	}
	c.log.Info("group: shards "+what, "slots", slots)
}

// waitShardsDone waits until no record of a shard keep accepts is in flight.
func (c *Connector) waitShardsDone(ctx context.Context, keep func(string) bool) bool {
	for {
		busy := false
		for _, shard := range c.tracker.Shards() {
			if keep(shard) && c.tracker.Shard(shard).InFlight() > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return true
		}
		t := time.NewTimer(ownPollEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// ownedShards returns the shards of the slots this worker owns, among known.
func (c *Connector) ownedShardsLocked(known []string) []string {
	own := c.opts.Ownership
	var out []string
	for _, s := range known {
		if st := c.slots[own.Slot(s)]; st != nil && st.ctx.Err() == nil {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// watchLineage runs while the connector runs with Ownership: whenever a WaitEnded waits on a
// shard whose end is not known here, it reloads the checkpoints every checkpoint interval and
// closes the ends it finds, since another worker may have read the parent.
func (c *Connector) watchLineage(ctx context.Context) {
	for {
		c.mu.Lock()
		waiting := false
		for shard := range c.waiters {
			if !isClosed(c.endedLocked(shard)) {
				waiting = true
				break
			}
		}
		c.mu.Unlock()
		if waiting {
			if cps, err := c.opts.Store.Load(ctx, c.opts.Name, c.stream); err == nil {
				c.mu.Lock()
				for _, cp := range cps {
					if cp.Mark.End {
						c.loadedLocked(cp, func(string) bool { return false })
					}
				}
				c.mu.Unlock()
			} else if ctx.Err() == nil {
				c.log.Warn("group: loading checkpoints to look for parent shards' ends failed; will retry", "error", err)
			}
		}
		wait := c.opts.CheckpointInterval
		if !waiting {
			wait = time.Hour // until a WaitEnded wakes it
		}
		t := time.NewTimer(max(wait, lineageReloadMinGap))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.lineageWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// GroupDescriber tells what the group of a connector looks like, for the status and for the
// offsets API (which edits checkpoints only while no worker runs the connector). Package group
// implements it.
type GroupDescriber interface {
	// Slot is Ownership.Slot.
	Slot(shard string) int32
	// Describe asks the group coordinator for the group's state and members.
	Describe(ctx context.Context) (GroupState, error)
}

// GroupState is a group as its coordinator describes it.
type GroupState struct {
	ID      string        `json:"id"`
	State   string        `json:"state"` // Kafka's group state: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
	Members []GroupMember `json:"members"`
}

// GroupMember is one worker in a group, with what it is assigned.
type GroupMember struct {
	WorkerID string   `json:"worker_id"`
	MemberID string   `json:"member_id"`
	Slots    []int32  `json:"partitions"`
	Shards   []string `json:"shards"` // the known shards of those partitions
}
