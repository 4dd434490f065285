package controller

import (
	"context"
	"fmt"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/perfdata"
	"github.com/goscaler/goscaler/internal/store"
)

// CounterGraph answers a graph query on a counter of a cluster (q's Cluster,
// Counter and Interval are filled in).
func (c *Controller) CounterGraph(ctx context.Context, clusterName, counterName string, q perfdata.Query) (perfdata.Result, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return perfdata.Result{}, err
	}
	k := cl.cfg.Counter(counterName)
	if k == nil {
		return perfdata.Result{}, fmt.Errorf("cluster %q has no counter %q: %w", clusterName, counterName, store.ErrNotFound)
	}
	q.Cluster, q.Counter, q.Interval = clusterName, counterName, k.Interval.D()
	if k.Scope == counter.ScopeCluster {
		q.AggregateOnly = true
	}
	return c.perf.Query(ctx, q)
}

// NodeReading is the latest reading of one counter on one node.
type NodeReading struct {
	Counter string `json:"counter"`
	// Sample is the newest reading: a value, or an error saying why there is
	// none ("not read yet", with a zero At, if the node was never read).
	Sample store.Sample `json:"sample"`
}

// NodeReadings returns the latest reading of each node-scoped counter of
// node n's cluster, from the store (so that every server answers the same).
func (c *Controller) NodeReadings(ctx context.Context, n store.Node) ([]NodeReading, error) {
	cl, err := c.cluster(n.Cluster)
	if err != nil {
		return nil, err
	}
	out := []NodeReading{}
	for _, k := range cl.cfg.Counters {
		if k.Scope != counter.ScopeNode {
			continue
		}
		ss, err := c.st.SampleList(ctx, store.SampleFilter{Cluster: n.Cluster, Counter: k.Name, Nodes: []string{n.ID}, Limit: 1})
		if err != nil {
			return nil, err
		}
		r := NodeReading{Counter: k.Name, Sample: store.Sample{Cluster: n.Cluster, Counter: k.Name, Node: n.ID, Err: "not read yet"}}
		if len(ss) > 0 {
			r.Sample = ss[0]
		}
		out = append(out, r)
	}
	return out, nil
}

// AgentReport returns the latest report of node's agent, if it ever reported.
func (c *Controller) AgentReport(node string) (store.AgentReport, bool) {
	return c.agents.Latest(node)
}
