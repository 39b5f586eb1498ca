package kinesis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/shardbridge/shardbridge/runtime"
)

// DefaultPoolWaitTimeout is the runtime's pool.wait_timeout default: how long a reader holding a
// subscription waits for pool space before it closes the subscription.
const DefaultPoolWaitTimeout = 30 * time.Second

// Source reads one Kinesis stream. Create it with New; Run it once.
type Source struct {
	cfg       Config
	connector string
	log       *slog.Logger
	met       *metrics
	now       func() time.Time
	wait      func(ctx context.Context, d time.Duration) error
	poolWait  time.Duration
	budget    *runtime.DecodeBudget
	api       kinesisAPI // nil until Run builds the client, unless an option set it

	mu     sync.Mutex
	shards map[string]*shardState // mu guards the map and every shardState's fields
	active int                    // mu guards; shards in a reading state
}

var _ runtime.Source = (*Source)(nil)

// Option configures a Source.
type Option func(*Source)

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// WithRegisterer registers the source's metrics on reg. Default: a private registry that nothing
// scrapes.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Source) { s.met = newMetrics(reg) }
}

// WithClock sets the clock the retry pacing reads. Default time.Now. Tests pair it with WithWait.
func WithClock(now func() time.Time) Option { return func(s *Source) { s.now = now } }

// WithWait sets the function that waits between retries (backoff and the per-shard call rate).
// It returns ctx.Err() when ctx ends first. Default: a timer. Tests inject one that advances a
// fake clock, so backoff costs no real time.
func WithWait(wait func(ctx context.Context, d time.Duration) error) Option {
	return func(s *Source) { s.wait = wait }
}

// WithPoolWaitTimeout sets how long a reader that holds a subscription waits for pool space
// before it closes the subscription (the runtime's pool.wait_timeout). Default 30s.
func WithPoolWaitTimeout(d time.Duration) Option { return func(s *Source) { s.poolWait = d } }

// WithDecodeBudget shares b, the process's decode budget, with the source's readers: a reader
// takes its share of b before the SDK reads an event or a GetRecords response, and gives it back
// once the records are in the pool. Default: a budget of runtime.DefaultDecodeBudget of the
// source's own.
func WithDecodeBudget(b *runtime.DecodeBudget) Option { return func(s *Source) { s.budget = b } }

// WithClient uses c instead of building a client from the config (its region, endpoint,
// credentials and HTTP settings are then c's).
func WithClient(c *kinesis.Client) Option { return func(s *Source) { s.api = c } }

// withAPI uses a fake of the Kinesis calls; for tests.
func withAPI(api kinesisAPI) Option { return func(s *Source) { s.api = api } }

// New returns a source for cfg, which must have passed Validate. connector names the connector
// in logs, metrics and the default EFO consumer name.
func New(cfg Config, connector string, opts ...Option) (*Source, error) {
	if err := cfg.Validate(connector, "source.kinesis"); err != nil {
		return nil, fmt.Errorf("kinesis source: invalid config: %w", err)
	}
	s := &Source{
		cfg:       cfg,
		connector: connector,
		log:       slog.Default(),
		now:       time.Now,
		wait:      realWait,
		poolWait:  DefaultPoolWaitTimeout,
		shards:    make(map[string]*shardState),
	}
	for _, o := range opts {
		o(s)
	}
	if s.met == nil {
		s.met = newMetrics(nil)
	}
	if s.budget == nil {
		s.budget = runtime.NewDecodeBudget(runtime.DefaultDecodeBudget)
	}
	s.log = s.log.With("connector", connector, "stream", cfg.StreamName())
	return s, nil
}

// Stream returns the stream's name (also when the config gives its ARN).
func (s *Source) Stream() string { return s.cfg.StreamName() }

// run is the state of one Run.
type run struct {
	s           *Source
	e           runtime.Emitter
	api         kinesisAPI
	g           *errgroup.Group
	streamARN   string
	consumerARN string // "" in polling mode
}

// Run reads the stream until ctx ends or a fatal error happens; see runtime.Source.
func (s *Source) Run(ctx context.Context, e runtime.Emitter) error {
	api := s.api
	if api == nil {
		c, err := newClient(ctx, &s.cfg)
		if err != nil {
			return fmt.Errorf("kinesis source: stream %s: %w", s.Stream(), err)
		}
		api = c
	}
	r := &run{s: s, e: e, api: api}
	// parent_wait_seconds is computed from this source's shards while it runs.
	s.met.parentWait.add(s)
	defer s.met.parentWait.remove(s)
	err := r.run(ctx)
	if r.consumerARN != "" && s.cfg.EFO.DeregisterOnStop {
		// The run's context is done; deregistering still deserves a bounded try.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if _, derr := api.DeregisterStreamConsumer(dctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: aws.String(r.consumerARN)}); derr != nil {
			s.log.Warn("kinesis: deregister EFO consumer", "consumer_arn", r.consumerARN, "error", derr)
		} else {
			s.log.Info("kinesis: deregistered EFO consumer", "consumer_arn", r.consumerARN)
		}
		cancel()
	}
	if ctx.Err() != nil {
		return nil // stopped, not failed
	}
	return err
}

func (r *run) run(ctx context.Context) error {
	s := r.s
	arn, err := r.resolveStream(ctx)
	if err != nil {
		return err
	}
	r.streamARN = arn
	if s.cfg.EFOEnabled() {
		if r.consumerARN, err = r.ensureConsumer(ctx); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	r.g = g
	g.Go(func() error { return r.discover(gctx) })
	return g.Wait()
}

// resolveStream checks that the stream exists and returns its ARN, retrying transient errors.
func (r *run) resolveStream(ctx context.Context) (string, error) {
	s := r.s
	bo := newBackoff()
	in := &kinesis.DescribeStreamSummaryInput{}
	if a := s.cfg.streamARN(); a != "" {
		in.StreamARN = aws.String(a)
	} else {
		in.StreamName = aws.String(s.cfg.Stream)
	}
	for {
		out, err := r.api.DescribeStreamSummary(ctx, in)
		if err == nil {
			return aws.ToString(out.StreamDescriptionSummary.StreamARN), nil
		}
		switch classify(ctx, err) {
		case classCanceled:
			return "", ctx.Err()
		case classFatal, classNotFound:
			return "", &FatalError{Stream: s.Stream(), Fix: fatalFix(err), Err: fmt.Errorf("describe stream: %w", err)}
		}
		d := bo.next()
		s.log.Warn("kinesis: describe stream failed, retrying", "error", err, "retry_in", d)
		if err := s.wait(ctx, d); err != nil {
			return "", err
		}
	}
}

// streamParams sets the stream the way the config names it, by ARN or by name.
func (r *run) streamName() *string {
	if r.s.cfg.streamARN() != "" {
		return nil
	}
	return aws.String(r.s.cfg.Stream)
}

func (r *run) streamARNParam() *string {
	if r.s.cfg.streamARN() != "" {
		return aws.String(r.s.cfg.Stream)
	}
	return nil
}

// listShards reads every page of ListShards.
func (r *run) listShards(ctx context.Context) ([]types.Shard, error) {
	var all []types.Shard
	in := &kinesis.ListShardsInput{StreamName: r.streamName(), StreamARN: r.streamARNParam()}
	for {
		out, err := r.api.ListShards(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list shards: %w", err)
		}
		all = append(all, out.Shards...)
		if aws.ToString(out.NextToken) == "" {
			return all, nil
		}
		// With NextToken the stream must not be named again.
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// discover lists the shards at start and every shard_sync_interval and starts a reader for each
// new one. It is the only place, with shard ends, that starts readers.
func (r *run) discover(ctx context.Context) error {
	s := r.s
	bo := newBackoff()
	for {
		shards, err := r.listShards(ctx)
		next := s.cfg.ShardSyncInterval.D()
		if err != nil {
			switch classify(ctx, err) {
			case classCanceled:
				return ctx.Err()
			case classFatal, classNotFound:
				return &FatalError{Stream: s.Stream(), Fix: fatalFix(err), Err: err}
			}
			next = min(next, bo.next())
			s.log.Warn("kinesis: shard discovery failed, retrying", "error", err, "retry_in", next)
		} else {
			bo.reset()
			r.startListed(ctx, shards)
			if l, ok := r.e.(runtime.ShardLister); ok {
				l.Listed(openShards(shards))
			}
		}
		s.warnWaiting()
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// openShards returns the ids of the listed shards that are open (no ending sequence number).
func openShards(shards []types.Shard) []string {
	var open []string
	for _, sh := range shards {
		if sh.SequenceNumberRange == nil || sh.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, aws.ToString(sh.ShardId))
		}
	}
	return open
}

// startListed starts a reader for every listed shard not started yet, and records which shards
// are listed closed. A reader waits for the parents that are listed too; a parent missing from
// ListShards has passed its retention and holds nothing more to read.
func (r *run) startListed(ctx context.Context, shards []types.Shard) {
	listed := make(map[string]bool, len(shards))
	for _, sh := range shards {
		listed[aws.ToString(sh.ShardId)] = true
	}
	sort.Slice(shards, func(i, j int) bool { return aws.ToString(shards[i].ShardId) < aws.ToString(shards[j].ShardId) })
	for _, sh := range shards {
		var parents []string
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil && listed[*p] {
				parents = append(parents, *p)
			}
		}
		r.startShard(ctx, aws.ToString(sh.ShardId), parents)
		if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
			// Only set, never read as a position: kinesis-mock writes 9223372036854775807 there.
			r.s.markClosed(aws.ToString(sh.ShardId))
		}
	}
}

// startChildren starts the children a shard's final event named, each waiting for all of its
// parents: they closed just now, so all of them are within retention, including the other
// parent of a merge that this source may not have listed yet. ListShards is the backstop when
// the event names no children.
func (r *run) startChildren(ctx context.Context, children []types.ChildShard) {
	for _, c := range children {
		r.startShard(ctx, aws.ToString(c.ShardId), c.ParentShards)
	}
}

// startShard starts the reader of shard id unless it was started before. The reader first
// waits for the end of every shard in parents.
func (r *run) startShard(ctx context.Context, id string, parents []string) {
	s := r.s
	s.mu.Lock()
	if _, ok := s.shards[id]; ok {
		s.mu.Unlock()
		return
	}
	st := newShardState(id)
	s.shards[id] = st
	s.mu.Unlock()
	r.g.Go(func() error { return r.runShard(ctx, st, parents) })
}

// runShard reads the shard whenever this worker owns it (always without a group): it waits for
// the shard's parents, reads it to its end and starts its children. When the connector's group
// gives the shard to another worker, the reader stops (its subscription closed) and the shard
// waits to be owned here again.
func (r *run) runShard(ctx context.Context, st *shardState, parents []string) error {
	owner, shared := r.e.(runtime.ShardOwner)
	for {
		octx, release := ctx, func() {}
		if shared {
			r.s.setState(st, StateNotOwned)
			var err error
			if octx, release, err = owner.Own(ctx, st.id); err != nil {
				return err
			}
		}
		done, err := r.readShard(ctx, octx, st, parents)
		release()
		var fatal *FatalError
		switch {
		case done || errors.As(err, &fatal) || ctx.Err() != nil:
			return err
		case octx.Err() != nil:
			r.s.log.Info("kinesis: shard handed over to another worker", "shard", st.id)
			continue
		}
		return err
	}
}

// readShard waits for the shard's parents and reads it to its end (done), or until ctx ends or
// a fatal error. The children it starts get runCtx, the context of the whole run: ctx may be
// just this worker's ownership of the shard.
func (r *run) readShard(runCtx, ctx context.Context, st *shardState, parents []string) (done bool, err error) {
	s := r.s
	log := s.log.With("shard", st.id)
	if err := r.waitParents(ctx, st, parents); err != nil {
		return false, err
	}
	mark, resumed := r.e.Resume(st.id)
	if resumed && mark.End {
		s.setState(st, StateEnded)
		log.Debug("kinesis: shard already read to its end")
		return true, nil
	}
	rd := &shardReader{
		run:   r,
		st:    st,
		log:   log,
		met:   s.met.shard(s.connector, st.id),
		child: len(parents) > 0,
	}
	if resumed {
		rd.last = mark.Position
	}
	rd.conv = converter{
		stream: s.Stream(), streamARN: r.streamARN, shard: st.id,
		deaggregate: s.cfg.DeaggregateEnabled(), log: log, met: rd.met,
	}
	s.setActive(st, true)
	if r.consumerARN != "" {
		err = rd.runEFO(ctx)
	} else {
		err = rd.runPoll(ctx)
	}
	s.setActive(st, false)
	if errors.Is(err, errShardEnded) {
		s.setState(st, StateEnded)
		log.Info("kinesis: shard read to its end", "children", len(rd.children))
		r.startChildren(runCtx, rd.children)
		// The end counts once it is checkpointed. Until then the shard may have to be read
		// again from its last checkpoint: after an aborted transaction (exactly-once), or by
		// this or another worker after a handover. Waiting under ctx, which ends in both cases,
		// sends the reader back to runShard to own the shard and read it again.
		if err := r.e.WaitEnded(ctx, st.id); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, err
}

// waitParents waits until the end of every parent is checkpointed. Meanwhile ShardReport and
// shardbridge_kinesis_parent_wait_seconds show the parents still waited for and for how long, and
// discovery warns every parentWarnEvery (see Source.warnWaiting): a parent whose reader never
// ends it would otherwise leave the child waiting without a trace.
func (r *run) waitParents(ctx context.Context, st *shardState, parents []string) error {
	if len(parents) == 0 {
		return nil
	}
	s := r.s
	since := s.now()
	s.update(st, func(st *shardState) { st.waitingFor, st.waitSince, st.nextWarn = slices.Clone(parents), since, 0 })
	defer s.update(st, func(st *shardState) { st.waitingFor, st.waitSince, st.nextWarn = nil, time.Time{}, 0 })
	for _, p := range parents {
		if err := r.e.WaitEnded(ctx, p); err != nil {
			return err
		}
		s.update(st, func(st *shardState) {
			st.waitingFor = slices.DeleteFunc(st.waitingFor, func(id string) bool { return id == p })
		})
	}
	return nil
}

// errShardEnded is how a shard reader reports that it read its shard to the end and called
// EndShard.
var errShardEnded = errors.New("shard ended")

// ensureConsumer returns the ARN of the ACTIVE EFO consumer, registering it when missing.
func (r *run) ensureConsumer(ctx context.Context) (string, error) {
	s := r.s
	name := s.cfg.EFO.ConsumerName
	describe := &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(r.streamARN), ConsumerName: aws.String(name)}
	if a := s.cfg.EFO.ConsumerARN; a != "" {
		describe = &kinesis.DescribeStreamConsumerInput{ConsumerARN: aws.String(a)}
		name = a
	}
	fatal := func(err error, fix string) error {
		if fix == "" {
			fix = fatalFix(err)
		}
		return &FatalError{Stream: s.Stream(), Fix: fix, Err: fmt.Errorf("efo consumer %s: %w", name, err)}
	}
	bo := newBackoff()
	for {
		out, err := r.api.DescribeStreamConsumer(ctx, describe)
		if err == nil {
			c := out.ConsumerDescription
			switch c.ConsumerStatus {
			case types.ConsumerStatusActive:
				s.log.Info("kinesis: EFO consumer active", "consumer_arn", aws.ToString(c.ConsumerARN))
				return aws.ToString(c.ConsumerARN), nil
			case types.ConsumerStatusDeleting:
				return "", fatal(errors.New("consumer is being deleted"),
					"wait until the deregistration completes and restart, or set another source.kinesis.efo.consumer_name")
			}
			// CREATING: wait for ACTIVE.
		} else {
			switch classify(ctx, err) {
			case classCanceled:
				return "", ctx.Err()
			case classFatal:
				return "", fatal(err, "")
			case classNotFound:
				if s.cfg.EFO.ConsumerARN != "" {
					return "", fatal(err, "check source.kinesis.efo.consumer_arn, or remove it to register efo.consumer_name")
				}
				if err := r.register(ctx, name); err != nil {
					if classify(ctx, err) == classCanceled {
						return "", ctx.Err()
					}
					if c := classify(ctx, err); c == classFatal || c == classNotFound {
						return "", fatal(err, "")
					}
					d := bo.next()
					s.log.Warn("kinesis: register EFO consumer failed, retrying", "consumer", name, "error", err, "retry_in", d)
					if err := s.wait(ctx, d); err != nil {
						return "", err
					}
				}
				continue // describe again: registered by us or by someone else
			default:
				s.log.Warn("kinesis: describe EFO consumer failed, retrying", "consumer", name, "error", err)
			}
		}
		if err := s.wait(ctx, bo.next()); err != nil {
			return "", err
		}
	}
}

// register registers the consumer. ResourceInUse means another process registered the same name
// at the same moment, which is as good as our own registration.
func (r *run) register(ctx context.Context, name string) error {
	_, err := r.api.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{
		StreamARN: aws.String(r.streamARN), ConsumerName: aws.String(name),
	})
	if err != nil && errorCode(err) == "ResourceInUseException" {
		r.s.log.Info("kinesis: EFO consumer registered concurrently by another process", "consumer", name)
		return nil
	}
	if err == nil {
		r.s.log.Info("kinesis: registered EFO consumer", "consumer", name)
	}
	return err
}
