package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/store"
)

// Activity kinds of a node's lifecycle steps: the parent activity of the
// steps run for a new node, for a leaving node, and again on a live node.
const (
	KindLaunchNode      = "launch_node"
	KindTerminateNode   = "terminate_node"
	KindReconfigureNode = "reconfigure_node"
	KindHealingPaced    = "healing_paced"
)

// Node meta keys holding the parent activity of a node's launch and
// termination steps, so that a retried job resumes them.
const (
	metaLaunchSteps    = "launch_steps"
	metaTerminateSteps = "terminate_steps"
)

// stepError is a lifecycle step that failed: its activity holds the output.
type stepError struct {
	step   int
	kind   string
	output string
	err    string
}

func (e *stepError) Error() string {
	msg := fmt.Sprintf("step %d (%s) failed: %s", e.step+1, e.kind, e.err)
	if out := strings.TrimSpace(e.output); out != "" {
		msg += "; output: " + sshx.Short(out, 300)
	}
	return msg
}

// hasLBStep reports whether a cluster's on_launch lists lb_register.
func hasLBStep(cl *cluster) bool {
	for _, a := range cl.cfg.OnLaunch {
		if a.Type == config.LBRegister {
			return true
		}
	}
	return false
}

// nodeSteps runs a node's lifecycle steps in order, each as a child activity
// of one parent activity (kind) recorded once and remembered in the node's
// meta (metaKey; empty: a new parent every call). Steps that succeeded are
// not run again; a step cut off by a crash runs again as interrupted (an
// action that is not idempotent then fails). A failed step skips the rest
// and is returned as a *stepError.
func (c *Controller) nodeSteps(ctx context.Context, cl *cluster, n *store.Node, kind, metaKey, cause string, steps []*config.Action) error {
	if len(steps) == 0 {
		return nil
	}
	parent, children, err := c.stepActivities(ctx, cl, n, kind, metaKey, cause, steps)
	if err != nil {
		return err
	}
	sort.Slice(children, func(i, j int) bool { return children[i].Step < children[j].Step })
	if parent.Status.Done() && parent.Status != store.ActivitySucceeded {
		for _, s := range children {
			if s.Status == store.ActivityFailed {
				return &stepError{step: s.Step, kind: s.Kind, output: s.Output, err: s.Error}
			}
		}
	}
	if _, err := c.st.ActivityUpdate(ctx, parent.ID, store.ActivityUpdate{Status: store.ActivityRunning}); err != nil {
		return err
	}
	for _, s := range children {
		switch s.Status {
		case store.ActivitySucceeded:
			continue
		case store.ActivityFailed:
			return c.stepsFailed(ctx, parent, children, s, s.Output, s.Error)
		default:
		}
		interrupted := s.Status == store.ActivityRunning
		upd := store.ActivityUpdate{Status: store.ActivityRunning}
		if s.StartedAt.IsZero() {
			upd.StartedAt = c.clock.Now()
		}
		if _, err := c.st.ActivityUpdate(ctx, s.ID, upd); err != nil {
			return err
		}
		out, runErr := c.runNodeStep(ctx, cl, *n, s, interrupted)
		if runErr != nil && ctx.Err() != nil {
			return ctx.Err() // stays running: resumed (as interrupted) by the next attempt
		}
		if runErr != nil {
			msg := strings.TrimPrefix(runErr.Error(), action.ErrPermanent.Error()+": ")
			return c.stepsFailed(ctx, parent, children, s, out, msg)
		}
		if _, err := c.st.ActivityUpdate(ctx, s.ID, store.ActivityUpdate{Status: store.ActivitySucceeded,
			Output: out, FinishedAt: c.clock.Now()}); err != nil {
			return err
		}
	}
	_, err = c.st.ActivityUpdate(ctx, parent.ID, store.ActivityUpdate{Status: store.ActivitySucceeded,
		Output: fmt.Sprintf("%d step(s) done", len(children)), FinishedAt: c.clock.Now()})
	return err
}

// stepsFailed records a failed step, skips the ones after it, fails the
// parent and returns the step's *stepError.
func (c *Controller) stepsFailed(ctx context.Context, parent store.Activity, children []store.Activity, failed store.Activity, out, msg string) error {
	now := c.clock.Now()
	se := &stepError{step: failed.Step, kind: failed.Kind, output: out, err: msg}
	var errs []error
	_, err := c.st.ActivityUpdate(ctx, failed.ID, store.ActivityUpdate{Status: store.ActivityFailed, Output: out, Error: msg, FinishedAt: now})
	errs = append(errs, err)
	for _, s := range children {
		if s.Step > failed.Step && !s.Status.Done() {
			_, err := c.st.ActivityUpdate(ctx, s.ID, store.ActivityUpdate{Status: store.ActivitySkipped,
				Error: fmt.Sprintf("not run: step %d (%s) failed", failed.Step+1, failed.Kind), FinishedAt: now})
			errs = append(errs, err)
		}
	}
	_, err = c.st.ActivityUpdate(ctx, parent.ID, store.ActivityUpdate{Status: store.ActivityFailed, Output: out, Error: se.Error(), FinishedAt: now})
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return se
}

// stepActivities returns the parent activity of a node's steps and its
// children, recording them first when the node has none yet.
func (c *Controller) stepActivities(ctx context.Context, cl *cluster, n *store.Node, kind, metaKey, cause string, steps []*config.Action) (store.Activity, []store.Activity, error) {
	var parent store.Activity
	err := c.st.Tx(ctx, func(tx store.Store) error {
		cur, err := tx.NodeGet(ctx, n.ID)
		if err != nil {
			return err
		}
		if id := cur.Meta[metaKey]; metaKey != "" && id != "" {
			var pid int64
			if _, err := fmt.Sscan(id, &pid); err == nil {
				if parent, err = tx.ActivityGet(ctx, pid); err == nil {
					return nil
				}
			}
		}
		now := c.clock.Now()
		parent, err = tx.ActivityCreate(ctx, store.Activity{Cluster: cl.cfg.Name, Node: n.ID, Kind: kind, Cause: cause,
			Status: store.ActivityRunning, CreatedAt: now, StartedAt: now})
		if err != nil {
			return err
		}
		for i, a := range steps {
			var params []byte
			if a.Config != nil {
				params = a.ParamsJSON()
			}
			if _, err := tx.ActivityCreate(ctx, store.Activity{ParentID: parent.ID, Cluster: cl.cfg.Name, Node: n.ID,
				Kind: a.Type, Cause: cause, Status: store.ActivityPending, Step: i, Params: params, CreatedAt: now}); err != nil {
				return err
			}
		}
		if metaKey == "" {
			return nil
		}
		cur.Meta = mergeMeta(cur.Meta, map[string]string{metaKey: fmt.Sprint(parent.ID)})
		if _, err := tx.NodeUpdate(ctx, cur); err != nil {
			return err
		}
		n.Meta = mergeMeta(n.Meta, map[string]string{metaKey: fmt.Sprint(parent.ID)})
		return nil
	})
	if err != nil {
		return parent, nil, fmt.Errorf("node %s: recording its %s steps: %w", n.ID, kind, err)
	}
	children, err := c.st.ActivityList(ctx, store.ActivityFilter{ParentID: parent.ID, Limit: 1000})
	if err != nil {
		return parent, nil, fmt.Errorf("node %s: listing its %s steps: %w", n.ID, kind, err)
	}
	return parent, children, nil
}

// runNodeStep runs one lifecycle step for a node.
func (c *Controller) runNodeStep(ctx context.Context, cl *cluster, n store.Node, s store.Activity, interrupted bool) (string, error) {
	if s.Kind == config.LBRegister {
		if cl.bal == nil {
			return "", fmt.Errorf("%w: the cluster has no load balancer", action.ErrPermanent)
		}
		if err := cl.bal.Register(ctx, backend(n)); err != nil {
			return "", fmt.Errorf("registering %s (%s) in the load balancer: %w", n.ID, n.Address, err)
		}
		return fmt.Sprintf("registered %s (%s) in the load balancer", n.ID, n.Address), nil
	}
	cfg, err := action.Registry.DecodeJSON(s.Kind, s.Params)
	if err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	// The cluster's SSH pool among the rest: distributed_script and
	// os_configuration work on the node over SSH.
	env := action.Env{Cluster: s.Cluster, DataDir: c.opts.DataDir, Logger: c.log.With("cluster", s.Cluster), SSH: cl.ssh}
	act, err := cfg.New(env)
	if err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	return act.Run(ctx, action.Run{Activity: s, Cluster: s.Cluster, Attempt: 1, Node: &n,
		Vars: c.actionVars(s, &n), Fleet: c.fleet(), Interrupted: interrupted})
}

// checkNode runs the cluster's health check against a node.
func (c *Controller) checkNode(ctx context.Context, cl *cluster, n store.Node) error {
	hc := cl.cfg.HealthCheck
	if hc.Type != "command" {
		return cl.health.check(ctx, backend(n))
	}
	ctx, cancel := context.WithTimeout(ctx, hc.Timeout.D())
	defer cancel()
	vars := nodeVars(cl, n)
	cmd, err := plugin.Render(hc.Command, vars)
	if err != nil {
		return fmt.Errorf("health_check.command: %w", err)
	}
	if hc.Local {
		x := exec.CommandContext(ctx, "sh", "-c", cmd)
		x.Env = os.Environ()
		for k, v := range vars {
			x.Env = append(x.Env, "GOSCALER_"+strings.ToUpper(k)+"="+v)
		}
		out, err := x.CombinedOutput()
		if err != nil {
			return fmt.Errorf("command %q: %w: %s", cmd, err, sshx.FirstLine(string(out)))
		}
		return nil
	}
	ep, err := sshx.NodeEndpoint(n.Address, n.Meta)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.ID, err)
	}
	if _, err := cl.ssh.Run(ctx, ep, cmd); err != nil {
		return fmt.Errorf("command %q: %w", cmd, err)
	}
	return nil
}
