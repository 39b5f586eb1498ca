package kafka

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shardbridge/shardbridge/runtime/config"
)

func validConfig() Config {
	return Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "kinesis.{stream}"}
}

func TestConfigDefaults(t *testing.T) {
	c := validConfig()
	if err := c.Validate("c1", "sink.kafka"); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.ClientID != "shardbridge" || c.Acks != "all" || c.Compression != "zstd" ||
		c.Linger.D() != 5*time.Millisecond || c.MaxBufferedRecords != 10000 ||
		c.MaxBufferedBytes != 64<<20 || c.MaxMessageBytes != 1<<20 ||
		c.RequestTimeout.D() != 30*time.Second || c.DeliveryTimeout.D() != 2*time.Minute ||
		c.Idempotence == nil || !*c.Idempotence {
		t.Errorf("defaults not filled: %+v", c)
	}
	tc := c.TopicCreation
	if tc.Enabled == nil || !*tc.Enabled || tc.Partitions == nil || *tc.Partitions != -1 ||
		tc.ReplicationFactor == nil || *tc.ReplicationFactor != -1 || tc.Configs != nil {
		t.Errorf("topic_creation defaults not filled: %+v", tc)
	}
	// Validate is idempotent.
	before := fmt.Sprintf("%+v", c)
	if err := c.Validate("c1", "sink.kafka"); err != nil {
		t.Fatalf("second Validate: %v", err)
	}
	if after := fmt.Sprintf("%+v", c); after != before {
		t.Errorf("second Validate changed the config:\n%s\n%s", before, after)
	}
}

func TestConfigValidateProblems(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	off := false
	cases := []struct {
		name    string
		mutate  func(*Config)
		key     string
		problem string
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, "sink.kafka.brokers", "no brokers"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka-1"} }, "sink.kafka.brokers[0]", "host:port"},
		{"broker empty host", func(c *Config) { c.Brokers = []string{"a:1", ":9092"} }, "sink.kafka.brokers[1]", "host:port"},
		{"no topic", func(c *Config) { c.Topic = "" }, "sink.kafka.topic", "no topic"},
		{"unknown placeholder", func(c *Config) { c.Topic = "k.{region}" }, "sink.kafka.topic", "unknown placeholder {region}"},
		{"unclosed brace", func(c *Config) { c.Topic = "k.{stream" }, "sink.kafka.topic", "unclosed"},
		{"stray close brace", func(c *Config) { c.Topic = "k.}" }, "sink.kafka.topic", "unmatched"},
		{"illegal char", func(c *Config) { c.Topic = "k/{stream}" }, "sink.kafka.topic", "not allowed"},
		{"dot topic", func(c *Config) { c.Topic = ".." }, "sink.kafka.topic", "not topic names"},
		{"long topic", func(c *Config) { c.Topic = strings.Repeat("a", 250) }, "sink.kafka.topic", "longer than 249"},
		{"bad acks", func(c *Config) { c.Acks = "two" }, "sink.kafka.acks", "unknown acks"},
		{"leader acks idempotent", func(c *Config) { c.Acks = "leader" }, "sink.kafka.acks", "idempotent writes need acks: all"},
		{"none acks", func(c *Config) { c.Acks = "none" }, "sink.kafka.acks", "acks none counts a record as written once it is sent"},
		{"none acks without idempotence", func(c *Config) { c.Acks = "NONE"; c.Idempotence = &off }, "sink.kafka.acks", "before any broker has stored it"},
		{"zero partitions", func(c *Config) { c.TopicCreation.Partitions = ptr(0) }, "sink.kafka.topic_creation.partitions", "must be -1 (the broker's num.partitions) or at least 1"},
		{"negative partitions", func(c *Config) { c.TopicCreation.Partitions = ptr(-2) }, "sink.kafka.topic_creation.partitions", "must be -1"},
		{"zero replication", func(c *Config) { c.TopicCreation.ReplicationFactor = ptr(0) }, "sink.kafka.topic_creation.replication_factor", "must be -1 (the broker's default.replication.factor) or at least 1"},
		{"huge replication", func(c *Config) { c.TopicCreation.ReplicationFactor = ptr(1 << 15) }, "sink.kafka.topic_creation.replication_factor", "must be -1"},
		{"empty config key", func(c *Config) { c.TopicCreation.Configs = map[string]string{"retention.ms": "1", " ": "x"} }, "sink.kafka.topic_creation.configs", "key is empty"},
		{"bad compression", func(c *Config) { c.Compression = "brotli" }, "sink.kafka.compression", "unknown compression"},
		{"negative linger", func(c *Config) { c.Linger = config.Duration(-time.Second) }, "sink.kafka.linger", "between 0 and 1m"},
		{"long linger", func(c *Config) { c.Linger = config.Duration(2 * time.Minute) }, "sink.kafka.linger", "between 0 and 1m"},
		{"negative buffered records", func(c *Config) { c.MaxBufferedRecords = -1 }, "sink.kafka.max_buffered_records", "positive"},
		{"tiny message bytes", func(c *Config) { c.MaxMessageBytes = 100 }, "sink.kafka.max_message_bytes", "between 512B and 1GiB"},
		{"huge message bytes", func(c *Config) { c.MaxMessageBytes = 2 << 30 }, "sink.kafka.max_message_bytes", "between 512B and 1GiB"},
		{"negative buffered bytes", func(c *Config) { c.MaxBufferedBytes = -1 }, "sink.kafka.max_buffered_bytes", "positive"},
		{"buffered below message", func(c *Config) { c.MaxBufferedBytes = 1 << 20; c.MaxMessageBytes = 2 << 20 }, "sink.kafka.max_buffered_bytes", "smaller than max_message_bytes"},
		{"negative request timeout", func(c *Config) { c.RequestTimeout = config.Duration(-1) }, "sink.kafka.request_timeout", "positive"},
		{"negative delivery timeout", func(c *Config) { c.DeliveryTimeout = config.Duration(-1) }, "sink.kafka.delivery_timeout", "positive"},
		{"delivery below request", func(c *Config) { c.DeliveryTimeout = config.Duration(time.Second) }, "sink.kafka.delivery_timeout", "shorter than request_timeout + linger"},
		{"ca file tls off", func(c *Config) { c.TLS.CAFile = pem }, "sink.kafka.tls.ca_file", "set while TLS is off"},
		{"missing ca file", func(c *Config) { c.TLS.Enabled = true; c.TLS.CAFile = missing }, "sink.kafka.tls.ca_file", "cannot read the file"},
		{"cert without key", func(c *Config) { c.TLS.Enabled = true; c.TLS.CertFile = pem }, "sink.kafka.tls.key_file", "both cert_file and key_file"},
		{"key without cert", func(c *Config) { c.TLS.Enabled = true; c.TLS.KeyFile = pem }, "sink.kafka.tls.cert_file", "both cert_file and key_file"},
		{"skip verify tls off", func(c *Config) { c.TLS.InsecureSkipVerify = true }, "sink.kafka.tls.insecure_skip_verify", "set while TLS is off"},
		{"unknown mechanism", func(c *Config) { c.SASL.Mechanism = "GSSAPI" }, "sink.kafka.sasl.mechanism", "unknown SASL mechanism"},
		{"user without mechanism", func(c *Config) { c.SASL.Username = "u" }, "sink.kafka.sasl.mechanism", "without a mechanism"},
		{"plain without user", func(c *Config) { c.SASL.Mechanism = SASLPlain; c.SASL.Password = "p" }, "sink.kafka.sasl.username", "required for PLAIN"},
		{"scram without password", func(c *Config) { c.SASL.Mechanism = SASLScramSHA512; c.SASL.Username = "u" }, "sink.kafka.sasl.password", "required for SCRAM-SHA-512"},
		{"iam with password", func(c *Config) {
			c.TLS.Enabled = true
			c.SASL.Mechanism = SASLAWSMSKIAM
			c.SASL.Password = "p"
		}, "sink.kafka.sasl.mechanism", "AWS credential chain"},
		{"iam without tls", func(c *Config) { c.SASL.Mechanism = SASLAWSMSKIAM }, "sink.kafka.sasl.mechanism", "needs TLS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate("c1", "sink.kafka")
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			var found *config.FieldError
			for _, fe := range config.Problems(err) {
				if fe.Key == tc.key && strings.Contains(fe.Problem, tc.problem) {
					found = fe
				}
			}
			if found == nil {
				t.Fatalf("no problem %q at %s in: %v", tc.problem, tc.key, err)
			}
			if found.Fix == "" {
				t.Errorf("problem %q has no fix", found.Problem)
			}
		})
	}

	// acks none is refused with what to use instead.
	c0 := validConfig()
	c0.Acks = "none"
	probs := config.Problems(c0.Validate("c1", "sink.kafka"))
	if len(probs) != 1 || probs[0].Key != "sink.kafka.acks" {
		t.Errorf("acks none: want one problem at sink.kafka.acks, got %v", probs)
	} else if fix := probs[0].Fix; !strings.Contains(fix, "acks: all") || !strings.Contains(fix, "acks: leader") {
		t.Errorf("acks none: fix %q does not name all and leader", fix)
	}

	// leader acks with idempotence explicitly off is accepted.
	c := validConfig()
	c.Acks = "leader"
	c.Idempotence = &off
	if err := c.Validate("c1", "sink.kafka"); err != nil {
		t.Errorf("acks leader with idempotence off: %v", err)
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	c := Config{Acks: "x", Compression: "y"}
	probs := config.Problems(c.Validate("c1", "sink.kafka"))
	keys := map[string]bool{}
	for _, p := range probs {
		keys[p.Key] = true
	}
	for _, k := range []string{"sink.kafka.brokers", "sink.kafka.topic", "sink.kafka.acks", "sink.kafka.compression"} {
		if !keys[k] {
			t.Errorf("missing problem at %s; got %v", k, probs)
		}
	}
}

func TestConfigSecretNeverPrinted(t *testing.T) {
	c := validConfig()
	c.SASL = SASLConfig{Mechanism: SASLScramSHA256, Username: "user", Password: "hunter2-secret"}
	if err := c.Validate("c1", "sink.kafka"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("secret printed: %s", s)
		}
	}
	// Through the runtime's strict decoder, as the loader does.
	var d Config
	raw := map[string]any{"brokers": []any{"k:9092"}, "topic": "t", "sasl": map[string]any{"mechanism": "PLAIN", "username": "u", "password": "hunter2-secret"}}
	if err := config.Decode(raw, &d, "sink.kafka"); err != nil {
		t.Fatal(err)
	}
	if d.SASL.Password.Reveal() != "hunter2-secret" {
		t.Errorf("password not decoded")
	}
	if strings.Contains(fmt.Sprintf("%+v", d), "hunter2") {
		t.Errorf("decoded secret printed")
	}
	raw["linger"] = "10ms"
	raw["max_message_bytes"] = "2MiB"
	raw["max_buffered_bytes"] = "128MiB"
	raw["idempotence"] = false
	raw["acks"] = "leader"
	if err := config.Decode(raw, &d, "sink.kafka"); err != nil {
		t.Fatal(err)
	}
	if err := d.Validate("c1", "sink.kafka"); err != nil {
		t.Fatal(err)
	}
	if d.Linger.D() != 10*time.Millisecond || d.MaxMessageBytes != 2<<20 || *d.Idempotence {
		t.Errorf("decoded %+v", d)
	}
	raw["lingr"] = "1ms"
	if err := config.Decode(raw, &d, "sink.kafka"); err == nil {
		t.Error("unknown key accepted")
	}
}

func ptr[T any](v T) *T { return &v }

// topic_creation settings, partitions and replication factor at their bounds and topic configs
// whose keys hold dots, load from YAML and TOML as written: the loader splits keys at dots
// nowhere, so "retention.ms" stays one key.
func TestTopicCreationLoads(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"c.yaml": `connectors:
  - name: c1
    source: {stub: {}}
    sink:
      kafka:
        brokers: ["k:9092"]
        topic: "kinesis.{stream}"
        topic_creation:
          enabled: false
          partitions: 1
          replication_factor: 32767
          configs: {"retention.ms": "604800000", "cleanup.policy": "delete"}
`,
		"c.toml": `[[connectors]]
name = "c1"
source = { stub = {} }

[connectors.sink.kafka]
brokers = ["k:9092"]
topic = "kinesis.{stream}"

[connectors.sink.kafka.topic_creation]
enabled = false
partitions = 1
replication_factor = 32767
configs = { "retention.ms" = "604800000", "cleanup.policy" = "delete" }
`,
	}
	reg := config.Registry{
		Sources: map[string]func() config.PluginConfig{"stub": func() config.PluginConfig { return new(stubSource) }},
		Sinks:   map[string]func() config.PluginConfig{"kafka": func() config.PluginConfig { return new(Config) }},
	}
	for name, text := range files {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(reg, []string{path}, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc := cfg.Connectors[0].Sink.Config.(*Config).TopicCreation
			want := map[string]string{"retention.ms": "604800000", "cleanup.policy": "delete"}
			if *tc.Enabled || *tc.Partitions != 1 || *tc.ReplicationFactor != 32767 || fmt.Sprint(tc.Configs) != fmt.Sprint(want) {
				t.Errorf("loaded topic_creation %+v with configs %v; want enabled false, 1 partition, replication 32767, configs %v",
					tc, tc.Configs, want)
			}
		})
	}
}

// stubSource is a source config for loading sink configs through config.Load.
type stubSource struct{}

func (*stubSource) Validate(string, string) error { return nil }
