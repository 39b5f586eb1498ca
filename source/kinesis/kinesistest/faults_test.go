package kinesistest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// efoServer starts a server with one stream "s" of one shard and an ACTIVE
// consumer, heartbeating every 10ms so streams have events to count.
func efoServer(t *testing.T, opts ...Option) (*Server, *kinesis.Client, string) {
	t.Helper()
	srv := newServer(t, append([]Option{WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(10 * time.Millisecond)}, opts...)...)
	c := srv.Client()
	ctx := testCtx(t)
	return srv, c, registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
}

func mustInject(t *testing.T, srv *Server, f Fault) {
	t.Helper()
	if err := srv.Inject(f); err != nil {
		t.Fatalf("inject %+v: %v", f, err)
	}
}

func TestFaultResetConnection(t *testing.T) {
	srv, c, carn := efoServer(t)
	ctx := testCtx(t)
	mustInject(t, srv, Fault{Op: "SubscribeToShard", Shard: shard0, After: 3, Kind: ResetConnection()})
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	evs := drain(t, es)
	err := es.Err()
	var ae smithy.APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("stream ended with %v, want a transport error", err)
	}
	if len(evs) != 3 {
		t.Fatalf("got %d events before the reset, want 3", len(evs))
	}
	// The fault fired once: the next subscription runs normally.
	es = subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	for range 5 {
		if _, ok := nextEvent(t, es); !ok {
			t.Fatalf("second subscription ended early: %v", es.Err())
		}
	}
}

func TestFaultErrorEvent(t *testing.T) {
	for _, tc := range []struct {
		code  string
		check func(error) bool
	}{
		{"ResourceInUseException", func(err error) bool { var e *types.ResourceInUseException; return errors.As(err, &e) }},
		{"InternalFailureException", func(err error) bool { var e *types.InternalFailureException; return errors.As(err, &e) }},
	} {
		t.Run(tc.code, func(t *testing.T) {
			srv, c, carn := efoServer(t)
			ctx := testCtx(t)
			mustInject(t, srv, Fault{Op: "SubscribeToShard", After: 1, Kind: ErrorEvent(tc.code)})
			putN(t, ctx, c, "s", 0, 10)
			es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
			evs := drain(t, es)
			if len(evs) != 1 || len(evs[0].Records) != 10 {
				t.Fatalf("got %d events before the error, want 1 with 10 records", len(evs))
			}
			if err := es.Err(); !tc.check(err) {
				t.Fatalf("stream ended with %v (%T), want %s", err, err, tc.code)
			}
		})
	}
}

func TestFaultHTTPError(t *testing.T) {
	srv, c, carn := efoServer(t)
	ctx := testCtx(t)
	mustInject(t, srv, Fault{Op: "SubscribeToShard", Shard: shard0, Count: 2, Kind: HTTPError("LimitExceededException")})
	mustInject(t, srv, Fault{Op: "ListShards", After: 1, Kind: HTTPError("InternalFailure")})
	pos := &types.StartingPosition{Type: types.ShardIteratorTypeLatest}
	for i := range 2 {
		_, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String(shard0), StartingPosition: pos}, ownCodec)
		var le *types.LimitExceededException
		if !errors.As(err, &le) {
			t.Fatalf("subscribe %d: got %v, want LimitExceededException", i, err)
		}
	}
	subscribe(t, ctx, c, carn, shard0, *pos)
	if n := srv.Subscriptions(shard0); n != 1 {
		t.Fatalf("Subscriptions = %d, want 1 (failed calls open none)", n)
	}
	if n := srv.Calls("SubscribeToShard"); n != 3 {
		t.Fatalf("Calls(SubscribeToShard) = %d, want 3", n)
	}

	if _, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")}); err != nil {
		t.Fatalf("first ListShards (After 1): %v", err)
	}
	_, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if errorCode(err) != "InternalFailure" {
		t.Fatalf("second ListShards: got %v, want InternalFailure", err)
	}
}

func TestFaultStall(t *testing.T) {
	srv, c, carn := efoServer(t)
	ctx := testCtx(t)
	const stall = 300 * time.Millisecond
	mustInject(t, srv, Fault{Op: "SubscribeToShard", After: 2, Kind: Stall(stall)})
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	for range 2 {
		if _, ok := nextEvent(t, es); !ok {
			t.Fatalf("stream ended: %v", es.Err())
		}
	}
	// Heartbeats are due every 10ms, but the stall holds the third event
	// back for at least the stall: a lower bound, so not timing-flaky.
	start := time.Now()
	if _, ok := nextEvent(t, es); !ok {
		t.Fatalf("stream ended after the stall: %v", es.Err())
	}
	if gap := time.Since(start); gap < stall-20*time.Millisecond {
		t.Fatalf("third event after %s, want a stall of %s", gap, stall)
	}
}

func TestFaultThrottle(t *testing.T) {
	srv := newServer(t, WithStream("s", 2))
	ctx := testCtx(t)
	c := srv.Client()

	// Whole-call throttling of PutRecords.
	mustInject(t, srv, Fault{Op: "PutRecords", Kind: Throttle()})
	_, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: []byte("x")}}})
	var pte *types.ProvisionedThroughputExceededException
	if !errors.As(err, &pte) {
		t.Fatalf("put records: got %v, want ProvisionedThroughputExceededException", err)
	}

	// Shard-scoped: only the records of that shard fail.
	mustInject(t, srv, Fault{Op: "PutRecords", Shard: "shardId-000000000001", Kind: Throttle()})
	var entries []types.PutRecordsRequestEntry
	for _, h := range []string{"0", "340282366920938463463374607431768211455", "1", "340282366920938463463374607431768211454"} {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"), ExplicitHashKey: aws.String(h), Data: []byte(h)})
	}
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil {
		t.Fatalf("put records: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 2 {
		t.Fatalf("FailedRecordCount = %d, want 2", aws.ToInt32(out.FailedRecordCount))
	}
	for i, r := range out.Records {
		throttled := i%2 == 1
		if throttled != (aws.ToString(r.ErrorCode) == "ProvisionedThroughputExceededException") || throttled != (r.SequenceNumber == nil) {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	d0, _ := readAll(t, ctx, c, "s", "shardId-000000000000")
	d1, _ := readAll(t, ctx, c, "s", "shardId-000000000001")
	if len(d0) != 2 || len(d1) != 0 {
		t.Fatalf("stored %d and %d records, want 2 and 0 (throttled records are not stored)", len(d0), len(d1))
	}

	// GetRecords: the second call is throttled, the third passes.
	mustInject(t, srv, Fault{Op: "GetRecords", Shard: "shardId-000000000000", After: 1, Kind: Throttle()})
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatalf("get shard iterator: %v", err)
	}
	calls := srv.Calls("GetRecords")
	for i, wantThrottle := range []bool{false, true, false} {
		_, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if got := errors.As(err, &pte); got != wantThrottle {
			t.Fatalf("get records %d: err %v, want throttled %v", i, err, wantThrottle)
		}
	}
	if n := srv.Calls("GetRecords") - calls; n != 3 {
		t.Fatalf("Calls(GetRecords) grew by %d, want 3", n)
	}
}

func TestWaitForSeesSubscriptions(t *testing.T) {
	srv, c, carn := efoServer(t, WithTakeoverAfter(0))
	ctx := testCtx(t)
	mustInject(t, srv, Fault{Op: "SubscribeToShard", Count: -1, After: 0, Kind: ErrorEvent("InternalFailureException")})
	// A reader that resubscribes after every error, as the source will.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rctx.Err() == nil {
			out, err := c.SubscribeToShard(rctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String(shard0), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}}, ownCodec)
			if err != nil {
				continue
			}
			es := out.GetStream()
			for range es.Events() {
			}
			es.Close()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.WaitFor(wctx, func() bool { return srv.Subscriptions(shard0) >= 3 }); err != nil {
		t.Fatalf("wait for 3 subscriptions: %v", err)
	}
	stop()
	<-done
}

func TestInjectRejectsBadFaults(t *testing.T) {
	srv := newServer(t)
	for _, f := range []Fault{
		{Kind: Throttle()},
		{Op: "GetRecords"},
		{Op: "GetRecords", Kind: ResetConnection()},
		{Op: "GetRecords", Kind: HTTPError("")},
		{Op: "GetRecords", After: -1, Kind: Throttle()},
	} {
		if err := srv.Inject(f); err == nil {
			t.Errorf("Inject(%+v) accepted a bad fault", f)
		}
	}
}
