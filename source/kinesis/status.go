package kinesis

import (
	"sort"
	"time"
)

// Reader states, as ShardStatus reports them.
const (
	StateWaitingParent = "waiting_parent" // waiting for a parent shard's end to be checkpointed
	StateSubscribing   = "subscribing"    // calling SubscribeToShard or GetShardIterator
	StateReading       = "reading"        // reading events or polling records
	StateBackoff       = "backoff"        // waiting before a retry
	StateBackpressure  = "backpressure"   // waiting for pool space
	StateEnded         = "ended"          // read to its end
)

// ShardStatus is one shard reader's state, for the HTTP API. It holds no secrets.
type ShardStatus struct {
	Shard              string    `json:"shard"`
	State              string    `json:"state"`
	MillisBehindLatest int64     `json:"millis_behind_latest"`
	SubscriptionStart  time.Time `json:"subscription_start,omitzero"`
	LastError          string    `json:"last_error,omitempty"`
	RecordsRead        int64     `json:"records_read"`
}

// shardState is the status of one shard; Source.mu guards its fields.
type shardState struct {
	id           string
	state        string
	millisBehind int64
	subStart     time.Time
	lastErr      string
	records      int64
}

// ShardStatus returns the status of every shard the source has seen, ordered by shard id. It is
// safe to call at any time, also while Run runs.
func (s *Source) ShardStatus() []ShardStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ShardStatus, 0, len(s.shards))
	for _, st := range s.shards {
		out = append(out, ShardStatus{
			Shard: st.id, State: st.state, MillisBehindLatest: st.millisBehind,
			SubscriptionStart: st.subStart, LastError: st.lastErr, RecordsRead: st.records,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return out
}

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
