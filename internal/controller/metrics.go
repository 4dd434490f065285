package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/goscaler/goscaler/internal/store"
)

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	Registry       *prometheus.Registry
	clusterSize    *prometheus.GaugeVec
	clusterBounds  *prometheus.GaugeVec
	counterValue   *prometheus.GaugeVec
	counterErrors  *prometheus.CounterVec
	collection     *prometheus.HistogramVec
	firings        *prometheus.CounterVec
	actionDuration *prometheus.HistogramVec
	actionFailures *prometheus.CounterVec
	nodeFailures   *prometheus.CounterVec
}

// NewMetrics registers the metrics on a new registry (with the Go and process collectors).
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		clusterSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "goscaler_cluster_nodes",
			Help: "Nodes of a cluster by state."}, []string{"cluster", "state"}),
		clusterBounds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "goscaler_cluster_size",
			Help: "A cluster's min, max and desired size."}, []string{"cluster", "bound"}),
		counterValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "goscaler_counter_value",
			Help: "The newest aggregate value of a counter."}, []string{"cluster", "counter"}),
		counterErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goscaler_counter_errors_total",
			Help: "Counter readings that failed (no number, timeout, refused, …)."}, []string{"cluster", "counter"}),
		collection: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "goscaler_collection_seconds",
			Help:    "Time from a counter's tick to its readings being stored and its triggers evaluated.",
			Buckets: prometheus.ExponentialBuckets(0.001, 3, 11)}, []string{"cluster", "counter"}),
		firings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goscaler_trigger_firings_total",
			Help: "Times a trigger fired, by hand or by its condition."}, []string{"cluster", "trigger"}),
		actionDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "goscaler_action_duration_seconds",
			Help: "How long action steps ran.", Buckets: prometheus.ExponentialBuckets(0.01, 3, 10)}, []string{"kind"}),
		actionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goscaler_action_failures_total",
			Help: "Action attempts that failed."}, []string{"kind"}),
		nodeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "goscaler_node_failures_total",
			Help: "Nodes that died or failed their health check and were replaced."}, []string{"cluster"}),
	}
	m.Registry.MustRegister(m.clusterSize, m.clusterBounds, m.counterValue, m.counterErrors, m.collection, m.firings,
		m.actionDuration, m.actionFailures, m.nodeFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observeCluster(c store.Cluster, nodes []store.Node) {
	counts := map[store.NodeState]int{}
	for _, n := range nodes {
		counts[n.State]++
	}
	for _, s := range []store.NodeState{store.NodePending, store.NodeProvisioning, store.NodeConfiguring,
		store.NodeInService, store.NodeDraining, store.NodeFailed} {
		m.clusterSize.WithLabelValues(c.Name, string(s)).Set(float64(counts[s]))
	}
	m.clusterBounds.WithLabelValues(c.Name, "min").Set(float64(c.Min))
	m.clusterBounds.WithLabelValues(c.Name, "max").Set(float64(c.Max))
	m.clusterBounds.WithLabelValues(c.Name, "desired").Set(float64(c.Desired))
}

func (m *Metrics) observeSample(s store.Sample) {
	if s.OK() {
		m.counterValue.WithLabelValues(s.Cluster, s.Counter).Set(s.Value)
	}
}
