package runtime

import (
	"context"
	"log/slog"
	"time"
)

// MemoryHolder is an optional ability of a Source: HeldBytes reports the most memory the source
// may hold outside the pending pool and the decode budget at this moment, such as the transport
// buffers and the readers' own state of the shards it reads. It is an upper bound, not a
// measurement, so that a memory limit sized from it leaves the collector room.
type MemoryHolder interface {
	HeldBytes() int64
}

// HeldBytes sums HeldBytes over the sources of the connectors that are running now.
func (w *Worker) HeldBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, m := range w.conns {
		if m.conn == nil || m.done == nil || isClosed(m.done) {
			continue
		}
		if h, ok := m.conn.opts.Source.(MemoryHolder); ok {
			n += h.HeldBytes()
		}
	}
	return n
}

// MemoryBudget sizes a soft memory limit from what the process may hold:
//
//	limit = 2 × pool bytes + pool records × RecordOverhead + decode budget + held + Base
//
// Every byte in the pool is held twice at worst: as read from the source, and in the Kafka
// client's serialized (compressed) batch until the broker acknowledges it. Every record in the
// pool also costs its bookkeeping, which its byte count leaves out (RecordOverhead). The decode
// budget ([DecodeBudget]) bounds what is being decoded before it enters the pool, across every
// shard. held is what the sources hold besides, per shard being read ([MemoryHolder]). Base is
// what none of these accounts for: the Go runtime, the clients' own buffers, the compressors, the
// metrics.
type MemoryBudget struct {
	PoolBytes   int64
	PoolRecords int64
	// Decode is the decode budget's limit (decode_budget).
	Decode int64
	Base   int64
	// Held reports the sources' share; [Worker.HeldBytes] in a process.
	Held func() int64
}

// DefaultMemoryBase is MemoryBudget.Base for a shardbridge process. BENCHMARKS.md measures
// the live heap of a one-shard mirror under load at well under it.
const DefaultMemoryBase = 48 << 20

// RecordOverhead is what one record in flight costs beyond the bytes the pool counts: the
// Record (192 bytes on 64-bit), its headers (40 bytes each), the Kafka client's record and
// headers (160 + 40 each), the produce promise and the tracker's entry: about 850 bytes with
// the Kinesis source's four headers, rounded up.
const RecordOverhead = 1 << 10

// Limit returns the limit for what Held reports now.
func (b MemoryBudget) Limit() int64 {
	var held int64
	if b.Held != nil {
		held = b.Held()
	}
	return b.pool() + b.Decode + held + b.Base
}

func (b MemoryBudget) pool() int64 { return 2*b.PoolBytes + b.PoolRecords*RecordOverhead }

// Govern sets the limit with set (runtime/debug.SetMemoryLimit in a process) at once, before
// it returns, and returns the loop that sets it again every interval while it changes, until ctx
// ends; the caller owns that loop's goroutine. The limit follows the shards being read: it grows
// when readers start and shrinks when they end. Between two checks it may lag a reader that just
// started; the limit is soft, so the cost of that lag is an earlier collection, never a failure.
func (b MemoryBudget) Govern(set func(int64) int64, log *slog.Logger) (follow func(ctx context.Context, every time.Duration)) {
	if log == nil {
		log = slog.Default()
	}
	last := b.Limit()
	set(last)
	log.Info("memory limit set", "limit_mib", mib(last), "pool_mib", mib(b.pool()), "decode_mib", mib(b.Decode),
		"held_mib", mib(last-b.pool()-b.Decode-b.Base), "base_mib", mib(b.Base))
	return func(ctx context.Context, every time.Duration) {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if l := b.Limit(); l != last {
				set(l)
				log.Debug("memory limit changed", "limit_mib", mib(l), "was_mib", mib(last))
				last = l
			}
		}
	}
}

func mib(n int64) float64 { return float64(n*10>>20) / 10 }
