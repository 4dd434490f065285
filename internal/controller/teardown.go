package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// What a Removal is.
const (
	RemovedMachine  = "machine"
	RemovedLBServer = "lb_server"
	RemovedNode     = "node"
)

// destroySettle bounds how long Destroy keeps listing the provider for
// machines that launches in flight made after its first look.
const destroySettle = 30 * time.Second

// Removal is one thing Destroy removed (or, in a dry run, would remove).
type Removal struct {
	// What is machine, lb_server or node.
	What string `json:"what"`
	// ID is the machine ID, the server's node ID, or the node ID.
	ID     string `json:"id"`
	Node   string `json:"node,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// DestroyResult is what Destroy did to one cluster.
type DestroyResult struct {
	Cluster string    `json:"cluster"`
	DryRun  bool      `json:"dry_run,omitempty"`
	Removed []Removal `json:"removed"`
	// Errors are the removals that failed (the cluster stays stopped; run
	// destroy again, or let the periodic reconciliation finish).
	Errors []string `json:"errors"`
	// Activity is the destroy (or dry_run) activity.
	Activity int64 `json:"activity"`
}

// SetStopped stops a cluster (the reconciler drains and terminates its
// nodes, and keeps it at zero) or starts it again (back to its desired
// size), and records it.
func (c *Controller) SetStopped(ctx context.Context, clusterName string, stopped bool, cause string) (store.Cluster, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return store.Cluster{}, err
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	before, err := c.st.ClusterGet(ctx, clusterName)
	if err != nil {
		return store.Cluster{}, err
	}
	rec, err := c.st.ClusterSetStopped(ctx, clusterName, stopped)
	if err != nil {
		return store.Cluster{}, err
	}
	kind, what := "start", fmt.Sprintf("started: back to %d node(s)", rec.Desired)
	if stopped {
		kind, what = "stop", "stopped: its nodes are drained and terminated, and it stays at 0 until started"
	}
	if before.Stopped == stopped {
		what = "already " + map[bool]string{true: "stopped", false: "started"}[stopped]
	}
	c.activity(ctx, c.st, store.Activity{Cluster: clusterName, Kind: kind, Cause: cause + ": " + what})
	return rec, nil
}

// DestroyAll destroys every cluster, in configuration order.
func (c *Controller) DestroyAll(ctx context.Context, cause string, dryRun bool) ([]DestroyResult, error) {
	var out []DestroyResult
	var errs []error
	for _, name := range c.order {
		r, err := c.Destroy(ctx, name, cause, dryRun)
		out = append(out, r)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// Destroy tears a cluster down: it stops it (so that nothing relaunches
// nodes until it is started again), takes every node out of the load
// balancer and deletes its machine, removes the load balancer servers and
// machines tagged for the cluster that no node holds, marks the nodes
// terminated, and keeps listing the provider until no machine of the cluster
// is left (a launch in flight may finish after the first look). With dryRun
// (or on a dry-run server) it reports what it would remove and changes
// nothing.
func (c *Controller) Destroy(ctx context.Context, clusterName, cause string, dryRun bool) (DestroyResult, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return DestroyResult{Cluster: clusterName}, err
	}
	if c.opts.DryRun || dryRun {
		return c.planDestroy(ctx, cl, cause)
	}
	res := DestroyResult{Cluster: clusterName, Removed: []Removal{}, Errors: []string{}}
	var mu sync.Mutex
	removed := func(r Removal) {
		mu.Lock()
		res.Removed = append(res.Removed, r)
		mu.Unlock()
	}
	failed := func(err error) {
		mu.Lock()
		res.Errors = append(res.Errors, err.Error())
		mu.Unlock()
	}
	act := c.activity(ctx, c.st, store.Activity{Cluster: clusterName, Kind: "destroy", Status: store.ActivityRunning,
		Cause: cause + ": every machine and load balancer server of the cluster is removed; it stays stopped until started"})

	// Stopped first, and every live node out of the active states, under the
	// cluster's lock: no reconcile, trigger or launch starts anything anew.
	cl.mu.Lock()
	var live []store.Node
	was := map[string]store.NodeState{}
	err = func() error {
		if _, err := c.st.ClusterSetStopped(ctx, clusterName, true); err != nil {
			return err
		}
		nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: clusterName})
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.State == store.NodeTerminated {
				continue
			}
			was[n.ID] = n.State
			if n.State != store.NodeDraining {
				n, err = c.setState(ctx, n, store.NodeDraining, "destroying the cluster")
				if err != nil && !errors.Is(err, errSuperseded) {
					return err
				}
				if n.State == store.NodeTerminated {
					continue // terminated meanwhile
				}
			}
			live = append(live, n)
		}
		return nil
	}()
	cl.mu.Unlock()
	if err != nil {
		return c.finishDestroy(ctx, res, act, fmt.Errorf("cluster %q: stopping it: %w", clusterName, err))
	}

	// The load balancer: our nodes, and any server of ours it still has.
	if cl.bal != nil {
		targets := map[string]lb.Backend{}
		for _, n := range live {
			targets[n.ID] = backend(n)
		}
		registered := map[string]bool{}
		backends, err := cl.bal.Backends(ctx)
		if err != nil {
			failed(fmt.Errorf("listing the load balancer's servers: %w", err))
		}
		for _, b := range backends {
			if _, ours := targets[b.NodeID]; ours || ownsBackend(cl, b.NodeID) {
				targets[b.NodeID] = b
				registered[b.NodeID] = true
			}
		}
		var wg sync.WaitGroup
		for _, b := range targets {
			wg.Go(func() {
				if err := cl.bal.Deregister(ctx, b); err != nil {
					failed(fmt.Errorf("deregistering %s from the load balancer: %w", b.NodeID, err))
					return
				}
				if registered[b.NodeID] {
					removed(Removal{What: RemovedLBServer, ID: b.NodeID, Node: b.NodeID,
						Detail: fmt.Sprintf("%s, %s", b.Address, cl.cfg.LoadBalancer.Type)})
				}
			})
		}
		wg.Wait()
	}

	// The nodes' machines, in parallel, then the nodes.
	var wg sync.WaitGroup
	for _, n := range live {
		wg.Go(func() {
			cl.health.forget(n.Address)
			if n.MachineID != "" {
				err := cl.prov.Delete(ctx, n.MachineID)
				switch {
				case err == nil:
					removed(Removal{What: RemovedMachine, ID: n.MachineID, Node: n.ID,
						Detail: fmt.Sprintf("%s, %s", dashIfEmpty(n.Address), cl.cfg.Provider.Type)})
				case !errors.Is(err, provider.ErrNotFound):
					failed(fmt.Errorf("deleting machine %s of node %s: %w", n.MachineID, n.ID, err))
					return // the node stays draining: destroy again, or the sweep finishes it
				}
			}
			if _, err := c.setState(ctx, n, store.NodeTerminated, "destroyed with the cluster"); err != nil && !errors.Is(err, errSuperseded) {
				failed(err)
				return
			}
			removed(Removal{What: RemovedNode, ID: n.ID, Node: n.ID, Detail: "was " + string(was[n.ID])})
		})
	}
	wg.Wait()

	// Every machine still tagged for the cluster: orphans, and machines a
	// launch in flight made after the nodes were taken out (that launch
	// deletes its own too; whoever comes second finds it gone).
	deadline := time.Now().Add(destroySettle)
	for {
		machines, err := cl.prov.List(ctx, clusterName)
		if err != nil {
			failed(fmt.Errorf("listing the provider's machines: %w", err))
			break
		}
		if len(machines) == 0 {
			break
		}
		for _, m := range machines {
			err := cl.prov.Delete(ctx, m.ID)
			switch {
			case err == nil:
				removed(Removal{What: RemovedMachine, ID: m.ID, Node: m.NodeID,
					Detail: fmt.Sprintf("%s, %s, no node held it", dashIfEmpty(m.Address), cl.cfg.Provider.Type)})
			case !errors.Is(err, provider.ErrNotFound):
				failed(fmt.Errorf("deleting machine %s (node %s): %w", m.ID, m.NodeID, err))
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			failed(fmt.Errorf("machines of the cluster were still listed after %s", destroySettle))
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	var errs error
	if len(res.Errors) > 0 {
		errs = fmt.Errorf("cluster %q: %d removal(s) failed: %s", clusterName, len(res.Errors), strings.Join(res.Errors, "; "))
	}
	return c.finishDestroy(ctx, res, act, errs)
}

func (c *Controller) finishDestroy(ctx context.Context, res DestroyResult, act store.Activity, err error) (DestroyResult, error) {
	res.Activity = act.ID
	rank := map[string]int{RemovedLBServer: 0, RemovedMachine: 1, RemovedNode: 2}
	slices.SortStableFunc(res.Removed, func(a, b Removal) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(rank[a.What], rank[b.What]), cmp.Compare(a.ID, b.ID))
	})
	counts := map[string]int{}
	for _, r := range res.Removed {
		counts[r.What]++
	}
	out := fmt.Sprintf("removed %d machine(s), %d load balancer server(s), %d node(s)",
		counts[RemovedMachine], counts[RemovedLBServer], counts[RemovedNode])
	upd := store.ActivityUpdate{Status: store.ActivitySucceeded, Output: out, FinishedAt: c.clock.Now()}
	if err != nil {
		upd.Status, upd.Error = store.ActivityFailed, err.Error()
	}
	if _, uerr := c.st.ActivityUpdate(context.WithoutCancel(ctx), act.ID, upd); uerr != nil {
		c.log.Error("recording the destroy failed", "cluster", res.Cluster, "err", uerr)
	}
	c.log.Info("cluster destroyed", "cluster", res.Cluster, "removed", out, "errors", len(res.Errors))
	return res, err
}

// planDestroy lists what Destroy would remove, records it as a dry_run
// activity and changes nothing.
func (c *Controller) planDestroy(ctx context.Context, cl *cluster, cause string) (DestroyResult, error) {
	name := cl.cfg.Name
	res := DestroyResult{Cluster: name, DryRun: true, Removed: []Removal{}, Errors: []string{}}
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: name})
	if err != nil {
		return res, err
	}
	if cl.bal != nil {
		backends, err := cl.bal.Backends(ctx)
		if err != nil {
			res.Errors = append(res.Errors, fmt.Sprintf("listing the load balancer's servers: %v", err))
		}
		for _, b := range backends {
			if ownsBackend(cl, b.NodeID) {
				res.Removed = append(res.Removed, Removal{What: RemovedLBServer, ID: b.NodeID, Node: b.NodeID,
					Detail: fmt.Sprintf("%s, %s", b.Address, cl.cfg.LoadBalancer.Type)})
			}
		}
	}
	machines, err := cl.prov.List(ctx, name)
	if err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("listing the provider's machines: %v", err))
	}
	for _, m := range machines {
		res.Removed = append(res.Removed, Removal{What: RemovedMachine, ID: m.ID, Node: m.NodeID,
			Detail: fmt.Sprintf("%s, %s", dashIfEmpty(m.Address), cl.cfg.Provider.Type)})
	}
	for _, n := range nodes {
		if n.State != store.NodeTerminated {
			res.Removed = append(res.Removed, Removal{What: RemovedNode, ID: n.ID, Node: n.ID, Detail: "is " + string(n.State)})
		}
	}
	var parts []string
	for _, r := range res.Removed {
		parts = append(parts, r.What+" "+r.ID)
	}
	what := cause + ": destroy would stop the cluster and remove nothing"
	if len(parts) > 0 {
		what = cause + ": destroy would stop the cluster and remove " + strings.Join(parts, ", ")
	}
	a := c.activity(ctx, c.st, store.Activity{Cluster: name, Kind: KindDryRun, Cause: what, Output: "dry run: nothing was done"})
	res.Activity = a.ID
	return res, nil
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
