package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Memory suite settings.
const (
	memRecordSize = 1 * kib
	// smallRecordSize fills a 2 MiB event with about 10,000 records, the most one carries.
	smallRecordSize = 210
	memPartitions   = 16
	memAckDelay     = 100 * time.Millisecond
	memWindow       = 256 * kib // http2_max_receive_buffer_per_stream, the source's default
	// memPoolRecords is above what the byte limit admits (64 MiB of 1 KiB records is about
	// 54,000), so that bytes bind, and low enough that its share of the limit stays honest.
	memPoolRecords = 65536
)

var (
	// memShards are the shard counts of the memory suite: every one reads full events under the
	// same pool, so peak RSS across them shows whether memory follows the shards or the work in
	// flight.
	memShards = []int{8, 32, 128, 256}
	memPool   = int64(16 * mib)
	// memRecordSizes: 1 KiB records (2,048 to a 2 MiB event) and 210-byte records (about
	// 10,000 to an event, the shape that holds the most per event).
	memRecordSizes = []int64{memRecordSize, smallRecordSize}
	// memOffShards are the shard counts also run with memory_limit off (1 KiB records).
	memOffShards = []int{256}
)

// memBacklog is the backlog of a memory run: enough for every shard to decode full events
// (two per shard of 1 KiB records, one of 210-byte records, which mirror five times slower),
// and at least 256 MiB (64 MiB of 210-byte records).
func memBacklog(shards int, recordSize int64) int64 {
	if recordSize < memRecordSize {
		return max(64*mib, int64(shards)*memEventBytes)
	}
	return max(256*mib, int64(shards)*2*memEventBytes)
}

// The documented memory limit (README, "Memory"; runtime.MemoryBudget): with memory_limit
// "auto", shardbridge sets Go's soft memory limit to
//
//	2 x pool.max_pending_bytes + pool.max_pending_records x 1 KiB + decode_budget
//	  + shards x (HTTP/2 window + 128 KiB) + base
//
// with decode_budget at its default of 64 MiB and base = 48 MiB, and bounds its peak RSS by that
// limit plus the size of its binary (the binary's resident pages, which Go's limit does not
// count). The bench writes the formula out again, so that a product that drifted from its
// documentation fails the run. E = 2 MiB is the event size the runs fill (-event-bytes), the
// "full event" of the documentation.
const (
	memEventBytes   = 2 * mib
	memDecodeBudget = 64 * mib  // decode_budget default
	memShardState   = 128 * kib // per shard being read, besides its window
	memBase         = 48 * mib
	memPerRecord    = 1 * kib // per record the pool admits
)

// memLimitFor is the documented limit for shards being read and a pool of pool bytes.
func memLimitFor(shards int, pool int64) int64 {
	return memFixed(pool) + int64(shards)*(memWindow+memShardState)
}

// memFixed is the part of the documented limit that does not depend on the shards being read.
func memFixed(pool int64) int64 {
	return 2*pool + memPoolRecords*memPerRecord + memDecodeBudget + memBase
}

type memRow struct {
	limitMode      string // memory_limit: auto or off
	recordSize     int64
	shards         int
	pool, backlog  int64
	res            runResult
	limit          int64 // the documented limit (auto only)
	bound          int64 // limit + binary size (auto only)
	boundHeld      bool
	duplicates     int64
	recordsMissing int64
}

func (b *bench) memory(ctx context.Context) error {
	idle, err := b.idleRSS(ctx)
	if err != nil {
		return fmt.Errorf("idle process: %w", err)
	}
	fi, err := os.Stat(b.bins.shardbridge)
	if err != nil {
		return err
	}
	binSize := fi.Size()
	if b.o.eventBytes > memEventBytes {
		b.logf("memory: events of %d bytes are larger than the E = %d Kinesis sends; a share of the decode budget is cut to the budget, so the bound may fail", b.o.eventBytes, memEventBytes)
	}
	fmt.Fprintf(b.out, "\n## Memory\n\nidle process (peak RSS of a shardbridge reading 1 empty shard): %s MiB\n", mibs(float64(idle)))
	fmt.Fprintf(b.out, "memory limit (memory_limit auto) = 2 x pool.max_pending_bytes + pool.max_pending_records (%d) x 1 KiB + decode_budget (%s MiB) + shards x (%d KiB HTTP/2 window + %d KiB) + %s MiB; bound = limit + binary (%s MiB); events of up to %s MiB\n",
		memPoolRecords, mibs(memDecodeBudget), memWindow/kib, memShardState/kib, mibs(memBase), mibs(float64(binSize)), mibs(float64(b.o.eventBytes)))
	var rows []memRow
	type cfg struct {
		shards        int
		pool, backlog int64
		limitMode     string
		recordSize    int64
	}
	plan := []cfg{{1, memPool, b.scaled(32 * mib), "auto", memRecordSize}}
	for _, rs := range memRecordSizes {
		for _, s := range memShards {
			plan = append(plan, cfg{s, memPool, b.scaled(memBacklog(s, rs)), "auto", rs})
			if rs == memRecordSize && slices.Contains(memOffShards, s) {
				plan = append(plan, cfg{s, memPool, b.scaled(memBacklog(s, rs)), "off", rs})
			}
		}
	}
	// Group by shards and backlog, so one prefilled stream serves several runs.
	var kp *kinesisPeer
	var kpShards int
	var kpBacklog, kpRecordSize int64
	defer func() {
		if kp != nil {
			kp.Close()
		}
	}()
	for _, c := range plan {
		if kp == nil || kpShards != c.shards || kpBacklog != c.backlog || kpRecordSize != c.recordSize {
			if kp != nil {
				kp.Close()
			}
			if kp, err = startKinesis(c.shards, int(c.recordSize), b.o.eventBytes); err != nil {
				return err
			}
			kpShards, kpBacklog, kpRecordSize = c.shards, c.backlog, c.recordSize
			b.logf("memory: writing a %s MiB backlog of %d-byte records into %d shards", mibs(float64(c.backlog)), c.recordSize, c.shards)
			if err := kp.put(ctx, c.backlog/c.recordSize, 4); err != nil {
				return err
			}
		}
		for i := range b.o.repeat {
			spec := runSpec{prog: progShardbridge, partitions: memPartitions, poolBytes: c.pool, poolRecords: memPoolRecords,
				ackDelay: memAckDelay, consumer: b.consumer("mem"), env: []string{"SHARDBRIDGE_MEMORY_LIMIT=" + c.limitMode}}
			b.logf("memory: %d shards, %d-byte records, pool %s MiB, backlog %s MiB, memory_limit %s, run %d", c.shards, c.recordSize, mibs(float64(c.pool)), mibs(float64(c.backlog)), c.limitMode, i+1)
			res, err := mirror(ctx, b.bins, kp, spec, b.dir)
			if err != nil {
				return err
			}
			r := memRow{limitMode: c.limitMode, recordSize: c.recordSize, shards: c.shards, pool: c.pool, backlog: c.backlog, res: res,
				duplicates: max(0, res.inTopic-res.want), recordsMissing: max(0, res.want-res.inTopic)}
			if c.limitMode == "auto" {
				r.limit = memLimitFor(c.shards, c.pool)
				// The child's limit follows its readers with a short lag, so a short run may end
				// before it reached the formula's figure; it must never pass it.
				if got := int64(res.memLimit); got > r.limit || got < memFixed(c.pool) {
					return fmt.Errorf("the child's highest memory limit was %d bytes; the documented formula gives %d for %d shards", got, r.limit, c.shards)
				}
				r.bound = r.limit + binSize
				r.boundHeld = res.peakRSS <= r.bound
			}
			rows = append(rows, r)
			b.logf("  peak RSS %s MiB (anon %s, file %s), live heap %s MiB, pool %s MiB, limit %s MiB, GC %.0f%% of CPU, %.0f records/s",
				mibs(float64(res.peakRSS)), mibs(float64(res.peakAnon)), mibs(float64(res.peakFile)), mibs(res.peakLive), mibs(res.peakPool),
				limitMiB(res.memLimit), res.gcPercent(), res.rate())
		}
	}
	fmt.Fprintf(b.out, "\n| shards | record B | pool MiB | backlog MiB | memory_limit | run | limit MiB (child's peak) | bound MiB | peak RSS MiB | RSS / bound | bound held | peak anon MiB | peak file MiB | peak live heap MiB | peak pool MiB | GC share of CPU | CPU-s per 1M records | records/s | in Kafka (missing, extra) | load avg |\n")
	fmt.Fprintf(b.out, "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	run := 0
	for i, r := range rows {
		if i > 0 && (rows[i-1].shards != r.shards || rows[i-1].pool != r.pool || rows[i-1].backlog != r.backlog || rows[i-1].limitMode != r.limitMode || rows[i-1].recordSize != r.recordSize) {
			run = 0
		}
		run++
		limit, bound, ratio, held := "none", "-", "-", "-"
		if r.limitMode == "auto" {
			limit, bound, ratio, held = fmt.Sprintf("%s (%s)", mibs(float64(r.limit)), mibs(r.res.memLimit)), mibs(float64(r.bound)), fmt.Sprintf("%.2f", float64(r.res.peakRSS)/float64(r.bound)), "yes"
			if !r.boundHeld {
				held = "**no**"
			}
		}
		fmt.Fprintf(b.out, "| %d | %d | %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %.1f | %.0f | %d (%d, %d) | %s |\n",
			r.shards, r.recordSize, mibs(float64(r.pool)), mibs(float64(r.backlog)), r.limitMode, run, limit, bound, mibs(float64(r.res.peakRSS)), ratio, held,
			mibs(float64(r.res.peakAnon)), mibs(float64(r.res.peakFile)), mibs(r.res.peakLive), mibs(r.res.peakPool),
			r.res.gcPercent(), r.res.cpuPerMillion(), r.res.rate(),
			r.res.inTopic, r.recordsMissing, r.duplicates, r.res.loadavg)
	}
	held := !slices.ContainsFunc(rows, func(r memRow) bool { return r.limitMode == "auto" && !r.boundHeld })
	fmt.Fprintf(b.out, "\nbound held in every run with memory_limit auto: %s\n", yesNo(held))
	writeFlatness(b.out, rows)
	return nil
}

// flatTargets are the most peak RSS may grow over the 8-shard figure, by shard count.
var flatTargets = map[int]float64{128: 1.5, 256: 2}

// writeFlatness writes, per record size, the median peak RSS with memory_limit auto at each
// shard count and its ratio to the 8-shard median.
func writeFlatness(w io.Writer, rows []memRow) {
	fmt.Fprintf(w, "\n### Peak RSS by shard count (memory_limit auto, pool %s MiB, medians)\n\n| record B | shards | peak RSS MiB | over 8 shards | target |\n|---:|---:|---:|---:|---|\n", mibs(float64(memPool)))
	for _, rs := range memRecordSizes {
		var base float64
		for _, s := range memShards {
			var v []float64
			for _, r := range rows {
				if r.limitMode == "auto" && r.recordSize == rs && r.shards == s && r.pool == memPool {
					v = append(v, float64(r.res.peakRSS))
				}
			}
			if len(v) == 0 {
				continue
			}
			m := median(v)
			if s == memShards[0] {
				base = m
			}
			ratio, target := "-", "-"
			if base > 0 {
				ratio = fmt.Sprintf("%.2f", m/base)
				if t, ok := flatTargets[s]; ok {
					target = fmt.Sprintf("<= %.1f: %s", t, yesNo(m/base <= t))
				}
			}
			fmt.Fprintf(w, "| %d | %d | %s | %s | %s |\n", rs, s, mibs(m), ratio, target)
		}
	}
}

// limitMiB prints a go_gc_gomemlimit_bytes value: "none" when no limit is set.
func limitMiB(v float64) string {
	if v >= math.MaxInt64/2 {
		return "none"
	}
	return mibs(v)
}

// idleRSS is the peak RSS of a shardbridge process subscribed to one empty
// shard, left idle for two seconds after it subscribed.
func (b *bench) idleRSS(ctx context.Context) (int64, error) {
	kp, err := startKinesis(1, memRecordSize, b.o.eventBytes)
	if err != nil {
		return 0, err
	}
	defer kp.Close()
	kf, err := startKafka(1, 0)
	if err != nil {
		return 0, err
	}
	defer kf.Close()
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	spec := runSpec{prog: progShardbridge, poolBytes: 64 * mib, poolRecords: 50000, consumer: b.consumer("idle")}
	path := filepath.Join(b.dir, spec.consumer+".yaml")
	if err := writeFile(path, shardbridgeConfig(spec, addr, kp.srv.Endpoint(), kf.broker)); err != nil {
		return 0, err
	}
	ch, err := startChild(b.bins.shardbridge, []string{"run", "--config", path, "--log-level", "warn"}, nil, addr, filepath.Join(b.dir, spec.consumer+".log"))
	if err != nil {
		return 0, err
	}
	defer ch.kill()
	b.logf("memory: idle process, 1 empty shard")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := kp.srv.WaitFor(wctx, func() bool { return kp.srv.Subscriptions("shardId-000000000000") > 0 }); err != nil {
		return 0, fmt.Errorf("no subscription within a minute: %w; log: %s", err, ch.tail())
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
	}
	rss := ch.peakRSS()
	if _, err := ch.stop(30 * time.Second); err != nil {
		return 0, err
	}
	return rss, nil
}

func (b *bench) scaled(n int64) int64 { return int64(float64(n) * b.o.scale) }

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
