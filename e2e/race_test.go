package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// TestConsumerRegistrationRace: two runtimes start at the same moment for the same stream with
// the same efo.consumer_name, and no consumer is registered yet. Both register; the loser's
// ResourceInUse on register counts as success, so both come up RUNNING and the stream has one
// consumer.
//
// The two runtimes run different connectors (a and b) writing to different topics: two
// processes of one connector would both write every record to one topic, which is a
// misconfiguration, not a bound. Sharing the consumer, they take each other's subscriptions over
// (ResourceInUse on the stream that lost), and each resubscribes from its own last record, so
// each topic is checked on its own: b, which runs to the end, holds every record exactly once;
// a, stopped gracefully midway, holds a prefix of each shard with no duplicates.
func TestConsumerRegistrationRace(t *testing.T) {
	s := newScenario(t, 4, 4, runtimeConfig{Connector: "a", Topic: "a", ConsumerName: "shared"},
		kinesistest.WithConsumerActivationDelay(500*time.Millisecond), kinesistest.WithTakeoverAfter(2*time.Second),
		// A lifetime well above the 5 s a reader waits after ResourceInUse: with both at 5 s the
		// two runtimes' resubscriptions lock in phase and one of them never gets a turn (an
		// artifact of the short test lifetime; real subscriptions live 5 minutes).
		kinesistest.WithSubscriptionLifetime(time.Minute))
	// Both runtimes' first describe finds no consumer, so both register and one of them gets
	// ResourceInUse: the race happens every run, not only when the timing falls that way.
	if err := s.srv.Inject(kinesistest.Fault{Op: "DescribeStreamConsumer", Kind: kinesistest.HTTPError("ResourceNotFoundException"), Count: 2}); err != nil {
		t.Fatal(err)
	}
	cfgB := s.cfg
	cfgB.Connector, cfgB.Topic = "b", "b"
	pathB := writeConfig(t, cfgB)
	createTopic(t, s.kafka.addr(), "b", 4)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := s.writer.put(ctx, 1000, 0); err != nil {
		t.Fatal(err)
	}
	a := launchRuntime(t, "a", s.path)
	b := launchRuntime(t, "b", pathB)
	a.waitAPI()
	b.waitAPI()
	a.waitState("a", "RUNNING", 30*time.Second)
	b.waitState("b", "RUNNING", 30*time.Second)
	// RUNNING comes before the source has its consumer; the log says when it is active.
	a.waitLog("kinesis: EFO consumer active", 30*time.Second)
	b.waitLog("kinesis: EFO consumer active", 30*time.Second)
	a.waitState("a", "RUNNING", time.Second)
	b.waitState("b", "RUNNING", time.Second)

	out, err := s.srv.Client().ListStreamConsumers(ctx, &awskinesis.ListStreamConsumersInput{
		StreamARN: aws.String("arn:aws:kinesis:us-east-1:123456789012:stream/" + s.cfg.Stream)})
	if err != nil {
		t.Fatalf("list consumers: %v", err)
	}
	if len(out.Consumers) != 1 || aws.ToString(out.Consumers[0].ConsumerName) != "shared" {
		t.Fatalf("consumers after the race: %+v, want exactly one named shared", out.Consumers)
	}
	if n := s.srv.Calls("RegisterStreamConsumer"); n != 2 {
		t.Errorf("RegisterStreamConsumer called %d times, want 2 (one per runtime)", n)
	}

	wait := background(func() error { return s.writer.put(ctx, 11000, 1000) })
	a.waitMetric("shardbridge_records_acked_total", 1500, time.Minute)
	a.terminate(time.Minute)
	if n := s.writer.written.Load(); n >= 12000 {
		t.Fatalf("the writer finished (%d records) before a stopped: not mid-stream", n)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := s.kinesisTruth()
	sb := *s
	sb.cfg = cfgB
	assertExact(t, sb.finish(b, want))

	repA := check(consume(t, s.kcat, s.kafka.addr(), "a"), want)
	t.Logf("a (stopped midway): %s", repA)
	if len(repA.Duplicates) > 0 || len(repA.Problems) > 0 {
		t.Errorf("a: %d duplicates, problems %v", len(repA.Duplicates), repA.Problems)
	}
	// What a holds is a prefix of every shard: no record missing before one a holds.
	missing := map[string]bool{}
	for _, r := range repA.Missing {
		missing[r.Shard+"/"+r.Seq] = true
	}
	last := map[string]string{}
	for _, r := range want {
		if !missing[r.Shard+"/"+r.Seq] && seqLess(last[r.Shard], r.Seq) {
			last[r.Shard] = r.Seq
		}
	}
	for _, r := range repA.Missing {
		if l, ok := last[r.Shard]; ok && seqLess(r.Seq, l) {
			t.Errorf("a: %s/%s missing although a later record of the shard (%s) is there", r.Shard, r.Seq, l)
		}
	}
}

func createTopic(t testing.TB, broker, topic string, partitions int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// setTopicConfig sets topic-level configs such as max.message.bytes on an existing topic.
func setTopicConfig(t testing.TB, broker, topic string, configs map[string]string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var alter []kadm.AlterConfig
	for k, v := range configs {
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	rs, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, alter, topic)
	if err == nil {
		for _, r := range rs {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		t.Fatalf("set configs of topic %s: %v", topic, err)
	}
}
