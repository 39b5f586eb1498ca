package kinesistest

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"time"
)

// u128 is a 128-bit unsigned hash key. Routing compares these on every
// record, so they avoid math/big; big.Int is used only to parse and format.
type u128 struct{ hi, lo uint64 }

var maxHash = u128{^uint64(0), ^uint64(0)}

func (a u128) cmp(b u128) int {
	switch {
	case a.hi < b.hi:
		return -1
	case a.hi > b.hi:
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) big() *big.Int {
	b := new(big.Int).SetUint64(a.hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(a.lo))
}

func u128FromBig(b *big.Int) u128 {
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	hi := new(big.Int).Rsh(b, 64)
	return u128{hi.Uint64(), lo.Uint64()}
}

func (a u128) String() string { return a.big().String() }

// parseHashKey parses a decimal hash key in [0, 2^128-1].
func parseHashKey(s string) (u128, bool) {
	if s == "" || len(s) > 39 {
		return u128{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return u128{}, false
		}
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || b.Cmp(maxHash.big()) > 0 {
		return u128{}, false
	}
	return u128FromBig(b), true
}

// partitionHash is how Kinesis routes a record: the MD5 of the partition
// key read as a 128-bit big-endian integer.
func partitionHash(pk string) u128 {
	sum := md5.Sum([]byte(pk))
	return u128{binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])}
}

// uniformRanges splits the whole hash space into n contiguous ranges, the
// way CreateStream and UpdateShardCount do.
func uniformRanges(n int) [][2]u128 {
	space := new(big.Int).Add(maxHash.big(), big.NewInt(1))
	step := new(big.Int).Div(space, big.NewInt(int64(n)))
	out := make([][2]u128, n)
	start := new(big.Int)
	for i := range n {
		end := new(big.Int).Add(start, step)
		end.Sub(end, big.NewInt(1))
		if i == n-1 {
			end = maxHash.big()
		}
		out[i] = [2]u128{u128FromBig(start), u128FromBig(end)}
		start = new(big.Int).Add(end, big.NewInt(1))
	}
	return out
}

// record is one stored record. Its sequence number is not stored: record i
// of a shard has counter i+1, formatted on demand (see shard.seq), which
// keeps the per-record overhead to the slice header, the key and a time.
type record struct {
	data    []byte
	pk      string
	arrival int64 // unix nanoseconds, non-decreasing within a shard
}

// shard is one shard of a stream. Server.mu guards every field except id,
// ordinal, parents, hash range and prefix, which never change. records is
// append-only: elements below a len read under the lock may be read after
// unlocking, because appends never rewrite them.
type shard struct {
	id             string
	ordinal        int
	parent         string
	adjacentParent string
	start, end     u128
	// prefix is the first 36 digits of every sequence number of this
	// shard: "49", the shard ordinal and the stream epoch. Later shards
	// have larger ordinals, so children's numbers exceed their parents'.
	prefix string

	records   []record
	bytes     int64
	closed    bool
	createdAt time.Time
	closedAt  time.Time
	children  []string
	// notify is closed and replaced whenever records are appended or the
	// shard closes, waking subscriptions without polling.
	notify chan struct{}
}

func (sh *shard) seq(counter uint64) string {
	var b [56]byte
	return string(sh.appendSeq(b[:0], counter))
}

func (sh *shard) appendSeq(b []byte, counter uint64) []byte {
	b = append(b, sh.prefix...)
	var d [20]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + counter%10)
		counter /= 10
	}
	return append(b, d[:]...)
}

// parseSeq returns the counter of a sequence number of this shard.
func (sh *shard) parseSeq(s string) (uint64, bool) {
	if len(s) != 56 || s[:36] != sh.prefix {
		return 0, false
	}
	n, err := strconv.ParseUint(s[36:], 10, 64)
	return n, err == nil
}

func (sh *shard) startingSeq() string { return sh.seq(0) }

// endingSeq is the sequence number of a closed shard's last record, or its
// starting number when it never held one.
func (sh *shard) endingSeq() string { return sh.seq(uint64(len(sh.records))) }

// wakeLocked wakes everything waiting on the shard.
func (sh *shard) wakeLocked() {
	close(sh.notify)
	sh.notify = make(chan struct{})
}

// indexAtTime is the index of the first record that arrived at or after t.
func (sh *shard) indexAtTime(t int64) int {
	return sort.Search(len(sh.records), func(i int) bool { return sh.records[i].arrival >= t })
}

// stream is one stream. Server.mu guards it.
type stream struct {
	name      string
	arn       string
	epoch     uint64
	mode      string
	created   time.Time
	activeAt  time.Time
	shards    []*shard             // every shard, by ordinal
	open      []*shard             // open shards, by starting hash key
	consumers map[string]*consumer // by name
}

func (st *stream) status(now time.Time) string {
	if now.Before(st.activeAt) {
		return "CREATING"
	}
	return "ACTIVE"
}

func (st *stream) shard(id string) *shard {
	for _, sh := range st.shards {
		if sh.id == id {
			return sh
		}
	}
	return nil
}

// route returns the open shard whose hash range holds h.
func (st *stream) route(h u128) *shard {
	i := sort.Search(len(st.open), func(i int) bool { return st.open[i].end.cmp(h) >= 0 })
	if i == len(st.open) {
		return nil // unreachable: open shards always cover the hash space
	}
	return st.open[i]
}

func (st *stream) addShard(parent, adjacent string, start, end u128, now time.Time) *shard {
	ord := len(st.shards)
	sh := &shard{
		id:             fmt.Sprintf("shardId-%012d", ord),
		ordinal:        ord,
		parent:         parent,
		adjacentParent: adjacent,
		start:          start,
		end:            end,
		prefix:         fmt.Sprintf("49%014d%020d", ord, st.epoch),
		createdAt:      now,
		notify:         make(chan struct{}),
	}
	st.shards = append(st.shards, sh)
	st.open = append(st.open, sh)
	sort.Slice(st.open, func(i, j int) bool { return st.open[i].start.cmp(st.open[j].start) < 0 })
	return sh
}

func (st *stream) closeShard(sh *shard, now time.Time, children ...string) {
	sh.closed = true
	sh.closedAt = now
	sh.children = children
	for i, o := range st.open {
		if o == sh {
			st.open = append(st.open[:i], st.open[i+1:]...)
			break
		}
	}
	sh.wakeLocked()
}

// split closes sh and opens two children divided at at, which must lie in
// (sh.start, sh.end].
func (st *stream) split(sh *shard, at u128, now time.Time) (*shard, *shard) {
	below := u128FromBig(new(big.Int).Sub(at.big(), big.NewInt(1)))
	a := st.addShard(sh.id, "", sh.start, below, now)
	b := st.addShard(sh.id, "", at, sh.end, now)
	st.closeShard(sh, now, a.id, b.id)
	return a, b
}

// merge closes sh and adj, which must be open and adjacent, and opens the
// child covering both.
func (st *stream) merge(sh, adj *shard, now time.Time) *shard {
	start, end := sh.start, adj.end
	if adj.start.cmp(sh.start) < 0 {
		start, end = adj.start, sh.end
	}
	c := st.addShard(sh.id, adj.id, start, end, now)
	st.closeShard(sh, now, c.id)
	st.closeShard(adj, now, c.id)
	return c
}

// adjacent reports whether the hash ranges of a and b touch.
func adjacent(a, b *shard) bool {
	next := func(x u128) u128 {
		if x.lo == ^uint64(0) {
			return u128{x.hi + 1, 0}
		}
		return u128{x.hi, x.lo + 1}
	}
	return (a.end != maxHash && next(a.end) == b.start) || (b.end != maxHash && next(b.end) == a.start)
}

// consumer is a registered EFO consumer. Server.mu guards it.
type consumer struct {
	name     string
	arn      string
	created  time.Time
	activeAt time.Time
}

func (c *consumer) status(now time.Time) string {
	if now.Before(c.activeAt) {
		return "CREATING"
	}
	return "ACTIVE"
}
