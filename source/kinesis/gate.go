package kinesis

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"sync"
)

// readGate bounds how far aws-sdk-go-v2 reads ahead in one SubscribeToShard event stream.
//
// The SDK reads a subscription with goroutines of its own that decode the next event as soon as
// its bytes arrive and then wait, holding it, until the reader takes it; meanwhile HTTP/2 flow
// control lets the next one in. A reader that waits for pool space therefore still had up to
// three decoded events per shard in memory (each several times its size while decoding), which
// the pool does not count: with many shards and large events that dominated the process's
// memory (BENCHMARKS.md, "Memory"). The gate lets the SDK read one event-stream message per
// credit; the reader grants a credit only when it is ready for the next event (after
// WaitForSpace). Outside the pool a shard then holds at most one event the reader has asked
// for, plus what the HTTP/2 window buffers.
//
// The first credit is for the initial-response message, which the SDK reads inside the
// SubscribeToShard call. A stream whose framing the gate cannot follow (a length out of range) is
// passed through ungated, so the SDK reports it exactly as it would have.
type readGate struct {
	mu     sync.Mutex
	credit int           // mu guards credit
	wake   chan struct{} // a token when credit is granted; buffered 1
}

func newReadGate() *readGate {
	return &readGate{credit: 1, wake: make(chan struct{}, 1)}
}

// grant lets the SDK read one more message.
func (g *readGate) grant() {
	g.mu.Lock()
	g.credit++
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// take waits for a credit and uses it. It returns early when ctx ends or closed is closed.
func (g *readGate) take(ctx context.Context, closed <-chan struct{}) error {
	for {
		g.mu.Lock()
		if g.credit > 0 {
			g.credit--
			g.mu.Unlock()
			return nil
		}
		g.mu.Unlock()
		select {
		case <-g.wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return io.ErrClosedPipe
		}
	}
}

type gateKey struct{}

// withReadGate makes the SubscribeToShard call made with ctx read its stream through g.
func withReadGate(ctx context.Context, g *readGate) context.Context {
	return context.WithValue(ctx, gateKey{}, g)
}

// gateBody wraps resp's body in the gate carried by req's context, if any.
func gateBody(req *http.Request, resp *http.Response) {
	g, _ := req.Context().Value(gateKey{}).(*readGate)
	// Only the event stream itself: an error answer is read whole by the SDK, which may then
	// retry the call with the same context (and gate).
	if g == nil || resp.Body == nil || resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), eventStreamContentType) {
		return
	}
	resp.Body = &gatedBody{body: resp.Body, gate: g, ctx: req.Context(), closed: make(chan struct{})}
}

// Event-stream framing: a message starts with its total length (4 bytes, big endian), which
// counts the whole message: the 12-byte prelude, headers, payload and the 4-byte message CRC.
const (
	minMessageLen = 16
	maxMessageLen = 24 << 20 // far above any Kinesis event; a larger length is not a frame we know
)

// gatedBody hands out one message per credit. It never returns bytes of a message it has no
// credit for, so the SDK's reader blocks in Read, holding nothing, between events.
type gatedBody struct {
	body   io.ReadCloser
	gate   *readGate
	ctx    context.Context
	closed chan struct{}
	once   sync.Once

	// Owned by the one goroutine that reads (the SDK's).
	remaining int     // bytes of the current message not yet returned
	prefix    []byte  // the current message's length bytes, read but not yet returned
	lenBuf    [4]byte // storage for prefix
	ungated   bool    // framing not understood: pass everything through
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.ungated {
		return b.body.Read(p)
	}
	if b.remaining == 0 && len(b.prefix) == 0 {
		if err := b.gate.take(b.ctx, b.closed); err != nil {
			return 0, err
		}
		n, err := io.ReadFull(b.body, b.lenBuf[:])
		if err != nil {
			if n > 0 {
				// A stream cut inside a length: hand the SDK what there was and the error.
				b.ungated = true
				return copy(p, b.lenBuf[:n]), err
			}
			return 0, err // io.EOF at a message boundary: the stream's clean end
		}
		total := int(binary.BigEndian.Uint32(b.lenBuf[:]))
		if total < minMessageLen || total > maxMessageLen {
			b.ungated = true
		}
		b.prefix = b.lenBuf[:]
		b.remaining = total - 4
	}
	if len(b.prefix) > 0 {
		n := copy(p, b.prefix)
		b.prefix = b.prefix[n:]
		return n, nil
	}
	if len(p) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.body.Read(p)
	b.remaining -= n
	if err == io.EOF && b.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *gatedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.body.Close()
}
