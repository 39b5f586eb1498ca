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
		reg.MustRegister(statsCollector{stats: pool.Stats, metrics: poolMetrics})
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

// statsCollector reads a Pool's Stats at scrape time, so the hot path updates no gauge. The
// process's pending pool and its decode budget (a Pool too) are each one.
type statsCollector struct {
	stats   func() PoolStats
	metrics []statMetric
}

// statMetric is one metric a statsCollector reads from the Stats.
type statMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(PoolStats) float64
}

func gaugeOf(name, help string, value func(PoolStats) float64) statMetric {
	return statMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, value}
}

func counterOf(name, help string, value func(PoolStats) float64) statMetric {
	return statMetric{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, value}
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(s))
	}
}

func usedRecords(s PoolStats) float64  { return float64(s.UsedRecords) }
func limitRecords(s PoolStats) float64 { return float64(s.LimitRecords) }
func usedBytes(s PoolStats) float64    { return float64(s.UsedBytes) }
func limitBytes(s PoolStats) float64   { return float64(s.LimitBytes) }
func waiters(s PoolStats) float64      { return float64(s.Waiters) }
func waits(s PoolStats) float64        { return float64(s.Waits) }
func waitSeconds(s PoolStats) float64  { return s.WaitTime.Seconds() }

// poolMetrics are the pending pool's.
var poolMetrics = []statMetric{
	gaugeOf("shardbridge_pool_used_records", "Records held in the pending pool.", usedRecords),
	gaugeOf("shardbridge_pool_limit_records", "The pool's record limit (pool.max_pending_records).", limitRecords),
	gaugeOf("shardbridge_pool_used_bytes", "Bytes held in the pending pool.", usedBytes),
	gaugeOf("shardbridge_pool_limit_bytes", "The pool's byte limit (pool.max_pending_bytes).", limitBytes),
	gaugeOf("shardbridge_pool_waiters", "Readers blocked on the pool now.", waiters),
	counterOf("shardbridge_pool_waits_total", "Pool waits that had to block.", waits),
	counterOf("shardbridge_pool_wait_seconds_total", "Time spent blocked on the pool.", waitSeconds),
}

// decodeBudgetMetrics are the decode budget's; its reads are counted as the Pool's records.
var decodeBudgetMetrics = []statMetric{
	gaugeOf("shardbridge_decode_budget_used_bytes", "Bytes of the decode budget held by reads being decoded.", usedBytes),
	gaugeOf("shardbridge_decode_budget_limit_bytes", "The decode budget (decode_budget).", limitBytes),
	gaugeOf("shardbridge_decode_budget_reads", "Reads (events, responses) being decoded now.", usedRecords),
	gaugeOf("shardbridge_decode_budget_waiters", "Readers waiting for the decode budget now.", waiters),
	counterOf("shardbridge_decode_budget_waits_total", "Decode budget waits that had to block.", waits),
	counterOf("shardbridge_decode_budget_wait_seconds_total", "Time spent waiting for the decode budget.", waitSeconds),
}

// RegisterDecodeBudget registers the metrics of the process's decode budget b on reg. They are
// read from b's Stats at scrape time.
func RegisterDecodeBudget(reg prometheus.Registerer, b *DecodeBudget) {
	reg.MustRegister(statsCollector{stats: b.p.Stats, metrics: decodeBudgetMetrics})
}
