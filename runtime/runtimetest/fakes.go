package runtimetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/shardbridge/shardbridge/runtime"
)

// TickSource is a runtime.Source that emits one record at a time to each of its shards, forever,
// waiting for space before each record as a real reader does. Emitted counts what it emitted.
type TickSource struct {
	StreamName string
	Shards     []string
	Emitted    atomic.Int64
}

// Stream implements runtime.Source.
func (s *TickSource) Stream() string { return s.StreamName }

// Run implements runtime.Source.
func (s *TickSource) Run(ctx context.Context, e runtime.Emitter) error {
	var wg sync.WaitGroup
	for _, shard := range s.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := 0
			if m, ok := e.Resume(shard); ok {
				fmt.Sscan(m.Position.Sequence, &seq)
			}
			for {
				if err := e.WaitForSpace(ctx, 0); err != nil {
					return
				}
				seq++
				rec := runtime.Record{Stream: s.StreamName, Shard: shard, Value: []byte("v"),
					Position: runtime.Position{Sequence: fmt.Sprintf("%d", seq)}}
				if err := e.Emit(ctx, shard, []runtime.Record{rec}); err != nil {
					return
				}
				s.Emitted.Add(1)
			}
		}()
	}
	wg.Wait()
	return nil
}

// HoldSink is a runtime.Sink that keeps every record unacknowledged until Release.
type HoldSink struct {
	mu      sync.Mutex
	pending []func()
}

// Write implements runtime.Sink.
func (s *HoldSink) Write(ctx context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		r := &recs[i]
		s.pending = append(s.pending, func() { ack(r, nil) })
	}
	return nil
}

// Release acknowledges every record held so far and returns how many.
func (s *HoldSink) Release() int {
	s.mu.Lock()
	p := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, f := range p {
		f()
	}
	return len(p)
}

// Held returns how many records wait for Release.
func (s *HoldSink) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Flush implements runtime.Sink; a HoldSink holds on until Release, so Flush acks everything.
func (s *HoldSink) Flush(ctx context.Context) error { s.Release(); return nil }

// Close implements runtime.Sink.
func (s *HoldSink) Close(ctx context.Context) error { s.Release(); return nil }
