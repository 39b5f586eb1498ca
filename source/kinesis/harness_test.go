package kinesis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// testEmitter is a runtime.Emitter backed by a real runtime.Pool. In ackNow mode each batch is
// released (acknowledged) as soon as it is emitted; otherwise batches stay in the pool until
// ackAll. It records every emitted record and the order of emits and ends, for lineage checks.
type testEmitter struct {
	pool   *runtime.Pool
	ackNow bool

	mu      sync.Mutex
	recs    map[string][]runtime.Record // per shard, in emit order
	all     []runtime.Record            // every shard, in emit order
	events  []string                    // "emit <shard>" / "end <shard>", in order
	ends    map[string]chan struct{}
	resume  map[string]runtime.Mark
	pending [][2]int64 // unacked batches: records, bytes
	changed chan struct{}
}

func newTestEmitter(maxRecords, maxBytes int64, ackNow bool) *testEmitter {
	return &testEmitter{
		pool: runtime.NewPool(maxRecords, maxBytes), ackNow: ackNow,
		recs: map[string][]runtime.Record{}, ends: map[string]chan struct{}{},
		resume: map[string]runtime.Mark{}, changed: make(chan struct{}),
	}
}

func (e *testEmitter) bumpLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *testEmitter) WaitForSpace(ctx context.Context, timeout time.Duration) error {
	return e.pool.WaitForSpace(ctx, timeout)
}

func (e *testEmitter) Emit(ctx context.Context, shard string, recs []runtime.Record) error {
	var n int64
	for i := range recs {
		if recs[i].Shard != shard {
			return fmt.Errorf("record of shard %s emitted for %s", recs[i].Shard, shard)
		}
		n += recs[i].Size()
	}
	if err := e.pool.Acquire(ctx, int64(len(recs)), n); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.recs[shard] = append(e.recs[shard], recs...)
	e.all = append(e.all, recs...)
	e.events = append(e.events, "emit "+shard)
	if e.ackNow {
		e.pool.Release(int64(len(recs)), n)
	} else {
		e.pending = append(e.pending, [2]int64{int64(len(recs)), n})
	}
	e.bumpLocked()
	return nil
}

func (e *testEmitter) ackAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.pending {
		e.pool.Release(p[0], p[1])
	}
	e.pending = nil
}

func (e *testEmitter) endCh(shard string) chan struct{} {
	ch, ok := e.ends[shard]
	if !ok {
		ch = make(chan struct{})
		e.ends[shard] = ch
	}
	return ch
}

// EndShard marks the end at once: in ackNow mode every record of the shard is acknowledged.
func (e *testEmitter) EndShard(ctx context.Context, shard string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, "end "+shard)
	ch := e.endCh(shard)
	select {
	case <-ch:
		return fmt.Errorf("shard %s ended twice", shard)
	default:
	}
	close(ch)
	e.bumpLocked()
	return nil
}

func (e *testEmitter) Resume(shard string) (runtime.Mark, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m, ok := e.resume[shard]
	return m, ok
}

func (e *testEmitter) WaitEnded(ctx context.Context, shard string) error {
	e.mu.Lock()
	if m, ok := e.resume[shard]; ok && m.End {
		e.mu.Unlock()
		return nil
	}
	ch := e.endCh(shard)
	e.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitFor polls cond after every change of the emitter, up to a deadline.
func (e *testEmitter) waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	if !e.await(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// await polls cond after every change of the emitter and reports whether it held before d
// passed.
func (e *testEmitter) await(d time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		ch := e.changed
		e.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond): // conditions outside the emitter, e.g. metrics
		case <-deadline.C:
			return false
		}
	}
}

func (e *testEmitter) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, r := range e.recs {
		n += len(r)
	}
	return n
}

func (e *testEmitter) shardRecs(shard string) []runtime.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]runtime.Record(nil), e.recs[shard]...)
}

func (e *testEmitter) eventLog() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// vclock is a virtual clock: wait advances it by d at once (after a short real pause, so retry
// loops against a live server do not spin), which makes the 5 s backoffs cost no real time.
type vclock struct {
	mu sync.Mutex
	t  time.Time
}

func newVClock() *vclock { return &vclock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *vclock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *vclock) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	t := time.NewTimer(min(d/100, 20*time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callLog wraps the Kinesis API and records, per shard, the virtual time of every
// SubscribeToShard and GetRecords call and the starting positions asked for.
type callLog struct {
	kinesisAPI
	clock *vclock

	mu      sync.Mutex
	subs    map[string][]time.Time
	starts  map[string][]string
	errs    map[string][]string // per shard, the error code of each failed call ("" for success)
	iters   map[string]string   // shard iterator not used yet -> its shard
	gets    map[string][]time.Time
	getErrs map[string][]string // per shard, the error code of each GetRecords ("" for success)
}

func newCallLog(api kinesisAPI, c *vclock) *callLog {
	return &callLog{kinesisAPI: api, clock: c, subs: map[string][]time.Time{}, starts: map[string][]string{}, errs: map[string][]string{},
		iters: map[string]string{}, gets: map[string][]time.Time{}, getErrs: map[string][]string{}}
}

func (l *callLog) GetShardIterator(ctx context.Context, in *kinesis.GetShardIteratorInput, optFns ...func(*kinesis.Options)) (*kinesis.GetShardIteratorOutput, error) {
	out, err := l.kinesisAPI.GetShardIterator(ctx, in, optFns...)
	if err == nil {
		l.mu.Lock()
		l.iters[aws.ToString(out.ShardIterator)] = aws.ToString(in.ShardId)
		l.mu.Unlock()
	}
	return out, err
}

// GetRecords names the shard by the iterator, which GetShardIterator or the previous
// GetRecords returned.
func (l *callLog) GetRecords(ctx context.Context, in *kinesis.GetRecordsInput, optFns ...func(*kinesis.Options)) (*kinesis.GetRecordsOutput, error) {
	l.mu.Lock()
	id := l.iters[aws.ToString(in.ShardIterator)]
	l.gets[id] = append(l.gets[id], l.clock.now())
	l.mu.Unlock()
	out, err := l.kinesisAPI.GetRecords(ctx, in, optFns...)
	l.mu.Lock()
	l.getErrs[id] = append(l.getErrs[id], errorCode(err))
	if err == nil {
		delete(l.iters, aws.ToString(in.ShardIterator))
		if out.NextShardIterator != nil {
			l.iters[*out.NextShardIterator] = id
		}
	}
	l.mu.Unlock()
	return out, err
}

// getErrors returns the error codes of the shard's GetRecords calls ("" for success).
func (l *callLog) getErrors(shard string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.getErrs[shard])
}

func (l *callLog) SubscribeToShard(ctx context.Context, in *kinesis.SubscribeToShardInput, optFns ...func(*kinesis.Options)) (*kinesis.SubscribeToShardOutput, error) {
	id := aws.ToString(in.ShardId)
	l.mu.Lock()
	l.subs[id] = append(l.subs[id], l.clock.now())
	l.starts[id] = append(l.starts[id], string(in.StartingPosition.Type)+" "+aws.ToString(in.StartingPosition.SequenceNumber))
	l.mu.Unlock()
	out, err := l.kinesisAPI.SubscribeToShard(ctx, in, optFns...)
	l.mu.Lock()
	l.errs[id] = append(l.errs[id], errorCode(err))
	l.mu.Unlock()
	return out, err
}

// checkRate fails the test when any shard was subscribed to twice within a second, or within
// 5 s after a ResourceInUse answer, or had two GetRecords calls within 200ms (in virtual time).
func (l *callLog) checkRate(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, ts := range l.gets {
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < getRecordsEvery {
				t.Errorf("shard %s: GetRecords calls %d and %d only %v apart", id, i-1, i, gap)
			}
		}
	}
	for id, ts := range l.subs {
		for i := 1; i < len(ts); i++ {
			gap := ts[i].Sub(ts[i-1])
			if gap < time.Second {
				t.Errorf("shard %s: SubscribeToShard calls %d and %d only %v apart", id, i-1, i, gap)
			}
			if i-1 < len(l.errs[id]) && l.errs[id][i-1] == "ResourceInUseException" && gap < 5*time.Second {
				t.Errorf("shard %s: SubscribeToShard %v after ResourceInUse", id, gap)
			}
		}
	}
}

func (l *callLog) calls(shard string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs[shard])
}

// fixture is a kinesistest server, a source wired to it, and the emitter it feeds.
type fixture struct {
	t     *testing.T
	srv   *kinesistest.Server
	cli   *kinesis.Client // a plain SDK client for the test's own calls
	cfg   Config
	clock *vclock
	calls *callLog
	em    *testEmitter
	src   *Source
}

func testConfig(stream, endpoint string) Config {
	return Config{
		Stream: stream, Region: "us-east-1", Endpoint: endpoint, TLSSkipVerify: true,
		Credentials:       CredentialsConfig{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"},
		ShardSyncInterval: 0, IdleTimeout: 0,
	}
}

func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(&tlogWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tlogWriter struct{ t testing.TB }

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newFixture starts a server with srvOpts and builds a source for stream through the
// package's own client (HTTP/2 settings and initial-response shim included).
func newFixture(t *testing.T, stream string, shards int, mutate func(*Config), em *testEmitter, srvOpts ...kinesistest.Option) *fixture {
	t.Helper()
	srv, err := kinesistest.NewServer(append([]kinesistest.Option{kinesistest.WithStream(stream, shards)}, srvOpts...)...)
	if err != nil {
		t.Fatalf("start kinesistest: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cfg := testConfig(stream, srv.Endpoint())
	cfg.ShardSyncInterval = 0
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate("test", "source.kinesis"); err != nil {
		t.Fatalf("config: %v", err)
	}
	ctx := context.Background()
	cli, err := newClient(ctx, &cfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	clock := newVClock()
	calls := newCallLog(cli, clock)
	if em == nil {
		em = newTestEmitter(100000, 64<<20, true)
	}
	src, err := New(cfg, "test", withAPI(calls), WithClock(clock.now), WithWait(clock.wait),
		WithLogger(quietLogger(t)), WithPoolWaitTimeout(2*time.Second))
	if err != nil {
		t.Fatalf("new source: %v", err)
	}
	return &fixture{t: t, srv: srv, cli: srv.Client(), cfg: cfg, clock: clock, calls: calls, em: em, src: src}
}

// start runs the source until the test ends, and fails the test if Run returns an error.
func (f *fixture) start() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.src.Run(ctx, f.em) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Run did not return within 30s of cancel")
			}
		})
		return err
	}
	f.t.Cleanup(func() {
		if err := stop(); err != nil {
			f.t.Errorf("run: %v", err)
		}
	})
	return stop
}

// put writes n records with keys key-<i%keys> and values "<prefix>-<i>", and returns, per
// shard, the sequence numbers Kinesis gave them in order.
func (f *fixture) put(prefix string, n, keys int) map[string][]string {
	f.t.Helper()
	ctx := context.Background()
	want := map[string][]string{}
	for start := 0; start < n; start += 500 {
		var entries []types.PutRecordsRequestEntry
		for i := start; i < min(n, start+500); i++ {
			entries = append(entries, types.PutRecordsRequestEntry{
				Data: []byte(fmt.Sprintf("%s-%d", prefix, i)), PartitionKey: aws.String(fmt.Sprintf("key-%d", i%keys)),
			})
		}
		out, err := f.cli.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(f.cfg.Stream), Records: entries})
		if err != nil {
			f.t.Fatalf("put records: %v", err)
		}
		for _, r := range out.Records {
			if r.ErrorCode != nil {
				f.t.Fatalf("put record: %s", aws.ToString(r.ErrorCode))
			}
			want[aws.ToString(r.ShardId)] = append(want[aws.ToString(r.ShardId)], aws.ToString(r.SequenceNumber))
		}
	}
	return want
}

// checkExactlyOnce fails unless the emitter holds exactly want: per shard, the same sequence
// numbers in the same order, each once.
func (f *fixture) checkExactlyOnce(want map[string][]string) {
	f.t.Helper()
	total := 0
	for shard, seqs := range want {
		total += len(seqs)
		got := f.em.shardRecs(shard)
		if len(got) != len(seqs) {
			f.t.Errorf("shard %s: got %d records, want %d", shard, len(got), len(seqs))
		}
		for i := 0; i < min(len(got), len(seqs)); i++ {
			if got[i].Position.Sequence != seqs[i] {
				f.t.Errorf("shard %s record %d: sequence %s, want %s", shard, i, got[i].Position.Sequence, seqs[i])
				break
			}
		}
	}
	if n := f.em.count(); n != total {
		f.t.Errorf("emitted %d records in all, want %d", n, total)
	}
}

func (f *fixture) waitCount(n int, d time.Duration) {
	f.t.Helper()
	f.em.waitFor(f.t, fmt.Sprintf("%d records", n), d, func() bool { return f.em.count() >= n })
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
