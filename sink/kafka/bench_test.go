package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shardbridge/shardbridge/runtime"
)

// BenchmarkSinkWrite measures records through the sink into an in-process kfake broker: 1 KiB
// random values, 100 records per Write, 16 keys over 6 partitions, waiting for every ack.
func BenchmarkSinkWrite(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "mirror.s"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	s, err := NewSink(ctx, Config{Brokers: c.ListenAddrs(), Topic: "mirror.{stream}"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)

	// A distinct random value per record, so that zstd cannot shrink a batch to nothing.
	const valueSize = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]runtime.Record, 100)
	for i := range batch {
		value := make([]byte, valueSize)
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		batch[i] = runtime.Record{
			Key: []byte(fmt.Sprintf("pk-%d", i%16)), Value: value, Timestamp: time.Now(),
			Stream: "s", Shard: "shardId-0", Position: runtime.Position{Sequence: fmt.Sprint(i)},
		}
	}
	ack := func(_ *runtime.Record, err error) {
		if err != nil {
			b.Error(err)
		}
	}
	b.SetBytes(int64(len(batch) * valueSize))
	b.ResetTimer()
	for b.Loop() {
		recs := make([]runtime.Record, len(batch))
		copy(recs, batch)
		if err := s.Write(ctx, recs, ack); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
}
