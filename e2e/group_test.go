package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/internal/kinesismock"
)

// groupStatus is the status fields of a worker of a group.
type groupStatus struct {
	WorkerID    string   `json:"worker_id"`
	State       string   `json:"state"`
	Error       string   `json:"error"`
	OwnedShards []string `json:"owned_shards"`
	Group       *struct {
		State   string `json:"state"`
		Error   string `json:"error"`
		Members []struct {
			WorkerID string   `json:"worker_id"`
			Slots    []int32  `json:"partitions"`
			Shards   []string `json:"shards"`
		} `json:"members"`
	} `json:"group"`
}

func (p *process) groupStatus(connector string) (groupStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, code, err := p.get(ctx, "/connectors/"+connector+"/status")
	if err != nil {
		return groupStatus{}, err
	}
	if code != http.StatusOK {
		return groupStatus{}, fmt.Errorf("status %d: %s", code, b)
	}
	var s groupStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return groupStatus{}, fmt.Errorf("status body %q: %w", b, err)
	}
	return s, nil
}

// startWorker starts one worker of the scenario's group, named by SHARDBRIDGE_WORKER_ID.
func (s *scenario) startWorker(name string) *process {
	s.t.Helper()
	p := launchRuntimeEnv(s.t, name, []string{"SHARDBRIDGE_WORKER_ID=" + name}, s.path)
	p.waitAPI()
	return p
}

// startWorkers launches the named workers at the same moment and waits for each one's API.
func (s *scenario) startWorkers(names ...string) []*process {
	s.t.Helper()
	var ps []*process
	for _, n := range names {
		ps = append(ps, launchRuntimeEnv(s.t, n, []string{"SHARDBRIDGE_WORKER_ID=" + n}, s.path))
	}
	for _, p := range ps {
		p.waitAPI()
	}
	return ps
}

// shardIDs are the ids kinesistest (and kinesis-mock) give a new stream's n shards.
func shardIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("shardId-%012d", i)
	}
	return ids
}

// waitOwnership waits until the live workers own every one of the open shards between them,
// each shard exactly one worker's, and the counts differ by at most one; it returns who owns what.
func waitOwnership(t testing.TB, connector string, open []string, within time.Duration, workers ...*process) map[string][]string {
	t.Helper()
	var owned map[string][]string
	waitEvery(t, within, 200*time.Millisecond, fmt.Sprintf("%d open shards spread over %d workers", len(open), len(workers)), func() error {
		owned = map[string][]string{}
		owner := map[string]string{}
		for _, w := range workers {
			st, err := w.groupStatus(connector)
			if err != nil {
				return err
			}
			if st.State != "RUNNING" {
				return fmt.Errorf("%s is %s (%s)", w.name, st.State, st.Error)
			}
			for _, sh := range st.OwnedShards {
				if !slices.Contains(open, sh) {
					continue // a closed shard read to its end stays in its slot
				}
				if prev, dup := owner[sh]; dup {
					return fmt.Errorf("shard %s is owned by %s and %s", sh, prev, w.name)
				}
				owner[sh] = w.name
				owned[w.name] = append(owned[w.name], sh)
			}
		}
		if len(owner) != len(open) {
			return fmt.Errorf("%d of %d open shards owned: %v", len(owner), len(open), owned)
		}
		lo, hi := len(open), 0
		for _, w := range workers {
			lo, hi = min(lo, len(owned[w.name])), max(hi, len(owned[w.name]))
		}
		if hi-lo > 1 {
			return fmt.Errorf("unbalanced: %v", owned)
		}
		return nil
	})
	for _, v := range owned {
		sort.Strings(v)
	}
	return owned
}

// readCounts returns, per worker name and shard, shardbridge_kinesis_records_read_total: what
// each worker has read of each shard so far in its run.
func readCounts(t testing.TB, shards []string, workers ...*process) map[string]map[string]float64 {
	t.Helper()
	out := map[string]map[string]float64{}
	for _, w := range workers {
		out[w.name] = map[string]float64{}
		for _, sh := range shards {
			v, err := w.metric("shardbridge_kinesis_records_read_total", `shard="`+sh+`"`)
			if err != nil {
				t.Fatalf("%s: metrics: %v", w.name, err)
			}
			out[w.name][sh] = v
		}
	}
	return out
}

// waitTakenOver polls the survivors until each of shards is being read by one of them again (its
// records_read_total on that worker above its value in before), and returns, per shard, when
// that was first seen, measured from since. The poll runs every 100ms; a scrape takes a few ms.
func waitTakenOver(t testing.TB, shards []string, before map[string]map[string]float64, since time.Time, within time.Duration, survivors ...*process) map[string]time.Duration {
	t.Helper()
	took := map[string]time.Duration{}
	by := map[string]string{}
	waitEvery(t, within, 100*time.Millisecond, fmt.Sprintf("shards %v read again by %d other workers", shards, len(survivors)), func() error {
		now := readCounts(t, shards, survivors...)
		at := time.Since(since)
		var waiting []string
		for _, sh := range shards {
			if _, ok := took[sh]; ok {
				continue
			}
			for _, w := range survivors {
				if now[w.name][sh] > before[w.name][sh] {
					took[sh], by[sh] = at, w.name
					break
				}
			}
			if _, ok := took[sh]; !ok {
				waiting = append(waiting, sh)
			}
		}
		if len(waiting) > 0 {
			return fmt.Errorf("not read yet: %v", waiting)
		}
		return nil
	})
	t.Logf("taken over (time from the fault to the first record read by the new owner): %v, by %v", took, by)
	return took
}

// maxDuration returns the largest value of m.
func maxDuration(m map[string]time.Duration) time.Duration {
	var d time.Duration
	for _, v := range m {
		d = max(d, v)
	}
	return d
}

// waitPoolsEmpty waits until every worker's pool is empty: every record acquired was released.
func waitPoolsEmpty(t testing.TB, workers ...*process) {
	t.Helper()
	for _, p := range workers {
		waitUntil(t, 30*time.Second, p.name+": pool empty after the mirror", func() error {
			recs, err := p.metric("shardbridge_pool_used_records")
			if err != nil {
				return err
			}
			used, err := p.metric("shardbridge_pool_used_bytes")
			if err != nil {
				return err
			}
			if recs != 0 || used != 0 {
				return fmt.Errorf("pool holds %g records, %g bytes", recs, used)
			}
			return nil
		})
	}
}

// finishGroup waits for every record in Kafka and for empty pools, stops the workers gracefully
// and reads the topic once more, so a late duplicate shows too.
func (s *scenario) finishGroup(want []kinesisRecord, workers ...*process) mirrorReport {
	s.t.Helper()
	return finishGroupOn(s.t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, workers...)
}

func finishGroupOn(t testing.TB, kc *kcat.Kcat, broker, topic string, want []kinesisRecord, workers ...*process) mirrorReport {
	t.Helper()
	waitMirrored(t, kc, broker, topic, want, 2*time.Minute)
	waitPoolsEmpty(t, workers...)
	for _, w := range workers {
		w.terminate(time.Minute)
	}
	rep := check(consume(t, kc, broker, topic), want)
	t.Logf("%s", rep)
	return rep
}

// resumePoints returns, for each of shards, the last checkpoint owner wrote with an epoch of at
// most epoch: where a new owner resumes after owner stopped in that epoch.
func resumePoints(log []checkpointEntry, owner string, epoch int64, shards []string) map[string]checkpointEntry {
	out := map[string]checkpointEntry{}
	for _, e := range log {
		if e.owner == owner && e.epoch <= epoch && slices.Contains(shards, e.shard) {
			out[e.shard] = e
		}
	}
	return out
}

// assertDuplicatesAfter fails unless every duplicate is of one of shards and after its resume
// point: only records a worker had read past its last checkpoint can be written twice.
func assertDuplicatesAfter(t testing.TB, rep mirrorReport, resume map[string]checkpointEntry) {
	t.Helper()
	for _, d := range rep.Duplicates {
		cp, ok := resume[d.Shard]
		if !ok {
			t.Errorf("duplicate %s/%s (key %s #%d) is of a shard the stopped worker did not own", d.Shard, d.Seq, d.Key, d.Counter)
			continue
		}
		if !seqLess(cp.seq, d.Seq) {
			t.Errorf("duplicate %s/%s is at or before the checkpoint %s its last owner committed", d.Shard, d.Seq, cp.seq)
		}
	}
}

// groupEvent is what a scenario learns about its victim just before the fault.
type groupEvent struct {
	victim     *process
	survivors  []*process
	shards     []string // the open shards the victim owned
	generation int64    // the victim's group generation
	ackRate    float64  // records/s the victim acknowledged over the last checkpoint interval
	reads      map[string]map[string]float64
}

// beforeFault waits until victim has acknowledged records and committed checkpoints, measures
// its ack rate over one checkpoint interval, and records what it owns, its generation and what
// the survivors have read of its shards so far.
func beforeFault(t testing.TB, connector string, interval time.Duration, victim *process, survivors ...*process) groupEvent {
	t.Helper()
	victim.waitMetric("shardbridge_records_acked_total", 500, time.Minute)
	victim.waitMetric("shardbridge_checkpoint_commits_total", 2, time.Minute, `result="ok"`)
	a0, err := victim.metric("shardbridge_records_acked_total")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(interval) // the measurement window itself, not a wait for an outcome
	a1, err := victim.metric("shardbridge_records_acked_total")
	if err != nil {
		t.Fatal(err)
	}
	st, err := victim.groupStatus(connector)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := victim.metric("shardbridge_group_generation")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.OwnedShards) == 0 || gen < 1 {
		t.Fatalf("%s owns %v in generation %g before the fault; want shards and a generation", victim.name, st.OwnedShards, gen)
	}
	return groupEvent{victim: victim, survivors: survivors, shards: st.OwnedShards, generation: int64(gen),
		ackRate: (a1 - a0) / interval.Seconds(), reads: readCounts(t, st.OwnedShards, survivors...)}
}

// Three workers with the same config share a stream's eight shards: each shard is read by
// exactly one worker, the counts differ by at most one, every worker's status shows the group's
// whole assignment, and every record arrives exactly once.
func TestGroupThreeWorkersShareShards(t *testing.T) {
	t.Parallel()
	s := newScenario(t, 8, 4, runtimeConfig{Group: true})
	open := shardIDs(8)
	workers := s.startWorkers("w1", "w2", "w3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, 6000, 1500) })
	owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, workers...)
	t.Logf("ownership: %v", owned)
	st, err := workers[0].groupStatus(s.cfg.Connector)
	if err != nil {
		t.Fatal(err)
	}
	if st.WorkerID != "w1" || st.Group == nil || len(st.Group.Members) != 3 {
		t.Fatalf("w1's status shows worker %q and group %+v; want w1 and three members", st.WorkerID, st.Group)
	}
	for _, m := range st.Group.Members {
		var mine []string
		for _, sh := range m.Shards {
			if slices.Contains(open, sh) {
				mine = append(mine, sh)
			}
		}
		if !slices.Equal(mine, owned[m.WorkerID]) {
			t.Errorf("the group's assignment gives %s %v; its own status says %v", m.WorkerID, mine, owned[m.WorkerID])
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finishGroup(s.kinesisTruth(), workers...)
	assertExact(t, rep)
}

// Group scenario settings: a 3 s session (the harness default) and a 1 s checkpoint interval.
const (
	groupSession  = 3 * time.Second
	groupInterval = time.Second
	groupPool     = 2000
	// failoverSlack is what a takeover may take beyond the session timeout: the group
	// coordinator's notice of the expired session, the survivors' next heartbeat (every 500ms)
	// and rejoin, the new owner's checkpoint load and subscription, and its first record; under
	// the race detector on a shared 2-core machine.
	failoverSlack = 7 * time.Second
	// mockFailoverSlack is failoverSlack against kinesis-mock: the emulator (a node process) takes
	// much of the 2 cores, and runs saw 5.2 to 8 s in all.
	mockFailoverSlack = 10 * time.Second
)

// TestGroupKillOneOfThree: three workers share six shards while records are written; one is
// killed with SIGKILL (no drain, no final checkpoint). Its shards are read again by the other
// two within the session timeout plus failoverSlack, from the dead worker's last checkpoints:
// nothing is lost, and every duplicate is of a shard it owned, after its last checkpoint there.
// Bound, as in TestKillRestart: what the dead worker had in flight (pool.max_pending_records) +
// what it acknowledged in one checkpoint interval, twice (one interval of acks not yet
// committed, one for the commit's own latency). Then it starts again with the same worker id,
// rejoins, gets its share back through graceful handovers, and the mirror stays complete.
func TestGroupKillOneOfThree(t *testing.T) {
	t.Parallel()
	const (
		shards = 6
		rate   = 1200 // records/s written, all shards
		total  = 30000
	)
	s := newScenario(t, shards, 4, runtimeConfig{Group: true, PoolRecords: groupPool, Interval: groupInterval.String(), SessionTimeout: groupSession.String()})
	open := shardIDs(shards)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w := s.startWorkers("w1", "w2", "w3")
	owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, w...)
	t.Logf("ownership before the kill: %v", owned)
	wait := background(func() error { return s.writer.put(ctx, total, rate) })

	ev := beforeFault(t, s.cfg.Connector, groupInterval, w[1], w[0], w[2])
	w[1].kill()
	killed := time.Now()
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the kill: not mid-stream", n)
	}
	took := waitTakenOver(t, ev.shards, ev.reads, killed, groupSession+30*time.Second, ev.survivors...)
	if d := maxDuration(took); d > groupSession+failoverSlack {
		t.Errorf("the dead worker's shards were read again after %s; bound: session timeout %s + %s", d, groupSession, failoverSlack)
	}
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the takeover was seen: records may not have flowed on every shard", n)
	}
	after := waitOwnership(t, s.cfg.Connector, open, time.Minute, ev.survivors...)
	t.Logf("ownership after the kill: %v", after)

	// The same worker id comes back: it rejoins and gets its share back.
	w[1] = s.startWorker("w2")
	back := waitOwnership(t, s.cfg.Connector, open, time.Minute, w...)
	t.Logf("ownership after the restart: %v", back)
	if n := s.writer.written.Load(); n >= total {
		t.Errorf("the writer finished (%d records) before the restarted worker had its share back: the rejoin was not mid-stream", n)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finishGroup(s.kinesisTruth(), w...)

	ackRate := max(float64(rate*len(ev.shards))/shards, ev.ackRate)
	bound := groupPool + int(ackRate*2*groupInterval.Seconds())
	assertBounded(t, rep, bound)
	log := checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	assertCheckpointsForward(t, log)
	resume := resumePoints(log, ev.victim.name, ev.generation, ev.shards)
	if len(resume) != len(ev.shards) {
		t.Errorf("the killed worker committed checkpoints of %d of its %d shards before the kill", len(resume), len(ev.shards))
	}
	assertDuplicatesAfter(t, rep, resume)
	t.Logf("duplicates after kill -9 of one of three: %d (bound %d = pool %d + %.0f records/s x 2 x %s); takeover after %s (session %s)",
		len(rep.Duplicates), bound, groupPool, ackRate, groupInterval, maxDuration(took), groupSession)
}

// TestGroupTerminateOneOfThree: SIGTERM to one of three workers mid-stream. It stops reading,
// drains, writes its final checkpoints and leaves the group; only then do the other two get its
// shards, and they resume exactly after those checkpoints: 0 duplicates.
func TestGroupTerminateOneOfThree(t *testing.T) {
	t.Parallel()
	const (
		shards = 6
		rate   = 1200
		total  = 24000
	)
	s := newScenario(t, shards, 4, runtimeConfig{Group: true, PoolRecords: groupPool, Interval: groupInterval.String()})
	open := shardIDs(shards)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w := s.startWorkers("w1", "w2", "w3")
	waitOwnership(t, s.cfg.Connector, open, time.Minute, w...)
	wait := background(func() error { return s.writer.put(ctx, total, rate) })

	ev := beforeFault(t, s.cfg.Connector, groupInterval, w[2], w[0], w[1])
	handovers := 0.0
	for _, p := range ev.survivors {
		n, err := p.metric("shardbridge_group_handover_seconds_count")
		if err != nil {
			t.Fatal(err)
		}
		handovers += n
	}
	stopped := time.Now()
	w[2].terminate(time.Minute)
	t.Logf("w3 drained and exited in %s", time.Since(stopped).Round(time.Millisecond))
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the stop: not mid-stream", n)
	}
	took := waitTakenOver(t, ev.shards, ev.reads, stopped, time.Minute, ev.survivors...)
	waitOwnership(t, s.cfg.Connector, open, time.Minute, ev.survivors...)
	after := 0.0
	for _, p := range ev.survivors {
		n, err := p.metric("shardbridge_group_handover_seconds_count")
		if err != nil {
			t.Fatal(err)
		}
		after += n
	}
	if after < handovers+float64(len(ev.shards)) {
		t.Errorf("shardbridge_group_handover_seconds counted %g handovers on the survivors, %g before the stop; want one per shard of the stopped worker (%d)", after, handovers, len(ev.shards))
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finishGroup(s.kinesisTruth(), ev.survivors...)
	assertExact(t, rep)
	assertCheckpointsForward(t, checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector))
	t.Logf("graceful stop of one of three: %d duplicates; its shards read again after %s", len(rep.Duplicates), maxDuration(took))
}

// TestGroupFrozenWorker: one of three workers is frozen (SIGSTOP) for longer than the session
// timeout while records are written. The group presumes it dead and the other two take its
// shards, resume from its last checkpoints and commit their own. Then it is thawed (SIGCONT): it
// must find out that it lost its shards, and it must never write a checkpoint of them after the
// new owner's: whatever it still commits is refused without a lease from the group
// (shardbridge_checkpoint_commits_total{result="fenced"}). It rejoins and gets its share back.
// Nothing is lost, every shard's checkpoints only go forward, and the duplicates are bounded as
// after a kill: the frozen worker's records in flight (written when it thaws, after the new
// owner's copies) and its acknowledged records past its last checkpoint.
func TestGroupFrozenWorker(t *testing.T) {
	t.Parallel()
	const (
		shards = 6
		rate   = 1200
		total  = 36000
	)
	s := newScenario(t, shards, 4, runtimeConfig{Group: true, PoolRecords: groupPool, Interval: groupInterval.String(), SessionTimeout: groupSession.String()})
	open := shardIDs(shards)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w := s.startWorkers("w1", "w2", "w3")
	waitOwnership(t, s.cfg.Connector, open, time.Minute, w...)
	wait := background(func() error { return s.writer.put(ctx, total, rate) })

	ev := beforeFault(t, s.cfg.Connector, groupInterval, w[0], w[1], w[2])
	zombie := ev.victim
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = zombie.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer thaw() // on failure too, so the cleanup's diagnosis can reach its API
	took := waitTakenOver(t, ev.shards, ev.reads, frozen, groupSession+30*time.Second, ev.survivors...)
	if d := maxDuration(took); d > groupSession+failoverSlack {
		t.Errorf("the frozen worker's shards were read again after %s; bound: session timeout %s + %s", d, groupSession, failoverSlack)
	}
	// The new owners commit checkpoints of the taken shards, twice each, before the thaw: they
	// have caught up, and the frozen worker's late commits would land after theirs.
	waitEvery(t, time.Minute, time.Second, "the new owners' checkpoints of the frozen worker's shards", func() error {
		n := map[string]int{}
		for _, e := range checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector) {
			if e.owner != zombie.name && e.epoch > ev.generation && slices.Contains(ev.shards, e.shard) {
				n[e.shard]++
			}
		}
		for _, sh := range ev.shards {
			if n[sh] < 2 {
				return fmt.Errorf("new owners' checkpoints per shard: %v", n)
			}
		}
		return nil
	})
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) while the worker was frozen: not mid-stream", n)
	}
	thaw()
	t.Logf("thawed after %s", time.Since(frozen).Round(time.Millisecond))
	zombie.waitLog("group: shards lost", 30*time.Second)
	back := waitOwnership(t, s.cfg.Connector, open, time.Minute, w...)
	t.Logf("ownership after the thaw: %v", back)
	fenced, err := zombie.metric("shardbridge_checkpoint_commits_total", `result="fenced"`)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finishGroup(s.kinesisTruth(), w...)

	ackRate := max(float64(rate*len(ev.shards))/shards, ev.ackRate)
	bound := groupPool + int(ackRate*2*groupInterval.Seconds())
	assertBounded(t, rep, bound)
	log := checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	assertCheckpointsForward(t, log)
	for _, sh := range ev.shards {
		first := int64(-1)
		for _, e := range log {
			if e.shard != sh {
				continue
			}
			switch {
			case first < 0 && e.owner != zombie.name && e.epoch > ev.generation:
				first = e.offset
			case first >= 0 && e.owner == zombie.name && e.epoch <= ev.generation:
				t.Errorf("shard %s: the frozen worker committed %s (epoch %d) at offset %d, after the new owner's first checkpoint at offset %d",
					sh, e.seq, e.epoch, e.offset, first)
			}
		}
		if first < 0 {
			t.Errorf("shard %s: no checkpoint by a new owner", sh)
		}
	}
	resume := resumePoints(log, zombie.name, ev.generation, ev.shards)
	if len(resume) != len(ev.shards) {
		t.Errorf("the frozen worker committed checkpoints of %d of its %d shards before the freeze", len(resume), len(ev.shards))
	}
	assertDuplicatesAfter(t, rep, resume)
	t.Logf("frozen worker: %d duplicates (bound %d); its shards taken over after %s; commits it attempted after the thaw and the group refused: %g",
		len(rep.Duplicates), bound, maxDuration(took), fenced)
}

// TestGroupSplitAcrossWorkers: three workers share six shards; a shard is split while its
// children's partitions belong to other workers. Each child starts only after the parent's end
// is checkpointed, also on a worker that did not read the parent (it learns the end from the
// checkpoint topic): 0 duplicates, per-key order across parent and children, and the parent's
// end checkpoint comes before any checkpoint of its children.
func TestGroupSplitAcrossWorkers(t *testing.T) {
	t.Parallel()
	const shards = 6
	s := newScenario(t, shards, 4, runtimeConfig{Group: true, Interval: groupInterval.String()})
	open := shardIDs(shards)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	w := s.startWorkers("w1", "w2", "w3")
	owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, w...)
	// Written once the shards are spread, so that every worker reads some.
	if err := s.writer.put(ctx, 6000, 1200); err != nil {
		t.Fatal(err)
	}
	for _, p := range w {
		p.waitMetric("shardbridge_records_acked_total", 200, time.Minute)
	}

	// The children will be shards 6 and 7, in coordination-topic partitions 6 and 7. Split a shard
	// of a worker that owns neither partition, so at least one child is read by another worker.
	st, err := w[0].groupStatus(s.cfg.Connector)
	if err != nil {
		t.Fatal(err)
	}
	children := []string{fmt.Sprintf("shardId-%012d", shards), fmt.Sprintf("shardId-%012d", shards+1)}
	var parentOwner, parent string
	for _, m := range st.Group.Members {
		if !slices.Contains(m.Slots, shards) && !slices.Contains(m.Slots, shards+1) && len(owned[m.WorkerID]) > 0 {
			parentOwner, parent = m.WorkerID, owned[m.WorkerID][0]
			break
		}
	}
	if parent == "" {
		t.Fatalf("every worker owns a child's partition: %+v", st.Group.Members)
	}
	client := s.srv.Client()
	var start, end *big.Int
	for _, sh := range listShards(t, client, s.cfg.Stream) {
		if *sh.ShardId == parent {
			start, _ = new(big.Int).SetString(*sh.HashKeyRange.StartingHashKey, 10)
			end, _ = new(big.Int).SetString(*sh.HashKeyRange.EndingHashKey, 10)
		}
	}
	mid := new(big.Int).Rsh(new(big.Int).Add(new(big.Int).Add(start, end), big.NewInt(1)), 1)
	wait := background(func() error { return s.writer.put(ctx, 6000, 1200) })
	waitUntil(t, time.Minute, "records written before the split", func() error {
		if s.writer.written.Load() < 6000+1500 {
			return fmt.Errorf("%d written", s.writer.written.Load())
		}
		return nil
	})
	if _, err := client.SplitShard(ctx, &awskinesis.SplitShardInput{StreamName: aws.String(s.cfg.Stream),
		ShardToSplit: aws.String(parent), NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatalf("split %s: %v", parent, err)
	}
	t.Logf("split %s (read by %s) into %v", parent, parentOwner, children)
	nowOpen := append(slices.DeleteFunc(slices.Clone(open), func(s string) bool { return s == parent }), children...)
	sort.Strings(nowOpen)
	after := waitOwnership(t, s.cfg.Connector, nowOpen, time.Minute, w...)
	t.Logf("ownership after the split: %v", after)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	all := listShards(t, client, s.cfg.Stream)
	if len(all) != shards+2 {
		t.Fatalf("%d shards after a split of one of %d", len(all), shards)
	}
	var childReaders []string
	for _, c := range children {
		reads := readCounts(t, []string{c}, w...)
		for _, p := range w {
			if reads[p.name][c] > 0 {
				childReaders = append(childReaders, p.name)
			}
		}
	}
	rep := s.finishGroup(s.kinesisTruth(), w...)
	assertExact(t, rep)
	if !slices.ContainsFunc(childReaders, func(n string) bool { return n != parentOwner }) {
		t.Errorf("the children were read only by %v, the parent's reader %s: the scenario did not cross workers", childReaders, parentOwner)
	}
	log := checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	assertCheckpointsForward(t, log)
	endAt, endBy := int64(-1), ""
	for _, e := range log {
		if e.shard == parent && e.end && endAt < 0 {
			endAt, endBy = e.offset, e.owner
		}
	}
	if endAt < 0 {
		t.Fatalf("parent %s has no end checkpoint", parent)
	}
	for _, c := range children {
		first := int64(-1)
		for _, e := range log {
			if e.shard == c {
				first = e.offset
				break
			}
		}
		switch {
		case first < 0:
			t.Errorf("child %s has no checkpoint: it was not read", c)
		case first < endAt:
			t.Errorf("child %s checkpointed at offset %d, before its parent %s's end at %d", c, first, parent, endAt)
		}
	}
	t.Logf("parent end checkpointed by %s; children read by %v", endBy, childReaders)
}

// TestGroupKinesisMockKillOneOfThree is TestGroupKillOneOfThree against kinesis-mock (the
// emulator LocalStack runs) with EFO, at a smaller volume: kinesis-mock takes about 3,000
// records/s. Three workers share six shards with one EFO consumer; one is killed with SIGKILL,
// the other two take its shards over (subscribing to them with the same consumer) within the
// session timeout plus mockFailoverSlack, and nothing is lost. Then it starts again and gets its
// share back. Duplicates are bounded as in TestGroupKillOneOfThree.
func TestGroupKinesisMockKillOneOfThree(t *testing.T) {
	t.Parallel()
	const (
		shards = 6
		rate   = 300
		total  = 9000
	)
	kc := kcat.Find(t)
	mock := kinesismock.Start(t, fmt.Sprintf("orders:%d", shards))
	client := kinesismock.NewClient(mock.Endpoint)
	cfg := runtimeConfig{Stream: "orders", Endpoint: mock.Endpoint, Group: true, PoolRecords: groupPool,
		Interval: groupInterval.String(), SessionTimeout: groupSession.String()}.defaults()
	k := startKafka(t, 4, cfg.Topic)
	cfg.Broker = k.addr()
	s := &scenario{t: t, kcat: kc, kafka: k, cfg: cfg, path: writeConfig(t, cfg), writer: newWriter(client, cfg.Stream, 32)}
	open := shardIDs(shards)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := s.startWorkers("w1", "w2", "w3")
	owned := waitOwnership(t, cfg.Connector, open, time.Minute, w...)
	t.Logf("ownership before the kill: %v", owned)
	wait := background(func() error { return s.writer.put(ctx, total, rate) })

	ev := beforeFault(t, cfg.Connector, groupInterval, w[1], w[0], w[2])
	w[1].kill()
	killed := time.Now()
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the kill: not mid-stream", n)
	}
	took := waitTakenOver(t, ev.shards, ev.reads, killed, groupSession+time.Minute, ev.survivors...)
	if d := maxDuration(took); d > groupSession+mockFailoverSlack {
		t.Errorf("the dead worker's shards were read again after %s; bound: session timeout %s + %s", d, groupSession, mockFailoverSlack)
	}
	waitOwnership(t, cfg.Connector, open, time.Minute, ev.survivors...)
	w[1] = s.startWorker("w2")
	waitOwnership(t, cfg.Connector, open, time.Minute, w...)
	if n := s.writer.written.Load(); n >= total {
		t.Errorf("the writer finished (%d records) before the restarted worker had its share back: the rejoin was not mid-stream", n)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want, err := readKinesis(ctx, client, cfg.Stream)
	if err != nil {
		t.Fatalf("read kinesis: %v", err)
	}
	if n := int(s.writer.written.Load()); len(want) != n {
		t.Fatalf("kinesis-mock holds %d records, the writer wrote %d", len(want), n)
	}
	rep := s.finishGroup(want, w...)
	ackRate := max(float64(rate*len(ev.shards))/shards, ev.ackRate)
	bound := groupPool + int(ackRate*2*groupInterval.Seconds())
	assertBounded(t, rep, bound)
	log := checkpointLog(t, kc, k.addr(), cfg.Connector)
	assertCheckpointsForward(t, log)
	resume := resumePoints(log, ev.victim.name, ev.generation, ev.shards)
	if len(resume) != len(ev.shards) {
		t.Errorf("the killed worker committed checkpoints of %d of its %d shards before the kill", len(resume), len(ev.shards))
	}
	assertDuplicatesAfter(t, rep, resume)
	t.Logf("kinesis-mock, kill -9 of one of three: %d duplicates (bound %d); takeover after %s", len(rep.Duplicates), bound, maxDuration(took))
}
