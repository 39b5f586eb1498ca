package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
)

// TestTopicSetPreparesOnce: concurrent first calls for one topic share one prepare and its
// result; a prepared topic is not prepared again; a failure is shared by those waiting but not
// remembered; a waiter whose preparer gave up (its context ended) prepares the topic itself.
func TestTopicSetPreparesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan error)
		ts := newTopicSet(func(ctx context.Context, topic string) error {
			calls.Add(1)
			select {
			case err := <-release:
				return err
			case <-ctx.Done():
				return fmt.Errorf("prepare %s: %w", topic, ctx.Err())
			}
		})
		ctx := context.Background()
		const n = 8
		start := func(ctx context.Context, topic string, errs chan<- error) {
			go func() { errs <- ts.ensure(ctx, topic) }()
		}

		// n first calls: one prepare, n-1 waiting for it.
		errs := make(chan error, n)
		for range n {
			start(ctx, "t1", errs)
		}
		synctest.Wait()
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d concurrent first calls ran %d prepares; want 1", n, got)
		}
		boom := errors.New("boom")
		release <- boom
		for range n {
			if err := <-errs; !errors.Is(err, boom) {
				t.Errorf("ensure = %v; want the prepare's error", err)
			}
		}
		// The failure is not remembered: the next call prepares again, and its success is.
		start(ctx, "t1", errs)
		synctest.Wait()
		if got := calls.Load(); got != 2 {
			t.Fatalf("after a failed prepare the next call ran %d prepares in all; want 2", got)
		}
		release <- nil
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := ts.ensure(ctx, "t1"); err != nil {
				t.Fatal(err)
			}
		}
		if got := calls.Load(); got != 2 {
			t.Fatalf("a prepared topic was prepared again: %d prepares", got)
		}

		// The preparer's context ends while another caller waits: the waiter prepares it.
		giveUp, cancel := context.WithCancel(ctx)
		first, second := make(chan error, 1), make(chan error, 1)
		start(giveUp, "t2", first)
		synctest.Wait()
		start(ctx, "t2", second)
		synctest.Wait()
		if got := calls.Load(); got != 3 {
			t.Fatalf("prepares = %d; want 3", got)
		}
		cancel()
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Errorf("canceled preparer: ensure = %v", err)
		}
		synctest.Wait()
		if got := calls.Load(); got != 4 {
			t.Fatalf("the waiter did not take over: %d prepares; want 4", got)
		}
		release <- nil
		if err := <-second; err != nil {
			t.Errorf("waiter that took over: ensure = %v", err)
		}

		// A waiter whose own context ends stops waiting; the prepare goes on.
		waitCtx, cancelWait := context.WithCancel(ctx)
		start(ctx, "t3", first)
		synctest.Wait()
		start(waitCtx, "t3", second)
		synctest.Wait()
		cancelWait()
		if err := <-second; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "t3") {
			t.Errorf("canceled waiter: ensure = %v", err)
		}
		release <- nil
		if err := <-first; err != nil {
			t.Errorf("preparer: ensure = %v", err)
		}
		if got := calls.Load(); got != 5 {
			t.Errorf("prepares = %d; want 5", got)
		}
	})
}

// observeCreates counts the topics in CreateTopics requests the cluster answers.
func observeCreates(c *kfake.Cluster) *kfake.FaultHandle {
	return c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.CreateTopics}, Observe: true, Count: -1})
}

// topicLayout returns a topic's partition count, the replica count of its partitions, and its
// configs as the cluster describes them.
func topicLayout(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) (int, int, map[string]string) {
	t.Helper()
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	td, ok := tds[topic]
	if !ok || td.Err != nil {
		t.Fatalf("topic %s: %v (exists %v)", topic, td.Err, ok)
	}
	rf := -1
	for _, p := range td.Partitions {
		if rf != -1 && len(p.Replicas) != rf {
			t.Fatalf("topic %s: partitions with %d and %d replicas", topic, rf, len(p.Replicas))
		}
		rf = len(p.Replicas)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs of %s: %v %v", topic, err, rc.Err)
	}
	configs := map[string]string{}
	for _, c := range rc.Configs {
		if c.Value != nil {
			configs[c.Key] = *c.Value
		}
	}
	return len(td.Partitions), rf, configs
}

// endOffsets sums the end offsets of a topic's partitions: the records it holds.
func endOffsets(t *testing.T, ctx context.Context, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// writeAll writes n records of stream/shard through s and returns the outcome of each.
func writeAll(t *testing.T, ctx context.Context, s *Sink, a *acks, stream, shard string, n int) {
	t.Helper()
	base := time.UnixMilli(1_760_000_000_000)
	for start := 0; start < n; start += 50 {
		var recs []runtime.Record
		for i := start; i < min(start+50, n); i++ {
			recs = append(recs, makeRecord(stream, shard, fmt.Sprintf("k%d", i%7), i, base))
		}
		if err := s.Write(ctx, recs, a.ack); err != nil {
			t.Errorf("Write: %v", err)
			return
		}
	}
}

func allAckedOK(t *testing.T, a *acks, n int) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n != n {
		t.Fatalf("%d acks, want %d", a.n, n)
	}
	for id, err := range a.errs {
		if err != nil || a.count[id] != 1 {
			t.Fatalf("record %s: acked %d times, last with %v", id, a.count[id], err)
		}
	}
}

// TestMissingFixedTopicCreatedWithDefaults: with the default settings a fixed topic that does not
// exist is created at start with the broker's partition count and replication factor, and every
// record written to it is acknowledged and stored. A dead-letter topic that does not exist is
// created too, with max.message.bytes = dlq_max_message_bytes, so a dead letter larger than the
// broker's default message size is accepted.
func TestMissingFixedTopicCreatedWithDefaults(t *testing.T) {
	c, cfg := newCluster(t, kfake.DefaultNumPartitions(4))
	cfg.Topic = "orders"
	creates := observeCreates(c)
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	s, err := NewSink(ctx, cfg, WithRegisterer(reg), WithConnector("c1"), WithDeadLetterTopic("orders-dlq"), fastRetries)
	if err != nil {
		t.Fatalf("NewSink with a missing topic: %v", err)
	}
	defer s.Close(context.Background())

	adm := kadm.NewClient(mustClient(t, c))
	parts, rf, _ := topicLayout(t, ctx, adm, "orders")
	if parts != 4 || rf != 1 {
		t.Errorf("created orders with %d partitions x %d replicas; want the broker's defaults, 4 x 1", parts, rf)
	}
	_, _, dlqConfigs := topicLayout(t, ctx, adm, "orders-dlq")
	if got := dlqConfigs["max.message.bytes"]; got != fmt.Sprint(DefaultDLQMaxMessageBytes) {
		t.Errorf("created dead-letter topic has max.message.bytes %q; want dlq_max_message_bytes %d", got, DefaultDLQMaxMessageBytes)
	}

	const n = 500
	a := newAcks()
	writeAll(t, ctx, s, a, "orders", "shardId-0", n)
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	a.wait(ctx, t, n)
	allAckedOK(t, a, n)
	if got := endOffsets(t, ctx, adm, "orders"); got != n {
		t.Errorf("orders holds %d records; want %d", got, n)
	}

	// A 2MiB dead letter (incompressible, so the batch stays 2MiB) fits the created topic,
	// whose limit is dlq_max_message_bytes rather than the broker's 1MiB default.
	big := makeRecord("orders", "shardId-0", "big", n, time.Now())
	big.Value = make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{1}).Read(big.Value)
	if err := s.WriteDeadLetter(ctx, &big, &RecordTooLargeError{Size: 2 << 20, Limit: 1 << 20}); err != nil {
		t.Errorf("2MiB dead letter to the created dead-letter topic: %v", err)
	}

	if got := creates.Hits(); got != 2 {
		t.Errorf("%d topics in CreateTopics requests; want 2 (orders and orders-dlq, once each)", got)
	}
	if got := metricValue(s.m.created); got != 2 {
		t.Errorf("shardbridge_kafka_topics_created_total = %v; want 2", got)
	}
}

// TestMissingTemplatedTopicsCreated: topics rendered from {stream} and {shard_id} are created
// before their first record, with the configured partitions, replication factor and configs,
// once each although several shards write to a new topic at the same moment.
func TestMissingTemplatedTopicsCreated(t *testing.T) {
	for _, tmpl := range []string{"mirror.{stream}", "mirror.{shard_id}"} {
		t.Run(tmpl, func(t *testing.T) {
			c, cfg := newCluster(t)
			cfg.Topic = tmpl
			cfg.TopicCreation = TopicCreationConfig{Partitions: ptr(3), ReplicationFactor: ptr(1),
				Configs: map[string]string{"retention.ms": "604800000", "cleanup.policy": "delete"}}
			creates := observeCreates(c)
			ctx := testCtx(t)
			s, err := NewSink(ctx, cfg, WithConnector("c1"), WithRegisterer(prometheus.NewRegistry()), fastRetries)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			if got := creates.Hits(); got != 0 {
				t.Fatalf("NewSink created %d topics for a template", got)
			}

			// Two streams of four shards each, every shard in its own goroutine, all at once.
			const perShard = 200
			streams, shards := []string{"a", "b"}, []string{"shardId-0", "shardId-1", "shardId-2", "shardId-3"}
			a := newAcks()
			var wg sync.WaitGroup
			gate := make(chan struct{})
			for _, st := range streams {
				for _, sh := range shards {
					wg.Go(func() {
						<-gate
						writeAll(t, ctx, s, a, st, st+"-"+sh, perShard)
					})
				}
			}
			close(gate)
			wg.Wait()
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			total := len(streams) * len(shards) * perShard
			a.wait(ctx, t, total)
			allAckedOK(t, a, total)

			var want []string
			for _, st := range streams {
				if tmpl == "mirror.{stream}" {
					want = append(want, "mirror."+st)
					continue
				}
				for _, sh := range shards {
					want = append(want, "mirror."+st+"-"+sh)
				}
			}
			adm := kadm.NewClient(mustClient(t, c))
			var stored int64
			for _, topic := range want {
				parts, rf, configs := topicLayout(t, ctx, adm, topic)
				if parts != 3 || rf != 1 || configs["retention.ms"] != "604800000" || configs["cleanup.policy"] != "delete" {
					t.Errorf("created %s with %d partitions x %d replicas, retention.ms %q, cleanup.policy %q; want 3 x 1, 604800000, delete",
						topic, parts, rf, configs["retention.ms"], configs["cleanup.policy"])
				}
				stored += endOffsets(t, ctx, adm, topic)
			}
			if stored != int64(total) {
				t.Errorf("the topics hold %d records; want %d", stored, total)
			}
			if got := creates.Hits(); got != len(want) {
				t.Errorf("%d topics in CreateTopics requests; want %d, one per topic", got, len(want))
			}
			if got := metricValue(s.m.created); got != float64(len(want)) {
				t.Errorf("shardbridge_kafka_topics_created_total = %v; want %d", got, len(want))
			}
		})
	}
}

// TestTopicCreatedMeanwhileIsFine: a topic that looks missing but exists when the sink creates it
// (someone else created it in between: TOPIC_ALREADY_EXISTS) is used as it is.
func TestTopicCreatedMeanwhileIsFine(t *testing.T) {
	c, cfg := newCluster(t, kfake.SeedTopics(2, "orders"))
	cfg.Topic = "orders"
	// The sink's first look at the topic says it does not exist.
	look := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "orders", Err: kerr.UnknownTopicOrPartition})
	creates := observeCreates(c)
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg, WithConnector("c1"), WithRegisterer(prometheus.NewRegistry()), fastRetries)
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	defer s.Close(context.Background())
	if look.Hits() != 1 || creates.Hits() != 1 {
		t.Fatalf("looks answered missing %d, creates %d; want 1 and 1", look.Hits(), creates.Hits())
	}
	if got := metricValue(s.m.created); got != 0 {
		t.Errorf("shardbridge_kafka_topics_created_total = %v for a topic someone else created", got)
	}
	a := newAcks()
	writeAll(t, ctx, s, a, "orders", "shardId-0", 10)
	a.wait(ctx, t, 10)
	allAckedOK(t, a, 10)
}

// TestTopicCreationOffFailsFast: with topic_creation.enabled false, a missing fixed topic or
// dead-letter topic fails NewSink, and a record of a missing templated topic is acked with an
// error, at once (one metadata round trip, not franz-go's retries or the timeouts), naming the
// topic, the setting and the fix.
func TestTopicCreationOffFailsFast(t *testing.T) {
	c, cfg := newCluster(t, kfake.SeedTopics(1, "exists"))
	cfg.RequestTimeout = config.Duration(10 * time.Second)
	cfg.DeliveryTimeout = config.Duration(time.Minute)
	cfg.TopicCreation.Enabled = ptr(false)
	creates := observeCreates(c)
	ctx := testCtx(t)
	const quick = 2 * time.Second // against a request_timeout of 10s and a delivery_timeout of 1m

	check := func(what string, err error, topic, setting string, took time.Duration) {
		t.Helper()
		var te *TopicError
		if !errors.As(err, &te) || te.Topic != topic {
			t.Fatalf("%s: error %v; want a *TopicError for %s", what, err, topic)
		}
		for _, want := range []string{"kafka topic " + topic + " does not exist", "sink.kafka.topic_creation.enabled is false",
			"create the topic", "sink.kafka.topic_creation.enabled: true", setting} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", what, err, want)
			}
		}
		if Retryable(err) || errorClass(err) != classFatal {
			t.Errorf("%s: Retryable %v, class %s; want a fatal error", what, Retryable(err), errorClass(err))
		}
		if took > quick {
			t.Errorf("%s: took %s; want under %s", what, took, quick)
		}
	}

	cfg.Topic = "orders"
	begin := time.Now()
	_, err := NewSink(ctx, cfg)
	check("fixed topic", err, "orders", "sink.kafka.topic", time.Since(begin))

	cfg.Topic = "exists"
	begin = time.Now()
	_, err = NewSink(ctx, cfg, WithDeadLetterTopic("orders-dlq"))
	check("dead-letter topic", err, "orders-dlq", "errors.dlq_topic", time.Since(begin))

	cfg.Topic = "mirror.{stream}"
	s, err := NewSink(ctx, cfg, WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	a := newAcks()
	recs := []runtime.Record{makeRecord("orders", "shardId-0", "k", 1, time.Now()), makeRecord("orders", "shardId-0", "k", 2, time.Now())}
	begin = time.Now()
	if err := s.Write(ctx, recs, a.ack); err != nil {
		t.Fatalf("Write: %v", err)
	}
	a.wait(ctx, t, 2)
	took := time.Since(begin)
	for i := range recs {
		err, n := a.get(recID(&recs[i]))
		if n != 1 {
			t.Fatalf("record %d acked %d times", i, n)
		}
		check(fmt.Sprintf("templated topic, record %d", i), err, "mirror.orders", "sink.kafka.topic", took)
	}
	if got := creates.Hits(); got != 0 {
		t.Errorf("%d topics in CreateTopics requests with creation off", got)
	}
	if got := metricValue(s.m.errors.WithLabelValues(classFatal)); got != 2 {
		t.Errorf("produce_errors_total{class=fatal} = %v; want 2", got)
	}

	// A topic that exists is written to as before.
	cfg.Topic = "exists"
	if err := produceOne(t, cfg); err != nil {
		t.Errorf("existing topic with creation off: %v", err)
	}
}

// TestTopicCreationOffFailsConnector: under errors.policy fail, a record of a missing templated
// topic with creation off stops the connector with the sink's error, which names the topic and
// the setting, and no checkpoint is written past it.
func TestTopicCreationOffFailsConnector(t *testing.T) {
	c, cfg := newCluster(t, kfake.SeedTopics(1, "dlq"))
	cfg.TopicCreation.Enabled = ptr(false)
	ctx := testCtx(t)
	st, err := NewCheckpointStore(ctx, cfg, "cps", fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	p := &pipelineEnv{c: c, cfg: cfg, store: st}
	err = p.run(t, 30, runtime.PolicyFail, false)
	for _, want := range []string{"(errors.policy fail)", "kafka topic mirror.s does not exist and sink.kafka.topic_creation.enabled is false",
		"set sink.kafka.topic_creation.enabled: true"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("connector ended with %v; want an error saying %q", err, want)
		}
	}
	if m, ok := p.mark(t); ok {
		t.Errorf("checkpoint %+v written although no record was produced", m)
	}
}

// TestTopicCreationRefused: a cluster that refuses to create a topic (an ACL without CREATE, a
// creation policy, an impossible replication factor) gives an error naming the topic, the
// broker's refusal and what to do; it is not retryable.
func TestTopicCreationRefused(t *testing.T) {
	ctx := testCtx(t)
	check := func(what string, err error, topic string, code *kerr.Error, class string, says ...string) {
		t.Helper()
		var te *TopicError
		if !errors.As(err, &te) || te.Topic != topic || !errors.Is(err, code) {
			t.Fatalf("%s: error %v; want a *TopicError for %s wrapping %s", what, err, topic, code.Message)
		}
		for _, want := range append([]string{"kafka topic " + topic + " does not exist and creating it was refused", code.Message}, says...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not say %q", what, err, want)
			}
		}
		if Retryable(err) || errorClass(err) != class {
			t.Errorf("%s: Retryable %v, class %s; want not retryable, class %s", what, Retryable(err), errorClass(err), class)
		}
	}

	// A *TopicError is fatal whatever the broker's code under it: it is made only for answers that
	// need someone to act.
	if err := fmt.Errorf("wrapped: %w", &TopicError{Topic: "t", Err: kerr.RequestTimedOut}); Retryable(err) {
		t.Error("a *TopicError counts as retryable")
	}

	t.Run("acl", func(t *testing.T) {
		// The user may describe and write every topic, but create none.
		acls := []kfake.ACL{
			{Resource: kmsg.ACLResourceTypeTopic, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true},
			{Resource: kmsg.ACLResourceTypeTopic, Name: "*", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationWrite, Allow: true},
		}
		c, cfg := newCluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser(SASLPlain, "admin", "admin-pw"),
			kfake.User(SASLPlain, "svc", "svc-pw", acls...))
		cfg.SASL = SASLConfig{Mechanism: SASLPlain, Username: "svc", Password: "svc-pw"}
		cfg.Topic = "orders"
		creates := observeCreates(c)
		_, err := NewSink(ctx, cfg)
		check("no CREATE", err, "orders", kerr.TopicAuthorizationFailed, classAuth, "grant shardbridge's principal CREATE on topic orders")
		if creates.Hits() != 1 {
			t.Errorf("%d topics in CreateTopics requests; want 1", creates.Hits())
		}
		if strings.Contains(err.Error(), "svc-pw") {
			t.Error("the error shows the SASL password")
		}
	})

	t.Run("policy", func(t *testing.T) {
		c, cfg := newCluster(t)
		cfg.Topic = "mirror.{stream}"
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.CreateTopics}, Topic: "mirror.orders", Err: kerr.PolicyViolation, Count: -1})
		s, err := NewSink(ctx, cfg, WithRegisterer(prometheus.NewRegistry()))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		a := newAcks()
		rec := makeRecord("orders", "shardId-0", "k", 1, time.Now())
		if err := s.Write(ctx, []runtime.Record{rec}, a.ack); err != nil {
			t.Fatal(err)
		}
		a.wait(ctx, t, 1)
		err, _ = a.get(recID(&rec))
		check("policy violation", err, "mirror.orders", kerr.PolicyViolation, classFatal, "topic creation policy")
	})

	t.Run("replication factor", func(t *testing.T) {
		_, cfg := newCluster(t) // one broker
		cfg.Topic = "orders"
		cfg.TopicCreation.ReplicationFactor = ptr(3)
		_, err := NewSink(ctx, cfg)
		check("replication 3 on one broker", err, "orders", kerr.InvalidReplicationFactor, classFatal,
			"sink.kafka.topic_creation.replication_factor to at most the number of brokers")
	})
}

// TestCloseStopsTopicCreation: Close while a Write waits for its new topic to be created ends
// that wait: Write returns ErrClosed at once and acks each of its records with it.
func TestCloseStopsTopicCreation(t *testing.T) {
	c, cfg := newCluster(t)
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) }) // runs before the cluster's Close
	entered := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.CreateTopics), func(kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case entered <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-hold }) // the broker takes its time creating the topic
		return nil, nil, false
	})
	ctx := testCtx(t)
	s, err := NewSink(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := newAcks()
	recs := []runtime.Record{makeRecord("s", "shardId-0", "k", 1, time.Now()), makeRecord("s", "shardId-0", "k", 2, time.Now())}
	done := make(chan error, 1)
	go func() { done <- s.Write(ctx, recs, a.ack) }()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the sink never asked to create mirror.s")
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Write = %v; want ErrClosed", err)
	}
	for i := range recs {
		if err, n := a.get(recID(&recs[i])); n != 1 || !errors.Is(err, ErrClosed) {
			t.Errorf("record %d acked %d times, with %v; want once with ErrClosed", i, n, err)
		}
	}
}
