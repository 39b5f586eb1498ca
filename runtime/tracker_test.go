package runtime

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

// pos builds a position whose sequence numbers sort like Kinesis ones (same width, increasing).
func pos(seq int, sub int64) Position {
	return Position{Sequence: fmt.Sprintf("4959%020d", seq), SubSequence: sub}
}

func requireMark(t testing.TB, s *ShardTracker, want Mark, wantOK bool) {
	t.Helper()
	got, ok := s.Committable()
	if ok != wantOK || got != want {
		t.Fatalf("Committable() = %+v, %v; want %+v, %v", got, ok, want, wantOK)
	}
}

// ringBounded reports whether the tracker's buffer is within a constant factor of what is in flight.
func ringBounded(s *ShardTracker) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ring) <= minRing || len(s.ring) < 4*s.n
}

// TestShardTrackerRandomAckOrder is the property test: with registrations and acknowledgements
// interleaved in any order, the committable mark is exactly the last entry of the contiguous
// acknowledged prefix. So it never passes an unacknowledged record, it reaches the last record once
// all are acknowledged, and the end marker shows only after every record. Memory stays within a
// constant factor of what is in flight.
func TestShardTrackerRandomAckOrder(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(0, 300).Draw(rt, "records")
		withEnd := rapid.Bool().Draw(rt, "end")
		positions := make([]Position, n)
		seq := 0
		for i := range positions {
			// Some records are KPL sub-records sharing a sequence number.
			if i > 0 && rapid.IntRange(0, 3).Draw(rt, "sameAggregate") == 0 {
				positions[i] = Position{Sequence: positions[i-1].Sequence, SubSequence: positions[i-1].SubSequence + 1}
				continue
			}
			seq += 1 + rapid.IntRange(0, 5).Draw(rt, "gap")
			positions[i] = pos(seq, 0)
		}

		s := NewTracker().Shard("shardId-000000000000")
		var (
			acked       []bool // by ticket-1
			isEnd       []bool // by ticket-1
			outstanding []Ticket
			registered  int
			ended       bool
		)
		for registered < n || (withEnd && !ended) || len(outstanding) > 0 {
			canRegister := registered < n || (withEnd && !ended)
			if canRegister && (len(outstanding) == 0 || rapid.Bool().Draw(rt, "register")) {
				var tk Ticket
				if registered < n {
					tk = s.Register(positions[registered])
					registered++
					outstanding = append(outstanding, tk)
					isEnd = append(isEnd, false)
					acked = append(acked, false)
				} else {
					tk = s.RegisterEnd()
					ended = true
					isEnd = append(isEnd, true)
					acked = append(acked, true)
					s.Ack(tk) // the pipeline acknowledges the end marker right away
				}
				if int(tk) != len(acked) {
					rt.Fatalf("ticket %d, want %d", tk, len(acked))
				}
			} else {
				i := rapid.IntRange(0, len(outstanding)-1).Draw(rt, "ack")
				tk := outstanding[i]
				outstanding = slices.Delete(outstanding, i, i+1)
				s.Ack(tk)
				acked[tk-1] = true
			}

			prefix := 0
			for prefix < len(acked) && acked[prefix] {
				prefix++
			}
			got, ok := s.Committable()
			switch {
			case prefix == 0:
				if ok {
					rt.Fatalf("Committable() = %+v with nothing acknowledged at the front", got)
				}
			case isEnd[prefix-1]:
				want := Mark{End: true}
				if n > 0 {
					want.Position = positions[n-1]
				}
				if !ok || got != want {
					rt.Fatalf("Committable() = %+v, %v; want %+v", got, ok, want)
				}
			default:
				want := Mark{Position: positions[prefix-1]}
				if !ok || got != want {
					rt.Fatalf("Committable() = %+v, %v; want %+v (prefix of %d acknowledged)", got, ok, want, prefix)
				}
			}
			if got := s.InFlight(); got != len(acked)-prefix {
				rt.Fatalf("InFlight() = %d, want %d", got, len(acked)-prefix)
			}
			if !ringBounded(s) {
				rt.Fatalf("ring of %d slots for %d in flight", len(s.ring), s.InFlight())
			}
		}

		// Everything is acknowledged: the mark is at the last record (and the end, if any).
		got, ok := s.Committable()
		if n == 0 && !withEnd {
			if ok {
				rt.Fatalf("Committable() = %+v on an empty shard", got)
			}
		} else {
			want := Mark{End: withEnd}
			if n > 0 {
				want.Position = positions[n-1]
			}
			if !ok || got != want {
				rt.Fatalf("all acknowledged: Committable() = %+v, %v; want %+v", got, ok, want)
			}
		}
		if s.InFlight() != 0 {
			rt.Fatalf("InFlight() = %d after every ack", s.InFlight())
		}
	})
}

func TestShardTrackerEndMarkerWaitsForAllRecords(t *testing.T) {
	s := NewTracker().Shard("s")
	t1 := s.Register(pos(1, 0))
	t2 := s.Register(pos(2, 0))
	t3 := s.Register(pos(2, 1))
	end := s.RegisterEnd()
	s.Ack(end)
	requireMark(t, s, Mark{}, false)
	s.Ack(t3)
	s.Ack(t2)
	requireMark(t, s, Mark{}, false)
	if s.InFlight() != 4 {
		t.Fatalf("InFlight() = %d, want 4", s.InFlight())
	}
	s.Ack(t1)
	requireMark(t, s, Mark{Position: pos(2, 1), End: true}, true)
	if s.InFlight() != 0 {
		t.Fatalf("InFlight() = %d, want 0", s.InFlight())
	}
}

func TestShardTrackerEndOfEmptyShard(t *testing.T) {
	s := NewTracker().Shard("s")
	requireMark(t, s, Mark{}, false)
	s.Ack(s.RegisterEnd())
	requireMark(t, s, Mark{End: true}, true)
}

func TestShardTrackerMarkStopsAtTheFirstGap(t *testing.T) {
	s := NewTracker().Shard("s")
	var tks []Ticket
	for i := range 5 {
		tks = append(tks, s.Register(pos(i+1, 0)))
	}
	s.Ack(tks[1])
	requireMark(t, s, Mark{}, false)
	s.Ack(tks[0])
	requireMark(t, s, Mark{Position: pos(2, 0)}, true)
	s.Ack(tks[4])
	s.Ack(tks[3])
	requireMark(t, s, Mark{Position: pos(2, 0)}, true) // record 3 is still out
	s.Ack(tks[2])
	requireMark(t, s, Mark{Position: pos(5, 0)}, true)
}

func TestShardTrackerMisusePanics(t *testing.T) {
	tests := []struct {
		name string
		do   func(s *ShardTracker)
		want []string
	}{
		{"double ack of the oldest", func(s *ShardTracker) {
			tk := s.Register(pos(1, 0))
			s.Ack(tk)
			s.Ack(tk)
		}, []string{"Ack(1)", "twice"}},
		{"double ack behind a gap", func(s *ShardTracker) {
			s.Register(pos(1, 0))
			tk := s.Register(pos(2, 0))
			s.Ack(tk)
			s.Ack(tk)
		}, []string{"Ack(2)", "twice"}},
		{"ticket zero", func(s *ShardTracker) { s.Register(pos(1, 0)); s.Ack(0) }, []string{"Ack(0)", "never issued"}},
		{"future ticket", func(s *ShardTracker) { s.Register(pos(1, 0)); s.Ack(2) }, []string{"Ack(2)", "never issued"}},
		{"register after end", func(s *ShardTracker) { s.RegisterEnd(); s.Register(pos(1, 0)) }, []string{"after RegisterEnd"}},
		{"end twice", func(s *ShardTracker) { s.RegisterEnd(); s.RegisterEnd() }, []string{"twice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			requirePanic(t, func() { tc.do(NewTracker().Shard("s")) }, tc.want...)
		})
	}
}

// TestShardTrackerMemoryFollowsInFlight checks that memory is O(in flight), not O(history): after
// a burst is acknowledged the buffer shrinks back, and a long history with few in flight keeps it
// small.
func TestShardTrackerMemoryFollowsInFlight(t *testing.T) {
	s := NewTracker().Shard("s")
	var tks []Ticket
	for i := range 10_000 {
		tks = append(tks, s.Register(pos(i+1, 0)))
	}
	if got := len(s.ring); got < 10_000 || got > 2*10_000 {
		t.Fatalf("ring of %d slots for 10000 in flight", got)
	}
	// Acknowledge all but the last 10, in reverse so nothing pops until the oldest is acked.
	for i := len(tks) - 11; i >= 0; i-- {
		s.Ack(tks[i])
	}
	if s.InFlight() != 10 {
		t.Fatalf("InFlight() = %d, want 10", s.InFlight())
	}
	if got := len(s.ring); got > minRing*4 {
		t.Fatalf("ring of %d slots for 10 in flight: it did not shrink", got)
	}
	for _, tk := range tks[len(tks)-10:] {
		s.Ack(tk)
	}
	// A long history with one record in flight at a time.
	for i := range 100_000 {
		s.Ack(s.Register(pos(20_000+i, 0)))
	}
	if got := len(s.ring); got > minRing {
		t.Fatalf("ring of %d slots after a long history with one in flight", got)
	}
	requireMark(t, s, Mark{Position: pos(20_000+99_999, 0)}, true)
}

func TestShardTrackerSteadyStateDoesNotAllocate(t *testing.T) {
	s := NewTracker().Shard("s")
	p := pos(1, 0) // built once: the string is not what is measured
	const window = 100
	var tks []Ticket
	for range window {
		tks = append(tks, s.Register(p))
	}
	i := 0
	allocs := testing.AllocsPerRun(10_000, func() {
		s.Ack(tks[i%window])
		tks[i%window] = s.Register(p)
		i++
	})
	if allocs != 0 {
		t.Fatalf("Register+Ack allocated %v times per call in steady state, want 0", allocs)
	}
}

func TestTrackerShards(t *testing.T) {
	tr := NewTracker()
	if got := tr.Shards(); len(got) != 0 {
		t.Fatalf("Shards() = %v on a new tracker", got)
	}
	b := tr.Shard("shardId-000000000002")
	a := tr.Shard("shardId-000000000001")
	if tr.Shard("shardId-000000000002") != b {
		t.Fatal("Shard returned a different tracker for the same id")
	}
	if got, want := tr.Shards(), []string{"shardId-000000000001", "shardId-000000000002"}; !slices.Equal(got, want) {
		t.Fatalf("Shards() = %v, want %v", got, want)
	}
	a.Ack(a.Register(pos(1, 0)))
	tr.Remove("shardId-000000000001")
	if got, want := tr.Shards(), []string{"shardId-000000000002"}; !slices.Equal(got, want) {
		t.Fatalf("Shards() after Remove = %v, want %v", got, want)
	}
	if fresh := tr.Shard("shardId-000000000001"); fresh == a {
		t.Fatal("Shard after Remove returned the removed tracker")
	} else {
		requireMark(t, fresh, Mark{}, false)
	}
}

// TestTrackerConcurrentAcks registers on one goroutine per shard and acknowledges from several
// others, under -race, and checks every shard ends at its last record.
func TestTrackerConcurrentAcks(t *testing.T) {
	const shards, records, ackers = 4, 5000, 4
	tr := NewTracker()
	var wg sync.WaitGroup
	for sh := range shards {
		id := fmt.Sprintf("shardId-%012d", sh)
		s := tr.Shard(id)
		work := make(chan Ticket, 64)
		wg.Go(func() {
			defer close(work)
			for i := range records {
				work <- s.Register(pos(i+1, 0))
			}
			work <- s.RegisterEnd()
		})
		for range ackers {
			wg.Go(func() {
				for tk := range work {
					s.Ack(tk)
					if m, ok := s.Committable(); ok && !m.End && m.Position.Sequence > pos(records, 0).Sequence {
						t.Errorf("mark %+v past the last record", m)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, id := range tr.Shards() {
		s := tr.Shard(id)
		m, ok := s.Committable()
		if want := (Mark{Position: pos(records, 0), End: true}); !ok || m != want {
			t.Fatalf("shard %s: Committable() = %+v, %v; want %+v", id, m, ok, want)
		}
		if s.InFlight() != 0 {
			t.Fatalf("shard %s: InFlight() = %d", id, s.InFlight())
		}
	}
}

// TestShardTrackerSeededOrders complements the rapid property with large shards in seeded random
// orders, which rapid's shrinking-friendly sizes rarely reach.
func TestShardTrackerSeededOrders(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 1 + rng.IntN(5000)
		s := NewTracker().Shard("s")
		tks := make([]Ticket, n)
		for i := range tks {
			tks[i] = s.Register(pos(i+1, 0))
		}
		end := s.RegisterEnd()
		s.Ack(end)
		order := rng.Perm(n)
		acked := make([]bool, n)
		prefix := 0
		for _, i := range order {
			s.Ack(tks[i])
			acked[i] = true
			for prefix < n && acked[prefix] {
				prefix++
			}
			m, ok := s.Committable()
			switch {
			case prefix == 0:
				if ok {
					t.Fatalf("seed %d: mark %+v with record 1 unacknowledged", seed, m)
				}
			case prefix == n:
				if want := (Mark{Position: pos(n, 0), End: true}); !ok || m != want {
					t.Fatalf("seed %d: Committable() = %+v, want %+v", seed, m, want)
				}
			default:
				if want := (Mark{Position: pos(prefix, 0)}); !ok || m != want {
					t.Fatalf("seed %d: Committable() = %+v, want %+v", seed, m, want)
				}
			}
		}
	}
}
