// Package group lets several shardbridge processes (workers) share one connector's shards, with
// Kafka's group protocol as the coordinator: membership, failure detection and rebalancing are
// Kafka's, through franz-go's consumer group. There is no lease table, election or heartbeat
// protocol of shardbridge's own.
//
// # Units of ownership
//
// Each connector has a coordination topic (group.topic, created with group.partitions
// partitions when missing) that holds no data. Its partitions are the units of ownership, the
// slots: shard N (Kinesis's shardId-…N) belongs to partition N mod the partition count, the same on
// every worker and for ever. Owning a partition is owning its shards: reading them, writing their
// checkpoints, and (exactly-once) committing the transactions that hold their records.
//
// # How a shard moves
//
// The workers join one Kafka group (group.id) consuming the coordination topic, with a balance
// strategy of this package's ("shardbridge-shards-v1", balancer.go). It is cooperative (KIP-429):
//
//  1. A worker joins or leaves, or the open shards change (each worker reports the slots holding
//     open shards in its join metadata, and rejoins when its listing changes).
//  2. The leader balances: every slot stays with its owner unless the owner holds more than its
//     share; slots with open shards are spread so that workers differ by at most one open shard
//     (balance.go), empty slots by count. Slots that move are left out of the new owner's
//     assignment in this round.
//  3. The old owner sees the slot revoked (OnPartitionsRevoked), and the runtime hands it over
//     before the callback returns: its readers stop and close their subscriptions, their records
//     in flight are acknowledged, and their final checkpoints are written
//     (runtime.OwnershipHandler.Revoked).
//  4. The old owner rejoins; in the second round the leader gives the slot to the new owner,
//     which loads the checkpoints and starts reading (runtime.OwnershipHandler.Assigned).
//
// Slots that do not move keep being read through the whole rebalance.
//
// # A worker that dies or freezes
//
// A worker killed without a goodbye misses its heartbeats; after group.session_timeout the
// coordinator evicts it and the others take its slots, resuming from its last checkpoints. A
// worker frozen past its session (a long pause, SIGSTOP) finds out when it runs again: its
// heartbeat is refused and franz-go reports its slots lost (runtime.OwnershipHandler.Lost); it
// stops their readers and writes nothing more for them. It cannot write a stale checkpoint
// meanwhile either: the runtime commits checkpoints only under a Lease, a heartbeat of its own
// that the coordinator answers for this member and generation, and only within half a session
// timeout of it (see Group.Lease and runtime/checkpoint.go). Under exactly-once the group
// generation also fences its transactions (KIP-447, sink/kafka/txn.go).
//
// # Metrics
//
// Registered by NewMetrics on the registry it is given (never the global one), shared by every
// connector's Group in the process:
//
//	shardbridge_group_rebalances_total  counter  rebalances this worker took part in {connector}
//	shardbridge_group_owned_shards      gauge    open shards this worker owns now {connector, worker}
//	shardbridge_group_generation        gauge    the group generation this worker is in, -1 outside {connector, worker}
//
// The runtime adds shardbridge_group_handover_seconds (start of a rebalance to a moved shard's
// reader starting on its new owner) and shardbridge_checkpoint_commits_total{result="fenced"}.
package group
