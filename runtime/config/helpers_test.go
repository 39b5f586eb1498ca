package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSource stands in for a connector package's source config: nested struct, list,
// size, duration and int.
type fakeSource struct {
	Stream   string   `koanf:"stream" json:"stream"`
	Shards   []string `koanf:"shards" json:"shards"`
	MaxBatch ByteSize `koanf:"max_batch" json:"max_batch"`
	Poll     Duration `koanf:"poll" json:"poll"`
	Retries  int      `koanf:"retries" json:"retries"`
	EFO      fakeEFO  `koanf:"efo" json:"efo"`
}

type fakeEFO struct {
	Enabled      bool   `koanf:"enabled" json:"enabled"`
	ConsumerName string `koanf:"consumer_name" json:"consumer_name"`
}

// Validate fills defaults the way a real plugin would and reports a required field.
func (c *fakeSource) Validate(connector, path string) error {
	var errs []error
	if c.Stream == "" {
		errs = append(errs, &FieldError{Key: path + ".stream", Problem: "required", Fix: "name the stream"})
	}
	if c.Retries < 0 {
		errs = append(errs, &FieldError{Key: path + ".retries", Value: c.Retries, Problem: "must not be negative", Fix: "use 0 or more"})
	}
	if c.EFO.ConsumerName == "" {
		c.EFO.ConsumerName = "shardbridge-" + connector
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1 << 20
	}
	return errors.Join(errs...)
}

// fakeSink stands in for a sink config: list of strings, map, list of structs and a Secret.
type fakeSink struct {
	Brokers    []string          `koanf:"brokers" json:"brokers"`
	Topic      string            `koanf:"topic" json:"topic"`
	Linger     Duration          `koanf:"linger" json:"linger"`
	MaxMessage ByteSize          `koanf:"max_message" json:"max_message"`
	Headers    map[string]string `koanf:"headers" json:"headers"`
	SASL       fakeSASL          `koanf:"sasl" json:"sasl"`
	Partitions []fakePartition   `koanf:"partitions" json:"partitions"`
}

type fakeSASL struct {
	User     string `koanf:"user" json:"user"`
	Password Secret `koanf:"password" json:"password"`
}

type fakePartition struct {
	Key    string `koanf:"key" json:"key"`
	Weight int    `koanf:"weight" json:"weight"`
}

func (c *fakeSink) Validate(connector, path string) error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, &FieldError{Key: path + ".brokers", Problem: "required", Fix: `list at least one broker such as "localhost:9092"`})
	}
	if c.Topic == "" {
		errs = append(errs, &FieldError{Key: path + ".topic", Problem: "required", Fix: "name the topic"})
	}
	return errors.Join(errs...)
}

func fakeRegistry() Registry {
	return Registry{
		Sources: map[string]func() PluginConfig{"fakesrc": func() PluginConfig { return new(fakeSource) }},
		Sinks:   map[string]func() PluginConfig{"fakesink": func() PluginConfig { return new(fakeSink) }},
	}
}

// writeConfig writes body to a file named name in a fresh temporary directory.
func writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadYAML loads one YAML snippet with the fake registry and the given environment.
func loadYAML(t *testing.T, body string, environ ...string) (*Config, error) {
	t.Helper()
	return Load(fakeRegistry(), []string{writeConfig(t, "c.yaml", body)}, environ)
}

// mustLoadYAML loads a snippet that must be valid.
func mustLoadYAML(t *testing.T, body string, environ ...string) *Config {
	t.Helper()
	cfg, err := loadYAML(t, body, environ...)
	if err != nil {
		t.Fatalf("Load: unexpected error:\n%v", err)
	}
	return cfg
}

// findProblem returns the problem whose key is key, failing the test if there is none.
func findProblem(t *testing.T, err error, key string) *FieldError {
	t.Helper()
	if err == nil {
		t.Fatalf("expected a problem at %s, got no error", key)
	}
	for _, p := range Problems(err) {
		if p.Key == key {
			return p
		}
	}
	t.Fatalf("expected a problem at %s, got:\n%v", key, err)
	return nil
}

func assertContains(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q does not contain %q", s, sub)
	}
}

// minimalConnector is one valid connector in YAML, for snippets that test runtime settings.
const minimalConnector = `
connectors:
  - name: c1
    source: {fakesrc: {stream: s}}
    sink: {fakesink: {brokers: ["k:9092"], topic: t}}
`
