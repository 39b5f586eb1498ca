package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults of the runtime-level settings. Each field's doc repeats its default.
const (
	DefaultHTTPAddr          = "127.0.0.1:8083"
	DefaultShutdownTimeout   = Duration(30 * time.Second)
	DefaultMaxPendingRecords = int64(50000)
	DefaultMaxPendingBytes   = ByteSize(64 << 20)
	DefaultWaitTimeout       = Duration(30 * time.Second)
	DefaultCheckpointTopic   = "_shardbridge_checkpoints"
	DefaultCheckpointEvery   = Duration(5 * time.Second)
	DefaultErrorPolicy       = PolicyFail
	DefaultMemoryLimit       = MemoryLimitAuto
	DefaultDecodeBudget      = ByteSize(64 << 20)

	DefaultGroupSessionTimeout    = Duration(10 * time.Second)
	DefaultGroupHeartbeatInterval = Duration(3 * time.Second)
	DefaultGroupRebalanceTimeout  = Duration(time.Minute)
	DefaultGroupPartitions        = 64
	// DefaultGroupIDPrefix and DefaultGroupTopicPrefix start the group id and the coordination
	// topic that a connector gets by default; its name follows.
	DefaultGroupIDPrefix    = "shardbridge-"
	DefaultGroupTopicPrefix = "_shardbridge_group."
	// DefaultTransactionalIDPrefix starts a connector's default transactional id; its name
	// follows.
	DefaultTransactionalIDPrefix = "shardbridge-"
)

// Error policies for records that fail for good (Errors.Policy).
const (
	// PolicyFail stops the connector on the first record that fails for good.
	PolicyFail = "fail"
	// PolicyDLQ writes the failed record to Errors.DLQTopic and goes on.
	PolicyDLQ = "dlq"
	// PolicySkip drops the failed record, counts it in metrics and goes on.
	PolicySkip = "skip"
)

// Limits enforced by Validate.
const (
	// MinMaxPendingBytes is the smallest pool.max_pending_bytes.
	MinMaxPendingBytes = ByteSize(1 << 10)
	// MaxWaitTimeout bounds pool.wait_timeout from above (exclusive): an EFO subscription
	// lives at most 5 minutes, so waiting longer for pool space would outlive it.
	MaxWaitTimeout = Duration(5 * time.Minute)
	// MinCheckpointInterval is the smallest checkpoint.interval.
	MinCheckpointInterval = Duration(100 * time.Millisecond)
	// MinDecodeBudget is the smallest decode_budget: about what one full Kinesis event (2 MiB
	// of records) takes to decode, so that such an event never needs more than the whole
	// budget.
	MinDecodeBudget = ByteSize(16 << 20)
)

// Config is the whole runtime configuration. Build it with Load, or start from Default and
// call Validate. Marshalled to JSON it shows every Secret as "[redacted]".
type Config struct {
	// HTTP configures the HTTP API, /metrics, /healthz and /readyz.
	HTTP HTTP `koanf:"http" json:"http"`
	// Pool bounds the global pending pool shared by every shard of every connector.
	Pool Pool `koanf:"pool" json:"pool"`
	// ShutdownTimeout is how long a drain waits for in-flight records to be acknowledged
	// before final checkpoints are written. Default 30s; must be > 0.
	ShutdownTimeout Duration `koanf:"shutdown_timeout" json:"shutdown_timeout"`
	// MemoryLimit is the soft memory limit given to Go's memory manager: "auto" (default),
	// "off" or a size of at least 32MiB. GOMEMLIMIT in the environment takes precedence.
	MemoryLimit MemoryLimit `koanf:"memory_limit" json:"memory_limit"`
	// DecodeBudget bounds the memory spent decoding what the shard readers have read (events,
	// GetRecords responses) before its records enter the pool, across every shard of every
	// connector: a reader takes a share sized from what it is about to decode, in turn, and
	// gives it back once the records are in the pool. Default 64MiB; must be >= 16MiB.
	DecodeBudget ByteSize `koanf:"decode_budget" json:"decode_budget"`
	// WorkerID names this process in logs, status, metrics and group membership. Default
	// empty: the host name and the process id ("host/1234").
	WorkerID string `koanf:"worker_id" json:"worker_id"`
	// Connectors are the Source-to-Sink pipelines to run. Default none. When several files
	// are loaded, their lists are concatenated in load order.
	Connectors []Connector `koanf:"connectors" json:"connectors"`
}

// HTTP configures the HTTP server.
type HTTP struct {
	// Addr is the listen address. Default "127.0.0.1:8083"; must be host:port with a
	// numeric port (host may be empty for all interfaces; port 0 picks a free port).
	Addr string `koanf:"addr" json:"addr"`
	// AuthToken is the bearer token required by mutating endpoints. Default none, which
	// leaves them open (the default address is loopback-only for that reason).
	AuthToken Secret `koanf:"auth_token" json:"auth_token"`
}

// Pool bounds the global pending pool; both limits hold at once.
type Pool struct {
	// MaxPendingRecords is the most records in flight. Default 50000; must be >= 1.
	MaxPendingRecords int64 `koanf:"max_pending_records" json:"max_pending_records"`
	// MaxPendingBytes is the most record bytes in flight. Default 64MiB; must be >= 1KiB.
	MaxPendingBytes ByteSize `koanf:"max_pending_bytes" json:"max_pending_bytes"`
	// WaitTimeout bounds how long a shard reader waits for pool space before it closes its
	// subscription and resubscribes later. Default 30s; must be > 0 and < 5m, because a
	// subscription lives at most 5 minutes.
	WaitTimeout Duration `koanf:"wait_timeout" json:"wait_timeout"`
}

// Connector is one Source-to-Sink pipeline.
type Connector struct {
	// Name identifies the connector in logs, metrics, checkpoints and the HTTP API.
	// Required; 1 to 100 characters of [a-zA-Z0-9._-]; unique across the config.
	Name string `koanf:"name" json:"name"`
	// Source is written as a table with exactly one key naming a registered source type,
	// e.g. source.kinesis. Required.
	Source Plugin `koanf:"source" json:"source"`
	// Sink is written as a table with exactly one key naming a registered sink type,
	// e.g. sink.kafka. Required.
	Sink Plugin `koanf:"sink" json:"sink"`
	// Checkpoint configures where and how often positions are committed.
	Checkpoint Checkpoint `koanf:"checkpoint" json:"checkpoint"`
	// Errors configures what happens to a record that fails for good.
	Errors Errors `koanf:"errors" json:"errors"`
	// Group lets several processes share the connector's shards. Off by default.
	Group Group `koanf:"group" json:"group"`
	// Delivery is the guarantee: "at_least_once" (default) or "exactly_once" (records and the
	// checkpoints that cover them in one Kafka transaction; consumers read read_committed).
	Delivery string `koanf:"delivery" json:"delivery"`
	// TransactionalID is the Kafka transactional id of the exactly-once producer. Default
	// "shardbridge-<connector name>"; in group mode each worker appends "-<worker_id>".
	TransactionalID string `koanf:"transactional_id" json:"transactional_id"`
}

// Delivery guarantees (Connector.Delivery).
const (
	DeliveryAtLeastOnce = "at_least_once"
	DeliveryExactlyOnce = "exactly_once"
)

// ExactlyOnceChecker is implemented by a sink config that can deliver exactly once: it returns
// what in its settings stops that, as FieldErrors keyed under path.
type ExactlyOnceChecker interface {
	ExactlyOnce(path string) error
}

// Group configures several shardbridge processes (workers) sharing one connector's shards
// through Kafka's group protocol, on the connector's own Kafka cluster (sink.kafka.brokers).
type Group struct {
	// Enabled turns group mode on. Default false: this process reads every shard.
	Enabled bool `koanf:"enabled" json:"enabled"`
	// ID is the Kafka group the workers join. Default "shardbridge-<connector name>"; every
	// worker of the connector must use the same.
	ID string `koanf:"id" json:"id"`
	// SessionTimeout is how long the group waits for a worker's heartbeat before it gives the
	// worker's shards to the others. Default 10s; 1s to 30m, within the brokers'
	// group.min.session.timeout.ms and group.max.session.timeout.ms.
	SessionTimeout Duration `koanf:"session_timeout" json:"session_timeout"`
	// HeartbeatInterval is how often a worker tells the group it is alive. Default 3s; at most
	// a third of session_timeout.
	HeartbeatInterval Duration `koanf:"heartbeat_interval" json:"heartbeat_interval"`
	// RebalanceTimeout bounds a rebalance, including the time a worker takes to hand over the
	// shards it gives up (stop reading, drain, final checkpoint). Default 1m; more than
	// shutdown_timeout plus 10s.
	RebalanceTimeout Duration `koanf:"rebalance_timeout" json:"rebalance_timeout"`
	// Topic is the coordination topic: the workers own its partitions, and with them the
	// shards mapped to each. It holds no data. Default "_shardbridge_group.<connector name>";
	// created when missing.
	Topic string `koanf:"topic" json:"topic"`
	// Partitions is how many units of ownership the coordination topic is created with: shard
	// N (shardId-...N) belongs to partition N mod partitions. Default 64; 1 to 10000. More
	// partitions than open shards keeps each shard in a partition of its own, which lets the
	// group balance shards to within one per worker. An existing topic keeps its count.
	Partitions int `koanf:"partitions" json:"partitions"`
}

// Checkpoint configures checkpointing.
type Checkpoint struct {
	// Topic is the compacted Kafka topic holding checkpoints. Default
	// "_shardbridge_checkpoints"; must be a valid Kafka topic name.
	Topic string `koanf:"topic" json:"topic"`
	// Interval is how often committable positions are written. Default 5s; must be >= 100ms.
	Interval Duration `koanf:"interval" json:"interval"`
}

// Errors configures the error policy.
type Errors struct {
	// Policy is one of "fail" (default: stop the connector), "dlq" (write the record to
	// DLQTopic and go on) or "skip" (drop it, count it and go on).
	Policy string `koanf:"policy" json:"policy"`
	// DLQTopic is the dead-letter topic. Default none; required with policy "dlq" and an
	// error without it.
	DLQTopic string `koanf:"dlq_topic" json:"dlq_topic,omitempty"`
}

// Plugin is a connector's source or sink section, decoded by the type registered for it.
type Plugin struct {
	// Type is the registered type name, the one key of the section, e.g. "kinesis".
	Type string
	// Config is the typed, validated section from the Registry: the value returned by the
	// registered constructor, so a pointer to the plugin's struct.
	Config PluginConfig
}

// MarshalJSON writes the section as it is written in a config file: {"kinesis": {...}}, keyed
// by the plugin struct's koanf tags (the keys a user writes), whatever its JSON tags, with every
// field including filled-in defaults. Secrets inside Config stay redacted as long as the plugin's
// struct uses Secret.
func (p Plugin) MarshalJSON() ([]byte, error) {
	if p.Type == "" {
		return []byte("null"), nil
	}
	return json.Marshal(map[string]any{p.Type: keyed(reflect.ValueOf(p.Config))})
}

// PluginConfig is the typed section of one source or sink type. Validate fills defaults
// and returns every problem (errors.Join of *FieldError). connector is the connector's
// name, for defaults such as an EFO consumer name derived from it; path is the key prefix
// such as "connectors[0].source.kinesis", to prefix the FieldError keys. Validate must be
// idempotent: Config.Validate may call it again on an already validated config.
type PluginConfig interface {
	Validate(connector, path string) error
}

// Default returns a Config holding every runtime-level default and no connectors.
func Default() Config {
	return Config{
		HTTP:            HTTP{Addr: DefaultHTTPAddr},
		Pool:            Pool{MaxPendingRecords: DefaultMaxPendingRecords, MaxPendingBytes: DefaultMaxPendingBytes, WaitTimeout: DefaultWaitTimeout},
		ShutdownTimeout: DefaultShutdownTimeout,
		MemoryLimit:     DefaultMemoryLimit,
		DecodeBudget:    DefaultDecodeBudget,
	}
}

// DefaultConnector returns a Connector holding the per-connector defaults, with no name,
// source or sink.
func DefaultConnector() Connector {
	return Connector{
		Checkpoint: Checkpoint{Topic: DefaultCheckpointTopic, Interval: DefaultCheckpointEvery},
		Errors:     Errors{Policy: DefaultErrorPolicy},
		Delivery:   DeliveryAtLeastOnce,
		Group: Group{SessionTimeout: DefaultGroupSessionTimeout, HeartbeatInterval: DefaultGroupHeartbeatInterval,
			RebalanceTimeout: DefaultGroupRebalanceTimeout, Partitions: DefaultGroupPartitions},
	}
}

// Validate checks every setting and returns every problem at once (errors.Join of
// *FieldError), including those the plugins' Validate methods report. It does not fill
// runtime defaults: a zero value is an explicit setting and is checked as such (start from
// Default and DefaultConnector to get defaults).
func (c *Config) Validate() error {
	return errors.Join(c.validate(nil)...)
}

var (
	connectorNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,100}$`)
	topicRE         = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
)

// validate returns every problem, leaving out those whose key is in skip: Load passes the
// keys that already failed to decode, so a bad value is not reported twice.
func (c *Config) validate(skip map[string]bool) []error {
	var errs []error
	add := func(key string, value any, problem, fix string) {
		if !skip[key] {
			errs = append(errs, &FieldError{Key: key, Value: value, Problem: problem, Fix: fix})
		}
	}

	if err := checkHostPort(c.HTTP.Addr); err != "" {
		add("http.addr", c.HTTP.Addr, err, `use host:port such as "127.0.0.1:8083" or ":8083"`)
	}
	if c.Pool.MaxPendingRecords < 1 {
		add("pool.max_pending_records", c.Pool.MaxPendingRecords, "must be at least 1", "use a count such as 50000")
	}
	if c.Pool.MaxPendingBytes < MinMaxPendingBytes {
		add("pool.max_pending_bytes", c.Pool.MaxPendingBytes.String(), "must be at least 1KiB", `use a size such as "64MiB"`)
	}
	if c.Pool.WaitTimeout <= 0 || c.Pool.WaitTimeout >= MaxWaitTimeout {
		add("pool.wait_timeout", c.Pool.WaitTimeout.String(), "must be more than 0s and less than 5m, because a subscription lives at most 5 minutes", `use a duration such as "30s"`)
	}
	if c.MemoryLimit > 0 && c.MemoryLimit < MinMemoryLimit {
		add("memory_limit", c.MemoryLimit.String(), "must be at least 32MiB", `use "auto", "off" or a size such as "1GiB"`)
	}
	if c.DecodeBudget < MinDecodeBudget {
		add("decode_budget", c.DecodeBudget.String(), "must be at least 16MiB, about what one full Kinesis event takes to decode", `use a size such as "64MiB"`)
	}
	if c.ShutdownTimeout <= 0 {
		add("shutdown_timeout", c.ShutdownTimeout.String(), "must be more than 0s", `use a duration such as "30s"`)
	}

	firstByName := make(map[string]int)
	for i := range c.Connectors {
		cn := &c.Connectors[i]
		p := "connectors[" + strconv.Itoa(i) + "]"
		switch {
		case cn.Name == "":
			add(p+".name", nil, "required", "give the connector a unique name such as \"orders-mirror\"")
		case !connectorNameRE.MatchString(cn.Name):
			add(p+".name", cn.Name, "must be 1 to 100 characters of letters, digits, '.', '_' or '-'", "rename it, e.g. \"orders-mirror\"")
		default:
			if j, dup := firstByName[cn.Name]; dup {
				add(p+".name", cn.Name, fmt.Sprintf("duplicate name; connectors[%d] has it too", j), "give each connector a unique name")
			} else {
				firstByName[cn.Name] = i
			}
		}
		errs = append(errs, validatePlugin(cn.Name, p+".source", "source", cn.Source, skip)...)
		errs = append(errs, validatePlugin(cn.Name, p+".sink", "sink", cn.Sink, skip)...)

		if msg := checkTopic(cn.Checkpoint.Topic); msg != "" {
			add(p+".checkpoint.topic", cn.Checkpoint.Topic, msg, "use a Kafka topic name such as \""+DefaultCheckpointTopic+"\"")
		}
		if cn.Checkpoint.Interval < MinCheckpointInterval {
			add(p+".checkpoint.interval", cn.Checkpoint.Interval.String(), "must be at least 100ms", `use a duration such as "5s"`)
		}
		switch cn.Delivery {
		case DeliveryAtLeastOnce:
		case DeliveryExactlyOnce:
			if eo, ok := cn.Sink.Config.(ExactlyOnceChecker); ok {
				for _, fe := range Problems(eo.ExactlyOnce(joinKey(p+".sink", cn.Sink.Type))) {
					if !skip[fe.Key] {
						errs = append(errs, fe)
					}
				}
			} else if cn.Sink.Config != nil {
				add(p+".delivery", cn.Delivery, "the "+cn.Sink.Type+" sink cannot write transactions", "use delivery: at_least_once")
			}
			if cn.TransactionalID == "" {
				add(p+".transactional_id", nil, "must not be empty with delivery exactly_once", "remove it for the default, or name it")
			}
		default:
			fix := `use "at_least_once" or "exactly_once"`
			if sg := suggest(cn.Delivery, []string{DeliveryAtLeastOnce, DeliveryExactlyOnce}); sg != "" && cn.Delivery != "" {
				fix = "did you mean " + sg + "?"
			}
			add(p+".delivery", cn.Delivery, "unknown delivery", fix)
		}
		if cn.Group.Enabled {
			// The group settings matter only in group mode, and are checked only then.
			errs = append(errs, cn.Group.validate(p+".group", c.ShutdownTimeout, skip)...)
		}
		switch cn.Errors.Policy {
		case PolicyFail, PolicySkip:
			if cn.Errors.DLQTopic != "" {
				add(p+".errors.dlq_topic", cn.Errors.DLQTopic, "is set but errors.policy is \""+cn.Errors.Policy+"\"", "set errors.policy to \"dlq\" or remove dlq_topic")
			}
		case PolicyDLQ:
			example := "orders-dlq"
			if connectorNameRE.MatchString(cn.Name) {
				example = cn.Name + "-dlq"
			}
			switch msg := checkTopic(cn.Errors.DLQTopic); {
			case cn.Errors.DLQTopic == "":
				add(p+".errors.dlq_topic", nil, "required with errors.policy \"dlq\"", "name the dead-letter topic, e.g. \""+example+"\"")
			case msg != "":
				add(p+".errors.dlq_topic", cn.Errors.DLQTopic, msg, "use a Kafka topic name such as \""+example+"\"")
			case cn.Errors.DLQTopic == cn.Checkpoint.Topic:
				add(p+".errors.dlq_topic", cn.Errors.DLQTopic, "is the checkpoint topic", "use a separate dead-letter topic")
			}
		default:
			fix := `use "fail", "dlq" or "skip"`
			if s := suggest(cn.Errors.Policy, []string{PolicyFail, PolicyDLQ, PolicySkip}); s != "" && cn.Errors.Policy != "" {
				fix = "did you mean " + s + "?"
			}
			add(p+".errors.policy", cn.Errors.Policy, "unknown policy", fix)
		}
	}
	return errs
}

func validatePlugin(connector, path, kind string, p Plugin, skip map[string]bool) []error {
	if p.Config == nil {
		if skip[path] || p.Type != "" {
			return nil
		}
		return []error{&FieldError{Key: path, Problem: "no " + kind + " type", Fix: "add a " + kind + " section with one type, e.g. " + kind + "." + map[string]string{"source": "kinesis", "sink": "kafka"}[kind]}}
	}
	full := joinKey(path, p.Type)
	var out []error
	for _, fe := range Problems(p.Config.Validate(connector, full)) {
		if fe.Key == "" {
			fe.Key = full
		}
		if !skip[fe.Key] {
			out = append(out, fe)
		}
	}
	return out
}

// checkHostPort returns what is wrong with addr, or "".
func checkHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "not host:port"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "port must be a number from 0 to 65535"
	}
	return ""
}

// checkTopic returns what is wrong with a Kafka topic name, or "".
func checkTopic(t string) string {
	switch {
	case t == "":
		return "must not be empty"
	case t == "." || t == "..":
		return "is not a valid Kafka topic name"
	case !topicRE.MatchString(t):
		return "must be 1 to 249 characters of letters, digits, '.', '_' or '-'"
	}
	return ""
}

// sortedNames returns the keys of a registry map, sorted.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// knownList is "a, b or c" for messages.
func knownList(names []string) string {
	switch len(names) {
	case 0:
		return "(none registered)"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Limits of the group settings, enforced by Validate.
const (
	MinGroupSessionTimeout = Duration(time.Second)
	MaxGroupSessionTimeout = Duration(30 * time.Minute)
	MaxGroupPartitions     = 10000
	// groupHandoverSlack is what a rebalance needs beyond shutdown_timeout: the final
	// checkpoint commit of the shards handed over (runtime.DefaultFinalCommitTimeout).
	groupHandoverSlack = Duration(10 * time.Second)
)

func (g *Group) validate(p string, shutdown Duration, skip map[string]bool) []error {
	var errs []error
	add := func(key string, value any, problem, fix string) {
		if !skip[key] {
			errs = append(errs, &FieldError{Key: key, Value: value, Problem: problem, Fix: fix})
		}
	}
	if g.SessionTimeout < MinGroupSessionTimeout || g.SessionTimeout > MaxGroupSessionTimeout {
		add(p+".session_timeout", g.SessionTimeout.String(), "must be from 1s to 30m", `use a duration such as "10s"`)
	}
	if g.HeartbeatInterval <= 0 || g.SessionTimeout > 0 && g.HeartbeatInterval*3 > g.SessionTimeout {
		add(p+".heartbeat_interval", g.HeartbeatInterval.String(), "must be more than 0s and at most a third of session_timeout ("+g.SessionTimeout.String()+")",
			"lower heartbeat_interval or raise session_timeout")
	}
	if g.RebalanceTimeout <= shutdown+groupHandoverSlack {
		add(p+".rebalance_timeout", g.RebalanceTimeout.String(), "must be more than shutdown_timeout ("+shutdown.String()+") plus 10s, the time a worker may take to hand over a shard",
			"raise rebalance_timeout or lower shutdown_timeout")
	}
	if g.Partitions < 1 || g.Partitions > MaxGroupPartitions {
		add(p+".partitions", g.Partitions, "must be from 1 to 10000", "use a count above the most open shards you expect, such as 64")
	}
	if msg := checkTopic(g.Topic); msg != "" {
		add(p+".topic", g.Topic, msg, "use a Kafka topic name such as \""+DefaultGroupTopicPrefix+"orders-mirror\"")
	}
	if g.ID == "" {
		add(p+".id", nil, "must not be empty", "remove it for the default, or name the group")
	}
	return errs
}
