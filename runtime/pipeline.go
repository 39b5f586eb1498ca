package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [ConnectorOptions].
const (
	DefaultCheckpointInterval = 5 * time.Second
	DefaultShutdownTimeout    = 30 * time.Second
)

// State is a connector's lifecycle state, as the HTTP API reports it.
type State string

// States, named as Kafka Connect names them.
const (
	StateUnassigned State = "UNASSIGNED" // not started yet
	StateRunning    State = "RUNNING"
	StatePaused     State = "PAUSED"
	StateFailed     State = "FAILED"
	StateStopped    State = "STOPPED"
)

// ErrStopping is returned by Emit and WaitForSpace once the connector is shutting down.
var ErrStopping = errors.New("runtime: connector is stopping")

// ConnectorOptions configure a [Connector]. Source, Sink, Store and Pool are required.
type ConnectorOptions struct {
	Name   string
	Source Source
	Sink   Sink
	Store  CheckpointStore
	// Pool is the global pending pool. Share one Pool between every connector of a process.
	Pool *Pool
	// CheckpointInterval is how often committable positions go to Store. Default 5s.
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds the wait for in-flight records on shutdown. Default 30s.
	ShutdownTimeout time.Duration
	// ErrorPolicy applies to records that fail for good. Default PolicyFail. PolicyDLQ needs a
	// Sink that implements DeadLetterWriter.
	ErrorPolicy ErrorPolicy
	// Owner is written with every checkpoint. Its Epoch is replaced at start by one more than the
	// highest epoch found in the loaded checkpoints.
	Owner Owner
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics, when set, receives the connector's counters.
	Metrics *Metrics
}

// Connector runs one source into one sink. It implements [Emitter] for its source.
//
// Goroutines: Run starts the source's Run and a dead-letter worker, and waits for both before it
// returns. Everything else runs on the caller's goroutines (Emit on the source's readers, the ack
// function on the sink's promise goroutine).
type Connector struct {
	opts    ConnectorOptions
	log     *slog.Logger
	tracker *Tracker
	ackFn   AckFunc // c.ack as a value, made once so Emit does not allocate it per batch
	// ackedTotal is shardbridge_records_acked_total for this connector, looked up once rather
	// than per record; nil without metrics.
	ackedTotal prometheus.Counter

	// Read-only once Run has loaded the checkpoints.
	resume map[string]Mark
	stream string
	// writeCtx is what Emit hands to Sink.Write. It outlives the source's context, which ends
	// when the drain starts: a sink may fail records whose Write context ends, and the drain is
	// there to let them finish. It ends when the drain is over.
	writeCtx context.Context

	inflight atomic.Int64
	zero     chan struct{} // gets a token whenever inflight drops to 0; buffered 1
	closed   atomic.Bool   // Run has returned: acks only release the pool
	fatal    chan struct{} // closed by fail
	commitCh chan struct{} // asks Run for a checkpoint commit now; buffered 1

	dlqMu    sync.Mutex
	dlqQueue []deadLetter // dlqMu guards dlqQueue
	dlqWake  chan struct{}

	mu       sync.Mutex // mu guards the fields below
	state    State
	failErr  error
	running  chan struct{}            // closed while not paused
	ended    map[string]chan struct{} // closed once the shard's end is in the store
	written  map[string]Mark          // last mark written per shard
	pending  map[string]*atomic.Int64 // bytes emitted and not yet done, per shard
	lastErrs []string
}

type deadLetter struct {
	rec   *Record
	cause error
}

var _ Emitter = (*Connector)(nil)

// NewConnector checks opts and fills defaults.
func NewConnector(opts ConnectorOptions) (*Connector, error) {
	switch {
	case opts.Source == nil:
		return nil, errors.New("runtime: connector needs a source")
	case opts.Sink == nil:
		return nil, errors.New("runtime: connector needs a sink")
	case opts.Store == nil:
		return nil, errors.New("runtime: connector needs a checkpoint store")
	case opts.Pool == nil:
		return nil, errors.New("runtime: connector needs the pending pool")
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	switch opts.ErrorPolicy {
	case "":
		opts.ErrorPolicy = PolicyFail
	case PolicyFail, PolicySkip:
	case PolicyDLQ:
		if _, ok := opts.Sink.(DeadLetterWriter); !ok {
			return nil, fmt.Errorf("runtime: connector %q: errors.policy dlq needs a sink that can write dead letters", opts.Name)
		}
	default:
		return nil, fmt.Errorf("runtime: connector %q: unknown errors.policy %q (use fail, dlq or skip)", opts.Name, opts.ErrorPolicy)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Connector{
		opts:     opts,
		log:      opts.Logger.With("connector", opts.Name),
		tracker:  NewTracker(),
		zero:     make(chan struct{}, 1),
		fatal:    make(chan struct{}),
		commitCh: make(chan struct{}, 1),
		dlqWake:  make(chan struct{}, 1),
		state:    StateUnassigned,
		running:  make(chan struct{}),
		ended:    make(map[string]chan struct{}),
		written:  make(map[string]Mark),
		pending:  make(map[string]*atomic.Int64),
	}
	close(c.running)
	c.ackFn = c.ack
	if opts.Metrics != nil {
		c.ackedTotal = opts.Metrics.ackedRecords.WithLabelValues(opts.Name)
	}
	return c, nil
}

// Name is the connector's name.
func (c *Connector) Name() string { return c.opts.Name }

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
	c.setState(StateRunning)
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

	ticker := time.NewTicker(c.opts.CheckpointInterval)
	defer ticker.Stop()

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
			c.commit(ctx)
		case <-c.commitCh:
			c.commit(ctx)
		}
	}

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
	}
	if err := c.opts.Sink.Flush(drainCtx); err != nil {
		c.log.Warn("sink flush on shutdown", "error", err)
	}
	stopWrites()
	stopDLQ()
	<-dlqDone
	c.commit(drainCtx)
	c.closed.Store(true)

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
	return c.opts.Sink.Write(c.writeCtx, recs, c.ackFn)
}

// EndShard implements Emitter.
func (c *Connector) EndShard(ctx context.Context, shard string) error {
	st := c.tracker.Shard(shard)
	st.Ack(st.RegisterEnd())
	c.requestCommit()
	return nil
}

func (c *Connector) requestCommit() {
	select {
	case c.commitCh <- struct{}{}:
	default:
	}
}

// Resume implements Emitter.
func (c *Connector) Resume(shard string) (Mark, bool) {
	m, ok := c.resume[shard]
	return m, ok
}

// WaitEnded implements Emitter.
func (c *Connector) WaitEnded(ctx context.Context, shard string) error {
	c.mu.Lock()
	ch := c.endedLocked(shard)
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

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

// runDeadLetters writes dead letters one at a time. It owns the DeadLetterWriter calls, which
// block, so that the ack function never does. On ctx end, queued records are released without an
// acknowledgement: a restart reads them again.
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
			c.dlqMu.Unlock()
			for _, dl := range queue {
				c.release(dl.rec)
			}
			return
		}
	}
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

func (c *Connector) setState(s State) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state = s
}

// Pause stops reading: readers block in WaitForSpace. Records in flight still complete and their
// checkpoints still move.
func (c *Connector) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StateRunning {
		return
	}
	c.state = StatePaused
	c.running = make(chan struct{})
}

// Unpause undoes Pause; the API calls it resume.
func (c *Connector) Unpause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != StatePaused {
		return
	}
	c.state = StateRunning
	close(c.running)
}

// ShardStatus is the pipeline's view of one shard.
type ShardStatus struct {
	Shard        string       `json:"shard"`
	InFlight     int          `json:"pending_records"`
	PendingBytes int64        `json:"pending_bytes"`
	Checkpoint   *Mark        `json:"checkpoint,omitempty"`
	Reader       *ShardReport `json:"reader,omitempty"`
}

// Status is a connector's state for the HTTP API.
type Status struct {
	Name     string        `json:"name"`
	State    State         `json:"state"`
	Error    string        `json:"error,omitempty"`
	InFlight int64         `json:"pending_records"`
	Shards   []ShardStatus `json:"shards"`
}

// Status reports the connector's state.
func (c *Connector) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Name: c.opts.Name, State: c.state, InFlight: c.inflight.Load()}
	if c.failErr != nil {
		s.Error = c.failErr.Error()
	}
	seen := map[string]bool{}
	for _, id := range c.tracker.Shards() {
		seen[id] = true
		ss := ShardStatus{Shard: id, InFlight: c.tracker.Shard(id).InFlight()}
		if p, ok := c.pending[id]; ok {
			ss.PendingBytes = p.Load()
		}
		if m, ok := c.written[id]; ok {
			ss.Checkpoint = &m
		}
		s.Shards = append(s.Shards, ss)
	}
	for id, m := range c.written {
		if !seen[id] {
			s.Shards = append(s.Shards, ShardStatus{Shard: id, Checkpoint: &m})
		}
	}
	sort.Slice(s.Shards, func(i, j int) bool { return s.Shards[i].Shard < s.Shards[j].Shard })
	return s
}
