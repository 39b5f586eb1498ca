package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Group suite settings. Six shards split evenly over one, two and three workers.
const (
	grpShards     = 6
	grpRecordSize = 1 * kib
	grpRecords    = 300_000 // throughput backlog
	grpPartitions = 16
	// The failover runs write this many records a second into the stream while they run, so every
	// shard has new records to read when its new owner starts: the first record read marks the
	// takeover.
	grpLiveRate = 3000
	grpWorkers  = 3 // in the failover runs
)

// grpTimings are the session timeouts the failover runs use: the e2e suite's short one and the
// default.
var grpTimings = []struct {
	session, heartbeat time.Duration
}{
	{3 * time.Second, 500 * time.Millisecond},
	{10 * time.Second, 3 * time.Second},
}

// group runs the group-mode suite: failover times after kill -9 and after SIGTERM, and
// throughput and CPU per record with one, two and three workers sharing a stream.
func (b *bench) group(ctx context.Context) error {
	type foRow struct {
		session, heartbeat time.Duration
		fault              string
		runs               []failover
	}
	var foRows []foRow
	for _, tm := range grpTimings {
		if b.o.failovers == 0 {
			break
		}
		for _, fault := range []string{"kill -9", "SIGTERM"} {
			row := foRow{session: tm.session, heartbeat: tm.heartbeat, fault: fault}
			for i := range b.o.failovers {
				b.logf("group: failover after %s, session %s, run %d", fault, tm.session, i+1)
				fo, err := b.failoverRun(ctx, tm.session, tm.heartbeat, fault)
				if err != nil {
					return fmt.Errorf("failover after %s: %w", fault, err)
				}
				b.logf("  shards read again after %s (worst shard), %d duplicates, %d missing", fo.took, fo.duplicates, fo.missing)
				row.runs = append(row.runs, fo)
			}
			foRows = append(foRows, row)
		}
	}

	records := b.scaled(grpRecords)
	type tpRun struct {
		workers int
		run     int
		res     groupResult
	}
	var tpRuns []tpRun
	for i := range b.o.repeat {
		for _, n := range []int{0, 1, 2, 3} {
			b.logf("group: throughput with %d worker(s), backlog %d, run %d", n, records, i+1)
			res, err := b.groupThroughput(ctx, records, n)
			if err != nil {
				return fmt.Errorf("throughput with %d workers: %w", n, err)
			}
			b.logf("  %.0f records/s, %.2f CPU-s per 1M records, balanced after %s, %d records in Kafka", res.rate(), res.cpuPerMillion(), res.balanced, res.inTopic)
			tpRuns = append(tpRuns, tpRun{workers: n, run: i + 1, res: res})
		}
	}

	if len(foRows) > 0 {
		fmt.Fprintf(b.out, "\n## Group mode: failover\n\n%d workers share %d shards; %d records/s of %d B are written throughout. "+
			"\"shards read again\" is the time from the fault to the first record the new owner read of each of the stopped worker's shards, worst shard of the run.\n\n",
			grpWorkers, grpShards, grpLiveRate, grpRecordSize)
		fmt.Fprintf(b.out, "| fault | session timeout | heartbeat | runs | shards read again: median | worst | of which the session timeout | duplicates per run | missing | load avg |\n")
		fmt.Fprintf(b.out, "|---|---:|---:|---:|---:|---:|---:|---|---:|---|\n")
		for _, r := range foRows {
			var took []time.Duration
			var dups []string
			missing := int64(0)
			for _, fo := range r.runs {
				took = append(took, fo.took)
				dups = append(dups, strconv.FormatInt(fo.duplicates, 10))
				missing += fo.missing
			}
			ofWhich := "0 (no wait: the worker leaves)"
			if r.fault == "kill -9" {
				ofWhich = r.session.String()
			}
			fmt.Fprintf(b.out, "| %s | %s | %s | %d | %s | %s | %s | %s | %d | %s |\n", r.fault, r.session, r.heartbeat, len(r.runs),
				secs(percentile(took, 50)), secs(slices.Max(took)), ofWhich, strings.Join(dups, ", "), missing, r.runs[len(r.runs)-1].loadavg)
		}
	}
	fmt.Fprintf(b.out, "\n## Group mode: throughput\n\n%d records of %d B in %d shards, read by 1, 2 and 3 workers (EFO, defaults, group session 10s): "+
		"the workers start on an empty stream, spread its shards (\"balanced after\": from their start), are paused, the backlog is written, and they are resumed. "+
		"records/s and CPU are over the span from the first acknowledgement after the resume to the last, CPU summed over the workers.\n\n", records, grpRecordSize, grpShards)
	fmt.Fprintf(b.out, "| workers | run | balanced after | records/s | MB/s | CPU-s per 1M records | in Kafka (missing, extra) | load avg |\n|---|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range tpRuns {
		workers := strconv.Itoa(r.workers)
		if r.workers == 0 {
			workers = "1, group mode off"
		}
		fmt.Fprintf(b.out, "| %s | %d | %s | %.0f | %.1f | %.2f | %d (%d, %d) | %s |\n", workers, r.run, secs(r.res.balanced), r.res.rate(),
			r.res.rate()*grpRecordSize/1e6, r.res.cpuPerMillion(), r.res.inTopic, max(0, r.res.want-r.res.inTopic), max(0, r.res.inTopic-r.res.want), r.res.loadavg)
	}
	return nil
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// failover is what one failover run measured.
type failover struct {
	took                time.Duration // fault to every one of the victim's shards read again, worst shard
	duplicates, missing int64
	loadavg             string
}

// groupWorker is one shardbridge child of a group run.
type groupWorker struct {
	name string
	c    *child
}

// startGroupWorkers starts n shardbridge children of one group against kp and kf.
// With session 0 the connector is not in group mode (one worker reads every shard).
func (b *bench) startGroupWorkers(kp *kinesisPeer, kf *kafkaPeer, n int, session, heartbeat time.Duration, consumer string) ([]*groupWorker, error) {
	var ws []*groupWorker
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return ws, err
		}
		name := fmt.Sprintf("worker-%d", i+1)
		spec := runSpec{poolBytes: tpPoolBytes, poolRecords: tpPoolRecords, consumer: consumer}
		text := shardbridgeConfig(spec, addr, kp.srv.Endpoint(), kf.broker)
		if session > 0 {
			// rebalance_timeout must exceed the config's shutdown_timeout (60s) plus 10s.
			text += fmt.Sprintf(`    group:
      enabled: true
      session_timeout: %q
      heartbeat_interval: %q
      rebalance_timeout: "90s"
worker_id: %s
`, session.String(), heartbeat.String(), name)
		}
		path := filepath.Join(b.dir, consumer+"-"+name+".yaml")
		if err := writeFile(path, text); err != nil {
			return ws, err
		}
		c, err := startChild(b.bins.shardbridge, []string{"run", "--config", path, "--log-level", "warn"}, nil, addr,
			filepath.Join(b.dir, consumer+"-"+name+".log"))
		if err != nil {
			return ws, err
		}
		ws = append(ws, &groupWorker{name: name, c: c})
	}
	return ws, nil
}

func killAll(ws []*groupWorker) {
	for _, w := range ws {
		w.c.kill()
	}
}

// owned returns the open shards each worker owns now, from its status.
func owned(ctx context.Context, ws []*groupWorker) (map[string][]string, error) {
	out := map[string][]string{}
	for _, w := range ws {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+w.c.addr+"/connectors/bench/status", nil)
		if err != nil {
			return nil, err
		}
		resp, err := w.c.http.Do(req)
		if err != nil {
			return nil, err
		}
		var st struct {
			State string   `json:"state"`
			Owned []string `json:"owned_shards"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if st.State != "RUNNING" {
			return nil, fmt.Errorf("%s is %s", w.name, st.State)
		}
		out[w.name] = st.Owned
	}
	return out, nil
}

// waitBalanced waits until the workers own all shards, each one worker's, within one per worker.
func waitBalanced(ctx context.Context, ws []*groupWorker, shards int, within time.Duration) (map[string][]string, error) {
	deadline := time.Now().Add(within)
	for {
		o, err := owned(ctx, ws)
		if err == nil {
			seen := map[string]bool{}
			lo, hi, dup := shards, 0, false
			for _, w := range ws {
				for _, s := range o[w.name] {
					dup = dup || seen[s]
					seen[s] = true
				}
				lo, hi = min(lo, len(o[w.name])), max(hi, len(o[w.name]))
			}
			if !dup && len(seen) == shards && hi-lo <= 1 {
				return o, nil
			}
			err = fmt.Errorf("ownership %v", o)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("not balanced within %s: %w", within, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// shardReads returns shardbridge_kinesis_records_read_total per shard of one child.
func (c *child) shardReads(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	const name = "shardbridge_kinesis_records_read_total{"
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		_, rest, _ := strings.Cut(line, `shard="`)
		shard, _, _ := strings.Cut(rest, `"`)
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			out[shard] = v
		}
	}
	return out, sc.Err()
}

// failoverRun starts three workers on a fresh stream and Kafka with records written
// throughout, waits until they are balanced and reading, stops one (SIGKILL or SIGTERM), and
// measures the time until every one of its shards has a record read by another worker. Then it
// stops the rest gracefully and counts the topic against what was written.
func (b *bench) failoverRun(ctx context.Context, session, heartbeat time.Duration, fault string) (failover, error) {
	fo := failover{loadavg: loadavg()}
	kp, err := startKinesis(grpShards, grpRecordSize, b.o.eventBytes)
	if err != nil {
		return fo, err
	}
	defer kp.Close()
	kf, err := startKafkaOpts(grpPartitions, 0, kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		return fo, err
	}
	defer kf.Close()
	ws, err := b.startGroupWorkers(kp, kf, grpWorkers, session, heartbeat, b.consumer("failover"))
	defer killAll(ws)
	if err != nil {
		return fo, err
	}
	o, err := waitBalanced(ctx, ws, grpShards, time.Minute)
	if err != nil {
		return fo, err
	}
	stopWriting := make(chan struct{})
	writeDone := make(chan error, 1)
	go func() { writeDone <- kp.writeLive(ctx, grpLiveRate, stopWriting) }()
	stopped := false
	stopWriter := func() error {
		if !stopped {
			stopped = true
			close(stopWriting)
			return <-writeDone
		}
		return nil
	}
	defer stopWriter()
	victim, survivors := ws[1], []*groupWorker{ws[0], ws[2]}
	// Every worker reads and has committed a checkpoint before the fault.
	for _, w := range ws {
		if err := waitMetric(ctx, w.c, "shardbridge_checkpoint_commits_total", 2, time.Minute); err != nil {
			_ = stopWriter()
			return fo, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	// The fault comes at a random point of the heartbeat cycle: how long the others take to learn
	// of it depends on where their next heartbeat falls, and a run started like the last would
	// otherwise hit the same point every time.
	if err := sleepCtx(ctx, rand.N(heartbeat)); err != nil {
		return fo, err
	}
	shards := o[victim.name]
	before := map[string]map[string]float64{}
	for _, w := range survivors {
		if before[w.name], err = w.c.shardReads(ctx); err != nil {
			_ = stopWriter()
			return fo, err
		}
	}
	start := time.Now()
	if fault == "kill -9" {
		victim.c.kill()
	} else if err := victim.c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		_ = stopWriter()
		return fo, err
	}
	read := map[string]bool{}
	for len(read) < len(shards) {
		if time.Since(start) > session+time.Minute {
			_ = stopWriter()
			return fo, fmt.Errorf("shards %v not read again by the others within %s", shards, session+time.Minute)
		}
		for _, w := range survivors {
			now, err := w.c.shardReads(ctx)
			if err != nil {
				continue
			}
			for _, s := range shards {
				if now[s] > before[w.name][s] {
					read[s] = true
				}
			}
		}
		if len(read) < len(shards) {
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return fo, err
			}
		}
	}
	fo.took = time.Since(start)
	if err := stopWriter(); err != nil {
		return fo, err
	}
	if fault != "kill -9" {
		select {
		case <-victim.c.exited:
		case <-time.After(time.Minute):
			return fo, errors.New("the SIGTERMed worker did not exit within a minute")
		}
	}
	// Let the survivors mirror what is left, then stop them gracefully.
	want := kp.written.Load()
	if err := waitAcked(ctx, survivors, kf, want, time.Minute); err != nil {
		return fo, err
	}
	for _, w := range survivors {
		if _, err := w.c.stop(60 * time.Second); err != nil {
			return fo, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	ends, err := kf.endOffsets(ctx)
	if err != nil {
		return fo, err
	}
	in := sumOffsets(ends)
	fo.duplicates, fo.missing = max(0, in-want), max(0, want-in)
	return fo, nil
}

// writeLive writes rate records a second, in batches every 10ms, until stop is closed. It never
// cancels a PutRecords in flight (only ctx, the whole bench's, does), so that written counts
// exactly what the stream holds: a canceled call may have been stored all the same.
func (k *kinesisPeer) writeLive(ctx context.Context, rate int, stop <-chan struct{}) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return nil
		case <-tick.C:
		}
		due := int64(time.Since(start).Seconds() * float64(rate))
		for sent < due {
			n := min(putBatch, due-sent)
			if err := k.putBatch(ctx, k.written.Load(), n); err != nil {
				return err
			}
			sent += n
			k.written.Add(n)
		}
	}
}

// waitAcked waits until the topic holds at least want records and has not grown for two
// seconds: with duplicates in it, holding want records is not yet holding every record.
func waitAcked(ctx context.Context, ws []*groupWorker, kf *kafkaPeer, want int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	last, since := int64(-1), time.Now()
	for {
		ends, err := kf.endOffsets(ctx)
		if err == nil {
			n := sumOffsets(ends)
			if n != last {
				last, since = n, time.Now()
			}
			if n >= want && time.Since(since) >= 2*time.Second {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic holds %d of %d records after %s (%v)", sumOffsets(ends), want, within, err)
		}
		for _, w := range ws {
			select {
			case <-w.c.exited:
				return fmt.Errorf("%s exited: %v; log: %s", w.name, w.c.waitErr, w.c.tail())
			default:
			}
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitMetric waits until a child's metric (summed over its labels) reaches at least v.
func waitMetric(ctx context.Context, c *child, name string, v float64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		m, err := c.metrics(ctx, name)
		if err == nil && m[name] >= v {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s below %g after %s (%v); log: %s", name, v, within, err, c.tail())
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// groupResult is what one throughput run of a group measured.
type groupResult struct {
	balanced   time.Duration // from the start to every shard owned, within one per worker
	steady     float64       // records acked between the first sample with an ack and the last
	steadyTime time.Duration
	steadyCPU  float64 // the workers' CPU seconds over that span
	inTopic    int64
	want       int64
	loadavg    string
}

func (r groupResult) rate() float64 {
	if r.steady <= 0 || r.steadyTime <= 0 {
		return 0
	}
	return r.steady / r.steadyTime.Seconds()
}

func (r groupResult) cpuPerMillion() float64 { return r.steadyCPU / max(r.steady, 1) * 1e6 }

// groupThroughput starts n workers together on an empty stream with a fresh Kafka, waits until
// they have spread its shards, pauses them (PUT .../pause: they keep their shards), writes the
// backlog, resumes them, and measures records/s and CPU per record, summed over the workers, from
// the first acknowledgement after the resume to the last. So the figures are those of a settled
// group, without its start-up or its first rebalances.
//
// n == 0 is the baseline: one worker with the connector not in group mode, the same procedure.
func (b *bench) groupThroughput(ctx context.Context, records int64, n int) (groupResult, error) {
	res := groupResult{loadavg: loadavg(), want: records}
	kp, err := startKinesis(grpShards, grpRecordSize, b.o.eventBytes)
	if err != nil {
		return res, err
	}
	defer kp.Close()
	kf, err := startKafkaOpts(grpPartitions, 0)
	if err != nil {
		return res, err
	}
	defer kf.Close()
	start := time.Now()
	session := 10 * time.Second
	if n == 0 {
		session = 0
	}
	ws, err := b.startGroupWorkers(kp, kf, max(n, 1), session, 3*time.Second, b.consumer("group"))
	defer killAll(ws)
	if err != nil {
		return res, err
	}
	if n == 0 {
		err = waitMetric(ctx, ws[0].c, "shardbridge_kinesis_active_shards", grpShards, 2*time.Minute)
	} else {
		_, err = waitBalanced(ctx, ws, grpShards, 2*time.Minute)
	}
	if err != nil {
		return res, err
	}
	res.balanced = time.Since(start)
	for _, w := range ws {
		if err := w.c.put(ctx, "/connectors/bench/pause"); err != nil {
			return res, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	if err := kp.put(ctx, records, 4); err != nil {
		return res, err
	}
	for _, w := range ws {
		if err := w.c.put(ctx, "/connectors/bench/resume"); err != nil {
			return res, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	resumed := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	var firstAt time.Time
	var firstN, firstCPU float64
	lastMove, lastN := time.Now(), -1.0
	for {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
		}
		acked, cpu := 0.0, 0.0
		ok := true
		for _, w := range ws {
			m, err := w.c.metrics(ctx, "shardbridge_records_acked_total")
			c, cerr := w.c.cpuSeconds()
			if err != nil || cerr != nil {
				ok = false
				break
			}
			acked += m["shardbridge_records_acked_total"]
			cpu += c
		}
		if !ok {
			if time.Since(resumed) > time.Minute {
				return res, errors.New("no metrics from every worker for a minute")
			}
			continue
		}
		now := time.Now()
		if acked > 0 && firstAt.IsZero() {
			firstAt, firstN, firstCPU = now, acked, cpu
		}
		if acked >= float64(res.want) {
			res.steady, res.steadyTime, res.steadyCPU = acked-firstN, now.Sub(firstAt), cpu-firstCPU
			break
		}
		if acked != lastN {
			lastN, lastMove = acked, now
		} else if now.Sub(lastMove) > time.Minute {
			return res, fmt.Errorf("no progress for a minute at %.0f of %d records acked", acked, res.want)
		}
	}
	for _, w := range ws {
		if _, err := w.c.stop(60 * time.Second); err != nil {
			return res, fmt.Errorf("%s: %w", w.name, err)
		}
	}
	ends, err := kf.endOffsets(ctx)
	if err != nil {
		return res, err
	}
	res.inTopic = sumOffsets(ends)
	return res, nil
}

// put sends PUT path to the child's API and expects 202 Accepted.
func (c *child) put(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+c.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("PUT %s: %s", path, resp.Status)
	}
	return nil
}
