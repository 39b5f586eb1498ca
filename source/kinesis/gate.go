package kinesis

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"sync"
)

// readGate bounds how far aws-sdk-go-v2 reads ahead in one SubscribeToShard event stream, and
// lets the reader take its share of the decode budget before the SDK reads an event.
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
// Even one event per shard is too much when many shards decode at once: a full event takes
// 12 to 17 MiB to decode, and with every shard holding one, 128 shards peaked at over 1 GiB where
// 2 cores decode two events at a time. So a metered gate (every gate of a source with a decode budget) also stops at the start
// of each message after the first: it reads the message's 4-byte length, hands it to the reader
// on arrived, and gives the SDK nothing more until the reader, holding its share of the decode
// budget for a message that long, admits it. The length is known before any of the message is
// decoded, and the share is taken only once the message is arriving, so a quiet shard holds no
// share while it waits for its next event.
//
// The first credit is for the initial-response message, which the SDK reads inside the
// SubscribeToShard call; it is small and never metered. A stream whose framing the gate cannot
// follow (a length out of range) is passed through ungated, so the SDK reports it exactly as it
// would have.
type readGate struct {
	credit *permits
	// metered gates report each message's length on arrived (buffered 1) and wait for admit.
	metered bool
	arrived chan int64
	admit   *permits
}

func newReadGate(metered bool) *readGate {
	g := &readGate{credit: newPermits(1), metered: metered}
	if metered {
		g.arrived = make(chan int64, 1)
		g.admit = newPermits(0)
	}
	return g
}

// grant lets the SDK read one more message.
func (g *readGate) grant() { g.credit.give() }

// admitted lets the SDK read the message whose length it reported on arrived.
func (g *readGate) admitted() { g.admit.give() }

// permits is a count of permissions that one goroutine waits for and another gives.
type permits struct {
	mu   sync.Mutex
	n    int           // mu guards
	wake chan struct{} // a token when a permission is given; buffered 1
}

func newPermits(n int) *permits { return &permits{n: n, wake: make(chan struct{}, 1)} }

func (p *permits) give() {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take waits for a permission and uses it. It returns early when ctx ends or closed is closed.
func (p *permits) take(ctx context.Context, closed <-chan struct{}) error {
	for {
		p.mu.Lock()
		if p.n > 0 {
			p.n--
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
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
	messages  int     // messages started so far
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.ungated {
		return b.body.Read(p)
	}
	if b.remaining == 0 && len(b.prefix) == 0 {
		if err := b.gate.credit.take(b.ctx, b.closed); err != nil {
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
		} else if b.gate.metered && b.messages > 0 {
			if err := b.waitAdmitted(total); err != nil {
				return 0, err
			}
		}
		b.messages++
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

// waitAdmitted reports a message of total bytes to the reader and waits until it is admitted.
func (b *gatedBody) waitAdmitted(total int) error {
	select {
	case b.gate.arrived <- int64(total):
	case <-b.ctx.Done():
		return b.ctx.Err()
	case <-b.closed:
		return io.ErrClosedPipe
	}
	return b.gate.admit.take(b.ctx, b.closed)
}

func (b *gatedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.body.Close()
}

// decodeMeter lets a GetRecords call take its share of the decode budget once the response's
// length is known (its Content-Length; -1 when the server does not say) and before the SDK reads
// any of its body. admit runs in the goroutine that reads the body, which for GetRecords is the
// shard reader's own: the SDK reads a response inside the call.
type decodeMeter struct {
	admit func(ctx context.Context, length int64) error
}

type meterKey struct{}

// withDecodeMeter makes the call made with ctx take its response through m.
func withDecodeMeter(ctx context.Context, m *decodeMeter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

// meterBody wraps a successful response's body in the meter carried by req's context, if any.
// Error answers are small and read whole by the SDK, which may retry the call with the same
// context (and meter).
func meterBody(req *http.Request, resp *http.Response) {
	m, _ := req.Context().Value(meterKey{}).(*decodeMeter)
	if m == nil || resp.Body == nil || resp.StatusCode != http.StatusOK {
		return
	}
	resp.Body = &meteredBody{body: resp.Body, meter: m, ctx: req.Context(), length: resp.ContentLength}
}

// meteredBody admits its response before the first byte is read.
type meteredBody struct {
	body     io.ReadCloser
	meter    *decodeMeter
	ctx      context.Context
	length   int64
	admitted bool // owned by the one goroutine that reads
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if !b.admitted {
		if err := b.meter.admit(b.ctx, b.length); err != nil {
			return 0, err
		}
		b.admitted = true
	}
	return b.body.Read(p)
}

func (b *meteredBody) Close() error { return b.body.Close() }
