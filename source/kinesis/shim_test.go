package kinesis

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

func encodeEvents(t *testing.T, msgs ...eventstream.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range msgs {
		if err := eventstream.NewEncoder().Encode(&b, m); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func eventMsg(typ, payload string) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue(typ))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload = []byte(payload)
	return m
}

func decodeAll(t *testing.T, r io.Reader) []eventstream.Message {
	t.Helper()
	var out []eventstream.Message
	for {
		m, err := eventstream.NewDecoder().Decode(r, nil)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		out = append(out, m)
	}
}

func shimRoundTrip(t *testing.T, status int, ctype string, body []byte) *http.Response {
	t.Helper()
	tr := initialResponseTransport{next: roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {ctype}}, Body: io.NopCloser(bytes.NewReader(body))}, nil
	})}
	resp, err := tr.RoundTrip(&http.Request{})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestShimPrependsInitialResponse(t *testing.T) {
	ev1 := eventMsg("SubscribeToShardEvent", `{"ContinuationSequenceNumber":"1","MillisBehindLatest":0,"Records":[]}`)
	ev2 := eventMsg("SubscribeToShardEvent", `{"ContinuationSequenceNumber":"2","MillisBehindLatest":0,"Records":[]}`)
	body := encodeEvents(t, ev1, ev2)
	resp := shimRoundTrip(t, 200, eventStreamContentType, body)
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	msgs := decodeAll(t, bytes.NewReader(got))
	if len(msgs) != 3 || msgs[0].Headers.Get(":event-type").String() != "initial-response" || string(msgs[0].Payload) != "{}" {
		t.Fatalf("got %d messages, first %v", len(msgs), msgs[0].Headers)
	}
	// The original stream follows byte for byte.
	if !bytes.HasSuffix(got, body) {
		t.Error("the original events were not replayed unchanged")
	}
}

func TestShimPassesThrough(t *testing.T) {
	withInitial := encodeEvents(t, eventMsg("initial-response", "{}"), eventMsg("SubscribeToShardEvent", "{}"))
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   []byte
	}{
		{"stream with initial-response", 200, eventStreamContentType, withInitial},
		{"error response", 400, "application/x-amz-json-1.1", []byte(`{"__type":"ResourceInUseException"}`)},
		{"json response", 200, "application/x-amz-json-1.1", []byte(`{"Shards":[]}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := io.ReadAll(shimRoundTrip(t, tc.status, tc.ctype, tc.body).Body)
			if err != nil || !bytes.Equal(got, tc.body) {
				t.Fatalf("body changed: %q, %v", got, err)
			}
		})
	}
}

func TestShimTruncatedFirstMessage(t *testing.T) {
	body := encodeEvents(t, eventMsg("SubscribeToShardEvent", `{"Records":[]}`))
	// The SDK gets the same cut-short bytes it would have got, and reports them itself.
	got, err := io.ReadAll(shimRoundTrip(t, 200, eventStreamContentType, body[:len(body)-3]).Body)
	if err != nil || !bytes.Equal(got, body[:len(body)-3]) {
		t.Fatalf("got %x, %v; want the bytes unchanged", got, err)
	}
	// Bytes that are not an event stream are passed through whole.
	junk := bytes.Repeat([]byte("0"), 40)
	got, err = io.ReadAll(shimRoundTrip(t, 200, eventStreamContentType, junk).Body)
	if err != nil || !bytes.Equal(got, junk) {
		t.Fatalf("got %q, %v; want the junk unchanged", got, err)
	}
}

// The stock SDK client fails against a stream without initial-response; the source's client
// reads it.
func TestShimAgainstKinesistest(t *testing.T) {
	srv, err := kinesistest.NewServer(kinesistest.WithStream("s", 1), kinesistest.WithoutInitialResponse())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stock := srv.Client()
	if _, err := stock.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	sum, err := stock.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := stock.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("c")})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitFor(ctx, func() bool {
		d, err := stock.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
		return err == nil && d.ConsumerDescription.ConsumerStatus == types.ConsumerStatusActive
	}); err != nil {
		t.Fatal(err)
	}
	in := &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String(shard0),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}}
	if _, err := stock.SubscribeToShard(ctx, in, ownEventStreamCodec); err == nil || !strings.Contains(err.Error(), "initial-response") {
		t.Fatalf("stock client: err = %v, want the initial-response failure", err)
	}

	cfg := testConfig("s", srv.Endpoint())
	if err := cfg.Validate("t", "source.kinesis"); err != nil {
		t.Fatal(err)
	}
	cli, err := newClient(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out *kinesis.SubscribeToShardOutput
	// The stock call above may still hold the subscription for the takeover window.
	if err := srv.WaitFor(ctx, func() bool {
		out, err = cli.SubscribeToShard(ctx, in, ownEventStreamCodec)
		return err == nil
	}); err != nil {
		t.Fatalf("shimmed client: %v", err)
	}
	defer out.GetStream().Close()
	ev, ok := <-out.GetStream().Events()
	if !ok {
		t.Fatalf("no event: %v", out.GetStream().Err())
	}
	e := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
	if len(e.Value.Records) != 1 || string(e.Value.Records[0].Data) != "hello" {
		t.Fatalf("event records %+v", e.Value.Records)
	}
}

func encoderFor(w io.Writer, m eventstream.Message) error {
	return eventstream.NewEncoder().Encode(w, m)
}
