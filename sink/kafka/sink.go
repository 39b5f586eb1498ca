package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shardbridge/shardbridge/runtime"
)

var (
	_ runtime.Sink             = (*Sink)(nil)
	_ runtime.DeadLetterWriter = (*Sink)(nil)
)

// Dead-letter headers added by WriteDeadLetter after the record's own headers.
const (
	HeaderError             = "shardbridge.error"
	HeaderOriginalTopic     = "shardbridge.original_topic"
	HeaderStream            = "shardbridge.stream"
	HeaderShardID           = "shardbridge.shard_id"
	HeaderSequenceNumber    = "shardbridge.sequence_number"
	HeaderSubSequenceNumber = "shardbridge.sub_sequence_number"
)

// Sink produces records to Kafka with franz-go. It implements runtime.Sink and
// runtime.DeadLetterWriter; see the package doc for the record mapping and the guarantees.
type Sink struct {
	cfg       Config
	cl        *kgo.Client
	topic     *topicTemplate
	topics    *topicSet // topics known to exist; prepares (creates) the others
	dlqTopic  string
	kgoOpts   []kgo.Opt // extra client options (tests), for the dead-letter client too
	connector string
	log       *slog.Logger
	m         *sinkMetrics
	limit     int64

	// closing is canceled by Close; it aborts Writes blocked on full producer buffers.
	closing    context.Context
	stopWrites context.CancelFunc

	// mu is held shared by Write and WriteDeadLetter while they hand records to the client and
	// exclusively by Close, so no record is handed over after the client is closed.
	mu     sync.RWMutex
	closed bool // guarded by mu

	// dlqMu guards dlqCl, the dead-letter producer. It is a client of its own, made on the first
	// dead letter, because its batch limit (dlq_max_message_bytes) is larger than the mirror's
	// and franz-go's batch limit is per client.
	dlqMu sync.Mutex
	dlqCl *kgo.Client

	// txn is set when the sink writes in transactions (WithTransactions). txnMu is held shared by
	// Write while it hands records over and exclusively while a transaction ends, so that no
	// record lands in a transaction after its commit computed the checkpoints. txnRecords counts
	// the records handed over in the open transaction.
	txn        *TxnOptions
	txnMu      sync.RWMutex
	txnRecords atomic.Int64
	// txnBegan is when the open transaction got its first record (unix nanoseconds; 0 before
	// that), by now: the broker's timeout for the transaction runs from about then (txn.go).
	txnBegan atomic.Int64
	// prod is the producer: cl, or, once a transaction outlived its timeout at the broker, the
	// client that replaced cl's failed producer (txn.go). Writes load it under txnMu (shared);
	// it changes only under txnMu (exclusive). prodOpts makes a replacement.
	prod     atomic.Pointer[kgo.Client]
	prodOpts []kgo.Opt
	prodMu   sync.Mutex // held while prod is replaced and while Close closes it
	prodDone bool       // guarded by prodMu: Close closed prod; no replacement is made after
	// prodFailed says prod failed for good (its transaction timed out at the broker) and must
	// be replaced before the next transaction ends. txnMu (exclusive) guards it.
	prodFailed bool
	now        func() time.Time

	inflight  atomic.Int64
	idleMu    sync.Mutex      // idleMu guards idleWaits
	idleWaits []chan struct{} // closed when inflight drops to zero
	closeOnce sync.Once
	closeErr  error
}

// NewSink validates cfg (filling defaults), connects to the brokers and checks within
// cfg.RequestTimeout that at least one answers; an unreachable cluster is an *UnreachableError
// naming the brokers. A fixed destination topic and the dead-letter topic are then looked up and,
// when missing, created per cfg.TopicCreation; a missing topic that is not created, or a refused
// creation, is a *TopicError. The caller owns the Sink and must Close it.
func NewSink(ctx context.Context, cfg Config, opts ...Option) (*Sink, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(o.connector, "sink.kafka"); err != nil {
		return nil, fmt.Errorf("kafka sink config: %w", err)
	}
	tmpl, err := parseTopicTemplate(cfg.Topic)
	if err != nil {
		return nil, fmt.Errorf("kafka sink topic %q: %w", cfg.Topic, err)
	}
	log := o.log.With("connector", o.connector, "sink", "kafka")
	kopts, err := clientOpts(ctx, &cfg, log)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	if o.txn != nil {
		if err := cfg.ExactlyOnce("sink.kafka"); err != nil {
			return nil, fmt.Errorf("kafka sink config: %w", err)
		}
		kopts = append(kopts, kgo.TransactionalID(o.txn.ID), kgo.TransactionTimeout(o.txn.Timeout))
	}
	kopts = append(kopts, o.kgoOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka sink client: %w", err)
	}
	if err := ping(ctx, cl, &cfg); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	m := newSinkMetrics(o.reg, o.connector)
	topics := newTopicSet(newTopicCreator(cl, &cfg, o.dlqTopic, log, m.created).prepare)
	// Topics known now are prepared now, so that a missing one fails the start rather than the
	// first record; a templated topic is prepared before its first record.
	var known []string
	if tmpl.fixed {
		known = append(known, tmpl.name)
	}
	if o.dlqTopic != "" {
		known = append(known, o.dlqTopic)
	}
	for _, t := range known {
		if err := topics.ensure(ctx, t); err != nil {
			cl.Close()
			return nil, fmt.Errorf("kafka sink: %w", err)
		}
	}
	closing, stop := context.WithCancel(context.Background())
	s := &Sink{
		cfg:        cfg,
		cl:         cl,
		topic:      tmpl,
		topics:     topics,
		dlqTopic:   o.dlqTopic,
		kgoOpts:    o.kgoOpts,
		connector:  o.connector,
		log:        log,
		m:          m,
		limit:      int64(cfg.MaxMessageBytes),
		closing:    closing,
		stopWrites: stop,
		txn:        o.txn,
		prodOpts:   kopts,
		now:        o.now,
	}
	s.prod.Store(cl)
	if s.txn != nil {
		if err := s.startTxn(ctx); err != nil {
			stop()
			cl.Close()
			return nil, err
		}
	}
	return s, nil
}

// Write hands recs to the producer and returns once all are buffered; acks come later from
// produce promises. It blocks only while the producer's buffers (max_buffered_records,
// max_buffered_bytes) are full, and before the first record of a templated topic the sink has not
// written to yet, while that topic is looked up and, if missing, created. ack is called exactly
// once per record, also when Write returns an error: a record that cannot be mapped (its topic
// template gives an illegal name), whose topic is missing and not created (a *TopicError), or that
// is larger than max_message_bytes is acked with its error at once and never produced, and its
// neighbours go on.
//
// Canceling ctx while Write runs fails the records it has not yet buffered with ctx's error, and
// may fail its buffered ones too (franz-go then fails the affected partitions' buffered records
// together, which keeps each partition gapless). Canceling ctx after Write returned has no effect.
func (s *Sink) Write(ctx context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		for i := range recs {
			ack(&recs[i], ErrClosed)
		}
		return ErrClosed
	}

	if s.txn != nil {
		s.txnMu.RLock()
		defer s.txnMu.RUnlock()
	}

	// The records' context bounds their delivery (delivery_timeout) and lives as long as they
	// do, so it is not a child of ctx or of the sink's context (each Write would leave an entry
	// in the parent until it ends). ctx and Close cancel it only while Write runs, through
	// AfterFuncs stopped when Write returns; the last promise of the batch releases its timer.
	pctx, cancel := context.WithTimeout(context.Background(), s.cfg.DeliveryTimeout.D())
	b := &writeBatch{cancel: cancel}
	b.pending.Store(1) // Write's own hold, dropped on return
	defer b.done()
	stop1 := context.AfterFunc(ctx, cancel)
	stop2 := context.AfterFunc(s.closing, cancel)
	defer stop1()
	defer stop2()

	// The batch's franz-go records and their headers are allocated together, two allocations per
	// Write rather than two per record; they are freed once the batch's last promise has run.
	krs := make([]kgo.Record, len(recs))
	nh := 0
	for i := range recs {
		nh += len(recs[i].Headers)
	}
	hdrs := make([]kgo.RecordHeader, nh)
	// produce_latency_seconds counts from the Write call to each record's acknowledgement, so one
	// clock read serves the whole batch (a Produce blocked on full buffers is inside the figure).
	start := time.Now()
	// A Write holds one shard's records, so they nearly always share one topic: a templated topic
	// is prepared once per Write, not per record.
	var lastTopic string
	var lastTopicErr error
	prod := s.prod.Load()
	for i := range recs {
		rec := &recs[i]
		if pctx.Err() != nil && !errors.Is(pctx.Err(), context.DeadlineExceeded) {
			return s.abort(ctx, recs[i:], ack)
		}
		topic, err := s.topic.topic(rec.Stream, rec.Shard)
		if err != nil {
			s.fail(rec, ack, err)
			continue
		}
		if !s.topic.fixed {
			if topic != lastTopic {
				// pctx bounds the wait by delivery_timeout, ctx and Close.
				lastTopic, lastTopicErr = topic, s.topics.ensure(pctx, topic)
				if lastTopicErr != nil && pctx.Err() != nil && !errors.Is(pctx.Err(), context.DeadlineExceeded) {
					return s.abort(ctx, recs[i:], ack)
				}
			}
			if lastTopicErr != nil {
				s.fail(rec, ack, lastTopicErr)
				continue
			}
		}
		size := recordBatchSize(rec)
		if size > s.limit {
			s.fail(rec, ack, &RecordTooLargeError{Size: size, Limit: s.limit})
			continue
		}
		kr := &krs[i]
		hdrs = fillKgo(kr, rec, topic, hdrs)
		s.begin()
		if s.txn != nil && s.txnRecords.Add(1) == 1 {
			s.txnBegan.CompareAndSwap(0, s.now().UnixNano())
		}
		b.pending.Add(1)
		// The promise runs on franz-go's promise goroutine and must not block: it only updates
		// counters and calls ack, which never blocks.
		prod.Produce(pctx, kr, func(kr *kgo.Record, err error) {
			s.finish(rec, ack, kr, start, size, err)
			b.done()
		})
	}
	return nil
}

// abort fails recs, the records a canceled Write has not handed over, with the cause: ctx's
// error, or ErrClosed when Close canceled the Write.
func (s *Sink) abort(ctx context.Context, recs []runtime.Record, ack runtime.AckFunc) error {
	cause := ctx.Err()
	if cause == nil {
		cause = ErrClosed
	}
	for i := range recs {
		s.fail(&recs[i], ack, fmt.Errorf("write to kafka: %w", cause))
	}
	return fmt.Errorf("write to kafka: %w", cause)
}

// writeBatch releases the delivery deadline of one Write once all its records are finished.
type writeBatch struct {
	pending atomic.Int64
	cancel  context.CancelFunc
}

func (b *writeBatch) done() {
	if b.pending.Add(-1) == 0 {
		b.cancel()
	}
}

func toKgo(rec *runtime.Record, topic string) *kgo.Record {
	kr := new(kgo.Record)
	fillKgo(kr, rec, topic, make([]kgo.RecordHeader, len(rec.Headers)))
	return kr
}

// fillKgo maps rec onto kr, taking kr's headers from the front of hdrs, and returns the rest of
// hdrs.
func fillKgo(kr *kgo.Record, rec *runtime.Record, topic string, hdrs []kgo.RecordHeader) []kgo.RecordHeader {
	kr.Topic, kr.Key, kr.Value, kr.Timestamp = topic, rec.Key, rec.Value, rec.Timestamp
	if n := len(rec.Headers); n > 0 {
		kr.Headers = hdrs[:n:n]
		for i, h := range rec.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
		hdrs = hdrs[n:]
	}
	return hdrs
}

// fail acks a record that was never handed to the client.
func (s *Sink) fail(rec *runtime.Record, ack runtime.AckFunc, err error) {
	s.m.errors.WithLabelValues(errorClass(err)).Inc()
	s.log.Debug("record failed before produce", "stream", rec.Stream, "shard", rec.Shard,
		"position", rec.Position.String(), "error", err)
	ack(rec, err)
}

func (s *Sink) finish(rec *runtime.Record, ack runtime.AckFunc, kr *kgo.Record, start time.Time, size int64, err error) {
	s.m.latency.Observe(time.Since(start).Seconds())
	if err == nil {
		s.m.records.Inc()
		s.m.bytes.Add(float64(rec.Size()))
	} else {
		switch {
		case errors.Is(err, kerr.MessageTooLarge):
			err = &RecordTooLargeError{Size: size, Limit: s.limit, Err: err}
		case errors.Is(err, context.DeadlineExceeded):
			err = fmt.Errorf("%w (%s): %w", ErrDeliveryTimeout, s.cfg.DeliveryTimeout, err)
		}
		err = fmt.Errorf("produce shard %s record %s to %s: %w", rec.Shard, rec.Position, kr.Topic, err)
		if s.txn != nil {
			// Inside a transaction a failed produce dooms it: the pipeline aborts and reads
			// the transaction's records again.
			err = fmt.Errorf("%w: %w", runtime.ErrAbortTransaction, err)
		}
		s.m.errors.WithLabelValues(errorClass(err)).Inc()
		s.log.Debug("record failed", "stream", rec.Stream, "shard", rec.Shard,
			"position", rec.Position.String(), "topic", kr.Topic, "error", err)
	}
	ack(rec, err)
	s.end()
}

func (s *Sink) begin() {
	s.inflight.Add(1)
	s.m.inflight.Inc()
}

func (s *Sink) end() {
	s.m.inflight.Dec()
	if s.inflight.Add(-1) == 0 {
		s.idleMu.Lock()
		// Re-check under the lock: a Write may have begun a record since.
		if s.inflight.Load() == 0 {
			for _, ch := range s.idleWaits {
				close(ch)
			}
			s.idleWaits = nil
		}
		s.idleMu.Unlock()
	}
}

// waitIdle returns once no produced record is waiting for its promise, or ctx ends.
func (s *Sink) waitIdle(ctx context.Context) error {
	s.idleMu.Lock()
	if s.inflight.Load() == 0 {
		s.idleMu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.idleWaits = append(s.idleWaits, ch)
	s.idleMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush returns once every record written before the call has been acked (promises included),
// or ctx ends.
func (s *Sink) Flush(ctx context.Context) error {
	if err := s.prod.Load().Flush(ctx); err != nil {
		return fmt.Errorf("flush kafka producer: %w", err)
	}
	// franz-go's Flush returns when the records are finished; their promises may still be
	// running on the promise goroutine.
	if err := s.waitIdle(ctx); err != nil {
		return fmt.Errorf("flush kafka producer: wait for acks: %w", err)
	}
	return nil
}

// Close stops accepting records, fails the records not yet acknowledged (their acks carry an
// error), closes the client and waits until every ack has been called or ctx ends. Call Flush
// first to drain. Close is idempotent.
func (s *Sink) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.stopWrites() // unblock Writes waiting for buffer space
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.prodMu.Lock()
		s.prodDone = true
		if prod := s.prod.Load(); prod != s.cl {
			prod.Close()
		}
		s.prodMu.Unlock()
		s.cl.Close()
		s.dlqMu.Lock()
		if s.dlqCl != nil {
			s.dlqCl.Close()
		}
		s.dlqMu.Unlock()
		if err := s.waitIdle(ctx); err != nil {
			s.closeErr = fmt.Errorf("close kafka sink: %d records still waiting for their acks: %w", s.inflight.Load(), err)
		}
	})
	return s.closeErr
}

// WriteDeadLetter produces rec synchronously to the dead-letter topic (WithDeadLetterTopic) with
// its key, value, timestamp and headers, plus the shardbridge.* headers naming the cause, the
// original topic and the Kinesis position. It returns once Kafka acknowledged it. A dead letter
// that is itself larger than max_message_bytes is not produced: WriteDeadLetter returns a
// *RecordTooLargeError, so the pipeline stops rather than change the data.
func (s *Sink) WriteDeadLetter(ctx context.Context, rec *runtime.Record, cause error) error {
	if s.dlqTopic == "" {
		return errors.New("write dead letter: no dead-letter topic; set errors.dlq_topic")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("write dead letter: %w", ErrClosed)
	}
	orig, err := s.topic.topic(rec.Stream, rec.Shard)
	if err != nil {
		orig = "" // the cause says why; the header stays empty
	}
	causeMsg := "unknown"
	if cause != nil {
		causeMsg = cause.Error()
	}
	kr := toKgo(rec, s.dlqTopic)
	kr.Headers = append(kr.Headers,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(causeMsg)},
		kgo.RecordHeader{Key: HeaderOriginalTopic, Value: []byte(orig)},
		kgo.RecordHeader{Key: HeaderStream, Value: []byte(rec.Stream)},
		kgo.RecordHeader{Key: HeaderShardID, Value: []byte(rec.Shard)},
		kgo.RecordHeader{Key: HeaderSequenceNumber, Value: []byte(rec.Position.Sequence)},
		kgo.RecordHeader{Key: HeaderSubSequenceNumber, Value: []byte(strconv.FormatInt(rec.Position.SubSequence, 10))},
	)
	size := kgoBatchSize(kr)
	limit := int64(s.cfg.DLQMaxMessageBytes)
	if size > limit {
		return fmt.Errorf("write dead letter for shard %s record %s to %s: %w", rec.Shard, rec.Position, s.dlqTopic,
			&RecordTooLargeError{Size: size, Limit: limit, Setting: "sink.kafka.dlq_max_message_bytes"})
	}
	cl, err := s.deadLetterClient(ctx)
	if err != nil {
		return fmt.Errorf("write dead letter for shard %s record %s to %s: %w", rec.Shard, rec.Position, s.dlqTopic, err)
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryTimeout.D())
	defer cancel()
	if err := cl.ProduceSync(dctx, kr).FirstErr(); err != nil {
		switch {
		case errors.Is(err, kerr.MessageTooLarge):
			err = &RecordTooLargeError{Size: size, Limit: limit, Setting: "sink.kafka.dlq_max_message_bytes", Err: err}
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			err = fmt.Errorf("%w (%s): %w", ErrDeliveryTimeout, s.cfg.DeliveryTimeout, err)
		}
		return fmt.Errorf("write dead letter for shard %s record %s to %s: %w", rec.Shard, rec.Position, s.dlqTopic, err)
	}
	s.m.dlq.Inc()
	s.log.Info("record written to dead-letter topic", "stream", rec.Stream, "shard", rec.Shard,
		"position", rec.Position.String(), "topic", s.dlqTopic, "cause", causeMsg)
	return nil
}

// deadLetterClient returns the dead-letter producer, making it on first use with the sink's
// options but a batch limit of dlq_max_message_bytes.
func (s *Sink) deadLetterClient(ctx context.Context) (*kgo.Client, error) {
	s.dlqMu.Lock()
	defer s.dlqMu.Unlock()
	if s.dlqCl != nil {
		return s.dlqCl, nil
	}
	opts, err := clientOpts(ctx, &s.cfg, s.log)
	if err != nil {
		return nil, err
	}
	limit := int(s.cfg.DLQMaxMessageBytes)
	opts = append(opts, s.kgoOpts...)
	opts = append(opts,
		kgo.ProducerBatchMaxBytes(int32(limit)+batchFraming),
		kgo.MaxBufferedBytes(max(int(s.cfg.MaxBufferedBytes), limit)),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dead-letter client: %w", err)
	}
	s.dlqCl = cl
	return cl, nil
}
