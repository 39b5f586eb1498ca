package kinesis

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// initialResponseTransport supplies the initial-response event that some emulators leave out.
//
// Real Kinesis answers SubscribeToShard with an event stream whose first message has
// :event-type initial-response; aws-sdk-go-v2 reads that message as the operation output and
// fails the call ("expected initial-response, got SubscribeToShardEvent") when it is missing, as
// it is from kinesis-mock and LocalStack. For a successful event-stream response this decorator
// decodes the headers of the first message; when it is not an initial-response it prepends an
// encoded empty initial-response ({} as application/json, which is what Kinesis sends) and then
// replays every byte it read, unchanged. Against real Kinesis it only peeks and passes through,
// so the source behaves exactly the same against both.
//
// The peek reads exactly one message (its length is in the prelude), so it holds at most one
// event in memory, which the SDK would have read next anyway.
type initialResponseTransport struct {
	next http.RoundTripper
}

const eventStreamContentType = "application/vnd.amazon.eventstream"

func (t initialResponseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), eventStreamContentType) {
		return resp, err
	}
	resp.Body = &initialResponseBody{body: resp.Body}
	return resp, nil
}

// initialResponseBody peeks at the first message lazily, on the first Read, so the round trip
// itself never blocks on the stream's first event (which may come seconds later).
type initialResponseBody struct {
	body   io.ReadCloser
	r      io.Reader // set after the peek: prefix + peeked bytes + rest of body
	peekEr error
}

func (b *initialResponseBody) Read(p []byte) (int, error) {
	if b.r == nil {
		b.r, b.peekEr = peekInitialResponse(b.body)
	}
	if b.r == nil {
		return 0, b.peekEr
	}
	return b.r.Read(p)
}

func (b *initialResponseBody) Close() error { return b.body.Close() }

// peekInitialResponse reads the first message of body. It returns a reader of the stream as the
// SDK expects it: the bytes read, preceded by an initial-response when the first message was
// something else. When the first message cannot be decoded (a read error, a stream cut short,
// bytes that are not an event stream), the bytes read so far are replayed followed by the rest
// of the body, so the SDK meets exactly what it would have met without the shim.
func peekInitialResponse(body io.Reader) (io.Reader, error) {
	var peeked bytes.Buffer
	tee := io.TeeReader(body, &peeked)
	msg, err := eventstream.NewDecoder().Decode(tee, nil)
	if err != nil {
		return io.MultiReader(bytes.NewReader(peeked.Bytes()), body), nil
	}
	rest := io.MultiReader(bytes.NewReader(peeked.Bytes()), body)
	if isInitialResponse(msg) {
		return rest, nil
	}
	var prefix bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&prefix, initialResponseMessage()); err != nil {
		return nil, fmt.Errorf("encode initial-response: %w", err)
	}
	return io.MultiReader(&prefix, rest), nil
}

func isInitialResponse(msg eventstream.Message) bool {
	v := msg.Headers.Get(":event-type")
	return v != nil && v.String() == "initial-response"
}

func initialResponseMessage() eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue("initial-response"))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload = []byte("{}")
	return m
}
