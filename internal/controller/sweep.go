package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// Activity kinds of reconciliation and dry runs.
const (
	// KindRemoveOrphan: a machine no node wants was terminated.
	KindRemoveOrphan = "remove_orphan"
	// KindOrphanFound: a machine no node wants was found and left running
	// (server.orphans: report).
	KindOrphanFound = "orphan_found"
	// KindLBRepair: the load balancer was made to match the nodes again.
	KindLBRepair = "lb_repair"
	// KindDryRun: what a dry-run server would have done.
	KindDryRun = "dry_run"
)

// noteRepeat is how long a recorded dry-run plan or orphan report is not
// recorded again while it stays the same.
const noteRepeat = 10 * time.Minute

// sweepLoop reconciles every cluster's machines and load balancer every
// server.reconcile_interval (recover did it once at start).
func (c *Controller) sweepLoop(ctx context.Context) {
	every := c.opts.Config.Server.ReconcileInterval.D()
	if every <= 0 {
		every = time.Duration(config.DefaultReconcileInterval)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.Sweep(ctx)
	}
}

// Sweep compares, for every cluster, the provider's machines and the load
// balancer's servers with the nodes in the store: machines no node wants are
// terminated (or reported), in-service nodes missing from the load balancer
// are registered again and servers of nodes that are gone are removed.
func (c *Controller) Sweep(ctx context.Context) {
	for _, name := range c.order {
		cl := c.clusters[name]
		if err := c.reconcileMachines(ctx, cl, false); err != nil && ctx.Err() == nil {
			c.log.Warn("reconciling machines failed", "cluster", name, "err", err)
		}
		if err := c.sweepBalancer(ctx, cl); err != nil && ctx.Err() == nil {
			c.log.Warn("reconciling the load balancer failed", "cluster", name, "err", err)
		}
	}
}

// reconcileMachines lists the cluster's machines and compares them with its
// nodes. A machine whose node does not exist or is terminated, or that is
// not the machine its node holds, is an orphan. At start (startup), it also
// adopts the machines of known nodes (the server may have died between
// creating a machine and storing it) and fails the nodes whose machine is
// gone; later, launches may be in flight, so it leaves those to them.
func (c *Controller) reconcileMachines(ctx context.Context, cl *cluster, startup bool) error {
	name := cl.cfg.Name
	machines, err := cl.prov.List(ctx, name)
	if err != nil {
		return fmt.Errorf("cluster %q: listing machines: %w", name, err)
	}
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: name})
	if err != nil {
		return fmt.Errorf("cluster %q: listing nodes: %w", name, err)
	}
	byID := map[string]store.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	listed := map[string]bool{}
	for _, m := range machines {
		listed[m.ID] = true
	}
	seen := map[string]bool{}
	for _, m := range machines {
		n, known := byID[m.NodeID]
		var why string
		switch {
		case !known:
			why = "no node of the cluster has that name"
		case n.State == store.NodeTerminated:
			why = "its node is terminated"
		case n.MachineID != "" && n.MachineID != m.ID && (n.State == store.NodeFailed || listed[n.MachineID]):
			why = fmt.Sprintf("its node holds machine %s", n.MachineID)
		}
		if why != "" {
			if err := c.orphan(ctx, cl, m, why); err != nil {
				return err
			}
			continue
		}
		seen[n.ID] = true
		if !startup {
			continue
		}
		if n.MachineID != m.ID || n.Address == "" {
			n.MachineID, n.Address, n.Meta = m.ID, m.Address, mergeMeta(n.Meta, m.Meta)
			if _, err := c.st.NodeUpdate(ctx, n); err != nil {
				return fmt.Errorf("node %s: storing adopted machine: %w", n.ID, err)
			}
		}
		if n.State == store.NodeInService {
			c.log.Info("adopted node", "cluster", name, "node", n.ID, "machine", m.ID)
			if cl.bal != nil && !n.Maintenance {
				if c.opts.DryRun {
					c.dryRun(ctx, cl, "register:"+n.ID, n.ID, fmt.Sprintf("would register adopted node %s (%s) in the load balancer (%s)",
						n.ID, n.Address, cl.cfg.LoadBalancer.Type))
				} else if err := cl.bal.Register(ctx, backend(n)); err != nil {
					return fmt.Errorf("node %s: registering adopted node: %w", n.ID, err)
				}
			}
		}
	}
	if !startup {
		return nil
	}
	for _, n := range nodes {
		if seen[n.ID] || n.MachineID == "" || (n.State != store.NodeInService && n.State != store.NodeConfiguring) {
			continue
		}
		reason := fmt.Sprintf("its machine %s was gone when the server started", n.MachineID)
		if c.opts.DryRun {
			c.dryRun(ctx, cl, "fail:"+n.ID, n.ID, fmt.Sprintf("would mark node %s failed and replace it: %s", n.ID, reason))
			continue
		}
		if _, err := c.setState(ctx, n, store.NodeFailed, reason); err != nil {
			return err
		}
		c.activity(ctx, c.st, store.Activity{Cluster: name, Node: n.ID, Kind: "node_failed",
			Cause: fmt.Sprintf("node %s: %s", n.ID, reason), Status: store.ActivityFailed, Error: reason})
		if err := c.enqueue(ctx, jobs.TerminateArgs{NodeID: n.ID}); err != nil {
			return err
		}
	}
	return nil
}

// orphan terminates a machine no node wants, or reports it (server.orphans:
// report, or a dry run).
func (c *Controller) orphan(ctx context.Context, cl *cluster, m provider.Machine, why string) error {
	name := cl.cfg.Name
	cause := fmt.Sprintf("machine %s (node %s) is tagged for cluster %s but %s", m.ID, m.NodeID, name, why)
	switch {
	case c.opts.DryRun:
		c.dryRun(ctx, cl, "orphan:"+m.ID, m.NodeID, fmt.Sprintf("would terminate machine %s (%s delete): %s",
			m.ID, cl.cfg.Provider.Type, cause))
		return nil
	case c.opts.Config.Server.Orphans == config.OrphansReport:
		if c.noteOnce(cl, "orphan:"+m.ID, cause) {
			c.log.Warn("machine no node wants (left running: orphans: report)", "cluster", name, "machine", m.ID, "node", m.NodeID)
			c.activity(ctx, c.st, store.Activity{Cluster: name, Node: m.NodeID, Kind: KindOrphanFound,
				Cause: cause + "; left running (server.orphans: report): delete it, or set orphans: terminate"})
		}
		return nil
	}
	c.log.Warn("removing a machine no node wants", "cluster", name, "machine", m.ID, "node", m.NodeID, "why", why)
	if err := cl.prov.Delete(ctx, m.ID); err != nil && !errors.Is(err, provider.ErrNotFound) {
		c.activity(ctx, c.st, store.Activity{Cluster: name, Node: m.NodeID, Kind: KindRemoveOrphan, Cause: cause,
			Status: store.ActivityFailed, Error: err.Error()})
		return fmt.Errorf("cluster %q: removing orphan machine %s: %w", name, m.ID, err)
	}
	c.activity(ctx, c.st, store.Activity{Cluster: name, Node: m.NodeID, Kind: KindRemoveOrphan, Cause: cause,
		Output: "terminated machine " + m.ID})
	return nil
}

// ownsBackend reports whether a load balancer server is one of the
// cluster's nodes by its name (<cluster>-<number>): a balancer shared with
// servers goscaler did not add keeps them.
func ownsBackend(cl *cluster, nodeID string) bool {
	rest, ok := strings.CutPrefix(nodeID, cl.cfg.Name+"-")
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// sweepBalancer makes the load balancer match the nodes: an in-service node
// (not in maintenance) that it lacks is registered again (HAProxy reloaded
// without its servers, a balancer restarted), and a server of ours whose
// node is gone or terminated is removed.
func (c *Controller) sweepBalancer(ctx context.Context, cl *cluster) error {
	if cl.bal == nil {
		return nil
	}
	name := cl.cfg.Name
	backends, err := cl.bal.Backends(ctx)
	if err != nil {
		return fmt.Errorf("cluster %q: listing the load balancer's servers: %w", name, err)
	}
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: name})
	if err != nil {
		return err
	}
	byID := map[string]store.Node{}
	for _, n := range nodes {
		byID[n.ID] = n
	}
	registered := map[string]bool{}
	var errs []error
	for _, b := range backends {
		registered[b.NodeID] = true
		n, known := byID[b.NodeID]
		if !ownsBackend(cl, b.NodeID) || known && n.State != store.NodeTerminated {
			continue
		}
		cause := fmt.Sprintf("load balancer server %s (%s) belongs to no live node", b.NodeID, b.Address)
		if c.opts.DryRun {
			c.dryRun(ctx, cl, "deregister:"+b.NodeID, b.NodeID, "would deregister it from the load balancer: "+cause)
			continue
		}
		if err := cl.bal.Deregister(ctx, b); err != nil {
			errs = append(errs, fmt.Errorf("deregistering %s: %w", b.NodeID, err))
			continue
		}
		c.activity(ctx, c.st, store.Activity{Cluster: name, Node: b.NodeID, Kind: KindLBRepair, Cause: cause,
			Output: "deregistered " + b.NodeID})
	}
	for _, n := range nodes {
		if n.State != store.NodeInService || n.Maintenance || registered[n.ID] {
			continue
		}
		cause := fmt.Sprintf("node %s (%s) is in service but the load balancer lacks it (reloaded or restarted?)", n.ID, n.Address)
		if c.opts.DryRun {
			c.dryRun(ctx, cl, "register:"+n.ID, n.ID, "would register it again: "+cause)
			continue
		}
		be := backend(n)
		if err := cl.bal.Register(ctx, be); err != nil {
			errs = append(errs, fmt.Errorf("registering %s: %w", n.ID, err))
			continue
		}
		// The node may have left service meanwhile (its terminate job may
		// have deregistered it before this Register): out again then.
		if cur, err := c.st.NodeGet(ctx, n.ID); err == nil && cur.State != store.NodeInService {
			if err := cl.bal.Deregister(ctx, be); err != nil {
				errs = append(errs, fmt.Errorf("deregistering %s: %w", n.ID, err))
			}
			continue
		}
		c.activity(ctx, c.st, store.Activity{Cluster: name, Node: n.ID, Kind: KindLBRepair, Cause: cause,
			Output: "registered " + n.ID})
	}
	return errors.Join(errs...)
}

// noteOnce reports whether key's text is new (or was recorded longer than
// noteRepeat ago), and remembers it.
func (c *Controller) noteOnce(cl *cluster, key, text string) bool {
	now := c.clock.Now()
	cl.latestMu.Lock()
	defer cl.latestMu.Unlock()
	if e, ok := cl.noted[key]; ok && e.text == text && now.Sub(e.at) < noteRepeat {
		return false
	}
	cl.noted[key] = notedEntry{text: text, at: now}
	return true
}

// dryRun records what a dry-run server would do, once per key while it
// stays the same.
func (c *Controller) dryRun(ctx context.Context, cl *cluster, key, node, what string) {
	if !c.noteOnce(cl, key, what) {
		return
	}
	c.log.Info("dry run: "+what, "cluster", cl.cfg.Name, "node", node)
	c.activity(ctx, c.st, store.Activity{Cluster: cl.cfg.Name, Node: node, Kind: KindDryRun, Cause: what,
		Output: "dry run: nothing was done"})
}
