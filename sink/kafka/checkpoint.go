package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shardbridge/shardbridge/runtime"
)

var _ runtime.CheckpointStore = (*CheckpointStore)(nil)

// CheckpointStore keeps checkpoints in a compacted Kafka topic, the way Kafka Connect keeps
// source offsets. See the package doc for the key and value format and for fencing.
type CheckpointStore struct {
	topic string
	cl    *kgo.Client
	adm   *kadm.Client
	cfg   Config    // for Load's short-lived consumers
	extra []kgo.Opt // options added by withKgoOpts (tests)
	log   *slog.Logger
	m     *storeMetrics
	now   func() time.Time

	reqTimeout time.Duration
}

// NewCheckpointStore connects with the connection settings of cfg (the sink's sink.kafka
// section: brokers, TLS, SASL, timeouts; its topic is not used and may be empty) and opens the checkpoint topic (the connector's
// checkpoint.topic). It creates the topic with cleanup.policy=compact if it is missing, and
// refuses a topic whose cleanup.policy is anything but compact: with delete, the checkpoint of a
// quiet shard would expire and the shard would be read again from its start. The caller owns
// the store and must Close it.
func NewCheckpointStore(ctx context.Context, cfg Config, topic string, opts ...Option) (*CheckpointStore, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if tmpl, err := parseTopicTemplate(topic); err != nil || !tmpl.fixed || topic == "" {
		return nil, fmt.Errorf("checkpoint.topic %q is not a topic name; use letters, digits, '.', '_' and '-' only", topic)
	}
	if cfg.Topic == "" {
		// The store writes only to its own topic; sink.kafka.topic is required of the sink,
		// not of the store, so a config with just the connection settings is enough.
		cfg.Topic = topic
	}
	if err := cfg.Validate(o.connector, "sink.kafka"); err != nil {
		return nil, fmt.Errorf("checkpoint store config: %w", err)
	}
	log := o.log.With("connector", o.connector, "checkpoint_topic", topic)
	kopts, err := clientOpts(ctx, &cfg, log)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	cl, err := kgo.NewClient(append(kopts, o.kgoOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store client: %w", err)
	}
	if err := ping(ctx, cl, &cfg); err != nil {
		cl.Close()
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	s := &CheckpointStore{
		topic: topic,
		cl:    cl,
		adm:   kadm.NewClient(cl),
		cfg:   cfg,
		extra: o.kgoOpts,
		log:   log,
		m:     newStoreMetrics(o.reg, o.now),
		now:   o.now,

		reqTimeout: cfg.RequestTimeout.D(),
	}
	if err := s.ensureTopic(ctx, o.cpPartitions, o.cpReplication); err != nil {
		cl.Close()
		return nil, err
	}
	return s, nil
}

// NotCompactedError is returned when the checkpoint topic exists with a cleanup.policy other
// than compact.
type NotCompactedError struct {
	Topic  string
	Policy string
}

func (e *NotCompactedError) Error() string {
	return fmt.Sprintf("checkpoint topic %s has cleanup.policy=%s, not compact: old checkpoints would be deleted and shards re-read from their start; "+
		"set cleanup.policy=compact on it (kafka-configs --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact) or choose another checkpoint.topic",
		e.Topic, e.Policy, e.Topic)
}

func (s *CheckpointStore) ensureTopic(ctx context.Context, partitions int32, rf int16) error {
	state, err := topicState(ctx, s.cl, s.topic)
	if err != nil {
		return fmt.Errorf("describe checkpoint topic %s: %w", s.topic, err)
	}
	if state == topicMissing {
		compact := "compact"
		_, err := s.adm.CreateTopic(ctx, partitions, rf, map[string]*string{"cleanup.policy": &compact}, s.topic)
		switch {
		case err == nil:
			s.log.Info("created checkpoint topic", "partitions", partitions, "cleanup_policy", compact)
			return waitTopicReady(ctx, s.cl, s.topic, s.reqTimeout)
		case errors.Is(err, kerr.TopicAlreadyExists):
			// Another worker (or another connector of this process) created it between our
			// look and our create. It may not have leaders yet: wait as its creator does, then
			// check what it made.
			if err := waitTopicReady(ctx, s.cl, s.topic, s.reqTimeout); err != nil {
				return err
			}
		default:
			return fmt.Errorf("create checkpoint topic %s with cleanup.policy=compact: %w", s.topic, err)
		}
	}
	rcs, err := s.adm.DescribeTopicConfigs(ctx, s.topic)
	if err != nil {
		return fmt.Errorf("describe configs of checkpoint topic %s: %w", s.topic, err)
	}
	rc, err := rcs.On(s.topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return fmt.Errorf("describe configs of checkpoint topic %s: %w", s.topic, err)
	}
	policy := "delete" // Kafka's default when the broker reports none
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" && c.Value != nil {
			policy = *c.Value
		}
	}
	if policy != "compact" {
		return &NotCompactedError{Topic: s.topic, Policy: policy}
	}
	return nil
}

// Load reads the checkpoint topic from its start to the end offsets taken when Load begins and
// returns the latest checkpoint of every shard of connector's stream; a tombstone deletes a
// shard's checkpoint. A value that cannot be decoded (including an unknown version) is an error
// naming its key and offset: resuming from a guess could skip or repeat records.
//
// Load stops at the end offsets taken at its start. It reads control records too, so a partition
// whose last offset is a transaction marker still ends; and Kafka's log cleaner never removes a
// partition's last batch, so the offset before the end is always read.
func (s *CheckpointStore) Load(ctx context.Context, connector, stream string) ([]runtime.Checkpoint, error) {
	starts, err := s.adm.ListStartOffsets(ctx, s.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoints: list start offsets of %s: %w", s.topic, err)
	}
	ends, err := s.adm.ListEndOffsets(ctx, s.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoints: list end offsets of %s: %w", s.topic, err)
	}
	from := make(map[int32]kgo.Offset)
	last := make(map[int32]int64) // the offset to read up to, inclusive
	ends.Each(func(e kadm.ListedOffset) {
		start := int64(0)
		if so, ok := starts.Lookup(s.topic, e.Partition); ok {
			start = so.Offset
		}
		if e.Offset > start {
			from[e.Partition] = kgo.NewOffset().At(start)
			last[e.Partition] = e.Offset - 1
		}
	})

	prefix := string(checkpointKey(connector, stream, "")) // connector/stream/
	latest := make(map[string]*kgo.Record)
	if len(from) > 0 {
		if err := s.readTo(ctx, from, last, func(r *kgo.Record) {
			if len(r.Key) > len(prefix) && string(r.Key[:len(prefix)]) == prefix {
				latest[string(r.Key)] = r
			}
		}); err != nil {
			return nil, err
		}
	}

	var cps []runtime.Checkpoint
	for key, r := range latest {
		if r.Value == nil {
			continue // tombstone
		}
		conn, str, shard, ok := parseCheckpointKey(r.Key)
		if !ok {
			return nil, fmt.Errorf("load checkpoints: key %q at %s/%d offset %d is not connector/stream/shard", key, s.topic, r.Partition, r.Offset)
		}
		v, err := decodeCheckpoint(r.Value)
		if err != nil {
			return nil, fmt.Errorf("load checkpoints: key %q at %s/%d offset %d: %w", key, s.topic, r.Partition, r.Offset, err)
		}
		cps = append(cps, runtime.Checkpoint{
			Connector: conn,
			Stream:    str,
			Shard:     shard,
			Mark: runtime.Mark{
				Position: runtime.Position{Sequence: v.SequenceNumber, SubSequence: v.SubSequenceNumber},
				End:      v.ShardEnd,
			},
			Owner:   v.Owner,
			Written: v.WrittenAt,
		})
	}
	s.log.Info("loaded checkpoints", "stream", stream, "shards", len(cps))
	return cps, nil
}

// readTo consumes the partitions in from up to and including last, calling fn for each data
// record in offset order per partition.
func (s *CheckpointStore) readTo(ctx context.Context, from map[int32]kgo.Offset, last map[int32]int64, fn func(*kgo.Record)) error {
	opts, err := connOpts(ctx, &s.cfg, s.log)
	if err != nil {
		return fmt.Errorf("load checkpoints: consumer: %w", err)
	}
	opts = append(opts, s.extra...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.topic: from}),
		kgo.KeepControlRecords(),
		// Checkpoints written in a transaction (exactly-once) count only once it commits. The end
		// offsets are the high watermark, past any transaction still open, so a Load waits for
		// such a transaction to end (within its timeout) rather than resume before it.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("load checkpoints: consumer: %w", err)
	}
	defer cl.Close()
	remaining := len(last)
	for remaining > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("load checkpoints: read %s: %w", s.topic, err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("%s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return fmt.Errorf("load checkpoints: read %s: %w", s.topic, ferr)
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			end, ok := last[fp.Partition]
			if !ok {
				return
			}
			for _, r := range fp.Records {
				if r.Offset <= end && !r.Attrs.IsControl() {
					fn(r)
				}
				// Read committed, the record at end may be one of an aborted transaction, which
				// the fetch leaves out; the transaction's abort marker, after it, is the end then.
				if r.Offset >= end {
					delete(last, fp.Partition)
					remaining--
					break
				}
			}
		})
	}
	return nil
}

// Commit produces cps and returns once Kafka acknowledged every one, bounded by ctx and by
// sink.kafka.delivery_timeout. A zero Written is set to
// the store's clock. On error some may have been written; writing them again is harmless.
func (s *CheckpointStore) Commit(ctx context.Context, cps []runtime.Checkpoint) error {
	if len(cps) == 0 {
		return nil
	}
	start := time.Now()
	recs := make([]*kgo.Record, len(cps))
	for i := range cps {
		cp := cps[i]
		if cp.Written.IsZero() {
			cp.Written = s.now()
		}
		val, err := encodeCheckpoint(cp)
		if err != nil {
			return fmt.Errorf("commit checkpoint of shard %s: encode: %w", cp.Shard, err)
		}
		recs[i] = &kgo.Record{Topic: s.topic, Key: checkpointKey(cp.Connector, cp.Stream, cp.Shard), Value: val}
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryTimeout.D())
	defer cancel()
	results := s.cl.ProduceSync(dctx, recs...)
	var errs []error
	for i, r := range results {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("commit checkpoint of shard %s: %w", cps[i].Shard, r.Err))
			continue
		}
		s.m.age.committed(cps[i].Connector, cps[i].Shard, s.now())
	}
	// One observation per connector in the batch (normally one).
	seen := map[string]bool{}
	for _, cp := range cps {
		if !seen[cp.Connector] {
			seen[cp.Connector] = true
			s.m.commitLatency.WithLabelValues(cp.Connector).Observe(time.Since(start).Seconds())
		}
	}
	return errors.Join(errs...)
}

// Put writes one checkpoint, for an operator API that sets a shard's position by hand.
func (s *CheckpointStore) Put(ctx context.Context, cp runtime.Checkpoint) error {
	return s.Commit(ctx, []runtime.Checkpoint{cp})
}

// Delete writes a tombstone for the shard's checkpoint, so that Load no longer returns it and
// compaction eventually removes it. It returns once Kafka acknowledged the tombstone.
func (s *CheckpointStore) Delete(ctx context.Context, connector, stream, shard string) error {
	r := &kgo.Record{Topic: s.topic, Key: checkpointKey(connector, stream, shard)}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryTimeout.D())
	defer cancel()
	if err := s.cl.ProduceSync(dctx, r).FirstErr(); err != nil {
		return fmt.Errorf("delete checkpoint of shard %s: %w", shard, err)
	}
	s.m.age.forget(connector, shard)
	return nil
}

// Close closes the store's client. Commits in progress fail.
func (s *CheckpointStore) Close(context.Context) error {
	s.cl.Close()
	return nil
}
