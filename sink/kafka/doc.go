// Package kafka is shardbridge's Kafka sink: it produces the records of a source to Kafka with
// franz-go, acknowledges each record to the pipeline only once Kafka has acknowledged it, parks
// failed records in a dead-letter topic on request, and keeps checkpoints in a compacted topic.
//
// # Use
//
//	sink, err := kafka.NewSink(ctx, cfg, kafka.WithConnector("orders"), kafka.WithRegisterer(reg),
//		kafka.WithDeadLetterTopic(dlqTopic), kafka.WithLogger(log))
//	store, err := kafka.NewCheckpointStore(ctx, cfg, checkpointTopic, kafka.WithConnector("orders"))
//
// Both check at start, within sink.kafka.request_timeout, that a broker answers, and fail with
// an *UnreachableError naming the brokers otherwise. NewSink then prepares the topics it knows
// (see Topics). The caller owns both and closes them; the
// runtime pipeline calls Write, Flush (on drain) and Close, and WriteDeadLetter under
// errors.policy dlq. Config is the typed section sink.kafka; Validate fills its defaults.
//
// # Record mapping (a contract)
//
// Each runtime.Record becomes one Kafka record:
//   - key: Record.Key, byte for byte: the Kinesis partition key, or the KPL user record's
//     partition key for a de-aggregated record. A nil key (no Kinesis record has one) is a
//     Kafka null key, which franz-go spreads with its sticky partitioner.
//   - value: Record.Value, byte for byte. Never compressed, truncated or re-encoded by the
//     mapping (batch compression is transparent to consumers).
//   - timestamp: Record.Timestamp, the Kinesis ApproximateArrivalTimestamp, as a CreateTime in
//     milliseconds. A zero timestamp is replaced by the produce time.
//   - headers: Record.Headers, in order and unchanged. The Kinesis source fills
//     kinesis.stream, kinesis.shard_id, kinesis.sequence_number, kinesis.sub_sequence_number
//     (de-aggregated records only) and kinesis.explicit_hash_key (when set).
//   - topic: sink.kafka.topic, a fixed name or a template in which {stream} is Record.Stream
//     and {shard_id} is Record.Shard. A record whose rendered topic is not a legal Kafka topic
//     name fails with an error and is not produced. A missing topic is created (see Topics).
//   - partition: toPositive(murmur2(key)) % partitions with seed 0x9747b28c, exactly the Java
//     client's default partitioner for keyed records (franz-go's StickyKeyPartitioner with its
//     default KafkaHasher(murmur2)). The same partition key always lands in the same partition,
//     the partition a Java producer would pick, so per key Kafka holds records in Kinesis order.
//
// # Delivery
//
// The producer is idempotent with acks=all unless configured otherwise, so franz-go's retries
// neither duplicate nor reorder records within a partition. acks=leader needs idempotence off;
// acks none is refused by Validate, because a record would be acknowledged to the pipeline, its
// pool space released and its position checkpointed before any broker stored it. Write hands records to the producer
// and returns; each record's produce promise calls the runtime's AckFunc exactly once, with nil
// once Kafka acknowledged it, or with the error once the record failed for good (franz-go's
// retries ran out within sink.kafka.delivery_timeout, counted from Write). Promises never block.
// (franz-go's own RecordDeliveryTimeout is not used: it counts from the record's timestamp, which
// is the Kinesis arrival time and may be hours old when a stream is read behind its tip.) One failed record
// does not fail or re-send records of other partitions. Within its partition franz-go fails the
// records buffered behind it too, so that a partition never has a gap; the pipeline's
// errors.policy then decides for each of them.
//
// A record larger than sink.kafka.max_message_bytes is never produced: it is acked at once with a
// *RecordTooLargeError naming its size, the limit and the setting to change. Its size is that of
// an uncompressed Kafka v2 record batch holding only the record (61 bytes of batch header plus
// the encoded record), which is what a broker compares with max.message.bytes; the producer's
// batches are bounded the same way.
//
// Retryable is the one classifier of errors; a timeout counts as retryable although the broker
// may have written the record (at-least-once).
//
// # Topics
//
// Kafka producers do not create topics, and franz-go does not ask a broker to create one on its
// behalf, so the sink creates what it writes to, as Kafka Connect does (KIP-158), per
// sink.kafka.topic_creation. NewSink prepares a fixed topic and the dead-letter topic; Write
// prepares a templated topic before its first record. Preparing looks the topic up in a broker's
// metadata; a topic that is missing is created with CreateTopics (partitions, replication_factor,
// configs; -1 is the broker's default), and the sink then waits until every partition has a
// leader (bounded by the Write's delivery_timeout, or NewSink's context, and ten request timeouts),
// so the first produce does not fail with UNKNOWN_TOPIC_OR_PARTITION. A created dead-letter topic
// also gets max.message.bytes = dlq_max_message_bytes unless configs sets it, so that the dead
// letters the sink allows (see Dead letters) fit the topic it made. A topic is prepared once per
// Sink: concurrent first Writes of one topic share one preparation, and a prepared topic is
// remembered; a failed preparation is not, so a later Write tries again. TOPIC_ALREADY_EXISTS
// (someone created it meanwhile) is fine.
//
// A missing topic with topic_creation.enabled false, a refused CreateTopics (an ACL, a creation
// policy, an invalid replication factor, partition count or config) and a refused metadata
// look-up are a *TopicError naming the topic, the broker's answer and the fix; it is not
// retryable. From NewSink it fails the start; in Write it is the ack error of the topic's
// records, never produced, and errors.policy decides.
//
// # Dead letters
//
// WriteDeadLetter produces the failed record synchronously to errors.dlq_topic with its key,
// value, timestamp and headers, followed by these headers:
//   - shardbridge.error: the cause's message
//   - shardbridge.original_topic: the topic the record was meant for ("" if it had none)
//   - shardbridge.stream, shardbridge.shard_id: where it came from
//   - shardbridge.sequence_number, shardbridge.sub_sequence_number: its Kinesis position
//
// Dead letters go through a producer of their own, whose limit is dlq_max_message_bytes
// (default 11MiB, room for any Kinesis record), so a record refused for being over
// max_message_bytes is dead-lettered whole; the dead-letter topic's max.message.bytes must be as
// large (the sink sets it so on a dead-letter topic it creates). Data is never changed to make a dead letter fit: a dead letter over dlq_max_message_bytes
// (or refused by the broker as too large) makes WriteDeadLetter return a *RecordTooLargeError
// naming the setting, and the pipeline stops without a checkpoint past the record.
//
// # Checkpoints
//
// CheckpointStore keeps one record per shard in the compacted topic checkpoint.topic, which it
// creates (1 partition, the broker's replication factor, cleanup.policy=compact) when missing;
// it refuses to start on a topic with any other cleanup.policy.
//
// The key is connector/stream/shard, each part escaped so the key splits back unambiguously:
// '%' is written "%25" and '/' is written "%2F" (Kinesis stream names and shard ids contain
// neither). The value is a versioned JSON document:
//
//	{"v":1,"sequence_number":"49590338271490256608559692538361571095921575989136588898",
//	 "sub_sequence_number":0,"shard_end":false,"written_at":"2026-01-02T03:04:05.123Z",
//	 "owner":{"id":"worker-1","epoch":3}}
//
// A null value (tombstone, written by Delete) removes the shard's checkpoint. A value of
// another version is an *UnknownVersionError. Load reads the topic from its start to the end
// offsets taken when Load begins, and keeps the latest value per key of the requested connector
// and stream. Commit produces and returns only once Kafka acknowledged every checkpoint.
//
// How a checkpoint gets committed depends on the connector's delivery, and both ways live in
// this package, because with exactly-once the records and their checkpoints share one producer:
//
//   - at_least_once: the runtime calls CheckpointStore.Commit every checkpoint.interval with
//     each shard's highest contiguous acknowledged position (runtime/checkpoint.go). Every value
//     carries its writer's owner id and epoch; with several workers the epoch is the group
//     generation, and the runtime commits only under the group's lease.
//   - exactly_once: the runtime calls Sink.Commit (txn.go) instead. The sink's own transactional
//     producer flushes the transaction's records, writes the checkpoint values to the same
//     topic and key as the store would inside the same transaction, and commits; the top of
//     txn.go says how it fences a writer that lost its shards. The store's Load reads
//     read_committed, so a checkpoint is seen exactly when its records are.
//
// # Metrics
//
// Registered with the prometheus.Registerer given by WithRegisterer (never the global one):
//   - shardbridge_kafka_records_produced_total{connector}: records Kafka acknowledged
//   - shardbridge_kafka_bytes_produced_total{connector}: their key, value and header bytes
//   - shardbridge_kafka_produce_latency_seconds{connector}: histogram, Write to ack or failure
//   - shardbridge_kafka_inflight_records{connector}: produced, not yet acked or failed
//   - shardbridge_kafka_produce_errors_total{connector,class}: records failed for good, by class
//     too_large, timeout, auth, retryable, fatal, canceled
//   - shardbridge_kafka_dead_letters_total{connector}: records written to the dead-letter topic
//   - shardbridge_kafka_topics_created_total{connector}: destination and dead-letter topics the
//     sink created
//   - shardbridge_checkpoint_commit_latency_seconds{connector}: histogram of Commit
//   - shardbridge_checkpoint_age_seconds{connector,shard}: seconds since the shard's last
//     committed checkpoint, computed when scraped
//
// Records skipped under errors.policy skip are counted by the pipeline, not here.
//
// # Security
//
// TLS (CA file, client certificate and key, skip-verify for local use) and SASL PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512 and AWS_MSK_IAM (franz-go's sasl/aws, with credentials from the
// standard AWS chain, fetched for every authentication). The SASL password is a config.Secret:
// it prints as [redacted] in logs, errors and API output.
package kafka
