package kafka_test

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/sink/kafka"
)

// A sink produces records asynchronously; each record's ack reports Kafka's answer.
func ExampleNewSink() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "kinesis.orders"))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	ctx := context.Background()

	cfg := kafka.Config{Brokers: cluster.ListenAddrs(), Topic: "kinesis.{stream}"}
	sink, err := kafka.NewSink(ctx, cfg, kafka.WithConnector("orders"), kafka.WithRegisterer(prometheus.NewRegistry()))
	if err != nil {
		panic(err)
	}
	defer sink.Close(ctx)

	recs := []runtime.Record{{
		Key:       []byte("customer-42"),
		Value:     []byte(`{"order":1}`),
		Timestamp: time.Now(),
		Headers:   []runtime.Header{{Key: "kinesis.stream", Value: []byte("orders")}},
		Stream:    "orders",
		Shard:     "shardId-000000000000",
		Position:  runtime.Position{Sequence: "49590338271490256608559692538361571095921575989136588898"},
	}}
	acked := make(chan error, len(recs))
	// The ack runs on franz-go's promise goroutine: it must not block.
	if err := sink.Write(ctx, recs, func(_ *runtime.Record, err error) { acked <- err }); err != nil {
		panic(err)
	}
	if err := sink.Flush(ctx); err != nil {
		panic(err)
	}
	fmt.Println("ack error:", <-acked)
	// Output: ack error: <nil>
}

// A checkpoint store keeps each shard's mark in a compacted topic.
func ExampleNewCheckpointStore() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	ctx := context.Background()

	cfg := kafka.Config{Brokers: cluster.ListenAddrs()}
	store, err := kafka.NewCheckpointStore(ctx, cfg, "_shardbridge_checkpoints", kafka.WithConnector("orders"))
	if err != nil {
		panic(err)
	}
	defer store.Close(ctx)

	err = store.Commit(ctx, []runtime.Checkpoint{{
		Connector: "orders", Stream: "orders", Shard: "shardId-000000000000",
		Mark:  runtime.Mark{Position: runtime.Position{Sequence: "4959"}},
		Owner: runtime.Owner{ID: "worker-1", Epoch: 1},
	}})
	if err != nil {
		panic(err)
	}
	cps, err := store.Load(ctx, "orders", "orders")
	if err != nil {
		panic(err)
	}
	for _, cp := range cps {
		fmt.Println(cp.Shard, cp.Mark.Position, cp.Owner.Epoch)
	}
	// Output: shardId-000000000000 4959 1
}
