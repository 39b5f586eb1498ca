package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Run loads the checkpoints, runs the source until ctx ends or the connector fails, then drains:
// it stops reading, waits up to ShutdownTimeout for in-flight records, flushes the sink and writes
// final checkpoints. It returns nil after a clean stop and the first fatal error otherwise. Run may
// be called once. The caller closes the sink after Run returns; records still in flight then are
// acked with errors by the sink and only release their pool space.
func (c *Connector) Run(ctx context.Context) error {
	c.stream = c.opts.Source.Stream()
	if err := c.load(ctx); err != nil {
		c.setFailed(err)
		c.closed.Store(true)
		c.log.Error("connector failed", "error", err)
		return err
	}
	c.mu.Lock()
	if c.opts.Ownership == nil {
		// Without a group this worker owns every shard, from the start.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c.slots[allShards] = &slotState{ctx: sctx, cancel: cancel}
	}
	c.state = StateRunning
	if c.paused {
		// Paused before it started (a pause sent while it was stopped or starting, or kept
		// across a restart): it starts paused.
		c.state = StatePaused
	}
	c.mu.Unlock()
	c.log.Info("connector started", "stream", c.stream, "resumed_shards", len(c.resume), "epoch", c.opts.Owner.Epoch)

	writeCtx, stopWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWrites()
	c.writeCtx = writeCtx
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	srcDone := make(chan error, 1)
	go func() { srcDone <- c.opts.Source.Run(readCtx, c) }()

	dlqCtx, stopDLQ := context.WithCancel(context.WithoutCancel(ctx))
	dlqDone := make(chan struct{})
	go func() { defer close(dlqDone); c.runDeadLetters(dlqCtx) }()

	// With several workers: membership in the group, and the watcher of parents' ends written
	// by other workers. The group is left only after the final commit below, so the shards move
	// to other workers drained and checkpointed.
	ownCtx, leaveGroup := context.WithCancel(context.WithoutCancel(ctx))
	defer leaveGroup()
	ownDone := make(chan struct{})
	if own := c.opts.Ownership; own != nil {
		go func() {
			defer close(ownDone)
			if err := own.Run(ownCtx, c); err != nil && ownCtx.Err() == nil {
				c.fail(fmt.Errorf("group: %w", err))
			}
		}()
		lineageDone := make(chan struct{})
		go func() { defer close(lineageDone); c.watchLineage(ownCtx) }()
		defer func() { <-lineageDone }()
	} else {
		close(ownDone)
	}

	ticker := time.NewTicker(c.opts.CheckpointInterval)
	defer ticker.Stop()

	// A stop does not cut a commit in progress short: under exactly-once that would abort the
	// transaction and fail its abort too (the connector would end FAILED, its records read
	// again), and at-least-once it only delays the checkpoint. The commit gets ShutdownTimeout
	// after the stop to finish; the drain below starts when it has.
	commitCtx, cancelCommits := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCommits()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.NewTimer(c.opts.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelCommits()
		case <-commitCtx.Done():
		}
	})
	defer stopGrace()

	sourceReturned := false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-srcDone:
			sourceReturned = true
			if err != nil && !errors.Is(err, context.Canceled) {
				c.fail(fmt.Errorf("source: %w", err))
			}
			break loop
		case <-c.fatal:
			break loop
		case <-ticker.C:
			c.commit(commitCtx)
		case <-c.commitCh:
			c.commit(commitCtx)
		}
	}
	cancelCommits() // no commit runs any more; this ends the grace goroutine

	// Drain. Reading stops first, so that nothing new enters the pool.
	stopReading()
	if !sourceReturned {
		if err := <-srcDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrStopping) {
			c.fail(fmt.Errorf("source: %w", err))
		}
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.ShutdownTimeout)
	defer cancel()
	if err := c.waitInFlight(drainCtx); err != nil {
		c.log.Warn("shutdown timeout passed with records in flight; they will be read again after a restart",
			"in_flight", c.inflight.Load(), "shutdown_timeout", c.opts.ShutdownTimeout)
	} else if err := c.opts.Sink.Flush(drainCtx); err != nil {
		c.log.Warn("sink flush on shutdown", "error", err)
	}
	stopWrites()
	stopDLQ()
	<-dlqDone
	// The final commit has a budget of its own: when the drain used up ShutdownTimeout, the
	// records acknowledged so far still get their checkpoint, instead of a commit that fails at
	// once on the expired drain context.
	finalCtx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), c.opts.FinalCommitTimeout)
	defer cancelFinal()
	c.commitShards(finalCtx, nil, true)
	if c.tx != nil {
		// A transaction the final commit did not end (it failed, or nothing was acknowledged
		// since) must not stay open; what it held is read again after a restart.
		if !c.isFenced() {
			if err := c.tx.Abort(finalCtx); err != nil && !errors.Is(err, ErrFenced) {
				c.log.Warn("abort the open transaction on shutdown", "error", err)
			}
		}
		c.releaseAll(nil)
	}
	c.closed.Store(true)
	leaveGroup()
	<-ownDone

	c.mu.Lock()
	err := c.failErr
	if err == nil {
		c.state = StateStopped
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Error("connector failed", "error", err)
		return err
	}
	c.log.Info("connector stopped")
	return nil
}

// waitInFlight waits until every emitted record has been acked.
func (c *Connector) waitInFlight(ctx context.Context) error {
	for c.inflight.Load() > 0 {
		select {
		case <-c.zero:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// fail records the first fatal error and makes Run stop.
func (c *Connector) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErrs = append(c.lastErrs, err.Error())
	if len(c.lastErrs) > 10 {
		c.lastErrs = c.lastErrs[1:]
	}
	if c.failErr != nil {
		return
	}
	c.failErr = err
	c.state = StateFailed
	close(c.fatal)
}

func (c *Connector) setFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failErr = err
	c.state = StateFailed
}

// Pause stops reading: readers block in WaitForSpace. Records in flight still complete and their
// checkpoints still move. A pause before Run (or while Run starts) is kept: the connector starts
// paused.
func (c *Connector) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.paused {
		return
	}
	c.paused = true
	c.running = make(chan struct{})
	if c.state == StateRunning {
		c.state = StatePaused
	}
}

// Unpause undoes Pause; the API calls it resume.
func (c *Connector) Unpause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.paused {
		return
	}
	c.paused = false
	close(c.running)
	if c.state == StatePaused {
		c.state = StateRunning
	}
}
