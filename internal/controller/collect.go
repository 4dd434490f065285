package controller

import (
	"context"
	"fmt"
	"maps"
	"math"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/store"
)

// collectLoop reads one counter every interval, stores the samples and feeds
// the triggers that watch it.
func (c *Controller) collectLoop(ctx context.Context, cl *cluster, k *config.Counter) {
	t := time.NewTicker(k.Interval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.collectOnce(ctx, cl, k)
	}
}

// nodeView is what the collectors, health checks and heartbeat checks know
// of a cluster's in-service nodes: listed once per reconcile tick, not once
// per counter per interval.
type nodeView struct {
	at    time.Time    // when it was listed (wall clock); zero: stale
	nodes []store.Node // in service, maintenance included, oldest first
	// serving are the nodes in service and not in maintenance, and
	// targets their counter targets (same order).
	serving []store.Node
	targets []counter.Target
}

// setView replaces the cluster's node view with the in-service nodes among
// nodes (which may hold nodes in any state). The targets of nodes that did not
// change are reused.
func (c *Controller) setView(cl *cluster, nodes []store.Node, at time.Time) {
	cl.viewMu.Lock()
	defer cl.viewMu.Unlock()
	v := nodeView{at: at}
	cache := make(map[string]counter.Target, len(cl.view.targets))
	for _, n := range nodes {
		if n.State != store.NodeInService {
			continue
		}
		v.nodes = append(v.nodes, n)
		if n.Maintenance {
			continue
		}
		t, ok := cl.targets[n.ID]
		if !ok || t.Address != n.Address || !maps.Equal(t.Meta, n.Meta) {
			t = counter.Target{Cluster: cl.cfg.Name, NodeID: n.ID, Address: n.Address, Vars: nodeVars(cl, n), Meta: n.Meta}
		}
		cache[n.ID] = t
		v.serving = append(v.serving, n)
		v.targets = append(v.targets, t)
	}
	cl.view, cl.targets = v, cache
}

// invalidateView makes the next reader list the cluster's nodes again (a
// node changed state).
func (c *Controller) invalidateView(clusterName string) {
	cl, ok := c.clusters[clusterName]
	if !ok {
		return
	}
	cl.viewMu.Lock()
	cl.view.at = time.Time{}
	cl.viewMu.Unlock()
}

// currentView returns the cluster's node view, from memory if it is at most one
// tick old, listed from the store otherwise.
func (c *Controller) currentView(ctx context.Context, cl *cluster) (nodeView, error) {
	cl.viewMu.Lock()
	v := cl.view
	cl.viewMu.Unlock()
	if !v.at.IsZero() && time.Since(v.at) <= c.opts.Config.Server.Tick.D() {
		return v, nil
	}
	at := time.Now()
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: cl.cfg.Name, States: []store.NodeState{store.NodeInService}})
	if err != nil {
		return nodeView{}, err
	}
	c.setView(cl, nodes, at)
	cl.viewMu.Lock()
	defer cl.viewMu.Unlock()
	return cl.view, nil
}

// inService returns the cluster's in-service nodes (maintenance included).
func (c *Controller) inService(ctx context.Context, cl *cluster) ([]store.Node, error) {
	v, err := c.currentView(ctx, cl)
	return v.nodes, err
}

// readable returns the nodes a node-scoped counter reads (in service, not in
// maintenance) and their counter targets, in the same order.
func (c *Controller) readable(ctx context.Context, cl *cluster) ([]store.Node, []counter.Target, error) {
	v, err := c.currentView(ctx, cl)
	return v.serving, v.targets, err
}

// collectOnce reads the counter, records the samples and evaluates triggers
// and policies. Node readings run concurrently, at most
// server.collect_concurrency at once over every collection of the controller.
func (c *Controller) collectOnce(ctx context.Context, cl *cluster, k *config.Counter) {
	now, start := c.clock.Now(), time.Now()
	src := cl.sources[k.Name]
	var nodeSamples []store.Sample
	var agg store.Sample
	// The nodes a node-scoped counter reads (in service, not in
	// maintenance); their number is a target's InService (for "per node"
	// values).
	serving, targets, err := c.readable(ctx, cl)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("listing nodes for counters failed", "cluster", cl.cfg.Name, "err", err)
		}
		return
	}
	// servingNodes counts the nodes behind a node-scoped reading (0 for a
	// cluster counter).
	servingNodes := 0
	if k.Scope == counter.ScopeCluster {
		agg = c.read(ctx, cl, k, src, counter.Target{Cluster: cl.cfg.Name, Vars: nodeVars(cl, store.Node{}), InService: len(targets)}, now)
		agg.Reporting, agg.Expected = 0, 1
		if agg.OK() {
			agg.Reporting = 1
		}
	} else {
		servingNodes = servingCount(serving)
		// Nodes warming up are neither read nor expected.
		read := make([]counter.Target, 0, len(targets))
		for i, t := range targets {
			if !c.warming(cl, serving[i], now) {
				t.InService = len(targets)
				read = append(read, t)
			}
		}
		nodeSamples = make([]store.Sample, len(read), len(read)+1) // room for the aggregate
		var wg sync.WaitGroup
	reads:
		for i, t := range read {
			select {
			case c.readSem <- struct{}{}:
			case <-ctx.Done():
				break reads
			}
			wg.Go(func() {
				defer func() { <-c.readSem }()
				s := c.read(ctx, cl, k, src, t, now)
				s.Node = t.NodeID
				nodeSamples[i] = s
				if c.readHook != nil {
					c.readHook(time.Since(start))
				}
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		agg = aggregate(k, nodeSamples, now)
	}
	agg.Cluster, agg.Counter = cl.cfg.Name, k.Name
	all := append(nodeSamples, agg)
	if err := c.st.SampleInsert(ctx, all); err != nil && ctx.Err() == nil {
		c.log.Warn("storing samples failed", "cluster", cl.cfg.Name, "counter", k.Name, "err", err)
	}
	c.memory.Add(all, k.Interval.D())
	c.metrics.observeSample(agg)

	cl.latestMu.Lock()
	cl.latest[k.Name] = CounterReading{Aggregate: agg, Nodes: nodeSamples, serving: servingNodes}
	var due []*config.Trigger
	causes := map[string]string{}
	for _, t := range cl.cfg.Triggers {
		th := cl.triggers[t.Name]
		th.Observe(k.Name, agg)
		if ok, cause := th.Due(now); ok {
			due = append(due, t)
			causes[t.Name] = cause
		}
	}
	cl.latestMu.Unlock()
	for _, t := range due {
		c.autoFire(ctx, cl, t, causes[t.Name], now)
	}
	c.evaluatePolicies(ctx, cl)
	c.metrics.collection.WithLabelValues(cl.cfg.Name, k.Name).Observe(time.Since(start).Seconds())
	if c.collectHook != nil {
		c.collectHook(time.Since(start))
	}
}

func (c *Controller) read(ctx context.Context, cl *cluster, k *config.Counter, src counter.Source, target counter.Target, now time.Time) store.Sample {
	ctx, cancel := context.WithTimeout(ctx, k.Timeout.D())
	defer cancel()
	s := store.Sample{Cluster: cl.cfg.Name, Counter: k.Name, At: now}
	v, err := src.Read(ctx, target)
	switch {
	case err != nil:
		s.Err = err.Error()
		c.metrics.counterErrors.WithLabelValues(cl.cfg.Name, k.Name).Inc()
	case math.IsNaN(v) || math.IsInf(v, 0):
		s.Err = fmt.Sprintf("reading is %v, not a number", v)
	default:
		s.Value = v
	}
	return s
}

// aggregate combines node samples. Missing data is never a zero: the aggregate
// is an error unless at least half of the nodes reported.
func aggregate(k *config.Counter, samples []store.Sample, now time.Time) store.Sample {
	agg := store.Sample{At: now}
	var vals []float64
	var firstErr string
	for _, s := range samples {
		if s.OK() {
			vals = append(vals, s.Value)
		} else if firstErr == "" {
			firstErr = s.Node + ": " + s.Err
		}
	}
	agg.Reporting, agg.Expected = len(vals), len(samples)
	switch {
	case len(samples) == 0:
		agg.Err = "no node in service to read"
		return agg
	case len(vals)*2 < len(samples) || len(vals) == 0:
		agg.Err = fmt.Sprintf("only %d of %d nodes reported (%s)", len(vals), len(samples), firstErr)
		return agg
	}
	switch k.Aggregate {
	case config.AggMin:
		agg.Value = vals[0]
		for _, v := range vals {
			agg.Value = min(agg.Value, v)
		}
	case config.AggMax:
		agg.Value = vals[0]
		for _, v := range vals {
			agg.Value = max(agg.Value, v)
		}
	default:
		for _, v := range vals {
			agg.Value += v
		}
		if k.Aggregate == config.AggAvg {
			agg.Value /= float64(len(vals))
		}
	}
	return agg
}

// autoFire fires a due trigger unless it could change nothing (its sizing
// step is at max or min, or the cluster is stopped) or its previous firing
// is still running.
func (c *Controller) autoFire(ctx context.Context, cl *cluster, t *config.Trigger, cause string, now time.Time) {
	if busy, err := c.firingBusy(ctx, cl, t.Name); err != nil || busy {
		return
	}
	rec, err := c.st.ClusterGet(ctx, cl.cfg.Name)
	if err != nil || rec.Stopped {
		return // a stopped cluster's triggers rest until it is started
	}
	if len(t.Actions) > 0 {
		switch t.Actions[0].Type {
		case "deploy_node":
			if rec.Desired >= rec.Max {
				return
			}
		case "remove_node":
			if rec.Desired <= rec.Min {
				return
			}
		}
	}
	if _, err := c.fire(ctx, cl, t, cause); err != nil {
		c.log.Error("firing trigger failed", "cluster", cl.cfg.Name, "trigger", t.Name, "err", err)
		return
	}
	cl.latestMu.Lock()
	th := cl.triggers[t.Name]
	th.Fired(now)
	st := th.State()
	cl.latestMu.Unlock()
	if err := c.st.TriggerStatePut(ctx, st); err != nil {
		c.log.Warn("storing trigger state failed", "trigger", t.Name, "err", err)
	}
}

// firingBusy reports whether the trigger's last firing still has unfinished steps.
func (c *Controller) firingBusy(ctx context.Context, cl *cluster, trigger string) (bool, error) {
	cl.latestMu.RLock()
	last, known := cl.lastFiring[trigger]
	cl.latestMu.RUnlock()
	if !known {
		// After a restart: look for the trigger's latest firing in the history.
		recent, err := c.st.ActivityList(ctx, store.ActivityFilter{Cluster: cl.cfg.Name, Kind: "trigger", Limit: 1000})
		if err != nil {
			return false, err
		}
		for _, a := range recent {
			if a.Trigger == trigger {
				last = a.ID
				break
			}
		}
		cl.latestMu.Lock()
		cl.lastFiring[trigger] = last
		cl.latestMu.Unlock()
	}
	if last == 0 {
		return false, nil
	}
	steps, err := c.st.ActivityList(ctx, store.ActivityFilter{ParentID: last, Limit: 1000})
	if err != nil {
		return false, err
	}
	for _, s := range steps {
		if !s.Status.Done() {
			return true, nil
		}
	}
	return false, nil
}
