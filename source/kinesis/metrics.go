package kinesis

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the source's Prometheus collectors. Several connectors may share one Registerer:
// a collector already registered by another source is reused, and each source writes only its
// own connector label.
type metrics struct {
	millisBehind   *prometheus.GaugeVec
	recordsRead    *prometheus.CounterVec
	bytesRead      *prometheus.CounterVec
	subsOpened     *prometheus.CounterVec
	subsEnded      *prometheus.CounterVec
	backoffSeconds *prometheus.HistogramVec
	decodeWait     *prometheus.CounterVec
	activeShards   *prometheus.GaugeVec
	kplAggregates  *prometheus.CounterVec
	kplUserRecords *prometheus.CounterVec
	kplCorrupt     *prometheus.CounterVec
	parentWait     *parentWaitCollector
}

var shardLabels = []string{"connector", "shard"}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry() // nothing scrapes it; keeps the code free of nil checks
	}
	m := &metrics{
		millisBehind: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardbridge_kinesis_millis_behind_latest",
			Help: "How far the shard reader is behind the tip of the shard, as Kinesis reports it.",
		}, shardLabels)),
		recordsRead: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_records_read_total",
			Help: "Records read from Kinesis and emitted (user records after KPL de-aggregation).",
		}, shardLabels)),
		bytesRead: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_bytes_read_total",
			Help: "Bytes of record data read from Kinesis.",
		}, shardLabels)),
		subsOpened: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_subscriptions_opened_total",
			Help: "SubscribeToShard subscriptions opened.",
		}, shardLabels)),
		subsEnded: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_subscriptions_ended_total",
			Help: "SubscribeToShard subscriptions ended, by reason: expired, shard_end, idle, backpressure_timeout, decode_budget_timeout, closed_quiet, empty, canceled, or an error code.",
		}, append(shardLabels, "reason"))),
		backoffSeconds: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shardbridge_kinesis_resubscribe_backoff_seconds",
			Help:    "Waits before a SubscribeToShard or GetRecords retry.",
			Buckets: []float64{0.1, 0.3, 0.6, 1.2, 2.5, 5, 10},
		}, shardLabels)),
		decodeWait: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_decode_wait_seconds_total",
			Help: "Time the shard reader waited for its share of the decode budget before the next event or GetRecords response could be read.",
		}, shardLabels)),
		activeShards: register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shardbridge_kinesis_active_shards",
			Help: "Shards being read now (not waiting on a parent, not ended).",
		}, []string{"connector"})),
		kplAggregates: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_kpl_aggregates_total",
			Help: "KPL aggregated records de-aggregated.",
		}, shardLabels)),
		kplUserRecords: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_kpl_user_records_total",
			Help: "User records taken out of KPL aggregates.",
		}, shardLabels)),
		kplCorrupt: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_kinesis_kpl_corrupt_total",
			Help: "Records with the KPL magic that failed to decode; each passed through raw.",
		}, shardLabels)),
		parentWait: register(reg, &parentWaitCollector{
			desc: prometheus.NewDesc("shardbridge_kinesis_parent_wait_seconds",
				"Seconds the shard has waited for its parents' end checkpoints before it can be read; 0 when it does not wait.",
				shardLabels, nil),
			sources: map[string]*Source{},
		}),
	}
	return m
}

// parentWaitCollector exposes shardbridge_kinesis_parent_wait_seconds: one series per shard of
// every running source, computed when scraped from the source's clock, so it grows while a child
// waits even though nothing else happens. A shard that does not wait (any more) reports 0; the
// series go when the source's Run returns. Sources that share a Registerer share it.
type parentWaitCollector struct {
	desc *prometheus.Desc

	mu      sync.Mutex
	sources map[string]*Source // by connector; mu guards
}

func (c *parentWaitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *parentWaitCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	srcs := make([]*Source, 0, len(c.sources))
	for _, s := range c.sources {
		srcs = append(srcs, s)
	}
	c.mu.Unlock()
	for _, s := range srcs {
		for shard, w := range s.parentWaits() {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, w.Seconds(), s.connector, shard)
		}
	}
}

// add makes s report its shards. A connector's series come from one source only (a restarted
// connector's new one), so a scrape never sees the same series twice.
func (c *parentWaitCollector) add(s *Source) {
	c.mu.Lock()
	c.sources[s.connector] = s
	c.mu.Unlock()
}

func (c *parentWaitCollector) remove(s *Source) {
	c.mu.Lock()
	if c.sources[s.connector] == s {
		delete(c.sources, s.connector)
	}
	c.mu.Unlock()
}

// register registers c, or returns the equal collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex
			}
		}
		// A different collector under the same name is a programming error of the binary.
		panic("kinesis: register metrics: " + err.Error())
	}
	return c
}

// shardMetrics are one shard's curried collectors.
type shardMetrics struct {
	millisBehind   prometheus.Gauge
	recordsRead    prometheus.Counter
	bytesRead      prometheus.Counter
	subsOpened     prometheus.Counter
	subsEnded      *prometheus.CounterVec // by reason
	backoffSeconds prometheus.Observer
	decodeWait     prometheus.Counter
	kplAggregates  prometheus.Counter
	kplUserRecords prometheus.Counter
	kplCorrupt     prometheus.Counter
}

func (m *metrics) shard(connector, shard string) *shardMetrics {
	l := prometheus.Labels{"connector": connector, "shard": shard}
	return &shardMetrics{
		millisBehind:   m.millisBehind.With(l),
		recordsRead:    m.recordsRead.With(l),
		bytesRead:      m.bytesRead.With(l),
		subsOpened:     m.subsOpened.With(l),
		subsEnded:      m.subsEnded.MustCurryWith(l),
		backoffSeconds: m.backoffSeconds.With(l),
		decodeWait:     m.decodeWait.With(l),
		kplAggregates:  m.kplAggregates.With(l),
		kplUserRecords: m.kplUserRecords.With(l),
		kplCorrupt:     m.kplCorrupt.With(l),
	}
}

func (sm *shardMetrics) ended(reason string) { sm.subsEnded.WithLabelValues(reason).Inc() }
