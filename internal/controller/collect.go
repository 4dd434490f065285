package controller

import (
	"context"
	"fmt"
	"math"
	"slices"
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

// collectOnce reads the counter, records the samples and evaluates triggers.
func (c *Controller) collectOnce(ctx context.Context, cl *cluster, k *config.Counter) {
	now := c.clock.Now()
	src := cl.sources[k.Name]
	var nodeSamples []store.Sample
	var agg store.Sample
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: cl.cfg.Name, States: []store.NodeState{store.NodeInService}})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("listing nodes for counters failed", "cluster", cl.cfg.Name, "err", err)
		}
		return
	}
	// The nodes a node-scoped counter reads; their number is the target's
	// InService (for "per node" values).
	nodes = slices.DeleteFunc(nodes, func(n store.Node) bool { return n.Maintenance })
	if k.Scope == counter.ScopeCluster {
		agg = c.read(ctx, cl, k, src, counter.Target{Cluster: cl.cfg.Name, Vars: nodeVars(cl, store.Node{}), InService: len(nodes)}, now)
		agg.Reporting = 0
		if agg.OK() {
			agg.Reporting = 1
		}
	} else {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() {
				s := c.read(ctx, cl, k, src, counter.Target{Cluster: cl.cfg.Name, NodeID: n.ID, Address: n.Address,
					Vars: nodeVars(cl, n), InService: len(nodes)}, now)
				s.Node = n.ID
				mu.Lock()
				nodeSamples = append(nodeSamples, s)
				mu.Unlock()
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		agg = aggregate(k, nodeSamples, now)
	}
	agg.Cluster, agg.Counter = cl.cfg.Name, k.Name
	if err := c.st.SampleInsert(ctx, append(nodeSamples, agg)); err != nil && ctx.Err() == nil {
		c.log.Warn("storing samples failed", "cluster", cl.cfg.Name, "counter", k.Name, "err", err)
	}
	c.metrics.observeSample(agg)

	cl.latestMu.Lock()
	cl.latest[k.Name] = CounterReading{Aggregate: agg, Nodes: nodeSamples}
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
	agg.Reporting = len(vals)
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
// step is at max or min) or its previous firing is still running.
func (c *Controller) autoFire(ctx context.Context, cl *cluster, t *config.Trigger, cause string, now time.Time) {
	if busy, err := c.firingBusy(ctx, cl, t.Name); err != nil || busy {
		return
	}
	if len(t.Actions) > 0 {
		rec, err := c.st.ClusterGet(ctx, cl.cfg.Name)
		if err != nil {
			return
		}
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
