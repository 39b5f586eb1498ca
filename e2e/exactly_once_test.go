package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// The exactly-once scenarios. Each runs connectors[].delivery exactly_once through one fault and
// checks, with kcat reading read_committed (what a consumer with isolation.level=read_committed
// sees):
//   - the mirror: every record exactly once, per key in write order (assertExact);
//   - the checkpoint topic, read_committed, every value in offset order: no shard's checkpoint
//     ever moves backwards, none moves on after the shard's end, and after the last graceful
//     stop each shard's checkpoint is exactly its last record in the mirror (checkpoints and
//     records committed together);
//   - that the fault really hit a transaction, where it must have: records of aborted
//     transactions in the topic (read_uncommitted sees more than read_committed), or
//     shardbridge_transactions_total{result="aborted"}, shardbridge_rewinds_total, or a fence.

// eosConfig is cfg with delivery exactly_once.
func eosConfig(cfg runtimeConfig) runtimeConfig {
	cfg.Delivery = "exactly_once"
	return cfg
}

// consumeUncommitted reads topic read_uncommitted: every record written, also those of aborted
// or open transactions.
func consumeUncommitted(t testing.TB, s *scenario) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := s.kcat.Consume(ctx, s.kafka.addr(), s.cfg.Topic, "-X", "isolation.level=read_uncommitted")
	if err != nil {
		t.Fatalf("read %s read_uncommitted: %v", s.cfg.Topic, err)
	}
	return len(msgs)
}

// consumeCommitted reads topic read_committed, saying so rather than leaning on librdkafka's
// default.
func consumeCommitted(t testing.TB, kc *kcat.Kcat, broker, topic string) []kcat.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := kc.Consume(ctx, broker, topic, "-X", "isolation.level=read_committed")
	if err != nil {
		t.Fatalf("read %s read_committed: %v", topic, err)
	}
	return msgs
}

// assertCheckpointsForward fails if a shard's committed checkpoint ever moves backwards (a lower
// sequence, or sub-sequence within one), moves on after the shard's end, or carries a lower
// owner epoch than the one before it (a zombie's commit landing after its successor's). Every
// shard's checkpoints share one partition (the key decides it), so offsets order them. It
// returns how many checkpoints each shard has.
func assertCheckpointsForward(t testing.TB, hist []checkpointEntry) map[string]int {
	t.Helper()
	last := map[string]checkpointEntry{}
	count := map[string]int{}
	for _, cp := range hist {
		count[cp.shard]++
		prev, ok := last[cp.shard]
		last[cp.shard] = cp
		if !ok {
			continue
		}
		at := fmt.Sprintf("shard %s: checkpoint at offset %d (%s/%d end=%v, owner %s epoch %d) after offset %d (%s/%d end=%v, owner %s epoch %d)",
			cp.shard, cp.offset, cp.seq, cp.sub, cp.end, cp.owner, cp.epoch, prev.offset, prev.seq, prev.sub, prev.end, prev.owner, prev.epoch)
		switch {
		case seqLess(cp.seq, prev.seq) || (cp.seq == prev.seq && cp.sub < prev.sub):
			t.Errorf("%s: moved backwards", at)
		case prev.end && (cp.seq != prev.seq || cp.sub != prev.sub || !cp.end):
			t.Errorf("%s: moved after the shard's end", at)
		}
		if cp.epoch < prev.epoch {
			t.Errorf("%s: a lower owner epoch than the checkpoint before it", at)
		}
	}
	if len(hist) == 0 {
		t.Errorf("no committed checkpoint of connector in the checkpoint topic")
	}
	return count
}

// assertCheckpointsAtMirror fails unless each shard's latest committed checkpoint is the shard's
// last record in the mirror topic: after a graceful stop under exactly-once, the records and the
// checkpoints that cover them were committed together, so they must agree exactly.
func assertCheckpointsAtMirror(t testing.TB, s *scenario, hist []checkpointEntry) {
	t.Helper()
	latest := map[string]checkpointEntry{}
	for _, cp := range hist {
		latest[cp.shard] = cp
	}
	lastInKafka := map[string]string{}
	for _, m := range consumeCommitted(t, s.kcat, s.kafka.addr(), s.cfg.Topic) {
		shard, seq := header(m, "kinesis.shard_id"), header(m, "kinesis.sequence_number")
		if seqLess(lastInKafka[shard], seq) {
			lastInKafka[shard] = seq
		}
	}
	for shard, seq := range lastInKafka {
		if cp, ok := latest[shard]; !ok || cp.seq != seq {
			t.Errorf("shard %s: latest committed checkpoint %q (found %v), but its last record in the mirror is %s", shard, latest[shard].seq, ok, seq)
		}
	}
}

// checkEOS runs the checks every exactly-once scenario ends with, after the last process
// stopped gracefully: the checkpoints never moved backwards and agree with the mirror.
func checkEOS(t testing.TB, s *scenario) map[string]int {
	t.Helper()
	hist := checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector)
	counts := assertCheckpointsForward(t, hist)
	assertCheckpointsAtMirror(t, s, hist)
	return counts
}

// TestExactlyOnceKillRestart: with delivery exactly_once, SIGKILL mid-stream and a restart leave
// a read_committed consumer with every record exactly once. The records the killed process had
// written in its open transaction are in the topic too (read_uncommitted sees them), aborted:
// the test checks that there were some, so the kill did land mid-transaction.
func TestExactlyOnceKillRestart(t *testing.T) {
	s := newScenario(t, 4, 4, runtimeConfig{PoolRecords: 2000, Interval: "2s", Delivery: "exactly_once"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const total = 12000
	wait := background(func() error { return s.writer.put(ctx, total, 2000) })
	p := startRuntime(t, "first", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_transactions_total", 2, time.Minute, `result="committed"`)
	p.waitMetric("shardbridge_records_emitted_total", 5000, time.Minute)
	p.kill()
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the kill: the kill was not mid-stream", n)
	}
	p2 := startRuntime(t, "second", s.path)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	rep := s.finish(p2, want)
	assertExact(t, rep)
	checkEOS(t, s)
	all := consumeUncommitted(t, s)
	t.Logf("read_uncommitted sees %d records for %d in Kinesis: %d from aborted transactions", all, len(want), all-len(want))
	if all <= len(want) {
		t.Errorf("read_uncommitted sees %d records for %d: the kill left no open transaction behind, so this run did not test exactly-once", all, len(want))
	}
}

// TestExactlyOnceBrokerRestart: the broker goes away mid-stream for 5 s and comes back on the
// same port with its data. The transaction open at the time holds records the broker took before
// it went; the commit waits for the records it could not take yet (writes stall meanwhile: the
// commit holds the sink), then commits the transaction whole when the broker is back; or, when
// the transaction was already a few seconds old as the broker went and the reconnection is slow,
// the commit gives up at three quarters of the transaction timeout, aborts, and the connector
// reads those records again (seen in CI runs on the loaded 2-core machine). Either way a
// read_committed consumer sees every record once.
//
// The outage stays under the transaction timeout (10 s). A longer one ends the open transaction
// at the broker, which real Kafka does by aborting it and bumping the producer's epoch, so the
// next produce or commit of the old epoch is refused and the connector rewinds. kfake, restarted
// from its data dir, aborts such a transaction without bumping the epoch, and then lets the
// producer go on in a new transaction: its commit succeeds with the records from before the
// outage aborted and lost, which Kafka would not allow. The transaction timing out at a live
// broker is TestExactlyOnceProduceErrorsOnePartition.
func TestExactlyOnceBrokerRestart(t *testing.T) {
	const outage = 5 * time.Second
	s := newScenario(t, 4, 4, eosConfig(runtimeConfig{PoolRecords: 2000}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const total = 12000
	wait := background(func() error { return s.writer.put(ctx, total, 1000) })

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_transactions_total", 2, time.Minute, `result="committed"`)
	p.waitMetric("shardbridge_records_acked_total", 2000, time.Minute)
	s.kafka.stop()
	down := time.Now()
	time.Sleep(outage) // the fault's window itself, not a wait for an outcome
	s.kafka.startAgain()
	t.Logf("broker down for %s", time.Since(down).Round(time.Millisecond))
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the broker came back: not mid-stream", n)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	// A commit waited through the outage: the fault hit an open transaction.
	slow, err := p.metric("shardbridge_checkpoint_commit_seconds_count")
	if err == nil {
		var fast float64
		fast, err = p.metric("shardbridge_checkpoint_commit_seconds_bucket", `le="2.048"`)
		slow -= fast
	}
	aborted, _ := p.metric("shardbridge_transactions_total", `result="aborted"`)
	rep := s.finish(p, want)
	assertExact(t, rep)
	checkEOS(t, s)
	t.Logf("%g commits took over 2s; %g transactions aborted; read_uncommitted sees %d records for %d", slow, aborted, consumeUncommitted(t, s), len(want))
	// Which of the two outcomes a run sees depends on how old the open transaction was when the
	// broker went: both show the fault hit it.
	if err != nil || (slow < 1 && aborted < 1) {
		t.Errorf("%g commits took over 2s (%v), %g transactions aborted: no transaction was open across the %s outage", slow, err, aborted, outage)
	}
}

// TestExactlyOnceProduceErrorsOnePartition: for 15 s, longer than the transaction timeout (10 s),
// the broker answers every produce to partition 1 with NOT_LEADER_FOR_PARTITION. The producer
// retries them; the commit waits for them; the broker aborts the transaction when it times out.
// Whatever ends the transaction, the connector reads its records again and a read_committed
// consumer sees each record once.
func TestExactlyOnceProduceErrorsOnePartition(t *testing.T) {
	t.Parallel()
	const window = 15 * time.Second
	s := newScenario(t, 4, 4, eosConfig(runtimeConfig{PoolRecords: 1000, DeliveryTimeout: "90s"}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	if err := s.writer.put(ctx, 500, 0); err != nil {
		t.Fatal(err)
	}
	p.waitMetric("shardbridge_records_acked_total", 500, time.Minute)

	fault := s.kafka.cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: s.cfg.Topic,
		Partitions: []int32{1}, Err: kerr.NotLeaderForPartition, Count: -1})
	start := time.Now()
	wait := background(func() error { return s.writer.put(ctx, 5500, 500) })
	if err := fault.Wait(ctx, 3); err != nil {
		t.Fatalf("the fault answered no produce: %v", err)
	}
	time.Sleep(time.Until(start.Add(window))) // the fault's window itself, not a wait for an outcome
	fault.Remove()
	t.Logf("the fault answered %d produce requests in %s", fault.Hits(), window)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	aborted, _ := p.metric("shardbridge_transactions_total", `result="aborted"`)
	rewinds, _ := p.metric("shardbridge_rewinds_total")
	rep := s.finish(p, want)
	assertExact(t, rep)
	checkEOS(t, s)
	all := consumeUncommitted(t, s)
	t.Logf("%g transactions aborted, %g rewinds; read_uncommitted sees %d records for %d", aborted, rewinds, all, len(want))
	if aborted < 1 || rewinds < 1 || all <= len(want) {
		t.Errorf("%g transactions aborted, %g rewinds and %d aborted records in the topic: the errors outlasting the transaction timeout must abort one", aborted, rewinds, all-len(want))
	}
}

// TestExactlyOnceKinesisConnectionResets: every subscription's HTTP/2 stream is reset a few
// events in, over and over. Each reader resubscribes from its last emitted record inside the
// open transaction; no transaction aborts, and each record is committed once.
func TestExactlyOnceKinesisConnectionResets(t *testing.T) {
	t.Parallel()
	s := newScenario(t, 4, 4, eosConfig(runtimeConfig{}))
	if err := s.srv.Inject(kinesistest.Fault{Op: "SubscribeToShard", Kind: kinesistest.ResetConnection(), After: 4, Count: -1}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, 4000, 600) })

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	resets := waitResets(t, p, 12)
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	s.srv.ClearFaults()
	committed, _ := p.metric("shardbridge_transactions_total", `result="committed"`)
	rep := s.finish(p, want)
	assertExact(t, rep)
	checkEOS(t, s)
	t.Logf("at least %g resets; %g transactions committed", resets, committed)
	if committed < 3 {
		t.Errorf("%g transactions committed; the records should have spanned several", committed)
	}
}

// TestExactlyOnceSplitThenMerge: shard 0 is split, then one of its children is merged with shard
// 1, while records are written. Each parent's end checkpoint is committed in a transaction
// before any checkpoint of its children; per key the records stay in write order across parents
// and children, each once.
func TestExactlyOnceSplitThenMerge(t *testing.T) {
	t.Parallel()
	s := newScenario(t, 2, 4, eosConfig(runtimeConfig{}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	p := startRuntime(t, "runtime", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	if err := s.writer.put(ctx, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	wait := background(func() error { return s.writer.put(ctx, 3000, 1000) })
	p.waitMetric("shardbridge_records_acked_total", 800, time.Minute)

	all := splitThenMerge(ctx, t, s, 800, wait)
	want := s.kinesisTruth()
	rep := s.finish(p, want)
	assertExact(t, rep)
	checkEOS(t, s)

	// Every parent's end is committed before any checkpoint of its children.
	parents := assertParentsEndedFirst(t, all, checkpointLog(t, s.kcat, s.kafka.addr(), s.cfg.Connector), true)
	if parents != 4 {
		t.Errorf("%d parent-child pairs, want 4 (split: 2, merge: 2)", parents)
	}
}

// TestExactlyOnceGracefulStopRestart: SIGTERM mid-stream drains and commits the last transaction
// with the final checkpoints, so nothing was aborted (read_uncommitted sees what read_committed
// sees), each shard's checkpoint is its last record in Kafka, and the restart resumes right after
// it.
func TestExactlyOnceGracefulStopRestart(t *testing.T) {
	t.Parallel()
	s := newScenario(t, 4, 4, eosConfig(runtimeConfig{}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const total = 6000
	wait := background(func() error { return s.writer.put(ctx, total, 1500) })

	p := startRuntime(t, "first", s.path)
	p.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	p.waitMetric("shardbridge_records_acked_total", 1500, time.Minute)
	p.terminate(time.Minute)
	if n := s.writer.written.Load(); n >= total {
		t.Fatalf("the writer finished (%d records) before the stop: the stop was not mid-stream", n)
	}
	committed := len(consumeCommitted(t, s.kcat, s.kafka.addr(), s.cfg.Topic))
	if all := consumeUncommitted(t, s); all != committed || committed == 0 {
		t.Errorf("after the drain read_committed sees %d records and read_uncommitted %d: want the same, non-zero (the drain commits, it aborts nothing)", committed, all)
	}
	checkEOS(t, s)

	p2 := startRuntime(t, "second", s.path)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	rep := s.finish(p2, s.kinesisTruth())
	assertExact(t, rep)
	checkEOS(t, s)
	if aborted, _ := p2.metric("shardbridge_transactions_total", `result="aborted"`); aborted != 0 {
		t.Errorf("%g transactions aborted; none should in a run without faults", aborted)
	}
}

// TestExactlyOnceFencedByNewProcess: a second process of the same single-process connector
// starts while the first runs. Its producer takes the transactional id, which fences the first:
// the first's next commit is refused, its connector stops FAILED with an error naming the fence,
// its log says so, and it writes nothing more. The second carries on from the last committed
// checkpoints; every record is there once.
//
// The first process runs a second connector too (at_least_once, its own topic and EFO
// consumer), which keeps running: a fence stops the fenced connector, not the process's others.
// (A process whose connectors have all failed exits non-zero; the second connector also keeps
// the first process's API up to show the fenced connector's status.)
func TestExactlyOnceFencedByNewProcess(t *testing.T) {
	s := newScenario(t, 4, 4, eosConfig(runtimeConfig{}), kinesistest.WithTakeoverAfter(time.Second))
	createTopic(t, s.kafka.addr(), "other", 4)
	firstPath := withConnector(t, s, runtimeConfig{Connector: "other", Topic: "other", ConsumerName: "other"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wait := background(func() error { return s.writer.put(ctx, 6000, 1000) })

	first := startRuntime(t, "first", firstPath)
	first.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)
	first.waitState("other", "RUNNING", 30*time.Second)
	first.waitMetric("shardbridge_transactions_total", 2, time.Minute, `result="committed"`)
	second := startRuntime(t, "second", s.path)
	second.waitState(s.cfg.Connector, "RUNNING", 30*time.Second)

	st := first.waitState(s.cfg.Connector, "FAILED", 30*time.Second)
	if !strings.Contains(st.Error, "fenced: another writer took over") {
		t.Errorf("the fenced connector's status error %q does not name the fence", st.Error)
	}
	if n, _ := first.metric("shardbridge_transactions_total", `connector="mirror"`, `result="fenced"`); n != 1 {
		t.Errorf("the fenced connector counts %g fenced transactions; want 1", n)
	}
	first.waitLog("connector failed", 10*time.Second)
	logText, err := os.ReadFile(first.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logText, []byte("exactly-once writer stopped")) || !bytes.Contains(logText, []byte("fenced: another writer took over")) {
		t.Errorf("the fenced process's log does not say that its connector stopped because it was fenced")
	}
	if n := s.writer.written.Load(); n >= 6000 {
		t.Fatalf("the writer finished (%d records) before the fence: not mid-stream", n)
	}
	// The fenced connector reads and writes nothing more.
	before, _ := first.metric("shardbridge_records_emitted_total", `connector="mirror"`)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	if after, _ := first.metric("shardbridge_records_emitted_total", `connector="mirror"`); after != before {
		t.Errorf("the fenced connector emitted %g records after it failed", after-before)
	}
	// The first process's other connector kept going to the end of the stream.
	other := waitMirrored(t, s.kcat, s.kafka.addr(), "other", want, 2*time.Minute)
	if st, err := first.status("other"); err != nil || st.State != "RUNNING" {
		t.Errorf("the first process's other connector is %s (%s, %v); a fence of one connector must not stop another", st.State, st.Error, err)
	}
	first.terminateWith(time.Minute, 1) // a connector of it failed
	t.Logf("the other connector's topic: %s", other)
	rep := s.finish(second, want)
	assertExact(t, rep)
	checkEOS(t, s)
}

// withConnector writes a config holding the scenario's connector and another, other (filled
// with the suite's defaults and the scenario's stream, endpoint and broker), and returns its
// path.
func withConnector(t testing.TB, s *scenario, other runtimeConfig) string {
	t.Helper()
	other.Stream, other.Endpoint, other.Broker = s.cfg.Stream, s.cfg.Endpoint, s.cfg.Broker
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, other.defaults()); err != nil {
		t.Fatalf("config template: %v", err)
	}
	_, entry, ok := strings.Cut(b.String(), "connectors:\n")
	if !ok {
		t.Fatal("the config template has no connectors list")
	}
	base, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimRight(string(base), "\n") + "\n" + entry
	path := filepath.Join(t.TempDir(), "two-connectors.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExactlyOnceGroupKillOneOfThree: three workers share eight shards under exactly_once; one is
// killed with SIGKILL mid-stream, its open transaction left behind. The others take its shards
// once the group counts it out, load their checkpoints read_committed (waiting for its open
// transaction to end: the broker aborts it at its timeout) and read on from there: every record
// exactly once, and the dead worker's uncommitted records stay invisible.
func TestExactlyOnceGroupKillOneOfThree(t *testing.T) {
	s := newScenario(t, 8, 4, eosConfig(runtimeConfig{Group: true}))
	open := shardIDs(8)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w1, w2, w3 := s.startWorker("w1"), s.startWorker("w2"), s.startWorker("w3")
	wait := background(func() error { return s.writer.put(ctx, 9000, 1000) })
	owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, w1, w2, w3)
	t.Logf("ownership: %v", owned)
	w2.waitMetric("shardbridge_transactions_total", 2, time.Minute, `result="committed"`)
	w2.waitMetric("shardbridge_records_emitted_total", 500, time.Minute)
	w2.kill()
	if n := s.writer.written.Load(); n >= 9000 {
		t.Fatalf("the writer finished (%d records) before the kill: not mid-stream", n)
	}
	owned = waitOwnership(t, s.cfg.Connector, open, time.Minute, w1, w3)
	t.Logf("after the kill: %v", owned)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	w1.terminate(time.Minute)
	rep := s.finish(w3, want)
	assertExact(t, rep)
	checkEOS(t, s)
	all := consumeUncommitted(t, s)
	t.Logf("read_uncommitted sees %d records for %d: %d from aborted transactions", all, len(want), all-len(want))
	if all <= len(want) {
		t.Errorf("read_uncommitted sees %d records for %d: the kill left no open transaction behind", all, len(want))
	}
}

// TestExactlyOnceGroupZombie: three workers share eight shards; one is frozen (SIGSTOP) past its
// group session while its transaction is open, twice. The group gives its shards to the others,
// which go on from the last committed checkpoints and never stop. Then the zombie resumes
// (SIGCONT) with its transaction, which must not become visible:
//   - the first time, once the others have committed twice on its old shards (about 5 s, under
//     the transaction timeout): the group has counted it out, so it loses its shards and aborts
//     (a commit would be refused too: its lease's heartbeat, and the group generation the
//     transaction carries, KIP-447);
//   - the second time after 12 s, past the transaction timeout (10 s): the broker has aborted
//     the transaction and bumped its producer's epoch, so the zombie's next request is refused
//     like a fenced producer's; it is not fenced (nobody else has its transactional id), so it
//     starts a new producer with the same transactional id.
//
// Each time the zombie counts an aborted transaction, rejoins the group and carries on with the
// shards the group gives it: every record arrives exactly once.
func TestExactlyOnceGroupZombie(t *testing.T) {
	s := newScenario(t, 8, 4, eosConfig(runtimeConfig{Group: true}))
	open := shardIDs(8)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w1, w2, w3 := s.startWorker("w1"), s.startWorker("w2"), s.startWorker("w3")
	const total = 20000
	wait := background(func() error { return s.writer.put(ctx, total, 500) })
	owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, w1, w2, w3)
	t.Logf("ownership: %v", owned)
	w2.waitMetric("shardbridge_transactions_total", 2, time.Minute, `result="committed"`)

	frozen := false
	t.Cleanup(func() { // the harness asks a failed test's processes for a diagnosis
		if frozen {
			_ = w2.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	zombie := func(round string, atLeast time.Duration) {
		t.Helper()
		aborted, _ := w2.metric("shardbridge_transactions_total", `result="aborted"`)
		if err := w2.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		frozen = true
		stopped := time.Now()
		owned := waitOwnership(t, s.cfg.Connector, open, time.Minute, w1, w3)
		t.Logf("%s: %s after SIGSTOP the others own every shard: %v", round, time.Since(stopped).Round(time.Millisecond), owned)
		// The others read on past the zombie's shards' last committed checkpoints.
		c1, _ := w1.metric("shardbridge_transactions_total", `result="committed"`)
		c3, _ := w3.metric("shardbridge_transactions_total", `result="committed"`)
		w1.waitMetric("shardbridge_transactions_total", c1+2, time.Minute, `result="committed"`)
		w3.waitMetric("shardbridge_transactions_total", c3+2, time.Minute, `result="committed"`)
		time.Sleep(time.Until(stopped.Add(atLeast))) // the freeze itself, not a wait for an outcome
		if err := w2.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		frozen = false
		t.Logf("%s: SIGCONT after %s", round, time.Since(stopped).Round(time.Millisecond))
		if n := s.writer.written.Load(); n >= total {
			t.Fatalf("the writer finished (%d records) while the zombie was frozen: not mid-stream", n)
		}
		// The zombie's transaction does not commit; it rejoins and carries on.
		w2.waitMetric("shardbridge_transactions_total", aborted+1, time.Minute, `result="aborted"`)
		owned = waitOwnership(t, s.cfg.Connector, open, time.Minute, w1, w2, w3)
		committed, _ := w2.metric("shardbridge_transactions_total", `result="committed"`)
		w2.waitMetric("shardbridge_transactions_total", committed+1, time.Minute, `result="committed"`)
		t.Logf("%s: the zombie is back: %v", round, owned)
	}
	zombie("past its session", 0)
	zombie("past its transaction timeout", 12*time.Second)
	// Frozen past the transaction timeout, the zombie's transaction ends one of two ways, by
	// timing: the broker aborted it first (the producer is replaced), or the zombie, running again,
	// aborts it itself because it is past three quarters of its timeout. Either shows the freeze
	// outlived a transaction; which one is not the scenario's point.
	waitUntil(t, 10*time.Second, "w2 logs that its transaction outlived its timeout", func() error {
		b, err := os.ReadFile(w2.logPath)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte("the transaction outlived its timeout and the broker aborted it")) &&
			!bytes.Contains(b, []byte("it has been open for three quarters of its timeout")) {
			return errors.New("not yet")
		}
		return nil
	})

	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	waitMirrored(t, s.kcat, s.kafka.addr(), s.cfg.Topic, want, 2*time.Minute)
	for _, w := range []*process{w1, w2, w3} {
		st, err := w.status(s.cfg.Connector)
		if err != nil || st.State != "RUNNING" {
			t.Errorf("%s is %s (%s, %v) at the end; every worker must go on", w.name, st.State, st.Error, err)
		}
	}
	if n, _ := w2.metric("shardbridge_transactions_total", `result="fenced"`); n != 0 {
		t.Errorf("the zombie counts %g fenced transactions; nobody else has its transactional id", n)
	}
	w1.terminate(time.Minute)
	w3.terminate(time.Minute)
	rep := s.finish(w2, want)
	assertExact(t, rep)
	checkEOS(t, s)
	all := consumeUncommitted(t, s)
	t.Logf("read_uncommitted sees %d records for %d: %d from aborted transactions", all, len(want), all-len(want))
	if all <= len(want) {
		t.Errorf("read_uncommitted sees %d records for %d: the zombie had no open transaction", all, len(want))
	}
}

// errorsTB records Errorf calls, so that a checker's own test can see what it reports.
type errorsTB struct {
	testing.TB
	errs []string
}

func (r *errorsTB) Helper() {}

func (r *errorsTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckpointsForwardCheck pins assertCheckpointsForward: it must see each way a checkpoint can
// go wrong, and pass a history that only moves forward.
func TestCheckpointsForwardCheck(t *testing.T) {
	cp := func(offset int64, shard, seq string, sub int64, end bool, epoch int64) checkpointEntry {
		return checkpointEntry{offset: offset, shard: shard, seq: seq, sub: sub, end: end, owner: "w", epoch: epoch}
	}
	good := []checkpointEntry{cp(0, "s0", "100", 0, false, 1), cp(1, "s1", "7", 0, false, 1), cp(2, "s0", "100", 3, false, 1),
		cp(3, "s0", "250", 0, false, 2), cp(4, "s0", "250", 0, true, 2), cp(5, "s0", "250", 0, true, 3)}
	cases := []struct {
		name string
		hist []checkpointEntry
		want string // "" for no error
	}{
		{"forward", good, ""},
		{"backwards", append(slices.Clone(good[:4]), cp(9, "s0", "99", 0, false, 2)), "moved backwards"},
		{"backwards within a sequence", []checkpointEntry{cp(0, "s0", "100", 3, false, 1), cp(1, "s0", "100", 2, false, 1)}, "moved backwards"},
		{"past the end", append(slices.Clone(good[:5]), cp(9, "s0", "251", 0, true, 2)), "after the shard's end"},
		{"end undone", append(slices.Clone(good[:5]), cp(9, "s0", "250", 0, false, 2)), "after the shard's end"},
		{"older owner", append(slices.Clone(good[:4]), cp(9, "s0", "300", 0, false, 1)), "lower owner epoch"},
		{"none", nil, "no committed checkpoint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &errorsTB{TB: t}
			assertCheckpointsForward(rec, c.hist)
			got := strings.Join(rec.errs, "; ")
			switch {
			case c.want == "" && got != "":
				t.Errorf("errors %q for a history that only moves forward", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("errors %q; want one about %q", got, c.want)
			}
		})
	}
}
