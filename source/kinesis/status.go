package kinesis

import (
	"slices"
	"sort"
	"time"

	"github.com/shardbridge/shardbridge/runtime"
)

// Reader states, as ShardReport reports them.
const (
	StateWaitingParent = "waiting_parent" // waiting for a parent shard's end to be checkpointed
	StateSubscribing   = "subscribing"    // calling SubscribeToShard or GetShardIterator
	StateReading       = "reading"        // reading events or polling records
	StateBackoff       = "backoff"        // waiting before a retry
	StateBackpressure  = "backpressure"   // waiting for pool space
	StateDecodeWait    = "decode_wait"    // waiting for its share of the decode budget
	StateEnded         = "ended"          // read to its end
	StateNotOwned      = "not_owned"      // another worker of the connector's group owns it
)

// shardState is the status of one shard; Source.mu guards its fields.
type shardState struct {
	id           string
	state        string
	millisBehind int64
	subStart     time.Time
	lastErr      string
	records      int64

	// closed is set once ListShards shows the shard closed (EndingSequenceNumber set), and
	// closedCh is closed then; it never changes back.
	closed   bool
	closedCh chan struct{}
	// waitingFor are the parents whose end checkpoints the shard still waits for, since
	// waitSince (the source's clock); nextWarn is the wait after which the next warning is logged.
	waitingFor []string
	waitSince  time.Time
	nextWarn   time.Duration
}

func newShardState(id string) *shardState {
	return &shardState{id: id, state: StateWaitingParent, closedCh: make(chan struct{})}
}

// parentWait returns how long st has waited for its parents at now, or 0 when it does not wait.
// The caller holds Source.mu.
func (st *shardState) parentWait(now time.Time) time.Duration {
	if len(st.waitingFor) == 0 {
		return 0
	}
	return max(0, now.Sub(st.waitSince))
}

// ShardReport returns the status of every shard the source has seen, ordered by shard id, for
// the HTTP API (it implements runtime.ShardReporter). It holds no secrets and is safe to call at
// any time, also while Run runs.
func (s *Source) ShardReport() []runtime.ShardReport {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]runtime.ShardReport, 0, len(s.shards))
	for _, st := range s.shards {
		out = append(out, runtime.ShardReport{
			Shard: st.id, State: st.state, MillisBehindLatest: st.millisBehind,
			SubscribedAt: st.subStart, LastError: st.lastErr, RecordsRead: st.records,
			WaitingFor: slices.Clone(st.waitingFor), ParentWaitSeconds: st.parentWait(now).Seconds(),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return out
}

var _ runtime.ShardReporter = (*Source)(nil)

func (s *Source) setState(st *shardState, state string) { s.swapState(st, state) }

// swapState sets the state of st and returns the one before.
func (s *Source) swapState(st *shardState, state string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := st.state
	st.state = state
	return prev
}

func (s *Source) setActive(st *shardState, on bool) {
	s.mu.Lock()
	if on {
		s.active++
	} else {
		s.active--
	}
	n := s.active
	s.mu.Unlock()
	s.met.activeShards.WithLabelValues(s.connector).Set(float64(n))
}

func (s *Source) update(st *shardState, f func(st *shardState)) {
	s.mu.Lock()
	f(st)
	s.mu.Unlock()
}

// markClosed records that ListShards shows shard id closed; a reader of it may then confirm
// its end (see shardReader.runEFO).
func (s *Source) markClosed(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.shards[id]; ok && !st.closed {
		st.closed = true
		close(st.closedCh)
	}
}

func (s *Source) listedClosed(st *shardState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return st.closed
}

// parentWarnEvery is how often a shard that still waits for its parents is named in a warning.
const parentWarnEvery = 5 * time.Minute

// warnWaiting logs a warning for every shard that has waited for its parents' end checkpoints
// past the next multiple of parentWarnEvery, naming the parents and the wait. Discovery calls
// it every shard_sync_interval; the wait is measured on the source's clock.
func (s *Source) warnWaiting() {
	now := s.now()
	type warning struct {
		shard   string
		parents []string
		waited  time.Duration
	}
	var warn []warning
	s.mu.Lock()
	for _, st := range s.shards {
		w := st.parentWait(now)
		if w == 0 || w < max(st.nextWarn, parentWarnEvery) {
			continue
		}
		st.nextWarn = (w/parentWarnEvery + 1) * parentWarnEvery
		warn = append(warn, warning{st.id, slices.Clone(st.waitingFor), w})
	}
	s.mu.Unlock()
	sort.Slice(warn, func(i, j int) bool { return warn[i].shard < warn[j].shard })
	for _, w := range warn {
		s.log.Warn("kinesis: shard still waiting for its parents' end checkpoints; their readers have not ended them",
			"shard", w.shard, "parents", w.parents, "waited", w.waited.Round(time.Second))
	}
}

// parentWaits returns, for every shard the source knows, how long it has waited for its
// parents (0 when it does not wait), for the parent_wait_seconds metric.
func (s *Source) parentWaits() map[string]time.Duration {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Duration, len(s.shards))
	for id, st := range s.shards {
		out[id] = st.parentWait(now)
	}
	return out
}

// What a shard being read may hold outside the pool and the decode budget (see doc.go,
// "Memory"), and what a read takes from the decode budget.
const (
	// MaxEventBytes is the record data one SubscribeToShardEvent carries at most (EFO delivers at
	// most 2 MiB per second per shard), the "full event" of the documentation and the bench.
	MaxEventBytes = 2 << 20
	// MaxGetRecordsBytes is the most data one GetRecords call returns (Kinesis's limit).
	MaxGetRecordsBytes = 10 << 20
	// MaxEventRecords is the most records one event or GetRecords response carries
	// (GetRecords' limit of 10,000).
	MaxEventRecords = 10000
	// maxRecordBytes is the largest record Kinesis accepts.
	maxRecordBytes = 1 << 20
	// decodeFactor is what reading and decoding an event-stream message or a GetRecords body of
	// L bytes takes, in units of L, until its records are in the pool: the SDK reads the body
	// into a buffer grown by doubling (up to 2 L, plus the smaller buffers it outgrew, though
	// only the last is live), decodes the base64 data (3/4 L at most) and builds each record's
	// structures, and the source converts them into runtime.Records with their headers. In
	// BENCHMARKS.md's terms: an event of E bytes of data takes about 5 x E plus 512 B a record,
	// and a record's JSON is at least about 150 bytes beyond its base64 data (a 56-digit sequence
	// number, the arrival time, the field names), so 4 x L covers any shape of records.
	decodeFactor = 4
	// recordJSONBytes is about what a record's JSON takes beyond its base64 data; it sizes a
	// GetRecords response whose length the server does not give.
	recordJSONBytes = 160
	// shardStateBytes is what a shard being read keeps besides its HTTP/2 window: its reader's
	// and the SDK's goroutines (a subscription has three) with their stacks, the HTTP/2
	// stream, the converter's partly used chunks and its metric series. TestIdleShardHoldsLittle
	// measures it, between events, at well under this.
	shardStateBytes = 128 << 10
)

// ShardHeldBytes is the most memory one shard being read may hold outside the pool and the
// decode budget: its HTTP/2 receive window, which may be full while the reader waits for its
// share of the budget or for pool space, and the reader's own state. It is the same with EFO and
// with polling (a GetRecords response also arrives through a window), so an EFO reader that
// confirms a closed shard's end with GetRecords holds the same.
func (c *Config) ShardHeldBytes() int64 {
	return int64(c.HTTP2MaxReceiveBufferPerStream) + shardStateBytes
}

// HeldBytes is ShardHeldBytes times the shards being read now (it implements
// runtime.MemoryHolder). A shard waiting for its parents, or read to its end, holds nothing.
func (s *Source) HeldBytes() int64 {
	s.mu.Lock()
	n := s.active
	s.mu.Unlock()
	return int64(n) * s.cfg.ShardHeldBytes()
}

var _ runtime.MemoryHolder = (*Source)(nil)

// decodeShare is what a read of length bytes (an event-stream message, or a GetRecords body)
// takes from the decode budget. maxRecords sizes a response of unknown length (length < 0) at
// the most a GetRecords call with that limit may return.
func decodeShare(length int64, maxRecords int) int64 {
	if length < 0 {
		n := int64(min(maxRecords, MaxEventRecords))
		data := min(MaxGetRecordsBytes, n*maxRecordBytes)
		length = (data+2)/3*4 + n*recordJSONBytes
	}
	return decodeFactor * length
}
