package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/store"
)

// ErrInvalid is wrapped by errors about a request that cannot be done as asked.
var ErrInvalid = errors.New("invalid request")

// ErrGone is wrapped by errors about a node that is no longer part of its
// cluster (terminated or failed).
var ErrGone = errors.New("gone")

// Fire fires a trigger by hand and returns the decision's activity.
func (c *Controller) Fire(ctx context.Context, clusterName, trigger, cause string) (store.Activity, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return store.Activity{}, err
	}
	t := cl.cfg.Trigger(trigger)
	if t == nil {
		return store.Activity{}, fmt.Errorf("cluster %q has no trigger %q: %w", clusterName, trigger, store.ErrNotFound)
	}
	return c.fire(ctx, cl, t, cause)
}

// fire records the decision and its steps in one transaction, then enqueues
// the first step; each step enqueues the next when it succeeds.
func (c *Controller) fire(ctx context.Context, cl *cluster, t *config.Trigger, cause string) (store.Activity, error) {
	now := c.clock.Now()
	var parent store.Activity
	var first int64
	err := c.st.Tx(ctx, func(tx store.Store) error {
		var err error
		parent, err = tx.ActivityCreate(ctx, store.Activity{Cluster: cl.cfg.Name, Trigger: t.Name, Kind: "trigger",
			Cause: cause, Status: store.ActivitySucceeded, CreatedAt: now, StartedAt: now, FinishedAt: now})
		if err != nil {
			return err
		}
		for i, a := range t.Actions {
			step, err := tx.ActivityCreate(ctx, store.Activity{ParentID: parent.ID, Cluster: cl.cfg.Name, Trigger: t.Name,
				Kind: a.Type, Cause: cause, Status: store.ActivityPending, Step: i, Params: a.ParamsJSON(), CreatedAt: now})
			if err != nil {
				return err
			}
			if i == 0 {
				first = step.ID
			}
		}
		return nil
	})
	if err != nil {
		return store.Activity{}, fmt.Errorf("cluster %q: recording firing of %q: %w", cl.cfg.Name, t.Name, err)
	}
	cl.latestMu.Lock()
	cl.lastFiring[t.Name] = parent.ID
	cl.latestMu.Unlock()
	c.metrics.firings.WithLabelValues(cl.cfg.Name, t.Name).Inc()
	c.log.Info("trigger fired", "cluster", cl.cfg.Name, "trigger", t.Name, "cause", cause)
	if first != 0 {
		if err := c.enqueue(ctx, jobs.ActionArgs{ActivityID: first}); err != nil {
			// The step is in the store; resumeWork enqueues it at the next start.
			return parent, err
		}
	}
	return parent, nil
}

// Scale sets a cluster's desired size by hand; the reconciler does the rest.
func (c *Controller) Scale(ctx context.Context, clusterName string, desired int, cause string) (store.Cluster, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return store.Cluster{}, err
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	rec, err := c.st.ClusterGet(ctx, clusterName)
	if err != nil {
		return store.Cluster{}, err
	}
	if desired < rec.Min || desired > rec.Max {
		return rec, fmt.Errorf("%w: desired %d is outside min..max (%d..%d) of cluster %q", ErrInvalid, desired, rec.Min, rec.Max, clusterName)
	}
	out, err := c.st.ClusterSetDesired(ctx, clusterName, desired)
	if err != nil {
		return rec, err
	}
	note := ""
	if rec.Stopped {
		note = " (the cluster is stopped: it takes effect when it is started)"
	}
	c.activity(ctx, c.st, store.Activity{Cluster: clusterName, Kind: "scale",
		Cause: fmt.Sprintf("%s: desired %d → %d%s", cause, rec.Desired, desired, note)})
	return out, nil
}

// runAction runs one action step (the durable job's handler).
func (c *Controller) runAction(ctx context.Context, id int64, attempt int) error {
	a, err := c.st.ActivityGet(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return river.JobCancel(err)
		}
		return err
	}
	if a.Status.Done() {
		if a.Status == store.ActivitySucceeded {
			return c.enqueueNext(ctx, a)
		}
		return nil
	}
	interrupted := a.Status == store.ActivityRunning
	start := c.clock.Now()
	upd := store.ActivityUpdate{Status: store.ActivityRunning}
	if a.StartedAt.IsZero() {
		upd.StartedAt = start
	}
	if a, err = c.st.ActivityUpdate(ctx, id, upd); err != nil {
		return err
	}
	out, runErr := c.runStep(ctx, a, attempt, interrupted)
	c.metrics.actionDuration.WithLabelValues(a.Kind).Observe(time.Since(start).Seconds())
	now := c.clock.Now()
	if runErr == nil {
		if _, err := c.st.ActivityUpdate(ctx, id, store.ActivityUpdate{Status: store.ActivitySucceeded, Output: out, FinishedAt: now}); err != nil {
			return err
		}
		return c.enqueueNext(ctx, a)
	}
	if ctx.Err() != nil {
		// The server is stopping: the step stays "running" and is resumed
		// (as interrupted) by the next server.
		return runErr
	}
	c.metrics.actionFailures.WithLabelValues(a.Kind).Inc()
	if !errors.Is(runErr, action.ErrPermanent) && attempt < jobs.MaxAttempts {
		msg := fmt.Sprintf("attempt %d of %d failed, retrying: %v", attempt, jobs.MaxAttempts, runErr)
		if _, err := c.st.ActivityUpdate(ctx, id, store.ActivityUpdate{Status: store.ActivityPending, Output: out, Error: msg}); err != nil {
			return err
		}
		return runErr
	}
	if _, err := c.st.ActivityUpdate(ctx, id, store.ActivityUpdate{Status: store.ActivityFailed, Output: out,
		Error: strings.TrimPrefix(runErr.Error(), action.ErrPermanent.Error()+": "), FinishedAt: now}); err != nil {
		return err
	}
	if err := c.skipAfter(ctx, a, now); err != nil {
		return err
	}
	return river.JobCancel(runErr)
}

func (c *Controller) runStep(ctx context.Context, a store.Activity, attempt int, interrupted bool) (string, error) {
	if c.opts.DryRun && a.Kind != "deploy_node" && a.Kind != "remove_node" {
		// Only the fleet's steps know how to plan; the others are not run.
		c.activity(ctx, c.st, store.Activity{Cluster: a.Cluster, Trigger: a.Trigger, Kind: KindDryRun,
			Cause:  fmt.Sprintf("would run step %d (%s) of trigger %s: %s", a.Step+1, a.Kind, a.Trigger, a.Params),
			Output: "dry run: nothing was done"})
		return "dry run: " + a.Kind + " not run", nil
	}
	cfg, err := action.Registry.DecodeJSON(a.Kind, a.Params)
	if err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	act, err := cfg.New(c.actionEnv(a.Cluster))
	if err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	return act.Run(ctx, action.Run{Activity: a, Cluster: a.Cluster, Trigger: a.Trigger, Attempt: attempt,
		Vars: c.actionVars(a, nil), Fleet: c.fleet(), Interrupted: interrupted, Steps: c.earlierSteps(ctx, a)})
}

// actionVars are the variables of an action step: the run's, the counters'
// latest values, the cluster's vars and, for a node step, the node's.
func (c *Controller) actionVars(a store.Activity, n *store.Node) map[string]string {
	vars := map[string]string{"Cluster": a.Cluster, "Trigger": a.Trigger, "Cause": a.Cause,
		"Activity": strconv.FormatInt(a.ID, 10)}
	cl, ok := c.clusters[a.Cluster]
	if !ok {
		return vars
	}
	cl.latestMu.RLock()
	for name, r := range cl.latest {
		if r.Aggregate.OK() {
			vars["Counter_"+name] = strconv.FormatFloat(r.Aggregate.Value, 'g', 6, 64)
		}
	}
	cl.latestMu.RUnlock()
	if n != nil {
		for k, v := range nodeVars(cl, *n) {
			vars[k] = v
		}
		return vars
	}
	for k, v := range cl.cfg.Vars {
		vars[k] = v
	}
	return vars
}

// enqueueNext enqueues the step after a, if any.
func (c *Controller) enqueueNext(ctx context.Context, a store.Activity) error {
	if a.ParentID == 0 {
		return nil
	}
	steps, err := c.st.ActivityList(ctx, store.ActivityFilter{ParentID: a.ParentID})
	if err != nil {
		return err
	}
	for _, s := range steps {
		if s.Step == a.Step+1 && !s.Status.Done() {
			return c.enqueue(ctx, jobs.ActionArgs{ActivityID: s.ID})
		}
	}
	return nil
}

// skipAfter marks the steps after a failed one as skipped.
func (c *Controller) skipAfter(ctx context.Context, a store.Activity, now time.Time) error {
	steps, err := c.st.ActivityList(ctx, store.ActivityFilter{ParentID: a.ParentID})
	if err != nil {
		return err
	}
	for _, s := range steps {
		if s.Step > a.Step && !s.Status.Done() {
			if _, err := c.st.ActivityUpdate(ctx, s.ID, store.ActivityUpdate{Status: store.ActivitySkipped,
				Error: fmt.Sprintf("not run: step %d (%s) failed", a.Step+1, a.Kind), FinishedAt: now}); err != nil {
				return err
			}
		}
	}
	return nil
}

// previousStep returns the step before a (the zero Activity for the first).
func (c *Controller) previousStep(ctx context.Context, a store.Activity) (store.Activity, error) {
	if a.Step == 0 {
		return store.Activity{}, nil
	}
	steps, err := c.st.ActivityList(ctx, store.ActivityFilter{ParentID: a.ParentID, Limit: 1000})
	if err != nil {
		return store.Activity{}, err
	}
	for _, s := range steps {
		if s.Step == a.Step-1 {
			return s, nil
		}
	}
	return store.Activity{}, nil
}
