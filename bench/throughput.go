package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Throughput suite settings.
const (
	tpPartitions  = 16
	tpPoolRecords = 50000    // pool.max_pending_records default
	tpPoolBytes   = 64 * mib // pool.max_pending_bytes default
	tpLiveFor     = 10 * time.Second
)

type tpConfig struct {
	size, shards int
	records      int64 // backlog
	liveRate     int   // records/s in the live phase, well below capacity
}

var tpPlan = []tpConfig{
	{size: 100, shards: 4, records: 1_000_000, liveRate: 10000},
	{size: 100, shards: 32, records: 1_000_000, liveRate: 10000},
	{size: 1024, shards: 4, records: 300_000, liveRate: 5000},
	{size: 1024, shards: 32, records: 300_000, liveRate: 5000},
}

type tpRow struct {
	cfg  tpConfig
	prog string
	run  int
	res  runResult
}

func (r tpRow) recordsPerSec() float64 { return r.res.rate() }

func (r tpRow) cpuPerMillion() float64 { return r.res.cpuPerMillion() }

func (b *bench) throughput(ctx context.Context) error {
	var rows []tpRow
	for _, c := range tpPlan {
		c.records = b.scaled(c.records)
		kp, err := startKinesis(c.shards, c.size, b.o.eventBytes)
		if err != nil {
			return err
		}
		b.logf("throughput: writing %d records of %d bytes into %d shards", c.records, c.size, c.shards)
		if err := kp.put(ctx, c.records, 4); err != nil {
			kp.Close()
			return err
		}
		for i := range b.o.repeat {
			// Alternate the programs so that all see the same changes in the machine's load.
			for _, prog := range []string{progShardbridge, progShardbridgeEOS, progFloor} {
				spec := runSpec{prog: prog, partitions: tpPartitions, poolBytes: tpPoolBytes, poolRecords: tpPoolRecords,
					liveRate: c.liveRate, liveFor: tpLiveFor, consumer: b.consumer(prog)}
				b.logf("throughput: %s, %d-byte records, %d shards, backlog %d, run %d", prog, c.size, c.shards, kp.written.Load(), i+1)
				res, err := mirror(ctx, b.bins, kp, spec, b.dir)
				if err != nil {
					kp.Close()
					return err
				}
				if res.inTopic != res.want {
					kp.Close()
					return fmt.Errorf("%s mirrored %d records into Kafka, want %d", prog, res.inTopic, res.want)
				}
				row := tpRow{cfg: c, prog: prog, run: i + 1, res: res}
				rows = append(rows, row)
				b.logf("  %.0f records/s, %.2f CPU-s per 1M records, p50 %s p99 %s, RSS %s MiB (anon %s), live heap %s MiB, memory limit %s MiB, GC %.0f%% of CPU",
					row.recordsPerSec(), row.cpuPerMillion(), percentile(res.latencies, 50), percentile(res.latencies, 99), mibs(float64(res.peakRSS)),
					mibs(float64(res.peakAnon)), mibs(res.peakLive), limitMiB(res.memLimit), res.gcPercent())
			}
		}
		kp.Close()
	}

	fmt.Fprintf(b.out, "\n## Throughput\n\n| record | shards | program | run | backlog records | records/s | MB/s | records/s to 90%% | CPU-s per 1M records | live p50 | live p99 | peak RSS MiB | load avg |\n")
	fmt.Fprintf(b.out, "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b.out, "| %d B | %d | %s | %d | %d | %.0f | %.1f | %.0f | %.2f | %s | %s | %s | %s |\n",
			r.cfg.size, r.cfg.shards, r.prog, r.run, r.res.backlog, r.recordsPerSec(), r.recordsPerSec()*float64(r.cfg.size)/1e6, r.res.rate90(),
			r.cpuPerMillion(), ms(percentile(r.res.latencies, 50)), ms(percentile(r.res.latencies, 99)), mibs(float64(r.res.peakRSS)), r.res.loadavg)
	}
	fmt.Fprintf(b.out, "\n### shardbridge over the floor (medians of the runs)\n\n| record | shards | shardbridge records/s | floor records/s | shardbridge CPU-s/1M | floor CPU-s/1M | CPU ratio | target <= 1.25 |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range tpPlan {
		sbRate, sbCPU := medians(rows, c, progShardbridge)
		flRate, flCPU := medians(rows, c, progFloor)
		ratio := sbCPU / flCPU
		fmt.Fprintf(b.out, "| %d B | %d | %.0f | %.0f | %.2f | %.2f | %.2f | %s |\n", c.size, c.shards, sbRate, flRate, sbCPU, flCPU, ratio, yesNo(ratio <= 1.25))
	}
	fmt.Fprintf(b.out, "\n### exactly_once over at_least_once (medians of the runs)\n\n| record | shards | records/s at_least_once / exactly_once | records/s to 90%% at_least_once / exactly_once | CPU-s/1M at_least_once | CPU-s/1M exactly_once | CPU ratio | target <= 1.3 | live p50 at_least_once / exactly_once | live p99 at_least_once / exactly_once |\n|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, c := range tpPlan {
		alRate, alCPU := medians(rows, c, progShardbridge)
		eoRate, eoCPU := medians(rows, c, progShardbridgeEOS)
		ratio := eoCPU / alCPU
		fmt.Fprintf(b.out, "| %d B | %d | %.0f / %.0f | %.0f / %.0f | %.2f | %.2f | %.2f | %s | %s / %s | %s / %s |\n", c.size, c.shards, alRate, eoRate,
			median90(rows, c, progShardbridge), median90(rows, c, progShardbridgeEOS), alCPU, eoCPU, ratio, yesNo(ratio <= 1.3),
			ms(latencies(rows, c, progShardbridge, 50)), ms(latencies(rows, c, progShardbridgeEOS, 50)),
			ms(latencies(rows, c, progShardbridge, 99)), ms(latencies(rows, c, progShardbridgeEOS, 99)))
	}
	return nil
}

// runsOf returns the runs of prog in c.
func runsOf(rows []tpRow, c tpConfig, prog string) []tpRow {
	var out []tpRow
	for _, r := range rows {
		if r.cfg.size == c.size && r.cfg.shards == c.shards && r.prog == prog {
			out = append(out, r)
		}
	}
	return out
}

// latencies is the p-th percentile of the live-phase latencies of every run of prog in c.
func latencies(rows []tpRow, c tpConfig, prog string, p float64) time.Duration {
	var all []time.Duration
	for _, r := range runsOf(rows, c, prog) {
		all = append(all, r.res.latencies...)
	}
	return percentile(all, p)
}

// medianOf is the median of f over the runs of prog in c.
func medianOf(rows []tpRow, c tpConfig, prog string, f func(tpRow) float64) float64 {
	var v []float64
	for _, r := range runsOf(rows, c, prog) {
		v = append(v, f(r))
	}
	return median(v)
}

// medians are the median records/s and CPU-s per 1M records of prog's runs in c.
func medians(rows []tpRow, c tpConfig, prog string) (rate, cpu float64) {
	return medianOf(rows, c, prog, tpRow.recordsPerSec), medianOf(rows, c, prog, tpRow.cpuPerMillion)
}

// median90 is the median records/s to 90% of the backlog of prog's runs in c.
func median90(rows []tpRow, c tpConfig, prog string) float64 {
	return medianOf(rows, c, prog, func(r tpRow) float64 { return r.res.rate90() })
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
