package kinesis

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func encodeMessages(t *testing.T, payloads ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := eventstream.NewEncoder()
	for _, p := range payloads {
		msg := eventstream.Message{Payload: []byte(p)}
		msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		msg.Headers.Set(":event-type", eventstream.StringValue("SubscribeToShardEvent"))
		if err := enc.Encode(&buf, msg); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func gatedResponse(t *testing.T, body []byte, status int, contentType string) (*http.Response, *readGate) {
	t.Helper()
	g := newReadGate(false)
	req, _ := http.NewRequestWithContext(withReadGate(t.Context(), g), "POST", "https://kinesis.invalid/", nil)
	resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {contentType}}, Body: io.NopCloser(bytes.NewReader(body))}
	gateBody(req, resp)
	return resp, g
}

// readMessage reads exactly one event-stream message, or fails the test if it blocks.
func readMessage(t *testing.T, r io.Reader) eventstream.Message {
	t.Helper()
	type result struct {
		msg eventstream.Message
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := eventstream.NewDecoder().Decode(r, nil)
		ch <- result{msg, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("decode: %v", res.err)
		}
		return res.msg
	case <-time.After(5 * time.Second):
		t.Fatal("a granted message did not arrive")
	}
	return eventstream.Message{}
}

// The gate hands the SDK one message per credit and nothing of the next one until the reader
// grants it, so no event is decoded ahead of the reader.
func TestReadGateOneMessagePerCredit(t *testing.T) {
	stream := encodeMessages(t, "first", "second", "third")
	resp, g := gatedResponse(t, stream, 200, eventStreamContentType)
	if msg := readMessage(t, resp.Body); string(msg.Payload) != "first" {
		t.Fatalf("first message %q", msg.Payload)
	}
	// No credit: a read must block, having taken no byte of the next message.
	got := make(chan int, 1)
	go func() {
		n, _ := resp.Body.Read(make([]byte, 64))
		got <- n
	}()
	select {
	case n := <-got:
		t.Fatalf("read %d bytes of a message nobody asked for", n)
	case <-time.After(100 * time.Millisecond): // giving a wrong read the chance to happen
	}
	g.grant()
	if n := <-got; n != 4 {
		t.Fatalf("first read after the grant returned %d bytes; want the 4-byte length", n)
	}
	rest := readAllGranted(t, resp.Body, g)
	// The 4 length bytes read above, then the rest: exactly the second and third messages.
	msgs := decodeAll(t, bytes.NewReader(append(stream[len(stream)-len(rest)-4:len(stream)-len(rest)], rest...)))
	if len(msgs) != 2 || string(msgs[0].Payload) != "second" || string(msgs[1].Payload) != "third" {
		t.Fatalf("rest decoded to %d messages", len(msgs))
	}
}

// readAllGranted reads to EOF, granting a credit whenever the reader asks for a new message.
func readAllGranted(t *testing.T, r io.Reader, g *readGate) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, 7)
	for range 10000 {
		g.grant()
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("no EOF")
	return nil
}

// A blocked read ends when the body is closed, so closing a subscription never hangs.
func TestReadGateCloseUnblocks(t *testing.T) {
	resp, _ := gatedResponse(t, encodeMessages(t, "a", "b"), 200, eventStreamContentType)
	readMessage(t, resp.Body)
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 8))
		done <- err
	}()
	resp.Body.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read after close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("close did not unblock a gated read")
	}
}

// Error answers and bodies that are not event streams are left alone: the SDK reads them whole
// (and may retry the call with the same gate).
func TestReadGateLeavesOtherBodiesAlone(t *testing.T) {
	body := []byte(`{"__type":"LimitExceededException","message":"slow down"}`)
	resp, _ := gatedResponse(t, body, 400, "application/x-amz-json-1.1")
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("error body read as %q, %v", got, err)
	}
	// An event-stream response whose framing makes no sense passes through ungated.
	junk := []byte(strings.Repeat("\xff", 40))
	resp, _ = gatedResponse(t, junk, 200, eventStreamContentType)
	got, err = io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, junk) {
		t.Fatalf("junk body read as %q, %v", got, err)
	}
}
