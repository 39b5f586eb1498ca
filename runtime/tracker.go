package runtime

import (
	"fmt"
	"slices"
	"sync"
)

// Tracker follows the checkpoint state of every shard of one connector: for each shard, which
// registered records have been acknowledged, and so which position is safe to checkpoint. It is
// safe for concurrent use; each shard has its own [ShardTracker] with its own lock, so shards do
// not contend with each other.
type Tracker struct {
	mu     sync.Mutex // guards shards
	shards map[string]*ShardTracker
}

// NewTracker returns a tracker with no shards.
func NewTracker() *Tracker {
	return &Tracker{shards: make(map[string]*ShardTracker)}
}

// Shard returns the tracker of shard id, creating an empty one on first use.
func (t *Tracker) Shard(id string) *ShardTracker {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.shards[id]
	if !ok {
		s = &ShardTracker{}
		t.shards[id] = s
	}
	return s
}

// Shards returns the ids of the tracked shards, sorted.
func (t *Tracker) Shards() []string {
	t.mu.Lock()
	ids := make([]string, 0, len(t.shards))
	for id := range t.shards {
		ids = append(ids, id)
	}
	t.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Remove forgets shard id, typically once its end has been checkpointed. A *ShardTracker obtained
// before keeps working but is no longer reachable through t; a later Shard(id) starts afresh.
func (t *Tracker) Remove(id string) {
	t.mu.Lock()
	delete(t.shards, id)
	t.mu.Unlock()
}

// Ticket identifies one registration with a [ShardTracker]; it is handed back to
// [ShardTracker.Ack]. Tickets of a shard count up from 1 in registration order; 0 is never issued,
// so a zero Ticket can mean "none".
type Ticket uint64

// ShardTracker tracks the records of one shard between their registration (when the source emits
// them) and their acknowledgement (when the sink reports them durable).
//
// Records are registered in shard order by one goroutine, and acknowledged in any order from any
// goroutine. [ShardTracker.Committable] returns the position of the last record of the contiguous
// acknowledged prefix: every record up to and including it has been acknowledged, so a checkpoint
// there never passes an unacknowledged record.
//
// Memory is proportional to the records in flight (registered and not yet passed by the committable
// mark), not to the shard's history: the acknowledged prefix is dropped as it forms. Register and
// Ack are O(1) amortised and do not allocate once the buffer has grown to the in-flight size.
type ShardTracker struct {
	mu sync.Mutex // guards everything below
	// ring holds the in-flight entries: entry of ticket base+i is ring[(head+i)%len(ring)] for
	// i < n. len(ring) is zero or a power of two.
	ring []trackEntry
	head int
	n    int
	// base counts the registrations passed by the mark (so the entry at head has ticket base+1);
	// next counts all registrations (so the last ticket issued is next).
	base, next uint64
	// last is the position of the last registered record, for the end marker.
	last  Position
	ended bool // RegisterEnd has been called
	mark  Mark
	has   bool // mark is set: at least one ticket has been passed
}

type trackEntry struct {
	pos   Position
	end   bool
	acked bool
}

// minRing is the smallest buffer the ring shrinks back to, so a shard with a handful of records in
// flight does not reallocate on every burst.
const minRing = 16

// Register records the next record of the shard, at pos, and returns its ticket. It must be called
// in shard order (by the one goroutine that reads the shard) and not after [ShardTracker.RegisterEnd];
// the latter panics.
func (s *ShardTracker) Register(pos Position) Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		panic(fmt.Sprintf("runtime: ShardTracker.Register(%v) after RegisterEnd", pos))
	}
	s.last = pos
	return s.pushLocked(trackEntry{pos: pos})
}

// RegisterEnd records the shard-end marker, after the shard's last record, and returns its ticket.
// The pipeline acknowledges it right away; the marker becomes committable (Mark.End) only once every
// record of the shard has been acknowledged too. Its Mark.Position is the last record's position,
// or the zero Position if the shard had no records. Calling it twice panics.
func (s *ShardTracker) RegisterEnd() Ticket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		panic("runtime: ShardTracker.RegisterEnd called twice")
	}
	s.ended = true
	return s.pushLocked(trackEntry{pos: s.last, end: true})
}

// Ack marks the registration of tk acknowledged. It may be called in any order, from any goroutine.
// Acknowledging a ticket twice, or one that was never issued, is a bug in the caller and panics.
func (s *ShardTracker) Ack(tk Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tk == 0 || uint64(tk) > s.next {
		panic(fmt.Sprintf("runtime: ShardTracker.Ack(%d): ticket was never issued (last issued is %d)", tk, s.next))
	}
	idx := uint64(tk) - 1
	if idx < s.base {
		panic(fmt.Sprintf("runtime: ShardTracker.Ack(%d): ticket acknowledged twice", tk))
	}
	e := &s.ring[(s.head+int(idx-s.base))&(len(s.ring)-1)]
	if e.acked {
		panic(fmt.Sprintf("runtime: ShardTracker.Ack(%d): ticket acknowledged twice", tk))
	}
	e.acked = true
	if idx != s.base {
		return
	}
	// The oldest in-flight entry is now acknowledged: pop the acknowledged prefix and move the mark
	// to its last entry.
	for s.n > 0 && s.ring[s.head].acked {
		e := s.ring[s.head]
		s.mark = Mark{Position: e.pos, End: e.end}
		s.has = true
		// Zero the slot so the popped position's string can be collected.
		s.ring[s.head] = trackEntry{}
		s.head = (s.head + 1) & (len(s.ring) - 1)
		s.n--
		s.base++
	}
	s.maybeShrinkLocked()
}

// Committable returns the highest position below which (and at which) every registered record has
// been acknowledged, and false if no such position exists yet. Mark.End is set once the shard-end
// marker and every record before it are acknowledged.
func (s *ShardTracker) Committable() (Mark, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark, s.has
}

// InFlight returns the number of registrations (records and the end marker) not yet passed by the
// committable mark.
func (s *ShardTracker) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *ShardTracker) pushLocked(e trackEntry) Ticket {
	if s.n == len(s.ring) {
		s.resizeLocked(max(minRing, 2*len(s.ring)))
	}
	s.ring[(s.head+s.n)&(len(s.ring)-1)] = e
	s.n++
	s.next++
	return Ticket(s.next)
}

// maybeShrinkLocked halves the ring while it is at most a quarter full, so memory follows the
// in-flight count down after a burst. Shrinking at a quarter, not a half, leaves the ring at most
// half full afterwards, so a count that hovers around a power of two does not reallocate on every
// call and resizing stays O(1) amortised.
func (s *ShardTracker) maybeShrinkLocked() {
	size := len(s.ring)
	for size > minRing && s.n <= size/4 {
		size /= 2
	}
	if size != len(s.ring) {
		s.resizeLocked(size)
	}
}

func (s *ShardTracker) resizeLocked(size int) {
	ring := make([]trackEntry, size)
	for i := 0; i < s.n; i++ {
		ring[i] = s.ring[(s.head+i)&(len(s.ring)-1)]
	}
	s.ring = ring
	s.head = 0
}
