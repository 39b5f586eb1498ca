package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/source/kinesis"
	"github.com/shardbridge/shardbridge/source/kinesis/kinesistest"
)

// limitRecorder stands in for runtime/debug.SetMemoryLimit.
type limitRecorder struct {
	mu     sync.Mutex
	limits []int64
	ch     chan struct{}
}

func newLimitRecorder() *limitRecorder { return &limitRecorder{ch: make(chan struct{}, 1)} }

func (r *limitRecorder) set(n int64) int64 {
	r.mu.Lock()
	r.limits = append(r.limits, n)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return 0
}

func (r *limitRecorder) last() (int64, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.limits) == 0 {
		return 0, 0
	}
	return r.limits[len(r.limits)-1], len(r.limits)
}

// With memory_limit auto (the default), `run` sets Go's memory limit to 2 x the pool's bytes plus
// 1KiB for each record the pool admits, plus the decode budget, plus every shard being read times
// its share (its window and state), plus the base, and lowers it again once the shards end.
func TestRunMemoryLimitFollowsShards(t *testing.T) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		t.Skip("GOMEMLIMIT is set in the environment, which takes precedence over memory_limit")
	}
	const shards = 3
	ks, err := kinesistest.NewServer(kinesistest.WithStream("mem", shards))
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "mem"))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	path := filepath.Join(t.TempDir(), "mem.yaml")
	text := fmt.Sprintf(`http: {addr: "127.0.0.1:0"}
pool: {max_pending_bytes: "16MiB"}
decode_budget: "32MiB"
shutdown_timeout: "5s"
connectors:
  - name: mem
    source:
      kinesis: {stream: mem, region: us-east-1, endpoint: %q, tls_skip_verify: true,
        credentials: {access_key_id: test, secret_access_key: test}}
    sink:
      kafka: {brokers: [%q], topic: mem}
`, ks.Endpoint(), kc.ListenAddrs()[0])
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(registry(), []string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryLimit != config.MemoryLimitAuto {
		t.Fatalf("memory_limit defaults to %v, want auto", cfg.MemoryLimit)
	}
	perShard := cfg.Connectors[0].Source.Config.(*kinesis.Config).ShardHeldBytes()
	base := 2*int64(16<<20) + config.DefaultMaxPendingRecords*runtime.RecordOverhead + 32<<20 + runtime.DefaultMemoryBase
	want := base + shards*perShard

	rec := newLimitRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startedCh := make(chan started, 1)
	runDone := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		runDone <- runConfig(ctx, cfg, log, runOptions{setMemoryLimit: rec.set, onStart: func(s started) { startedCh <- s }})
	}()
	var st started
	select {
	case st = <-startedCh:
	case err := <-runDone:
		t.Fatalf("runConfig ended at start: %v", err)
	}
	waitLimit := func(want int64) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			if got, _ := rec.last(); got == want {
				return
			}
			select {
			case <-rec.ch:
			case <-deadline:
				got, n := rec.last()
				t.Fatalf("memory limit %d after %d sets, want %d (base %d + %d shards x %d)", got, n, want, base, shards, perShard)
			}
		}
	}
	// The first limit is set before any shard is read; then the three readers raise it.
	if first, n := rec.last(); n == 0 || first < base || first > want {
		t.Fatalf("first memory limit %d (sets %d), want between %d and %d", first, n, base, want)
	}
	waitLimit(want)
	if got := st.Worker.HeldBytes(); got != shards*perShard {
		t.Fatalf("Worker.HeldBytes() = %d, want %d", got, shards*perShard)
	}
	// Stopping the connector ends its readers: the limit falls back to the base.
	if err := st.Worker.Stop(ctx, "mem"); err != nil {
		t.Fatal(err)
	}
	t.Logf("held after stop: %d", st.Worker.HeldBytes())
	waitLimit(base)
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("runConfig: %v", err)
	}
}

// A fixed memory_limit is set once as written; "off" sets none; GOMEMLIMIT in the environment
// wins over memory_limit.
func TestApplyMemoryLimitModes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	run := func(limit config.MemoryLimit) []int64 {
		cfg := config.Default()
		cfg.MemoryLimit = limit
		rec := newLimitRecorder()
		w, err := runtime.NewWorker(runtime.NewPool(10, 1<<20), nil, log)
		if err != nil {
			t.Fatal(err)
		}
		follow := applyMemoryLimit(&cfg, w, rec.set, log)
		if (follow != nil) != (limit == config.MemoryLimitAuto && os.Getenv("GOMEMLIMIT") == "") {
			t.Errorf("memory_limit %v: follow loop returned: %v", limit, follow != nil)
		}
		return rec.limits
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); !ok {
		if got := run(config.MemoryLimit(1 << 30)); len(got) != 1 || got[0] != 1<<30 {
			t.Errorf("memory_limit 1GiB set %v, want [%d]", got, 1<<30)
		}
		if got := run(config.MemoryLimitOff); len(got) != 0 {
			t.Errorf("memory_limit off set %v, want nothing", got)
		}
		if got := run(config.MemoryLimitAuto); len(got) != 1 || got[0] != 2*int64(config.DefaultMaxPendingBytes)+config.DefaultMaxPendingRecords*runtime.RecordOverhead+
			int64(config.DefaultDecodeBudget)+runtime.DefaultMemoryBase {
			t.Errorf("memory_limit auto with no connector set %v, want [2 x 64MiB + 50000 x 1KiB + 64MiB decode budget + base]", got)
		}
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	for _, l := range []config.MemoryLimit{config.MemoryLimitAuto, config.MemoryLimit(1 << 30)} {
		if got := run(l); len(got) != 0 {
			t.Errorf("with GOMEMLIMIT set, memory_limit %v set %v, want nothing", l, got)
		}
	}
}

// The config's decode_budget default is the runtime's, which a source uses when it is given no
// budget.
func TestDecodeBudgetDefaultsAgree(t *testing.T) {
	if int64(config.DefaultDecodeBudget) != runtime.DefaultDecodeBudget {
		t.Fatalf("config.DefaultDecodeBudget %d, runtime.DefaultDecodeBudget %d", config.DefaultDecodeBudget, runtime.DefaultDecodeBudget)
	}
}
