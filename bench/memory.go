package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// Memory suite settings.
const (
	memRecordSize  = 1 * kib
	memPartitions  = 16
	memAckDelay    = 100 * time.Millisecond
	memWindow      = 256 * kib // http2_max_receive_buffer_per_stream, the source's default
	memPoolRecords = 1 << 20   // high, so that the byte limit is the one that binds
)

var (
	memShards  = []int{8, 32, 128}
	memPools   = []int64{16 * mib, 64 * mib}
	memBacklog = int64(256 * mib)
	// The backlog sweep: one shard count and pool, several backlogs.
	sweepShards   = 32
	sweepPool     = int64(16 * mib)
	sweepBacklogs = []int64{64 * mib, 1024 * mib}
)

// memEventFactor is the per-shard event term of the documented bound (source/kinesis/doc.go,
// "Memory"): decoding one event of E bytes allocates about 5 x E (the SDK's payload buffer grown
// by doubling to the base64 message, the buffers it outgrew, and the decoded records).
const memEventFactor = 5

type memRow struct {
	memLimit       bool // the child ran with GOMEMLIMIT set to the bound
	shards         int
	pool, backlog  int64
	res            runResult
	bound          float64
	fixed          int64
	boundHeld      bool
	duplicates     int64
	recordsMissing int64
}

func (b *bench) memory(ctx context.Context) error {
	idle, err := b.idleRSS(ctx)
	if err != nil {
		return fmt.Errorf("idle process: %w", err)
	}
	fixed, err := b.loadedFixed(ctx)
	if err != nil {
		return fmt.Errorf("one-shard calibration: %w", err)
	}
	fmt.Fprintf(b.out, "\n## Memory\n\nidle process (peak RSS of a shardbridge reading 1 empty shard): %s MiB\n", mibs(float64(idle)))
	fmt.Fprintf(b.out, "fixed overhead under load (peak RSS of a 1-shard mirror with slow acks, minus its peak pool and its own shard term, GOMEMLIMIT unset): %s MiB\n", mibs(float64(fixed)))
	fmt.Fprintf(b.out, "bound = pool.max_pending_bytes + shards x (%d KiB HTTP/2 window + %d x E) + fixed, E = %s MiB (largest event)\n",
		memWindow/kib, memEventFactor, mibs(float64(b.o.eventBytes)))
	var rows []memRow
	type cfg struct {
		shards        int
		pool, backlog int64
		memLimit      bool
	}
	var plan []cfg
	for _, s := range memShards {
		for _, p := range memPools {
			for _, lim := range []bool{false, true} {
				plan = append(plan, cfg{s, p, b.scaled(memBacklog), lim})
			}
		}
	}
	for _, bl := range sweepBacklogs {
		plan = append(plan, cfg{sweepShards, sweepPool, b.scaled(bl), false})
	}
	// Group by shards and backlog, so one prefilled stream serves several runs.
	var kp *kinesisPeer
	var kpShards int
	var kpBacklog int64
	defer func() {
		if kp != nil {
			kp.Close()
		}
	}()
	for _, c := range plan {
		if kp == nil || kpShards != c.shards || kpBacklog != c.backlog {
			if kp != nil {
				kp.Close()
			}
			if kp, err = startKinesis(c.shards, memRecordSize, b.o.eventBytes); err != nil {
				return err
			}
			kpShards, kpBacklog = c.shards, c.backlog
			b.logf("memory: writing a %s MiB backlog of %d-byte records into %d shards", mibs(float64(c.backlog)), memRecordSize, c.shards)
			if err := kp.put(ctx, c.backlog/memRecordSize, 4); err != nil {
				return err
			}
		}
		bound := float64(c.pool) + float64(c.shards)*float64(memWindow+memEventFactor*b.o.eventBytes) + float64(fixed)
		for i := range b.o.repeat {
			spec := runSpec{prog: progShardbridge, partitions: memPartitions, poolBytes: c.pool, poolRecords: memPoolRecords,
				ackDelay: memAckDelay, consumer: b.consumer("mem")}
			if c.memLimit {
				spec.env = []string{fmt.Sprintf("GOMEMLIMIT=%d", int64(bound))}
			}
			b.logf("memory: %d shards, pool %s MiB, backlog %s MiB, GOMEMLIMIT %s, run %d", c.shards, mibs(float64(c.pool)), mibs(float64(c.backlog)), yesNo(c.memLimit), i+1)
			res, err := mirror(ctx, b.bins, kp, spec, b.dir)
			if err != nil {
				return err
			}
			rows = append(rows, memRow{memLimit: c.memLimit, shards: c.shards, pool: c.pool, backlog: c.backlog, res: res, bound: bound, fixed: fixed,
				boundHeld: float64(res.peakRSS) <= bound, duplicates: max(0, res.inTopic-res.want), recordsMissing: max(0, res.want-res.inTopic)})
			b.logf("  peak RSS %s MiB, peak heap in use %s MiB, peak pool %s MiB, bound %s MiB, %.0f records/s",
				mibs(float64(res.peakRSS)), mibs(res.peakHeap), mibs(res.peakPool), mibs(bound), res.rate())
		}
	}
	fmt.Fprintf(b.out, "\n| shards | pool MiB | backlog MiB | GOMEMLIMIT = bound | run | peak RSS MiB | peak Go heap in use MiB | peak pool MiB | bound MiB | RSS / bound | bound held | records/s | in Kafka (missing, extra) | load avg |\n")
	fmt.Fprintf(b.out, "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|\n")
	run := 0
	for i, r := range rows {
		if i > 0 && (rows[i-1].shards != r.shards || rows[i-1].pool != r.pool || rows[i-1].backlog != r.backlog || rows[i-1].memLimit != r.memLimit) {
			run = 0
		}
		run++
		held := "yes"
		if !r.boundHeld {
			held = "**no**"
		}
		fmt.Fprintf(b.out, "| %d | %s | %s | %s | %d | %s | %s | %s | %s | %.2f | %s | %.0f | %d (%d, %d) | %s |\n",
			r.shards, mibs(float64(r.pool)), mibs(float64(r.backlog)), yesNo(r.memLimit), run, mibs(float64(r.res.peakRSS)), mibs(r.res.peakHeap), mibs(r.res.peakPool),
			mibs(r.bound), float64(r.res.peakRSS)/r.bound, held, r.res.rate(),
			r.res.inTopic, r.recordsMissing, r.duplicates, r.res.loadavg)
	}
	for _, lim := range []bool{false, true} {
		held := !slices.ContainsFunc(rows, func(r memRow) bool { return r.memLimit == lim && !r.boundHeld })
		fmt.Fprintf(b.out, "\nbound held in every run with GOMEMLIMIT=bound %s: %s", yesNo(lim), yesNo(held))
	}
	fmt.Fprintln(b.out)
	return nil
}

// loadedFixed measures the fixed overhead under load: one shard mirrors a backlog while Kafka
// acknowledges slowly, and whatever its peak RSS holds beyond the pool's peak use and the
// shard's own term (window + memEventFactor x E) is the part that does not scale with shards or
// the pool: the Go runtime, the binary, the Kafka client's request buffers and compressors. It
// runs without GOMEMLIMIT, so it includes the collector's headroom: a conservative figure.
func (b *bench) loadedFixed(ctx context.Context) (int64, error) {
	kp, err := startKinesis(1, memRecordSize, b.o.eventBytes)
	if err != nil {
		return 0, err
	}
	defer kp.Close()
	backlog := b.scaled(32 * mib)
	b.logf("memory: calibrating the fixed overhead: 1 shard, %s MiB backlog, slow acks", mibs(float64(backlog)))
	if err := kp.put(ctx, backlog/memRecordSize, 4); err != nil {
		return 0, err
	}
	spec := runSpec{prog: progShardbridge, partitions: memPartitions, poolBytes: 16 * mib, poolRecords: memPoolRecords,
		ackDelay: memAckDelay, consumer: b.consumer("calibrate")}
	res, err := mirror(ctx, b.bins, kp, spec, b.dir)
	if err != nil {
		return 0, err
	}
	fixed := res.peakRSS - int64(res.peakPool) - int64(memWindow+memEventFactor*b.o.eventBytes)
	b.logf("  peak RSS %s MiB, peak pool %s MiB: fixed overhead %s MiB", mibs(float64(res.peakRSS)), mibs(res.peakPool), mibs(float64(fixed)))
	return max(fixed, 0), nil
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
