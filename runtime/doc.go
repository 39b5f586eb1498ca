// Package runtime is what every shardbridge connector shares: the global pending pool, the
// checkpoint tracker, the Source and Sink contracts, and the pipeline that wires one source to one
// sink with end-to-end backpressure.
//
// # The flow of one record
//
//  1. A source's shard reader calls [Emitter.WaitForSpace] before it reads the next batch from
//     upstream. While the [Pool] is full (or the connector is paused) it blocks; past the wait
//     timeout it gets [ErrBackpressureTimeout] and should close its upstream subscription cleanly
//     and reopen it later from its last position.
//  2. It hands the decoded records of one shard, in shard order, to [Emitter.Emit]. Emit acquires
//     their count and bytes from the pool (blocking while they do not fit), registers each record's
//     [Position] with the shard's [ShardTracker], and passes the batch to the [Sink]. A batch
//     larger than the whole pool is admitted alone once the pool is empty, so one oversized
//     event can never livelock a reader; usage then exceeds the limit by that batch only.
//  3. The sink calls the [AckFunc] exactly once per record. On success the record's pool space is
//     released and its position is acknowledged in the tracker. On a failure the connector's
//     [ErrorPolicy] decides: fail stops the connector without acknowledging, skip counts the record
//     as done, dlq parks it with a [DeadLetterWriter] and then counts it as done. A failed record
//     is never acknowledged silently.
//  4. Every checkpoint interval, and at once when a shard ends, the pipeline writes each shard's
//     highest contiguous acknowledged [Mark] to the [CheckpointStore].
//  5. On shutdown the pipeline stops reading, waits up to the shutdown timeout for in-flight records,
//     flushes the sink, writes final checkpoints and returns.
//
// # Several workers
//
// With an [Ownership] (package group implements one over Kafka's group protocol), several
// processes share a connector: each shard belongs to a slot, and a worker reads only the shards
// of the slots it owns. A source asks before it reads a shard ([ShardOwner.Own]) and reads under
// the context it gets, which ends when the slot moves. The [OwnershipHandler] calls are the
// handover: Assigned loads the slots' checkpoints (another worker may have moved them) and lets
// their readers start; Revoked stops the readers, waits for their records in flight, writes their
// checkpoints and only then returns, so the next owner starts after a drained, checkpointed
// handover; Lost (the worker was counted out) stops the readers and commits nothing for them.
// Every checkpoint commit goes out under a [Lease] the group confirmed just before
// (checkpoint.go). A child shard's parent may be read by another worker: WaitEnded then finds the
// parent's end in the store (ownership.go's lineage watcher).
//
// # Exactly once
//
// Under [DeliveryExactlyOnce] the sink is a [Transactor]: records are written into a Kafka
// transaction, and the checkpoints that cover them are written into the same transaction when it
// commits (every checkpoint interval, or when the pool is half full). A record's pool space comes
// back only then. An aborted transaction rewinds every reader to the last committed checkpoint;
// a fenced writer stops. txn.go tells the whole flow; checkpoint.go is where every checkpoint, in
// either mode, gets committed.
//
// # Memory
//
// The pool bounds the records in flight; a [DecodeBudget], one per process like the pool,
// bounds what the sources are decoding before it enters the pool, whatever the number of shards;
// [MemoryBudget] bounds the process around both. Sources that hold memory per shard besides
// (transport buffers, the readers' state) report it as a [MemoryHolder], the [Worker] sums it over
// running connectors, and the budget turns that, twice the pool's bytes, [RecordOverhead] per
// record the pool admits, the decode budget and a fixed base into a soft limit for Go's memory
// manager, which it follows as shards start and end.
//
// # Import direction
//
// cmd imports source/* and sink/*, which import runtime. runtime imports no connector.
package runtime
