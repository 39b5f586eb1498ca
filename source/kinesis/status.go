package kinesis

import (
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
)

// shardState is the status of one shard; Source.mu guards its fields.
type shardState struct {
	id           string
	state        string
	millisBehind int64
	subStart     time.Time
	lastErr      string
	records      int64
}

// ShardReport returns the status of every shard the source has seen, ordered by shard id, for
// the HTTP API (it implements runtime.ShardReporter). It holds no secrets and is safe to call at
// any time, also while Run runs.
func (s *Source) ShardReport() []runtime.ShardReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]runtime.ShardReport, 0, len(s.shards))
	for _, st := range s.shards {
		out = append(out, runtime.ShardReport{
			Shard: st.id, State: st.state, MillisBehindLatest: st.millisBehind,
			SubscribedAt: st.subStart, LastError: st.lastErr, RecordsRead: st.records,
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
func (c *Config) ShardHeldBytes() int64 {
	if c.EFOEnabled() {
		return int64(c.HTTP2MaxReceiveBufferPerStream) + decodeFactor*MaxEventBytes + MaxEventRecords*recordOverhead
	}
	n := int64(min(c.MaxRecords, MaxEventRecords))
	return decodeFactor*min(MaxGetRecordsBytes, n*maxRecordBytes) + n*recordOverhead
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
