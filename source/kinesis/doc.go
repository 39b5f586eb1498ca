// Package kinesis is the Kinesis Data Streams source: it reads a stream with Enhanced Fan-Out
// (SubscribeToShard over HTTP/2) or by polling (GetRecords), and hands each shard's records, in
// shard order, to a runtime.Emitter.
//
// # Use
//
//	cfg := kinesis.Config{Stream: "orders", Region: "eu-west-1"} // usually decoded by the loader
//	src, err := kinesis.New(cfg, "orders-mirror", kinesis.WithRegisterer(reg), kinesis.WithLogger(log))
//	...
//	err = src.Run(ctx, connector) // connector implements runtime.Emitter
//
// New validates the config (Config.Validate fills the defaults). Run returns nil once ctx ends,
// or a *FatalError naming the stream and the fix when the source cannot go on: the stream does
// not exist, access is denied, the credentials are not accepted, or a config value is refused
// by Kinesis (InvalidArgument). Every other error is retried inside the shard reader that met
// it; the main loop only logs and reports status.
//
// # EFO consumer
//
// The consumer name is deterministic, efo.consumer_name, by default "shardbridge-<connector>",
// so restarts reuse it and never fill the stream's 20-consumer limit. Run describes it,
// registers it when missing (ResourceInUse on register means another process registered it at
// the same moment, which is as good), backs off on LimitExceeded, fails on a consumer being
// deleted, and waits until it is ACTIVE. efo.consumer_arn uses an existing consumer. The
// consumer is deregistered on stop only with efo.deregister_on_stop.
//
// # Shards and lineage
//
// ListShards (every page) runs at start and every shard_sync_interval; each new shard gets one
// reader goroutine, owned by Run through an errgroup. A reader first calls Emitter.WaitEnded for
// every parent this source knows of (both parents after a merge), so a child starts only once
// each parent was read to its end and that end is checkpointed; a closed parent with unread data
// is therefore drained first. A shard whose checkpoint has Mark.End is skipped. When a shard
// ends (a null ContinuationSequenceNumber, a GetRecords without a next iterator, or
// ResourceNotFound on the shard while the stream still exists) the reader calls EndShard and
// starts the children named by the final event; ListShards is the backstop.
//
// # Closed shards that never end over EFO
//
// Kinesis ends a subscription at a closed shard's end with an event whose continuation is null.
// kinesis-mock (what LocalStack runs) never sends it: the subscription goes on sending events
// with no records, and is renewed every 5 minutes, so a reader that waited for that event would
// never end the shard, and its children would wait for ever with nothing in the log. So the
// source also uses what ListShards says: a shard listed with an EndingSequenceNumber is closed
// (the value is not used; kinesis-mock writes 9223372036854775807). When an EFO reader's shard
// is listed closed and it has waited closed_shard_quiet_period (10s) for events without emitting
// a new record, it closes the subscription cleanly (reason closed_quiet) and reads the rest
// with GetShardIterator and GetRecords from its last position, under the polling rules below
// (the same position rule, pool, emit path, call rate, backoff and error classes), until
// GetRecords returns no next iterator; it then ends the shard as usual, and starts the children
// GetRecords names (ListShards is the backstop). Time spent waiting for pool space or in Emit
// is not waiting for events, so backpressure never counts as quiet. The quiet period is measured
// with the source's clock, and once a shard is listed closed its reader is woken every quarter
// of it with the source's wait (WithClock, WithWait), so a subscription that sends nothing at
// all is caught too. Against Kinesis the final event ends the shard first. runEFO in efo.go
// goes through it step by step.
//
// A child's wait for its parents is visible: ShardReport gives the parents still waited for
// (WaitingFor) and the wait so far (ParentWaitSeconds), shardbridge_kinesis_parent_wait_seconds
// the same wait, and discovery logs a warning naming the shard, its parents and the wait every
// 5 minutes of waiting (on the source's clock, checked every shard_sync_interval).
//
// # One reader per shard
//
// The EFO reader waits for pool space without a deadline before it subscribes (it holds no
// connection yet) and with the pool wait timeout (the runtime's pool.wait_timeout, see
// WithPoolWaitTimeout) before it reads each event. When that wait times out it closes the
// subscription cleanly (reason backpressure_timeout) and resubscribes after backoff from its last
// position. Once an event starts to arrive the reader waits, with the same timeout, for its share
// of the decode budget (see Memory; reason decode_budget_timeout when it passes). An idle
// watchdog closes a subscription that delivers nothing, not even a heartbeat, for idle_timeout
// (reason idle); time spent waiting for pool space or for the decode budget does not count. Retries back
// off exponentially from 300ms to 5s with jitter, never call SubscribeToShard more than once a
// second per shard, wait at least 5s after ResourceInUse, and the backoff resets after a
// subscription that delivered events. The end of a subscription's lifetime (5 minutes)
// resubscribes at once (still at most once a second).
//
// Where a reader resumes (the same rule after a retry, a resubscription and a restart):
// AT_SEQUENCE_NUMBER of the last emitted record (or the checkpoint), dropping every user record
// whose (sequence number, sub-sequence number) is at or before it, so that neither a
// resubscription nor a restart inside a KPL aggregate repeats or skips a record; when no record
// was emitted yet, AFTER_SEQUENCE_NUMBER of the last event's ContinuationSequenceNumber; before
// any event, start_position on the first start (a child shard: TRIM_HORIZON). latest is used
// only for the very first call: a retry uses AT_TIMESTAMP of that first attempt, never LATEST.
// Sequence numbers compare as unsigned decimal integers (length first, then digits).
//
// Polling mode (efo.enabled: false) follows the same pool, lineage and position rules with
// GetShardIterator and GetRecords: at most 5 calls a second per shard, poll_interval after an
// empty read, max_records per call; an expired iterator is renewed from the last position, and
// throughput exceptions back off.
//
// # Records
//
// Each Kinesis record becomes a runtime.Record with Key = partition key, Value = data,
// Timestamp = approximate arrival time, Stream, Shard and Position{Sequence, SubSequence}, and
// the headers kinesis.stream, kinesis.stream_arn, kinesis.shard_id, kinesis.sequence_number,
// kinesis.sub_sequence_number (de-aggregated user records only) and kinesis.explicit_hash_key
// (when set). With deaggregate (the default) a KPL aggregate becomes its user records, each with
// its own partition key, explicit hash key and sub-sequence number; an aggregate that fails to
// decode passes through as one raw record with a warning and a metric, never dropped. One
// event, or one GetRecords answer, is one Emit.
//
// # Initial response
//
// aws-sdk-go-v2 requires SubscribeToShard's event stream to begin with an initial-response event,
// which real Kinesis sends and kinesis-mock and LocalStack do not. The client this package builds
// wraps its HTTP transport: for a 200 event-stream response it decodes the first message's
// headers and, when that message is not an initial-response, prepends an empty one and then
// replays the stream unchanged. Against real Kinesis it only peeks.
//
// # Memory
//
// Besides the runtime's pool (pool.max_pending_bytes), what the source holds is bounded in two
// parts: what it decodes, by one runtime.DecodeBudget shared by every reader of the process
// (decode_budget, see WithDecodeBudget), and per shard being read, the HTTP/2 receive window and
// the reader's small state.
//
// aws-sdk-go-v2 reads a subscription with goroutines of its own that would decode the next
// events while the reader waits for pool space. The read gate (gate.go) lets the SDK read one
// event-stream message per credit, and the reader grants a credit only after WaitForSpace. The
// gate then reads the message's 4-byte length and stops: the reader takes a share of the decode
// budget of decodeFactor (4) x that length, waiting in turn (first come, first served) while the
// budget is taken, and only then lets the SDK read the message. It gives the share back once the
// event's records are in the pool. Reading and decoding a message of L bytes takes up to about 4
// x L: the SDK reads it into a buffer grown by doubling, decodes the base64 data (3/4 x L at
// most) and each record's structures, and the reader converts them into runtime.Records. A full
// event (MaxEventBytes, 2 MiB, in up to MaxEventRecords) is a message of 3 to 4 MiB. A quiet
// shard holds no share while it waits for its next event, and a share larger than the whole
// budget is cut to it, so such an event decodes alone. Polling does the same for each GetRecords
// response (decodeMeter): its share is taken from its Content-Length before the SDK reads its
// body, and given back once its records are in the pool; so does an EFO reader while it reads a
// closed shard's end with GetRecords.
//
// Per shard being read the source holds its HTTP/2 receive window,
// http2_max_receive_buffer_per_stream (default 256KiB), full while the reader waits, and its
// state: the reader's and the SDK's goroutines, the HTTP/2 stream, its metric series, counted as
// 128 KiB (TestIdleShardStateBoundedMemory measures about 80 KiB between events; the SDK keeps
// no decode buffers per stream between events, and the reader's record chunks are sized per
// event and dropped after it). The connection's own HTTP/2 window is left uncapped: readers
// waiting for the budget keep their windows full, and a connection window smaller than their sum
// would starve the readers holding the budget of their events' bytes.
//
// Config.ShardHeldBytes is that per-shard figure, and Source.HeldBytes multiplies it by the
// shards being read now (runtime.MemoryHolder). With memory_limit "auto", the runtime sizes Go's
// soft memory limit from it (runtime.MemoryBudget: the pool's bytes twice, 1 KiB per record it
// admits, the decode budget, HeldBytes and a 48 MiB base) and follows it as readers start and
// end. BENCHMARKS.md measures peak RSS against that limit plus the binary's size at 1, 8, 32, 128
// and 256 shards with full 2 MiB events, of 1 KiB records and of 210-byte records (10,000 to an
// event). TestDecodeBudgetBoundedMemory and TestBackpressure64ShardsBoundedMemory check the heap
// with a sink that never acknowledges.
//
// # Metrics
//
// Registered on the Registerer given with WithRegisterer, labelled connector and shard:
//
//	shardbridge_kinesis_millis_behind_latest               gauge
//	shardbridge_kinesis_records_read_total                 counter
//	shardbridge_kinesis_bytes_read_total                   counter
//	shardbridge_kinesis_subscriptions_opened_total         counter
//	shardbridge_kinesis_subscriptions_ended_total{reason}  counter: expired, shard_end, idle,
//	                                                        backpressure_timeout,
//	                                                        decode_budget_timeout, closed_quiet,
//	                                                        empty, canceled, or an AWS error
//	                                                        code / transport reason
//	shardbridge_kinesis_decode_wait_seconds_total          counter: time waited for a share of
//	                                                        the decode budget (wall clock)
//	shardbridge_kinesis_resubscribe_backoff_seconds        histogram
//	shardbridge_kinesis_kpl_aggregates_total               counter
//	shardbridge_kinesis_kpl_user_records_total             counter
//	shardbridge_kinesis_kpl_corrupt_total                  counter
//	shardbridge_kinesis_parent_wait_seconds                gauge: seconds the shard has waited
//	                                                        for its parents' end checkpoints,
//	                                                        computed when scraped from the
//	                                                        source's clock; 0 when it does not
//	                                                        wait; series for every shard while
//	                                                        Run runs
//
// and shardbridge_kinesis_active_shards (gauge, label connector only). ShardReport reports each
// shard's reader state (decode_wait while it waits for the decode budget), millis behind latest, subscription start, last error, records read, and
// the parents it waits for and how long.
package kinesis
