package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shardbridge/shardbridge/group"
	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/api"
	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/sink/kafka"
	"github.com/shardbridge/shardbridge/source/kinesis"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths pathsFlag
	var lf logFlags
	fs.Var(&paths, "config", "config file or folder (repeatable)")
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(paths)
	if err != nil {
		for _, p := range config.Problems(err) {
			fmt.Fprintf(stderr, "  - %v\n", p)
		}
		return fmt.Errorf("invalid config (run 'shardbridge validate' for the list)")
	}
	return runConfig(ctx, cfg, log, runOptions{setMemoryLimit: debug.SetMemoryLimit})
}

// started reports the addresses a running process serves on; the dev command and tests use it.
type started struct {
	APIAddr string
	Worker  *runtime.Worker
	Metrics *prometheus.Registry
}

// runOptions are what callers of runConfig vary.
type runOptions struct {
	// onStart, when set, is called once everything is listening.
	onStart func(started)
	// setMemoryLimit applies cfg.MemoryLimit (runtime/debug.SetMemoryLimit). nil leaves the
	// process's limit alone: dev hosts Kinesis and Kafka in the same heap, which no limit sized
	// for shardbridge alone would fit.
	setMemoryLimit func(int64) int64
}

// runConfig runs every connector of cfg and the HTTP API until ctx ends, then drains.
func runConfig(ctx context.Context, cfg *config.Config, log *slog.Logger, opts runOptions) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pool := runtime.NewPool(cfg.Pool.MaxPendingRecords, int64(cfg.Pool.MaxPendingBytes))
	metrics := runtime.NewMetrics(reg, pool)
	// One decode budget for every shard reader of every connector, as one pool.
	budget := runtime.NewDecodeBudget(int64(cfg.DecodeBudget))
	runtime.RegisterDecodeBudget(reg, budget)

	specs := make([]runtime.ConnectorSpec, 0, len(cfg.Connectors))
	var stores []*lazyStore
	workerID := cfg.WorkerID
	if workerID == "" {
		host, _ := os.Hostname()
		workerID = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	var groupMetrics *group.Metrics
	for _, c := range cfg.Connectors {
		if c.Group.Enabled && groupMetrics == nil {
			groupMetrics = group.NewMetrics(reg)
		}
		spec, store, err := connectorSpec(ctx, cfg, c, workerID, reg, groupMetrics, budget, log)
		if err != nil {
			return err
		}
		specs = append(specs, spec)
		stores = append(stores, store)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, s := range stores {
			s.Close(closeCtx)
		}
	}()
	w, err := runtime.NewWorker(pool, metrics, log, specs...)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr %s: %w", cfg.HTTP.Addr, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.HTTP.Addr); !isLoopback(host) && cfg.HTTP.AuthToken == "" {
		log.Warn("the HTTP API listens beyond loopback with no http.auth_token: anyone who can reach it can pause, stop and rewind connectors", "addr", ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           api.Handler(w, api.Options{Token: cfg.HTTP.AuthToken.Reveal(), Gatherer: reg, StopTimeout: time.Duration(cfg.ShutdownTimeout) + 30*time.Second}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http api stopped", "error", err)
		}
	}()
	log.Info("shardbridge running", "version", version, "api", "http://"+ln.Addr().String(), "connectors", len(specs))
	// The governor stops with the Worker, which may end before ctx (every connector failed).
	govCtx, stopGov := context.WithCancel(ctx)
	defer stopGov()
	if opts.setMemoryLimit != nil {
		if follow := applyMemoryLimit(cfg, w, opts.setMemoryLimit, log); follow != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				follow(govCtx, memoryCheckEvery)
			}()
		}
	}
	if opts.onStart != nil {
		opts.onStart(started{APIAddr: ln.Addr().String(), Worker: w, Metrics: reg})
	}

	runErr := w.Run(ctx)
	stopGov()

	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	wg.Wait()
	return runErr
}

// memoryCheckEvery is how often an "auto" memory limit follows the shards being read. A check
// costs two uncontended locks per connector.
const memoryCheckEvery = 250 * time.Millisecond

// applyMemoryLimit applies cfg.MemoryLimit now: a GOMEMLIMIT in the environment wins (Go applied
// it at start), "off" sets nothing, a size is set as written, and "auto" is sized from the pool,
// the decode budget and the shards being read (runtime.MemoryBudget). For "auto" it returns the loop that keeps
// the limit following the shards; otherwise nil.
func applyMemoryLimit(cfg *config.Config, w *runtime.Worker, set func(int64) int64, log *slog.Logger) func(ctx context.Context, every time.Duration) {
	if env, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("memory limit from GOMEMLIMIT; memory_limit is not applied", "GOMEMLIMIT", env, "memory_limit", cfg.MemoryLimit.String())
		return nil
	}
	switch cfg.MemoryLimit {
	case config.MemoryLimitOff:
		return nil
	case config.MemoryLimitAuto:
		b := runtime.MemoryBudget{PoolBytes: int64(cfg.Pool.MaxPendingBytes), PoolRecords: cfg.Pool.MaxPendingRecords,
			Decode: int64(cfg.DecodeBudget), Base: runtime.DefaultMemoryBase, Held: w.HeldBytes}
		return b.Govern(set, log)
	}
	set(cfg.MemoryLimit.Bytes())
	log.Info("memory limit set", "memory_limit", cfg.MemoryLimit.String())
	return nil
}

// goCollector is the Go runtime collector with, besides its defaults (which include
// go_gc_gomemlimit_bytes), the live heap and the collector's CPU time: the two figures that say
// whether a memory limit is tight.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)},
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/cpu/classes/gc/total:cpu-seconds$`)},
	))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// connectorSpec turns one connector's config into the Worker's spec: Build makes a fresh source,
// sink and checkpoint store for every run, so a restart starts clean. With group.enabled, the
// connector's group membership lives as long as the spec and joins the group on every run.
func connectorSpec(ctx context.Context, cfg *config.Config, c config.Connector, workerID string, reg prometheus.Registerer, gm *group.Metrics,
	budget *runtime.DecodeBudget, log *slog.Logger) (runtime.ConnectorSpec, *lazyStore, error) {
	src := c.Source.Config.(*kinesis.Config)
	snk := c.Sink.Config.(*kafka.Config)
	clog := log // the connector packages add the connector attribute themselves
	// The offsets API reads and edits checkpoints while the connector is stopped, so it has its own
	// store client, opened on first use.
	offsets := &lazyStore{open: func(ctx context.Context) (*kafka.CheckpointStore, error) {
		return kafka.NewCheckpointStore(ctx, *snk, c.Checkpoint.Topic, kafka.WithConnector(c.Name), kafka.WithLogger(clog))
	}}
	owner := runtime.Owner{ID: workerID}
	var grp *group.Group
	if c.Group.Enabled {
		conn, err := kafka.ConnOptions(ctx, *snk, clog)
		if err != nil {
			return runtime.ConnectorSpec{}, nil, fmt.Errorf("connector %s: group: %w", c.Name, err)
		}
		grp, err = group.New(group.Options{
			Connector: c.Name, GroupID: c.Group.ID, Topic: c.Group.Topic, Partitions: int32(c.Group.Partitions),
			WorkerID: workerID, SessionTimeout: time.Duration(c.Group.SessionTimeout),
			HeartbeatInterval: time.Duration(c.Group.HeartbeatInterval), RebalanceTimeout: time.Duration(c.Group.RebalanceTimeout),
			Conn: conn, Logger: clog, Metrics: gm,
		})
		if err != nil {
			return runtime.ConnectorSpec{}, nil, fmt.Errorf("connector %s: %w", c.Name, err)
		}
	}
	spec := runtime.ConnectorSpec{
		Name:     c.Name,
		Config:   c,
		Store:    offsets,
		Stream:   src.StreamName(),
		WorkerID: workerID,
		Build: func(ctx context.Context) (runtime.Parts, error) {
			var own runtime.Ownership
			if grp != nil {
				// The coordination topic's partition count decides every shard's slot, so it is
				// known before anything reads.
				if err := grp.Setup(ctx); err != nil {
					return runtime.Parts{}, err
				}
				own = grp
			}
			store, err := kafka.NewCheckpointStore(ctx, *snk, c.Checkpoint.Topic,
				kafka.WithConnector(c.Name), kafka.WithLogger(clog), kafka.WithRegisterer(reg))
			if err != nil {
				return runtime.Parts{}, err // it names the part already
			}
			sinkOpts := []kafka.Option{kafka.WithConnector(c.Name), kafka.WithLogger(clog),
				kafka.WithRegisterer(reg), kafka.WithDeadLetterTopic(c.Errors.DLQTopic)}
			if c.Delivery == config.DeliveryExactlyOnce {
				sinkOpts = append(sinkOpts, kafka.WithTransactions(kafka.TxnOptions{
					ID: transactionalID(c, workerID), Timeout: transactionTimeout(c), Store: store,
				}))
			}
			sink, err := kafka.NewSink(ctx, *snk, sinkOpts...)
			if err != nil {
				_ = store.Close(ctx)
				return runtime.Parts{}, err // it names the part already
			}
			source, err := kinesis.New(*src, c.Name, kinesis.WithLogger(clog), kinesis.WithRegisterer(reg),
				kinesis.WithPoolWaitTimeout(time.Duration(cfg.Pool.WaitTimeout)), kinesis.WithDecodeBudget(budget))
			if err != nil {
				_ = sink.Close(ctx)
				_ = store.Close(ctx)
				return runtime.Parts{}, err // it names the part already
			}
			return runtime.Parts{
				Options: runtime.ConnectorOptions{
					Source: source, Sink: sink, Store: store,
					CheckpointInterval: time.Duration(c.Checkpoint.Interval),
					ShutdownTimeout:    time.Duration(cfg.ShutdownTimeout),
					ErrorPolicy:        runtime.ErrorPolicy(c.Errors.Policy),
					Owner:              owner,
					Ownership:          own,
					Delivery:           runtime.Delivery(c.Delivery),
				},
				Close: func(ctx context.Context) error {
					return errors.Join(sink.Close(ctx), store.Close(ctx))
				},
			}, nil
		},
	}
	if grp != nil {
		spec.Group = grp
	}
	return spec, offsets, nil
}

// transactionalID is the exactly-once producer's transactional id: the connector's, and in
// group mode the worker's under it, so that each worker fences only its own earlier
// incarnations (the group's generation fences the others).
func transactionalID(c config.Connector, workerID string) string {
	if c.Group.Enabled {
		return c.TransactionalID + "-" + workerID
	}
	return c.TransactionalID
}

// transactionTimeout is how long the broker keeps a transaction open before it aborts it: a
// transaction normally lasts at most checkpoint.interval, so three of those, and at least 10s,
// leave room for a slow commit; it also bounds how long a new owner waits for the open
// transaction of a writer that died.
func transactionTimeout(c config.Connector) time.Duration {
	return max(10*time.Second, 3*time.Duration(c.Checkpoint.Interval))
}

// lazyStore opens a checkpoint store client on first use.
type lazyStore struct {
	open  func(ctx context.Context) (*kafka.CheckpointStore, error)
	mu    sync.Mutex
	store *kafka.CheckpointStore // mu guards store
}

func (l *lazyStore) get(ctx context.Context) (*kafka.CheckpointStore, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return l.store, nil
	}
	s, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	l.store = s
	return s, nil
}

func (l *lazyStore) Load(ctx context.Context, connector, stream string) ([]runtime.Checkpoint, error) {
	s, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return s.Load(ctx, connector, stream)
}

func (l *lazyStore) Commit(ctx context.Context, cps []runtime.Checkpoint) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Commit(ctx, cps)
}

func (l *lazyStore) Delete(ctx context.Context, connector, stream, shard string) error {
	s, err := l.get(ctx)
	if err != nil {
		return err
	}
	return s.Delete(ctx, connector, stream, shard)
}

func (l *lazyStore) Close(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		_ = l.store.Close(ctx)
	}
}
