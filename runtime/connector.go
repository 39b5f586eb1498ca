package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of [ConnectorOptions].
const (
	DefaultCheckpointInterval = 5 * time.Second
	DefaultShutdownTimeout    = 30 * time.Second
	DefaultFinalCommitTimeout = 10 * time.Second
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
	// FinalCommitTimeout bounds the final checkpoint commit after the drain. It is a budget of
	// its own, so that a drain that used up ShutdownTimeout still checkpoints what was
	// acknowledged. Default 10s.
	FinalCommitTimeout time.Duration
	// ErrorPolicy applies to records that fail for good. Default PolicyFail. PolicyDLQ needs a
	// Sink that implements DeadLetterWriter.
	ErrorPolicy ErrorPolicy
	// Owner is written with every checkpoint. Its Epoch is replaced at start by one more than the
	// highest epoch found in the loaded checkpoints, or, with Ownership, by the group generation
	// each commit's lease confirms.
	Owner Owner
	// Delivery is the guarantee: DeliveryAtLeastOnce (the default) or DeliveryExactlyOnce, which
	// needs a Sink that is a Transactor.
	Delivery Delivery
	// Ownership, when set, shares the connector's shards with other workers: this connector reads
	// only the shards of the slots it owns, loads their checkpoints when it gains them, and hands
	// them over drained and checkpointed. Nil: this process reads every shard.
	Ownership Ownership
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

	// Read-only once Run has started.
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

	dlqMu     sync.Mutex
	dlqQueue  []deadLetter // dlqMu guards dlqQueue
	dlqClosed bool         // dlqMu guards; the dead-letter goroutine has ended: nothing queued is written
	dlqWake   chan struct{}

	commitMu sync.Mutex // serializes checkpoint commits (and, with a Transactor, rewinds)

	// tx is the sink as a Transactor under DeliveryExactlyOnce, else nil. txnMu guards the
	// transaction's state: the records acknowledged in it, whose pool space comes back when it
	// commits, and whether it is doomed (must abort).
	tx      Transactor
	txnMu   sync.Mutex
	txnDone []*Record
	txnDoom error // why the open transaction must abort; nil while it may commit
	fenced  bool  // the writer was fenced: nothing more is committed or aborted

	// lineageWake asks the lineage watcher to look for parents' ends in the store now; buffered 1.
	lineageWake chan struct{}

	mu       sync.Mutex // mu guards the fields below
	state    State
	failErr  error
	paused   bool                     // Pause was called and Unpause not since; kept across Run's start
	running  chan struct{}            // closed while not paused
	ended    map[string]chan struct{} // closed once the shard's end is in the store
	written  map[string]Mark          // last mark written per shard
	resume   map[string]Mark          // where each shard resumes: loaded at start, or when its slot is gained
	pending  map[string]*atomic.Int64 // bytes emitted and not yet done, per shard
	lastErrs []string
	// slots is what this worker owns with Ownership set; nil entries mean not owned. slotsChanged
	// is closed (and replaced) whenever a slot is gained, to wake Own.
	slots        map[int32]*slotState
	slotsChanged chan struct{}
	waiters      map[string]int // shards a WaitEnded waits on, with Ownership set
}

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
	if opts.FinalCommitTimeout <= 0 {
		opts.FinalCommitTimeout = DefaultFinalCommitTimeout
	}
	var tx Transactor
	switch opts.Delivery {
	case "":
		opts.Delivery = DeliveryAtLeastOnce
	case DeliveryAtLeastOnce:
	case DeliveryExactlyOnce:
		var ok bool
		if tx, ok = opts.Sink.(Transactor); !ok {
			return nil, fmt.Errorf("runtime: connector %q: delivery exactly_once needs a sink that writes transactions", opts.Name)
		}
	default:
		return nil, fmt.Errorf("runtime: connector %q: unknown delivery %q (use at_least_once or exactly_once)", opts.Name, opts.Delivery)
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

		lineageWake:  make(chan struct{}, 1),
		slots:        make(map[int32]*slotState),
		slotsChanged: make(chan struct{}),
		waiters:      make(map[string]int),
		resume:       make(map[string]Mark),
	}
	close(c.running)
	c.ackFn = c.ack
	c.tx = tx
	if opts.Metrics != nil {
		c.ackedTotal = opts.Metrics.ackedRecords.WithLabelValues(opts.Name)
	}
	return c, nil
}

// Name is the connector's name.
func (c *Connector) Name() string { return c.opts.Name }
