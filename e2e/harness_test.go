package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// binPath is the shardbridge binary TestMain built with the race detector.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped with -short (the suite runs the built binary against kinesistest and kfake)")
		os.Exit(0)
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "shardbridge-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "shardbridge")
	build := exec.Command("go", "build", "-race", "-o", binPath, "./cmd/shardbridge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build -race ./cmd/shardbridge: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// moduleRoot walks up from the working directory to the folder holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// waitUntil polls cond every tick until it returns nil or the deadline passes; then it fails the
// test with the last error cond returned.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	waitEvery(t, within, 50*time.Millisecond, what, cond)
}

// waitEvery is waitUntil with its own tick, for conditions that are costly to check.
func waitEvery(t testing.TB, within, every time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		<-tick.C
	}
}

// kafkaBroker is a one-broker kfake cluster that persists to a data dir, so it can be restarted
// on the same port with its data.
type kafkaBroker struct {
	t          testing.TB
	dir        string
	port       int
	partitions int32
	topics     []string
	opts       []kfake.Opt // more options for every start

	mu sync.Mutex
	c  *kfake.Cluster // mu guards c; nil while the broker is down
}

func startKafka(t testing.TB, partitions int32, topics ...string) *kafkaBroker {
	t.Helper()
	k := &kafkaBroker{t: t, dir: filepath.Join(t.TempDir(), "kafka"), partitions: partitions, topics: topics}
	if err := k.start(0); err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(k.stop)
	return k
}

func (k *kafkaBroker) start(port int) error {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(k.dir),
		kfake.SeedTopics(k.partitions, k.topics...),
		// Group scenarios use short sessions, so that a dead worker's shards move quickly.
		kfake.GroupMinSessionTimeout(time.Second)}, k.opts...)...)
	if err != nil {
		return err
	}
	addr := c.ListenAddrs()[0]
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		c.Close()
		return fmt.Errorf("kfake address %q: %w", addr, err)
	}
	k.mu.Lock()
	k.c, k.port = c, p
	k.mu.Unlock()
	return nil
}

func (k *kafkaBroker) stop() {
	k.mu.Lock()
	c := k.c
	k.c = nil
	k.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// startAgain starts a new broker on the port and data dir of the one stop closed. The port may
// be briefly unavailable after the close, so the start is retried for a while.
func (k *kafkaBroker) startAgain() {
	k.t.Helper()
	waitUntil(k.t, 10*time.Second, "restart kfake on port "+strconv.Itoa(k.port), func() error { return k.start(k.port) })
}

func (k *kafkaBroker) cluster() *kfake.Cluster {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.c
}

func (k *kafkaBroker) addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// runtimeConfig is what a scenario varies in the YAML config.
type runtimeConfig struct {
	Connector       string
	Stream          string
	Endpoint        string
	Broker          string
	Topic           string
	PoolRecords     int
	PoolBytes       string
	WaitTimeout     string
	ShutdownTimeout string
	Interval        string
	Policy          string
	DLQTopic        string
	MaxMessageBytes string
	DeliveryTimeout string
	RequestTimeout  string
	ConsumerName    string
	ShardSync       string
	IdleTimeout     string
	// Delivery is connectors[].delivery; empty leaves the default (at_least_once).
	Delivery string
	// Group turns group.enabled on, with these timings (session 3s, heartbeat 500ms by default).
	Group             bool
	SessionTimeout    string
	HeartbeatInterval string
}

var configTemplate = template.Must(template.New("config").Parse(`http:
  addr: "127.0.0.1:0"
pool:
  max_pending_records: {{.PoolRecords}}
  max_pending_bytes: "{{.PoolBytes}}"
  wait_timeout: "{{.WaitTimeout}}"
shutdown_timeout: "{{.ShutdownTimeout}}"
connectors:
  - name: {{.Connector}}
    source:
      kinesis:
        stream: {{.Stream}}
        region: us-east-1
        endpoint: "{{.Endpoint}}"
        tls_skip_verify: true
        start_position: trim_horizon
        shard_sync_interval: "{{.ShardSync}}"
        idle_timeout: "{{.IdleTimeout}}"
        credentials:
          access_key_id: e2e
          secret_access_key: e2e
        efo:
          enabled: true
{{- if .ConsumerName}}
          consumer_name: {{.ConsumerName}}
{{- end}}
    sink:
      kafka:
        brokers: ["{{.Broker}}"]
        topic: {{.Topic}}
        request_timeout: "{{.RequestTimeout}}"
        delivery_timeout: "{{.DeliveryTimeout}}"
{{- if .MaxMessageBytes}}
        max_message_bytes: "{{.MaxMessageBytes}}"
{{- end}}
    checkpoint:
      topic: _shardbridge_checkpoints
      interval: "{{.Interval}}"
    errors:
      policy: {{.Policy}}
{{- if .DLQTopic}}
      dlq_topic: {{.DLQTopic}}
{{- end}}
{{- if .Delivery}}
    delivery: {{.Delivery}}
{{- end}}
{{- if .Group}}
    group:
      enabled: true
      session_timeout: "{{.SessionTimeout}}"
      heartbeat_interval: "{{.HeartbeatInterval}}"
{{- end}}
`))

// defaults fills the settings a scenario left empty with the suite's small, fast values.
func (c runtimeConfig) defaults() runtimeConfig {
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.Connector, "mirror")
	set(&c.Topic, "mirror")
	set(&c.PoolBytes, "32MiB")
	set(&c.WaitTimeout, "30s")
	set(&c.ShutdownTimeout, "20s")
	set(&c.Interval, "1s")
	set(&c.Policy, "fail")
	set(&c.DeliveryTimeout, "2m")
	set(&c.RequestTimeout, "10s")
	set(&c.ShardSync, "1s")
	set(&c.IdleTimeout, "20s")
	set(&c.SessionTimeout, "3s")
	set(&c.HeartbeatInterval, "500ms")
	if c.PoolRecords == 0 {
		c.PoolRecords = 2000
	}
	return c
}

func writeConfig(t testing.TB, c runtimeConfig) string {
	t.Helper()
	var b bytes.Buffer
	if err := configTemplate.Execute(&b, c.defaults()); err != nil {
		t.Fatalf("config template: %v", err)
	}
	path := filepath.Join(t.TempDir(), "shardbridge.yaml")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatalf("write config: %v", err)
	}
	return path
}

// process is one running shardbridge binary.
type process struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	logPath string
	api     string // http://host:port
	done    chan struct{}
	exitErr error // set before done closes
}

// startRuntime runs `shardbridge run --config path... --log-format json`, waits for its API address
// in the "shardbridge running" log line, and kills it at the end of the test if still running.
// Its log is printed when the test fails.
func startRuntime(t testing.TB, name string, configPaths ...string) *process {
	t.Helper()
	p := launchRuntime(t, name, configPaths...)
	p.waitAPI()
	return p
}

// launchRuntime starts the process without waiting for it to listen (see waitAPI), so several
// can start at the same moment.
func launchRuntime(t testing.TB, name string, configPaths ...string) *process {
	t.Helper()
	return launchRuntimeEnv(t, name, nil, configPaths...)
}

// launchRuntimeEnv is launchRuntime with more environment variables (NAME=value), such as
// SHARDBRIDGE_WORKER_ID.
func launchRuntimeEnv(t testing.TB, name string, env []string, configPaths ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create log: %v", err)
	}
	args := []string{"run", "--log-format", "json"}
	for _, path := range configPaths {
		args = append(args, "--config", path)
	}
	cmd := exec.Command(binPath, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A GOMEMLIMIT of the test's environment would override the binary's memory_limit.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMEMLIMIT=") }), "GORACE=halt_on_error=1")
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start shardbridge: %v", err)
	}
	p := &process{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { // owned by p: waited for through p.done
		p.exitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			if t.Failed() && p.api != "" {
				p.diagnose()
			}
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("log of %s (%d bytes, last 40 KB):\n%s", name, len(b), tail(b, 40<<10))
		}
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("%s: the race detector reported a data race (see its log)", name)
		}
	})
	return p
}

// diagnose logs what a failed test needs to see of a live process: each connector's status and
// the pool, record and subscription metrics.
func (p *process) diagnose() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _, err := p.get(ctx, "/connectors")
	var names []string
	if err != nil || json.Unmarshal(b, &names) != nil {
		p.t.Logf("%s: /connectors: %v %s", p.name, err, b)
	}
	for _, n := range names {
		st, _, _ := p.get(ctx, "/connectors/"+n+"/status")
		p.t.Logf("%s: status of %s: %s", p.name, n, st)
	}
	m, _, _ := p.get(ctx, "/metrics")
	var lines []string
	for l := range strings.SplitSeq(string(m), "\n") {
		if strings.HasPrefix(l, "shardbridge_pool") || strings.HasPrefix(l, "shardbridge_records") ||
			strings.HasPrefix(l, "shardbridge_kinesis_subscriptions") || strings.HasPrefix(l, "shardbridge_kafka_produce_errors") {
			lines = append(lines, l)
		}
	}
	p.t.Logf("%s: metrics:\n%s", p.name, strings.Join(lines, "\n"))
}

// waitLog waits until a log line's msg is msg.
func (p *process) waitLog(msg string, within time.Duration) {
	p.t.Helper()
	waitUntil(p.t, within, p.name+": log "+msg, func() error {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			return err
		}
		if !bytes.Contains(b, []byte(`"msg":"`+msg+`"`)) {
			return errors.New("not yet")
		}
		return nil
	})
}

// waitAPI waits for the API address in the "shardbridge running" log line.
func (p *process) waitAPI() {
	p.t.Helper()
	waitUntil(p.t, 30*time.Second, p.name+": API address in the log", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("exited early: %v", p.exitErr)
		default:
		}
		addr, err := apiFromLog(p.logPath)
		if err != nil {
			return err
		}
		p.api = addr
		return nil
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func apiFromLog(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			API string `json:"api"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "shardbridge running" && line.API != "" {
			return line.API, nil
		}
	}
	return "", errors.New(`no "shardbridge running" line yet`)
}

// terminate sends SIGTERM and waits for a clean exit (status 0).
func (p *process) terminate(within time.Duration) {
	p.t.Helper()
	p.terminateWith(within, 0)
}

// terminateWith sends SIGTERM and waits for the exit status want: 1 when a connector failed
// (shardbridge exits non-zero naming the failed connectors).
func (p *process) terminateWith(within time.Duration, want int) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("%s: no exit within %s of SIGTERM", p.name, within)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != want {
		p.t.Fatalf("%s: exit status %d after SIGTERM, want %d (%v)", p.name, code, want, p.exitErr)
	}
}

// kill sends SIGKILL (no drain, no final checkpoint) and waits for the process to be gone.
func (p *process) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("%s: SIGKILL: %v", p.name, err)
	}
	<-p.done
}

func (p *process) get(ctx context.Context, path string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.api+path, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// connectorStatus is the API's /connectors/{name}/status body, the fields the suite reads.
type connectorStatus struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Error  string `json:"error"`
	Shards []struct {
		Shard      string `json:"shard"`
		Checkpoint *struct {
			Position struct {
				Sequence string `json:"sequence_number"`
			} `json:"position"`
			End bool `json:"end"`
		} `json:"checkpoint"`
		Reader *struct {
			State     string `json:"reader_state"`
			LastError string `json:"last_error"`
		} `json:"reader"`
	} `json:"shards"`
}

func (p *process) status(connector string) (connectorStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, code, err := p.get(ctx, "/connectors/"+connector+"/status")
	if err != nil {
		return connectorStatus{}, err
	}
	if code != http.StatusOK {
		return connectorStatus{}, fmt.Errorf("status %d: %s", code, b)
	}
	var s connectorStatus
	if err := json.Unmarshal(b, &s); err != nil {
		return connectorStatus{}, fmt.Errorf("status body %q: %w", b, err)
	}
	return s, nil
}

// offsets returns GET /connectors/{name}/offsets as shard -> sequence number.
func (p *process) offsets(connector string) map[string]string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, code, err := p.get(ctx, "/connectors/"+connector+"/offsets")
	if err != nil || code != http.StatusOK {
		p.t.Fatalf("%s: GET offsets: %v %d %s", p.name, err, code, b)
	}
	var body struct {
		Offsets []struct {
			Partition struct {
				Shard string `json:"shard"`
			} `json:"partition"`
			Offset struct {
				Seq string `json:"sequence_number"`
			} `json:"offset"`
		} `json:"offsets"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		p.t.Fatalf("%s: offsets body %s: %v", p.name, b, err)
	}
	out := map[string]string{}
	for _, o := range body.Offsets {
		out[o.Partition.Shard] = o.Offset.Seq
	}
	return out
}

func (p *process) waitState(connector, state string, within time.Duration) connectorStatus {
	p.t.Helper()
	var last connectorStatus
	waitUntil(p.t, within, p.name+": connector "+connector+" "+state, func() error {
		s, err := p.status(connector)
		if err != nil {
			return err
		}
		last = s
		if s.State != state {
			return fmt.Errorf("state %s (error %q)", s.State, s.Error)
		}
		return nil
	})
	return last
}

// metric sums the samples of a metric in /metrics whose label text contains every one of
// labels (e.g. `reason="backpressure_timeout"`).
func (p *process) metric(name string, labels ...string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, code, err := p.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: status %d", code)
	}
	return sumMetric(b, name, labels...), nil
}

func sumMetric(text []byte, name string, labels ...string) float64 {
	var sum float64
	for line := range strings.SplitSeq(string(text), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		sp := strings.LastIndexByte(rest, ' ')
		lbls := rest[:sp]
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(lbls, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(rest[sp+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// waitMetric waits until the metric reaches at least min, and returns the value seen.
func (p *process) waitMetric(name string, min float64, within time.Duration, labels ...string) float64 {
	p.t.Helper()
	var v float64
	waitUntil(p.t, within, fmt.Sprintf("%s: %s%v >= %g", p.name, name, labels, min), func() error {
		var err error
		v, err = p.metric(name, labels...)
		if err != nil {
			return err
		}
		if v < min {
			return fmt.Errorf("at %g", v)
		}
		return nil
	})
	return v
}
