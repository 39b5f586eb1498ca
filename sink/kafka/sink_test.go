package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/internal/kcat"
	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
)

// TestMirrorManyShards writes 8 shards x 2,000 records through the sink, as 8 shard readers
// would, and reads the topic back with kcat: every record exactly once, with its key, value,
// timestamp and headers, each key in the partition the Java client would choose, and per key in
// shard order.
func TestMirrorManyShards(t *testing.T) {
	kc := kcat.Find(t)
	const (
		shards     = 8
		perShard   = 2000
		partitions = 6
		batch      = 100
	)
	c, cfg := newCluster(t, kfake.SeedTopics(partitions, "mirror.orders"))
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	s, err := NewSink(ctx, cfg, WithConnector("c1"), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	base := time.UnixMilli(1_760_000_000_000)
	a := newAcks()
	var wg sync.WaitGroup
	for sh := range shards {
		wg.Go(func() {
			shard := fmt.Sprintf("shardId-%012d", sh)
			for start := 0; start < perShard; start += batch {
				recs := make([]runtime.Record, 0, batch)
				for i := start; i < start+batch; i++ {
					// 25 partition keys per shard, so each key has many records in order.
					recs = append(recs, makeRecord("orders", shard, fmt.Sprintf("pk-%d-%d", sh, i%25), i, base))
				}
				if err := s.Write(ctx, recs, a.ack); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(ctx, t, shards*perShard)
	for id, n := range a.count {
		if n != 1 || a.errs[id] != nil {
			t.Fatalf("record %s acked %d times, err %v", id, n, a.errs[id])
		}
	}
	if got := metricValue(s.m.records); got != shards*perShard {
		t.Errorf("records produced metric = %v", got)
	}
	if got := metricValue(s.m.inflight); got != 0 {
		t.Errorf("inflight metric = %v after flush", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"shardbridge_kafka_records_produced_total", "shardbridge_kafka_bytes_produced_total",
		"shardbridge_kafka_produce_latency_seconds", "shardbridge_kafka_inflight_records", "shardbridge_kafka_dead_letters_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}

	msgs, err := kc.Consume(ctx, c.ListenAddrs()[0], "mirror.orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != shards*perShard {
		t.Fatalf("kcat read %d messages, want %d", len(msgs), shards*perShard)
	}
	seen := map[string]bool{}
	lastSeq := map[string]int{} // key -> last sequence seen, per partition offset order
	lastOff := map[string]int64{}
	for _, m := range msgs {
		hdr := map[string]string{}
		for _, h := range m.Headers {
			hdr[h.Key] = h.Value
		}
		shard, seqStr := hdr["kinesis.shard_id"], hdr["kinesis.sequence_number"]
		seq, err := strconv.Atoi(seqStr)
		if err != nil || hdr["kinesis.stream"] != "orders" || len(m.Headers) != 3 {
			t.Fatalf("bad headers %+v", m.Headers)
		}
		id := shard + "/" + seqStr
		if seen[id] {
			t.Fatalf("record %s read twice", id)
		}
		seen[id] = true
		var sh int
		fmt.Sscanf(shard, "shardId-%d", &sh)
		want := makeRecord("orders", shard, fmt.Sprintf("pk-%d-%d", sh, seq%25), seq, base)
		if m.Key == nil || *m.Key != string(want.Key) || m.Value == nil || *m.Value != string(want.Value) {
			t.Fatalf("record %s: key %v value %v, want %q %q", id, m.Key, m.Value, want.Key, want.Value)
		}
		if !m.Time().Equal(want.Timestamp) {
			t.Fatalf("record %s: timestamp %v, want %v", id, m.Time(), want.Timestamp)
		}
		if p := javaPartition(want.Key, partitions); int32(p) != m.Partition {
			t.Fatalf("key %q in partition %d, Java partitioner gives %d", want.Key, m.Partition, p)
		}
		k := string(want.Key)
		if prev, ok := lastSeq[k]; ok && (seq <= prev || m.Offset <= lastOff[k]) {
			t.Fatalf("key %q: sequence %d at offset %d after %d at offset %d", k, seq, m.Offset, prev, lastOff[k])
		}
		// kcat prints each partition in offset order; a key lives in one partition.
		lastSeq[k], lastOff[k] = seq, m.Offset
	}
}

// TestProduceErrorsOnOnePartitionAreRetried fails produce requests to one partition a few times
// with a retriable error: franz-go retries them, every record is acked once without error and
// written once.
func TestProduceErrorsOnOnePartitionAreRetried(t *testing.T) {
	kc := kcat.Find(t)
	c, cfg := newCluster(t, kfake.SeedTopics(3, "mirror.s"))
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "mirror.s", Partitions: []int32{1},
		Err: kerr.NotEnoughReplicas, Count: 3})

	a := newAcks()
	var recs []runtime.Record
	for i := range 60 {
		recs = append(recs, makeRecord("s", "shard-0", keyFor("k", i%3, 3), i, time.UnixMilli(1_000_000)))
	}
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(ctx, t, len(recs))
	if h.Hits() != 3 {
		t.Errorf("fault answered %d requests, want 3", h.Hits())
	}
	for i := range recs {
		if err, n := a.get(recID(&recs[i])); err != nil || n != 1 {
			t.Errorf("record %d: acked %d times, err %v", i, n, err)
		}
	}
	msgs, err := kc.Consume(ctx, c.ListenAddrs()[0], "mirror.s")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(recs) {
		t.Errorf("read %d records, want %d (no duplicates, none lost)", len(msgs), len(recs))
	}
}

// TestRecordExhaustingRetriesFailsAlone keeps one partition failing past delivery_timeout: its
// records are acked with a retryable error, and records of the other partitions are acked
// successfully and written exactly once.
func TestRecordExhaustingRetriesFailsAlone(t *testing.T) {
	kc := kcat.Find(t)
	c, cfg := newCluster(t, kfake.SeedTopics(3, "mirror.s"))
	cfg.RequestTimeout = config.Duration(300 * time.Millisecond)
	cfg.DeliveryTimeout = config.Duration(time.Second)
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "mirror.s", Partitions: []int32{2},
		Err: kerr.NotEnoughReplicas, Count: -1})

	a := newAcks()
	var recs []runtime.Record
	for i := range 30 {
		recs = append(recs, makeRecord("s", "shard-0", keyFor("k", i%3, 3), i, time.UnixMilli(1_000_000)))
	}
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatal(err)
	}
	a.wait(ctx, t, len(recs))
	h.Remove()
	for i := range recs {
		err, n := a.get(recID(&recs[i]))
		if n != 1 {
			t.Errorf("record %d acked %d times", i, n)
		}
		if i%3 == 2 {
			if err == nil {
				t.Errorf("record %d on the failing partition acked without error", i)
			} else if !Retryable(err) {
				t.Errorf("record %d: error %v not classified retryable", i, err)
			}
		} else if err != nil {
			t.Errorf("record %d on a healthy partition failed: %v", i, err)
		}
	}
	msgs, err := kc.Consume(ctx, c.ListenAddrs()[0], "mirror.s")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range msgs {
		if m.Partition == 2 {
			t.Errorf("record in the failing partition: %+v", m)
		}
		got[*m.Value]++
	}
	for i := range recs {
		if i%3 == 2 {
			continue
		}
		if n := got[string(recs[i].Value)]; n != 1 {
			t.Errorf("record %d written %d times, want once", i, n)
		}
	}
}

// TestTooLargeRecord: a record over max_message_bytes is acked with *RecordTooLargeError and not
// produced; a record exactly at the limit is produced, as are its neighbours.
func TestTooLargeRecord(t *testing.T) {
	kc := kcat.Find(t)
	c, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s"))
	cfg.MaxMessageBytes = 1024
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	s, err := NewSink(ctx, cfg, WithRegisterer(reg), WithConnector("c1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	base := time.UnixMilli(1_000_000)
	small := makeRecord("s", "shard-0", "k", 1, base)
	atLimit := makeRecord("s", "shard-0", "k", 2, base)
	for recordBatchSize(&atLimit) < 1024 {
		atLimit.Value = append(atLimit.Value, 'x')
	}
	big := makeRecord("s", "shard-0", "k", 3, base)
	big.Value = make([]byte, 1024)
	after := makeRecord("s", "shard-0", "k", 4, base)
	recs := []runtime.Record{small, atLimit, big, after}

	a := newAcks()
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(ctx, t, len(recs))
	err, _ = a.get(recID(&recs[2]))
	var tl *RecordTooLargeError
	if !errors.As(err, &tl) {
		t.Fatalf("big record acked with %v, want *RecordTooLargeError", err)
	}
	wantSize := recordBatchSize(&recs[2])
	if tl.Size != wantSize || tl.Limit != 1024 {
		t.Errorf("error = %+v, want size %d limit 1024", tl, wantSize)
	}
	msg := err.Error()
	for _, want := range []string{strconv.FormatInt(wantSize, 10), "1024", "sink.kafka.max_message_bytes", "errors.policy dlq", "dlq_max_message_bytes", "skip"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not name %q", msg, want)
		}
	}
	if Retryable(err) {
		t.Error("too-large error classified retryable")
	}
	for _, i := range []int{0, 1, 3} {
		if err, n := a.get(recID(&recs[i])); err != nil || n != 1 {
			t.Errorf("record %d: acked %d times with %v", i, n, err)
		}
	}
	if got := metricValue(s.m.errors.WithLabelValues(classTooLarge)); got != 1 {
		t.Errorf("too_large errors metric = %v", got)
	}
	msgs, err := kc.Consume(ctx, c.ListenAddrs()[0], "mirror.s")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("read %d records, want 3", len(msgs))
	}
	for i, want := range []runtime.Record{small, atLimit, after} {
		if *msgs[i].Value != string(want.Value) {
			t.Errorf("message %d = %.40q, want %.40q", i, *msgs[i].Value, want.Value)
		}
	}
}

// TestWriteDeadLetter checks the dead letter's content; that a record too large for the mirror
// topic still fits its dead letter, up to dlq_max_message_bytes; and that a dead letter over that
// limit is refused rather than changed.
func TestWriteDeadLetter(t *testing.T) {
	kc := kcat.Find(t)
	c, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s", "dlq"))
	cfg.MaxMessageBytes = 2048
	cfg.DLQMaxMessageBytes = 8192
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg, WithDeadLetterTopic("dlq"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	rec := makeRecord("s", "shard-7", "pk", 42, time.UnixMilli(1_234_567))
	rec.Position.SubSequence = 3
	if err := s.WriteDeadLetter(ctx, &rec, errors.New("boom")); err != nil {
		t.Fatal(err)
	}
	// Over max_message_bytes, within dlq_max_message_bytes: dead-lettered whole.
	big := makeRecord("s", "shard-7", "pk", 43, time.UnixMilli(1_234_567))
	big.Value = bytes.Repeat([]byte("b"), 4096)
	if err := s.WriteDeadLetter(ctx, &big, &RecordTooLargeError{Size: 4200, Limit: 2048}); err != nil {
		t.Fatalf("dead letter of a record over max_message_bytes but within dlq_max_message_bytes: %v", err)
	}
	huge := makeRecord("s", "shard-7", "pk", 44, time.UnixMilli(1_234_567))
	huge.Value = make([]byte, 16384)
	err = s.WriteDeadLetter(ctx, &huge, &RecordTooLargeError{Size: 16500, Limit: 2048})
	var tl *RecordTooLargeError
	if !errors.As(err, &tl) || tl.Limit != 8192 || !strings.Contains(err.Error(), "sink.kafka.dlq_max_message_bytes") {
		t.Errorf("too-large dead letter: %v, want *RecordTooLargeError naming dlq_max_message_bytes", err)
	}
	msgs, err := kc.Consume(ctx, c.ListenAddrs()[0], "dlq")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("dlq holds %d records, want 2", len(msgs))
	}
	if *msgs[1].Value != string(big.Value) {
		t.Errorf("the large dead letter's value changed: %d bytes", len(*msgs[1].Value))
	}
	m := msgs[0]
	if *m.Key != "pk" || *m.Value != string(rec.Value) || !m.Time().Equal(rec.Timestamp) {
		t.Errorf("dead letter %+v", m)
	}
	want := []kcat.Header{
		{Key: "kinesis.stream", Value: "s"},
		{Key: "kinesis.shard_id", Value: "shard-7"},
		{Key: "kinesis.sequence_number", Value: fmt.Sprintf("%020d", 42)},
		{Key: HeaderError, Value: "boom"},
		{Key: HeaderOriginalTopic, Value: "mirror.s"},
		{Key: HeaderStream, Value: "s"},
		{Key: HeaderShardID, Value: "shard-7"},
		{Key: HeaderSequenceNumber, Value: fmt.Sprintf("%020d", 42)},
		{Key: HeaderSubSequenceNumber, Value: "3"},
	}
	if fmt.Sprint(m.Headers) != fmt.Sprint(want) {
		t.Errorf("headers\n got %v\nwant %v", m.Headers, want)
	}
	if got := metricValue(s.m.dlq); got != 2 {
		t.Errorf("dead letters metric = %v, want 2", got)
	}
}

// TestUnreachableBroker: a closed port fails at once; a broker that accepts connections but never
// answers is reported once request_timeout passes. Both errors name the address.
func TestUnreachableBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var conns sync.WaitGroup
	var held []net.Conn
	var mu sync.Mutex
	conns.Go(func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accept and never answer
			mu.Unlock()
		}
	})
	defer func() {
		silent.Close()
		conns.Wait()
		for _, c := range held {
			c.Close()
		}
	}()

	for _, addr := range []string{closedAddr, silent.Addr().String()} {
		const timeout = 500 * time.Millisecond
		cfg := Config{Brokers: []string{addr}, Topic: "t", RequestTimeout: config.Duration(timeout)}
		start := time.Now()
		_, err := NewSink(context.Background(), cfg)
		elapsed := time.Since(start)
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("%s: NewSink error %v, want *UnreachableError", addr, err)
		}
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "request_timeout") {
			t.Errorf("error %q does not name the broker and the setting", err)
		}
		// Not a timing assertion of speed: a generous bound that only fails on a hang.
		if elapsed > timeout+5*time.Second {
			t.Errorf("%s: reported after %s, request_timeout is %s", addr, elapsed, timeout)
		}
		_, err = NewCheckpointStore(context.Background(), cfg, "checkpoints")
		if !errors.As(err, &ue) {
			t.Errorf("%s: NewCheckpointStore error %v, want *UnreachableError", addr, err)
		}
	}
}

// TestWriteAfterClose acks every record with ErrClosed.
func TestWriteAfterClose(t *testing.T) {
	_, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s"))
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	a := newAcks()
	recs := []runtime.Record{makeRecord("s", "sh", "k", 1, time.Now())}
	if err := s.Write(ctx, recs, a.ack); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}
	if err, n := a.get(recID(&recs[0])); n != 1 || !errors.Is(err, ErrClosed) {
		t.Errorf("ack after Close: %d, %v", n, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseFailsUnackedRecords: records held by a broker that does not answer are acked with an
// error when the sink is closed.
func TestCloseFailsUnackedRecords(t *testing.T) {
	c, cfg := newCluster(t, kfake.SeedTopics(1, "mirror.s"))
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	defer close(release)
	seen := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case seen <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	a := newAcks()
	recs := []runtime.Record{makeRecord("s", "sh", "k", 1, time.Now()), makeRecord("s", "sh", "k", 2, time.Now())}
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatal(err)
	}
	<-seen
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err, n := a.get(recID(&recs[i])); n != 1 || err == nil {
			t.Errorf("record %d after Close: acked %d times, err %v", i, n, err)
		}
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&RecordTooLargeError{Size: 2, Limit: 1}, false},
		{fmt.Errorf("x: %w", ErrClosed), false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), true},
		{kerr.NotEnoughReplicas, true},
		{kerr.TopicAuthorizationFailed, false},
		{kerr.InvalidTopicException, false},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, true},
		{errors.New("something else"), false},
	} {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestTopicTemplate(t *testing.T) {
	tm, err := parseTopicTemplate("k.{stream}.{shard_id}")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tm.topic("orders", "shardId-000000000001"); err != nil || got != "k.orders.shardId-000000000001" {
		t.Errorf("topic = %q, %v", got, err)
	}
	if _, err := tm.topic("bad/stream", "s"); err == nil {
		t.Error("illegal rendered topic accepted")
	}
	fixed, err := parseTopicTemplate("plain")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := fixed.topic("x", "y"); got != "plain" {
		t.Errorf("fixed topic = %q", got)
	}
}
