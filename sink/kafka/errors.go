package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RecordTooLargeError is the error a record is acked with when it cannot fit in one Kafka
// message: Size is its encoded size alone in a record batch, Limit the limit it broke, Setting the
// key of that limit (sink.kafka.max_message_bytes for a mirrored record, or
// sink.kafka.dlq_max_message_bytes for a dead letter). Such a record is never produced.
type RecordTooLargeError struct {
	Size    int64
	Limit   int64
	Setting string // "" means sink.kafka.max_message_bytes
	// Err is the underlying client error when franz-go itself refused the record, else nil.
	Err error
}

func (e *RecordTooLargeError) Error() string {
	if e.Setting != "" && e.Setting != "sink.kafka.max_message_bytes" {
		return fmt.Sprintf("record of %d bytes is larger than the %d-byte limit; raise %s (and the dead-letter topic's max.message.bytes)",
			e.Size, e.Limit, e.Setting)
	}
	return fmt.Sprintf("record of %d bytes is larger than the %d-byte limit; raise sink.kafka.max_message_bytes (and the topic's max.message.bytes), or choose errors.policy dlq (dead letters may be up to sink.kafka.dlq_max_message_bytes) or skip",
		e.Size, e.Limit)
}

// Unwrap returns the client's error, if any.
func (e *RecordTooLargeError) Unwrap() error { return e.Err }

// ErrClosed is returned by Write and WriteDeadLetter after Close, and is the ack error of
// records that Close failed.
var ErrClosed = errors.New("kafka sink closed")

// ErrDeliveryTimeout is the ack error of a record that Kafka did not acknowledge within
// sink.kafka.delivery_timeout, retries included. It is retryable, and ambiguous: the broker may
// have written the record.
var ErrDeliveryTimeout = errors.New("record not acknowledged within sink.kafka.delivery_timeout")

// Error classes, the values of the class label of shardbridge_kafka_produce_errors_total.
const (
	classTooLarge  = "too_large"
	classTimeout   = "timeout"
	classAuth      = "auth"
	classRetryable = "retryable"
	classFatal     = "fatal"
	classCanceled  = "canceled"
)

// Retryable reports whether producing the same record again may succeed: a broker or network
// failure, a timeout, or a leadership change. A record that fails in the sink has already used up
// franz-go's own retries (bounded by delivery_timeout), so a retry is a new attempt, after a
// restart for example. Authorization, authentication, a too-large record, a bad topic, a topic
// that is missing and not created or whose creation was refused (*TopicError), or a closed sink
// are not retryable.
//
// A timeout is ambiguous: the broker may have written the record. Retrying it is safe for the
// mirror's guarantees (at least once) but may duplicate it.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var tooLarge *RecordTooLargeError
	var topicErr *TopicError
	switch {
	case errors.As(err, &tooLarge),
		errors.As(err, &topicErr),
		errors.Is(err, ErrClosed),
		errors.Is(err, kgo.ErrClientClosed),
		errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrDeliveryTimeout), errors.Is(err, kgo.ErrRecordTimeout),
		errors.Is(err, kgo.ErrRecordRetries), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// errorClass names the class of a produce error for metrics.
func errorClass(err error) string {
	var tooLarge *RecordTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return classTooLarge
	case errors.Is(err, context.Canceled), errors.Is(err, ErrClosed), errors.Is(err, kgo.ErrClientClosed):
		return classCanceled
	case errors.Is(err, ErrDeliveryTimeout), errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, context.DeadlineExceeded):
		return classTimeout
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return classAuth
	case Retryable(err):
		return classRetryable
	}
	return classFatal
}
