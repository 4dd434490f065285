package controller

import (
	"context"
	"fmt"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/store"
)

// actionEnv is what an action of a cluster is built with: the cluster's SSH
// pool among the rest.
func (c *Controller) actionEnv(clusterName string) action.Env {
	env := action.Env{Cluster: clusterName, DataDir: c.opts.DataDir, Logger: c.log.With("cluster", clusterName)}
	if cl, ok := c.clusters[clusterName]; ok {
		env.SSH = cl.ssh
	}
	return env
}

// earlierSteps returns the steps of a's firing before a, in order. A failure
// to read them is logged: the step runs without them.
func (c *Controller) earlierSteps(ctx context.Context, a store.Activity) []store.Activity {
	if a.ParentID == 0 || a.Step == 0 {
		return nil
	}
	steps, err := c.st.ActivityList(ctx, store.ActivityFilter{ParentID: a.ParentID, Limit: 1000})
	if err != nil {
		c.log.Warn("reading the earlier steps of a firing failed", "activity", a.ID, "err", err)
		return nil
	}
	out := make([]store.Activity, 0, a.Step)
	for step := range a.Step {
		for _, s := range steps {
			if s.Step == step {
				out = append(out, s)
			}
		}
	}
	return out
}

// Nodes implements action.Fleet: the in-service nodes not in maintenance.
func (f fleet) Nodes(ctx context.Context, clusterName string) ([]store.Node, error) {
	if _, err := f.c.cluster(clusterName); err != nil {
		return nil, fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	nodes, err := f.c.st.NodeList(ctx, store.NodeFilter{Cluster: clusterName, States: []store.NodeState{store.NodeInService}})
	if err != nil {
		return nil, fmt.Errorf("listing the nodes of cluster %q: %w", clusterName, err)
	}
	out := nodes[:0]
	for _, n := range nodes {
		if !n.Maintenance {
			out = append(out, n)
		}
	}
	return out, nil
}
