package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/shardbridge/shardbridge/internal/kcat"
)

// TestMissingTopicCreated: the mirror topic does not exist (nor does the checkpoint topic) and
// the config leaves sink.kafka.topic_creation and errors.policy at their defaults. The sink
// creates the topic at start, and every record arrives exactly once, in order.
func TestMissingTopicCreated(t *testing.T) {
	kc := kcat.Find(t)
	cfg := runtimeConfig{Stream: "orders", Topic: "orders-created"}.defaults()
	srv := newKinesis(t, cfg.Stream, 2)
	k := startKafka(t, 1) // no topic seeded
	cfg.Endpoint, cfg.Broker = srv.Endpoint(), k.addr()
	s := &scenario{t: t, kcat: kc, srv: srv, kafka: k, cfg: cfg, path: writeConfig(t, cfg),
		writer: newWriter(srv.Client(), cfg.Stream, 32)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.writer.put(ctx, 3000, 0); err != nil {
		t.Fatal(err)
	}

	p := startRuntime(t, "created", s.path)
	p.waitState(cfg.Connector, "RUNNING", 30*time.Second)
	if got := p.waitMetric("shardbridge_kafka_topics_created_total", 1, 30*time.Second, `connector="mirror"`); got != 1 {
		t.Errorf("shardbridge_kafka_topics_created_total = %g; want 1", got)
	}
	rep := s.finish(p, s.kinesisTruth())
	assertExact(t, rep)
}
