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
	// draining is set while the reader confirms the end of a closed, quiet shard with
	// GetRecords (see shardReader.runEFO).
	draining bool

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

func (s *Source) setState(st *shardState, state string) {
	s.mu.Lock()
	st.state = state
	s.mu.Unlock()
}

// setDraining marks the reader of st as confirming its shard's end with GetRecords, or done.
func (s *Source) setDraining(st *shardState, on bool) {
	s.mu.Lock()
	if st.draining != on {
		st.draining = on
		if on {
			s.draining++
		} else {
			s.draining--
		}
	}
	s.mu.Unlock()
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

// What a shard being read may hold outside the pool (see doc.go, "Memory").
const (
	// MaxEventBytes is the record data one SubscribeToShardEvent carries at most, as assumed by
	// the memory limit: EFO delivers at most 2 MiB per second per shard.
	MaxEventBytes = 2 << 20
	// MaxGetRecordsBytes is the most data one GetRecords call returns (Kinesis's limit).
	MaxGetRecordsBytes = 10 << 20
	// MaxEventRecords is the most records one event or GetRecords response carries, as assumed
	// by the memory limit (GetRecords' limit of 10,000).
	MaxEventRecords = 10000
	// maxRecordBytes is the largest record Kinesis accepts.
	maxRecordBytes = 1 << 20
	// decodeFactor is what decoding a response or event of E bytes of record data allocates,
	// in units of E: the SDK reads the base64 body (4/3 E) into a buffer grown by doubling (up
	// to 8/3 E, plus the smaller buffers it outgrew), then decodes the records (E).
	decodeFactor = 5
	// recordOverhead is what each decoded record holds beyond its data: the SDK's decoded JSON
	// object and types.Record with its strings, and the runtime.Record with its headers.
	// BENCHMARKS.md measures a shard decoding 10,000 records of 200 bytes at under 10 MiB live.
	recordOverhead = 512
)

// ShardHeldBytes is the most memory one shard being read may hold outside the pool: with EFO,
// its HTTP/2 receive window and one event being decoded (5 x 2 MiB + 10,000 records x 512 B);
// when polling, one GetRecords response being decoded (5 x 10 MiB + 10,000 x 512 B, or
// max_records x (5 x 1 MiB + 512 B) when that is less).
func (c *Config) ShardHeldBytes() int64 { return c.shardHeldBytes(c.EFOEnabled()) }

func (c *Config) shardHeldBytes(efo bool) int64 {
	if efo {
		return int64(c.HTTP2MaxReceiveBufferPerStream) + decodeFactor*MaxEventBytes + MaxEventRecords*recordOverhead
	}
	n := int64(min(c.MaxRecords, MaxEventRecords))
	return decodeFactor*min(MaxGetRecordsBytes, n*maxRecordBytes) + n*recordOverhead
}

// HeldBytes is ShardHeldBytes times the shards being read now (it implements
// runtime.MemoryHolder). A shard waiting for its parents, or read to its end, holds nothing. An
// EFO shard that confirms its end with GetRecords (see shardReader.runEFO) holds a polling
// shard's figure meanwhile.
func (s *Source) HeldBytes() int64 {
	s.mu.Lock()
	n, draining := s.active, s.draining
	s.mu.Unlock()
	return int64(n-draining)*s.cfg.ShardHeldBytes() + int64(draining)*s.cfg.shardHeldBytes(false)
}

var _ runtime.MemoryHolder = (*Source)(nil)
