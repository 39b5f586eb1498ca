package kafka

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sinkMetrics are the sink's collectors; the connector label is curried in.
type sinkMetrics struct {
	records  prometheus.Counter
	bytes    prometheus.Counter
	latency  prometheus.Observer
	inflight prometheus.Gauge
	errors   *prometheus.CounterVec // class
	dlq      prometheus.Counter
	created  prometheus.Counter // topics the sink created
}

var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// register registers c with reg, or returns the collector already registered under the same
// description (two connectors in one process share the vectors and differ by label).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A conflicting registration is a programming error in the caller's wiring; keep
		// working with an unregistered collector rather than fail the connector.
	}
	return c
}

func newSinkMetrics(reg prometheus.Registerer, connector string) *sinkMetrics {
	l := prometheus.Labels{"connector": connector}
	records := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardbridge_kafka_records_produced_total",
		Help: "Records Kafka acknowledged.",
	}, []string{"connector"}))
	bytes := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardbridge_kafka_bytes_produced_total",
		Help: "Key, value and header bytes of records Kafka acknowledged.",
	}, []string{"connector"}))
	latency := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shardbridge_kafka_produce_latency_seconds",
		Help:    "Time from Write to Kafka's acknowledgement (or final failure) of a record.",
		Buckets: latencyBuckets,
	}, []string{"connector"}))
	inflight := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shardbridge_kafka_inflight_records",
		Help: "Records written to the producer and not yet acknowledged or failed.",
	}, []string{"connector"}))
	errs := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardbridge_kafka_produce_errors_total",
		Help: "Records that failed for good, by class (too_large, timeout, auth, retryable, fatal, canceled).",
	}, []string{"connector", "class"}))
	dlq := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardbridge_kafka_dead_letters_total",
		Help: "Records written to the dead-letter topic.",
	}, []string{"connector"}))
	created := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shardbridge_kafka_topics_created_total",
		Help: "Topics the sink created (destination and dead-letter topics; sink.kafka.topic_creation).",
	}, []string{"connector"}))
	return &sinkMetrics{
		records:  records.With(l),
		bytes:    bytes.With(l),
		latency:  latency.With(l),
		inflight: inflight.With(l),
		errors:   errs.MustCurryWith(l),
		dlq:      dlq.With(l),
		created:  created.With(l),
	}
}

// storeMetrics are the checkpoint store's collectors.
type storeMetrics struct {
	commitLatency *prometheus.HistogramVec // connector
	age           *ageCollector
}

func newStoreMetrics(reg prometheus.Registerer, now func() time.Time) *storeMetrics {
	return &storeMetrics{
		commitLatency: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardbridge_checkpoint_commit_latency_seconds",
			Help:    "Time for a checkpoint commit to be acknowledged by Kafka.",
			Buckets: latencyBuckets,
		}, []string{"connector"})),
		age: register(reg, newAgeCollector(now)),
	}
}

// ageCollector exports shardbridge_checkpoint_age_seconds, the seconds since each shard's last
// committed checkpoint, computed at scrape time so it grows while commits stall.
type ageCollector struct {
	desc *prometheus.Desc
	now  func() time.Time

	mu   sync.Mutex // mu guards last
	last map[ageKey]time.Time
}

type ageKey struct{ connector, shard string }

func newAgeCollector(now func() time.Time) *ageCollector {
	return &ageCollector{
		desc: prometheus.NewDesc("shardbridge_checkpoint_age_seconds",
			"Seconds since the shard's checkpoint was last committed.", []string{"connector", "shard"}, nil),
		now:  now,
		last: make(map[ageKey]time.Time),
	}
}

func (a *ageCollector) committed(connector, shard string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last[ageKey{connector, shard}] = at
}

func (a *ageCollector) forget(connector, shard string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.last, ageKey{connector, shard})
}

func (a *ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *ageCollector) Collect(ch chan<- prometheus.Metric) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, t := range a.last {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, now.Sub(t).Seconds(), k.connector, k.shard)
	}
}
