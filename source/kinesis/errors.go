package kinesis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
)

// errClass is what a shard reader does after an error.
type errClass int

const (
	// classRetry: back off and try again from the last position.
	classRetry errClass = iota
	// classInUse: another subscription holds the shard; wait at least 5 s, then retry.
	classInUse
	// classNotFound: ResourceNotFound; the caller decides whether the shard or the stream is gone.
	classNotFound
	// classExpiredIterator: a polling iterator expired; renew it from the last position.
	classExpiredIterator
	// classFatal: the connector cannot go on (access denied, bad argument).
	classFatal
	// classCanceled: the context ended; stop quietly.
	classCanceled
)

// classify is the one place that decides whether an error is retryable or fatal.
//
// Fatal: AccessDenied(Exception), UnrecognizedClientException, InvalidSignatureException,
// IncompleteSignature, ExpiredToken(Exception) and InvalidArgumentException. Expired credentials
// are fatal on purpose: the SDK already refreshes credentials that can be refreshed, so an
// expired token it still sends is static and will not get better by retrying. InvalidArgument
// comes from a value the config gave (a start timestamp in the future, a bad stream ARN).
// Everything else, including unknown errors, is retried: a reader that gives up on an unknown
// transient error loses nothing, but one that stops the connector on it costs an outage.
func classify(ctx context.Context, err error) errClass {
	if ctx.Err() != nil {
		return classCanceled
	}
	switch errorCode(err) {
	case "ResourceInUseException":
		return classInUse
	case "ResourceNotFoundException":
		return classNotFound
	case "ExpiredIteratorException":
		return classExpiredIterator
	case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
		"InvalidSignatureException", "IncompleteSignature", "ExpiredToken", "ExpiredTokenException",
		"InvalidArgumentException", "ValidationException", "MissingAuthenticationToken":
		return classFatal
	}
	return classRetry
}

// errorCode returns the AWS error code of err, or "" when it has none.
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// reasonOf names an error for the subscriptions-ended metric: its AWS error code, or a short
// transport reason. The set is small, so label cardinality stays bounded.
func reasonOf(err error) string {
	if c := errorCode(err); c != "" {
		return c
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected_eof"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "stream error"):
		return "http2_stream_error"
	}
	return "transport_error"
}

// FatalError is the error Run returns when the source cannot go on. It names the stream, says
// what went wrong and how to fix it, and wraps the AWS error.
type FatalError struct {
	Stream string
	Shard  string // "" when the problem is not about one shard
	Fix    string
	Err    error
}

func (e *FatalError) Error() string {
	where := "stream " + e.Stream
	if e.Shard != "" {
		where += " shard " + e.Shard
	}
	return fmt.Sprintf("kinesis source: %s: %v; %s", where, e.Err, e.Fix)
}

func (e *FatalError) Unwrap() error { return e.Err }

// fatalFix suggests how to fix a fatal error.
func fatalFix(err error) string {
	switch errorCode(err) {
	case "ResourceNotFoundException":
		return "check source.kinesis.stream and source.kinesis.region (and efo.consumer_arn), and that the stream exists"
	case "AccessDeniedException", "AccessDenied":
		return "grant the credentials kinesis:DescribeStreamSummary, kinesis:ListShards, kinesis:SubscribeToShard, kinesis:RegisterStreamConsumer, kinesis:DescribeStreamConsumer (EFO) or kinesis:GetShardIterator, kinesis:GetRecords (polling)"
	case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken":
		return "check the AWS credentials (source.kinesis.credentials or the environment) and the region"
	case "ExpiredToken", "ExpiredTokenException":
		return "the AWS session token has expired; supply fresh or refreshable credentials"
	case "InvalidArgumentException", "ValidationException":
		return "check source.kinesis settings such as start_timestamp, stream and efo.consumer_arn"
	}
	return "check the source.kinesis settings"
}
