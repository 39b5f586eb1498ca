package kinesistest

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// protoRecorder wraps an SDK HTTP client and records the protocol of every
// SubscribeToShard response.
type protoRecorder struct {
	inner interface {
		Do(*http.Request) (*http.Response, error)
	}
	mu     sync.Mutex // guards protos
	protos []string
}

func (p *protoRecorder) Do(r *http.Request) (*http.Response, error) {
	resp, err := p.inner.Do(r)
	if err == nil && strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".SubscribeToShard") {
		p.mu.Lock()
		p.protos = append(p.protos, resp.Proto)
		p.mu.Unlock()
	}
	return resp, err
}

const shard0 = "shardId-000000000000"

func TestSubscribeDeliversLiveRecordsOverHTTP2(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(time.Hour))
	ctx := testCtx(t)
	rec := &protoRecorder{inner: srv.HTTPClient()}
	c := srv.Client(func(o *kinesis.Options) { o.HTTPClient = rec })
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")

	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	rec.mu.Lock()
	protos := append([]string(nil), rec.protos...)
	rec.mu.Unlock()
	if len(protos) != 1 || protos[0] != "HTTP/2.0" {
		t.Fatalf("SubscribeToShard protocols %v, want [HTTP/2.0]", protos)
	}

	// Records put while subscribed arrive, in order, with a continuation
	// equal to the last record's sequence number.
	var got []string
	var lastSeq string
	for batch := range 5 {
		putN(t, ctx, c, "s", batch*100, 100)
		for len(got) < (batch+1)*100 {
			ev, ok := nextEvent(t, es)
			if !ok {
				t.Fatalf("stream ended after %d records: %v", len(got), es.Err())
			}
			for _, r := range ev.Records {
				got = append(got, string(r.Data))
				lastSeq = aws.ToString(r.SequenceNumber)
			}
			if cont := aws.ToString(ev.ContinuationSequenceNumber); len(ev.Records) > 0 && cont != lastSeq {
				t.Fatalf("continuation %s, want the last record's %s", cont, lastSeq)
			}
		}
	}
	for i, d := range got {
		if want := fmt.Sprintf("r%06d", i); d != want {
			t.Fatalf("record %d = %s, want %s", i, d, want)
		}
	}
	if n := srv.Subscriptions(shard0); n != 1 {
		t.Fatalf("Subscriptions = %d, want 1", n)
	}
}

func TestSubscribeStartingPositions(t *testing.T) {
	clk := newFakeClock()
	srv := newServer(t, WithClock(clk.Now), WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(time.Hour), WithTakeoverAfter(0))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	var seqs []string
	var times []time.Time
	for i := range 5 {
		clk.Advance(time.Second)
		times = append(times, clk.Now())
		out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	for _, tc := range []struct {
		pos   types.StartingPosition
		first string
	}{
		{types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}, "0"},
		{types.StartingPosition{Type: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(seqs[2])}, "2"},
		{types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(seqs[2])}, "3"},
		{types.StartingPosition{Type: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(times[4])}, "4"},
	} {
		es := subscribe(t, ctx, c, carn, shard0, tc.pos)
		ev, ok := nextEvent(t, es)
		if !ok || len(ev.Records) == 0 || string(ev.Records[0].Data) != tc.first {
			t.Fatalf("%s: first event %+v (ok %v), want first record %s", tc.pos.Type, ev.Records, ok, tc.first)
		}
		if n := len(ev.Records); string(ev.Records[n-1].Data) != "4" {
			t.Fatalf("%s: last record %s, want 4", tc.pos.Type, ev.Records[n-1].Data)
		}
		es.Close()
	}
	// LATEST sees only what comes after it.
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	putN(t, ctx, c, "s", 0, 1)
	ev, ok := nextEvent(t, es)
	if !ok || len(ev.Records) != 1 || string(ev.Records[0].Data) != "r000000" {
		t.Fatalf("LATEST: first event %+v, want only the new record", ev.Records)
	}
}

func TestSubscribeHeartbeatsAndLifetime(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0),
		WithHeartbeatInterval(20*time.Millisecond), WithSubscriptionLifetime(300*time.Millisecond))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	start := time.Now()
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	evs := drain(t, es)
	if err := es.Err(); err != nil {
		t.Fatalf("stream ended with %v, want a clean end", err)
	}
	if len(evs) < 2 {
		t.Fatalf("got %d heartbeats, want several", len(evs))
	}
	for _, ev := range evs {
		if len(ev.Records) != 0 || ev.ContinuationSequenceNumber == nil || aws.ToInt64(ev.MillisBehindLatest) != 0 {
			t.Fatalf("heartbeat %+v, want no records and a continuation", ev)
		}
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("stream ended after %s, before its 300ms lifetime", el)
	}
}

func TestSubscribeClosedShardEndsWithChildShards(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(time.Hour), WithMaxRecordsPerEvent(30))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	putN(t, ctx, c, "s", 0, 100)
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(shard0), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatalf("split: %v", err)
	}
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	evs := drain(t, es)
	if err := es.Err(); err != nil {
		t.Fatalf("stream ended with %v", err)
	}
	n := 0
	for i, ev := range evs {
		if len(ev.Records) > 30 {
			t.Fatalf("event %d has %d records, above the cap of 30", i, len(ev.Records))
		}
		n += len(ev.Records)
		lastEv := i == len(evs)-1
		if lastEv != (ev.ContinuationSequenceNumber == nil) || lastEv != (len(ev.ChildShards) > 0) {
			t.Fatalf("event %d of %d: continuation %v, %d child shards", i, len(evs), ev.ContinuationSequenceNumber, len(ev.ChildShards))
		}
	}
	if n != 100 {
		t.Fatalf("read %d records, want 100", n)
	}
	kids := evs[len(evs)-1].ChildShards
	if len(kids) != 2 || aws.ToString(kids[0].ShardId) != "shardId-000000000001" || kids[0].ParentShards[0] != shard0 ||
		aws.ToString(kids[1].HashKeyRange.StartingHashKey) != "170141183460469231731687303715884105728" {
		t.Fatalf("child shards %+v", kids)
	}
}

// WithoutShardEndEvent: as in kinesis-mock, a subscription to a closed shard delivers its
// records and then only heartbeats (continuation = the last record's number, no ChildShards)
// until its lifetime ends, while ListShards shows the shard closed and GetRecords ends it.
func TestWithoutShardEndEventGoesQuiet(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithoutShardEndEvent(),
		WithHeartbeatInterval(20*time.Millisecond), WithSubscriptionLifetime(400*time.Millisecond))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	putN(t, ctx, c, "s", 0, 50)
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String(shard0), NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatalf("split: %v", err)
	}
	for sub := range 2 { // a new subscription goes quiet the same way
		es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
		evs := drain(t, es)
		if err := es.Err(); err != nil {
			t.Fatalf("subscription %d ended with %v, want a clean end at its lifetime", sub, err)
		}
		n, heartbeats, lastSeq := 0, 0, ""
		for i, ev := range evs {
			if ev.ContinuationSequenceNumber == nil || len(ev.ChildShards) > 0 {
				t.Fatalf("subscription %d event %d: continuation %v, %d child shards; want neither end marker", sub, i, ev.ContinuationSequenceNumber, len(ev.ChildShards))
			}
			for _, r := range ev.Records {
				lastSeq = aws.ToString(r.SequenceNumber)
			}
			n += len(ev.Records)
			if len(ev.Records) == 0 {
				heartbeats++
				if cont := aws.ToString(ev.ContinuationSequenceNumber); cont != lastSeq {
					t.Fatalf("subscription %d heartbeat %d: continuation %s, want the last record's %s", sub, i, cont, lastSeq)
				}
			}
		}
		if n != 50 || heartbeats < 2 {
			t.Fatalf("subscription %d: %d records and %d heartbeats, want 50 and several", sub, n, heartbeats)
		}
	}
	out, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	if out.Shards[0].SequenceNumberRange.EndingSequenceNumber == nil {
		t.Fatalf("ListShards shows %s open, want it closed", shard0)
	}
	data, kids := readAll(t, ctx, c, "s", shard0)
	if len(data) != 50 || len(kids) != 2 {
		t.Fatalf("GetRecords read %d records and %d child shards, want 50 and 2", len(data), len(kids))
	}
}

func TestSubscribeResourceInUseAndTakeover(t *testing.T) {
	t.Run("within the window", func(t *testing.T) {
		srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0))
		ctx := testCtx(t)
		c := srv.Client()
		carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
		subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		_, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String(shard0), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
		var inUse *types.ResourceInUseException
		if !errorsAs(err, &inUse) {
			t.Fatalf("second subscription: got %v, want ResourceInUseException", err)
		}
	})
	t.Run("after the window", func(t *testing.T) {
		srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithTakeoverAfter(0), WithHeartbeatInterval(time.Hour))
		ctx := testCtx(t)
		c := srv.Client()
		carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
		old := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		newer := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
		if evs := drain(t, old); len(evs) != 0 {
			t.Fatalf("old stream got %d events", len(evs))
		}
		var inUse *types.ResourceInUseException
		if err := old.Err(); !errorsAs(err, &inUse) {
			t.Fatalf("old stream ended with %v, want ResourceInUseException", err)
		}
		putN(t, ctx, c, "s", 0, 3)
		if ev, ok := nextEvent(t, newer); !ok || len(ev.Records) != 3 {
			t.Fatalf("new stream: %+v, %v", ev, newer.Err())
		}
		if n := srv.Subscriptions(shard0); n != 2 {
			t.Fatalf("Subscriptions = %d, want 2", n)
		}
	})
}

func TestWithoutInitialResponseBreaksStockSDK(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithoutInitialResponse(), WithHeartbeatInterval(10*time.Millisecond))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	out, err := c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String(shard0), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err == nil {
		es := out.GetStream()
		defer es.Close()
		drain(t, es)
		err = es.Err()
	}
	if err == nil || !strings.Contains(err.Error(), "expected initial-response") {
		t.Fatalf("got %v, want the SDK's expected initial-response error", err)
	}
}

func TestSubscribeEndsWhenConsumerDeregistered(t *testing.T) {
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(time.Hour))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeLatest})
	if _, err := c.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(carn)}); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	drain(t, es)
	var nf *types.ResourceNotFoundException
	if err := es.Err(); !errorsAs(err, &nf) {
		t.Fatalf("stream ended with %v, want ResourceNotFoundException", err)
	}
}

func TestSubscribeEventCapsAndReadRate(t *testing.T) {
	const rate = 4000 // bytes/s: each 100-byte record costs 25ms
	srv := newServer(t, WithStream("s", 1), WithConsumerActivationDelay(0), WithHeartbeatInterval(time.Hour),
		WithMaxEventBytes(250), WithShardReadRate(rate))
	ctx := testCtx(t)
	c := srv.Client()
	carn := registerActive(t, ctx, srv, c, streamARN(t, ctx, c, "s"), "app")
	var entries []types.PutRecordsRequestEntry
	for i := range 10 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: make([]byte, 100)})
	}
	if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries}); err != nil {
		t.Fatalf("put records: %v", err)
	}
	start := time.Now()
	es := subscribe(t, ctx, c, carn, shard0, types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon})
	got := 0
	for got < 10 {
		ev, ok := nextEvent(t, es)
		if !ok {
			t.Fatalf("stream ended: %v", es.Err())
		}
		if n := len(ev.Records); n > 2 {
			t.Fatalf("event with %d records of 100 bytes, above the 250-byte cap", n)
		}
		got += len(ev.Records)
	}
	// The rate limit paces the events: 800 bytes must have been paid for
	// before the last event could go out. A lower bound, so not flaky.
	if el, floor := time.Since(start), time.Duration(800*float64(time.Second)/rate); el < floor {
		t.Fatalf("10 records after %s, want at least %s at %d bytes/s", el, floor, rate)
	}
}
