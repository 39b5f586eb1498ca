package main

import (
	"context"
	"fmt"
	"time"
)

// Latency suite: end-to-end latency at a steady rate well below capacity, from arrival in
// Kinesis to readable by a read_committed consumer, for delivery at_least_once and exactly_once
// at several checkpoint intervals. Under exactly_once records become visible when their
// transaction commits, every checkpoint.interval (or earlier at half the pool, which a steady
// rate below capacity never reaches), so the interval is what it adds.
const (
	latShards  = 4
	latSize    = 1024
	latBacklog = 20000 // a short backlog first, so the run reaches its steady state
	latRate    = 2000  // records/s, far below capacity
	latFor     = 15 * time.Second
)

var latPlan = []struct {
	prog     string
	interval time.Duration
}{
	{progShardbridge, 5 * time.Second},
	{progShardbridgeEOS, 5 * time.Second},
	{progShardbridgeEOS, time.Second},
	{progShardbridgeEOS, 200 * time.Millisecond},
}

type latRow struct {
	prog     string
	interval time.Duration
	run      int
	res      runResult
}

func (b *bench) latency(ctx context.Context) error {
	kp, err := startKinesis(latShards, latSize, b.o.eventBytes)
	if err != nil {
		return err
	}
	defer kp.Close()
	if err := kp.put(ctx, b.scaled(latBacklog), 4); err != nil {
		return err
	}
	var rows []latRow
	for i := range b.o.repeat {
		for _, c := range latPlan {
			spec := runSpec{prog: c.prog, partitions: tpPartitions, poolBytes: tpPoolBytes, poolRecords: tpPoolRecords,
				liveRate: latRate, liveFor: latFor, interval: c.interval, consumer: b.consumer(c.prog)}
			b.logf("latency: %s, checkpoint.interval %s, %d records/s for %s, run %d", delivery(c.prog), c.interval, latRate, latFor, i+1)
			res, err := mirror(ctx, b.bins, kp, spec, b.dir)
			if err != nil {
				return err
			}
			if res.inTopic != res.want {
				return fmt.Errorf("%s mirrored %d records into Kafka, want %d", c.prog, res.inTopic, res.want)
			}
			row := latRow{prog: c.prog, interval: c.interval, run: i + 1, res: res}
			rows = append(rows, row)
			b.logf("  p50 %s p99 %s max %s, %.2f CPU-s per 1M live records", percentile(res.latencies, 50), percentile(res.latencies, 99),
				percentile(res.latencies, 100), row.liveCPUPerMillion())
		}
	}

	fmt.Fprintf(b.out, "\n## Latency\n\n| delivery | checkpoint.interval | run | live records | p50 | p90 | p99 | max | CPU-s per 1M live records | load avg |\n")
	fmt.Fprintf(b.out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		l := r.res.latencies
		fmt.Fprintf(b.out, "| %s | %s | %d | %d | %s | %s | %s | %s | %.2f | %s |\n", delivery(r.prog), r.interval, r.run, len(l),
			ms(percentile(l, 50)), ms(percentile(l, 90)), ms(percentile(l, 99)), ms(percentile(l, 100)), r.liveCPUPerMillion(), r.res.loadavg)
	}
	fmt.Fprintf(b.out, "\n### All runs of each together\n\n| delivery | checkpoint.interval | p50 | p99 | added p50 | added p99 |\n|---|---:|---:|---:|---:|---:|\n")
	var base50, base99 time.Duration
	for _, c := range latPlan {
		var all []time.Duration
		for _, r := range rows {
			if r.prog == c.prog && r.interval == c.interval {
				all = append(all, r.res.latencies...)
			}
		}
		p50, p99 := percentile(all, 50), percentile(all, 99)
		if c.prog == progShardbridge {
			base50, base99 = p50, p99
		}
		fmt.Fprintf(b.out, "| %s | %s | %s | %s | %s | %s |\n", delivery(c.prog), c.interval, ms(p50), ms(p99), ms(p50-base50), ms(p99-base99))
	}
	return nil
}

func (r latRow) liveCPUPerMillion() float64 {
	return r.res.liveCPU / float64(max(len(r.res.latencies), 1)) * 1e6
}

func delivery(prog string) string {
	if prog == progShardbridgeEOS {
		return "exactly_once"
	}
	return "at_least_once"
}
