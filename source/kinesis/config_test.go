package kinesis

import (
	"strings"
	"testing"
	"time"

	"github.com/shardbridge/shardbridge/runtime/config"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Stream: "orders", Region: "eu-west-1"}
	if err := c.Validate("mirror", "source.kinesis"); err != nil {
		t.Fatal(err)
	}
	if c.StartPosition != StartTrimHorizon || !c.EFOEnabled() || !c.DeaggregateEnabled() ||
		c.EFO.ConsumerName != "shardbridge-mirror" || c.EFO.DeregisterOnStop ||
		c.PollInterval.D() != time.Second || c.MaxRecords != 10000 || c.ShardSyncInterval.D() != 30*time.Second ||
		c.IdleTimeout.D() != 60*time.Second || c.HTTP2MaxReceiveBufferPerStream != 256<<10 ||
		c.ClosedShardQuietPeriod.D() != 10*time.Second {
		t.Errorf("defaults not filled: %+v", c)
	}
	if c.StreamName() != "orders" {
		t.Errorf("StreamName = %q", c.StreamName())
	}
}

func TestConfigRegionFromARN(t *testing.T) {
	c := Config{Stream: "arn:aws:kinesis:ap-south-1:123456789012:stream/orders"}
	if err := c.Validate("m", "source.kinesis"); err != nil {
		t.Fatal(err)
	}
	if c.Region != "ap-south-1" || c.StreamName() != "orders" {
		t.Errorf("region %q name %q", c.Region, c.StreamName())
	}
}

// Each invalid value is reported with its full key, its value and a fix; all at once.
func TestConfigErrors(t *testing.T) {
	f, tr := false, true
	_ = tr
	cases := []struct {
		name   string
		cfg    Config
		key    string
		secret bool
	}{
		{"stream missing", Config{Region: "r"}, "stream", false},
		{"bad arn", Config{Stream: "arn:aws:sqs:us-east-1:1:queue"}, "stream", false},
		{"region missing", Config{Stream: "s"}, "region", false},
		{"region differs from arn", Config{Stream: "arn:aws:kinesis:us-east-1:1:stream/s", Region: "eu-west-1"}, "region", false},
		{"endpoint not a url", Config{Stream: "s", Region: "r", Endpoint: "localhost:4567"}, "endpoint", false},
		{"start position", Config{Stream: "s", Region: "r", StartPosition: "earliest"}, "start_position", false},
		{"timestamp without at_timestamp", Config{Stream: "s", Region: "r", StartTimestamp: "2026-01-01T00:00:00Z"}, "start_timestamp", false},
		{"at_timestamp without timestamp", Config{Stream: "s", Region: "r", StartPosition: StartAtTimestamp}, "start_timestamp", false},
		{"bad timestamp", Config{Stream: "s", Region: "r", StartPosition: StartAtTimestamp, StartTimestamp: "yesterday"}, "start_timestamp", false},
		{"consumer name", Config{Stream: "s", Region: "r", EFO: EFOConfig{ConsumerName: "has space"}}, "efo.consumer_name", false},
		{"consumer arn", Config{Stream: "s", Region: "r", EFO: EFOConfig{ConsumerARN: "arn:aws:kinesis:us-east-1:1:stream/s"}}, "efo.consumer_arn", false},
		{"poll interval", Config{Stream: "s", Region: "r", PollInterval: config.Duration(time.Millisecond)}, "poll_interval", false},
		{"max records", Config{Stream: "s", Region: "r", MaxRecords: 10001}, "max_records", false},
		{"shard sync", Config{Stream: "s", Region: "r", ShardSyncInterval: config.Duration(time.Millisecond)}, "shard_sync_interval", false},
		{"closed shard quiet period", Config{Stream: "s", Region: "r", ClosedShardQuietPeriod: config.Duration(500 * time.Millisecond)}, "closed_shard_quiet_period", false},
		{"buffer too small", Config{Stream: "s", Region: "r", HTTP2MaxReceiveBufferPerStream: 1024}, "http2_max_receive_buffer_per_stream", false},
		{"buffer too large", Config{Stream: "s", Region: "r", HTTP2MaxReceiveBufferPerStream: 4 << 20}, "http2_max_receive_buffer_per_stream", false},
		{"secret without id", Config{Stream: "s", Region: "r", Credentials: CredentialsConfig{SecretAccessKey: "hunter2"}}, "credentials.access_key_id", true},
		{"id without secret", Config{Stream: "s", Region: "r", Credentials: CredentialsConfig{AccessKeyID: "AKID"}}, "credentials.secret_access_key", false},
		{"token without static", Config{Stream: "s", Region: "r", Credentials: CredentialsConfig{SessionToken: "hunter2"}}, "credentials.session_token", true},
		{"profile and static", Config{Stream: "s", Region: "r", Credentials: CredentialsConfig{AccessKeyID: "A", SecretAccessKey: "hunter2", Profile: "p"}}, "credentials.profile", false},
		{"role arn", Config{Stream: "s", Region: "r", Credentials: CredentialsConfig{RoleARN: "arn:aws:iam::1:user/x"}}, "credentials.role_arn", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.EFO.Enabled = &f
			err := tc.cfg.Validate("m", "connectors[0].source.kinesis")
			probs := config.Problems(err)
			if len(probs) != 1 {
				t.Fatalf("got %d problems, want 1: %v", len(probs), err)
			}
			p := probs[0]
			if p.Key != "connectors[0].source.kinesis."+tc.key || p.Problem == "" || p.Fix == "" {
				t.Errorf("problem %+v: want key %s with a problem and a fix", p, tc.key)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
	// Several problems come back together.
	c := Config{StartPosition: "x", MaxRecords: -1}
	if n := len(config.Problems(c.Validate("m", "p"))); n != 4 {
		t.Errorf("got %d problems, want 4 (stream, region, start_position, max_records)", n)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{}, "m"); err == nil {
		t.Fatal("New accepted an empty config")
	}
}

// A shard's share of the memory limit is its window and the reader's state, with EFO and when
// polling alike: what it decodes is the decode budget's.
func TestShardHeldBytes(t *testing.T) {
	off := false
	for _, tc := range []struct {
		name string
		c    Config
		want int64
	}{
		{"efo defaults", Config{}, 256<<10 + 128<<10},
		{"efo 1MiB window", Config{HTTP2MaxReceiveBufferPerStream: config.ByteSize(1 << 20)}, 1<<20 + 128<<10},
		{"polling defaults", Config{EFO: EFOConfig{Enabled: &off}}, 256<<10 + 128<<10},
	} {
		c := tc.c
		c.Stream, c.Region = "orders", "eu-west-1"
		if err := c.Validate("mirror", "source.kinesis"); err != nil {
			t.Fatal(err)
		}
		if got := c.ShardHeldBytes(); got != tc.want {
			t.Errorf("%s: ShardHeldBytes() = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// HeldBytes follows the shards being read.
func TestHeldBytesFollowsActiveShards(t *testing.T) {
	src, err := New(Config{Stream: "orders", Region: "eu-west-1"}, "mirror")
	if err != nil {
		t.Fatal(err)
	}
	per := src.cfg.ShardHeldBytes()
	a, b := newShardState("a"), newShardState("b")
	src.setActive(a, true)
	src.setActive(b, true)
	if got := src.HeldBytes(); got != 2*per {
		t.Errorf("two shards hold %d, want %d", got, 2*per)
	}
	src.setActive(b, false)
	if got := src.HeldBytes(); got != per {
		t.Errorf("one shard holds %d, want %d", got, per)
	}
}

// A read's share of the decode budget is 4 x its length; a GetRecords response of unknown length
// counts as the most max_records records may return: base64 of min(10 MiB, n x 1 MiB) and 160
// bytes of JSON a record.
func TestDecodeShare(t *testing.T) {
	for _, tc := range []struct {
		length     int64
		maxRecords int
		want       int64
	}{
		{0, 10000, 0},
		{4 << 20, 10000, 16 << 20},
		{-1, 10000, 4 * ((10<<20+2)/3*4 + 10000*160)},
		{-1, 3, 4 * ((3<<20+2)/3*4 + 3*160)},
	} {
		if got := decodeShare(tc.length, tc.maxRecords); got != tc.want {
			t.Errorf("decodeShare(%d, %d) = %d, want %d", tc.length, tc.maxRecords, got, tc.want)
		}
	}
}
