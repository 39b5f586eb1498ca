package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestYAMLAndTOMLLoadTheSame(t *testing.T) {
	fromYAML, err := Load(fakeRegistry(), []string{"testdata/full.yaml"}, nil)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	fromTOML, err := Load(fakeRegistry(), []string{"testdata/full.toml"}, nil)
	if err != nil {
		t.Fatalf("toml: %v", err)
	}
	if !reflect.DeepEqual(fromYAML, fromTOML) {
		y, _ := json.MarshalIndent(fromYAML, "", "  ")
		tm, _ := json.MarshalIndent(fromTOML, "", "  ")
		t.Fatalf("YAML and TOML differ:\nyaml: %s\ntoml: %s\nyaml %+v\ntoml %+v", y, tm, fromYAML, fromTOML)
	}

	// Equal could also mean equally wrong: pin the decoded values.
	c := fromYAML
	if c.HTTP.Addr != "0.0.0.0:9090" || c.HTTP.AuthToken.Reveal() != "s3cret-token" {
		t.Errorf("http = %+v", c.HTTP)
	}
	if c.Pool != (Pool{MaxPendingRecords: 1000, MaxPendingBytes: 128 << 20, WaitTimeout: Duration(45 * time.Second)}) {
		t.Errorf("pool = %+v", c.Pool)
	}
	if c.ShutdownTimeout != Duration(90*time.Second) {
		t.Errorf("shutdown_timeout = %v", c.ShutdownTimeout)
	}
	if len(c.Connectors) != 2 {
		t.Fatalf("connectors = %d, want 2", len(c.Connectors))
	}
	o := c.Connectors[0]
	if o.Name != "orders-mirror" || o.Source.Type != "fakesrc" || o.Sink.Type != "fakesink" {
		t.Errorf("connector 0 = %+v", o)
	}
	wantSrc := &fakeSource{
		Stream: "orders", Shards: []string{"shard-0", "shard-1"}, MaxBatch: 512 << 10,
		Poll: Duration(250 * time.Millisecond), Retries: 3,
		EFO: fakeEFO{Enabled: true, ConsumerName: "shardbridge-orders-mirror"}, // default from Validate
	}
	if got := o.Source.Config.(*fakeSource); !reflect.DeepEqual(got, wantSrc) {
		t.Errorf("source = %+v, want %+v", got, wantSrc)
	}
	wantSink := &fakeSink{
		Brokers: []string{"a:9092", "b:9092"}, Topic: "orders", Linger: Duration(10 * time.Millisecond),
		MaxMessage: 1 << 20, Headers: map[string]string{"origin": "kinesis"},
		SASL:       fakeSASL{User: "mirror", Password: "hunter2"},
		Partitions: []fakePartition{{Key: "eu", Weight: 2}, {Key: "us", Weight: 1}},
	}
	if got := o.Sink.Config.(*fakeSink); !reflect.DeepEqual(got, wantSink) {
		t.Errorf("sink = %+v, want %+v", got, wantSink)
	}
	if o.Checkpoint != (Checkpoint{Topic: "_orders_checkpoints", Interval: Duration(2 * time.Second)}) {
		t.Errorf("checkpoint = %+v", o.Checkpoint)
	}
	if o.Errors != (Errors{Policy: PolicyDLQ, DLQTopic: "orders-dlq"}) {
		t.Errorf("errors = %+v", o.Errors)
	}
	// The second connector leaves checkpoint and errors out: defaults.
	if d := DefaultConnector(); c.Connectors[1].Checkpoint != d.Checkpoint || c.Connectors[1].Errors != d.Errors {
		t.Errorf("connector 1 defaults = %+v %+v", c.Connectors[1].Checkpoint, c.Connectors[1].Errors)
	}
}

func TestDefaults(t *testing.T) {
	cfg := mustLoadYAML(t, minimalConnector)
	want := Default()
	if cfg.HTTP != want.HTTP || cfg.Pool != want.Pool || cfg.ShutdownTimeout != want.ShutdownTimeout {
		t.Errorf("runtime settings = %+v %+v %v, want defaults %+v %+v %v", cfg.HTTP, cfg.Pool, cfg.ShutdownTimeout, want.HTTP, want.Pool, want.ShutdownTimeout)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8083" || cfg.Pool.MaxPendingRecords != 50000 || cfg.Pool.MaxPendingBytes != 64<<20 ||
		cfg.Pool.WaitTimeout.D() != 30*time.Second || cfg.ShutdownTimeout.D() != 30*time.Second {
		t.Errorf("defaults do not match the documented ones: %+v", cfg)
	}
	c := cfg.Connectors[0]
	if c.Checkpoint.Topic != "_shardbridge_checkpoints" || c.Checkpoint.Interval.D() != 5*time.Second || c.Errors.Policy != "fail" || c.Errors.DLQTopic != "" {
		t.Errorf("connector defaults = %+v %+v", c.Checkpoint, c.Errors)
	}
}

func TestLoadNoPathsUsesDefaultsAndEnvironment(t *testing.T) {
	cfg, err := Load(fakeRegistry(), nil, []string{"SHARDBRIDGE_POOL__MAX_PENDING_RECORDS=7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pool.MaxPendingRecords != 7 || len(cfg.Connectors) != 0 || cfg.HTTP.Addr != DefaultHTTPAddr {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestLoadDirectoryMergesAndConcatenates(t *testing.T) {
	cfg, err := Load(fakeRegistry(), []string{"testdata/dir"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 10-orders.yaml overrides max_pending_records from 00-runtime.yaml, key by key:
	// max_pending_bytes from the earlier file survives.
	if cfg.Pool.MaxPendingRecords != 200 || cfg.Pool.MaxPendingBytes != 1<<20 || cfg.HTTP.Addr != "127.0.0.1:9000" {
		t.Errorf("merged runtime settings = %+v %+v", cfg.Pool, cfg.HTTP)
	}
	var names []string
	for _, c := range cfg.Connectors {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"orders", "clicks"}) {
		t.Errorf("connectors = %v, want [orders clicks] in file order", names)
	}
	if b := cfg.Connectors[1].Sink.Config.(*fakeSink).Brokers; !reflect.DeepEqual(b, []string{"b:9092"}) {
		t.Errorf("clicks brokers = %v", b)
	}
}

func TestLoadLaterPathOverridesEarlier(t *testing.T) {
	first := writeConfig(t, "a.toml", "[pool]\nmax_pending_records = 10\nwait_timeout = \"10s\"\n[http]\naddr = \":1\"\n")
	second := writeConfig(t, "b.yml", "pool:\n  max_pending_records: 20\n"+minimalConnector)
	cfg, err := Load(fakeRegistry(), []string{first, second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pool.MaxPendingRecords != 20 || cfg.Pool.WaitTimeout.D() != 10*time.Second || cfg.HTTP.Addr != ":1" {
		t.Errorf("cfg = %+v %+v", cfg.Pool, cfg.HTTP)
	}
	// Swapping the order swaps the winner.
	cfg, err = Load(fakeRegistry(), []string{second, first}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Pool.MaxPendingRecords != 10 {
		t.Errorf("max_pending_records = %d, want 10", cfg.Pool.MaxPendingRecords)
	}
}

func TestDuplicateNamesAcrossFiles(t *testing.T) {
	a := writeConfig(t, "a.yaml", minimalConnector)
	b := writeConfig(t, "b.yaml", minimalConnector)
	_, err := Load(fakeRegistry(), []string{a, b}, nil)
	p := findProblem(t, err, "connectors[1].name")
	assertContains(t, p.Error(), "duplicate name; connectors[0] has it too")
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "nope.yaml"},
		{"unknown extension", writeConfig(t, "c.json", "{}"), `unknown extension ".json"; use .yaml, .yml or .toml`},
		{"empty directory", empty, "no .yaml, .yml or .toml files"},
		{"bad yaml", writeConfig(t, "bad.yaml", "pool: [\n"), "bad.yaml"},
		{"bad toml", writeConfig(t, "bad.toml", "pool = = 1\n"), "bad.toml"},
		{"connectors not a list", writeConfig(t, "c.yaml", "connectors: {name: x}\n"), "connectors: map[name:x]: expected a list in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(fakeRegistry(), []string{tt.path}, nil)
			if err == nil || cfg != nil {
				t.Fatalf("Load = %v, %v; want an error", cfg, err)
			}
			assertContains(t, err.Error(), tt.want)
		})
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	base := `
http:
  auth_token: from-file
connectors:
  - name: c1
    source: {fakesrc: {stream: s}}
    sink:
      fakesink:
        brokers: ["k:9092"]
        topic: t
        sasl: {user: u, password: file-pass}
`
	cfg := mustLoadYAML(t, base,
		"SHARDBRIDGE_POOL__MAX_PENDING_BYTES=128MiB",
		"SHARDBRIDGE_POOL__MAX_PENDING_RECORDS=42",
		"shardbridge_pool__wait_timeout=1s",  // prefix is case-sensitive: ignored
		"SHARDBRIDGE_Pool__Wait_Timeout=10s", // keys are case-insensitive
		"SHARDBRIDGE_HTTP__AUTH_TOKEN=env-token",
		"SHARDBRIDGE_CONNECTORS__0__SINK__FAKESINK__BROKERS=a:9092, b:9092",
		"SHARDBRIDGE_CONNECTORS__0__SINK__FAKESINK__SASL__PASSWORD=env-pass",
		"SHARDBRIDGE_CONNECTORS__0__SOURCE__FAKESRC__EFO__ENABLED=true",
		"SHARDBRIDGE_CONNECTORS__0__SOURCE__FAKESRC__RETRIES=5",
		"SHARDBRIDGE_CONNECTORS__0__CHECKPOINT__INTERVAL=250ms",
		"SHARDBRIDGE_CONFIG=configs",        // cmd's own variable: not a key
		"OTHER_POOL__MAX_PENDING_RECORDS=1", // no prefix: ignored
		"SHARDBRIDGE_NOVALUE",               // malformed entry: ignored
	)
	if cfg.Pool.MaxPendingBytes != 128<<20 || cfg.Pool.MaxPendingRecords != 42 || cfg.Pool.WaitTimeout.D() != 10*time.Second {
		t.Errorf("pool = %+v", cfg.Pool)
	}
	if cfg.HTTP.AuthToken.Reveal() != "env-token" {
		t.Errorf("auth_token = %q", cfg.HTTP.AuthToken.Reveal())
	}
	sink := cfg.Connectors[0].Sink.Config.(*fakeSink)
	if !reflect.DeepEqual(sink.Brokers, []string{"a:9092", "b:9092"}) || sink.SASL.Password.Reveal() != "env-pass" || sink.SASL.User != "u" || sink.Topic != "t" {
		t.Errorf("sink = %+v (password %q)", sink, sink.SASL.Password.Reveal())
	}
	src := cfg.Connectors[0].Source.Config.(*fakeSource)
	if !src.EFO.Enabled || src.Retries != 5 || src.Stream != "s" {
		t.Errorf("source = %+v", src)
	}
	if cfg.Connectors[0].Checkpoint.Interval.D() != 250*time.Millisecond {
		t.Errorf("checkpoint interval = %v", cfg.Connectors[0].Checkpoint.Interval)
	}
}

func TestWithoutEnv(t *testing.T) {
	env := []string{"SHARDBRIDGE_LOG_LEVEL=debug", "SHARDBRIDGE_POOL__MAX_PENDING_RECORDS=9", "HOME=/home/user"}
	got := WithoutEnv(env, "SHARDBRIDGE_LOG_LEVEL")
	if !reflect.DeepEqual(got, env[1:]) {
		t.Errorf("WithoutEnv = %v", got)
	}
	// Without the filter the unknown variable is an unknown key; with it, Load succeeds.
	_, err := loadYAML(t, minimalConnector, env...)
	assertContains(t, findProblem(t, err, "log_level").Error(), "unknown key")
	cfg := mustLoadYAML(t, minimalConnector, got...)
	if cfg.Pool.MaxPendingRecords != 9 {
		t.Errorf("max_pending_records = %d", cfg.Pool.MaxPendingRecords)
	}
}

func TestEnvironmentErrors(t *testing.T) {
	tests := []struct {
		name string
		env  string
		key  string
		want string
	}{
		{"index out of range", "SHARDBRIDGE_CONNECTORS__3__NAME=x", "SHARDBRIDGE_CONNECTORS__3__NAME", "no connector at index 3; the files define 1"},
		{"index not a number", "SHARDBRIDGE_CONNECTORS__FIRST__NAME=x", "SHARDBRIDGE_CONNECTORS__FIRST__NAME", "connector index is not a number"},
		{"index not canonical", "SHARDBRIDGE_CONNECTORS__00__NAME=x", "SHARDBRIDGE_CONNECTORS__00__NAME", "connector index is not a number"},
		{"whole list", "SHARDBRIDGE_CONNECTORS=x", "SHARDBRIDGE_CONNECTORS", "cannot set the connectors list from the environment"},
		{"whole connector", "SHARDBRIDGE_CONNECTORS__0=x", "SHARDBRIDGE_CONNECTORS__0", "cannot replace a whole connector"},
		{"empty level", "SHARDBRIDGE_POOL____MAX_PENDING_RECORDS=1", "SHARDBRIDGE_POOL____MAX_PENDING_RECORDS", "empty key level"},
		{"unknown key with suggestion", "SHARDBRIDGE_POOL__MAX_PENDING_BYTE=1MiB", "pool.max_pending_byte", "unknown key; did you mean max_pending_bytes?"},
		{"unknown plugin key", "SHARDBRIDGE_CONNECTORS__0__SINK__FAKESINK__BROKER=a:1", "connectors[0].sink.fakesink.broker", "did you mean brokers?"},
		{"bad integer", "SHARDBRIDGE_POOL__MAX_PENDING_RECORDS=lots", "pool.max_pending_records", `"lots": not a whole number`},
		{"bad boolean", "SHARDBRIDGE_CONNECTORS__0__SOURCE__FAKESRC__EFO__ENABLED=yes", "connectors[0].source.fakesrc.efo.enabled", `"yes": not a boolean; use true or false`},
		{"bad size", "SHARDBRIDGE_POOL__MAX_PENDING_BYTES=64XB", "pool.max_pending_bytes", `"64XB": unknown unit "XB"`},
		{"bare number duration", "SHARDBRIDGE_POOL__WAIT_TIMEOUT=30", "pool.wait_timeout", `"30": a number without a unit is ambiguous; use a duration with a unit such as "30s"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadYAML(t, minimalConnector, tt.env)
			if cfg != nil {
				t.Errorf("Load returned a config with an error")
			}
			assertContains(t, findProblem(t, err, tt.key).Error(), tt.want)
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := loadYAML(t, `
http: {addr: "nohost"}
pool: {max_pending_records: 0, max_pending_bytes: "64XB", wait_timeout: "10m", max_pendng_records: 1}
connectors:
  - name: "bad name!"
    source: {fakesrc: {}}
    sink: {fakesink: {brokers: ["k:1"], topic: t, sasl: {pasword: x}}}
    errors: {policy: dlq}
`)
	want := []string{
		"http.addr", "pool.max_pending_records", "pool.max_pending_bytes", "pool.wait_timeout",
		"pool.max_pendng_records", "connectors[0].name", "connectors[0].source.fakesrc.stream",
		"connectors[0].sink.fakesink.sasl.pasword", "connectors[0].errors.dlq_topic",
	}
	var got []string
	for _, p := range Problems(err) {
		got = append(got, p.Key)
	}
	for _, k := range want {
		findProblem(t, err, k)
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.Contains(line, ": ") {
			t.Errorf("problem line without key: %q", line)
		}
	}
}

func TestDecodeFailureNotReportedTwice(t *testing.T) {
	// max_pending_bytes fails to decode, so it keeps its default; validation must not add a
	// second, confusing problem for the same key. Same inside a plugin.
	_, err := loadYAML(t, `
pool: {max_pending_records: "many"}
connectors:
  - name: c1
    source: {fakesrc: {stream: s, retries: "x"}}
    sink: {fakesink: {brokers: 3, topic: t}}
`)
	ps := Problems(err)
	if len(ps) != 3 {
		t.Fatalf("want 3 problems, got %d:\n%v", len(ps), err)
	}
	findProblem(t, err, "pool.max_pending_records")
	findProblem(t, err, "connectors[0].source.fakesrc.retries")
	assertContains(t, findProblem(t, err, "connectors[0].sink.fakesink.brokers").Error(), "expected a list, got an integer")
}

// TestValidationErrors has one row per validation rule: snippet -> key and message.
func TestValidationErrors(t *testing.T) {
	conn := func(extra string) string {
		return "connectors:\n  - name: c1\n    source: {fakesrc: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n" + extra
	}
	tests := []struct {
		name    string
		yaml    string
		key     string
		message string
	}{
		{"addr not host:port", "http: {addr: localhost}\n" + minimalConnector, "http.addr", `"localhost": not host:port; use host:port`},
		{"addr bad port", "http: {addr: \"127.0.0.1:http\"}\n" + minimalConnector, "http.addr", "port must be a number from 0 to 65535"},
		{"addr port too big", "http: {addr: \"127.0.0.1:70000\"}\n" + minimalConnector, "http.addr", "port must be a number from 0 to 65535"},
		{"records zero", "pool: {max_pending_records: 0}\n" + minimalConnector, "pool.max_pending_records", "0: must be at least 1"},
		{"records negative", "pool: {max_pending_records: -5}\n" + minimalConnector, "pool.max_pending_records", "-5: must be at least 1"},
		{"bytes too small", "pool: {max_pending_bytes: 1000}\n" + minimalConnector, "pool.max_pending_bytes", `"1KB": must be at least 1KiB`},
		{"bytes negative", "pool: {max_pending_bytes: -1}\n" + minimalConnector, "pool.max_pending_bytes", "must not be negative"},
		{"bytes fraction", "pool: {max_pending_bytes: \"0.3KiB\"}\n" + minimalConnector, "pool.max_pending_bytes", "does not resolve to a whole number of bytes"},
		{"bytes unknown unit", "pool: {max_pending_bytes: 64XB}\n" + minimalConnector, "pool.max_pending_bytes", `"64XB": unknown unit "XB"; use a size such as "64MiB"`},
		{"wait zero", "pool: {wait_timeout: 0s}\n" + minimalConnector, "pool.wait_timeout", `"0s": must be more than 0s and less than 5m`},
		{"wait five minutes", "pool: {wait_timeout: 5m}\n" + minimalConnector, "pool.wait_timeout", "less than 5m"},
		{"wait bare number", "pool: {wait_timeout: 30}\n" + minimalConnector, "pool.wait_timeout", `30: a number without a unit is ambiguous; use a duration with a unit such as "30s"`},
		{"wait negative", "pool: {wait_timeout: -1s}\n" + minimalConnector, "pool.wait_timeout", "must not be negative"},
		{"shutdown zero", "shutdown_timeout: 0s\n" + minimalConnector, "shutdown_timeout", `"0s": must be more than 0s`},
		{"shutdown garbage", "shutdown_timeout: soon\n" + minimalConnector, "shutdown_timeout", `"soon": not a duration`},
		{"name missing", "connectors:\n  - source: {fakesrc: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].name", "required"},
		{"name bad chars", "connectors:\n  - name: \"a b\"\n    source: {fakesrc: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].name", "must be 1 to 100 characters"},
		{"name too long", "connectors:\n  - name: " + strings.Repeat("a", 101) + "\n    source: {fakesrc: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].name", "must be 1 to 100 characters"},
		{"name duplicate", conn("  - name: c1\n    source: {fakesrc: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n"), "connectors[1].name", "duplicate name"},
		{"no source", "connectors:\n  - name: c1\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source", "no source type; add a source section with exactly one of fakesrc"},
		{"no sink", "connectors:\n  - name: c1\n    source: {fakesrc: {stream: s}}\n", "connectors[0].sink", "no sink type"},
		{"two sources", "connectors:\n  - name: c1\n    source: {fakesrc: {stream: s}, other: {}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source", `"fakesrc, other": several source types`},
		{"unknown source with suggestion", "connectors:\n  - name: c1\n    source: {fakesrs: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source", `"fakesrs": unknown source type; did you mean fakesrc?`},
		{"unknown sink listing types", "connectors:\n  - name: c1\n    source: {fakesrc: {stream: s}}\n    sink: {kafka: {}}\n", "connectors[0].sink", `"kafka": unknown sink type; use one of fakesink`},
		{"source not a table", "connectors:\n  - name: c1\n    source: fakesrc\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source", "expected a table of keys, got a string"},
		{"plugin body not a table", "connectors:\n  - name: c1\n    source: {fakesrc: orders}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source.fakesrc", "expected a table of keys, got a string"},
		{"plugin validate", "connectors:\n  - name: c1\n    source: {fakesrc: {}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source.fakesrc.stream", "required; name the stream"},
		{"plugin unknown key", "connectors:\n  - name: c1\n    source: {fakesrc: {stream: s, efo: {enable: true}}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t}}\n", "connectors[0].source.fakesrc.efo.enable", "unknown key; did you mean enabled?"},
		{"plugin list element unknown key", "connectors:\n  - name: c1\n    source: {fakesrc: {stream: s}}\n    sink: {fakesink: {brokers: [\"k:1\"], topic: t, partitions: [{key: a}, {kee: b}]}}\n", "connectors[0].sink.fakesink.partitions[1].kee", "did you mean key?"},
		{"checkpoint topic empty", conn("    checkpoint: {topic: \"\"}\n"), "connectors[0].checkpoint.topic", "must not be empty"},
		{"checkpoint topic bad", conn("    checkpoint: {topic: \"a/b\"}\n"), "connectors[0].checkpoint.topic", `"a/b": must be 1 to 249 characters`},
		{"checkpoint topic dot", conn("    checkpoint: {topic: \"..\"}\n"), "connectors[0].checkpoint.topic", "is not a valid Kafka topic name"},
		{"checkpoint interval small", conn("    checkpoint: {interval: 50ms}\n"), "connectors[0].checkpoint.interval", `"50ms": must be at least 100ms`},
		{"policy unknown", conn("    errors: {policy: retry}\n"), "connectors[0].errors.policy", `"retry": unknown policy; use "fail", "dlq" or "skip"`},
		{"policy typo", conn("    errors: {policy: skp}\n"), "connectors[0].errors.policy", "did you mean skip?"},
		{"policy empty", conn("    errors: {policy: \"\"}\n"), "connectors[0].errors.policy", "unknown policy"},
		{"dlq without topic", conn("    errors: {policy: dlq}\n"), "connectors[0].errors.dlq_topic", `required with errors.policy "dlq"`},
		{"dlq topic bad", conn("    errors: {policy: dlq, dlq_topic: \"a b\"}\n"), "connectors[0].errors.dlq_topic", "must be 1 to 249 characters"},
		{"dlq topic is checkpoint topic", conn("    errors: {policy: dlq, dlq_topic: _shardbridge_checkpoints}\n"), "connectors[0].errors.dlq_topic", "is the checkpoint topic"},
		{"dlq topic without dlq", conn("    errors: {dlq_topic: d}\n"), "connectors[0].errors.dlq_topic", `"d": is set but errors.policy is "fail"`},
		{"dlq topic with skip", conn("    errors: {policy: skip, dlq_topic: d}\n"), "connectors[0].errors.dlq_topic", `is set but errors.policy is "skip"`},
		{"unknown top key", "shutdown_timout: 1s\n" + minimalConnector, "shutdown_timout", "unknown key; did you mean shutdown_timeout?"},
		{"unknown key no suggestion", "metrics: {}\n" + minimalConnector, "metrics", "unknown key; known keys are connectors, decode_budget, http, memory_limit, pool, shutdown_timeout"},
		{"unknown connector key", conn("    checkpiont: {}\n"), "connectors[0].checkpiont", "did you mean checkpoint?"},
		{"uppercase key is unknown", "Pool: {max_pending_records: 1}\n" + minimalConnector, "Pool", "did you mean pool?"},
		{"section not a table", "pool: 5\n" + minimalConnector, "pool", "5: expected a table of keys, got an integer"},
		{"string field given a number", conn("    checkpoint: {topic: 5}\n"), "connectors[0].checkpoint.topic", "5: expected a string, got an integer; quote the value"},
		{"integer field given a fraction", "pool: {max_pending_records: 1.5}\n" + minimalConnector, "pool.max_pending_records", "1.5: not a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadYAML(t, tt.yaml)
			if cfg != nil {
				t.Errorf("Load returned a config along with an error")
			}
			p := findProblem(t, err, tt.key)
			assertContains(t, p.Error(), tt.message)
			if strings.Contains(p.Error(), "\n") {
				t.Errorf("problem spans lines: %q", p.Error())
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	_, err := loadYAML(t, "pool: {max_pending_bytes: 64XB}\n"+minimalConnector)
	got := findProblem(t, err, "pool.max_pending_bytes").Error()
	want := `pool.max_pending_bytes: "64XB": unknown unit "XB"; use a size such as "64MiB", "512KiB", "10MB" or a whole number of bytes such as "1024"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	fe := &FieldError{Key: "k", Value: "line1\nline2" + strings.Repeat("x", 200), Problem: "bad\nvalue", Fix: "fix it"}
	if s := fe.Error(); strings.Contains(s, "\n") || len(s) > 140 {
		t.Errorf("not one short line: %q", s)
	}
	if s := (&FieldError{Key: "k", Problem: "required"}).Error(); s != "k: required" {
		t.Errorf("no value, no fix: %q", s)
	}
	if s := (&FieldError{Value: 3, Problem: "odd", Fix: "even"}).Error(); s != "3: odd; even" {
		t.Errorf("no key: %q", s)
	}
}

func TestLoadedConfigNeverRevealsSecrets(t *testing.T) {
	cfg, err := Load(fakeRegistry(), []string{"testdata/full.yaml"}, []string{"SHARDBRIDGE_CONNECTORS__1__SINK__FAKESINK__SASL__PASSWORD=env-pass"})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"s3cret-token", "hunter2", "env-pass"}
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"json":       string(js),
		"%+v":        fmt.Sprintf("%+v", *cfg),
		"%v":         fmt.Sprintf("%v", cfg.Connectors),
		"%#v":        fmt.Sprintf("%#v", *cfg),
		"%+v plugin": fmt.Sprintf("%+v %+v", cfg.Connectors[0].Sink.Config, cfg.Connectors[1].Sink.Config),
	}
	for name, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s reveals %q: %s", name, s, out)
			}
		}
	}
	// The JSON keeps the config's shape, so the HTTP API can show it.
	var back map[string]any
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	conn := back["connectors"].([]any)[0].(map[string]any)
	sasl := conn["sink"].(map[string]any)["fakesink"].(map[string]any)["sasl"].(map[string]any)
	if sasl["password"] != "[redacted]" || back["http"].(map[string]any)["auth_token"] != "[redacted]" {
		t.Errorf("json = %s", js)
	}
	if back["pool"].(map[string]any)["max_pending_bytes"] != "128MiB" || back["shutdown_timeout"] != "1m30s" {
		t.Errorf("json sizes and durations = %s", js)
	}
	// The values are still there for the code that needs them.
	if cfg.Connectors[1].Sink.Config.(*fakeSink).SASL.Password.Reveal() != "env-pass" {
		t.Error("Reveal lost the value")
	}
}

func TestSecretDecodeErrorDoesNotEchoValue(t *testing.T) {
	_, err := loadYAML(t, `
http: {auth_token: 123456789}
connectors:
  - name: c1
    source: {fakesrc: {stream: s}}
    sink: {fakesink: {brokers: ["k:1"], topic: t, sasl: {password: 987654321}}}
`)
	for _, key := range []string{"http.auth_token", "connectors[0].sink.fakesink.sasl.password"} {
		p := findProblem(t, err, key)
		assertContains(t, p.Error(), "expected a string, got an integer; quote the value")
	}
	for _, s := range []string{"123456789", "987654321"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error reveals %s: %v", s, err)
		}
	}
}

func TestConfigValidateFromCode(t *testing.T) {
	cfg := Default()
	c := DefaultConnector()
	c.Name = "c1"
	c.Source = Plugin{Type: "fakesrc", Config: &fakeSource{Stream: "s"}}
	c.Sink = Plugin{Type: "fakesink", Config: &fakeSink{Brokers: []string{"k:1"}, Topic: "t"}}
	cfg.Connectors = append(cfg.Connectors, c)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := cfg.Connectors[0].Source.Config.(*fakeSource).EFO.ConsumerName; got != "shardbridge-c1" {
		t.Errorf("plugin default consumer name = %q", got)
	}
	cfg.Connectors[0].Sink = Plugin{}
	cfg.Pool.WaitTimeout = 0
	err := cfg.Validate()
	findProblem(t, err, "connectors[0].sink")
	findProblem(t, err, "pool.wait_timeout")
}

// plainErrPlugin returns a plain error, as a careless plugin might.
type plainErrPlugin struct{}

func (plainErrPlugin) Validate(connector, path string) error { return fmt.Errorf("broken") }

func TestPluginPlainErrorGetsSectionKey(t *testing.T) {
	cfg := Default()
	c := DefaultConnector()
	c.Name = "c1"
	c.Source = Plugin{Type: "plain", Config: plainErrPlugin{}}
	c.Sink = Plugin{Type: "fakesink", Config: &fakeSink{Brokers: []string{"k:1"}, Topic: "t"}}
	cfg.Connectors = []Connector{c}
	p := findProblem(t, cfg.Validate(), "connectors[0].source.plain")
	if p.Problem != "broken" {
		t.Errorf("problem = %q", p.Problem)
	}
}

func TestProblemsUnwrapsWrappedJoins(t *testing.T) {
	a := &FieldError{Key: "a", Problem: "p"}
	b := &FieldError{Key: "b", Problem: "q"}
	err := fmt.Errorf("validate: %w", errors.Join(a, fmt.Errorf("inner: %w", b), errors.New("plain")))
	ps := Problems(err)
	if len(ps) != 3 || ps[0] != a || ps[1] != b || ps[2].Key != "" || ps[2].Problem != "plain" {
		t.Errorf("Problems = %v", ps)
	}
	if Problems(nil) != nil {
		t.Error("Problems(nil) is not empty")
	}
}

func TestEmptyFilesAndOddKeys(t *testing.T) {
	for _, name := range []string{"e.yaml", "e.toml"} {
		cfg, err := Load(fakeRegistry(), []string{writeConfig(t, name, "")}, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Pool != Default().Pool || len(cfg.Connectors) != 0 {
			t.Errorf("%s: cfg = %+v", name, cfg)
		}
	}
	// A YAML mapping with a non-string key still decodes: koanf turns keys into strings.
	cfg := mustLoadYAML(t, `
connectors:
  - name: c1
    source: {fakesrc: {stream: s}}
    sink: {fakesink: {brokers: ["k:1"], topic: t, headers: {1: one, x.y: dotted}}}
`)
	if h := cfg.Connectors[0].Sink.Config.(*fakeSink).Headers; !reflect.DeepEqual(h, map[string]string{"1": "one", "x.y": "dotted"}) {
		t.Errorf("headers = %v", h)
	}
	// A top-level document that is not a mapping is an error naming the file.
	_, err := loadYAML(t, "- a\n- b\n")
	assertContains(t, err.Error(), "c.yaml")
}
