package runtime

import (
	"context"
	"fmt"
)

type deadLetter struct {
	rec   *Record
	cause error
}

// runDeadLetters writes dead letters one at a time. It owns the DeadLetterWriter calls, which
// block, so that the ack function never does. On ctx end, queued records are released without an
// acknowledgement: a restart reads them again. It marks the queue closed in the same critical
// section that takes what is left, so an error ack that arrives later (the drain's final commit
// runs after this goroutine ends) releases its record itself instead of queueing it for nobody.
func (c *Connector) runDeadLetters(ctx context.Context) {
	dw, _ := c.opts.Sink.(DeadLetterWriter)
	for {
		c.dlqMu.Lock()
		queue := c.dlqQueue
		c.dlqQueue = nil
		c.dlqMu.Unlock()
		for i, dl := range queue {
			if ctx.Err() != nil {
				for _, rest := range queue[i:] {
					c.release(rest.rec)
				}
				break
			}
			if err := dw.WriteDeadLetter(ctx, dl.rec, dl.cause); err != nil {
				c.release(dl.rec)
				c.fail(fmt.Errorf("write dead letter of shard %s at position %s: %w (original error: %v)", dl.rec.Shard, dl.rec.Position, err, dl.cause))
				continue
			}
			c.log.Warn("record failed; written to the dead-letter topic", "shard", dl.rec.Shard, "position", dl.rec.Position.String(), "error", dl.cause)
			c.opts.Metrics.deadLettered(c.opts.Name)
			c.done(dl.rec)
		}
		select {
		case <-c.dlqWake:
		case <-ctx.Done():
			c.dlqMu.Lock()
			queue := c.dlqQueue
			c.dlqQueue = nil
			c.dlqClosed = true
			c.dlqMu.Unlock()
			for _, dl := range queue {
				c.release(dl.rec)
			}
			return
		}
	}
}
