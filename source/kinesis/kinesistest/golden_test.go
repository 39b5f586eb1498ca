package kinesistest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/internal/kinesismock"
)

// observation is what one scenario run saw, minus what legitimately
// differs between servers (sequence numbers, ARNs, timestamps).
type observation struct {
	Errors      map[string]string   // mistake → error code
	Ranges      []string            // shard IDs after create
	Routing     []string            // record i → shard
	Data        map[string][]string // shard → data in order, via GetRecords
	AtSeq       []string            // data read AT and AFTER a sequence number
	AfterSplit  []string            // shard → parents and range, after a split
	ConsumerSt  string              // consumer status once it settled
	ListedNames []string
}

// waitStatus polls a status with a short tick under a deadline: the
// emulator is another process, with no change notification to wait on.
func waitStatus(t *testing.T, what string, get func() (string, error), want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := get()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %q, err %v; want %s", what, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runGoldenScenario(t *testing.T, c *kinesis.Client) observation {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	obs := observation{Errors: map[string]string{}, Data: map[string][]string{}}
	const name = "golden"
	streamActive := func() {
		waitStatus(t, "stream", func() (string, error) {
			out, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
			if err != nil {
				return "", err
			}
			return string(out.StreamDescriptionSummary.StreamStatus), nil
		}, "ACTIVE")
	}
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	streamActive()
	arn := streamARN(t, ctx, c, name)

	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(2)})
	obs.Errors["create twice"] = errorCode(err)
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("missing")})
	obs.Errors["describe missing stream"] = errorCode(err)
	_, err = c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000042"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	obs.Errors["iterator on unknown shard"] = errorCode(err)
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("missing"), PartitionKey: aws.String("k"), Data: []byte("x")})
	obs.Errors["put to missing stream"] = errorCode(err)
	_, err = c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("missing")})
	obs.Errors["delete missing stream"] = errorCode(err)
	_, err = c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("nobody")})
	obs.Errors["describe missing consumer"] = errorCode(err)
	_, err = c.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(name), ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000042")})
	obs.Errors["merge with unknown shard"] = errorCode(err)

	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	// kinesis-mock ends the first of two shards at (2^128-1)/2 - 1, one
	// below AWS's exact half, so hash keys are compared by role (the start
	// or end of an original shard) rather than by value.
	label := map[string]string{}
	for i, sh := range shards.Shards {
		label[aws.ToString(sh.HashKeyRange.StartingHashKey)] = fmt.Sprintf("S%d.start", i)
		label[aws.ToString(sh.HashKeyRange.EndingHashKey)] = fmt.Sprintf("S%d.end", i)
		obs.Ranges = append(obs.Ranges, aws.ToString(sh.ShardId))
	}
	rel := func(k *string) string {
		if l, ok := label[aws.ToString(k)]; ok {
			return l
		}
		return aws.ToString(k)
	}

	var entries []types.PutRecordsRequestEntry
	for i := range 40 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("user-%d", i)), Data: fmt.Appendf(nil, "r%06d", i)})
	}
	entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("pinned"), ExplicitHashKey: aws.String("1"), Data: []byte("pinned")})
	put, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: entries})
	if err != nil {
		t.Fatalf("put records: %v", err)
	}
	for _, r := range put.Records {
		obs.Routing = append(obs.Routing, aws.ToString(r.ShardId))
	}
	for _, sh := range shards.Shards {
		id := aws.ToString(sh.ShardId)
		data, _ := readAll(t, ctx, c, name, id)
		obs.Data[id] = data
	}

	seq := put.Records[3]
	for _, typ := range []types.ShardIteratorType{types.ShardIteratorTypeAtSequenceNumber, types.ShardIteratorTypeAfterSequenceNumber} {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: seq.ShardId, ShardIteratorType: typ, StartingSequenceNumber: seq.SequenceNumber})
		if err != nil {
			t.Fatalf("iterator %s: %v", typ, err)
		}
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(2)})
		if err != nil {
			t.Fatalf("get records %s: %v", typ, err)
		}
		for _, r := range out.Records {
			obs.AtSeq = append(obs.AtSeq, fmt.Sprintf("%s %s %s", typ, r.Data, aws.ToString(r.PartitionKey)))
		}
	}

	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(name), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatalf("split: %v", err)
	}
	streamActive()
	after, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatalf("list shards after split: %v", err)
	}
	for _, sh := range after.Shards {
		obs.AfterSplit = append(obs.AfterSplit, fmt.Sprintf("%s parent=%s adj=%s %s-%s closed=%v", aws.ToString(sh.ShardId),
			aws.ToString(sh.ParentShardId), aws.ToString(sh.AdjacentParentShardId),
			rel(sh.HashKeyRange.StartingHashKey), rel(sh.HashKeyRange.EndingHashKey),
			sh.SequenceNumberRange.EndingSequenceNumber != nil))
	}

	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatalf("register consumer: %v", err)
	}
	waitStatus(t, "consumer", func() (string, error) {
		out, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
		if err != nil {
			return "", err
		}
		return string(out.ConsumerDescription.ConsumerStatus), nil
	}, "ACTIVE")
	obs.ConsumerSt = "ACTIVE"
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	obs.Errors["register consumer twice"] = errorCode(err)
	lc, err := c.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn)})
	if err != nil {
		t.Fatalf("list consumers: %v", err)
	}
	for _, co := range lc.Consumers {
		obs.ListedNames = append(obs.ListedNames, aws.ToString(co.ConsumerName))
	}
	sort.Strings(obs.ListedNames)
	return obs
}

// TestGoldenAgainstKinesisMock runs one scenario against kinesis-mock and
// against this server and requires the same records, routing, lineage and
// error codes. It skips only when kinesis-mock is not installed.
func TestGoldenAgainstKinesisMock(t *testing.T) {
	mock := kinesismock.Start(t)
	want := runGoldenScenario(t, kinesismock.NewClient(mock.Endpoint))
	t.Logf("kinesis-mock error codes: %v", want.Errors)
	t.Logf("kinesis-mock routing: %v", want.Routing)

	srv := newServer(t)
	got := runGoldenScenario(t, srv.Client())
	// The one deliberate difference: this server splits the hash space as
	// AWS does, at exactly 2^127 for two shards.
	sh, err := srv.Client().ListShards(context.Background(), &kinesis.ListShardsInput{StreamName: aws.String("golden"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}})
	if err != nil || aws.ToString(sh.Shards[1].HashKeyRange.StartingHashKey) != "170141183460469231731687303715884105728" {
		t.Errorf("second shard of two does not start at 2^127: %v %+v", err, sh)
	}

	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		f := gv.Type().Field(i).Name
		if !reflect.DeepEqual(gv.Field(i).Interface(), wv.Field(i).Interface()) {
			t.Errorf("%s differs:\n kinesistest:  %v\n kinesis-mock: %v", f, gv.Field(i).Interface(), wv.Field(i).Interface())
		}
	}
}

// firstEvent posts SubscribeToShard by hand over HTTP/2 and returns the
// first event-stream message's type headers and payload.
func firstEvent(t *testing.T, endpoint string, tlsCfg *tls.Config, consumerARN, shardID string) (string, string, map[string]any) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	body := fmt.Sprintf(`{"ConsumerARN":%q,"ShardId":%q,"StartingPosition":{"Type":"TRIM_HORIZON"}}`, consumerARN, shardID)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/"+time.Now().UTC().Format("20060102")+"/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("subscribe by hand at %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("subscribe by hand at %s: %s %s: %s", endpoint, resp.Proto, resp.Status, b)
	}
	msg, err := eventstream.NewDecoder().Decode(resp.Body, nil)
	if err != nil {
		t.Fatalf("decode first event from %s: %v", endpoint, err)
	}
	var payload map[string]any
	if err := json.Unmarshal(msg.Payload, &payload); err != nil {
		t.Fatalf("first event payload from %s: %v: %q", endpoint, err, msg.Payload)
	}
	return msg.Headers.Get(":message-type").String(), msg.Headers.Get(":event-type").String(), payload
}

// TestGoldenSubscribeWithoutInitialResponse checks that
// WithoutInitialResponse reproduces kinesis-mock's event stream: the first
// message is a SubscribeToShardEvent, with the same records, and the stock
// SDK fails on both the same way.
func TestGoldenSubscribeWithoutInitialResponse(t *testing.T) {
	mock := kinesismock.Start(t, "efo:1")
	srv := newServer(t, WithStream("efo", 1), WithoutInitialResponse(), WithConsumerActivationDelay(0), WithTakeoverAfter(0))
	type target struct {
		name     string
		endpoint string
		tls      *tls.Config
		client   *kinesis.Client
	}
	var firsts []map[string]any
	for _, tg := range []target{
		{"kinesis-mock", mock.Endpoint, &tls.Config{InsecureSkipVerify: true}, kinesismock.NewClient(mock.Endpoint)},
		{"kinesistest", srv.Endpoint(), srv.TLSConfig(), srv.Client()},
	} {
		ctx := testCtx(t)
		c := tg.client
		var entries []types.PutRecordsRequestEntry
		for i := range 5 {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: fmt.Appendf(nil, "r%d", i)})
		}
		if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("efo"), Records: entries}); err != nil {
			t.Fatalf("%s: put records: %v", tg.name, err)
		}
		reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARN(t, ctx, c, "efo")), ConsumerName: aws.String("app")})
		if err != nil {
			t.Fatalf("%s: register: %v", tg.name, err)
		}
		carn := aws.ToString(reg.Consumer.ConsumerARN)
		waitStatus(t, tg.name+" consumer", func() (string, error) {
			out, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(carn)})
			if err != nil {
				return "", err
			}
			return string(out.ConsumerDescription.ConsumerStatus), nil
		}, "ACTIVE")

		mt, et, payload := firstEvent(t, tg.endpoint, tg.tls, carn, shard0)
		if mt != "event" || et != "SubscribeToShardEvent" {
			t.Errorf("%s: first message %s/%s, want event/SubscribeToShardEvent", tg.name, mt, et)
		}
		recs, _ := payload["Records"].([]any)
		var data []string
		for _, r := range recs {
			d, _ := r.(map[string]any)["Data"].(string)
			data = append(data, d)
		}
		firsts = append(firsts, map[string]any{"data": data, "hasContinuation": payload["ContinuationSequenceNumber"] != nil, "hasBehind": payload["MillisBehindLatest"] != nil})

		// The stock SDK rejects both streams the same way. (This server
		// runs WithTakeoverAfter(0), so the hand-made subscription, which
		// may still be open, never makes this one ResourceInUse.)
		_, err = c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String(shard0), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}}, ownCodec)
		if err == nil || !strings.Contains(err.Error(), "expected initial-response") {
			t.Errorf("%s: stock SDK got %v, want expected initial-response", tg.name, err)
		}
	}
	if len(firsts) == 2 && !reflect.DeepEqual(firsts[0], firsts[1]) {
		t.Errorf("first events differ:\n kinesis-mock: %v\n kinesistest:  %v", firsts[0], firsts[1])
	}
}
