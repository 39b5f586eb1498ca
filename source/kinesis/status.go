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
