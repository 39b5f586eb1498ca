package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shardbridge/shardbridge/runtime"
	"github.com/shardbridge/shardbridge/runtime/config"
	"github.com/shardbridge/shardbridge/sink/kafka"
	"github.com/shardbridge/shardbridge/source/kinesis"
)

// GET /connectors/{name} echoes the connector's config in the config's own keys
// (secret_access_key, not SecretAccessKey), secrets redacted: the echo, saved as a file, loads
// back to the same connector with only the secrets replaced by "[redacted]".
func TestConnectorConfigEchoesConfigKeys(t *testing.T) {
	const text = `connectors:
  - name: echo
    source:
      kinesis:
        stream: orders
        region: eu-west-1
        idle_timeout: 90s
        credentials: {access_key_id: AKIDECHO, secret_access_key: s3cr3t-aws, session_token: s3ssion}
    sink:
      kafka:
        brokers: ["k1:9092"]
        topic: "kinesis.{stream}"
        tls: {enabled: true}
        sasl: {mechanism: PLAIN, username: u, password: s3cr3t-kafka}
`
	dir := t.TempDir()
	path := filepath.Join(dir, "in.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(registry(), []string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	echo, err := json.Marshal(cfg.Connectors[0]) // what the API writes for the connector
	if err != nil {
		t.Fatal(err)
	}
	s := string(echo)
	for _, secret := range []string{"s3cr3t-aws", "s3ssion", "s3cr3t-kafka"} {
		if strings.Contains(s, secret) {
			t.Fatalf("the echo shows a secret: %s", s)
		}
	}
	for _, goName := range []string{"SecretAccessKey", "AccessKeyID", "IdleTimeout", "EFO", "Credentials"} {
		if strings.Contains(s, `"`+goName+`"`) {
			t.Errorf("the echo uses the Go field name %q instead of the config key: %s", goName, s)
		}
	}
	for _, key := range []string{`"secret_access_key":"[redacted]"`, `"access_key_id":"AKIDECHO"`, `"idle_timeout":"1m30s"`, `"password":"[redacted]"`} {
		if !strings.Contains(s, key) {
			t.Errorf("the echo lacks %s: %s", key, s)
		}
	}

	// The echo is a config: saved (JSON is YAML) it loads back to the same connector.
	back := filepath.Join(dir, "echo.yaml")
	if err := os.WriteFile(back, []byte(`{"connectors":[`+s+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2, err := config.Load(registry(), []string{back}, nil)
	if err != nil {
		t.Fatalf("the echo does not load as a config: %v\n%s", err, s)
	}
	want, got := cfg.Connectors[0], cfg2.Connectors[0]
	wk, gk := *want.Source.Config.(*kinesis.Config), *got.Source.Config.(*kinesis.Config)
	wk.Credentials.SecretAccessKey, wk.Credentials.SessionToken = "[redacted]", "[redacted]"
	if !reflect.DeepEqual(wk, gk) {
		t.Errorf("kinesis section changed through the echo:\nwant %+v\ngot  %+v", wk, gk)
	}
	wf, gf := *want.Sink.Config.(*kafka.Config), *got.Sink.Config.(*kafka.Config)
	wf.SASL.Password = "[redacted]"
	if !reflect.DeepEqual(wf, gf) {
		t.Errorf("kafka section changed through the echo:\nwant %+v\ngot  %+v", wf, gf)
	}
	if want.Checkpoint != got.Checkpoint || want.Errors != got.Errors || want.Name != got.Name {
		t.Errorf("connector settings changed through the echo: %+v / %+v", want, got)
	}
}

// A start-up error names the part that failed once ("checkpoint store: ..."), not once per layer.
func TestStartupErrorSaysItsPrefixOnce(t *testing.T) {
	const text = `connectors:
  - name: unreachable
    source:
      kinesis: {stream: orders, region: eu-west-1}
    sink:
      kafka: {brokers: ["127.0.0.1:1"], topic: orders, request_timeout: 300ms, delivery_timeout: 1s}
`
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(registry(), []string{path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, _, err := connectorSpec(t.Context(), cfg, cfg.Connectors[0], "test-worker", prometheus.NewRegistry(), nil, runtime.NewDecodeBudget(runtime.DefaultDecodeBudget), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = spec.Build(t.Context())
	if err == nil {
		t.Fatal("Build reached a broker at 127.0.0.1:1")
	}
	msg := err.Error()
	if n := strings.Count(msg, "checkpoint store"); n != 1 {
		t.Fatalf("the error says \"checkpoint store\" %d times: %s", n, msg)
	}
	if !strings.Contains(msg, "127.0.0.1:1") || !strings.Contains(msg, "sink.kafka.brokers") {
		t.Fatalf("the error does not name the brokers and the setting to check: %s", msg)
	}
}
