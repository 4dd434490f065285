package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/policy"
	"github.com/goscaler/goscaler/internal/store"
)

// Keys of the policies' state in the store's trigger states (trigger names
// cannot hold ':' or '@', so they never collide).
const (
	policyKeyPrefix = "policy:"
	policyOutKey    = "policy:@scale-out"
	policyInKey     = "policy:@scale-in"
)

// policies is a cluster's scaling policies at run time.
type policies struct {
	// mu serialises evaluations: after each counter reading and on a ticker.
	mu        sync.Mutex
	scaler    *policy.Scaler
	scheduled []*policy.Scheduled
	applied   map[string]time.Time // persisted firing of each scheduled policy
	warmup    time.Duration
}

// buildPolicies builds a cluster's Scaler, resuming what the store kept: when
// it last scaled each way (cooldowns), the firings of scheduled policies
// already set, and, for predictive policies, the history of their counter
// still in the store. A restarted server holds the size it finds for one
// stabilization window. It returns nil for a cluster without policies.
func (c *Controller) buildPolicies(ctx context.Context, cc *config.Cluster) (*policies, error) {
	if !cc.HasPolicies() {
		return nil, nil
	}
	get := func(key string) (store.TriggerState, error) {
		st, err := c.st.TriggerStateGet(ctx, cc.Name, key)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return st, fmt.Errorf("cluster %q: loading policy state %q: %w", cc.Name, key, err)
		}
		return st, nil
	}
	out, err := get(policyOutKey)
	if err != nil {
		return nil, err
	}
	in, err := get(policyInKey)
	if err != nil {
		return nil, err
	}
	resume := policy.Resume{Applied: map[string]time.Time{},
		Memory: policy.Memory{LastScaleOut: out.LastFiredAt, ScaleOuts: out.Firings, LastScaleIn: in.LastFiredAt, ScaleIns: in.Firings}}
	for _, p := range cc.Policies {
		if p == nil || p.Scheduled == nil {
			continue
		}
		st, err := get(policyKeyPrefix + p.Name)
		if err != nil {
			return nil, err
		}
		resume.Applied[p.Name] = st.LastFiredAt
	}
	sc, err := policy.Build(cc, resume)
	if err != nil {
		return nil, err
	}
	pr := &policies{scaler: sc, applied: resume.Applied, warmup: sc.Settings.Warmup}
	now := c.clock.Now()
	for _, p := range sc.Policies {
		switch p := p.(type) {
		case *policy.Scheduled:
			pr.scheduled = append(pr.scheduled, p)
		case *policy.Predictive:
			if err := c.feedHistory(ctx, cc, p, now); err != nil {
				return nil, err
			}
		}
	}
	if rec, err := c.st.ClusterGet(ctx, cc.Name); err == nil {
		sc.Hold(now, rec.Desired)
	}
	return pr, nil
}

// feedHistory gives a predictive policy the aggregates of its counter the
// store still has (server.sample_retention bounds how far back).
func (c *Controller) feedHistory(ctx context.Context, cc *config.Cluster, p *policy.Predictive, now time.Time) error {
	pc := cc.Policy(p.Name())
	k := cc.Counter(pc.Predictive.Counter)
	if k == nil {
		return nil
	}
	perNode := config.PerNodeDefault(k)
	if pc.Predictive.PerNode != nil {
		perNode = *pc.Predictive.PerNode
	}
	samples, err := c.st.SampleList(ctx, store.SampleFilter{Cluster: cc.Name, Counter: k.Name, AggregateOnly: true,
		Since: now.Add(-time.Duration(pc.Predictive.HistoryDays) * 24 * time.Hour)})
	if err != nil {
		return fmt.Errorf("cluster %q: loading the history of counter %q: %w", cc.Name, k.Name, err)
	}
	for _, s := range samples {
		if !s.OK() {
			continue
		}
		load := s.Value
		if perNode {
			load *= float64(s.Reporting)
		}
		p.Observe(s.At, load)
	}
	return nil
}

// warming reports whether node n is in its warm-up at now: just in service,
// not yet read into the aggregates.
func (c *Controller) warming(cl *cluster, n store.Node, now time.Time) bool {
	return cl.pol != nil && cl.pol.warmup > 0 && !n.InServiceAt.IsZero() && now.Sub(n.InServiceAt) < cl.pol.warmup
}

// servingCount counts the nodes that take traffic: in service (the caller
// lists those) and not in maintenance.
func servingCount(nodes []store.Node) int {
	n := 0
	for _, nd := range nodes {
		if nd.State == store.NodeInService && !nd.Maintenance {
			n++
		}
	}
	return n
}

// policyLoop evaluates the cluster's policies on a ticker, for scheduled
// policies and for decisions a cooldown held back; evaluations also follow
// every counter reading (collectOnce).
func (c *Controller) policyLoop(ctx context.Context, cl *cluster) {
	if cl.pol == nil {
		return
	}
	t := time.NewTicker(c.opts.Config.Server.Tick.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.evaluatePolicies(ctx, cl)
	}
}

// evaluatePolicies asks the cluster's policies and carries out a change of
// the desired size they decide; the reconciler launches or removes nodes.
func (c *Controller) evaluatePolicies(ctx context.Context, cl *cluster) {
	pr := cl.pol
	if pr == nil {
		return
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	name := cl.cfg.Name
	rec, err := c.st.ClusterGet(ctx, name)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("policies: reading the cluster failed", "cluster", name, "err", err)
		}
		return
	}
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: name})
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("policies: listing nodes failed", "cluster", name, "err", err)
		}
		return
	}
	now := c.clock.Now()
	st := policy.State{Now: now, Min: rec.Min, Max: rec.Max, Desired: rec.Desired,
		BootTime: bootTime(cl.cfg, nodes), Readings: map[string]policy.Reading{}}
	for _, n := range nodes {
		switch {
		case n.State == store.NodeInService && !n.Maintenance:
			st.InService++
			if c.warming(cl, n, now) {
				st.Warming++
			}
		case n.State.Active() && n.State != store.NodeInService:
			st.Booting++
		}
	}
	cl.latestMu.RLock()
	for _, k := range cl.cfg.Counters {
		r, ok := cl.latest[k.Name]
		if !ok {
			continue
		}
		agg := k.Aggregate
		if k.Scope == counter.ScopeCluster {
			agg = ""
		}
		st.Readings[k.Name] = policy.Reading{Value: r.Aggregate.Value, At: r.Aggregate.At, Err: r.Aggregate.Err,
			Interval: k.Interval.D(), Aggregate: agg, Nodes: r.serving}
	}
	cl.latestMu.RUnlock()

	d := pr.scaler.Evaluate(st)
	c.persistScheduled(ctx, cl, pr)
	if d.To == d.From {
		if d.Blocked() != "" {
			c.log.Debug("policies: change held back", "cluster", name, "why", d.Blocked())
		}
		return
	}
	if err := c.applyDecision(ctx, cl, d); err != nil {
		if ctx.Err() == nil {
			c.log.Error("policies: changing the desired size failed", "cluster", name, "err", err)
		}
		return
	}
	pr.scaler.Applied(d)
	mem := pr.scaler.Memory()
	key, last, count := policyOutKey, mem.LastScaleOut, mem.ScaleOuts
	if d.To < d.From {
		key, last, count = policyInKey, mem.LastScaleIn, mem.ScaleIns
	}
	if err := c.st.TriggerStatePut(ctx, store.TriggerState{Cluster: name, Trigger: key, LastFiredAt: last,
		Firings: count, LastValue: float64(d.To)}); err != nil && ctx.Err() == nil {
		c.log.Warn("policies: storing their state failed", "cluster", name, "err", err)
	}
}

// errSizeChanged says the desired size moved since the policies looked.
var errSizeChanged = errors.New("the desired size changed meanwhile")

// applyDecision sets the desired size from d.From to d.To and records the
// activity, in one transaction, unless the size changed meanwhile.
func (c *Controller) applyDecision(ctx context.Context, cl *cluster, d policy.Decision) error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	name := cl.cfg.Name
	now := c.clock.Now()
	err := c.st.Tx(ctx, func(tx store.Store) error {
		rec, err := tx.ClusterGet(ctx, name)
		if err != nil {
			return err
		}
		if rec.Desired != d.From {
			return errSizeChanged
		}
		if _, err := tx.ClusterSetDesired(ctx, name, d.To); err != nil {
			return err
		}
		_, err = tx.ActivityCreate(ctx, store.Activity{Cluster: name, Trigger: d.Policy, Kind: d.Kind(), Cause: d.Cause,
			Status: store.ActivitySucceeded, CreatedAt: now, StartedAt: now, FinishedAt: now})
		return err
	})
	if errors.Is(err, errSizeChanged) {
		// A trigger or a person moved it: the next evaluation starts from there.
		return nil
	}
	if err != nil {
		return err
	}
	c.log.Info("policies scaled", "cluster", name, "from", d.From, "to", d.To, "cause", d.Cause)
	return nil
}

// persistScheduled stores the firings of scheduled policies handled since
// the last time, so that a restart neither misses nor repeats one.
func (c *Controller) persistScheduled(ctx context.Context, cl *cluster, pr *policies) {
	for _, s := range pr.scheduled {
		at := s.Applied()
		if at.IsZero() || at.Equal(pr.applied[s.Name()]) {
			continue
		}
		if err := c.st.TriggerStatePut(ctx, store.TriggerState{Cluster: cl.cfg.Name, Trigger: policyKeyPrefix + s.Name(),
			LastFiredAt: at}); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("policies: storing a schedule's firing failed", "cluster", cl.cfg.Name, "policy", s.Name(), "err", err)
			}
			continue
		}
		pr.applied[s.Name()] = at
	}
}

// bootTime estimates how long a node takes from launch to service: the
// median of the cluster's last ten nodes that reached service, or
// boot_timeout before any did. nodes are oldest first.
func bootTime(cc *config.Cluster, nodes []store.Node) time.Duration {
	var ds []time.Duration
	for i := len(nodes) - 1; i >= 0 && len(ds) < 10; i-- {
		if n := nodes[i]; !n.InServiceAt.IsZero() && n.InServiceAt.After(n.CreatedAt) {
			ds = append(ds, n.InServiceAt.Sub(n.CreatedAt))
		}
	}
	if len(ds) == 0 {
		return cc.BootTimeout.D()
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
