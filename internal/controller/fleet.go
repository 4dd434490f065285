package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// metaRemovedBy marks a node chosen for removal by an activity.
const metaRemovedBy = "removed_by"

// pollEvery is how often a step waiting on nodes looks at the store.
const pollEvery = 200 * time.Millisecond

type fleet struct{ c *Controller }

// DeployNodes implements action.Fleet.
func (f fleet) DeployNodes(ctx context.Context, clusterName string, a store.Activity, count int) (string, error) {
	c := f.c
	cl, err := c.cluster(clusterName)
	if err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	if c.opts.DryRun {
		return c.planDeploy(ctx, cl, a, count)
	}
	nodes, err := c.nodesOf(ctx, clusterName, func(n store.Node) bool { return n.LaunchActivity == a.ID })
	if err != nil {
		return "", err
	}
	if len(nodes) == 0 {
		var note string
		cl.mu.Lock()
		nodes, note, err = c.createNodes(ctx, cl, a, count, true)
		cl.mu.Unlock()
		if err != nil {
			return "", err
		}
		if len(nodes) == 0 {
			return note, nil
		}
	}
	for _, n := range nodes {
		if err := c.enqueue(ctx, jobs.LaunchArgs{NodeID: n.ID}); err != nil {
			return "", err
		}
	}
	return c.waitNodes(ctx, nodes, "launched", func(n store.Node) (bool, bool) {
		switch {
		case n.State == store.NodeInService:
			return true, true
		case !n.State.Active():
			return true, false
		default:
			return false, false
		}
	})
}

// createNodes creates pending nodes in one transaction. With raiseDesired it
// raises the desired size by up to count (never past max) and creates that
// many; without, it creates the nodes missing to reach the desired size.
// The caller holds cl.mu.
func (c *Controller) createNodes(ctx context.Context, cl *cluster, a store.Activity, count int, raiseDesired bool) ([]store.Node, string, error) {
	var created []store.Node
	var note string
	err := c.st.Tx(ctx, func(tx store.Store) error {
		created, note = nil, ""
		rec, err := tx.ClusterGet(ctx, cl.cfg.Name)
		if err != nil {
			return err
		}
		var n int
		if rec.Stopped {
			note = fmt.Sprintf("cluster %s is stopped: no node launched (goscaler cluster start %s)", rec.Name, rec.Name)
			return nil
		}
		if !raiseDesired {
			nodes, err := tx.NodeList(ctx, store.NodeFilter{Cluster: rec.Name})
			if err != nil {
				return err
			}
			n = rec.Target()
			for _, node := range nodes {
				if node.State.Active() {
					n--
				}
			}
		} else {
			n = min(count, rec.Max-rec.Desired)
			if n <= 0 {
				note = fmt.Sprintf("already at max (%d): no node launched", rec.Max)
				return nil
			}
			if _, err := tx.ClusterSetDesired(ctx, rec.Name, rec.Desired+n); err != nil {
				return err
			}
			note = fmt.Sprintf("desired %d → %d", rec.Desired, rec.Desired+n)
		}
		now := c.clock.Now()
		for i := range n {
			seq, err := tx.NodeNextSeq(ctx, rec.Name)
			if err != nil {
				return err
			}
			node, err := tx.NodeCreate(ctx, store.Node{
				ID: fmt.Sprintf("%s-%d", rec.Name, seq), Cluster: rec.Name, State: store.NodePending,
				LaunchActivity: a.ID, LaunchIndex: i, Reason: a.Cause, CreatedAt: now,
			})
			if err != nil {
				return err
			}
			created = append(created, node)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("cluster %q: creating nodes: %w", cl.cfg.Name, err)
	}
	return created, note, nil
}

// RemoveNodes implements action.Fleet.
func (f fleet) RemoveNodes(ctx context.Context, clusterName string, a store.Activity, count int, order string) (string, error) {
	c := f.c
	cl, err := c.cluster(clusterName)
	if err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	if c.opts.DryRun {
		return c.planRemove(ctx, cl, a, count, order)
	}
	mark := strconv.FormatInt(a.ID, 10)
	nodes, err := c.nodesOf(ctx, clusterName, func(n store.Node) bool { return n.Meta[metaRemovedBy] == mark })
	if err != nil {
		return "", err
	}
	if len(nodes) == 0 {
		var note string
		cl.mu.Lock()
		nodes, note, err = c.chooseRemovals(ctx, cl, a, count, order)
		cl.mu.Unlock()
		if err != nil {
			return "", err
		}
		if len(nodes) == 0 {
			return note, nil
		}
	}
	for _, n := range nodes {
		if err := c.enqueue(ctx, jobs.TerminateArgs{NodeID: n.ID}); err != nil {
			return "", err
		}
	}
	return c.waitNodes(ctx, nodes, "removed", func(n store.Node) (bool, bool) {
		return n.State == store.NodeTerminated, n.State == store.NodeTerminated
	})
}

// chooseRemovals lowers the desired size by up to count (never below min) and
// marks that many in-service nodes draining, in one transaction. The caller
// holds cl.mu.
func (c *Controller) chooseRemovals(ctx context.Context, cl *cluster, a store.Activity, count int, order string) ([]store.Node, string, error) {
	var chosen []store.Node
	var note string
	err := c.st.Tx(ctx, func(tx store.Store) error {
		chosen, note = nil, ""
		rec, err := tx.ClusterGet(ctx, cl.cfg.Name)
		if err != nil {
			return err
		}
		n := min(count, rec.Desired-rec.Min)
		if n <= 0 {
			note = fmt.Sprintf("already at min (%d): no node removed", rec.Min)
			return nil
		}
		candidates, err := tx.NodeList(ctx, store.NodeFilter{Cluster: rec.Name, States: []store.NodeState{store.NodeInService}})
		if err != nil {
			return err
		}
		candidates = removable(candidates, order)
		n = min(n, len(candidates))
		if n == 0 {
			note = "no node in service to remove"
			return nil
		}
		if _, err := tx.ClusterSetDesired(ctx, rec.Name, rec.Desired-n); err != nil {
			return err
		}
		note = fmt.Sprintf("desired %d → %d", rec.Desired, rec.Desired-n)
		for _, node := range candidates[:n] {
			node.State, node.Reason = store.NodeDraining, a.Cause
			if node.Meta == nil {
				node.Meta = map[string]string{}
			}
			node.Meta[metaRemovedBy] = strconv.FormatInt(a.ID, 10)
			node, err = tx.NodeUpdate(ctx, node)
			if err != nil {
				return err
			}
			chosen = append(chosen, node)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("cluster %q: choosing nodes to remove: %w", cl.cfg.Name, err)
	}
	return chosen, note, nil
}

// removable orders in-service nodes for removal: nodes in maintenance are
// kept; then oldest or newest first.
func removable(nodes []store.Node, order string) []store.Node {
	out := nodes[:0:0]
	for _, n := range nodes {
		if !n.Maintenance {
			out = append(out, n)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if order == "newest" {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].CreatedAt.Before(out[j].CreatedAt)
	})
	return out
}

// waitNodes polls the store until done says every node is finished, and
// reports which ones ended well.
func (c *Controller) waitNodes(ctx context.Context, nodes []store.Node, verb string, done func(store.Node) (finished, ok bool)) (string, error) {
	start := time.Now()
	for {
		var good, bad []string
		pending := 0
		for _, n := range nodes {
			cur, err := c.st.NodeGet(ctx, n.ID)
			if err != nil {
				return "", err
			}
			finished, ok := done(cur)
			switch {
			case !finished:
				pending++
			case ok:
				good = append(good, cur.ID+" ("+cur.Address+")")
			default:
				bad = append(bad, fmt.Sprintf("%s %s: %s", cur.ID, cur.State, cur.Reason))
			}
		}
		if pending == 0 {
			out := fmt.Sprintf("%s %s in %s", verb, strings.Join(good, ", "), time.Since(start).Round(time.Millisecond))
			if len(bad) > 0 {
				return out, fmt.Errorf("%w: %s", action.ErrPermanent, strings.Join(bad, "; "))
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %d node(s): %w", pending, ctx.Err())
		case <-time.After(pollEvery):
		}
	}
}

func (c *Controller) nodesOf(ctx context.Context, clusterName string, keep func(store.Node) bool) ([]store.Node, error) {
	all, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: clusterName})
	if err != nil {
		return nil, fmt.Errorf("cluster %q: listing nodes: %w", clusterName, err)
	}
	var out []store.Node
	for _, n := range all {
		if keep(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (c *Controller) enqueue(ctx context.Context, args river.JobArgs) error {
	if c.queue == nil {
		return errors.New("controller: no job queue")
	}
	return c.queue.Enqueue(ctx, args)
}

// errSuperseded is returned by setState when another job or the reconciler
// changed the node's state in a way the requested move must not undo.
var errSuperseded = errors.New("node state changed meanwhile")

// superseded reports whether moving a node that the store says is in cur to
// next would undo another decision: a terminated node stays terminated, a
// node taken out of service (draining, failed) never comes back, and a
// failed node fails once.
func superseded(cur, next store.NodeState) bool {
	switch {
	case cur == store.NodeTerminated:
		return next != store.NodeTerminated
	case !cur.Active():
		return next.Active() || cur == store.NodeFailed && next == store.NodeFailed
	default:
		return false
	}
}

// setState moves a node to state with reason and stores it. n may be a stale
// copy (a launch job holds one while it waits for the provider): if the
// stored node moved on in a way this move would undo, nothing is stored and
// the error wraps errSuperseded.
func (c *Controller) setState(ctx context.Context, n store.Node, state store.NodeState, reason string) (store.Node, error) {
	n.State, n.Reason = state, reason
	now := c.clock.Now()
	switch state {
	case store.NodeInService:
		n.InServiceAt = now
	case store.NodeTerminated:
		n.TerminatedAt = now
	default:
	}
	var out store.Node
	// Read and write in one transaction, so a stale copy never undoes a newer state.
	err := c.st.Tx(ctx, func(tx store.Store) error {
		cur, err := tx.NodeGet(ctx, n.ID)
		if err != nil {
			return err
		}
		if superseded(cur.State, state) {
			out = cur
			return fmt.Errorf("node %s is %s, not moving it to %s: %w", n.ID, cur.State, state, errSuperseded)
		}
		// Maintenance is the operator's: a stale copy must not undo it.
		n.Maintenance = cur.Maintenance
		out, err = tx.NodeUpdate(ctx, n)
		return err
	})
	if errors.Is(err, errSuperseded) {
		return out, err
	}
	if err != nil {
		return n, fmt.Errorf("node %s: storing state %s: %w", n.ID, state, err)
	}
	c.invalidateView(n.Cluster)
	c.log.Info("node "+string(state), "cluster", n.Cluster, "node", n.ID, "reason", reason)
	return out, nil
}

// nodeVars are a node's template variables.
func nodeVars(cl *cluster, n store.Node) map[string]string {
	vars := map[string]string{"Cluster": cl.cfg.Name, "NodeID": n.ID}
	if n.Address != "" {
		vars["Address"] = n.Address
		if host, port, ok := strings.Cut(n.Address, ":"); ok {
			vars["Host"], vars["Port"] = host, port
		}
	}
	for k, v := range cl.cfg.Vars {
		if r, err := plugin.Render(v, vars); err == nil {
			vars[k] = r
		} else {
			vars[k] = v
		}
	}
	return vars
}

// launchNode brings a node into service: create its machine, wait for its
// health check, register it in the load balancer. It resumes from the node's
// stored state, so a retry after a crash never creates a second machine.
func (c *Controller) launchNode(ctx context.Context, nodeID string, attempt int) error {
	n, err := c.st.NodeGet(ctx, nodeID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return river.JobCancel(err)
		}
		return err
	}
	cl, err := c.cluster(n.Cluster)
	if err != nil {
		return river.JobCancel(err)
	}
	if !n.State.Active() || n.State == store.NodeInService {
		return nil
	}
	if c.opts.DryRun {
		// Only a node left by a server that was not a dry run gets here: a
		// dry run creates no node.
		c.dryRun(ctx, cl, "launch:"+n.ID, n.ID, fmt.Sprintf("would resume the launch of node %s (%s): %s",
			n.ID, n.State, strings.Join(c.launchCalls(cl, n.ID), "; ")))
		return nil
	}
	deadline := n.CreatedAt.Add(cl.cfg.BootTimeout.D())
	// A machine adopted before it had an address (a cloud server still
	// building when the server restarted) is asked for again: Create is
	// idempotent per node, and returns once the machine has its address.
	if n.State == store.NodePending || n.MachineID == "" || n.Address == "" {
		if n, err = c.setState(ctx, n, store.NodeProvisioning, "creating its machine"); err != nil {
			if errors.Is(err, errSuperseded) {
				return nil
			}
			return err
		}
		m, err := cl.prov.Create(ctx, provider.NodeSpec{Cluster: n.Cluster, NodeID: n.ID, Vars: nodeVars(cl, n)})
		if err != nil {
			c.launchFailed(cl)
			if why, final := createFailure(err); final || attempt >= jobs.MaxAttempts {
				return c.failCreate(ctx, cl, n, why, err)
			}
			return fmt.Errorf("node %s: creating its machine: %w", n.ID, err)
		}
		n.MachineID, n.Address, n.Meta = m.ID, m.Address, mergeMeta(n.Meta, m.Meta)
		if n, err = c.setState(ctx, n, store.NodeConfiguring, "waiting for its health check"); err != nil {
			if errors.Is(err, errSuperseded) {
				// The node was removed while its machine was being made:
				// nobody else knows this machine, so it goes now.
				if derr := cl.prov.Delete(ctx, m.ID); derr != nil && !errors.Is(derr, provider.ErrNotFound) {
					return fmt.Errorf("node %s: deleting the machine of a node removed meanwhile: %w", n.ID, derr)
				}
				return nil
			}
			return err
		}
	}
	registered := false
	if cl.health.reporter != nil {
		// The balancer is the health check: it checks only what is registered.
		if err := cl.bal.Register(ctx, backend(n)); err != nil {
			return fmt.Errorf("node %s: registering in the load balancer for its health check: %w", n.ID, err)
		}
		registered = true
	}
	// Wait for the health check.
	var lastErr error
	for {
		if lastErr = c.checkNode(ctx, cl, n); lastErr == nil {
			break
		}
		if m, err := cl.prov.Get(ctx, n.MachineID); err != nil || m.State != provider.MachineRunning {
			reason := "its machine is gone"
			if err == nil {
				reason = "its machine stopped: " + m.Reason
			}
			return c.failLaunch(ctx, cl, n, reason)
		}
		if c.clock.Now().After(deadline) {
			return c.failLaunch(ctx, cl, n, fmt.Sprintf("no healthy answer within the boot timeout (%s): %v", cl.cfg.BootTimeout, lastErr))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
	// The on_launch steps (configure, deploy, …); lb_register among them
	// registers the node where it is listed, else after the last.
	if err := c.nodeSteps(ctx, cl, &n, KindLaunchNode, metaLaunchSteps,
		fmt.Sprintf("launch steps of node %s (%s)", n.ID, n.Address), cl.cfg.OnLaunch); err != nil {
		var se *stepError
		if errors.As(err, &se) {
			return c.failLaunchWith(ctx, cl, n, "launch "+se.Error(), se.output)
		}
		return fmt.Errorf("node %s: launch steps: %w", n.ID, err)
	}
	cl.health.remember(n.ID, c.clock.Now(), nil, 0)
	// A node put in maintenance while it booted stays out of rotation.
	if cur, err := c.st.NodeGet(ctx, n.ID); err == nil && cur.Maintenance {
		n.Maintenance = true
	}
	if cl.bal != nil && !registered && !n.Maintenance && !hasLBStep(cl) {
		if err := cl.bal.Register(ctx, backend(n)); err != nil {
			return fmt.Errorf("node %s: registering in the load balancer: %w", n.ID, err)
		}
	}
	cl.launchSucceeded()
	_, err = c.setState(ctx, n, store.NodeInService, "passed its health check")
	if errors.Is(err, errSuperseded) {
		// Drained or failed while it booted: out of rotation again.
		if cl.bal != nil {
			_ = cl.bal.Deregister(ctx, backend(n))
		}
		return nil
	}
	return err
}

// backend is a node as its load balancer sees it.
func backend(n store.Node) lb.Backend {
	return lb.Backend{NodeID: n.ID, Address: n.Address, MachineID: n.MachineID}
}

// createFailure says why a provider's Create failed, in an operator's words,
// and whether retrying the same node is pointless: bad configuration, no
// capacity, a quota reached, or a machine that was made for the node and is
// gone already. Such a node fails at once; the reconciler replaces it after
// the cluster's launch backoff, so a cloud that is out of capacity or quota
// sees one attempt per backoff period, not a tight loop.
func createFailure(err error) (string, bool) {
	switch {
	case errors.Is(err, provider.ErrConfig):
		return "bad provider configuration", true
	case errors.Is(err, provider.ErrCapacity):
		return "the provider has no capacity for it", true
	case errors.Is(err, provider.ErrQuota):
		return "a provider quota is reached", true
	case errors.Is(err, provider.ErrNotFound):
		return "its machine was made and is gone already", true
	default:
		return "creating its machine failed", false
	}
}

// failCreate marks a node whose machine could not be created failed, with a
// node_failed activity that says why. The job ends: the reconciler launches
// a replacement after the backoff launchFailed set.
func (c *Controller) failCreate(ctx context.Context, cl *cluster, n store.Node, why string, err error) error {
	reason := why + ": " + err.Error()
	if _, serr := c.setState(ctx, n, store.NodeFailed, reason); serr != nil {
		if errors.Is(serr, errSuperseded) {
			return river.JobCancel(err)
		}
		return errors.Join(river.JobCancel(err), serr)
	}
	c.metrics.nodeFailures.WithLabelValues(cl.cfg.Name).Inc()
	c.activity(ctx, c.st, store.Activity{Cluster: n.Cluster, Node: n.ID, Kind: "node_failed",
		Cause:  fmt.Sprintf("node %s could not be launched: %s; a replacement follows after the launch backoff", n.ID, why),
		Status: store.ActivityFailed, Error: reason})
	return river.JobCancel(err)
}

// failLaunch marks a node failed and terminates its machine.
func (c *Controller) failLaunch(ctx context.Context, cl *cluster, n store.Node, reason string) error {
	return c.failLaunchWith(ctx, cl, n, reason, "")
}

// failLaunchWith is failLaunch with the output of what failed, recorded in
// the node_failed activity.
func (c *Controller) failLaunchWith(ctx context.Context, cl *cluster, n store.Node, reason, output string) error {
	c.launchFailed(cl)
	if _, err := c.setState(ctx, n, store.NodeFailed, reason); err != nil {
		if errors.Is(err, errSuperseded) {
			return nil // already failed or removed by someone else
		}
		return err
	}
	c.activity(ctx, c.st, store.Activity{Cluster: n.Cluster, Node: n.ID, Kind: "node_failed",
		Cause: fmt.Sprintf("node %s failed to start: %s", n.ID, reason), Status: store.ActivityFailed, Error: reason, Output: output})
	return c.enqueue(ctx, jobs.TerminateArgs{NodeID: n.ID})
}

func (c *Controller) launchFailed(cl *cluster) {
	cl.latestMu.Lock()
	defer cl.latestMu.Unlock()
	cl.launchFailures++
	backoff := time.Second << min(cl.launchFailures, 6)
	cl.nextLaunchAt = c.clock.Now().Add(min(backoff, time.Minute))
}

func (cl *cluster) launchSucceeded() {
	cl.latestMu.Lock()
	defer cl.latestMu.Unlock()
	cl.launchFailures = 0
	cl.nextLaunchAt = time.Time{}
}

// terminateNode drains a draining (or failed) node from the load balancer and
// deletes its machine. It is idempotent: a gone machine is success.
func (c *Controller) terminateNode(ctx context.Context, nodeID string, _ int) error {
	n, err := c.st.NodeGet(ctx, nodeID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return river.JobCancel(err)
		}
		return err
	}
	if n.State == store.NodeTerminated {
		return nil
	}
	cl, err := c.cluster(n.Cluster)
	if err != nil {
		return river.JobCancel(err)
	}
	if c.opts.DryRun {
		c.dryRun(ctx, cl, "terminate:"+n.ID, n.ID, fmt.Sprintf("would terminate node %s (%s): %s",
			n.ID, n.State, strings.Join(c.removeCalls(cl, n), "; ")))
		return nil
	}
	if n.State.Active() {
		if n, err = c.setState(ctx, n, store.NodeDraining, "terminating"); err != nil {
			return err
		}
	}
	if cl.bal != nil {
		if err := cl.bal.Deregister(ctx, backend(n)); err != nil {
			c.log.Warn("draining did not finish cleanly", "node", n.ID, "err", err)
		}
	}
	cl.health.forget(n.Address)
	cl.health.forgetNode(n.ID)
	if n.MachineID != "" && n.Address != "" {
		// The on_terminate steps; one that fails is recorded, and the node
		// goes anyway.
		err := c.nodeSteps(ctx, cl, &n, KindTerminateNode, metaTerminateSteps,
			fmt.Sprintf("termination steps of node %s (%s)", n.ID, n.Address), cl.cfg.OnTerminate)
		var se *stepError
		switch {
		case errors.As(err, &se):
			c.log.Warn("a termination step failed; removing the node anyway", "node", n.ID, "err", err)
		case err != nil:
			return fmt.Errorf("node %s: termination steps: %w", n.ID, err)
		}
	}
	if n.MachineID != "" {
		if err := cl.prov.Delete(ctx, n.MachineID); err != nil && !errors.Is(err, provider.ErrNotFound) {
			return fmt.Errorf("node %s: deleting machine %s: %w", n.ID, n.MachineID, err)
		}
	}
	reason := "terminated"
	if n.State == store.NodeFailed {
		reason = "terminated after failing: " + n.Reason
	}
	_, err = c.setState(ctx, n, store.NodeTerminated, reason)
	return err
}

func mergeMeta(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
