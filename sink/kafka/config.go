package kafka

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shardbridge/shardbridge/runtime/config"
)

var _ config.PluginConfig = (*Config)(nil)

// Defaults of Config. Validate fills them into zero fields.
const (
	DefaultClientID           = "shardbridge"
	DefaultAcks               = "all"
	DefaultCompression        = "zstd"
	DefaultLinger             = 5 * time.Millisecond
	DefaultMaxBufferedRecords = 10000
	DefaultMaxBufferedBytes   = 64 << 20
	DefaultMaxMessageBytes    = 1 << 20
	DefaultDLQMaxMessageBytes = 11 << 20
	DefaultRequestTimeout     = 30 * time.Second
	DefaultDeliveryTimeout    = 2 * time.Minute
)

// Limits franz-go accepts for a record batch (ProducerBatchMaxBytes).
const (
	minMessageBytes = 512
	maxMessageBytes = 1 << 30
)

// Config is the typed section sink.kafka of a connector config. The runtime's loader decodes it
// strictly (unknown keys are errors) and then calls Validate, which fills the defaults named in
// each field's comment. The connector-level settings checkpoint.topic and errors.dlq_topic belong
// to the runtime config; the caller passes them to NewCheckpointStore and WithDeadLetterTopic.
type Config struct {
	// Brokers are the seed brokers, host:port each. Required.
	Brokers []string `koanf:"brokers" json:"brokers,omitempty"`
	// Topic is the destination topic: a fixed name, or a template in which {stream} is replaced
	// by the Kinesis stream name and {shard_id} by the shard id, e.g. "kinesis.{stream}".
	// Required.
	Topic string `koanf:"topic" json:"topic,omitempty"`
	// ClientID is the Kafka client.id. Default "shardbridge".
	ClientID string `koanf:"client_id" json:"client_id,omitempty"`
	// Acks is how many replicas must have a record before it counts as written: "all" (the
	// default) or "leader". Idempotent writes, which keep per-partition order across retries
	// without duplicates, need "all"; "leader" is accepted only with idempotence: false. "none"
	// is refused: with it a record counts as written once it is sent, before any broker has
	// stored it, so the pending pool would release it and a checkpoint could pass it although
	// Kafka may never have stored it.
	Acks string `koanf:"acks" json:"acks,omitempty"`
	// Idempotence turns on the idempotent producer. Default true. Turning it off lets a retried
	// batch be written twice; franz-go then keeps one produce request in flight per broker so a
	// retry cannot reorder records.
	Idempotence *bool `koanf:"idempotence" json:"idempotence,omitempty"`
	// Compression of record batches: none, gzip, snappy, lz4 or zstd. Default zstd.
	Compression string `koanf:"compression" json:"compression,omitempty"`
	// Linger is how long a partition's batch waits for more records before it is sent. Default
	// 5ms: enough to fill batches at Kinesis rates, short next to Kafka's acknowledgement time.
	// 0 means the default; write "1us" for practically no linger.
	Linger config.Duration `koanf:"linger" json:"linger,omitempty"`
	// MaxBufferedRecords bounds the records the producer holds unacknowledged; Write blocks past
	// it. Default 10000.
	MaxBufferedRecords int `koanf:"max_buffered_records" json:"max_buffered_records,omitempty"`
	// MaxBufferedBytes bounds the bytes (keys, values, headers) the producer holds
	// unacknowledged; Write blocks past it. Default 64MiB. The runtime's pending pool is the
	// real memory bound; this only keeps the producer from holding more than the pool by
	// accident. It must be at least max_message_bytes.
	MaxBufferedBytes config.ByteSize `koanf:"max_buffered_bytes" json:"max_buffered_bytes,omitempty"`
	// MaxMessageBytes is the largest record batch the producer writes, and so the largest
	// record: it should equal the topic's max.message.bytes. A record whose batch would be
	// larger is not produced; it fails with *RecordTooLargeError and errors.policy decides.
	// Default 1MiB; between 512B and 1GiB.
	MaxMessageBytes config.ByteSize `koanf:"max_message_bytes" json:"max_message_bytes,omitempty"`
	// DLQMaxMessageBytes is the largest dead letter (the record plus the shardbridge.* error
	// headers) written to errors.dlq_topic. Default 11MiB: room for any Kinesis record (10 MiB
	// at most), so a record refused for being over max_message_bytes can still be dead-lettered.
	// The dead-letter topic must accept records this large: set its max.message.bytes to match,
	// or the dead letter fails with MESSAGE_TOO_LARGE and the connector stops. At least
	// max_message_bytes; at most 1GiB.
	DLQMaxMessageBytes config.ByteSize `koanf:"dlq_max_message_bytes" json:"dlq_max_message_bytes,omitempty"`
	// RequestTimeout bounds one request to a broker, and the connectivity check at start.
	// Default 30s.
	RequestTimeout config.Duration `koanf:"request_timeout" json:"request_timeout,omitempty"`
	// DeliveryTimeout bounds how long a record may take from Write to Kafka's acknowledgement,
	// retries included, before it fails with ErrDeliveryTimeout (like Java's
	// delivery.timeout.ms). Default 2m. It must be at least request_timeout plus linger. It is
	// not franz-go's RecordDeliveryTimeout, which counts from the record's timestamp: that is the
	// Kinesis arrival time, which may be long past for a stream read behind its tip.
	DeliveryTimeout config.Duration `koanf:"delivery_timeout" json:"delivery_timeout,omitempty"`
	// TopicCreation says whether and how the sink creates a destination topic, or the
	// dead-letter topic, that does not exist yet. On by default, with the broker's defaults.
	TopicCreation TopicCreationConfig `koanf:"topic_creation" json:"topic_creation,omitempty"`
	// TLS configures TLS to the brokers. Off by default.
	TLS TLSConfig `koanf:"tls" json:"tls,omitempty"`
	// SASL configures SASL authentication. Off by default.
	SASL SASLConfig `koanf:"sasl" json:"sasl,omitempty"`
}

// TopicCreationConfig is sink.kafka.topic_creation, in the spirit of Kafka Connect's topic
// creation (KIP-158): a topic the sink is about to write to for the first time and that does
// not exist is created through the admin API (CreateTopics) with these settings, and the sink
// waits until it has a leader for every partition before producing to it. Kafka's producers do
// not create topics, and brokers refuse to create them on a producer's behalf unless
// auto.create.topics.enable is on and the client asks, which franz-go does not.
type TopicCreationConfig struct {
	// Enabled lets the sink create missing topics. Default true. With false, a missing fixed
	// topic or dead-letter topic fails the sink at start, and a record whose templated topic is
	// missing fails with an error naming the topic; errors.policy decides.
	Enabled *bool `koanf:"enabled" json:"enabled,omitempty"`
	// Partitions of a created topic. Default -1: the broker's num.partitions. -1 or at least 1.
	Partitions *int `koanf:"partitions" json:"partitions,omitempty"`
	// ReplicationFactor of a created topic. Default -1: the broker's
	// default.replication.factor. -1 or at least 1.
	ReplicationFactor *int `koanf:"replication_factor" json:"replication_factor,omitempty"`
	// Configs are topic configs given to a created topic, e.g. {"retention.ms": "604800000"}.
	// Default none: the broker's defaults. Values are strings. A created dead-letter topic also
	// gets max.message.bytes set to dlq_max_message_bytes, unless Configs sets it.
	Configs map[string]string `koanf:"configs" json:"configs,omitempty"`
}

// TLSConfig is sink.kafka.tls.
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `koanf:"enabled" json:"enabled,omitempty"`
	// CAFile is a PEM file of CA certificates to trust instead of the system roots. Optional.
	CAFile string `koanf:"ca_file" json:"ca_file,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, for mutual TLS. Both or
	// neither.
	CertFile string `koanf:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `koanf:"key_file" json:"key_file,omitempty"`
	// InsecureSkipVerify turns off verification of the brokers' certificates. For local use
	// only. Default false.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	SASLAWSMSKIAM   = "AWS_MSK_IAM"
)

// SASLConfig is sink.kafka.sasl.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or AWS_MSK_IAM. Empty (the default)
	// means no SASL. AWS_MSK_IAM signs with credentials from the standard AWS chain
	// (environment, shared config and credentials files, web identity, container and instance
	// roles), fetched again for every authentication, and needs tls.enabled.
	Mechanism string `koanf:"mechanism" json:"mechanism,omitempty"`
	// Username and Password are for PLAIN and SCRAM. Password never appears in logs or errors.
	Username string        `koanf:"username" json:"username,omitempty"`
	Password config.Secret `koanf:"password" json:"password,omitempty"`
}

var (
	acksValues        = []string{"all", "leader"}
	compressionValues = []string{"none", "gzip", "snappy", "lz4", "zstd"}
	saslMechanisms    = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLAWSMSKIAM}
)

// Validate fills defaults and returns every problem at once, as errors.Join of
// *config.FieldError whose keys start with path (e.g. "sink.kafka"). connector names the
// connector for context; it is not part of the keys.
func (c *Config) Validate(connector, path string) error {
	var errs []error
	bad := func(key string, value any, problem, fix string) {
		errs = append(errs, &config.FieldError{Key: path + "." + key, Value: value, Problem: problem, Fix: fix})
	}

	if len(c.Brokers) == 0 {
		bad("brokers", nil, "no brokers given", `list the seed brokers, e.g. brokers: ["kafka-1:9092"]`)
	}
	for i, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" || port == "" {
			bad(fmt.Sprintf("brokers[%d]", i), b, "not a host:port address", `write the broker as host:port, e.g. "kafka-1:9092"`)
		}
	}

	if c.Topic == "" {
		bad("topic", nil, "no topic given", `name the topic, e.g. topic: "kinesis.{stream}" ({stream} and {shard_id} are replaced)`)
	} else if _, err := parseTopicTemplate(c.Topic); err != nil {
		bad("topic", c.Topic, err.Error(), "use only letters, digits, '.', '_', '-' and the placeholders {stream} and {shard_id}")
	}

	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}

	if c.Acks == "" {
		c.Acks = DefaultAcks
	}
	c.Acks = strings.ToLower(c.Acks)
	switch {
	case c.Acks == "none":
		bad("acks", c.Acks, "acks none counts a record as written once it is sent, before any broker has stored it: "+
			"the pending pool would release it and a checkpoint could pass it although Kafka may never have stored it",
			"use acks: all (recommended), or acks: leader with idempotence: false")
	case !slices.Contains(acksValues, c.Acks):
		bad("acks", c.Acks, "unknown acks", "use one of all, leader")
	}
	if c.Idempotence == nil {
		on := true
		c.Idempotence = &on
	}
	if *c.Idempotence && c.Acks == "leader" {
		bad("acks", c.Acks, "idempotent writes need acks: all",
			"use acks: all (recommended), or set idempotence: false and accept that a retry may write a record twice")
	}

	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	c.Compression = strings.ToLower(c.Compression)
	if !slices.Contains(compressionValues, c.Compression) {
		bad("compression", c.Compression, "unknown compression", "use one of none, gzip, snappy, lz4, zstd")
	}

	if c.Linger == 0 {
		c.Linger = config.Duration(DefaultLinger)
	}
	if c.Linger < 0 || c.Linger.D() > time.Minute {
		bad("linger", c.Linger, "linger must be between 0 and 1m", `use a short linger such as "5ms"`)
	}

	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.MaxBufferedRecords < 0 {
		bad("max_buffered_records", c.MaxBufferedRecords, "must be positive", "use a count such as 10000")
	}

	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	msgOK := c.MaxMessageBytes >= minMessageBytes && c.MaxMessageBytes <= maxMessageBytes
	if !msgOK {
		bad("max_message_bytes", c.MaxMessageBytes, "must be between 512B and 1GiB",
			`set it to the topic's max.message.bytes, e.g. "1MiB"`)
	}

	if c.DLQMaxMessageBytes == 0 {
		c.DLQMaxMessageBytes = DefaultDLQMaxMessageBytes
		if msgOK && c.DLQMaxMessageBytes < c.MaxMessageBytes {
			c.DLQMaxMessageBytes = c.MaxMessageBytes
		}
	}
	if c.DLQMaxMessageBytes < minMessageBytes || c.DLQMaxMessageBytes > maxMessageBytes {
		bad("dlq_max_message_bytes", c.DLQMaxMessageBytes, "must be between 512B and 1GiB",
			`set it to the dead-letter topic's max.message.bytes, e.g. "11MiB"`)
	} else if msgOK && c.DLQMaxMessageBytes < c.MaxMessageBytes {
		bad("dlq_max_message_bytes", c.DLQMaxMessageBytes, fmt.Sprintf("smaller than max_message_bytes (%s), so a record that failed for another reason might not fit its dead letter", c.MaxMessageBytes),
			"raise dlq_max_message_bytes to at least max_message_bytes")
	}

	if c.MaxBufferedBytes == 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
		if msgOK && c.MaxBufferedBytes < c.MaxMessageBytes {
			c.MaxBufferedBytes = c.MaxMessageBytes
		}
	}
	if c.MaxBufferedBytes < 0 {
		bad("max_buffered_bytes", c.MaxBufferedBytes, "must be positive", `use a size such as "64MiB"`)
	} else if msgOK && c.MaxBufferedBytes < c.MaxMessageBytes {
		bad("max_buffered_bytes", c.MaxBufferedBytes, fmt.Sprintf("smaller than max_message_bytes (%s), so the largest record could never be buffered", c.MaxMessageBytes),
			"raise max_buffered_bytes to at least max_message_bytes")
	}

	if c.RequestTimeout == 0 {
		c.RequestTimeout = config.Duration(DefaultRequestTimeout)
	}
	if c.RequestTimeout < 0 {
		bad("request_timeout", c.RequestTimeout, "must be positive", `use a duration such as "30s"`)
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = config.Duration(DefaultDeliveryTimeout)
	}
	if c.DeliveryTimeout < 0 {
		bad("delivery_timeout", c.DeliveryTimeout, "must be positive", `use a duration such as "2m"`)
	} else if c.RequestTimeout > 0 && c.Linger >= 0 && c.DeliveryTimeout < c.RequestTimeout+c.Linger {
		bad("delivery_timeout", c.DeliveryTimeout, fmt.Sprintf("shorter than request_timeout + linger (%s)", (c.RequestTimeout+c.Linger).D()),
			"raise delivery_timeout or lower request_timeout, so a record can outlive one request")
	}

	errs = append(errs, c.TopicCreation.validate(path+".topic_creation")...)
	errs = append(errs, c.TLS.validate(path+".tls")...)
	errs = append(errs, c.SASL.validate(path+".sasl", c.TLS.Enabled)...)
	return errors.Join(errs...)
}

// Bounds of CreateTopics' NumPartitions (int32) and ReplicationFactor (int16).
const (
	maxPartitions        = math.MaxInt32
	maxReplicationFactor = math.MaxInt16
)

func (tc *TopicCreationConfig) validate(path string) []error {
	var errs []error
	bad := func(key string, value any, problem, fix string) {
		errs = append(errs, &config.FieldError{Key: path + "." + key, Value: value, Problem: problem, Fix: fix})
	}
	if tc.Enabled == nil {
		on := true
		tc.Enabled = &on
	}
	// nil is "not set" and becomes -1, the broker's default; a 0 written in the config is
	// checked as written.
	if tc.Partitions == nil {
		d := -1
		tc.Partitions = &d
	}
	if p := *tc.Partitions; p != -1 && (p < 1 || p > maxPartitions) {
		bad("partitions", p, "must be -1 (the broker's num.partitions) or at least 1",
			"set the partition count of created topics, e.g. partitions: 6, or leave it out for the broker's default")
	}
	if tc.ReplicationFactor == nil {
		d := -1
		tc.ReplicationFactor = &d
	}
	if rf := *tc.ReplicationFactor; rf != -1 && (rf < 1 || rf > maxReplicationFactor) {
		bad("replication_factor", rf, "must be -1 (the broker's default.replication.factor) or at least 1",
			"set the replication factor of created topics, e.g. replication_factor: 3, or leave it out for the broker's default")
	}
	keys := make([]string, 0, len(tc.Configs))
	for k := range tc.Configs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" {
			bad("configs", k, "a topic config key is empty", `name each topic config, e.g. configs: {"retention.ms": "604800000"}`)
		}
	}
	return errs
}

// ExactlyOnce reports what in a validated config stops exactly-once delivery, as FieldErrors
// keyed under path: a transactional producer needs acks all and idempotence.
func (c *Config) ExactlyOnce(path string) error {
	var errs []error
	if c.Acks != "all" {
		errs = append(errs, &config.FieldError{Key: path + ".acks", Value: c.Acks,
			Problem: "delivery exactly_once needs acks: all (a transaction commits only what every in-sync replica has)",
			Fix:     "set acks: all, or delivery: at_least_once"})
	}
	if c.Idempotence != nil && !*c.Idempotence {
		errs = append(errs, &config.FieldError{Key: path + ".idempotence", Value: false,
			Problem: "delivery exactly_once needs the idempotent producer (transactions are built on it)",
			Fix:     "set idempotence: true (the default), or delivery: at_least_once"})
	}
	return errors.Join(errs...)
}

func (t *TLSConfig) validate(path string) []error {
	var errs []error
	bad := func(key string, value any, problem, fix string) {
		errs = append(errs, &config.FieldError{Key: path + "." + key, Value: value, Problem: problem, Fix: fix})
	}
	files := []struct{ key, file string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}}
	for _, f := range files {
		if f.file == "" {
			continue
		}
		if !t.Enabled {
			bad(f.key, f.file, "set while TLS is off", "set tls.enabled: true, or remove the file")
		}
		if _, err := os.Stat(f.file); err != nil {
			bad(f.key, f.file, "cannot read the file: "+pathErrReason(err), "point it at an existing PEM file")
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		key, val := "key_file", t.KeyFile
		if t.CertFile == "" {
			key, val = "cert_file", t.CertFile
		}
		bad(key, val, "a client certificate needs both cert_file and key_file", "set both cert_file and key_file, or neither")
	}
	if t.InsecureSkipVerify && !t.Enabled {
		bad("insecure_skip_verify", true, "set while TLS is off", "set tls.enabled: true, or remove insecure_skip_verify")
	}
	return errs
}

// pathErrReason is the reason of a file error without the path, which the FieldError already
// carries as its value.
func pathErrReason(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func (s *SASLConfig) validate(path string, tlsOn bool) []error {
	var errs []error
	bad := func(key string, value any, problem, fix string) {
		errs = append(errs, &config.FieldError{Key: path + "." + key, Value: value, Problem: problem, Fix: fix})
	}
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" {
			bad("mechanism", nil, "username or password set without a mechanism", "set mechanism to PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if s.Username == "" {
			bad("username", nil, "required for "+s.Mechanism, "set sasl.username")
		}
		if s.Password == "" {
			bad("password", nil, "required for "+s.Mechanism, "set sasl.password (an environment variable keeps it out of the file)")
		}
	case SASLAWSMSKIAM:
		if s.Username != "" || s.Password != "" {
			bad("mechanism", s.Mechanism, "AWS_MSK_IAM takes its credentials from the AWS credential chain, not username and password",
				"remove sasl.username and sasl.password and provide AWS credentials (environment, profile or role)")
		}
		if !tlsOn {
			bad("mechanism", s.Mechanism, "AWS_MSK_IAM needs TLS", "set tls.enabled: true (MSK's IAM listener is TLS only)")
		}
	default:
		bad("mechanism", s.Mechanism, "unknown SASL mechanism", "use one of "+strings.Join(saslMechanisms, ", "))
	}
	return errs
}
