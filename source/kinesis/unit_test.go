package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"

	"github.com/shardbridge/shardbridge/runtime"
)

func TestCompareSeq(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"10", "9", 1}, // lexicographic order would say otherwise
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588898", 0},
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692540925702759324208523137515618", -1},
		{"007", "7", 0},
		{"", "1", -1},
	} {
		if got := compareSeq(tc.a, tc.b); got != tc.want {
			t.Errorf("compareSeq(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareSeq(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareSeq(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	b := newBackoff()
	b.jitter = func(n int64) int64 { return n - 1 } // the largest jitter
	var got []time.Duration
	for i := 0; i < 7; i++ {
		got = append(got, b.next())
	}
	if got[0] < backoffMin || got[0] > backoffMin*3/2 {
		t.Errorf("first delay %v, want 300ms..450ms", got[0])
	}
	for i, d := range got {
		if d > backoffMax {
			t.Errorf("delay %d = %v over the 5s cap", i, d)
		}
	}
	if got[6] != backoffMax {
		t.Errorf("delay 6 = %v, want the 5s cap", got[6])
	}
	b.reset()
	if d := b.next(); d > backoffMin*3/2 {
		t.Errorf("after reset %v", d)
	}
}

func TestClassify(t *testing.T) {
	ctx := context.Background()
	api := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }
	for _, tc := range []struct {
		err  error
		want errClass
	}{
		{api("ResourceInUseException"), classInUse},
		{api("LimitExceededException"), classRetry},
		{api("ProvisionedThroughputExceededException"), classRetry},
		{api("InternalFailure"), classRetry},
		{api("KMSThrottlingException"), classRetry},
		{errors.New("read tcp: connection reset by peer"), classRetry},
		{api("ResourceNotFoundException"), classNotFound},
		{api("ExpiredIteratorException"), classExpiredIterator},
		{api("AccessDeniedException"), classFatal},
		{api("UnrecognizedClientException"), classFatal},
		{api("ExpiredTokenException"), classFatal},
		{api("InvalidArgumentException"), classFatal},
	} {
		if got := classify(ctx, tc.err); got != tc.want {
			t.Errorf("classify(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if classify(canceled, api("InternalFailure")) != classCanceled {
		t.Error("an error after cancel is not classCanceled")
	}
}

// fakeAPI implements kinesisAPI with function fields; unset calls fail the test.
type fakeAPI struct {
	t               *testing.T
	describeStream  func(*kinesis.DescribeStreamSummaryInput) (*kinesis.DescribeStreamSummaryOutput, error)
	listShards      func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error)
	register        func(*kinesis.RegisterStreamConsumerInput) (*kinesis.RegisterStreamConsumerOutput, error)
	describeConsume func(*kinesis.DescribeStreamConsumerInput) (*kinesis.DescribeStreamConsumerOutput, error)
	subscribe       func(*kinesis.SubscribeToShardInput) (*kinesis.SubscribeToShardOutput, error)
}

func (f *fakeAPI) DescribeStreamSummary(_ context.Context, in *kinesis.DescribeStreamSummaryInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamSummaryOutput, error) {
	if f.describeStream == nil {
		return &kinesis.DescribeStreamSummaryOutput{StreamDescriptionSummary: &types.StreamDescriptionSummary{StreamARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s")}}, nil
	}
	return f.describeStream(in)
}
func (f *fakeAPI) ListShards(_ context.Context, in *kinesis.ListShardsInput, _ ...func(*kinesis.Options)) (*kinesis.ListShardsOutput, error) {
	return f.listShards(in)
}
func (f *fakeAPI) RegisterStreamConsumer(_ context.Context, in *kinesis.RegisterStreamConsumerInput, _ ...func(*kinesis.Options)) (*kinesis.RegisterStreamConsumerOutput, error) {
	return f.register(in)
}
func (f *fakeAPI) DescribeStreamConsumer(_ context.Context, in *kinesis.DescribeStreamConsumerInput, _ ...func(*kinesis.Options)) (*kinesis.DescribeStreamConsumerOutput, error) {
	return f.describeConsume(in)
}
func (f *fakeAPI) DeregisterStreamConsumer(context.Context, *kinesis.DeregisterStreamConsumerInput, ...func(*kinesis.Options)) (*kinesis.DeregisterStreamConsumerOutput, error) {
	f.t.Error("DeregisterStreamConsumer called")
	return nil, errors.New("unexpected")
}
func (f *fakeAPI) SubscribeToShard(_ context.Context, in *kinesis.SubscribeToShardInput, _ ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	return f.subscribe(in)
}
func (f *fakeAPI) GetShardIterator(context.Context, *kinesis.GetShardIteratorInput, ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	f.t.Error("GetShardIterator called")
	return nil, errors.New("unexpected")
}
func (f *fakeAPI) GetRecords(context.Context, *kinesis.GetRecordsInput, ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	f.t.Error("GetRecords called")
	return nil, errors.New("unexpected")
}

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "injected"} }

func consumerOut(status types.ConsumerStatus) *kinesis.DescribeStreamConsumerOutput {
	return &kinesis.DescribeStreamConsumerOutput{ConsumerDescription: &types.ConsumerDescription{
		ConsumerARN: aws.String("arn:aws:kinesis:us-east-1:1:stream/s/consumer/shardbridge-m:1"), ConsumerStatus: status,
	}}
}

func newUnitSource(t *testing.T, api kinesisAPI, mutate func(*Config)) (*Source, *vclock) {
	t.Helper()
	cfg := Config{Stream: "s", Region: "us-east-1"}
	if mutate != nil {
		mutate(&cfg)
	}
	clock := newVClock()
	src, err := New(cfg, "m", withAPI(api), WithClock(clock.now), WithWait(clock.wait), WithLogger(quietLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	return src, clock
}

func TestEnsureConsumer(t *testing.T) {
	t.Run("missing, registered by another process at the same moment, then active", func(t *testing.T) {
		var mu sync.Mutex
		describes, registers, registeredAt := 0, 0, 0
		api := &fakeAPI{t: t,
			describeConsume: func(in *kinesis.DescribeStreamConsumerInput) (*kinesis.DescribeStreamConsumerOutput, error) {
				mu.Lock()
				defer mu.Unlock()
				describes++
				if aws.ToString(in.ConsumerName) != "shardbridge-m" {
					t.Errorf("consumer name %q", aws.ToString(in.ConsumerName))
				}
				switch {
				case registeredAt == 0:
					return nil, apiErr("ResourceNotFoundException")
				case describes == registeredAt+1:
					return consumerOut(types.ConsumerStatusCreating), nil
				}
				return consumerOut(types.ConsumerStatusActive), nil
			},
			register: func(*kinesis.RegisterStreamConsumerInput) (*kinesis.RegisterStreamConsumerOutput, error) {
				mu.Lock()
				defer mu.Unlock()
				registers++
				if registers == 1 {
					return nil, apiErr("LimitExceededException") // backs off and retries
				}
				registeredAt = describes
				return nil, apiErr("ResourceInUseException") // the other process won
			},
		}
		src, _ := newUnitSource(t, api, nil)
		r := &run{s: src, api: api, streamARN: "arn:aws:kinesis:us-east-1:1:stream/s"}
		arn, err := r.ensureConsumer(t.Context())
		if err != nil || !strings.Contains(arn, "consumer/shardbridge-m") {
			t.Fatalf("arn %q err %v", arn, err)
		}
		if registers != 2 {
			t.Errorf("registered %d times, want 2 (LimitExceeded, then ResourceInUse)", registers)
		}
	})
	t.Run("deleting is an error", func(t *testing.T) {
		api := &fakeAPI{t: t, describeConsume: func(*kinesis.DescribeStreamConsumerInput) (*kinesis.DescribeStreamConsumerOutput, error) {
			return consumerOut(types.ConsumerStatusDeleting), nil
		}}
		src, _ := newUnitSource(t, api, nil)
		err := src.Run(t.Context(), newTestEmitter(10, 10, true))
		var fe *FatalError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "deleted") || !strings.Contains(err.Error(), "stream s") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestFatalErrors(t *testing.T) {
	t.Run("stream not found", func(t *testing.T) {
		api := &fakeAPI{t: t, describeStream: func(*kinesis.DescribeStreamSummaryInput) (*kinesis.DescribeStreamSummaryOutput, error) {
			return nil, apiErr("ResourceNotFoundException")
		}}
		src, _ := newUnitSource(t, api, nil)
		err := src.Run(t.Context(), newTestEmitter(10, 10, true))
		var fe *FatalError
		if !errors.As(err, &fe) || fe.Stream != "s" || !strings.Contains(err.Error(), "source.kinesis.stream") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("access denied on subscribe", func(t *testing.T) {
		api := &fakeAPI{t: t,
			describeConsume: func(*kinesis.DescribeStreamConsumerInput) (*kinesis.DescribeStreamConsumerOutput, error) {
				return consumerOut(types.ConsumerStatusActive), nil
			},
			listShards: func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
				return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String(shard0)}}}, nil
			},
			subscribe: func(*kinesis.SubscribeToShardInput) (*kinesis.SubscribeToShardOutput, error) {
				return nil, apiErr("AccessDeniedException")
			},
		}
		src, _ := newUnitSource(t, api, nil)
		err := src.Run(t.Context(), newTestEmitter(10, 10, true))
		var fe *FatalError
		if !errors.As(err, &fe) || fe.Shard != shard0 || !strings.Contains(err.Error(), "kinesis:SubscribeToShard") {
			t.Fatalf("err = %v", err)
		}
	})
}

// ListShards reads every page, and names the stream only on the first.
func TestListShardsPages(t *testing.T) {
	calls := 0
	api := &fakeAPI{t: t, listShards: func(in *kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
		calls++
		switch calls {
		case 1:
			if aws.ToString(in.StreamName) != "s" || in.NextToken != nil {
				t.Errorf("first page input %+v", in)
			}
			return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("a")}}, NextToken: aws.String("t1")}, nil
		case 2:
			if in.StreamName != nil || aws.ToString(in.NextToken) != "t1" {
				t.Errorf("second page input %+v", in)
			}
			return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("b")}}, NextToken: aws.String("t2")}, nil
		}
		return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String("c")}}}, nil
	}}
	src, _ := newUnitSource(t, api, nil)
	r := &run{s: src, api: api}
	shards, err := r.listShards(t.Context())
	if err != nil || len(shards) != 3 {
		t.Fatalf("shards %v err %v", shards, err)
	}
}

// latest is used for the first call only; a retry uses AT_TIMESTAMP of that first attempt.
func TestLatestNeverAfterRetry(t *testing.T) {
	var mu sync.Mutex
	var starts []types.StartingPosition
	api := &fakeAPI{t: t,
		describeConsume: func(*kinesis.DescribeStreamConsumerInput) (*kinesis.DescribeStreamConsumerOutput, error) {
			return consumerOut(types.ConsumerStatusActive), nil
		},
		listShards: func(*kinesis.ListShardsInput) (*kinesis.ListShardsOutput, error) {
			return &kinesis.ListShardsOutput{Shards: []types.Shard{{ShardId: aws.String(shard0)}}}, nil
		},
		subscribe: func(in *kinesis.SubscribeToShardInput) (*kinesis.SubscribeToShardOutput, error) {
			mu.Lock()
			defer mu.Unlock()
			starts = append(starts, *in.StartingPosition)
			return nil, apiErr("InternalFailure")
		},
	}
	src, clock := newUnitSource(t, api, func(c *Config) { c.StartPosition = StartLatest })
	first := clock.now()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, newTestEmitter(10, 10, true)) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(starts)
		mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fewer than 3 subscribe attempts")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if starts[0].Type != types.ShardIteratorTypeLatest {
		t.Errorf("first start %s, want LATEST", starts[0].Type)
	}
	for i, s := range starts[1:] {
		if s.Type != types.ShardIteratorTypeAtTimestamp || s.Timestamp == nil || s.Timestamp.After(first) && !s.Timestamp.Equal(first) {
			t.Errorf("retry %d starts %s %v, want AT_TIMESTAMP of the first attempt %v", i+1, s.Type, s.Timestamp, first)
		}
	}
}

// The converter cuts keys, sequence numbers and headers from shared chunks: every record still
// gets its own values, and no record's slice can be appended into another's.
func TestConverterChunksDoNotAlias(t *testing.T) {
	c := converter{stream: "orders", streamARN: "arn:aws:kinesis:eu-west-1:1:stream/orders", shard: "shardId-000000000007",
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), met: newMetrics(nil).shard("c", "shardId-000000000007")}
	now := time.Now()
	var in []types.Record
	// Enough records to cross several header and byte chunks.
	for i := range 3000 {
		in = append(in, types.Record{
			SequenceNumber:              aws.String(strings.Repeat("4", 40) + fmt.Sprintf("%016d", i)),
			PartitionKey:                aws.String(fmt.Sprintf("key-%d", i)),
			Data:                        []byte(fmt.Sprintf("value-%d", i)),
			ApproximateArrivalTimestamp: aws.Time(now),
		})
	}
	out, n := c.convert(nil, in, runtime.Position{})
	if len(out) != len(in) || n == 0 {
		t.Fatalf("converted %d of %d records (%d bytes)", len(out), len(in), n)
	}
	check := func() {
		t.Helper()
		for i, r := range out {
			seq := strings.Repeat("4", 40) + fmt.Sprintf("%016d", i)
			if string(r.Key) != fmt.Sprintf("key-%d", i) || r.Position.Sequence != seq {
				t.Fatalf("record %d: key %q, position %v", i, r.Key, r.Position)
			}
			want := map[string]string{HeaderStream: "orders", HeaderStreamARN: c.streamARN, HeaderShardID: c.shard, HeaderSequenceNumber: seq}
			if len(r.Headers) != len(want) {
				t.Fatalf("record %d: %d headers, want %d", i, len(r.Headers), len(want))
			}
			for _, h := range r.Headers {
				if want[h.Key] != string(h.Value) {
					t.Fatalf("record %d: header %s = %q, want %q", i, h.Key, h.Value, want[h.Key])
				}
			}
		}
	}
	check()
	// Appending to any record's key, headers or header values must not reach its neighbours.
	for i := range out {
		out[i].Key = append(out[i].Key, "XXXX"...)
		out[i].Headers = append(out[i].Headers, runtime.Header{Key: "extra"})
		for j := range out[i].Headers[:4] {
			_ = append(out[i].Headers[j].Value, "YYYY"...)
		}
	}
	for i := range out {
		out[i].Key = out[i].Key[:len(out[i].Key)-4]
		out[i].Headers = out[i].Headers[:4]
	}
	check()
}
