package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/api"
	"github.com/shardbridge/shardbridge/runtime/runtimetest"
)

const token = "s3cret-token"

type fixture struct {
	srv   *httptest.Server
	src   *runtimetest.TickSource
	sinkP atomic.Pointer[runtimetest.HoldSink] // the current run's sink
	store *runtimetest.MemoryStore
	pool  *runtime.Pool
	// runDone receives Worker.Run's result; it must not end while the test runs.
	runDone chan error
}

func start(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		src:   &runtimetest.TickSource{StreamName: "orders", Shards: []string{"shard-0", "shard-1"}},
		store: runtimetest.NewMemoryStore(),
		pool:  runtime.NewPool(10, 1<<20),
	}
	reg := prometheus.NewRegistry()
	metrics := runtime.NewMetrics(reg, f.pool)
	spec := runtime.ConnectorSpec{
		Name:   "orders-mirror",
		Config: map[string]any{"sink": map[string]any{"kafka": map[string]any{"sasl": map[string]any{"password": "[redacted]"}}}},
		Store:  f.store,
		Stream: "orders",
		Build: func(ctx context.Context) (runtime.Parts, error) {
			// A fresh sink per run, as a real connector builds one.
			sink := &runtimetest.HoldSink{}
			f.sinkP.Store(sink)
			return runtime.Parts{Options: runtime.ConnectorOptions{
				Source: f.src, Sink: sink, Store: f.store,
				CheckpointInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
			}}, nil
		},
	}
	w, err := runtime.NewWorker(f.pool, metrics, nil, spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	f.runDone = done
	go func() { done <- w.Run(ctx) }()
	f.srv = httptest.NewServer(api.Handler(w, api.Options{Token: token, Gatherer: reg}))
	t.Cleanup(func() {
		f.srv.Close()
		cancel()
		if sink := f.sinkP.Load(); sink != nil {
			sink.Release()
		}
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
	eventually(t, "connector filled the pool", func() bool { return f.pool.Stats().UsedRecords == 10 })
	return f
}

func (f *fixture) release() int { return f.sinkP.Load().Release() }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (f *fixture) do(t *testing.T, method, path, body string, auth bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (f *fixture) state(t *testing.T) runtime.ConnectorStatus {
	t.Helper()
	code, body := f.do(t, "GET", "/connectors/orders-mirror/status", "", false)
	if code != 200 {
		t.Fatalf("status: %d %s", code, body)
	}
	var st runtime.ConnectorStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestReadEndpoints(t *testing.T) {
	f := start(t)
	code, body := f.do(t, "GET", "/connectors", "", false)
	if code != 200 || strings.TrimSpace(body) != "[\n  \"orders-mirror\"\n]" {
		t.Fatalf("GET /connectors: %d %q", code, body)
	}
	code, body = f.do(t, "GET", "/connectors/orders-mirror", "", false)
	if code != 200 || !strings.Contains(body, `"password": "[redacted]"`) {
		t.Fatalf("GET /connectors/orders-mirror: %d %s", code, body)
	}
	st := f.state(t)
	if st.State != runtime.StateRunning || st.InFlight != 10 || len(st.Shards) == 0 || st.Shards[0].InFlight == 0 {
		t.Fatalf("status %+v; want RUNNING with the pool's 10 records pending in shards", st)
	}
	var pendingBytes int64
	for _, sh := range st.Shards {
		pendingBytes += sh.PendingBytes
	}
	if pendingBytes != 10 { // ten records of one byte each
		t.Fatalf("shards report %d pending bytes; want 10", pendingBytes)
	}
	code, body = f.do(t, "GET", "/connectors/nope/status", "", false)
	if code != 404 || !strings.Contains(body, `"error_code": 404`) || !strings.Contains(body, "nope") {
		t.Fatalf("unknown connector: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/no/such/path", "", false)
	if code != 404 || !strings.Contains(body, "error_code") {
		t.Fatalf("unknown path: %d %s", code, body)
	}
	if code, _ := f.do(t, "GET", "/healthz", "", false); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := f.do(t, "GET", "/readyz", "", false); code != 200 {
		t.Fatalf("readyz %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/metrics", "", false)
	if code != 200 || !strings.Contains(body, "shardbridge_pool_used_records 10") {
		t.Fatalf("metrics: %d, pool gauge missing", code)
	}
}

func TestMutatingEndpointsNeedToken(t *testing.T) {
	f := start(t)
	for _, c := range []struct{ method, path string }{
		{"PUT", "/connectors/orders-mirror/pause"},
		{"PUT", "/connectors/orders-mirror/resume"},
		{"PUT", "/connectors/orders-mirror/stop"},
		{"POST", "/connectors/orders-mirror/restart"},
		{"PATCH", "/connectors/orders-mirror/offsets"},
		{"DELETE", "/connectors/orders-mirror/offsets"},
	} {
		code, body := f.do(t, c.method, c.path, "{}", false)
		if code != http.StatusUnauthorized || !strings.Contains(body, "http.auth_token") {
			t.Errorf("%s %s without token: %d %s", c.method, c.path, code, body)
		}
		if strings.Contains(body, token) {
			t.Errorf("%s %s: the error shows the token", c.method, c.path)
		}
	}
	if st := f.state(t); st.State != runtime.StateRunning {
		t.Fatalf("an unauthorised request changed the state to %s", st.State)
	}
}

// A paused connector reads nothing, while its in-flight records still finish and their
// checkpoints move.
func TestPauseAndResume(t *testing.T) {
	f := start(t)
	if code, body := f.do(t, "PUT", "/connectors/orders-mirror/pause", "", true); code != 202 {
		t.Fatalf("pause: %d %s", code, body)
	}
	if st := f.state(t); st.State != runtime.StatePaused {
		t.Fatalf("state %s; want PAUSED", st.State)
	}
	if code, _ := f.do(t, "GET", "/readyz", "", false); code != 503 {
		t.Fatalf("readyz while paused: %d; want 503", code)
	}
	// Readers that were already past WaitForSpace when the pause came may still emit one record
	// each; after that nothing more is read. Keep acknowledging until everything in flight has
	// finished and is checkpointed, give the readers time to (wrongly) read more, and check again.
	before := f.src.Emitted.Load()
	finished := func() bool {
		f.release()
		st := f.state(t)
		for _, sh := range st.Shards {
			if sh.InFlight != 0 || sh.Checkpoint == nil || sh.PendingBytes != 0 {
				return false
			}
		}
		return len(st.Shards) > 0 && st.InFlight == 0 && f.pool.Stats().UsedRecords == 0
	}
	eventually(t, "in-flight records finished and checkpointed", finished)
	time.Sleep(100 * time.Millisecond)
	eventually(t, "in-flight records finished and checkpointed", finished)
	if after := f.src.Emitted.Load(); after-before > 2 {
		t.Fatalf("paused connector emitted %d records; only the one already-read record per shard may follow a pause", after-before)
	}
	settled := f.src.Emitted.Load()
	if code, body := f.do(t, "PUT", "/connectors/orders-mirror/resume", "", true); code != 202 {
		t.Fatalf("resume: %d %s", code, body)
	}
	eventually(t, "reading resumed", func() bool { return f.src.Emitted.Load() > settled })
	if st := f.state(t); st.State != runtime.StateRunning {
		t.Fatalf("state %s; want RUNNING", st.State)
	}
}

// Offsets can be edited only while the connector is stopped (KIP-875), and a restart resumes from
// them.
func TestOffsetsEditOnlyWhileStopped(t *testing.T) {
	f := start(t)
	patch := `{"offsets":[{"partition":{"shard":"shard-0"},"offset":{"sequence_number":"1000","sub_sequence_number":0}}]}`
	code, body := f.do(t, "PATCH", "/connectors/orders-mirror/offsets", patch, true)
	if code != http.StatusConflict || !strings.Contains(body, "stop it first") {
		t.Fatalf("PATCH while running: %d %s", code, body)
	}
	if code, body := f.do(t, "DELETE", "/connectors/orders-mirror/offsets", "", true); code != http.StatusConflict {
		t.Fatalf("DELETE while running: %d %s", code, body)
	}

	sink := f.sinkP.Load()
	stopped := make(chan struct{})
	go func() {
		// The stop drains: acknowledge what is in flight until it is done.
		for {
			select {
			case <-stopped:
				return
			case <-time.After(5 * time.Millisecond):
				sink.Release()
			}
		}
	}()
	code, body = f.do(t, "PUT", "/connectors/orders-mirror/stop", "", true)
	close(stopped)
	if code != 202 {
		t.Fatalf("stop: %d %s", code, body)
	}
	if st := f.state(t); st.State != runtime.StateStopped {
		t.Fatalf("state after stop %s; want STOPPED", st.State)
	}
	// The only connector is stopped on request: the Worker (and so the process) keeps running,
	// so that it can be started again.
	select {
	case err := <-f.runDone:
		f.runDone <- err // for the cleanup
		t.Fatalf("Worker.Run returned (%v) once its only connector was stopped on request", err)
	case <-time.After(200 * time.Millisecond):
	}
	for _, bad := range []string{`{"offsets":[]}`, `{"offsets":[{"partition":{"shard":"shard-0"},"offset":{"sequence_number":"abc"}}]}`, `not json`, `{"offsets":[{"partition":{},"offset":{"sequence_number":"1"}}]}`} {
		if code, body := f.do(t, "PATCH", "/connectors/orders-mirror/offsets", bad, true); code != 400 || !strings.Contains(body, "message") {
			t.Errorf("PATCH %s: %d %s; want 400 with a message", bad, code, body)
		}
	}
	if code, body := f.do(t, "PATCH", "/connectors/orders-mirror/offsets", patch, true); code != 200 {
		t.Fatalf("PATCH while stopped: %d %s", code, body)
	}
	code, body = f.do(t, "GET", "/connectors/orders-mirror/offsets", "", false)
	if code != 200 || !strings.Contains(body, `"sequence_number": "1000"`) {
		t.Fatalf("GET offsets: %d %s", code, body)
	}
	if code, body := f.do(t, "DELETE", "/connectors/orders-mirror/offsets?shard=shard-1", "", true); code != 200 {
		t.Fatalf("DELETE shard-1: %d %s", code, body)
	}
	if _, ok := f.store.Get("orders-mirror", "orders", "shard-1"); ok {
		t.Fatal("shard-1's checkpoint survived DELETE")
	}

	if code, body := f.do(t, "POST", "/connectors/orders-mirror/restart", "", true); code != 202 {
		t.Fatalf("restart: %d %s", code, body)
	}
	eventually(t, "restarted connector reads again", func() bool { return f.state(t).State == runtime.StateRunning && f.pool.Stats().UsedRecords == 10 })
	eventually(t, "shard-0 resumed after the patched offset and shard-1 from the start", func() bool {
		f.release()
		a, _ := f.store.Get("orders-mirror", "orders", "shard-0")
		b, _ := f.store.Get("orders-mirror", "orders", "shard-1")
		return len(a.Mark.Position.Sequence) == 4 && a.Mark.Position.Sequence > "1000" && b.Mark.Position.Sequence != ""
	})
	if b, _ := f.store.Get("orders-mirror", "orders", "shard-1"); len(b.Mark.Position.Sequence) > 3 {
		t.Fatalf("shard-1 resumed at %s; its offset was deleted, so it should have started over", b.Mark.Position.Sequence)
	}
}
