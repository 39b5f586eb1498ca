package group

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the group's metrics, registered once per process on the registry given to
// NewMetrics and shared by every connector's Group:
//
//	shardbridge_group_rebalances_total  counter  rebalances this worker took part in {connector}
//	shardbridge_group_owned_shards      gauge    open shards this worker owns now {connector, worker}
//	shardbridge_group_generation        gauge    the group generation this worker is in {connector, worker}
type Metrics struct {
	rebalances *prometheus.CounterVec

	mu     sync.Mutex // mu guards groups
	groups []*Group
}

// NewMetrics registers the group metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shardbridge_group_rebalances_total",
			Help: "Rebalances of the connector's group that this worker took part in.",
		}, []string{"connector"}),
	}
	reg.MustRegister(m.rebalances, collector{m})
	return m
}

func (m *Metrics) register(g *Group) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.groups = append(m.groups, g)
	m.mu.Unlock()
}

func (m *Metrics) rebalanced(connector string) {
	if m != nil {
		m.rebalances.WithLabelValues(connector).Inc()
	}
}

var (
	ownedDesc = prometheus.NewDesc("shardbridge_group_owned_shards",
		"Open shards of the connector that this worker owns now.", []string{"connector", "worker"}, nil)
	generationDesc = prometheus.NewDesc("shardbridge_group_generation",
		"The group generation this worker is a member of (-1 when not in the group).", []string{"connector", "worker"}, nil)
)

// collector reads each Group's state at scrape time.
type collector struct{ m *Metrics }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ownedDesc
	ch <- generationDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	groups := append([]*Group(nil), c.m.groups...)
	c.m.mu.Unlock()
	for _, g := range groups {
		owned, gen := g.ownedOpen()
		ch <- prometheus.MustNewConstMetric(ownedDesc, prometheus.GaugeValue, float64(owned), g.o.Connector, g.o.WorkerID)
		ch <- prometheus.MustNewConstMetric(generationDesc, prometheus.GaugeValue, float64(gen), g.o.Connector, g.o.WorkerID)
	}
}

// ownedOpen returns how many of the open shards this worker owns, and its generation.
func (g *Group) ownedOpen() (int, int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cl == nil || g.partitions.Load() <= 0 {
		return 0, -1
	}
	n := 0
	for s := range g.open {
		if g.owned[g.Slot(s)] {
			n++
		}
	}
	return n, g.gen
}
