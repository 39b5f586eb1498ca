// Package kinesistest is a fast, in-process Kinesis Data Streams server for
// tests, benchmarks and `shardbridge dev`, in the spirit of
// net/http/httptest and franz-go's kfake. It speaks the real wire protocol
// (AWS JSON 1.1, and the binary event stream for SubscribeToShard), so the
// stock aws-sdk-go-v2 Kinesis client talks to it unchanged.
//
// # Use
//
//	srv, err := kinesistest.NewServer(kinesistest.WithStream("orders", 4))
//	if err != nil { ... }
//	defer srv.Close()
//	client := srv.Client() // or build your own, see below
//
// NewServer listens on a free loopback port and serves HTTPS with a freshly
// generated self-signed ECDSA P-256 certificate; HTTP/2 is negotiated by
// ALPN, as real Kinesis requires for Enhanced Fan-Out. WithPlainHTTP serves
// plain HTTP/1.1 and h2c instead. To build your own client, point
// kinesis.Options.BaseEndpoint at Endpoint and trust the server through
// TLSConfig or CACertPEM (or skip verification); HTTPClient returns an SDK
// HTTP client that already does, built with awshttp.NewBuildableClient so
// an AWS_CA_BUNDLE in the environment does not interfere. Client uses it,
// with static credentials and SDK retries off so tests see every fault.
//
// Requests must carry an Authorization header; its SigV4 signature is not
// checked. Errors are AWS JSON errors ({"__type": code, "message": ...},
// also in the X-Amzn-Errortype header), HTTP 400, 403 for a missing
// Authorization, 500 for InternalFailure, so the SDK returns its typed
// errors (*types.ResourceNotFoundException and so on).
//
// Supported operations: CreateStream, DeleteStream, DescribeStream,
// DescribeStreamSummary, ListStreams, ListShards (NextToken, MaxResults,
// ExclusiveStartShardId, every ShardFilter type), PutRecord, PutRecords,
// GetShardIterator (every iterator type), GetRecords,
// RegisterStreamConsumer, DescribeStreamConsumer, ListStreamConsumers,
// DeregisterStreamConsumer, SubscribeToShard, SplitShard, MergeShards and
// UpdateShardCount (UNIFORM_SCALING). Others answer
// UnknownOperationException. Streams may be named by StreamName or
// StreamARN (arn:aws:kinesis:us-east-1:123456789012:stream/NAME by
// default).
//
// Records are routed as Kinesis does: the MD5 of the partition key read as
// a 128-bit big-endian integer, or the ExplicitHashKey, picks the open
// shard whose hash range holds it. Sequence numbers are 56-digit decimal
// strings that increase within a shard; a child shard's numbers exceed its
// parents'. A closed shard's EndingSequenceNumber is its last record's.
//
// # Enhanced Fan-Out
//
// A registered consumer is CREATING for WithConsumerActivationDelay (50ms
// by default), then ACTIVE; a stream allows WithMaxConsumers (20). A
// SubscribeToShard response is an application/vnd.amazon.eventstream body:
// an initial-response event (unless WithoutInitialResponse, which mimics
// kinesis-mock and LocalStack), then SubscribeToShardEvents as records
// arrive (live, woken by a per-shard channel, never polled), each holding
// at most WithMaxRecordsPerEvent records and WithMaxEventBytes of data,
// with ContinuationSequenceNumber (the last delivered record's number,
// right for AFTER_SEQUENCE_NUMBER) and MillisBehindLatest. With nothing to
// send, an event with no records goes out every WithHeartbeatInterval. The
// stream ends cleanly after WithSubscriptionLifetime (5 minutes). At a
// closed shard's end the last event carries ChildShards and a null
// ContinuationSequenceNumber, and the stream ends; with
// WithoutShardEndEvent it does not, as in kinesis-mock: the stream sends
// heartbeats until its lifetime ends, and only ListShards (the shard's
// EndingSequenceNumber) and GetRecords (no NextShardIterator) tell that
// the shard is closed. A second subscription
// for the same consumer and shard within WithTakeoverAfter (5 s) gets
// ResourceInUseException; a later one takes over, and the old stream ends
// with a ResourceInUseException event. Deregistering the consumer or
// deleting the stream ends its streams with ResourceNotFoundException.
//
// aws-sdk-go-v2 (smithy-go issue 714) shares one event-stream codec across
// all calls of a client, which is a data race when two subscriptions are
// open on one client. Give each SubscribeToShard call its own protocol
// instance, e.g. with the option
// func(o *kinesis.Options) { o.Protocol = awsjson.New11(schemas.Kinesis_20131202) }.
//
// # Fault injection and counters
//
// Inject adds a Fault: an operation, optionally a shard, how many matching
// calls or events pass first (After), how many times it fires (Count), and
// what it does:
//   - ResetConnection: reset the SubscribeToShard HTTP/2 stream mid-flight;
//   - ErrorEvent(code): end a subscription with an exception event;
//   - Stall(d): hold a subscription open sending nothing for d;
//   - HTTPError(code): answer any call with that AWS error;
//   - Throttle: ProvisionedThroughputExceededException for the call, or,
//     for PutRecords scoped to a shard, for that shard's records only.
//
// Calls(op) and Subscriptions(shardID) count what the server received, and
// WaitFor blocks until a condition holds, woken by every change rather
// than by polling, so tests never sleep.
//
// # Options and clocks
//
// Every option states its default. WithClock injects the clock used for
// arrival times, iterator expiry, MillisBehindLatest and the CREATING
// delays; the pacing of live subscriptions (heartbeat, lifetime, stalls,
// takeover window, WithShardReadRate) uses real timers, so tests set those
// short.
//
// # Limits: what real Kinesis does that this server does not
//
//   - Records are kept for the server's life: no retention period and no
//     trimming. Memory is proportional to what was written (per record, the
//     data, the partition key and about 48 bytes).
//   - No throughput limits (1 MiB/s or 1,000 records/s per shard for
//     writes, 2 MiB/s for GetRecords, 5 GetRecords calls/s, 1
//     SubscribeToShard call/s) unless injected as faults or set with
//     WithShardReadRate.
//   - Resharding and stream deletion take effect at once: no UPDATING or
//     DELETING states. UpdateShardCount merges the open shards into one and
//     splits that into the target, which leaves more short-lived closed
//     shards than AWS would, each child still with at most two parents.
//   - A subscription that the client dropped frees its slot at once; AWS may
//     keep answering ResourceInUseException for a few seconds.
//   - SigV4 signatures, IAM, KMS encryption, tags, stream mode updates,
//     enhanced monitoring and account limits are not modelled.
//   - Shard IDs in Fault.Shard and Subscriptions match in every stream.
//
// The package imports no testing code, so programs may embed the server.
package kinesistest
