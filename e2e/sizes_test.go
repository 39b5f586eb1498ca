package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

const (
	sizesRecords    = 10000
	sizesMaxMessage = 256 << 10
	// sizesSmall and sizesLarge split the records: a value of at most sizesSmall bytes fits in
	// max_message_bytes with its key, headers and batch overhead; one above sizesLarge does not.
	// The generator never makes a size between them, so every record is one or the other.
	sizesSmall = sizesMaxMessage - 1<<10
	sizesLarge = sizesMaxMessage
)

// recordSize draws a value size: every 20th record log-uniform over 1 B .. 1 MiB (each power of
// two equally likely, so about a tenth of these are over 256KiB), the others log-uniform over
// 1 B .. 16 KiB. A plain log-uniform 1 B .. 1 MiB for all 10,000 records is about 740 MiB, and
// under the race detector writing that through the SDK alone took 2m38s on the 2-core machine
// (4.6 MB/s), so the large sizes are kept to one record in 20: about 55 MiB in all, with about
// 50 records over the limit. The size is moved out of the ambiguous band (sizesSmall, sizesLarge].
func recordSize(rng *rand.Rand, i int) int {
	top := 16 << 10
	if i%20 == 0 {
		top = 1 << 20
	}
	n := int(math.Exp(rng.Float64() * math.Log(float64(top))))
	n = max(1, min(n, top))
	if n > sizesSmall && n <= sizesLarge {
		n = sizesSmall
	}
	return n
}

// TestRecordSizesUnderEachPolicy: 10,000 records of random sizes up to 1 MiB (see recordSize),
// some over sink.kafka.max_message_bytes (256KiB), mirrored by three connectors of one runtime,
// one per errors.policy, each from its own EFO consumer into its own topic:
//   - skip: every record that fits arrives exactly once, intact and in order per key; the
//     too-large ones are counted in shardbridge_records_skipped_total and are not in the topic;
//   - fail: the connector goes FAILED with an error naming the record's size and
//     max_message_bytes; on no shard does the checkpoint reach the shard's first too-large
//     record; what reached the topic is intact, in order and without duplicates (records of the
//     failing shard after the too-large one, and of other shards, may have been produced before
//     the failure stopped the connector, so their absence is not asserted); a restart fails
//     again at a too-large record, never past the checkpoint;
//   - dlq: every record that fits arrives exactly once in the mirror topic, and every too-large
//     one exactly once in the dead-letter topic, whole (dead letters may be as large as
//     sink.kafka.dlq_max_message_bytes, 11MiB by default; the dead-letter topic is created with a
//     max.message.bytes to match), with the shardbridge.* headers naming the cause and the
//     original topic. The connector keeps running.
func TestRecordSizesUnderEachPolicy(t *testing.T) {
	t.Parallel() // overlaps TestProduceErrorsOnePartition's 30 s fault window
	seed := uint64(time.Now().UnixNano())
	t.Logf("size seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	sizes := make([]int, sizesRecords)
	var total int64
	large := 0
	for i := range sizes {
		sizes[i] = recordSize(rng, i)
		total += int64(sizes[i])
		if sizes[i] > sizesLarge {
			large++
		}
	}
	t.Logf("%d records, %d MiB, %d over %d bytes", sizesRecords, total>>20, large, sizesMaxMessage)

	s := newScenario(t, 4, 4, runtimeConfig{Connector: "skip", Topic: "skip", Policy: "skip",
		MaxMessageBytes: "256KiB", PoolBytes: "64MiB", PoolRecords: 5000, DLQTopic: "dead-letters"},
		kinesistest.WithMaxRecordSize(1<<20))
	s.writer.size = func(i int) int { return sizes[i] }
	// Reading it all back through the SDK is slow under the race detector, so the writer's own
	// record (with PutRecords' answers) is the truth here; the other scenarios read Kinesis.
	s.writer.keep = true
	createTopic(t, s.kafka.addr(), "fail", 4)
	createTopic(t, s.kafka.addr(), "dlq", 4)
	setTopicConfig(t, s.kafka.addr(), "dead-letters", map[string]string{"max.message.bytes": strconv.Itoa(12 << 20)})
	cfgFail, cfgDLQ := s.cfg, s.cfg
	cfgFail.Connector, cfgFail.Topic, cfgFail.Policy, cfgFail.DLQTopic = "fail", "fail", "fail", ""
	cfgDLQ.Connector, cfgDLQ.Topic, cfgDLQ.Policy = "dlq", "dlq", "dlq"
	pathFail, pathDLQ := writeConfig(t, cfgFail), writeConfig(t, cfgDLQ)
	s.cfg.DLQTopic = "" // the skip connector has no dead-letter topic
	s.path = writeConfig(t, s.cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	if err := s.writer.put(ctx, sizesRecords, 0); err != nil {
		t.Fatal(err)
	}
	want := s.writer.kept
	t.Logf("wrote %d records in %s", len(want), time.Since(start).Round(time.Millisecond))
	var small []kinesisRecord
	firstLarge := map[string]kinesisRecord{} // shard -> its first too-large record
	for _, r := range want {
		if len(r.Data) <= sizesSmall {
			small = append(small, r)
		} else if _, ok := firstLarge[r.Shard]; !ok {
			firstLarge[r.Shard] = r
		}
	}

	p := startRuntime(t, "runtime", s.path, pathFail, pathDLQ)

	// fail stops at a too-large record.
	st := p.waitState("fail", "FAILED", 2*time.Minute)
	if !strings.Contains(st.Error, "max_message_bytes") || !mentionsLargeSize(st.Error) {
		t.Errorf("fail: error %q names neither max_message_bytes nor the size of a too-large record", st.Error)
	}
	t.Logf("fail: FAILED: %s", st.Error)

	// dlq mirrors every record that fits and dead-letters the others, whole.
	var tooLarge []kinesisRecord
	for _, r := range want {
		if len(r.Data) > sizesSmall {
			tooLarge = append(tooLarge, r)
		}
	}
	waitMirrored(t, s.kcat, s.kafka.addr(), "dlq", small, 4*time.Minute)
	waitMirrored(t, s.kcat, s.kafka.addr(), "dead-letters", tooLarge, 4*time.Minute)
	if st, err := p.status("dlq"); err != nil || st.State != "RUNNING" {
		t.Errorf("dlq: state %s (%s), %v; want RUNNING", st.State, st.Error, err)
	}
	assertExact(t, check(consume(t, s.kcat, s.kafka.addr(), "dlq"), small))
	dead := consume(t, s.kcat, s.kafka.addr(), "dead-letters")
	rep := check(dead, tooLarge)
	t.Logf("dead letters: %s", rep)
	assertExact(t, rep)
	for _, m := range dead {
		if cause := header(m, "shardbridge.error"); !strings.Contains(cause, "max_message_bytes") || !mentionsLargeSize(cause) {
			t.Errorf("dead letter %s/%s: shardbridge.error %q does not name the size and max_message_bytes", header(m, "kinesis.shard_id"), header(m, "kinesis.sequence_number"), cause)
		}
		if orig := header(m, "shardbridge.original_topic"); orig != "dlq" {
			t.Errorf("dead letter: shardbridge.original_topic %q; want dlq", orig)
		}
	}

	// skip mirrors every record that fits, and counts the others.
	start = time.Now()
	waitMirrored(t, s.kcat, s.kafka.addr(), "skip", small, 4*time.Minute)
	skipped := p.waitMetric("shardbridge_records_skipped_total", float64(len(want)-len(small)), time.Minute, `connector="skip"`)
	if int(skipped) != len(want)-len(small) {
		t.Errorf("skip: %g records skipped, want %d", skipped, len(want)-len(small))
	}
	p.terminateWith(time.Minute, 1) // fail failed: the process says so in its exit status
	t.Logf("skip mirrored %d records and skipped %g in %s", len(small), skipped, time.Since(start).Round(time.Millisecond))
	rep = check(consume(t, s.kcat, s.kafka.addr(), "skip"), small)
	t.Logf("skip: %s", rep)
	assertExact(t, rep)

	for _, name := range []string{"fail"} {
		cps := checkpoints(t, s.kcat, s.kafka.addr(), name)
		for shard, r := range firstLarge {
			if cp, ok := cps[shard]; ok && !seqLess(cp.Seq, r.Seq) {
				t.Errorf("%s: checkpoint of %s at %s, at or past its first too-large record %s", name, shard, cp.Seq, r.Seq)
			}
		}
		msgs := consume(t, s.kcat, s.kafka.addr(), name)
		perShard := map[string]int{}
		for _, m := range msgs {
			perShard[header(m, "kinesis.shard_id")]++
		}
		rep := check(msgs, want)
		t.Logf("%s: %s, per shard %v, checkpoints %v", name, rep, perShard, cps)
		if len(rep.Duplicates) > 0 || len(rep.Problems) > 0 {
			t.Errorf("%s: %d duplicates, problems %v", name, len(rep.Duplicates), rep.Problems)
		}
		missing := map[string]bool{}
		for _, r := range rep.Missing {
			missing[r.Shard+"/"+r.Seq] = true
		}
		for _, r := range want {
			if len(r.Data) > sizesSmall && !missing[r.Shard+"/"+r.Seq] {
				t.Errorf("%s: too-large record %s/%s (%d bytes) is in the topic", name, r.Shard, r.Seq, len(r.Data))
			}
		}
	}

	// A restart of fail re-reads from its checkpoint and fails again at a too-large record.
	p2 := startRuntime(t, "restart", pathFail)
	st = p2.waitState("fail", "FAILED", 2*time.Minute)
	if !mentionsLargeSize(st.Error) {
		t.Errorf("fail after restart: error %q does not name a too-large record's size", st.Error)
	}
	p2.terminateWith(time.Minute, 1)
	cps := checkpoints(t, s.kcat, s.kafka.addr(), "fail")
	for shard, r := range firstLarge {
		if cp, ok := cps[shard]; ok && !seqLess(cp.Seq, r.Seq) {
			t.Errorf("fail after restart: checkpoint of %s at %s, at or past its first too-large record %s", shard, cp.Seq, r.Seq)
		}
	}
}

// mentionsLargeSize reports whether msg names the size of a too-large record: the sink's error
// states the record's encoded size (its data plus key, headers and batch overhead), so a number
// above sizesLarge and at most 1 MiB plus that overhead.
func mentionsLargeSize(msg string) bool {
	for f := range strings.FieldsFuncSeq(msg, func(r rune) bool { return r < '0' || r > '9' }) {
		var n int
		if _, err := fmt.Sscan(f, &n); err == nil && n > sizesLarge && n <= 1<<20+4096 {
			return true
		}
	}
	return false
}
