package kinesis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/shardbridge/shardbridge/runtime/config"
)

// Start positions, as written in start_position.
const (
	StartTrimHorizon = "trim_horizon"
	StartLatest      = "latest"
	StartAtTimestamp = "at_timestamp"
)

// Defaults of the fields of Config.
const (
	DefaultPollInterval      = time.Second
	DefaultMaxRecords        = 10000
	DefaultShardSyncInterval = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	// DefaultClosedShardQuietPeriod is how long an EFO reader of a shard that ListShards shows
	// closed may read nothing new before it confirms the shard's end with GetRecords. Real
	// Kinesis ends such a subscription at once; emulators that never do cost this much per
	// closed shard.
	DefaultClosedShardQuietPeriod = 10 * time.Second
	// DefaultHTTP2ReceiveBufferPerStream bounds what HTTP/2 buffers for one subscription. A shard
	// delivers at most 2 MiB/s to one consumer; a 256 KiB window still carries 5 MiB/s at a 50 ms
	// round trip, so it costs no throughput in practice, while 64 shards buffer 16 MiB at most.
	// A window smaller than an event only slows that one shard's stream, which is backpressure.
	DefaultHTTP2ReceiveBufferPerStream = 256 << 10
)

// Config is the typed section source.kinesis of a connector config.
type Config struct {
	// Stream is the stream name or ARN. Required.
	Stream string `koanf:"stream"`
	// Region is the AWS region. Required unless Stream is an ARN, whose region is then used.
	Region string `koanf:"region"`
	// Endpoint overrides the Kinesis endpoint URL, e.g. for LocalStack. Default: AWS's.
	Endpoint string `koanf:"endpoint"`
	// TLSSkipVerify turns off TLS certificate checks. Default false; only for local emulators.
	TLSSkipVerify bool `koanf:"tls_skip_verify"`
	// StartPosition is where a shard with no checkpoint starts, the first time only:
	// trim_horizon (default), latest or at_timestamp. Child shards always start at their
	// beginning, and a restart always resumes after the checkpoint.
	StartPosition string `koanf:"start_position"`
	// StartTimestamp is the RFC 3339 time for at_timestamp. Required with at_timestamp and
	// rejected otherwise.
	StartTimestamp string `koanf:"start_timestamp"`
	// EFO configures Enhanced Fan-Out.
	EFO EFOConfig `koanf:"efo"`
	// PollInterval is the pause after an empty GetRecords in polling mode. Default 1s.
	PollInterval config.Duration `koanf:"poll_interval"`
	// MaxRecords is GetRecords' limit in polling mode, 1..10000. Default 10000.
	MaxRecords int `koanf:"max_records"`
	// ShardSyncInterval is how often ListShards runs to find new shards. Default 30s.
	ShardSyncInterval config.Duration `koanf:"shard_sync_interval"`
	// IdleTimeout ends a subscription that delivers nothing, not even a heartbeat, for this long.
	// Time spent waiting for pool space does not count. Default 60s.
	IdleTimeout config.Duration `koanf:"idle_timeout"`
	// ClosedShardQuietPeriod: when ListShards shows a shard closed and its EFO subscription has
	// delivered no new record for this long (time spent waiting for pool space does not count),
	// the reader closes the subscription and reads the rest of the shard with GetRecords until
	// it ends. Kinesis itself ends such a subscription with a final event first; kinesis-mock and
	// LocalStack never do. Default 10s; at least 1s.
	ClosedShardQuietPeriod config.Duration `koanf:"closed_shard_quiet_period"`
	// Deaggregate splits KPL aggregated records into their user records. Default true.
	Deaggregate *bool `koanf:"deaggregate"`
	// HTTP2MaxReceiveBufferPerStream bounds the HTTP/2 flow-control window, so the bytes buffered,
	// per subscription. Default 256KiB; valid 16KiB up to, not including, 4MiB.
	HTTP2MaxReceiveBufferPerStream config.ByteSize `koanf:"http2_max_receive_buffer_per_stream"`
	// Credentials are static or assumed-role credentials. Default: the standard AWS chain
	// (environment, shared profile, web identity, container and instance metadata).
	Credentials CredentialsConfig `koanf:"credentials"`
}

// EFOConfig is source.kinesis.efo.
type EFOConfig struct {
	// Enabled reads with Enhanced Fan-Out (SubscribeToShard). Default true; false polls with
	// GetRecords.
	Enabled *bool `koanf:"enabled"`
	// ConsumerName is the EFO consumer's name. It must stay the same across restarts so no
	// consumer leaks. Default "shardbridge-<connector name>".
	ConsumerName string `koanf:"consumer_name"`
	// ConsumerARN uses an existing consumer instead of registering one. Default "".
	ConsumerARN string `koanf:"consumer_arn"`
	// DeregisterOnStop deregisters the consumer when the source stops. Default false: the
	// consumer is kept for the next start.
	DeregisterOnStop bool `koanf:"deregister_on_stop"`
}

// CredentialsConfig is source.kinesis.credentials. All fields default to "".
type CredentialsConfig struct {
	// AccessKeyID with SecretAccessKey gives static credentials.
	AccessKeyID string `koanf:"access_key_id"`
	// SecretAccessKey goes with AccessKeyID.
	SecretAccessKey config.Secret `koanf:"secret_access_key"`
	// SessionToken goes with temporary static credentials.
	SessionToken config.Secret `koanf:"session_token"`
	// Profile names a shared config profile.
	Profile string `koanf:"profile"`
	// RoleARN is assumed (STS AssumeRole) with the credentials found otherwise.
	RoleARN string `koanf:"role_arn"`
}

var _ config.PluginConfig = (*Config)(nil)

// EFOEnabled reports efo.enabled after defaults.
func (c *Config) EFOEnabled() bool { return c.EFO.Enabled == nil || *c.EFO.Enabled }

// DeaggregateEnabled reports deaggregate after defaults.
func (c *Config) DeaggregateEnabled() bool { return c.Deaggregate == nil || *c.Deaggregate }

// StreamName returns the stream's name, taken from the ARN when Stream is one.
func (c *Config) StreamName() string {
	if a, err := arn.Parse(c.Stream); err == nil {
		return strings.TrimPrefix(a.Resource, "stream/")
	}
	return c.Stream
}

// streamARN returns Stream when it is an ARN, else "".
func (c *Config) streamARN() string {
	if arn.IsARN(c.Stream) {
		return c.Stream
	}
	return ""
}

// startTime returns start_timestamp parsed; it is valid after Validate.
func (c *Config) startTime() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, c.StartTimestamp)
	return t
}

// Validate fills defaults and returns every problem at once, as errors.Join of
// *config.FieldError. path is the section's key, e.g. "connectors[0].source.kinesis".
func (c *Config) Validate(connector, path string) error {
	var errs []error
	bad := func(key string, value any, problem, fix string) {
		errs = append(errs, &config.FieldError{Key: path + "." + key, Value: value, Problem: problem, Fix: fix})
	}

	switch {
	case c.Stream == "":
		bad("stream", nil, "is required", `set the Kinesis stream name or ARN, e.g. stream: "orders"`)
	case arn.IsARN(c.Stream):
		a, err := arn.Parse(c.Stream)
		if err != nil || a.Service != "kinesis" || !strings.HasPrefix(a.Resource, "stream/") || a.Resource == "stream/" {
			bad("stream", c.Stream, "is not a Kinesis stream ARN", "use arn:aws:kinesis:<region>:<account>:stream/<name>, or the stream name")
		} else if c.Region == "" {
			c.Region = a.Region
		} else if a.Region != "" && a.Region != c.Region {
			bad("region", c.Region, fmt.Sprintf("differs from the stream ARN's region %q", a.Region), "remove region, or make it match the ARN")
		}
	}
	if c.Region == "" && !arn.IsARN(c.Stream) {
		bad("region", nil, "is required", `set the AWS region, e.g. region: "us-east-1", or give the stream as an ARN`)
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		bad("endpoint", c.Endpoint, "is not an http or https URL", `use a URL such as "https://localhost:4567"`)
	}

	if c.StartPosition == "" {
		c.StartPosition = StartTrimHorizon
	}
	switch c.StartPosition {
	case StartTrimHorizon, StartLatest:
		if c.StartTimestamp != "" {
			bad("start_timestamp", c.StartTimestamp, "is only used with start_position at_timestamp", "remove start_timestamp, or set start_position: at_timestamp")
		}
	case StartAtTimestamp:
		if c.StartTimestamp == "" {
			bad("start_timestamp", nil, "is required with start_position at_timestamp", `set an RFC 3339 time, e.g. "2026-01-02T15:04:05Z"`)
		} else if _, err := time.Parse(time.RFC3339Nano, c.StartTimestamp); err != nil {
			bad("start_timestamp", c.StartTimestamp, "is not an RFC 3339 time", `use a time such as "2026-01-02T15:04:05Z"`)
		}
	default:
		bad("start_position", c.StartPosition, "is not a start position", "use trim_horizon, latest or at_timestamp")
	}

	if c.EFO.Enabled == nil {
		t := true
		c.EFO.Enabled = &t
	}
	derived := false
	if c.EFO.ConsumerName == "" && c.EFO.ConsumerARN == "" {
		c.EFO.ConsumerName = "shardbridge-" + connector
		derived = true
	}
	// A name derived from an invalid connector name is reported once, at the connector's name,
	// not again at a key the user never wrote.
	if n := c.EFO.ConsumerName; n != "" && !derived && !validConsumerName(n) {
		bad("efo.consumer_name", n, "is not a valid consumer name (1-128 characters of a-z, A-Z, 0-9, '_', '.', '-')",
			"choose a name made of those characters; it must stay the same across restarts")
	}
	if a := c.EFO.ConsumerARN; a != "" {
		p, err := arn.Parse(a)
		if err != nil || p.Service != "kinesis" || !strings.Contains(p.Resource, "/consumer/") {
			bad("efo.consumer_arn", a, "is not a Kinesis stream consumer ARN", "use arn:aws:kinesis:<region>:<account>:stream/<name>/consumer/<consumer>:<timestamp>, or remove it to register efo.consumer_name")
		}
	}

	if c.PollInterval == 0 {
		c.PollInterval = config.Duration(DefaultPollInterval)
	}
	if c.PollInterval.D() < 200*time.Millisecond {
		bad("poll_interval", c.PollInterval, "is below 200ms, the 5 GetRecords calls per second a shard allows", `use "200ms" or more; the default is "1s"`)
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.MaxRecords < 1 || c.MaxRecords > 10000 {
		bad("max_records", c.MaxRecords, "is out of range", "use a number from 1 to 10000; the default is 10000")
	}
	if c.ShardSyncInterval == 0 {
		c.ShardSyncInterval = config.Duration(DefaultShardSyncInterval)
	}
	if c.ShardSyncInterval.D() < time.Second {
		bad("shard_sync_interval", c.ShardSyncInterval, "is below 1s, which would spend the ListShards limit", `use "1s" or more; the default is "30s"`)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = config.Duration(DefaultIdleTimeout)
	}
	if c.ClosedShardQuietPeriod == 0 {
		c.ClosedShardQuietPeriod = config.Duration(DefaultClosedShardQuietPeriod)
	}
	if c.ClosedShardQuietPeriod.D() < time.Second {
		bad("closed_shard_quiet_period", c.ClosedShardQuietPeriod, "is below 1s", `use "1s" or more; the default is "10s"`)
	}
	if c.Deaggregate == nil {
		t := true
		c.Deaggregate = &t
	}
	if c.HTTP2MaxReceiveBufferPerStream == 0 {
		c.HTTP2MaxReceiveBufferPerStream = DefaultHTTP2ReceiveBufferPerStream
	}
	if b := c.HTTP2MaxReceiveBufferPerStream; b < 16<<10 || b >= 4<<20 {
		bad("http2_max_receive_buffer_per_stream", b, "is out of range", `use a size from "16KiB" up to, not including, "4MiB"; the default is "256KiB"`)
	}

	cr := c.Credentials
	if (cr.AccessKeyID == "") != (cr.SecretAccessKey == "") {
		if cr.AccessKeyID == "" {
			bad("credentials.access_key_id", nil, "is required with credentials.secret_access_key", "set both, or neither to use the standard AWS credential chain")
		} else {
			bad("credentials.secret_access_key", nil, "is required with credentials.access_key_id", "set both, or neither to use the standard AWS credential chain")
		}
	}
	if cr.SessionToken != "" && cr.AccessKeyID == "" {
		bad("credentials.session_token", cr.SessionToken, "is only used with static credentials", "set credentials.access_key_id and credentials.secret_access_key too, or remove it")
	}
	if cr.Profile != "" && cr.AccessKeyID != "" {
		bad("credentials.profile", cr.Profile, "conflicts with static credentials", "use either credentials.profile or credentials.access_key_id")
	}
	if cr.RoleARN != "" {
		if p, err := arn.Parse(cr.RoleARN); err != nil || p.Service != "iam" || !strings.HasPrefix(p.Resource, "role/") {
			bad("credentials.role_arn", cr.RoleARN, "is not an IAM role ARN", "use arn:aws:iam::<account>:role/<name>")
		}
	}
	return errors.Join(errs...)
}

func validConsumerName(n string) bool {
	if len(n) == 0 || len(n) > 128 {
		return false
	}
	for _, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}
