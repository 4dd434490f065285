package api

import (
	"time"

	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/store"
)

// Data reads what the API and the web UI show, from the store and the
// controller. The web UI uses it too, so both show the same thing.
type Data struct {
	Store      store.Store
	Controller *controller.Controller
}

// ClusterView is a cluster as the API shows it.
type ClusterView struct {
	store.Cluster
	// InService counts the nodes in service.
	InService int `json:"in_service"`
	// Nodes counts the nodes by state (terminated ones excluded).
	Nodes        map[store.NodeState]int `json:"nodes"`
	Provider     string                  `json:"provider"`
	LoadBalancer string                  `json:"load_balancer,omitempty"`
	Counters     []string                `json:"counters"`
	Triggers     []string                `json:"triggers"`
}

// ClusterDetail adds the live parts to ClusterView.
type ClusterDetail struct {
	ClusterView
	NodeList     []store.Node                         `json:"node_list"`
	Readings     map[string]controller.CounterReading `json:"readings"`
	TriggerState []controller.TriggerStatus           `json:"trigger_states"`
	Recent       []store.Activity                     `json:"recent_activities"`
}

// NodeDetail is a node with its life.
type NodeDetail struct {
	store.Node
	Events []store.NodeEvent `json:"events"`
	// Counters are the latest reading of each node-scoped counter: a value,
	// or the error that says why there is none.
	Counters []controller.NodeReading `json:"counters"`
	// Agent is the node agent's last heartbeat, if it ever sent one.
	Agent *AgentView `json:"agent,omitempty"`
}

// AgentView is the last heartbeat of a node's agent.
type AgentView struct {
	LastHeartbeat time.Time                     `json:"last_heartbeat"`
	Counters      map[string]store.AgentReading `json:"counters"`
}

// CounterSeries is a counter's recent samples.
type CounterSeries struct {
	Cluster   string         `json:"cluster"`
	Counter   string         `json:"counter"`
	Type      string         `json:"type"`
	Scope     string         `json:"scope"`
	Aggregate string         `json:"aggregate"`
	Interval  string         `json:"interval"`
	Samples   []store.Sample `json:"samples"`
	// Errors are the failed readings among Samples.
	Errors []store.Sample `json:"errors"`
}

// ActivityDetail is an activity with its steps.
type ActivityDetail struct {
	store.Activity
	Steps []store.Activity `json:"steps"`
}

func lbAddress(cc *config.Cluster) string {
	p := cc.LoadBalancer.Params
	if p == nil {
		return ""
	}
	for _, key := range []string{"listen", "backend"} {
		for i := 0; i+1 < len(p.Content); i += 2 {
			if p.Content[i].Value == key {
				return p.Content[i+1].Value
			}
		}
	}
	return ""
}

// ClusterConfig returns a configured cluster's definition, or an error
// wrapping store.ErrNotFound.
func (d Data) ClusterConfig(name string) (*config.Cluster, error) {
	for _, cc := range d.Controller.Clusters() {
		if cc.Name == name {
			return cc, nil
		}
	}
	return nil, fmt.Errorf("cluster %q: %w", name, store.ErrNotFound)
}

// liveStates are the states of the nodes that are not terminated.
var liveStates = []store.NodeState{store.NodePending, store.NodeProvisioning, store.NodeConfiguring,
	store.NodeInService, store.NodeDraining, store.NodeFailed}

// Clusters returns every configured cluster, in configuration order, with
// three queries whatever their number.
func (d Data) Clusters(ctx context.Context) ([]ClusterView, error) {
	recs, err := d.Store.ClusterList(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]store.Cluster{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	nodes, err := d.Store.NodeList(ctx, store.NodeFilter{States: liveStates})
	if err != nil {
		return nil, err
	}
	byCluster := map[string][]store.Node{}
	for _, n := range nodes {
		byCluster[n.Cluster] = append(byCluster[n.Cluster], n)
	}
	out := []ClusterView{}
	for _, cc := range d.Controller.Clusters() {
		rec, ok := byName[cc.Name]
		if !ok {
			return nil, fmt.Errorf("cluster %q: %w", cc.Name, store.ErrNotFound)
		}
		out = append(out, view(cc, rec, byCluster[cc.Name]))
	}
	return out, nil
}

// Cluster returns one cluster with its live nodes, latest readings, triggers
// and its recent activities (at most recent of them).
func (d Data) Cluster(ctx context.Context, name string, recent int) (ClusterDetail, error) {
	cc, err := d.ClusterConfig(name)
	if err != nil {
		return ClusterDetail{}, err
	}
	rec, err := d.Store.ClusterGet(ctx, cc.Name)
	if err != nil {
		return ClusterDetail{}, err
	}
	nodes, err := d.Store.NodeList(ctx, store.NodeFilter{Cluster: cc.Name, States: liveStates})
	if err != nil {
		return ClusterDetail{}, err
	}
	out := ClusterDetail{ClusterView: view(cc, rec, nodes), NodeList: nodes, Readings: map[string]controller.CounterReading{},
		TriggerState: d.Controller.Triggers(cc.Name)}
	if out.NodeList == nil {
		out.NodeList = []store.Node{}
	}
	if out.TriggerState == nil {
		out.TriggerState = []controller.TriggerStatus{}
	}
	for _, k := range cc.Counters {
		if rd, ok := d.Controller.Latest(cc.Name, k.Name); ok {
			out.Readings[k.Name] = rd
		}
	}
	out.Recent, err = d.Store.ActivityList(ctx, store.ActivityFilter{Cluster: cc.Name, Limit: recent})
	if out.Recent == nil {
		out.Recent = []store.Activity{}
	}
	return out, err
}

// view summarises a cluster from its stored record and its live nodes.
func view(cc *config.Cluster, rec store.Cluster, nodes []store.Node) ClusterView {
	v := ClusterView{Cluster: rec, Nodes: map[store.NodeState]int{}, Provider: cc.Provider.Type,
		Counters: []string{}, Triggers: []string{}}
	for _, n := range nodes {
		v.Nodes[n.State]++
		if n.State == store.NodeInService {
			v.InService++
		}
	}
	if cc.LoadBalancer != nil {
		v.LoadBalancer = cc.LoadBalancer.Type
		if addr := lbAddress(cc); addr != "" {
			v.LoadBalancer += " " + addr
		}
	}
	for _, k := range cc.Counters {
		v.Counters = append(v.Counters, k.Name)
	}
	for _, t := range cc.Triggers {
		v.Triggers = append(v.Triggers, t.Name)
	}
	return v
}

// Node returns a node of a cluster with its state changes.
func (d Data) Node(ctx context.Context, clusterName, nodeID string) (NodeDetail, error) {
	n, err := d.Store.NodeGet(ctx, nodeID)
	if err != nil {
		return NodeDetail{}, err
	}
	if n.Cluster != clusterName {
		return NodeDetail{}, fmt.Errorf("node %q of cluster %q: %w", n.ID, clusterName, store.ErrNotFound)
	}
	ev, err := d.Store.NodeEvents(ctx, n.ID)
	if err != nil {
		return NodeDetail{}, err
	}
	if ev == nil {
		ev = []store.NodeEvent{}
	}
	out := NodeDetail{Node: n, Events: ev, Counters: []controller.NodeReading{}}
	if _, err := d.ClusterConfig(n.Cluster); err == nil {
		if out.Counters, err = d.Controller.NodeReadings(ctx, n); err != nil {
			return NodeDetail{}, err
		}
	}
	if rep, ok := d.Controller.AgentReport(n.ID); ok {
		out.Agent = &AgentView{LastHeartbeat: rep.ReceivedAt, Counters: rep.Counters}
	}
	return out, nil
}

// Series returns a counter's samples selected by f (its Cluster and Counter
// must name a configured counter).
func (d Data) Series(ctx context.Context, f store.SampleFilter) (CounterSeries, error) {
	cc, err := d.ClusterConfig(f.Cluster)
	if err != nil {
		return CounterSeries{}, err
	}
	k := cc.Counter(f.Counter)
	if k == nil {
		return CounterSeries{}, fmt.Errorf("cluster %q has no counter %q: %w", cc.Name, f.Counter, store.ErrNotFound)
	}
	samples, err := d.Store.SampleList(ctx, f)
	if err != nil {
		return CounterSeries{}, err
	}
	out := CounterSeries{Cluster: cc.Name, Counter: k.Name, Type: k.Type, Scope: string(k.Scope),
		Aggregate: k.Aggregate, Interval: k.Interval.String(), Samples: samples, Errors: []store.Sample{}}
	if out.Samples == nil {
		out.Samples = []store.Sample{}
	}
	for _, s := range samples {
		if !s.OK() {
			out.Errors = append(out.Errors, s)
		}
	}
	return out, nil
}

// Activity returns an activity with its steps, in the order they run.
func (d Data) Activity(ctx context.Context, id int64) (ActivityDetail, error) {
	act, err := d.Store.ActivityGet(ctx, id)
	if err != nil {
		return ActivityDetail{}, err
	}
	steps, err := d.Store.ActivityList(ctx, store.ActivityFilter{ParentID: id, Limit: 1000})
	if steps == nil {
		steps = []store.Activity{}
	}
	// The store lists newest first; steps read in the order they run.
	slices.SortStableFunc(steps, func(x, y store.Activity) int {
		return cmp.Or(cmp.Compare(x.Step, y.Step), cmp.Compare(x.ID, y.ID))
	})
	return ActivityDetail{Activity: act, Steps: steps}, err
}
