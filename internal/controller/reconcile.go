package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/perfdata"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// recover runs when this server becomes the leader: it adopts the machines
// that outlived the previous server, removes the ones nobody wants, and
// re-enqueues the work that was decided but not finished.
func (c *Controller) recover(ctx context.Context) error {
	for _, name := range c.order {
		if err := c.reconcileMachines(ctx, c.clusters[name], true); err != nil {
			return err
		}
	}
	return c.resumeWork(ctx)
}

// resumeWork enqueues again what the store says is unfinished. Jobs are unique
// by their arguments, so work that still has its job is not doubled.
func (c *Controller) resumeWork(ctx context.Context) error {
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{States: []store.NodeState{
		store.NodePending, store.NodeProvisioning, store.NodeConfiguring, store.NodeDraining, store.NodeFailed}})
	if err != nil {
		return fmt.Errorf("listing unfinished nodes: %w", err)
	}
	for _, n := range nodes {
		if _, ok := c.clusters[n.Cluster]; !ok {
			continue
		}
		var err error
		if n.State.Active() {
			err = c.enqueue(ctx, jobs.LaunchArgs{NodeID: n.ID})
		} else {
			err = c.enqueue(ctx, jobs.TerminateArgs{NodeID: n.ID})
		}
		if err != nil {
			return err
		}
	}
	for _, status := range []store.ActivityStatus{store.ActivityPending, store.ActivityRunning} {
		acts, err := c.st.ActivityList(ctx, store.ActivityFilter{Status: status, Limit: 1000})
		if err != nil {
			return fmt.Errorf("listing unfinished activities: %w", err)
		}
		for _, a := range acts {
			if a.ParentID == 0 {
				continue
			}
			prev, err := c.previousStep(ctx, a)
			if err != nil {
				return err
			}
			switch {
			case a.Step == 0 || prev.Status == store.ActivitySucceeded:
				if err := c.enqueue(ctx, jobs.ActionArgs{ActivityID: a.ID}); err != nil {
					return err
				}
			case prev.Status == store.ActivityFailed || prev.Status == store.ActivitySkipped:
				// A crash came between failing a step and skipping the rest.
				if err := c.skipAfter(ctx, prev, c.clock.Now()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// resumeEvery is how often unfinished work is enqueued again.
const resumeEvery = 30 * time.Second

// reconcile brings one cluster to its target size (its desired size, or 0
// when it is stopped): replace what is missing, remove what is too much. In
// a dry run it records what it would do instead.
func (c *Controller) reconcile(ctx context.Context, cl *cluster) error {
	name := cl.cfg.Name
	if err := c.checkMachines(ctx, cl); err != nil {
		return err
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	rec, err := c.st.ClusterGet(ctx, name)
	if err != nil {
		return err
	}
	listed := time.Now()
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: name})
	if err != nil {
		return err
	}
	c.setView(cl, nodes, listed)
	c.metrics.observeCluster(rec, nodes)
	var active []store.Node
	for _, n := range nodes {
		if n.State.Active() {
			active = append(active, n)
		}
	}
	if c.opts.DryRun {
		if p := c.plan(cl, rec, nodes, rec.Target()); len(p.Calls) > 0 {
			c.dryRun(ctx, cl, "reconcile", "", fmt.Sprintf("reconcile: %d node(s) active or starting, %d wanted: %s",
				len(active), rec.Target(), strings.Join(p.Calls, "; ")))
		}
		return nil
	}
	switch {
	case len(active) < rec.Target():
		cl.latestMu.RLock()
		wait := cl.nextLaunchAt
		cl.latestMu.RUnlock()
		if c.clock.Now().Before(wait) {
			return nil
		}
		a := c.activity(ctx, c.st, store.Activity{Cluster: name, Kind: "deploy_node", Status: store.ActivityRunning,
			Cause: fmt.Sprintf("reconcile: %d node(s) active or starting, %d desired", len(active), rec.Target())})
		created, _, err := c.createNodes(ctx, cl, a, 0, false)
		if err != nil {
			return err
		}
		out := "launching"
		for _, n := range created {
			out += " " + n.ID
			if err := c.enqueue(ctx, jobs.LaunchArgs{NodeID: n.ID}); err != nil {
				return err
			}
		}
		_, err = c.st.ActivityUpdate(ctx, a.ID, store.ActivityUpdate{Status: store.ActivitySucceeded,
			Output: out, FinishedAt: c.clock.Now()})
		return err
	case len(active) > rec.Target():
		return c.removeSurplus(ctx, rec, active, len(active)-rec.Target())
	}
	return nil
}

// removeSurplus drains nodes beyond the target size: nodes not yet in
// service first, then the oldest.
// The caller holds the cluster's lock.
func (c *Controller) removeSurplus(ctx context.Context, rec store.Cluster, nodes []store.Node, n int) error {
	pick := surplus(nodes, n, rec.Stopped)
	if len(pick) == 0 {
		return nil
	}
	cause := fmt.Sprintf("reconcile: %d node(s) active, %d desired", len(nodes), rec.Target())
	if rec.Stopped {
		cause = fmt.Sprintf("reconcile: cluster stopped, %d node(s) active", len(nodes))
	}
	a := c.activity(ctx, c.st, store.Activity{Cluster: rec.Name, Kind: "remove_node", Cause: cause})
	for _, node := range pick {
		if node.Meta == nil {
			node.Meta = map[string]string{}
		}
		node.Meta[metaRemovedBy] = fmt.Sprint(a.ID)
		if _, err := c.setState(ctx, node, store.NodeDraining, a.Cause); err != nil {
			return err
		}
		if err := c.enqueue(ctx, jobs.TerminateArgs{NodeID: node.ID}); err != nil {
			return err
		}
	}
	return nil
}

// checkMachines fails the nodes whose machine died.
func (c *Controller) checkMachines(ctx context.Context, cl *cluster) error {
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: cl.cfg.Name,
		States: []store.NodeState{store.NodeConfiguring, store.NodeInService}})
	if err != nil {
		return err
	}
	if len(nodes) == 0 {
		return nil
	}
	// One List per cluster; Get only for the machines it does not show (a
	// cloud's list may lag behind a machine just created).
	machines, err := cl.prov.List(ctx, cl.cfg.Name)
	if err != nil {
		return fmt.Errorf("cluster %q: listing machines: %w", cl.cfg.Name, err)
	}
	listed := map[string]provider.Machine{}
	for _, m := range machines {
		listed[m.ID] = m
	}
	for _, n := range nodes {
		if n.MachineID == "" {
			continue
		}
		m, ok := listed[n.MachineID]
		if ok && m.State == provider.MachineRunning {
			continue
		}
		if !ok {
			m, err = cl.prov.Get(ctx, n.MachineID)
		}
		var reason string
		switch {
		case errors.Is(err, provider.ErrNotFound):
			reason = fmt.Sprintf("its machine %s is gone", n.MachineID)
		case err != nil:
			c.log.Warn("cannot inspect machine", "node", n.ID, "err", err)
			continue
		case m.State != provider.MachineRunning:
			reason = fmt.Sprintf("its machine %s stopped: %s", n.MachineID, m.Reason)
		default:
			continue
		}
		if err := c.nodeFailed(ctx, cl, n, reason); err != nil {
			return err
		}
	}
	return nil
}

// nodeFailed takes a node out of service for good; the reconciler replaces it.
func (c *Controller) nodeFailed(ctx context.Context, cl *cluster, n store.Node, reason string) error {
	if c.opts.DryRun {
		c.dryRun(ctx, cl, "fail:"+n.ID, n.ID, fmt.Sprintf("would take node %s out of service and replace it: %s", n.ID, reason))
		return nil
	}
	if cl.bal != nil {
		// Out of rotation at once; the terminate job drains what is left.
		go func() {
			_ = cl.bal.Deregister(context.WithoutCancel(ctx), backend(n))
		}()
	}
	if _, err := c.setState(ctx, n, store.NodeFailed, reason); err != nil {
		if errors.Is(err, errSuperseded) {
			return nil // already failed, draining or terminated: handled
		}
		return err
	}
	c.metrics.nodeFailures.WithLabelValues(cl.cfg.Name).Inc()
	c.activity(ctx, c.st, store.Activity{Cluster: cl.cfg.Name, Node: n.ID, Kind: "node_failed",
		Cause: fmt.Sprintf("node %s failed: %s; it will be replaced", n.ID, reason), Status: store.ActivityFailed, Error: reason})
	return c.enqueue(ctx, jobs.TerminateArgs{NodeID: n.ID})
}

// healthLoop checks in-service nodes every interval and fails those that
// failed UnhealthyThreshold checks in a row (after their grace period), at
// most health_check.max_replacing at a time.
func (c *Controller) healthLoop(ctx context.Context, cl *cluster) {
	hc := cl.cfg.HealthCheck
	if hc.Type == "none" {
		return
	}
	t := time.NewTicker(hc.Interval.D())
	defer t.Stop()
	paced := map[string]bool{} // nodes whose deferral is recorded
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nodes, err := c.inService(ctx, cl)
		if err != nil {
			continue
		}
		var mu sync.Mutex
		var unhealthy []unhealthyNode
		var wg sync.WaitGroup
		for _, n := range nodes {
			if n.Maintenance || c.clock.Now().Sub(n.InServiceAt) < hc.GracePeriod.D() {
				continue
			}
			wg.Go(func() {
				err := c.checkNode(ctx, cl, n)
				if ctx.Err() != nil {
					return
				}
				if err != nil && cl.health.reporter != nil && !errors.Is(err, lb.ErrUnhealthy) {
					// The balancer could not be asked (throttled, down): that
					// says nothing about the node.
					c.log.Warn("cannot get a node's health from the load balancer", "node", n.ID, "err", err)
					return
				}
				fails := cl.health.record(n.Address, err)
				cl.health.remember(n.ID, c.clock.Now(), err, fails)
				if fails >= hc.UnhealthyThreshold {
					mu.Lock()
					unhealthy = append(unhealthy, unhealthyNode{n, fails, err})
					mu.Unlock()
				} else if err == nil {
					mu.Lock()
					delete(paced, n.ID)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(unhealthy) == 0 || ctx.Err() != nil {
			continue
		}
		sort.Slice(unhealthy, func(i, j int) bool { return unhealthy[i].n.InServiceAt.Before(unhealthy[j].n.InServiceAt) })
		allowed, replacing, limit := c.healingRoom(ctx, cl, len(nodes))
		for _, u := range unhealthy {
			if allowed == 0 {
				if !paced[u.n.ID] {
					paced[u.n.ID] = true
					c.activity(ctx, c.st, store.Activity{Cluster: cl.cfg.Name, Node: u.n.ID, Kind: KindHealingPaced,
						Cause: fmt.Sprintf("node %s is unhealthy (%v) but stays in service for now: %d node(s) are being replaced, health_check.max_replacing allows %d (%s)",
							u.n.ID, u.err, replacing, limit, hc.MaxReplacing)})
				}
				continue
			}
			if allowed > 0 {
				allowed--
			}
			delete(paced, u.n.ID)
			cl.health.forget(u.n.Address)
			reason := fmt.Sprintf("health check failed %d times in a row: %v", u.fails, u.err)
			if err := c.nodeFailed(ctx, cl, u.n, reason); err != nil {
				c.log.Error("failing unhealthy node", "node", u.n.ID, "err", err)
			}
		}
	}
}

// settle is how long after its time a sample may still be stored: the longest
// counter interval plus its timeout, and a margin.
func (c *Controller) settle() time.Duration {
	d := 10 * time.Second
	for _, cl := range c.clusters {
		for _, k := range cl.cfg.Counters {
			d = max(d, k.Interval.D()+k.Timeout.D()+5*time.Second)
		}
	}
	return d
}

type unhealthyNode struct {
	n     store.Node
	fails int
	err   error
}

// healingRoom returns how many more unhealthy nodes may be replaced now
// (-1: no bound), how many are being replaced, and the bound: the nodes
// missing from service (failed and not yet replaced, or their replacement
// not yet in service) count against health_check.max_replacing.
func (c *Controller) healingRoom(ctx context.Context, cl *cluster, inService int) (allowed, replacing, limit int) {
	pace := cl.cfg.HealthCheck.MaxReplacing
	if pace.N == 0 {
		return -1, 0, 0
	}
	rec, err := c.st.ClusterGet(ctx, cl.cfg.Name)
	if err != nil {
		return -1, 0, 0
	}
	replacing = max(0, rec.Target()-inService)
	limit = pace.Of(rec.Target())
	return max(0, limit-replacing), replacing, limit
}

// housekeeping rolls up and prunes counter samples and, every resumeEvery, enqueues again the
// work the store says is unfinished: a job that ran out of retries (the load
// balancer or the provider was down for a while) gets a new one.
func (c *Controller) housekeeping(ctx context.Context) {
	down := &perfdata.Downsampler{Store: c.st, Retention: c.perf.Retention, Settle: c.settle()}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	lastResume := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastResume) >= resumeEvery {
			lastResume = time.Now()
			if err := c.resumeWork(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("resuming unfinished work failed", "err", err)
			}
		}
		now := c.clock.Now()
		if _, err := down.Run(ctx, now); err != nil && ctx.Err() == nil {
			c.log.Warn("downsampling or pruning counter samples failed", "err", err)
		}
		c.memory.Prune(now)
	}
}

// healthChecker runs a cluster's health check, counts failures per address
// and keeps each node's recent results.
type healthChecker struct {
	cfg    config.HealthCheck
	client *http.Client
	// reporter is the cluster's load balancer when the health check is its
	// view of the node (type load_balancer), else nil.
	reporter lb.HealthReporter
	mu       sync.Mutex
	fails    map[string]int
	results  map[string][]HealthResult
}

// HealthResult is one health check of a node.
type HealthResult struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	// FailsInRow counts this and the failures right before it (0 when OK).
	FailsInRow int `json:"fails_in_row,omitempty"`
}

// healthResultsKept is how many results are kept per node.
const healthResultsKept = 20

func newHealthChecker(cfg config.HealthCheck) *healthChecker {
	return &healthChecker{cfg: cfg, fails: map[string]int{}, results: map[string][]HealthResult{}, client: &http.Client{
		Timeout:   cfg.Timeout.D(),
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second},
	}}
}

// check runs the health check once against a node.
func (h *healthChecker) check(ctx context.Context, b lb.Backend) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout.D())
	defer cancel()
	address := b.Address
	switch h.cfg.Type {
	case "none":
		return nil
	case config.HealthLoadBalancer:
		if h.reporter == nil {
			return errors.New("health check by the load balancer, but the cluster's balancer reports no health")
		}
		return h.reporter.BackendHealth(ctx, b)
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", address)
		if err != nil {
			return fmt.Errorf("tcp %s: %w", address, err)
		}
		return conn.Close()
	default:
		url := "http://" + address + h.cfg.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := h.client.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", url, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	}
}

// record counts a result and returns the failures in a row.
func (h *healthChecker) record(address string, err error) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.fails, address)
		return 0
	}
	h.fails[address]++
	return h.fails[address]
}

// remember keeps a node's result (the newest healthResultsKept).
func (h *healthChecker) remember(nodeID string, at time.Time, err error, fails int) {
	r := HealthResult{At: at, OK: err == nil, FailsInRow: fails}
	if err != nil {
		r.Error = err.Error()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := append(h.results[nodeID], r)
	if len(rs) > healthResultsKept {
		rs = slices.Clone(rs[len(rs)-healthResultsKept:])
	}
	h.results[nodeID] = rs
}

// recent returns a node's kept results, oldest first.
func (h *healthChecker) recent(nodeID string) []HealthResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.results[nodeID])
}

// forgetNode drops a terminated node's results.
func (h *healthChecker) forgetNode(nodeID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.results, nodeID)
}

func (h *healthChecker) forget(address string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.fails, address)
}

// TerminateAll deletes every machine of every cluster and marks their nodes
// terminated (used when the demo stops). It returns what it removed.
func (c *Controller) TerminateAll(ctx context.Context, reason string) ([]string, error) {
	var removed []string
	var errs []error
	for _, name := range c.order {
		cl := c.clusters[name]
		machines, err := cl.prov.List(ctx, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %q: listing machines: %w", name, err))
			continue
		}
		for _, m := range machines {
			if err := cl.prov.Delete(ctx, m.ID); err != nil && !errors.Is(err, provider.ErrNotFound) {
				errs = append(errs, fmt.Errorf("cluster %q: deleting machine %s: %w", name, m.ID, err))
				continue
			}
			removed = append(removed, m.NodeID)
		}
		nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: name})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, n := range nodes {
			if n.State != store.NodeTerminated {
				if _, err := c.setState(ctx, n, store.NodeTerminated, reason); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return removed, errors.Join(errs...)
}
