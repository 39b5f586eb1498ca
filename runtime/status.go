package runtime

import (
	"slices"
	"sort"
)

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
	// OwnedShards are, with Ownership, the known shards of the slots this worker owns.
	OwnedShards []string `json:"owned_shards,omitempty"`
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
	if c.opts.Ownership != nil {
		known := make([]string, 0, len(s.Shards))
		for _, sh := range s.Shards {
			known = append(known, sh.Shard)
		}
		if rep, ok := c.opts.Source.(ShardReporter); ok {
			for _, r := range rep.ShardReport() {
				known = append(known, r.Shard)
			}
		}
		s.OwnedShards = slices.Compact(c.ownedShardsLocked(known))
	}
	sort.Slice(s.Shards, func(i, j int) bool { return s.Shards[i].Shard < s.Shards[j].Shard })
	return s
}
