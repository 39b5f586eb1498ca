package group

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Setup creates a missing coordination topic and learns its partition count from the broker at
// once. It must not read the count from the client's metadata cache, which still holds the
// "no such topic" answer from before the creation for up to the client's metadata min age (5 s
// by default: every group's first worker started 5 s late). The client here caches for an hour,
// so a cached answer would never do.
func TestSetupLearnsTheCreatedTopicAtOnce(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := New(Options{Connector: "c", GroupID: "g", Topic: "_shardbridge_group.c", Partitions: 12, WorkerID: "w",
		SessionTimeout: 10 * time.Second, HeartbeatInterval: 3 * time.Second, RebalanceTimeout: time.Minute,
		Conn: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.MetadataMinAge(time.Hour), kgo.MetadataMaxAge(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Setup(ctx); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if n := g.partitions.Load(); n != 12 {
		t.Fatalf("Setup learned %d partitions, want 12", n)
	}
	// A second group of the same connector (another worker) finds the topic that exists.
	g2, err := New(Options{Connector: "c", GroupID: "g", Topic: "_shardbridge_group.c", Partitions: 64, WorkerID: "w2",
		SessionTimeout: 10 * time.Second, HeartbeatInterval: 3 * time.Second, RebalanceTimeout: time.Minute,
		Conn: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.MetadataMinAge(time.Hour), kgo.MetadataMaxAge(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Setup(ctx); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if n := g2.partitions.Load(); n != 12 {
		t.Fatalf("the second worker learned %d partitions, want the topic's 12", n)
	}
}
