package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskinesis "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

const (
	benchStream = "bench"
	benchKeys   = 10000 // distinct partition keys, spread over every shard
	putBatch    = 500   // records per PutRecords, Kinesis' maximum
)

// kinesisPeer is the in-process Kinesis server holding the backlog, and how many records it holds.
type kinesisPeer struct {
	srv     *kinesistest.Server
	client  *awskinesis.Client
	size    int          // bytes per record value
	written atomic.Int64 // records put into the stream so far
	payload []byte       // random base64 text that values are cut from
}

func startKinesis(shards, size, eventBytes int) (*kinesisPeer, error) {
	srv, err := kinesistest.NewServer(kinesistest.WithStream(benchStream, shards), kinesistest.WithMaxEventBytes(eventBytes))
	if err != nil {
		return nil, fmt.Errorf("start kinesistest: %w", err)
	}
	raw := make([]byte, 3<<18)
	_, _ = rand.Read(raw)
	return &kinesisPeer{srv: srv, client: srv.Client(), size: size, payload: []byte(base64.StdEncoding.EncodeToString(raw))}, nil
}

func (k *kinesisPeer) Close() { _ = k.srv.Close() }

// value builds record i's value: its number, then random base64 text (which zstd shrinks to
// about 3/4, a fair stand-in for real payloads; a run of one letter would compress to nothing).
func (k *kinesisPeer) value(i int64) []byte {
	v := make([]byte, k.size)
	n := copy(v, strconv.AppendInt(nil, i, 10))
	off := int(i*7919) % (len(k.payload) - k.size)
	copy(v[n:], k.payload[off:])
	return v
}

// put writes n records as fast as the server takes them, with workers PutRecords calls in flight.
func (k *kinesisPeer) put(ctx context.Context, n int64, workers int) error {
	start := k.written.Load()
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for {
				from := next.Add(putBatch) - putBatch
				if from >= n {
					return nil
				}
				if err := k.putBatch(ctx, start+from, min(putBatch, n-from)); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	k.written.Add(n)
	return nil
}

func (k *kinesisPeer) putBatch(ctx context.Context, first, n int64) error {
	entries := make([]types.PutRecordsRequestEntry, n)
	for j := range entries {
		i := first + int64(j)
		entries[j] = types.PutRecordsRequestEntry{
			PartitionKey: aws.String("key-" + strconv.FormatInt(i%benchKeys, 10)),
			Data:         k.value(i),
		}
	}
	out, err := k.client.PutRecords(ctx, &awskinesis.PutRecordsInput{StreamName: aws.String(benchStream), Records: entries})
	if err != nil {
		return fmt.Errorf("put records: %w", err)
	}
	if c := aws.ToInt32(out.FailedRecordCount); c > 0 {
		return fmt.Errorf("put records: %d of %d failed", c, n)
	}
	return nil
}

// putAtRate writes rate records a second for d, in batches every 10ms, and returns how many.
func (k *kinesisPeer) putAtRate(ctx context.Context, rate int, d time.Duration) (int64, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	first := k.written.Load()
	var sent int64
	total := int64(float64(rate) * d.Seconds())
	for sent < total {
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-tick.C:
		}
		due := min(total, int64(time.Since(start).Seconds()*float64(rate)))
		for sent < due {
			n := min(putBatch, due-sent)
			if err := k.putBatch(ctx, first+sent, n); err != nil {
				return sent, err
			}
			sent += n
			k.written.Add(n)
		}
	}
	return sent, nil
}

// kafkaPeer is an in-process kfake cluster with one topic.
type kafkaPeer struct {
	c      *kfake.Cluster
	broker string
}

const benchTopic = "bench-mirror"

// startKafka starts kfake with the bench topic. With ackDelay > 0 every produce response is held
// back that long, without blocking the cluster: SleepControl parks the request and lets kfake
// serve other connections and requests meanwhile.
func startKafka(partitions int, ackDelay time.Duration) (*kafkaPeer, error) {
	return startKafkaOpts(partitions, ackDelay)
}

// startKafkaOpts is startKafka with more kfake options (the group suite allows short sessions).
func startKafkaOpts(partitions int, ackDelay time.Duration, opts ...kfake.Opt) (*kafkaPeer, error) {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(partitions), benchTopic)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	if ackDelay > 0 {
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			c.SleepControl(func() { time.Sleep(ackDelay) })
			return nil, nil, false // then answer normally
		})
	}
	return &kafkaPeer{c: c, broker: c.ListenAddrs()[0]}, nil
}

func (k *kafkaPeer) Close() { k.c.Close() }

// endOffsets returns the topic's end offset per partition.
func (k *kafkaPeer) endOffsets(ctx context.Context) (map[int32]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.broker))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, benchTopic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// countCommitted reads the topic from its start to its end offsets read_committed and counts
// its data records: each record once its transaction committed, none of an aborted one, and
// every record written without a transaction.
func (k *kafkaPeer) countCommitted(ctx context.Context) (int64, error) {
	ends, err := k.endOffsets(ctx)
	if err != nil {
		return 0, err
	}
	from := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			from[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(from) == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.broker),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{benchTopic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The markers show where a partition ends when its last records are a transaction's.
		kgo.KeepControlRecords())
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var n int64
	for len(from) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("count records of partition %d: %w", p, err) })
		if ferr != nil {
			return n, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				n++
			}
			if r.Offset >= ends[r.Partition]-1 {
				delete(from, r.Partition)
			}
		})
	}
	return n, nil
}

// sumOffsets adds up end offsets: the records a topic holds when nothing in it is transactional
// (the group suite runs at_least_once; countCommitted counts a transactional topic).
func sumOffsets(m map[int32]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
