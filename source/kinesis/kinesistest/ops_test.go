package kinesistest

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

func TestStreamLifecycle(t *testing.T) {
	clk := newFakeClock()
	srv := newServer(t, WithClock(clk.Now), WithStreamCreateDelay(time.Second))
	ctx := testCtx(t)
	c := srv.Client()

	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(3)}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(3)})
	var inUse *types.ResourceInUseException
	if !errorsAs(err, &inUse) {
		t.Fatalf("create twice: got %v, want ResourceInUseException", err)
	}

	sum, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	if err != nil {
		t.Fatalf("describe summary: %v", err)
	}
	d := sum.StreamDescriptionSummary
	if d.StreamStatus != types.StreamStatusCreating {
		t.Fatalf("status before the delay = %s, want CREATING", d.StreamStatus)
	}
	_, err = c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("orders"), PartitionKey: aws.String("k"), Data: []byte("x")})
	if errorCode(err) != "ResourceInUseException" {
		t.Fatalf("put to CREATING stream: got %v, want ResourceInUseException", err)
	}
	clk.Advance(time.Second)
	sum, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamARN: d.StreamARN})
	if err != nil {
		t.Fatalf("describe summary by ARN: %v", err)
	}
	d = sum.StreamDescriptionSummary
	if d.StreamStatus != types.StreamStatusActive || aws.ToInt32(d.OpenShardCount) != 3 ||
		aws.ToString(d.StreamARN) != "arn:aws:kinesis:us-east-1:123456789012:stream/orders" ||
		!d.StreamCreationTimestamp.Equal(time.Unix(1_700_000_000, 0)) || d.StreamModeDetails.StreamMode != types.StreamModeProvisioned {
		t.Fatalf("summary = %+v", d)
	}

	desc, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("orders"), Limit: aws.Int32(2)})
	if err != nil {
		t.Fatalf("describe stream: %v", err)
	}
	sd := desc.StreamDescription
	if len(sd.Shards) != 2 || !aws.ToBool(sd.HasMoreShards) || aws.ToString(sd.Shards[0].ShardId) != "shardId-000000000000" {
		t.Fatalf("describe stream page 1 = %d shards, more=%v", len(sd.Shards), aws.ToBool(sd.HasMoreShards))
	}
	desc, err = c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("orders"), ExclusiveStartShardId: sd.Shards[1].ShardId})
	if err != nil || len(desc.StreamDescription.Shards) != 1 || aws.ToBool(desc.StreamDescription.HasMoreShards) {
		t.Fatalf("describe stream page 2: %v", err)
	}

	for _, n := range []string{"a", "b", "c"} {
		if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(n), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
	}
	var names []string
	var token *string
	for {
		ls, err := c.ListStreams(ctx, &kinesis.ListStreamsInput{Limit: aws.Int32(3), NextToken: token})
		if err != nil {
			t.Fatalf("list streams: %v", err)
		}
		names = append(names, ls.StreamNames...)
		if len(ls.StreamSummaries) != len(ls.StreamNames) {
			t.Fatalf("summaries %d != names %d", len(ls.StreamSummaries), len(ls.StreamNames))
		}
		if !aws.ToBool(ls.HasMoreStreams) {
			break
		}
		token = ls.NextToken
	}
	if !slices.Equal(names, []string{"a", "b", "c", "orders"}) {
		t.Fatalf("streams = %v", names)
	}

	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	var nf *types.ResourceNotFoundException
	if !errorsAs(err, &nf) {
		t.Fatalf("describe deleted stream: got %v, want ResourceNotFoundException", err)
	}
	_, err = c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")})
	if !errorsAs(err, &nf) {
		t.Fatalf("delete twice: got %v, want ResourceNotFoundException", err)
	}
}

func TestListShardsPaginationAndFilters(t *testing.T) {
	clk := newFakeClock()
	srv := newServer(t, WithClock(clk.Now), WithStream("s", 5))
	ctx := testCtx(t)
	c := srv.Client()

	clk.Advance(time.Minute)
	if _, err := c.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("s"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatalf("split: %v", err)
	}
	splitAt := clk.Now()
	clk.Advance(time.Minute)

	var ids []string
	var token *string
	pages := 0
	for {
		in := &kinesis.ListShardsInput{MaxResults: aws.Int32(2), NextToken: token}
		if token == nil {
			in.StreamName = aws.String("s")
		}
		out, err := c.ListShards(ctx, in)
		if err != nil {
			t.Fatalf("list shards page %d: %v", pages, err)
		}
		pages++
		for _, sh := range out.Shards {
			ids = append(ids, aws.ToString(sh.ShardId))
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	if len(ids) != 7 || pages != 4 {
		t.Fatalf("listed %v in %d pages, want 7 shards in 4", ids, pages)
	}
	_, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), NextToken: token})
	if errorCode(err) != "InvalidArgumentException" {
		t.Fatalf("NextToken with StreamName: got %v, want InvalidArgumentException", err)
	}

	ts := func(t time.Time) *time.Time { return &t }
	for _, tc := range []struct {
		filter types.ShardFilter
		want   []string
	}{
		{types.ShardFilter{Type: types.ShardFilterTypeAtLatest}, []string{"1", "2", "3", "4", "5", "6"}},
		{types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}, []string{"0", "1", "2", "3", "4"}},
		{types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon}, []string{"0", "1", "2", "3", "4", "5", "6"}},
		{types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-000000000004")}, []string{"5", "6"}},
		{types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: ts(splitAt.Add(-time.Second))}, []string{"0", "1", "2", "3", "4"}},
		{types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: ts(splitAt.Add(-time.Second))}, []string{"0", "1", "2", "3", "4", "5", "6"}},
		{types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: ts(splitAt.Add(time.Second))}, []string{"1", "2", "3", "4", "5", "6"}},
	} {
		out, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s"), ShardFilter: &tc.filter})
		if err != nil {
			t.Fatalf("list shards %s: %v", tc.filter.Type, err)
		}
		var got []string
		for _, sh := range out.Shards {
			got = append(got, strings.TrimLeft(strings.TrimPrefix(aws.ToString(sh.ShardId), "shardId-"), "0"))
			if got[len(got)-1] == "" {
				got[len(got)-1] = "0"
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("filter %s: shards %v, want %v", tc.filter.Type, got, tc.want)
		}
	}
}

func TestPutRoutingAndSequenceNumbers(t *testing.T) {
	srv := newServer(t, WithStream("s", 4))
	ctx := testCtx(t)
	c := srv.Client()

	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatalf("list shards: %v", err)
	}
	inRange := func(shardID string, h *big.Int) bool {
		for _, sh := range shards.Shards {
			if aws.ToString(sh.ShardId) == shardID {
				lo, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
				hi, _ := new(big.Int).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
				return h.Cmp(lo) >= 0 && h.Cmp(hi) <= 0
			}
		}
		return false
	}

	last := map[string]string{}
	var entries []types.PutRecordsRequestEntry
	for i := range 200 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("key-%d", i)), Data: []byte{byte(i)}})
	}
	// One entry pinned by ExplicitHashKey to the last shard's range.
	entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("key-0"), ExplicitHashKey: aws.String("340282366920938463463374607431768211455"), Data: []byte("pinned")})
	out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
	if err != nil {
		t.Fatalf("put records: %v", err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != len(entries) {
		t.Fatalf("put records: %d failed, %d results", aws.ToInt32(out.FailedRecordCount), len(out.Records))
	}
	for i, r := range out.Records {
		sum := md5.Sum([]byte(aws.ToString(entries[i].PartitionKey)))
		h := new(big.Int).SetBytes(sum[:])
		if entries[i].ExplicitHashKey != nil {
			h, _ = new(big.Int).SetString(*entries[i].ExplicitHashKey, 10)
		}
		id := aws.ToString(r.ShardId)
		if !inRange(id, h) {
			t.Fatalf("record %d routed to %s, outside its hash range", i, id)
		}
		seq := aws.ToString(r.SequenceNumber)
		if len(seq) != 56 || strings.Trim(seq, "0123456789") != "" {
			t.Fatalf("sequence number %q is not 56 digits", seq)
		}
		if prev := last[id]; prev != "" && seq <= prev {
			t.Fatalf("sequence numbers not increasing in %s: %s after %s", id, seq, prev)
		}
		last[id] = seq
	}
	if id := aws.ToString(out.Records[200].ShardId); id != "shardId-000000000003" {
		t.Fatalf("ExplicitHashKey 2^128-1 routed to %s, want the last shard", id)
	}
	if len(last) != 4 {
		t.Fatalf("200 keys reached %d shards, want all 4", len(last))
	}

	pr, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("key-7"), Data: []byte("one")})
	if err != nil {
		t.Fatalf("put record: %v", err)
	}
	if seq := aws.ToString(pr.SequenceNumber); seq <= last[aws.ToString(pr.ShardId)] {
		t.Fatalf("PutRecord sequence %s not after %s", seq, last[aws.ToString(pr.ShardId)])
	}

	for _, tc := range []struct {
		name string
		in   *kinesis.PutRecordsInput
		code string
	}{
		{"missing stream", &kinesis.PutRecordsInput{StreamName: aws.String("nope"), Records: entries[:1]}, "ResourceNotFoundException"},
		{"bad explicit hash key", &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), ExplicitHashKey: aws.String("340282366920938463463374607431768211456"), Data: []byte("x")}}}, "InvalidArgumentException"},
	} {
		_, err := c.PutRecords(ctx, tc.in)
		if got := errorCode(err); got != tc.code {
			t.Errorf("%s: code %q (%v), want %s", tc.name, got, err, tc.code)
		}
	}
}

func TestGetShardIteratorAndGetRecords(t *testing.T) {
	clk := newFakeClock()
	srv := newServer(t, WithClock(clk.Now), WithStream("s", 1), WithIteratorLifetime(time.Minute))
	ctx := testCtx(t)
	c := srv.Client()
	const shard = "shardId-000000000000"

	var seqs []string
	var times []time.Time
	for i := range 10 {
		clk.Advance(time.Second)
		times = append(times, clk.Now())
		out, err := c.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		seqs = append(seqs, aws.ToString(out.SequenceNumber))
	}
	clk.Advance(2 * time.Second)

	first := func(in kinesis.GetShardIteratorInput) ([]types.Record, *kinesis.GetRecordsOutput) {
		t.Helper()
		in.StreamName, in.ShardId = aws.String("s"), aws.String(shard)
		it, err := c.GetShardIterator(ctx, &in)
		if err != nil {
			t.Fatalf("get shard iterator %s: %v", in.ShardIteratorType, err)
		}
		out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(3)})
		if err != nil {
			t.Fatalf("get records %s: %v", in.ShardIteratorType, err)
		}
		return out.Records, out
	}
	for _, tc := range []struct {
		in       kinesis.GetShardIteratorInput
		wantData []string
	}{
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon}, []string{"0", "1", "2"}},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeLatest}, nil},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(seqs[4])}, []string{"4", "5", "6"}},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seqs[4])}, []string{"5", "6", "7"}},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(seqs[9])}, nil},
		{kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(times[7].Add(-500 * time.Millisecond))}, []string{"7", "8", "9"}},
	} {
		recs, out := first(tc.in)
		var got []string
		for i, r := range recs {
			got = append(got, string(r.Data))
			if aws.ToString(r.PartitionKey) != "k" || r.ApproximateArrivalTimestamp == nil {
				t.Errorf("%s: record %d = %+v", tc.in.ShardIteratorType, i, r)
			}
		}
		if !slices.Equal(got, tc.wantData) {
			t.Errorf("%s: data %v, want %v", tc.in.ShardIteratorType, got, tc.wantData)
		}
		if out.NextShardIterator == nil {
			t.Errorf("%s: nil NextShardIterator on an open shard", tc.in.ShardIteratorType)
		}
	}

	// MillisBehindLatest is the age of the first unread record.
	_, out := first(kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if got, want := aws.ToInt64(out.MillisBehindLatest), clk.Now().Sub(times[3]).Milliseconds(); got != want {
		t.Errorf("MillisBehindLatest = %d, want %d", got, want)
	}
	// Arrival timestamps come from the clock, with millisecond precision.
	recs, _ := first(kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if !recs[0].ApproximateArrivalTimestamp.Equal(times[0]) {
		t.Errorf("arrival %v, want %v", recs[0].ApproximateArrivalTimestamp, times[0])
	}

	// Iterators expire after their lifetime.
	it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatalf("get shard iterator: %v", err)
	}
	clk.Advance(time.Minute + time.Millisecond)
	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	var expired *types.ExpiredIteratorException
	if !errorsAs(err, &expired) {
		t.Fatalf("get records with an old iterator: got %v, want ExpiredIteratorException", err)
	}

	for _, tc := range []struct {
		name string
		in   kinesis.GetShardIteratorInput
		code string
	}{
		{"unknown shard", kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000009"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}, "ResourceNotFoundException"},
		{"unknown stream", kinesis.GetShardIteratorInput{StreamName: aws.String("x"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon}, "ResourceNotFoundException"},
		{"foreign sequence number", kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(strings.Repeat("1", 56))}, "InvalidArgumentException"},
	} {
		_, err := c.GetShardIterator(ctx, &tc.in)
		if got := errorCode(err); got != tc.code {
			t.Errorf("%s: code %q (%v), want %s", tc.name, got, err, tc.code)
		}
	}
	_, err = c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: aws.String("garbage")})
	if errorCode(err) != "InvalidArgumentException" {
		t.Errorf("garbage iterator: got %v, want InvalidArgumentException", err)
	}
}

func TestConsumers(t *testing.T) {
	clk := newFakeClock()
	srv := newServer(t, WithClock(clk.Now), WithStream("s", 1), WithConsumerActivationDelay(time.Second))
	ctx := testCtx(t)
	c := srv.Client()
	arn := streamARN(t, ctx, c, "s")

	reg, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	carn := aws.ToString(reg.Consumer.ConsumerARN)
	if reg.Consumer.ConsumerStatus != types.ConsumerStatusCreating || !strings.HasPrefix(carn, arn+"/consumer/app:") {
		t.Fatalf("registered %+v", reg.Consumer)
	}
	_, err = c.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(carn), ShardId: aws.String("shardId-000000000000"), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	if errorCode(err) != "ResourceInUseException" {
		t.Fatalf("subscribe while CREATING: got %v, want ResourceInUseException", err)
	}
	clk.Advance(time.Second)
	d, err := c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatalf("describe by name: %v", err)
	}
	if d.ConsumerDescription.ConsumerStatus != types.ConsumerStatusActive || aws.ToString(d.ConsumerDescription.StreamARN) != arn || aws.ToString(d.ConsumerDescription.ConsumerARN) != carn {
		t.Fatalf("described %+v", d.ConsumerDescription)
	}
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
	if errorCode(err) != "ResourceInUseException" {
		t.Fatalf("register twice: got %v, want ResourceInUseException", err)
	}
	for i := 1; i < 20; i++ {
		if _, err := c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String(fmt.Sprintf("app%02d", i))}); err != nil {
			t.Fatalf("register consumer %d: %v", i, err)
		}
	}
	_, err = c.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("one-too-many")})
	var limit *types.LimitExceededException
	if !errorsAs(err, &limit) {
		t.Fatalf("21st consumer: got %v, want LimitExceededException", err)
	}

	var names []string
	var token *string
	for {
		out, err := c.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn), MaxResults: aws.Int32(7), NextToken: token})
		if err != nil {
			t.Fatalf("list consumers: %v", err)
		}
		for _, co := range out.Consumers {
			names = append(names, aws.ToString(co.ConsumerName))
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	if len(names) != 20 || names[0] != "app" || names[19] != "app19" {
		t.Fatalf("listed %d consumers: %v", len(names), names)
	}

	if _, err := c.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(carn)}); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	_, err = c.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(carn)})
	if errorCode(err) != "ResourceNotFoundException" {
		t.Fatalf("describe deregistered: got %v, want ResourceNotFoundException", err)
	}
	_, err = c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s")})
	if errorCode(err) != "ResourceInUseException" {
		t.Fatalf("delete stream with consumers: got %v, want ResourceInUseException", err)
	}
	if _, err := c.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("s"), EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
		t.Fatalf("delete stream enforcing consumer deletion: %v", err)
	}
}

func TestRequiresAuthorizationAndKnownTarget(t *testing.T) {
	srv := newServer(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: srv.TLSConfig(), ForceAttemptHTTP2: true}}
	defer hc.CloseIdleConnections()
	for _, tc := range []struct {
		name, target, auth, code string
		status                   int
	}{
		{"no authorization", "Kinesis_20131202.ListStreams", "", "MissingAuthenticationTokenException", 403},
		{"unknown operation", "Kinesis_20131202.Frobnicate", "AWS4-HMAC-SHA256 Credential=x", "UnknownOperationException", 400},
	} {
		req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, srv.Endpoint(), bytes.NewReader([]byte("{}")))
		req.Header.Set("X-Amz-Target", tc.target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("X-Amzn-Errortype") != tc.code || resp.ProtoMajor != 2 {
			t.Errorf("%s: %s %s, error type %q; want %d %s over HTTP/2", tc.name, resp.Proto, resp.Status, resp.Header.Get("X-Amzn-Errortype"), tc.status, tc.code)
		}
	}
}

func TestPlainHTTP(t *testing.T) {
	srv := newServer(t, WithPlainHTTP(), WithStream("s", 2))
	if !strings.HasPrefix(srv.Endpoint(), "http://") || srv.TLSConfig() != nil || srv.CACertPEM() != nil {
		t.Fatalf("plain server endpoint %s", srv.Endpoint())
	}
	ctx := testCtx(t)
	c := srv.Client()
	putN(t, ctx, c, "s", 0, 10)
	a, _ := readAll(t, ctx, c, "s", "shardId-000000000000")
	b, _ := readAll(t, ctx, c, "s", "shardId-000000000001")
	if len(a)+len(b) != 10 {
		t.Fatalf("read %d records over plain HTTP, want 10", len(a)+len(b))
	}
}
