package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// Which program a run measures: shardbridge with delivery at_least_once (the default) or
// exactly_once, or the floor.
const (
	progShardbridge    = "shardbridge"
	progShardbridgeEOS = "shardbridge-eos"
	progFloor          = "floor"
)

// runSpec is one mirror run: a fresh Kafka, a fresh EFO consumer, the whole stream from
// TRIM_HORIZON.
type runSpec struct {
	prog        string
	partitions  int
	poolBytes   int64 // pool.max_pending_bytes (shardbridge only)
	poolRecords int64 // pool.max_pending_records (shardbridge only)
	ackDelay    time.Duration
	liveRate    int           // records/s of the live phase; 0: no live phase
	liveFor     time.Duration // length of the live phase
	consumer    string        // EFO consumer name, new for every run
	env         []string      // added to the child's environment, e.g. SHARDBRIDGE_MEMORY_LIMIT=off
	interval    time.Duration // checkpoint.interval (shardbridge only); 0: 5s, the default
}

// runResult is what one run measured.
type runResult struct {
	backlog    int64         // records in the stream when the run started
	steady     int64         // records acked between the first and the last sample
	steadyTime time.Duration // time from the first sample with an ack to the last record's ack
	steadyCPU  float64       // child CPU seconds over the same span
	// to90 and to90Time are the records acked from the first sample with an ack to the first
	// sample with 90% of the backlog acked, and that span: the rate before the end of the
	// backlog. Under exactly_once the last records are acknowledged when their transaction
	// commits, up to a checkpoint.interval after they were written, which the whole span counts.
	to90       int64
	to90Time   time.Duration
	toFirstAck time.Duration // from exec to the first sample with an ack
	peakPool   float64       // highest shardbridge_pool_used_bytes seen
	peakRSS    int64         // VmHWM when the last backlog record was acknowledged
	peakHeap   float64       // highest go_memstats_heap_inuse_bytes seen (shardbridge only)
	peakLive   float64       // highest go_gc_heap_live_bytes seen: the heap marked live by the last GC
	peakAnon   int64         // highest RssAnon sampled: the resident memory the Go runtime manages
	peakFile   int64         // highest RssFile sampled: the binary's resident pages
	memLimit   float64       // highest go_gc_gomemlimit_bytes seen (math.MaxInt64 when no limit is set)
	gcCPU      float64       // the child's GC CPU seconds over the steady span (go_cpu_classes_gc_total_cpu_seconds_total)
	total      usage         // whole life, from the kernel at exit
	inTopic    int64         // records in the Kafka topic at the end
	want       int64         // records written to the stream in all (backlog + live)
	latencies  []time.Duration
	liveCPU    float64 // child CPU seconds over the live phase
	loadavg    string
}

// sampleEvery is how often the child's /metrics and /proc are read. Scraping costs the child a
// little CPU, the same for every run of a program; 100ms keeps it well under 1%.
const sampleEvery = 100 * time.Millisecond

// mirror runs one program over the backlog already in kp, against a fresh kfake, and measures it.
func mirror(ctx context.Context, bins binaries, kp *kinesisPeer, spec runSpec, workDir string) (runResult, error) {
	res := runResult{backlog: kp.written.Load(), loadavg: loadavg()}
	kf, err := startKafka(spec.partitions, spec.ackDelay)
	if err != nil {
		return res, err
	}
	defer kf.Close()
	addr, err := freeAddr()
	if err != nil {
		return res, err
	}
	var bin string
	var args []string
	switch spec.prog {
	case progShardbridge, progShardbridgeEOS:
		path := filepath.Join(workDir, spec.consumer+".yaml")
		if err := os.WriteFile(path, []byte(shardbridgeConfig(spec, addr, kp.srv.Endpoint(), kf.broker)), 0o600); err != nil {
			return res, err
		}
		bin, args = bins.shardbridge, []string{"run", "--config", path, "--log-level", "warn"}
	case progFloor:
		bin, args = bins.floor, []string{"--endpoint", kp.srv.Endpoint(), "--stream", benchStream, "--brokers", kf.broker,
			"--topic", benchTopic, "--consumer", spec.consumer, "--http-addr", addr}
	default:
		return res, fmt.Errorf("unknown program %q", spec.prog)
	}
	started := time.Now()
	ch, err := startChild(bin, args, spec.env, addr, filepath.Join(workDir, spec.consumer+".log"))
	if err != nil {
		return res, err
	}
	defer ch.kill()

	if err := res.waitBacklog(ctx, ch, res.backlog, started); err != nil {
		return res, fmt.Errorf("%s: %w", spec.prog, err)
	}
	if spec.liveRate > 0 {
		cpu0, _ := ch.cpuSeconds()
		lat, err := livePhase(ctx, ch, kp, kf, spec)
		if err != nil {
			return res, fmt.Errorf("%s live phase: %w", spec.prog, err)
		}
		cpu1, _ := ch.cpuSeconds()
		res.latencies, res.liveCPU = lat, cpu1-cpu0
	}
	res.want = kp.written.Load()
	res.total, err = ch.stop(60 * time.Second)
	if err != nil {
		return res, fmt.Errorf("%s: %w", spec.prog, err)
	}
	// Read committed: under exactly_once the end offsets also count transaction markers, and
	// the records of aborted transactions, which a read_committed consumer never sees.
	res.inTopic, err = kf.countCommitted(ctx)
	if err != nil {
		return res, err
	}
	return res, nil
}

// waitBacklog samples the child until it has acknowledged want records.
func (r *runResult) waitBacklog(ctx context.Context, ch *child, want int64, started time.Time) error {
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	var (
		firstAt  time.Time
		firstN   float64
		firstCPU float64
		firstGC  float64
		lastN    = -1.0
		lastMove = time.Now()
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch.exited:
			return fmt.Errorf("exited early: %v; log: %s", ch.waitErr, ch.tail())
		case <-tick.C:
		}
		m, err := ch.metrics(ctx, "shardbridge_records_acked_total", "shardbridge_pool_used_bytes", "go_memstats_heap_inuse_bytes",
			"go_gc_heap_live_bytes", "go_gc_gomemlimit_bytes", "go_cpu_classes_gc_total_cpu_seconds_total")
		cpu, cerr := ch.cpuSeconds()
		now := time.Now()
		if err != nil || cerr != nil {
			if now.Sub(started) > time.Minute {
				return fmt.Errorf("no metrics after a minute: %v", errors.Join(err, cerr))
			}
			continue // not listening yet
		}
		r.peakRSS = max(r.peakRSS, ch.peakRSS())
		r.peakHeap = max(r.peakHeap, m["go_memstats_heap_inuse_bytes"])
		r.peakLive = max(r.peakLive, m["go_gc_heap_live_bytes"])
		r.memLimit = max(r.memLimit, m["go_gc_gomemlimit_bytes"])
		st := ch.status()
		r.peakAnon, r.peakFile = max(r.peakAnon, st["RssAnon"]), max(r.peakFile, st["RssFile"])
		acked := m["shardbridge_records_acked_total"]
		r.peakPool = max(r.peakPool, m["shardbridge_pool_used_bytes"])
		if acked > 0 && firstAt.IsZero() {
			firstAt, firstN, firstCPU, firstGC = now, acked, cpu, m["go_cpu_classes_gc_total_cpu_seconds_total"]
			r.toFirstAck = now.Sub(started)
		}
		if r.to90Time == 0 && !firstAt.IsZero() && acked >= 0.9*float64(want) {
			r.to90, r.to90Time = int64(acked-firstN), now.Sub(firstAt)
		}
		if acked >= float64(want) {
			r.steady = int64(acked - firstN)
			r.steadyTime = now.Sub(firstAt)
			r.steadyCPU = cpu - firstCPU
			r.gcCPU = m["go_cpu_classes_gc_total_cpu_seconds_total"] - firstGC
			return nil
		}
		if acked != lastN {
			lastN, lastMove = acked, now
		} else if now.Sub(lastMove) > time.Minute {
			return fmt.Errorf("no progress for a minute at %.0f of %d records acked; log: %s", acked, want, ch.tail())
		}
	}
}

// livePhase writes spec.liveRate records a second for spec.liveFor while the child is caught up,
// and reads them back from Kafka read_committed as they come: each record's latency is the time
// it was fetched minus its Kafka timestamp, which the sink sets to the Kinesis
// ApproximateArrivalTimestamp.
func livePhase(ctx context.Context, ch *child, kp *kinesisPeer, kf *kafkaPeer, spec runSpec) ([]time.Duration, error) {
	ends, err := kf.endOffsets(ctx)
	if err != nil {
		return nil, err
	}
	offsets := map[int32]kgo.Offset{}
	for p, o := range ends {
		offsets[p] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kf.broker),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: offsets}),
		kgo.FetchMaxWait(100*time.Millisecond),
		// What a consumer of an exactly_once mirror sees: records once their transaction
		// commits. Without transactions (at_least_once, the floor) it is the same as
		// read_uncommitted.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	want := int64(float64(spec.liveRate) * spec.liveFor.Seconds())
	lat := make([]time.Duration, 0, want)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := kp.putAtRate(gctx, spec.liveRate, spec.liveFor)
		return err
	})
	g.Go(func() error {
		rctx, cancel := context.WithTimeout(gctx, spec.liveFor+30*time.Second)
		defer cancel()
		for int64(len(lat)) < want {
			fs := cl.PollFetches(rctx)
			if rctx.Err() != nil {
				return fmt.Errorf("read %d of %d live records back: %w", len(lat), want, rctx.Err())
			}
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) { lat = append(lat, now.Sub(r.Timestamp)) })
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return lat, nil
}

func shardbridgeConfig(spec runSpec, addr, endpoint, broker string) string {
	delivery := "at_least_once"
	if spec.prog == progShardbridgeEOS {
		delivery = "exactly_once"
	}
	interval := spec.interval
	if interval == 0 {
		interval = 5 * time.Second
	}
	return fmt.Sprintf(`http:
  addr: %q
pool:
  max_pending_records: %d
  max_pending_bytes: %d
  wait_timeout: "30s"
shutdown_timeout: "60s"
connectors:
  - name: bench
    source:
      kinesis:
        stream: %s
        region: us-east-1
        endpoint: %q
        tls_skip_verify: true
        start_position: trim_horizon
        credentials:
          access_key_id: bench
          secret_access_key: bench
        efo:
          enabled: true
          consumer_name: %s
    sink:
      kafka:
        brokers: [%q]
        topic: %s
    checkpoint:
      topic: _shardbridge_checkpoints
      interval: %q
    delivery: %s
`, addr, spec.poolRecords, spec.poolBytes, benchStream, endpoint, spec.consumer, broker, benchTopic, interval.String(), delivery)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// percentile returns the p-th percentile (0-100) of d, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

type binaries struct{ shardbridge, floor string }

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o600) }

// cpuPerMillion is the child's CPU seconds per million records over the steady span.
func (r runResult) cpuPerMillion() float64 { return r.steadyCPU / float64(max(r.steady, 1)) * 1e6 }

// gcPercent is the garbage collector's share of the child's CPU over the steady span, in percent.
func (r runResult) gcPercent() float64 { return 100 * r.gcCPU / max(r.steadyCPU, 1e-9) }

// rate90 is records per second up to 90% of the backlog, 0 when the span was too short to
// measure.
func (r runResult) rate90() float64 {
	if r.to90 <= 0 || r.to90Time <= 0 {
		return 0
	}
	return float64(r.to90) / r.to90Time.Seconds()
}

// rate is records per second over the steady span, 0 when the span was too short to measure.
func (r runResult) rate() float64 {
	if r.steady <= 0 || r.steadyTime <= 0 {
		return 0
	}
	return float64(r.steady) / r.steadyTime.Seconds()
}
