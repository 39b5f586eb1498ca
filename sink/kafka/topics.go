package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicError reports that a topic the sink is to write to is missing and will not be created
// (sink.kafka.topic_creation.enabled is false), or that the cluster refused to create it or to
// describe it. It names the topic, the problem and the fix. It is not retryable: trying again
// cannot help until someone creates the topic or changes a setting, an ACL or a policy.
type TopicError struct {
	Topic   string
	Problem string // what is wrong, e.g. "does not exist and sink.kafka.topic_creation.enabled is false"
	Fix     string // what to do about it
	// Err is the broker's error (a *kerr.Error such as TOPIC_AUTHORIZATION_FAILED), or nil
	// when the sink itself declined to create the topic.
	Err error
}

func (e *TopicError) Error() string {
	msg := "kafka topic " + e.Topic + " " + e.Problem
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg + "; " + e.Fix
}

// Unwrap returns the broker's error, if any.
func (e *TopicError) Unwrap() error { return e.Err }

// topicSet remembers which topics are known to exist with leaders, and prepares each other topic
// once (prepare looks it up, and creates it if it is missing) before the first record is produced
// to it. Concurrent first calls for one topic share one prepare. A failure is not remembered: the
// next call prepares again, so a topic created by hand meanwhile is found.
type topicSet struct {
	prepare func(ctx context.Context, topic string) error

	ready sync.Map // topic -> struct{}; written only under mu

	mu      sync.Mutex
	pending map[string]*topicCall // mu guards pending: prepares under way, by topic
}

// topicCall is one prepare under way; err is set before done is closed.
type topicCall struct {
	done chan struct{}
	err  error
}

func newTopicSet(prepare func(ctx context.Context, topic string) error) *topicSet {
	return &topicSet{prepare: prepare, pending: make(map[string]*topicCall)}
}

// ensure returns nil once topic is known to exist with a leader for every partition. The first
// caller for a topic prepares it; callers arriving meanwhile wait for that prepare and share its
// result, unless it ended only because its caller's context did, in which case the next one
// prepares the topic itself.
func (ts *topicSet) ensure(ctx context.Context, topic string) error {
	if _, ok := ts.ready.Load(topic); ok {
		return nil
	}
	for {
		ts.mu.Lock()
		if _, ok := ts.ready.Load(topic); ok {
			ts.mu.Unlock()
			return nil
		}
		c, running := ts.pending[topic]
		if !running {
			c = &topicCall{done: make(chan struct{})}
			ts.pending[topic] = c
		}
		ts.mu.Unlock()

		if !running {
			c.err = ts.prepare(ctx, topic)
			ts.mu.Lock()
			if c.err == nil {
				ts.ready.Store(topic, struct{}{})
			}
			delete(ts.pending, topic)
			ts.mu.Unlock()
			close(c.done)
			return c.err
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for kafka topic %s to be prepared: %w", topic, ctx.Err())
		}
		if c.err == nil {
			return nil
		}
		if ctx.Err() == nil && (errors.Is(c.err, context.Canceled) || errors.Is(c.err, context.DeadlineExceeded)) {
			continue // its caller gave up; ours has not
		}
		return c.err
	}
}

// topicCreator prepares the sink's topics: the destination topics and the dead-letter topic. It
// looks a topic up, creates it per sink.kafka.topic_creation when it is missing, and waits until
// it has leaders, so that the first produce does not fail with UNKNOWN_TOPIC_OR_PARTITION.
type topicCreator struct {
	cl         *kgo.Client
	adm        *kadm.Client
	tc         TopicCreationConfig // validated: no nil pointers
	dlqTopic   string
	dlqMax     int64 // dlq_max_message_bytes
	reqTimeout time.Duration
	log        *slog.Logger
	created    prometheus.Counter
}

func newTopicCreator(cl *kgo.Client, cfg *Config, dlqTopic string, log *slog.Logger, created prometheus.Counter) *topicCreator {
	return &topicCreator{
		cl:         cl,
		adm:        kadm.NewClient(cl),
		tc:         cfg.TopicCreation,
		dlqTopic:   dlqTopic,
		dlqMax:     int64(cfg.DLQMaxMessageBytes),
		reqTimeout: cfg.RequestTimeout.D(),
		log:        log,
		created:    created,
	}
}

// prepare makes sure topic exists with leaders, creating it if it is missing and creation is on.
func (tc *topicCreator) prepare(ctx context.Context, topic string) error {
	dlq := tc.dlqTopic != "" && topic == tc.dlqTopic
	setting := "sink.kafka.topic"
	if dlq {
		setting = "errors.dlq_topic"
	}
	state, err := topicState(ctx, tc.cl, topic)
	if err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) && !ke.Retriable {
			return &TopicError{Topic: topic, Problem: "cannot be looked up", Err: err,
				Fix: fmt.Sprintf("grant shardbridge's principal DESCRIBE and WRITE on topic %s, or choose another %s", topic, setting)}
		}
		return fmt.Errorf("look up kafka topic %s: %w", topic, err)
	}
	switch state {
	case topicReady:
		return nil
	case topicNotReady:
		return waitTopicReady(ctx, tc.cl, topic, tc.reqTimeout)
	}

	if !*tc.tc.Enabled {
		return &TopicError{Topic: topic, Problem: "does not exist and sink.kafka.topic_creation.enabled is false",
			Fix: fmt.Sprintf("create the topic, or set sink.kafka.topic_creation.enabled: true so that shardbridge creates it, or change %s", setting)}
	}
	configs := tc.configs(dlq)
	partitions, rf := int32(*tc.tc.Partitions), int16(*tc.tc.ReplicationFactor)
	resp, err := tc.adm.CreateTopic(ctx, partitions, rf, configs, topic)
	switch {
	case err == nil:
		tc.created.Inc()
		tc.log.Info("created kafka topic", "topic", topic, "partitions", resp.NumPartitions,
			"replication_factor", resp.ReplicationFactor, "configs", configText(configs))
	case errors.Is(err, kerr.TopicAlreadyExists):
		// Someone else (another connector or process, or an operator) created it between our
		// look and our create. It may not have leaders yet: wait as its creator would.
		tc.log.Debug("kafka topic created by someone else meanwhile", "topic", topic)
	default:
		var ke *kerr.Error
		if errors.As(err, &ke) && !ke.Retriable {
			problem := "does not exist and creating it was refused"
			if resp.ErrMessage != "" {
				problem += " (" + resp.ErrMessage + ")"
			}
			return &TopicError{Topic: topic, Problem: problem, Err: err, Fix: createFix(ke, topic, setting)}
		}
		return fmt.Errorf("create kafka topic %s: %w", topic, err)
	}
	return waitTopicReady(ctx, tc.cl, topic, tc.reqTimeout)
}

// configs returns the topic configs of a created topic: topic_creation.configs, and for the
// dead-letter topic max.message.bytes = dlq_max_message_bytes unless configs sets it, so that
// the dead letters the sink allows fit the topic it made.
func (tc *topicCreator) configs(dlq bool) map[string]*string {
	out := make(map[string]*string, len(tc.tc.Configs)+1)
	for k, v := range tc.tc.Configs {
		out[k] = kadm.StringPtr(v)
	}
	if _, set := out["max.message.bytes"]; dlq && !set {
		out["max.message.bytes"] = kadm.StringPtr(strconv.FormatInt(tc.dlqMax, 10))
	}
	return out
}

// configText renders topic configs for a log line.
func configText(configs map[string]*string) map[string]string {
	out := make(map[string]string, len(configs))
	for k, v := range configs {
		out[k] = *v
	}
	return out
}

// createFix says what to do about a refused CreateTopics.
func createFix(ke *kerr.Error, topic, setting string) string {
	switch ke {
	case kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed:
		return fmt.Sprintf("grant shardbridge's principal CREATE on topic %s (or on the cluster), or create the topic beforehand", topic)
	case kerr.PolicyViolation:
		return "create the topic beforehand, or change sink.kafka.topic_creation (partitions, replication_factor, configs) to meet the cluster's topic creation policy"
	case kerr.InvalidReplicationFactor:
		return "set sink.kafka.topic_creation.replication_factor to at most the number of brokers, or to -1 for the broker's default.replication.factor"
	case kerr.InvalidPartitions:
		return "set sink.kafka.topic_creation.partitions to a count the cluster accepts, or to -1 for the broker's num.partitions"
	case kerr.InvalidConfig:
		return "fix sink.kafka.topic_creation.configs: every key must be a topic config the brokers know, with a valid value"
	case kerr.InvalidTopicException:
		return fmt.Sprintf("choose another %s: the name is not accepted, or it collides with an existing topic whose name differs only in '.' and '_'", setting)
	}
	return "create the topic beforehand, or fix what the broker reports"
}

type topicStatus int

const (
	topicMissing topicStatus = iota
	topicNotReady
	topicReady
)

// topicState asks a broker directly for the topic's metadata. It bypasses franz-go's metadata
// cache on purpose: the cache keeps an unknown topic for MetadataMinAge (5s), which would make
// the first use after creating the topic fail or wait. The request does not ask the broker to
// create the topic.
func topicState(ctx context.Context, cl *kgo.Client, topic string) (topicStatus, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return topicMissing, nil
			}
			if kerr.IsRetriable(err) {
				return topicNotReady, nil
			}
			return 0, err
		}
		if len(t.Partitions) == 0 {
			return topicNotReady, nil
		}
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 || p.Leader < 0 {
				return topicNotReady, nil
			}
		}
		return topicReady, nil
	}
	return topicMissing, nil
}

// topicReadyBackoff is the pause between looks at a just-created topic's metadata.
const topicReadyBackoff = 50 * time.Millisecond

// waitTopicReady waits until a just-created topic shows in metadata with a leader for every
// partition: brokers learn of a new topic asynchronously, and a produce, fetch or offset lookup
// before then would fail with UNKNOWN_TOPIC_OR_PARTITION. It is bounded by ctx and by ten
// request timeouts.
func waitTopicReady(ctx context.Context, cl *kgo.Client, topic string, reqTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 10*reqTimeout)
	defer cancel()
	for {
		state, err := topicState(ctx, cl, topic)
		if err == nil && state == topicReady {
			return nil
		}
		t := time.NewTimer(topicReadyBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for created kafka topic %s to be ready: %w", topic, ctx.Err())
		case <-t.C:
		}
	}
}
