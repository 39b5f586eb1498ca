package kafka

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Option configures NewSink and NewCheckpointStore.
type Option func(*options)

type options struct {
	connector string
	log       *slog.Logger
	reg       prometheus.Registerer
	dlqTopic  string
	now       func() time.Time
	kgoOpts   []kgo.Opt
	txn       *TxnOptions
	// checkpoint topic creation
	cpPartitions  int32
	cpReplication int16
}

func defaultOptions() options {
	return options{
		log:           slog.New(slog.DiscardHandler),
		now:           time.Now,
		cpPartitions:  1,
		cpReplication: -1,
	}
}

// WithConnector names the connector, for the connector label of metrics and log fields.
func WithConnector(name string) Option { return func(o *options) { o.connector = name } }

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithRegisterer registers the metrics with reg. Without it no metric is registered.
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// WithDeadLetterTopic sets the topic WriteDeadLetter writes to: the connector's errors.dlq_topic.
func WithDeadLetterTopic(topic string) Option { return func(o *options) { o.dlqTopic = topic } }

// WithClock sets the clock used for checkpoint write times, the checkpoint age metric and the
// age of the sink's open transaction (txn.go). The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithCheckpointTopicLayout sets the partitions and replication factor used when
// NewCheckpointStore creates the checkpoint topic. The default is 1 partition (checkpoints are
// few and small) and the broker's default replication factor (-1).
func WithCheckpointTopicLayout(partitions int32, replicationFactor int16) Option {
	return func(o *options) {
		o.cpPartitions = partitions
		o.cpReplication = replicationFactor
	}
}

// withKgoOpts appends franz-go options after the ones derived from Config (tests use it to
// shorten retry backoffs).
func withKgoOpts(opts ...kgo.Opt) Option {
	return func(o *options) { o.kgoOpts = append(o.kgoOpts, opts...) }
}
