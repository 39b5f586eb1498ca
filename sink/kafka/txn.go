package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shardbridge/shardbridge/runtime"
)

// Exactly-once: the sink's producer is transactional, and the checkpoints that cover its records
// are written into the same transaction (Commit). A read_committed consumer sees a transaction's
// records, and the checkpoint store (which loads read_committed) its checkpoints, together or
// not at all.
//
// Fencing, so that a writer that lost its shards can never commit:
//   - by transactional id: the id is stable for the connector (single process) or for the worker
//     (group mode, sink.kafka's id plus worker_id). Starting a producer with it (InitProducerID)
//     fences every older producer of the id and aborts its open transaction; the older one's
//     next call fails with PRODUCER_FENCED, and it stops.
//   - by group generation (KIP-447), in group mode: each transaction also commits an offset of a
//     partition of the group's coordination topic, as the worker's member id in its generation.
//     The group coordinator refuses that (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID) once the worker
//     is no longer counted in the group, so a worker frozen past its session (a zombie) cannot
//     commit what it wrote for shards the group gave to another worker; the transaction aborts.
//     Its new owner loads the checkpoints read_committed up to the end of the topic, so it waits
//     for a zombie's transaction that is still open to end (commit or abort, within the
//     transaction timeout) and resumes after whatever it holds.
//
// A transaction the broker timed out is not a fence. The broker aborts a transaction open longer
// than its timeout and bumps the producer's epoch, and the producer's next produce, commit or
// abort is refused with the same errors as a fenced one's (INVALID_PRODUCER_EPOCH,
// PRODUCER_FENCED), which franz-go cannot recover from under KIP-890's transactions. So:
//   - a commit waits for the transaction's records only until three quarters of the timeout
//     since its first record (txnDeadline), then aborts it itself, while it still can; a commit
//     that starts past that point aborts at once;
//   - a refusal that comes once the transaction has been open for its whole timeout or longer
//     (the process was frozen or starved, or the broker was slow to answer) is taken as the
//     broker's timeout: the sink replaces its producer with a new client of the same
//     transactional id and reports an aborted transaction, which the pipeline reads again.
//     Before that, a refusal is a fence. (A real fence that lands on a transaction that old
//     makes the new client fence the other writer in turn; the other writer's next transaction
//     is then young, so it stops as fenced, and one writer goes on.)

// TxnOptions makes the sink transactional (WithTransactions).
type TxnOptions struct {
	// ID is the transactional id.
	ID string
	// Timeout is the transaction timeout: the broker aborts a transaction left open this long
	// (a writer that died in one). It bounds how long a new owner may wait for it.
	Timeout time.Duration
	// Store is the connector's checkpoint store: its topic receives the checkpoints, and its
	// metrics count them.
	Store *CheckpointStore
}

// WithTransactions makes the sink write in transactions with the checkpoints (exactly-once); see
// Commit. It needs acks all and idempotence, as Config.ExactlyOnce checks.
func WithTransactions(t TxnOptions) Option { return func(o *options) { o.txn = &t } }

var _ runtime.Transactor = (*Sink)(nil)

// startTxn initialises the producer id (fencing older producers of the id) and opens the first
// transaction.
func (s *Sink) startTxn(ctx context.Context) error {
	if _, _, err := s.cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("kafka sink: start transactional producer %s: %w", s.txn.ID, txnErr(err))
	}
	if err := s.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka sink: begin transaction: %w", err)
	}
	return nil
}

// Commit implements runtime.Transactor.
func (s *Sink) Commit(ctx context.Context, marks func() ([]runtime.Checkpoint, error), fence *runtime.Lease) error {
	if s.txn == nil {
		return errors.New("kafka sink: Commit without WithTransactions")
	}
	s.txnMu.Lock() // no Write hands records over until the transaction has ended
	defer s.txnMu.Unlock()
	if err := s.ensureProducerLocked(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	deadline := s.txnDeadline()
	if s.txnBegan.Load() != 0 && !s.now().Before(deadline) {
		// Past the deadline already (the process was frozen or starved): the broker may
		// abort the transaction any moment, or has; committing would race it.
		return s.abortLocked(ctx, fmt.Errorf("commit transaction: it has been open for three quarters of its timeout (%s) or longer; aborting it rather than race the broker's abort", s.txn.Timeout))
	}
	fctx, cancel := context.WithDeadline(ctx, deadline)
	err := s.Flush(fctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && fctx.Err() != nil {
			err = fmt.Errorf("its records were not all acknowledged %s after its first, three quarters of the transaction timeout (%s); aborting it before the broker does: %w",
				s.txn.Timeout*3/4, s.txn.Timeout, err)
		}
		return s.abortLocked(ctx, fmt.Errorf("commit transaction: %w", err))
	}
	cps, err := marks()
	if err != nil {
		return s.abortLocked(ctx, fmt.Errorf("commit transaction: %w", err))
	}
	if s.txnRecords.Load() == 0 && len(cps) == 0 {
		return nil // nothing written: nothing to commit, and the transaction stays open
	}
	prod := s.prod.Load()
	if len(cps) > 0 {
		s.txnBegan.CompareAndSwap(0, s.now().UnixNano())
		recs := make([]*kgo.Record, len(cps))
		for i, cp := range cps {
			val, err := encodeCheckpoint(cp)
			if err != nil {
				return s.abortLocked(ctx, fmt.Errorf("commit transaction: encode checkpoint of shard %s: %w", cp.Shard, err))
			}
			recs[i] = &kgo.Record{Topic: s.txn.Store.topic, Key: checkpointKey(cp.Connector, cp.Stream, cp.Shard), Value: val}
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			if isFenced(err) {
				return s.refusedLocked(ctx, "commit", fmt.Errorf("write checkpoints: %w", err))
			}
			return s.abortLocked(ctx, fmt.Errorf("commit transaction: write checkpoints: %w", err))
		}
	}
	if fence != nil && fence.Slot >= 0 {
		if err := s.commitGroupOffset(ctx, prod, fence); err != nil {
			if isFenced(err) {
				// The transaction coordinator refused the producer, not the group its member.
				return s.refusedLocked(ctx, "commit", fmt.Errorf("add the group's offsets: %w", err))
			}
			return s.abortLocked(ctx, fmt.Errorf("commit transaction: the group refused this worker's membership: %w", err))
		}
	}
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		if isFenced(err) {
			return s.refusedLocked(ctx, "commit", err)
		}
		return s.abortLocked(ctx, fmt.Errorf("commit transaction: %w", err))
	}
	s.endedLocked()
	now := time.Now()
	for _, cp := range cps {
		s.txn.Store.m.age.committed(cp.Connector, cp.Shard, now)
	}
	if err := prod.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	return nil
}

// Abort implements runtime.Transactor.
func (s *Sink) Abort(ctx context.Context) error {
	if s.txn == nil {
		return errors.New("kafka sink: Abort without WithTransactions")
	}
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	if err := s.ensureProducerLocked(ctx); err != nil {
		return fmt.Errorf("abort transaction: %w", err)
	}
	if err := s.abortLocked(ctx, nil); err != nil && !errors.Is(err, errAborted) {
		return err
	}
	return nil
}

// errAborted marks the error abortLocked returns when the abort itself went well.
var errAborted = errors.New("transaction aborted")

// abortLocked aborts the open transaction after cause (nil for an asked-for abort) and opens the
// next one. It returns cause marked errAborted, or the abort's own error (wrapping
// runtime.ErrFenced when the producer was fenced).
func (s *Sink) abortLocked(ctx context.Context, cause error) error {
	prod := s.prod.Load()
	// Records buffered and not sent yet are failed at once rather than sent in a transaction
	// that aborts; their acks carry the abort.
	if err := prod.AbortBufferedRecords(ctx); err != nil {
		return errors.Join(cause, fmt.Errorf("abort transaction: %w", err))
	}
	if err := s.waitIdle(ctx); err != nil {
		return errors.Join(cause, fmt.Errorf("abort transaction: wait for acks: %w", err))
	}
	if err := prod.EndTransaction(ctx, kgo.TryAbort); err != nil {
		if isFenced(err) {
			return s.refusedLocked(ctx, "abort", errors.Join(cause, err))
		}
		return errors.Join(cause, fmt.Errorf("abort transaction: %w", err))
	}
	s.endedLocked()
	if err := prod.BeginTransaction(); err != nil {
		return errors.Join(cause, fmt.Errorf("begin transaction: %w", err))
	}
	if cause == nil {
		return errAborted
	}
	return fmt.Errorf("%w (%w)", cause, errAborted)
}

// endedLocked forgets the transaction that just ended.
func (s *Sink) endedLocked() {
	s.txnRecords.Store(0)
	s.txnBegan.Store(0)
}

// txnDeadline is when a commit stops waiting for the open transaction's records and aborts it:
// three quarters of the transaction timeout after its first record, leaving the last quarter for
// the abort, before the broker aborts it and the producer can no longer end it (see the top of
// this file). With no record yet, a timeout from now.
func (s *Sink) txnDeadline() time.Time {
	began := s.now()
	if b := s.txnBegan.Load(); b != 0 {
		began = time.Unix(0, b)
	}
	return began.Add(s.txn.Timeout - s.txn.Timeout/4)
}

// refusedLocked handles the producer being refused (err: INVALID_PRODUCER_EPOCH or
// PRODUCER_FENCED) while it ends the transaction (what: commit or abort). A transaction open for
// less than its timeout was fenced by another producer of the transactional id: the error wraps
// runtime.ErrFenced. One open for its timeout or longer was aborted by the broker: the sink
// starts a new producer and returns an error marked errAborted, or, when the new producer
// cannot start, an error the next Commit or Abort retries from. See the top of this file.
func (s *Sink) refusedLocked(ctx context.Context, what string, err error) error {
	age := time.Duration(0)
	if b := s.txnBegan.Load(); b != 0 {
		age = s.now().Sub(time.Unix(0, b))
	}
	if age < s.txn.Timeout {
		return fmt.Errorf("%s transaction %s: %w: %w", what, s.txn.ID, runtime.ErrFenced, err)
	}
	s.log.Warn("the transaction outlived its timeout and the broker aborted it; starting a new producer with the same transactional id",
		"transactional_id", s.txn.ID, "open_for", age.Round(time.Millisecond), "transaction_timeout", s.txn.Timeout, "error", err)
	s.endedLocked()
	timedOut := fmt.Errorf("%s transaction %s: open for %s, past its timeout (%s), so the broker aborted it: %w",
		what, s.txn.ID, age.Round(time.Millisecond), s.txn.Timeout, err)
	s.prodFailed = true
	if rerr := s.ensureProducerLocked(ctx); rerr != nil {
		return fmt.Errorf("%w; %w", timedOut, rerr)
	}
	return fmt.Errorf("%w (%w)", timedOut, errAborted)
}

// ensureProducerLocked replaces the producer when refusedLocked found it failed for good: a new
// client with the same transactional id, its producer id initialised (which aborts whatever the
// id still had open) and a transaction begun. The caller holds txnMu exclusively, so no Write is
// handing records to the old client.
func (s *Sink) ensureProducerLocked(ctx context.Context) error {
	if !s.prodFailed {
		return nil
	}
	s.prodMu.Lock()
	defer s.prodMu.Unlock()
	if s.prodDone {
		return ErrClosed
	}
	cl, err := kgo.NewClient(s.prodOpts...)
	if err != nil {
		return fmt.Errorf("new transactional producer %s: %w", s.txn.ID, err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("new transactional producer %s: %w", s.txn.ID, txnErr(err))
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return fmt.Errorf("new transactional producer %s: begin transaction: %w", s.txn.ID, err)
	}
	// The first client stays open until Close: the topic creator uses it for metadata and
	// admin requests, never to produce.
	if old := s.prod.Swap(cl); old != s.cl {
		old.Close()
	}
	s.prodFailed = false
	s.log.Info("new transactional producer started", "transactional_id", s.txn.ID)
	return nil
}

// commitGroupOffset commits, inside the open transaction, an offset of a partition of the
// group's coordination topic as the worker's member in its generation (KIP-447), so that the
// group coordinator refuses the commit once the worker is out of the group. The offset itself
// means nothing: the coordination topic holds no data.
func (s *Sink) commitGroupOffset(ctx context.Context, prod *kgo.Client, f *runtime.Lease) error {
	id, epoch, err := prod.ProducerID(ctx)
	if err != nil {
		return err
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = s.txn.ID, id, epoch, f.Group
	if err := retryTxnRequest(ctx, func() error {
		resp, err := add.RequestWith(ctx, prod)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	}); err != nil {
		return fmt.Errorf("add the group's offsets to the transaction: %w", err)
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = s.txn.ID, f.Group, id, epoch
	req.Generation, req.MemberID = int32(f.Epoch), f.Member
	t := kmsg.NewTxnOffsetCommitRequestTopic()
	t.Topic, t.TopicID = f.Topic, f.TopicID
	p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	p.Partition, p.Offset, p.LeaderEpoch = f.Slot, 0, -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return retryTxnRequest(ctx, func() error {
		resp, err := req.RequestWith(ctx, prod)
		if err != nil {
			return err
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// retryTxnRequest runs fn until it succeeds, fails for good, or ctx ends: a busy coordinator
// (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR) and a rebalance in
// progress (the group is still deciding; this member's generation may yet be valid) are waited
// out.
func retryTxnRequest(ctx context.Context, fn func() error) error {
	wait := 20 * time.Millisecond
	for {
		err := fn()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.ConcurrentTransactions), errors.Is(err, kerr.CoordinatorLoadInProgress),
			errors.Is(err, kerr.NotCoordinator), errors.Is(err, kerr.CoordinatorNotAvailable),
			errors.Is(err, kerr.RebalanceInProgress):
		default:
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// isFenced reports an error of a producer that another producer of its transactional id fenced.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// txnErr marks a fencing error as runtime.ErrFenced.
func txnErr(err error) error {
	if isFenced(err) {
		return fmt.Errorf("%w: %w", runtime.ErrFenced, err)
	}
	return err
}
