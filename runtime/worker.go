package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"
)

// Parts are what one run of a connector is made of. Close releases them after the run; it closes
// the sink, which fails (and so releases) whatever is still in flight.
type Parts struct {
	Options ConnectorOptions
	Close   func(ctx context.Context) error
}

// ConnectorSpec describes a connector to a [Worker].
type ConnectorSpec struct {
	Name string
	// Config is shown by the HTTP API. It must already have its secrets redacted.
	Config any
	// Build makes the parts of one run. The Worker fills Pool, Metrics, Name and Logger.
	Build func(ctx context.Context) (Parts, error)
	// Store reads and edits the connector's checkpoints while it is stopped (the offsets API).
	Store CheckpointStore
	// Stream is the source's stream, the checkpoints' second key part.
	Stream string
	// WorkerID names this process in the status.
	WorkerID string
	// Group, set when several workers share the connector, describes their group for the status
	// and lets the offsets API check that no worker runs the connector.
	Group GroupDescriber
}

// CheckpointDeleter is an optional ability of a CheckpointStore: it deletes one shard's
// checkpoint, so the shard starts again from the configured start position.
type CheckpointDeleter interface {
	Delete(ctx context.Context, connector, stream, shard string) error
}

// ShardReporter is an optional ability of a Source: it reports per-shard reader status (reader
// state, lag, subscription start, last error) for the HTTP API.
type ShardReporter interface {
	ShardReport() []ShardReport
}

// ShardReport is a source's view of one shard. Fields are free-form but JSON-friendly.
type ShardReport struct {
	Shard              string    `json:"shard"`
	State              string    `json:"reader_state"`
	MillisBehindLatest int64     `json:"millis_behind_latest"`
	SubscribedAt       time.Time `json:"subscription_start,omitzero"`
	LastError          string    `json:"last_error,omitempty"`
	RecordsRead        int64     `json:"records_read"`
	// WaitingFor lists the parent shards whose end checkpoints the shard still waits for before
	// it is read; empty once it no longer waits.
	WaitingFor []string `json:"waiting_for_parents,omitempty"`
	// ParentWaitSeconds is how long the shard has waited for its parents so far; 0 when it does
	// not wait.
	ParentWaitSeconds float64 `json:"parent_wait_seconds,omitempty"`
}

// Errors of the Worker's control calls; the HTTP API maps them to status codes.
var (
	ErrUnknownConnector = errors.New("unknown connector")
	ErrNotStopped       = errors.New("connector is not stopped")
)

// Worker runs a process's connectors over one shared pending pool, and pauses, resumes, stops and
// restarts them on request. Each running connector is one goroutine that the Worker owns.
type Worker struct {
	pool    *Pool
	metrics *Metrics
	log     *slog.Logger

	mu    sync.Mutex // mu guards conns and everything inside each managed
	conns map[string]*managed
	wg    sync.WaitGroup
	ctx   context.Context // set by Run; parent of every connector run
	ended chan struct{}   // a run ended; buffered, so the send never blocks
}

type managed struct {
	spec   ConnectorSpec
	conn   *Connector    // the current or last run; nil before the first
	cancel func()        // stops the current run
	done   chan struct{} // closed when the current run has ended
	state  State         // the state once no run is active (STOPPED, FAILED)
	err    error         // the error the last run ended with
	paused bool
	// editing is non-nil while an offsets edit writes; it is closed when the edit ends. A start
	// asked for meanwhile waits for it (startAfterEdit), so that the run loads the edited
	// checkpoints and never writes over them with the ones it loaded before.
	editing        chan struct{}
	startAfterEdit bool
}

// NewWorker returns a Worker for specs. metrics may be nil.
func NewWorker(pool *Pool, metrics *Metrics, log *slog.Logger, specs ...ConnectorSpec) (*Worker, error) {
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{pool: pool, metrics: metrics, log: log, conns: map[string]*managed{}, ended: make(chan struct{}, 1)}
	for _, s := range specs {
		if _, dup := w.conns[s.Name]; dup {
			return nil, fmt.Errorf("runtime: two connectors are named %q", s.Name)
		}
		w.conns[s.Name] = &managed{spec: s, state: StateUnassigned}
	}
	return w, nil
}

// Run starts every connector and blocks until ctx ends; then it stops them all (each drains) and
// returns. It also returns, with an error naming them, once every connector has failed, so a
// process with only failed connectors exits non-zero. A connector stopped on request keeps the
// Worker running: it can be started again.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	w.ctx = ctx
	for _, m := range w.conns {
		w.startOrDeferLocked(m)
	}
	w.mu.Unlock()

	for !w.allFailed() {
		select {
		case <-ctx.Done():
		case <-w.ended:
			continue
		}
		break
	}
	w.mu.Lock()
	for _, m := range w.conns {
		if m.cancel != nil {
			m.cancel()
		}
	}
	w.mu.Unlock()
	w.wg.Wait()

	var failed []string
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, m := range w.conns {
		if m.state == StateFailed {
			failed = append(failed, fmt.Sprintf("%s: %v", name, m.err))
		}
	}
	sort.Strings(failed)
	if len(failed) > 0 && ctx.Err() == nil {
		return fmt.Errorf("every connector has stopped; failed: %v", failed)
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed connectors: %v", failed)
	}
	return nil
}

// startOrDeferLocked starts a run of m, or, while an offsets edit of m is writing, marks it to
// start once the edit ends. The caller holds w.mu and has checked that no run is active.
func (w *Worker) startOrDeferLocked(m *managed) {
	if m.editing != nil {
		m.startAfterEdit = true
		return
	}
	w.startLocked(m)
}

// startLocked starts a run of m. The caller holds w.mu and has checked that no run is active.
func (w *Worker) startLocked(m *managed) {
	ctx, cancel := context.WithCancel(w.ctx)
	done := make(chan struct{})
	m.cancel, m.done, m.err = cancel, done, nil
	m.conn = nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() {
			// After close(done), so that Run, woken, sees this run as ended.
			select {
			case w.ended <- struct{}{}:
			default:
			}
		}()
		defer close(done)
		defer cancel()
		err := w.runOnce(ctx, m)
		w.mu.Lock()
		defer w.mu.Unlock()
		m.err = err
		switch {
		case err != nil:
			m.state = StateFailed
		default:
			m.state = StateStopped
		}
	}()
}

// allFailed reports whether no connector runs and every one has failed (vacuously true when there
// are none).
func (w *Worker) allFailed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.conns {
		if (m.done != nil && !isClosed(m.done)) || m.state != StateFailed {
			return false
		}
	}
	return true
}

func (w *Worker) runOnce(ctx context.Context, m *managed) error {
	log := w.log.With("connector", m.spec.Name)
	parts, err := m.spec.Build(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped (a stop request, SIGTERM) while its parts were connecting: nothing was
			// read, so there is nothing to drain, and it is a stop, not a failure.
			log.Info("connector stopped while starting", "error", err)
			return nil
		}
		log.Error("connector could not start", "error", err)
		return err
	}
	opts := parts.Options
	opts.Name, opts.Pool, opts.Metrics, opts.Logger = m.spec.Name, w.pool, w.metrics, w.log
	c, err := NewConnector(opts)
	if err != nil {
		if parts.Close != nil {
			_ = parts.Close(context.WithoutCancel(ctx))
		}
		return err
	}
	w.mu.Lock()
	m.conn = c
	if m.paused {
		c.Pause()
	}
	w.mu.Unlock()
	runErr := c.Run(ctx)
	if parts.Close != nil {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := parts.Close(closeCtx); err != nil {
			log.Warn("closing connector parts", "error", err)
		}
	}
	return runErr
}

func (w *Worker) get(name string) (*managed, error) {
	m, ok := w.conns[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownConnector, name)
	}
	return m, nil
}

// Names lists the connectors, sorted.
func (w *Worker) Names() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortedNames(w.conns)
}

func sortedNames(m map[string]*managed) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Config returns the connector's redacted config.
func (w *Worker) Config(name string) (any, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, err := w.get(name)
	if err != nil {
		return nil, err
	}
	return m.spec.Config, nil
}

// ConnectorStatus is a connector's status as the HTTP API shows it.
type ConnectorStatus struct {
	Name     string        `json:"name"`
	WorkerID string        `json:"worker_id,omitempty"`
	State    State         `json:"state"`
	Error    string        `json:"error,omitempty"`
	InFlight int64         `json:"pending_records"`
	Shards   []ShardStatus `json:"shards"`
	// With a group: the shards this worker owns now, and the group's whole assignment.
	OwnedShards []string     `json:"owned_shards,omitempty"`
	Group       *GroupStatus `json:"group,omitempty"`
}

// GroupStatus is a connector's group as the status shows it.
type GroupStatus struct {
	GroupState
	Error string `json:"error,omitempty"`
}

// Status reports a connector's state and its shards, merging the pipeline's view (checkpoint,
// pending records) with the source's (reader state, lag, last error).
func (w *Worker) Status(name string) (ConnectorStatus, error) {
	w.mu.Lock()
	m, err := w.get(name)
	if err != nil {
		w.mu.Unlock()
		return ConnectorStatus{}, err
	}
	conn, state, runErr := m.conn, m.state, m.err
	active := m.done != nil && !isClosed(m.done)
	w.mu.Unlock()

	st := ConnectorStatus{Name: name, State: state, WorkerID: m.spec.WorkerID}
	if conn != nil {
		s := conn.Status()
		st.InFlight, st.Shards, st.OwnedShards = s.InFlight, s.Shards, s.OwnedShards
		if active {
			st.State = s.State
			if st.State == StateUnassigned || st.State == StateStopped {
				st.State = StateRunning // starting, or draining a stop it was not asked for yet
			}
		}
		if s.Error != "" {
			st.Error = s.Error
		}
		if rep, ok := conn.opts.Source.(ShardReporter); ok {
			st.Shards = mergeReports(st.Shards, rep.ShardReport())
		}
	} else if active {
		st.State = StateRunning
	}
	if runErr != nil && st.Error == "" {
		st.Error = runErr.Error()
	}
	return st, nil
}

// Describe is Status plus, for a connector that several workers share, its group as the group
// coordinator has it: every member with the partitions and the (known) shards it is assigned.
func (w *Worker) Describe(ctx context.Context, name string) (ConnectorStatus, error) {
	st, err := w.Status(name)
	if err != nil {
		return st, err
	}
	w.mu.Lock()
	g := w.conns[name].spec.Group
	w.mu.Unlock()
	if g == nil {
		return st, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	gs, err := g.Describe(dctx)
	st.Group = &GroupStatus{GroupState: gs}
	if err != nil {
		st.Group.Error = err.Error()
		return st, nil
	}
	bySlot := map[int32][]string{}
	for _, sh := range st.Shards {
		slot := g.Slot(sh.Shard)
		bySlot[slot] = append(bySlot[slot], sh.Shard)
	}
	for i := range st.Group.Members {
		mem := &st.Group.Members[i]
		mem.Shards = []string{}
		for _, slot := range mem.Slots {
			mem.Shards = append(mem.Shards, bySlot[slot]...)
		}
		sort.Strings(mem.Shards)
	}
	return st, nil
}

func mergeReports(shards []ShardStatus, reps []ShardReport) []ShardStatus {
	idx := map[string]int{}
	for i, s := range shards {
		idx[s.Shard] = i
	}
	for _, r := range reps {
		r := r
		i, ok := idx[r.Shard]
		if !ok {
			shards = append(shards, ShardStatus{Shard: r.Shard})
			i = len(shards) - 1
			idx[r.Shard] = i
		}
		shards[i].Reader = &r
	}
	sort.Slice(shards, func(i, j int) bool { return shards[i].Shard < shards[j].Shard })
	return shards
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Pause stops a connector's reading; in-flight records still complete.
func (w *Worker) Pause(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, err := w.get(name)
	if err != nil {
		return err
	}
	m.paused = true
	if m.conn != nil {
		m.conn.Pause()
	}
	return nil
}

// Resume undoes Pause.
func (w *Worker) Resume(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, err := w.get(name)
	if err != nil {
		return err
	}
	m.paused = false
	if m.conn != nil {
		m.conn.Unpause()
	}
	return nil
}

// Stop drains a connector and leaves it STOPPED, until Start or Restart. It returns once the
// drain is done or ctx ends.
func (w *Worker) Stop(ctx context.Context, name string) error {
	w.mu.Lock()
	m, err := w.get(name)
	if err != nil {
		w.mu.Unlock()
		return err
	}
	cancel, done := m.cancel, m.done
	w.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart stops a connector (draining it) if it runs, and starts it again.
func (w *Worker) Restart(ctx context.Context, name string) error {
	if err := w.Stop(ctx, name); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	m, err := w.get(name)
	if err != nil {
		return err
	}
	if w.ctx == nil || w.ctx.Err() != nil {
		return errors.New("worker is not running")
	}
	if m.done != nil && !isClosed(m.done) {
		return errors.New("connector is being restarted by another request")
	}
	w.startOrDeferLocked(m)
	return nil
}

// beginEdit reserves a stopped connector for an offsets edit and returns its spec and the
// function that ends the reservation. Until then no run of it starts (a restart asked for
// meanwhile starts when the edit ends), so the check that it is stopped stays true for the
// whole write.
func (w *Worker) beginEdit(name string) (ConnectorSpec, func(), error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m, err := w.get(name)
	if err != nil {
		return ConnectorSpec{}, nil, err
	}
	if m.done != nil && !isClosed(m.done) {
		return ConnectorSpec{}, nil, fmt.Errorf("%w: %q is %s; stop it first (PUT /connectors/%s/stop)", ErrNotStopped, name, StateRunning, name)
	}
	if m.editing != nil {
		return ConnectorSpec{}, nil, fmt.Errorf("%w: the offsets of %q are being edited by another request; try again", ErrNotStopped, name)
	}
	ch := make(chan struct{})
	m.editing = ch
	end := func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		m.editing = nil
		close(ch)
		if m.startAfterEdit {
			m.startAfterEdit = false
			if w.ctx != nil && w.ctx.Err() == nil {
				w.startLocked(m)
			}
		}
	}
	return m.spec, end, nil
}

// Offsets returns the connector's checkpoints as stored.
func (w *Worker) Offsets(ctx context.Context, name string) ([]Checkpoint, error) {
	w.mu.Lock()
	m, err := w.get(name)
	w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if m.spec.Store == nil {
		return nil, errors.New("connector has no checkpoint store")
	}
	return m.spec.Store.Load(ctx, name, m.spec.Stream)
}

// SetOffsets writes checkpoints for a stopped connector, e.g. to rewind a shard. They carry an
// epoch above every stored one, so that they win over checkpoints of earlier runs wherever
// epochs are compared, and the connector's next run counts its epoch from them.
func (w *Worker) SetOffsets(ctx context.Context, name string, cps []Checkpoint) error {
	spec, end, err := w.beginEdit(name)
	if err != nil {
		return err
	}
	defer end()
	if err := groupIdle(ctx, spec); err != nil {
		return err
	}
	stored, err := spec.Store.Load(ctx, name, spec.Stream)
	if err != nil {
		return fmt.Errorf("load the stored checkpoints (for their epoch): %w", err)
	}
	var epoch int64
	for _, cp := range stored {
		epoch = max(epoch, cp.Owner.Epoch)
	}
	now := time.Now()
	for i := range cps {
		cps[i].Connector, cps[i].Stream, cps[i].Written = name, spec.Stream, now
		cps[i].Owner = Owner{ID: OffsetsAPIOwner, Epoch: epoch + 1}
	}
	return spec.Store.Commit(ctx, cps)
}

// groupIdle checks, for a connector that several workers share, that none of them runs it: an
// edit while another worker reads the shards would be overwritten by its next checkpoint.
func groupIdle(ctx context.Context, spec ConnectorSpec) error {
	if spec.Group == nil {
		return nil
	}
	gs, err := spec.Group.Describe(ctx)
	if err != nil {
		return fmt.Errorf("check that no worker runs %q: %w", spec.Name, err)
	}
	if len(gs.Members) == 0 {
		return nil
	}
	var ids []string
	for _, m := range gs.Members {
		ids = append(ids, m.WorkerID)
	}
	return fmt.Errorf("%w: %q still runs on %d worker(s) of group %s (%s); stop it on every worker first (PUT /connectors/%s/stop on each)",
		ErrNotStopped, spec.Name, len(gs.Members), gs.ID, strings.Join(ids, ", "), spec.Name)
}

// OffsetsAPIOwner is the owner id of checkpoints written by SetOffsets.
const OffsetsAPIOwner = "http-api"

// ResetOffsets deletes the checkpoints of a stopped connector (of the named shards, or all), so
// those shards start again from the configured start position.
func (w *Worker) ResetOffsets(ctx context.Context, name string, shards []string) error {
	spec, end, err := w.beginEdit(name)
	if err != nil {
		return err
	}
	defer end()
	if err := groupIdle(ctx, spec); err != nil {
		return err
	}
	del, ok := spec.Store.(CheckpointDeleter)
	if !ok {
		return errors.New("the checkpoint store cannot delete checkpoints")
	}
	if len(shards) == 0 {
		cps, err := spec.Store.Load(ctx, name, spec.Stream)
		if err != nil {
			return err
		}
		for _, cp := range cps {
			shards = append(shards, cp.Shard)
		}
	}
	for _, s := range shards {
		if err := del.Delete(ctx, name, spec.Stream, s); err != nil {
			return fmt.Errorf("delete checkpoint of shard %s: %w", s, err)
		}
	}
	return nil
}

// Ready reports whether every connector is running (not paused, failed or stopped).
func (w *Worker) Ready() (bool, []string) {
	var notReady []string
	for _, n := range w.Names() {
		st, err := w.Status(n)
		if err != nil || st.State != StateRunning {
			notReady = append(notReady, fmt.Sprintf("%s is %s", n, st.State))
		}
	}
	return len(notReady) == 0, notReady
}
