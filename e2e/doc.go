// Package e2e is shardbridge's end-to-end fault suite. It builds the shardbridge binary once
// with the race detector, runs it as a separate process per scenario with a YAML config, and
// checks what arrives in Kafka against what was written to Kinesis. The package holds only tests
// (this file documents them).
//
// # How to run it
//
//	go test -race ./e2e/              # the whole suite, about 7 minutes on a 2-core machine
//	go test -race -run TestKillRestart -v ./e2e/
//
// It is part of the README's test command (./scripts/test runs go test -race ./...), and
// .ci/run installs its one outside tool, kcat. Without kcat on PATH every scenario skips and
// says why; with -short the package skips. A failing scenario prints the process's log, and,
// when the process was still running, its connector status and pool, record and subscription
// metrics; a data race reported by the binary fails the scenario.
//
// # The peers
//
//   - Kinesis: source/kinesis/kinesistest in the test process (HTTPS, HTTP/2), with short
//     subscription lifetimes (5 s) and heartbeats (500 ms), so every scenario resubscribes.
//   - Kafka: one kfake broker in the test process, persisting to a data dir, so it can be
//     closed and started again on the same port with its data.
//   - Read-back: kcat (librdkafka), a client nobody here wrote, with its JSON envelope.
//
// The binary talks to both over loopback as it would to AWS and a Kafka cluster; the config sets
// endpoint, tls_skip_verify and static credentials. The suite waits on the HTTP API
// (/connectors/NAME/status, /metrics) and the log, polling with a deadline; it never sleeps to
// wait for an outcome (the only sleeps are the fault windows themselves: the broker's downtime
// and the 30 s of produce errors).
//
// # What every scenario checks
//
// Records are written with PutRecords: 32 partition keys, each value starting with its key and a
// per-key counter ("k007:00000042:"). The truth is read back from Kinesis with GetRecords (in
// TestRecordSizesUnderEachPolicy, the writer's own record with PutRecords' answers, see there).
// Each Kafka message names its record by the headers kinesis.shard_id and
// kinesis.sequence_number, and must carry that record's key and value byte for byte and its
// arrival time as timestamp (within the PutRecords call when the writer is the truth). Then:
//
//   - Loss: a record with no message. Always 0.
//   - Duplicates: every message of a record after its first. The bound is per scenario, below.
//   - Order: all messages of a key are in one partition, and in offset order the first copies
//     of the key's records have strictly increasing counters (write order). A replay may repeat
//     records already there, but never puts a new record before an older one.
//   - After every mirror the pool is empty (records and bytes): every acquire was released.
//
// # Scenarios and duplicate bounds
//
//   - TestGracefulStopRestart: SIGTERM mid-stream, then a restart. The drain acknowledges what
//     is in flight and commits final checkpoints: after it each shard's checkpoint is exactly
//     the shard's last record in Kafka, the restarted process's GET /connectors/NAME/offsets
//     shows those checkpoints, and the restart gives 0 duplicates.
//   - TestMissingTopicCreated: no topic exists in the broker and the config leaves
//     sink.kafka.topic_creation and errors.policy at their defaults; the sink creates the mirror
//     topic at start (shardbridge_kafka_topics_created_total is 1) and the mirror is exact: 0.
//   - TestKillRestart: SIGKILL mid-stream, then a restart. Only records after the last committed
//     checkpoint can be sent again, and every duplicate must be after the checkpoint that was in
//     the checkpoint topic before the restart. Bound: pool.max_pending_records (in flight, maybe
//     written, not acknowledged) + the records acknowledged in one checkpoint.interval, plus as
//     many again for the commit's own latency. The ack rate is the larger of the write rate and
//     the rate measured over the last interval before the kill: with a 2,000-record pool, a 1 s
//     interval and about 2,000 records/s the bound is about 2,000 + 2 x 2,000 = 6,000. Runs see
//     about 130-500, as kfake acknowledges fast and the pool is nearly empty at the kill.
//   - TestKafkaBrokerRestart: the broker is closed mid-stream and started again on the same port
//     and data dir once the records it cannot take hold half the pool (and at least 3 s later).
//     Produces and checkpoint commits are retried. Bound:
//     pool.max_pending_records (a batch the broker wrote but could not acknowledge may be sent
//     again). Runs see 0.
//   - TestProduceErrorsOnePartition: for 30 s every produce to partition 1 gets
//     NOT_LEADER_FOR_PARTITION; delivery_timeout is 90 s. The pool fills (at least 90% of its
//     1,000 records, with readers waiting on it), then recovers. The idempotent producer retries
//     without duplicates: 0.
//   - TestKinesisConnectionResets: every subscription's HTTP/2 stream is reset after 4 events,
//     again and again (at least 12 resets counted by reason). Each reader resumes after its last
//     emitted record: 0 duplicates, and the process never restarts.
//   - TestSplitThenMerge: shard 0 is split, then one child is merged with shard 1, while records
//     are written. 0 duplicates, per-key order across parents and children, and each parent has
//     an end checkpoint committed before any checkpoint of its children (the checkpoint topic
//     has one partition, so its offsets order the commits).
//   - TestKinesisMockSplitThenMerge: the same split and merge against kinesis-mock (npm
//     kinesis-local, the emulator LocalStack runs) over HTTPS with EFO. kinesis-mock never ends
//     a closed shard's subscription, so each parent ends through the closed-shard probe
//     (closed_shard_quiet_period, then GetRecords to the end): every record arrives, 0
//     duplicates, children after parents per key. It needs kinesis-mock (.tools/kinesis-mock,
//     which ./scripts/test installs) and skips, saying why, without it.
//   - TestConsumerRegistrationRace: two runtimes start at the same moment with the same
//     efo.consumer_name and no consumer registered (both first describes are answered
//     ResourceNotFound, so both register, every run). Both come up RUNNING and the stream has one
//     consumer. They run different connectors into different topics: two processes of one
//     connector would both write every record to one topic, which is a misconfiguration rather
//     than a bound. Sharing the consumer they take each other's subscriptions over; each
//     resumes after its own last record. One is stopped gracefully midway: the other's topic
//     holds every record with 0 duplicates; the stopped one's topic holds a gap-free prefix of
//     each shard with 0 duplicates.
//   - TestPoolFullLongerThanWaitTimeout: produce responses are delayed 3 s with pool.wait_timeout
//     at 2 s, so readers close subscriptions with reason backpressure_timeout (counted in
//     shardbridge_kinesis_subscriptions_ended_total) and resubscribe: 0 duplicates.
//   - TestRecordSizesUnderEachPolicy: 10,000 records of random sizes up to 1 MiB, some over
//     sink.kafka.max_message_bytes (256KiB), with three connectors (errors.policy fail, dlq,
//     skip) in one runtime. skip: every record that fits exactly once, the others counted in
//     shardbridge_records_skipped_total. fail: FAILED with an error naming the size and
//     max_message_bytes, no checkpoint at or past a shard's first too-large record, nothing in
//     the topic duplicated or too large, and a restart fails again without passing it. dlq: every
//     record that fits exactly once in the mirror topic, every too-large one exactly once and
//     whole in the dead-letter topic (whose max.message.bytes is raised to 12 MiB; dead letters
//     may be up to sink.kafka.dlq_max_message_bytes, 11MiB), with shardbridge.error naming the
//     size and max_message_bytes; the connector keeps running. The sizes: one record in 20 log-uniform over 1 B .. 1 MiB, the rest over
//     1 B .. 16 KiB, about 50 MiB in all. Log-uniform over 1 B .. 1 MiB for every record is about
//     740 MiB, and writing that alone took 2m38s under the race detector on the 2-core machine.
//
// # Group mode: several workers of one connector
//
// These scenarios start three processes with the same config (group.enabled, a 3 s session
// timeout, 500 ms heartbeats, a 1 s checkpoint interval, a 2,000-record pool), each with its own
// worker id (SHARDBRIDGE_WORKER_ID), on one kfake broker (which allows sessions down to 1 s) and
// one stream. Records are written only once the shards are spread, so every worker reads some.
// Besides what every scenario checks, each one checks, from the workers' status, that the open
// shards are owned by exactly one worker each and spread within one per worker, before the fault
// and after it; and, from the checkpoint topic (one partition, so its offsets order every
// worker's commits), that no shard's checkpoints ever go back. Takeover times are measured from
// the fault to the first record each of the victim's shards has read on another worker
// (shardbridge_kinesis_records_read_total, polled every 100 ms); the bound is the session timeout
// plus 7 s (the coordinator's notice, the survivors' rejoin, their checkpoint load and
// subscription, under the race detector). Runs see about 4 s after a kill or a freeze and 1.6 s
// after a SIGTERM.
//
//   - TestGroupThreeWorkersShareShards: eight shards over three workers; every worker's status
//     shows the group's whole assignment, matching what each says it owns. 0 duplicates.
//   - TestGroupKillOneOfThree: SIGKILL to one of three mid-stream (it owned shards, had
//     acknowledged records and committed checkpoints). Its shards are read again by the other two
//     within the bound above, from its last checkpoints. Then it starts again with the same worker
//     id, rejoins and gets its share back through graceful handovers, while records are still
//     written. Bound, derived as in TestKillRestart: what the dead worker had in flight
//     (pool.max_pending_records) + what it acknowledged in one checkpoint interval, twice (one
//     interval not yet committed, one for the commit's own latency), its ack rate being the
//     larger of its share of the write rate and the rate measured over the last interval before
//     the kill: 2,000 + 2 x about 420 = about 2,840. Every duplicate must be of a shard the dead
//     worker owned, after its last checkpoint there (the last one it wrote in the generation it
//     died in: checkpoints carry the owner's id and the group generation). Runs see about 350.
//   - TestGroupTerminateOneOfThree: SIGTERM to one of three mid-stream. It drains, commits and
//     leaves; the others take its shards (one handover counted per shard in
//     shardbridge_group_handover_seconds on them) and resume exactly after its final
//     checkpoints: 0 duplicates.
//   - TestGroupFrozenWorker: SIGSTOP to one of three for longer than the session timeout. The
//     others take its shards within the bound above and commit checkpoints of them, twice each,
//     before it is thawed (SIGCONT); by then they have caught up, so what the frozen worker still
//     had in flight lands after their copies. Thawed, it must log that it lost its shards
//     ("group: shards lost"), and no checkpoint it wrote in the generation it was frozen in may
//     come after the new owner's first checkpoint of the shard; its commit attempted on waking is
//     refused without a lease (shardbridge_checkpoint_commits_total{result="fenced"}, 1 in runs).
//     It rejoins and gets its share back. Bound and duplicate positions as after a kill; runs see
//     about 250.
//   - TestGroupSplitAcrossWorkers: six shards over three workers; a shard is split whose owner
//     owns neither coordination-topic partition of the children (shards 6 and 7), so at least one
//     child is read by another worker, which learns of the parent's end only from the checkpoint
//     topic. The open shards are spread again, each child's first checkpoint comes after the
//     parent's end checkpoint, per-key order holds across parent and children, and 0 duplicates.
//   - TestGroupKinesisMockKillOneOfThree: TestGroupKillOneOfThree against kinesis-mock with EFO
//     (the three workers share one EFO consumer), at 300 records/s. Same checks and duplicate
//     bound: 2,000 plus twice the dead worker's ack rate. The takeover bound is the session
//     timeout plus 10 s: the emulator takes much of the machine, and runs see 5 to 8 s. It skips
//     without kinesis-mock.
//
// The group scenarios run in parallel with each other (t.Parallel), which keeps the suite's wall
// time down; their bounds hold with the machine that loaded.
//
// # Exactly-once scenarios
//
// exactly_once_test.go runs the faults above with connectors[].delivery exactly_once, and reads
// with kcat read_committed (isolation.level=read_committed, what a consumer of an exactly-once
// mirror sets). Each checks: 0 missing, 0 duplicates, per-key order; every committed value of
// the checkpoint topic, in offset order, never moves a shard backwards, never moves it past its
// end, never lowers its owner epoch; and after the last graceful stop each shard's checkpoint is
// exactly its last record in the mirror. Each also shows that the fault hit a transaction:
//
//   - TestExactlyOnceKillRestart: SIGKILL mid-transaction; read_uncommitted sees the killed
//     process's aborted records.
//   - TestExactlyOnceBrokerRestart: the broker is down 5 s (under the 10 s transaction timeout)
//     and comes back with its data; a commit waits through the outage (one took over 2 s) and
//     commits the open transaction whole, or, when the transaction was already old as the broker
//     went, gives up at three quarters of its timeout, aborts and reads again. (kfake, restarted, aborts a transaction older than its
//     timeout without bumping the producer's epoch, which Kafka does; see the test.)
//   - TestExactlyOnceProduceErrorsOnePartition: 15 s of NOT_LEADER_FOR_PARTITION on one
//     partition, longer than the transaction timeout: commits give up at three quarters of it,
//     abort and rewind (transactions_total{result="aborted"} and rewinds_total rise, and
//     read_uncommitted sees the aborted records); the connector never stops.
//   - TestExactlyOnceKinesisConnectionResets: subscriptions reset again and again (at least 12
//     resets); several transactions commit, none aborts.
//   - TestExactlyOnceSplitThenMerge: each parent's end is committed before any checkpoint of its
//     children.
//   - TestExactlyOnceGracefulStopRestart: the drain commits: read_uncommitted sees exactly what
//     read_committed sees, and no transaction aborts in the restart.
//   - TestExactlyOnceFencedByNewProcess: a second process of the same connector (same
//     transactional id) fences the first: the first's connector is FAILED with an error naming
//     the fence, counts one fenced transaction, logs it, emits nothing more, while the first
//     process's other connector runs on.
//   - TestExactlyOnceGroupKillOneOfThree: SIGKILL of one of three workers; the others take its
//     shards; read_uncommitted sees its aborted records.
//   - TestExactlyOnceGroupZombie: one of three workers is frozen (SIGSTOP) past its session
//     twice, for about 5 s and for 12 s (past the transaction timeout), then resumed; each time
//     its transaction aborts (after 12 s the log says it outlived its timeout: the broker
//     aborted it, or the zombie did at three quarters of it), the others never stop, and it
//     rejoins and commits again; it never counts a fence.
//
// TestProduceErrorsOnePartition and TestRecordSizesUnderEachPolicy run in parallel (after the
// others, as go test runs parallel tests): most of the first's time is its fault's 30 s window,
// and the second is the suite's busiest. So do the exactly-once variants of the produce errors,
// the connection resets, the split and merge and the graceful stop; the scenarios that kill,
// freeze or fence processes, or restart the broker, run alone.
package e2e
