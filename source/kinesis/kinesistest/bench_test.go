package kinesistest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// BenchmarkPutRecords measures PutRecords with the real SDK client over
// HTTPS/HTTP/2: 500 records of 100 bytes per call, 4 calls in flight, into
// a 4-shard stream. One iteration is one call.
func BenchmarkPutRecords(b *testing.B) {
	srv := newServer(b, WithStream("s", 4))
	c := srv.Client()
	ctx := context.Background()
	data := make([]byte, 100)
	batch := make([]types.PutRecordsRequestEntry, 500)
	for i := range batch {
		batch[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", i)), Data: data}
	}
	b.SetParallelism(2) // 2 × GOMAXPROCS goroutines: 4 calls in flight on 2 cores
	b.ResetTimer()
	start := time.Now()
	var calls atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: batch})
			if err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
				b.Errorf("put records: %v", err)
				return
			}
			calls.Add(1)
		}
	})
	b.ReportMetric(float64(calls.Load()*500)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkSubscribeToShard measures one SubscribeToShard stream read with
// the real SDK client, from a shard pre-filled with b.N records of 100
// bytes. One iteration is one record delivered.
func BenchmarkSubscribeToShard(b *testing.B) {
	srv := newServer(b, WithStream("s", 1), WithConsumerActivationDelay(0))
	c := srv.Client()
	ctx := context.Background()
	carn := registerActive(b, ctx, srv, c, streamARN(b, ctx, c, "s"), "bench")
	fill(srv, "s", shard0, b.N, 100)

	b.ResetTimer()
	start := time.Now()
	es := subscribe(b, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	got := 0
	for got < b.N {
		ev, ok := nextEvent(b, es)
		if !ok {
			b.Fatalf("stream ended after %d of %d records: %v", got, b.N, es.Err())
		}
		got += len(ev.Records)
	}
	b.ReportMetric(float64(got)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkSubscribeToShardLive measures records put with PutRecords while
// a subscription delivers them: the end-to-end path a mirror sees.
func BenchmarkSubscribeToShardLive(b *testing.B) {
	srv := newServer(b, WithStream("s", 1), WithConsumerActivationDelay(0))
	c := srv.Client()
	ctx := context.Background()
	carn := registerActive(b, ctx, srv, c, streamARN(b, ctx, c, "s"), "bench")
	es := subscribe(b, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	data := make([]byte, 100)
	batch := make([]types.PutRecordsRequestEntry, 500)
	for i := range batch {
		batch[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", i)), Data: data}
	}

	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for put := 0; put < b.N; put += len(batch) {
			n := min(len(batch), b.N-put)
			if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: batch[:n]}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	got := 0
	for got < b.N {
		ev, ok := nextEvent(b, es)
		if !ok {
			b.Fatalf("stream ended after %d of %d records: %v", got, b.N, es.Err())
		}
		got += len(ev.Records)
	}
	if err := <-errc; err != nil {
		b.Fatalf("put records: %v", err)
	}
	b.ReportMetric(float64(got)/time.Since(start).Seconds(), "records/s")
}

// fill appends n records of size bytes to a shard directly, so benchmarks
// can set up large shards quickly.
func fill(srv *Server, stream, shardID string, n, size int) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	sh := srv.streams[stream].shard(shardID)
	now := srv.cfg.clock().UnixNano()
	data := make([]byte, size)
	for i := range n {
		srv.appendLocked(sh, &putEntry{Data: data, PartitionKey: fmt.Sprintf("key-%d", i)}, now)
	}
	sh.wakeLocked()
}
