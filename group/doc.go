// Package group shares one connector's shards among several shardbridge processes (workers)
// through Kafka's consumer group protocol, on the connector's own brokers: it implements
// runtime.Ownership (and runtime.GroupDescriber for the status and the offsets API).
//
// The workers join the group connectors[].group.id and subscribe to a coordination topic
// (connectors[].group.topic, created with connectors[].group.partitions partitions when
// missing) that holds no data: its partitions are the units of ownership ("slots"). Shard N
// (the number that ends its id, shardId-000000000007) belongs to partition N mod partitions,
// and the worker a partition is assigned to reads that partition's shards and writes their
// checkpoints.
//
// The group's balancer (balance.go, balancer.go) is cooperative (KIP-429): a partition that
// stays with its owner keeps being read through a rebalance, and one that moves is first
// revoked by its old owner, which stops its readers, waits for their records in flight and
// commits their checkpoints (runtime.OwnershipHandler.Revoked), and only in the next round
// assigned to the new one. The leader spreads the partitions that hold an open shard (what each
// worker lists in its join metadata) so that every worker's count of open shards is within one
// of every other's, then the rest by count, moving as few as it can. A worker that misses its
// session loses its partitions without a handover (Lost) and the others resume from its last
// checkpoints. Lease fences checkpoint commits: a commit is sent only after a heartbeat of its
// own confirmed the worker's membership, and only until half a session timeout later, before the
// group could give its shards to another worker.
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
// The runtime adds shardbridge_group_handover_seconds (a moved shard's reader starting here,
// from the rebalance's start) and shardbridge_checkpoint_commits_total{result="fenced"}.
package group
