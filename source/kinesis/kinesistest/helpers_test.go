package kinesistest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/schemas"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// newServer starts a server closed at the test's end.
func newServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	srv, err := NewServer(opts...)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return srv
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// errorCode is the AWS error code of err, or "" when it has none.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// registerActive registers a consumer and waits, on the server's change
// notifications and the consumer's status, until it is ACTIVE.
func registerActive(t testing.TB, ctx context.Context, srv *Server, c *kinesis.Client, streamARN, name string) string {
	t.Helper()
	out, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARN), ConsumerName: aws.String(name)})
	if err != nil {
		t.Fatalf("register consumer: %v", err)
	}
	arn := aws.ToString(out.Consumer.ConsumerARN)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(arn)})
		if err != nil {
			t.Fatalf("describe consumer: %v", err)
		}
		if d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive {
			return arn
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s still %s", arn, d.ConsumerDescription.ConsumerStatus)
		}
		// Poll the status with a short tick under an overall deadline.
		time.Sleep(10 * time.Millisecond)
	}
}

func streamARN(t testing.TB, ctx context.Context, c *kinesis.Client, name string) string {
	t.Helper()
	out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("describe stream summary %s: %v", name, err)
	}
	return aws.ToString(out.StreamDescriptionSummary.StreamARN)
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ownCodec gives one SubscribeToShard call its own protocol instance.
// aws-sdk-go-v2 shares one event-stream codec, with scratch state, across
// every call of a client, so two live subscriptions on one client are a
// data race (aws/smithy-go issue 714); a codec per call avoids it.
func ownCodec(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }

func subscribe(t testing.TB, ctx context.Context, c *kinesis.Client, consumerARN, shardID string, pos types.StartingPosition) *kinesis.SubscribeToShardEventStream {
	t.Helper()
	out, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(consumerARN), ShardId: aws.String(shardID), StartingPosition: &pos}, ownCodec)
	if err != nil {
		t.Fatalf("subscribe to %s: %v", shardID, err)
	}
	es := out.GetStream()
	t.Cleanup(func() { es.Close() })
	return es
}

// nextEvent returns the next SubscribeToShardEvent, or ok false when the
// stream ended (then es.Err() tells how). It fails the test if nothing
// arrives within 10 s.
func nextEvent(t testing.TB, es *kinesis.SubscribeToShardEventStream) (ev types.SubscribeToShardEvent, ok bool) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	select {
	case e, open := <-es.Events():
		if !open {
			return ev, false
		}
		m, isEvent := e.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
		if !isEvent {
			t.Fatalf("unexpected event %T", e)
		}
		return m.Value, true
	case <-timeout.C:
		t.Fatalf("no event within 10s")
	}
	return ev, false
}

// drain reads events until the stream ends and returns them.
func drain(t testing.TB, es *kinesis.SubscribeToShardEventStream) []types.SubscribeToShardEvent {
	t.Helper()
	var out []types.SubscribeToShardEvent
	for {
		ev, ok := nextEvent(t, es)
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

func putN(t testing.TB, ctx context.Context, c *kinesis.Client, stream string, from, n int) {
	t.Helper()
	for lo := from; lo < from+n; lo += 500 {
		var entries []types.PutRecordsRequestEntry
		for i := lo; i < min(from+n, lo+500); i++ {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("k%d", i)), Data: []byte(fmt.Sprintf("r%06d", i))})
		}
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(stream), Records: entries})
		if err != nil {
			t.Fatalf("put records: %v", err)
		}
		if n := aws.ToInt32(out.FailedRecordCount); n != 0 {
			t.Fatalf("put records: %d failed", n)
		}
	}
}

// readAll reads a shard from TRIM_HORIZON to its current end (or, for a
// closed shard, to the nil iterator) and returns the data and the child
// shards it reported.
func readAll(t testing.TB, ctx context.Context, c *kinesis.Client, stream, shardID string) ([]string, []types.ChildShard) {
	t.Helper()
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String(shardID), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatalf("get shard iterator %s: %v", shardID, err)
	}
	var data []string
	iter := it.ShardIterator
	for iter != nil {
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(7)})
		if err != nil {
			t.Fatalf("get records %s: %v", shardID, err)
		}
		for _, r := range out.Records {
			data = append(data, string(r.Data))
		}
		if out.NextShardIterator == nil {
			return data, out.ChildShards
		}
		if len(out.Records) == 0 && aws.ToInt64(out.MillisBehindLatest) == 0 {
			return data, nil // caught up on an open shard
		}
		iter = out.NextShardIterator
	}
	return data, nil
}

func errorsAs[T any](err error, target *T) bool { return errors.As(err, target) }
