package runtime

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the runtime's Prometheus metrics. A nil *Metrics records nothing.
//
//	shardbridge_pool_used_records            gauge    records held in the pending pool
//	shardbridge_pool_limit_records           gauge    pool.max_pending_records
//	shardbridge_pool_used_bytes              gauge    bytes held in the pending pool
//	shardbridge_pool_limit_bytes             gauge    pool.max_pending_bytes
//	shardbridge_pool_waiters                 gauge    readers blocked on the pool now
//	shardbridge_pool_waits_total             counter  waits that had to block
//	shardbridge_pool_wait_seconds_total      counter  time spent blocked on the pool
//	shardbridge_decode_budget_used_bytes     gauge    bytes of the decode budget held (RegisterDecodeBudget)
//	shardbridge_decode_budget_limit_bytes    gauge    decode_budget
//	shardbridge_decode_budget_reads          gauge    reads being decoded now
//	shardbridge_decode_budget_waiters        gauge    readers waiting for the decode budget now
//	shardbridge_decode_budget_waits_total    counter  decode budget waits that had to block
//	shardbridge_decode_budget_wait_seconds_total counter time spent waiting for the decode budget
//	shardbridge_records_emitted_total        counter  records a source handed to the pipeline {connector}
//	shardbridge_bytes_emitted_total          counter  their bytes {connector}
//	shardbridge_records_acked_total          counter  records the sink confirmed durable (or skipped/dead-lettered) {connector}
//	shardbridge_records_failed_total         counter  records that failed under errors.policy fail {connector}
//	shardbridge_records_skipped_total        counter  records dropped by errors.policy skip {connector}
//	shardbridge_records_dead_lettered_total  counter  records written to the dead-letter topic {connector}
//	shardbridge_checkpoint_commits_total     counter  checkpoint writes by result {connector, result}
//	shardbridge_checkpoint_commit_seconds    histogram checkpoint write latency {connector}
//	shardbridge_group_handover_seconds       histogram start of a rebalance to a moved shard's reader starting here {connector}
//	shardbridge_transactions_total           counter  exactly-once transactions ended, by result: committed, aborted, fenced {connector, result}
//	shardbridge_rewinds_total                counter  rewinds to the last committed checkpoints after an aborted transaction {connector}
type Metrics struct {
	emittedRecords *prometheus.CounterVec
	emittedBytes   *prometheus.CounterVec
	ackedRecords   *prometheus.CounterVec
	failedRecords  *prometheus.CounterVec
	skippedRecords *prometheus.CounterVec
	dlqRecords     *prometheus.CounterVec
	commits        *prometheus.CounterVec
	commitSeconds  *prometheus.HistogramVec
	handovers      *prometheus.HistogramVec
	transactions   *prometheus.CounterVec
	rewinds        *prometheus.CounterVec
}

// NewMetrics registers the runtime's metrics, including those of pool, on reg.
func NewMetrics(reg prometheus.Registerer, pool *Pool) *Metrics {
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	m := &Metrics{
		emittedRecords: cv("shardbridge_records_emitted_total", "Records a source handed to the pipeline.", "connector"),
		emittedBytes:   cv("shardbridge_bytes_emitted_total", "Bytes of the records a source handed to the pipeline.", "connector"),
		ackedRecords:   cv("shardbridge_records_acked_total", "Records done: confirmed by the sink, skipped or dead-lettered.", "connector"),
		failedRecords:  cv("shardbridge_records_failed_total", "Records that failed under errors.policy fail.", "connector"),
		skippedRecords: cv("shardbridge_records_skipped_total", "Records dropped by errors.policy skip.", "connector"),
		dlqRecords:     cv("shardbridge_records_dead_lettered_total", "Records written to the dead-letter topic.", "connector"),
		commits:        cv("shardbridge_checkpoint_commits_total", "Checkpoint writes by result (ok, error, fenced).", "connector", "result"),
		transactions:   cv("shardbridge_transactions_total", "Exactly-once transactions ended, by result (committed, aborted, fenced).", "connector", "result"),
		rewinds:        cv("shardbridge_rewinds_total", "Rewinds to the last committed checkpoints after an aborted transaction.", "connector"),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shardbridge_checkpoint_commit_seconds", Help: "Checkpoint write latency.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"connector"}),
	}
	m.handovers = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shardbridge_group_handover_seconds",
		Help:    "From the start of the rebalance that moved a shard to this worker to its reader starting here (a crashed worker is noticed only after group.session_timeout, before this).",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
	}, []string{"connector"})
	reg.MustRegister(m.commitSeconds, m.handovers)
	if pool != nil {
		reg.MustRegister(poolCollector{pool})
	}
	return m
}

func (m *Metrics) emitted(conn string, n, bytes int64) {
	if m == nil {
		return
	}
	m.emittedRecords.WithLabelValues(conn).Add(float64(n))
	m.emittedBytes.WithLabelValues(conn).Add(float64(bytes))
}

func (m *Metrics) failed(conn string) {
	if m != nil {
		m.failedRecords.WithLabelValues(conn).Inc()
	}
}

func (m *Metrics) skipped(conn string) {
	if m != nil {
		m.skippedRecords.WithLabelValues(conn).Inc()
	}
}

func (m *Metrics) deadLettered(conn string) {
	if m != nil {
		m.dlqRecords.WithLabelValues(conn).Inc()
	}
}

func (m *Metrics) checkpointCommitted(conn string, d time.Duration) {
	if m != nil {
		m.commits.WithLabelValues(conn, "ok").Inc()
		m.commitSeconds.WithLabelValues(conn).Observe(d.Seconds())
	}
}

func (m *Metrics) checkpointFailed(conn string) {
	if m != nil {
		m.commits.WithLabelValues(conn, "error").Inc()
	}
}

// transaction counts an exactly-once transaction's end.
func (m *Metrics) transaction(conn, result string) {
	if m != nil {
		m.transactions.WithLabelValues(conn, result).Inc()
	}
}

// rewound counts a rewind.
func (m *Metrics) rewound(conn string) {
	if m != nil {
		m.rewinds.WithLabelValues(conn).Inc()
	}
}

// handover observes the time from a rebalance's start to a moved shard's reader starting.
func (m *Metrics) handover(conn string, d time.Duration) {
	if m != nil {
		m.handovers.WithLabelValues(conn).Observe(d.Seconds())
	}
}

// checkpointFenced counts a commit not written because the group did not confirm ownership.
func (m *Metrics) checkpointFenced(conn string) {
	if m != nil {
		m.commits.WithLabelValues(conn, "fenced").Inc()
	}
}

// poolCollector reads the pool's Stats at scrape time, so the hot path updates no gauge.
type poolCollector struct{ p *Pool }

var (
	poolUsedRecords  = prometheus.NewDesc("shardbridge_pool_used_records", "Records held in the pending pool.", nil, nil)
	poolLimitRecords = prometheus.NewDesc("shardbridge_pool_limit_records", "The pool's record limit (pool.max_pending_records).", nil, nil)
	poolUsedBytes    = prometheus.NewDesc("shardbridge_pool_used_bytes", "Bytes held in the pending pool.", nil, nil)
	poolLimitBytes   = prometheus.NewDesc("shardbridge_pool_limit_bytes", "The pool's byte limit (pool.max_pending_bytes).", nil, nil)
	poolWaiters      = prometheus.NewDesc("shardbridge_pool_waiters", "Readers blocked on the pool now.", nil, nil)
	poolWaits        = prometheus.NewDesc("shardbridge_pool_waits_total", "Pool waits that had to block.", nil, nil)
	poolWaitSeconds  = prometheus.NewDesc("shardbridge_pool_wait_seconds_total", "Time spent blocked on the pool.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolUsedRecords, poolLimitRecords, poolUsedBytes, poolLimitBytes, poolWaiters, poolWaits, poolWaitSeconds} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	ch <- prometheus.MustNewConstMetric(poolUsedRecords, prometheus.GaugeValue, float64(s.UsedRecords))
	ch <- prometheus.MustNewConstMetric(poolLimitRecords, prometheus.GaugeValue, float64(s.LimitRecords))
	ch <- prometheus.MustNewConstMetric(poolUsedBytes, prometheus.GaugeValue, float64(s.UsedBytes))
	ch <- prometheus.MustNewConstMetric(poolLimitBytes, prometheus.GaugeValue, float64(s.LimitBytes))
	ch <- prometheus.MustNewConstMetric(poolWaiters, prometheus.GaugeValue, float64(s.Waiters))
	ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.Waits))
	ch <- prometheus.MustNewConstMetric(poolWaitSeconds, prometheus.CounterValue, s.WaitTime.Seconds())
}

// RegisterDecodeBudget registers the metrics of the process's decode budget b on reg. They are
// read from b's Stats at scrape time.
func RegisterDecodeBudget(reg prometheus.Registerer, b *DecodeBudget) {
	reg.MustRegister(decodeBudgetCollector{b})
}

// decodeBudgetCollector reads a DecodeBudget's Stats at scrape time.
type decodeBudgetCollector struct{ b *DecodeBudget }

var (
	decodeUsedBytes   = prometheus.NewDesc("shardbridge_decode_budget_used_bytes", "Bytes of the decode budget held by reads being decoded.", nil, nil)
	decodeLimitBytes  = prometheus.NewDesc("shardbridge_decode_budget_limit_bytes", "The decode budget (decode_budget).", nil, nil)
	decodeReads       = prometheus.NewDesc("shardbridge_decode_budget_reads", "Reads (events, responses) being decoded now.", nil, nil)
	decodeWaiters     = prometheus.NewDesc("shardbridge_decode_budget_waiters", "Readers waiting for the decode budget now.", nil, nil)
	decodeWaits       = prometheus.NewDesc("shardbridge_decode_budget_waits_total", "Decode budget waits that had to block.", nil, nil)
	decodeWaitSeconds = prometheus.NewDesc("shardbridge_decode_budget_wait_seconds_total", "Time spent waiting for the decode budget.", nil, nil)
)

func (c decodeBudgetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{decodeUsedBytes, decodeLimitBytes, decodeReads, decodeWaiters, decodeWaits, decodeWaitSeconds} {
		ch <- d
	}
}

func (c decodeBudgetCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.b.Stats()
	ch <- prometheus.MustNewConstMetric(decodeUsedBytes, prometheus.GaugeValue, float64(s.UsedBytes))
	ch <- prometheus.MustNewConstMetric(decodeLimitBytes, prometheus.GaugeValue, float64(s.LimitBytes))
	ch <- prometheus.MustNewConstMetric(decodeReads, prometheus.GaugeValue, float64(s.Reads))
	ch <- prometheus.MustNewConstMetric(decodeWaiters, prometheus.GaugeValue, float64(s.Waiters))
	ch <- prometheus.MustNewConstMetric(decodeWaits, prometheus.CounterValue, float64(s.Waits))
	ch <- prometheus.MustNewConstMetric(decodeWaitSeconds, prometheus.CounterValue, s.WaitTime.Seconds())
}
