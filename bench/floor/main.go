// Command floor is the least code that mirrors a Kinesis stream into Kafka the way shardbridge
// does, so that shardbridge's cost can be compared with it (see BENCHMARKS.md). It uses the same
// aws-sdk-go-v2 SubscribeToShard decode (one goroutine and one subscription per shard,
// resubscribing at the continuation when a subscription ends) and the same franz-go producer
// settings as sink/kafka's defaults (idempotent, acks=all, zstd, 5ms linger, 10000 buffered
// records, 64 MiB buffered bytes, 1 MiB batches, the murmur2 key partitioner), and maps records
// the same way (key, value, arrival timestamp, the four kinesis.* headers).
//
// It has no pool, no tracker, no checkpoints, no retries beyond a plain resubscribe, no resharding
// and no error policy: it is a floor for CPU per record, not a usable mirror. It serves the
// number of records Kafka acknowledged as shardbridge_records_acked_total on /metrics, the one
// figure the bench command reads from it.
//
//	floor --endpoint https://127.0.0.1:PORT --stream S --brokers HOST:PORT --topic T \
//	      --consumer NAME --http-addr 127.0.0.1:PORT
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/twmb/franz-go/pkg/kgo"
)

type options struct {
	endpoint, stream, brokers, topic, consumer, httpAddr string
}

func main() {
	var o options
	flag.StringVar(&o.endpoint, "endpoint", "", "Kinesis endpoint URL (TLS is not verified)")
	flag.StringVar(&o.stream, "stream", "", "Kinesis stream name")
	flag.StringVar(&o.brokers, "brokers", "", "one Kafka seed broker, host:port")
	flag.StringVar(&o.topic, "topic", "", "Kafka topic")
	flag.StringVar(&o.consumer, "consumer", "floor", "EFO consumer name")
	flag.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:0", "address serving /metrics")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Printf("floor: %v", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	// The same franz-go settings as sink/kafka's defaults (client.go, config.go).
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.brokers),
		kgo.ClientID("shardbridge"),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(10000),
		kgo.MaxBufferedBytes(64<<20),
		kgo.ProducerBatchMaxBytes(1<<20+4),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
	)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	// The same HTTP/2 settings as source/kinesis's client at its defaults.
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ForceAttemptHTTP2 = true
		tr.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 256 << 10, MaxReceiveBufferPerConnection: 4<<20 - 1}
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the bench server's certificate is self-signed
	})
	kc := kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(o.endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("bench", "bench", ""),
		HTTPClient:   hc,
	})

	var acked atomic.Int64
	ln, err := net.Listen("tcp", o.httpAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.httpAddr, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "shardbridge_records_acked_total %d\n", acked.Load())
	})}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ln) }()
	defer srv.Close()

	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(o.stream)})
	if err != nil {
		return fmt.Errorf("describe stream: %w", err)
	}
	streamARN := aws.ToString(sum.StreamDescriptionSummary.StreamARN)
	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(o.consumer)})
	if err != nil {
		return fmt.Errorf("register consumer: %w", err)
	}
	consumerARN := aws.ToString(reg.Consumer.ConsumerARN)
	for {
		d, err := kc.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(consumerARN)})
		if err != nil {
			return fmt.Errorf("describe consumer: %w", err)
		}
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	shards, err := kc.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(o.stream)})
	if err != nil {
		return fmt.Errorf("list shards: %w", err)
	}
	for _, sh := range shards.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readShard(ctx, kc, cl, o, streamARN, consumerARN, aws.ToString(sh.ShardId), &acked)
		}()
	}
	<-ctx.Done()
	return nil
}

// readShard subscribes to one shard from its start and produces every record, resubscribing
// after the continuation sequence number whenever a subscription ends.
func readShard(ctx context.Context, kc *kinesis.Client, cl *kgo.Client, o options, streamARN, consumerARN, shard string, acked *atomic.Int64) {
	pos := &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	var failed atomic.Bool
	promise := func(_ *kgo.Record, err error) {
		if err == nil {
			acked.Add(1)
		} else if failed.CompareAndSwap(false, true) {
			log.Printf("floor: shard %s: produce: %v", shard, err) // once per shard
		}
	}
	for ctx.Err() == nil {
		out, err := kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{
			ConsumerARN: aws.String(consumerARN), ShardId: aws.String(shard), StartingPosition: pos,
		}, func(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) })
		if err != nil {
			log.Printf("floor: shard %s: subscribe: %v", shard, err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		stream := out.GetStream()
		for ev := range stream.Events() {
			e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !ok {
				continue
			}
			for i := range e.Value.Records {
				r := &e.Value.Records[i]
				cl.Produce(ctx, &kgo.Record{
					Topic:     o.topic,
					Key:       []byte(aws.ToString(r.PartitionKey)),
					Value:     r.Data,
					Timestamp: aws.ToTime(r.ApproximateArrivalTimestamp),
					Headers: []kgo.RecordHeader{
						{Key: "kinesis.stream", Value: []byte(o.stream)},
						{Key: "kinesis.stream_arn", Value: []byte(streamARN)},
						{Key: "kinesis.shard_id", Value: []byte(shard)},
						{Key: "kinesis.sequence_number", Value: []byte(aws.ToString(r.SequenceNumber))},
					},
				}, promise)
			}
			if e.Value.ContinuationSequenceNumber != nil {
				pos = &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: e.Value.ContinuationSequenceNumber}
			}
		}
		err = stream.Err()
		_ = stream.Close()
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Printf("floor: shard %s: subscription: %v", shard, err)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
