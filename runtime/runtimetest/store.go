package runtimetest

import (
	"context"
	"sort"
	"sync"

	"github.com/shardbridge/shardbridge/runtime"
)

// MemoryStore is a runtime.CheckpointStore in memory. It keeps every commit in order, so tests can
// check that checkpoints only ever moved forward. FailLoad and FailCommits make Load and Commit
// fail. Like a store over the network, it fails a Load or Commit whose context has ended.
type MemoryStore struct {
	mu        sync.Mutex // mu guards the fields below
	latest    map[string]runtime.Checkpoint
	history   []runtime.Checkpoint
	loadErr   error
	commitErr error
	hook      func(ctx context.Context, cps []runtime.Checkpoint) error
}

// OnCommit makes every Commit call hook first, without the store's lock held; an error from hook
// fails the Commit. Tests use it to block a commit or to act at the moment one happens.
func (s *MemoryStore) OnCommit(hook func(ctx context.Context, cps []runtime.Checkpoint) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// FailLoad makes Load return err (nil to recover).
func (s *MemoryStore) FailLoad(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadErr = err
}

// FailCommits makes Commit return err (nil to recover).
func (s *MemoryStore) FailCommits(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitErr = err
}

var _ runtime.CheckpointStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store holding cps.
func NewMemoryStore(cps ...runtime.Checkpoint) *MemoryStore {
	s := &MemoryStore{latest: map[string]runtime.Checkpoint{}}
	for _, cp := range cps {
		s.latest[key(cp.Connector, cp.Stream, cp.Shard)] = cp
	}
	return s
}

func key(conn, stream, shard string) string { return conn + "\x00" + stream + "\x00" + shard }

// Load implements runtime.CheckpointStore.
func (s *MemoryStore) Load(ctx context.Context, connector, stream string) ([]runtime.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	var out []runtime.Checkpoint
	for _, cp := range s.latest {
		if cp.Connector == connector && cp.Stream == stream {
			out = append(out, cp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Shard < out[j].Shard })
	return out, nil
}

// Commit implements runtime.CheckpointStore.
func (s *MemoryStore) Commit(ctx context.Context, cps []runtime.Checkpoint) error {
	s.mu.Lock()
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		if err := hook(ctx, cps); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commitErr != nil {
		return s.commitErr
	}
	for _, cp := range cps {
		s.latest[key(cp.Connector, cp.Stream, cp.Shard)] = cp
		s.history = append(s.history, cp)
	}
	return nil
}

// Get returns the latest checkpoint of one shard.
func (s *MemoryStore) Get(connector, stream, shard string) (runtime.Checkpoint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp, ok := s.latest[key(connector, stream, shard)]
	return cp, ok
}

// History returns every checkpoint committed, in commit order.
func (s *MemoryStore) History() []runtime.Checkpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]runtime.Checkpoint(nil), s.history...)
}

// Delete implements runtime.CheckpointDeleter.
func (s *MemoryStore) Delete(ctx context.Context, connector, stream, shard string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.commitErr != nil {
		return s.commitErr
	}
	delete(s.latest, key(connector, stream, shard))
	return nil
}
