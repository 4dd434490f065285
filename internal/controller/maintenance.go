package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// maintenanceDrainTimeout bounds the wait for a node's in-flight requests
// when it leaves the load balancer for maintenance.
const maintenanceDrainTimeout = 5 * time.Minute

// SetMaintenance puts a live node into maintenance (on) or takes it out. In
// maintenance a node is out of the load balancer, out of healing (its health
// is not checked), out of counter collection and never chosen for removal;
// it still counts toward the cluster's size.
//
// Putting an in-service node into maintenance takes it out of rotation at
// once and drains its in-flight requests in the background; the returned
// activity records when that finished. Taking it out registers it again.
// Asking for the state the node is already in changes nothing and returns
// the zero Activity.
func (c *Controller) SetMaintenance(ctx context.Context, clusterName, nodeID string, on bool, cause string) (store.Node, store.Activity, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return store.Node{}, store.Activity{}, err
	}
	var n store.Node
	changed := false
	err = c.st.Tx(ctx, func(tx store.Store) error {
		cur, err := tx.NodeGet(ctx, nodeID)
		if err != nil {
			return err
		}
		if cur.Cluster != clusterName {
			return fmt.Errorf("node %q of cluster %q: %w", nodeID, clusterName, store.ErrNotFound)
		}
		n = cur
		if cur.Maintenance == on {
			return nil
		}
		if on && !cur.State.Active() {
			return fmt.Errorf("%w: node %s is %s: only a live node can go into maintenance", ErrInvalid, nodeID, cur.State)
		}
		cur.Maintenance = on
		n, err = tx.NodeUpdate(ctx, cur)
		changed = err == nil
		return err
	})
	if err != nil || !changed {
		return n, store.Activity{}, err
	}
	what := "out of maintenance"
	if on {
		what = "into maintenance"
	}
	c.log.Info("node "+what, "cluster", clusterName, "node", nodeID, "cause", cause)
	a := c.activity(ctx, c.st, store.Activity{Cluster: clusterName, Node: nodeID, Kind: "maintenance",
		Status: store.ActivityRunning, Cause: fmt.Sprintf("node %s %s: %s", nodeID, what, cause)})
	finish := func(ctx context.Context, out string, err error) store.Activity {
		u := store.ActivityUpdate{Status: store.ActivitySucceeded, Output: out, FinishedAt: c.clock.Now()}
		if err != nil {
			u.Status, u.Error = store.ActivityFailed, err.Error()
		}
		done, uerr := c.st.ActivityUpdate(ctx, a.ID, u)
		if uerr != nil {
			c.log.Error("recording maintenance failed", "node", nodeID, "err", uerr)
			return a
		}
		return done
	}
	b := backend(n)
	switch {
	case cl.bal == nil || n.State != store.NodeInService:
		return n, finish(ctx, "the node is not in a load balancer: nothing to do there", nil), nil
	case on:
		// Out of rotation now; the in-flight requests finish in the background.
		go func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maintenanceDrainTimeout)
			defer cancel()
			start := time.Now()
			err := cl.bal.Deregister(dctx, b)
			finish(dctx, fmt.Sprintf("out of the load balancer; in-flight requests drained in %s", time.Since(start).Round(time.Millisecond)), err)
		}()
		return n, a, nil
	default:
		// Failures from before the maintenance must not count against it now.
		cl.health.forget(n.Address)
		err := cl.bal.Register(ctx, b)
		if err != nil {
			err = fmt.Errorf("registering node %s in the load balancer again: %w", nodeID, err)
		}
		return n, finish(ctx, "back in the load balancer", err), err
	}
}

// HealthResults returns a node's recent health checks, oldest first (kept in
// memory by the server that runs the controller; empty after a restart).
func (c *Controller) HealthResults(clusterName, nodeID string) []HealthResult {
	cl, ok := c.clusters[clusterName]
	if !ok {
		return nil
	}
	return cl.health.recent(nodeID)
}
