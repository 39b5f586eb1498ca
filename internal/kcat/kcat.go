package kcat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// Header is one message header as kcat prints it.
type Header struct {
	Key   string
	Value string
}

// Message is one message read by kcat.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the message timestamp in milliseconds since the epoch (kcat's "ts").
	Timestamp int64
	// Key and Value are nil when the message's key or value is NULL.
	Key     *string
	Value   *string
	Headers []Header
}

// Time returns the message timestamp as a time.Time.
func (m Message) Time() time.Time { return time.UnixMilli(m.Timestamp) }

// Kcat is a located kcat binary.
type Kcat struct {
	Path string
}

// Find returns the kcat on PATH, or skips t with the reason when there is none.
func Find(t testing.TB) *Kcat {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skipf("kcat not found on PATH (%v); install it with: apt-get install kcat", err)
	}
	return &Kcat{Path: p}
}

// envelope is kcat's -J output for one message.
type envelope struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	TsType    string   `json:"tstype"`
	Ts        int64    `json:"ts"`
	Headers   []string `json:"headers"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// Consume reads topic on the broker at addr from the beginning to the current end of every
// partition and returns the messages in the order kcat printed them (per partition in offset
// order). The kcat process ends when ctx does. It reads read_committed (librdkafka's default);
// extra kcat arguments follow the defaults, e.g. "-X", "isolation.level=read_uncommitted" to see
// the records of aborted and open transactions too.
func (k *Kcat) Consume(ctx context.Context, addr, topic string, extra ...string) ([]Message, error) {
	args := append([]string{"-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J",
		"-X", "socket.timeout.ms=10000"}, extra...)
	cmd := exec.CommandContext(ctx, k.Path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("kcat consume %s from %s: %w (stderr: %s)", topic, addr, ctx.Err(), stderr.String())
		}
		return nil, fmt.Errorf("kcat consume %s from %s: %w (stderr: %s)", topic, addr, err, stderr.String())
	}
	return Parse(stdout.Bytes())
}

// Parse decodes kcat -J output, one JSON envelope per line.
func Parse(out []byte) ([]Message, error) {
	var msgs []Message
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 64<<20)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var e envelope
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("parse kcat output line %d: %w", line, err)
		}
		if len(e.Headers)%2 != 0 {
			return nil, fmt.Errorf("parse kcat output line %d: odd header list of %d strings", line, len(e.Headers))
		}
		m := Message{
			Topic:     e.Topic,
			Partition: e.Partition,
			Offset:    e.Offset,
			Timestamp: e.Ts,
			Key:       e.Key,
			Value:     e.Payload,
		}
		for i := 0; i < len(e.Headers); i += 2 {
			m.Headers = append(m.Headers, Header{Key: e.Headers[i], Value: e.Headers[i+1]})
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read kcat output: %w", err)
	}
	return msgs, nil
}

// ErrNoKcat is returned by Lookup when kcat is not on PATH.
var ErrNoKcat = errors.New("kcat not found on PATH")

// Lookup is Find without a testing.TB, for benchmarks or tools.
func Lookup() (*Kcat, error) {
	p, err := exec.LookPath("kcat")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoKcat, err)
	}
	return &Kcat{Path: p}, nil
}
