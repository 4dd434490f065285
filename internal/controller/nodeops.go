package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/store"
)

// KindExec is the activity of a command run on nodes by hand.
const KindExec = "exec"

// maxExecOutput bounds the stdout and stderr kept per node of an exec.
const maxExecOutput = 1 << 20

// ExecResult is how a command ended on one node.
type ExecResult struct {
	Node     string `json:"node"`
	Endpoint string `json:"endpoint"`
	// ExitCode is the command's exit status (-1: it did not run to the
	// end, see Error).
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// ExecReport is the outcome of a command run on nodes.
type ExecReport struct {
	Activity int64        `json:"activity"`
	Results  []ExecResult `json:"results"`
}

// Exec runs command over SSH on the named nodes of a cluster (all its
// in-service nodes when nodes is empty), at once, and records it as an
// activity. The answer holds every node's result, failed ones included;
// the error is for a request that cannot run at all.
func (c *Controller) Exec(ctx context.Context, clusterName, command string, nodes []string, timeout time.Duration) (ExecReport, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return ExecReport{}, err
	}
	if strings.TrimSpace(command) == "" {
		return ExecReport{}, fmt.Errorf("%w: no command given", ErrInvalid)
	}
	targets, err := c.execTargets(ctx, clusterName, nodes)
	if err != nil {
		return ExecReport{}, err
	}
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	a := c.activity(ctx, c.st, store.Activity{Cluster: clusterName, Kind: KindExec, Status: store.ActivityRunning,
		Node: strings.Join(nodes, ","), Cause: fmt.Sprintf("exec on %d node(s): %s", len(targets), sshx.Short(command, 200))})
	results := make([]ExecResult, len(targets))
	var wg sync.WaitGroup
	for i, n := range targets {
		wg.Go(func() { results[i] = c.execOn(ctx, cl, n, command, timeout) })
	}
	wg.Wait()
	var sum strings.Builder
	failed := 0
	for _, r := range results {
		fmt.Fprintf(&sum, "%s: exit %d in %dms", r.Node, r.ExitCode, r.DurationMS)
		if r.Error != "" {
			fmt.Fprintf(&sum, " (%s)", r.Error)
		}
		if out := strings.TrimSpace(r.Stdout); out != "" {
			fmt.Fprintf(&sum, ": %s", sshx.Short(sshx.FirstLine(out), 200))
		}
		sum.WriteByte('\n')
		if r.ExitCode != 0 {
			failed++
		}
	}
	upd := store.ActivityUpdate{Status: store.ActivitySucceeded, Output: sum.String(), FinishedAt: c.clock.Now()}
	if failed > 0 {
		upd.Status, upd.Error = store.ActivityFailed, fmt.Sprintf("failed on %d of %d node(s)", failed, len(results))
	}
	if _, err := c.st.ActivityUpdate(context.WithoutCancel(ctx), a.ID, upd); err != nil {
		c.log.Warn("recording exec failed", "cluster", clusterName, "err", err)
	}
	return ExecReport{Activity: a.ID, Results: results}, nil
}

// execTargets returns the nodes named (which must be in service), or every
// in-service node.
func (c *Controller) execTargets(ctx context.Context, clusterName string, names []string) ([]store.Node, error) {
	serving, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: clusterName, States: []store.NodeState{store.NodeInService}})
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		if len(serving) == 0 {
			return nil, fmt.Errorf("%w: cluster %q has no node in service", ErrInvalid, clusterName)
		}
		return serving, nil
	}
	var out []store.Node
	for _, name := range names {
		i := slices.IndexFunc(serving, func(n store.Node) bool { return n.ID == name })
		if i < 0 {
			n, err := c.st.NodeGet(ctx, name)
			if err != nil || n.Cluster != clusterName {
				return nil, fmt.Errorf("cluster %q has no node %q: %w", clusterName, name, store.ErrNotFound)
			}
			return nil, fmt.Errorf("%w: node %s is %s, not in service", ErrInvalid, name, n.State)
		}
		out = append(out, serving[i])
	}
	return out, nil
}

func (c *Controller) execOn(ctx context.Context, cl *cluster, n store.Node, command string, timeout time.Duration) ExecResult {
	r := ExecResult{Node: n.ID, ExitCode: -1}
	ep, err := sshx.NodeEndpoint(n.Address, n.Meta)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Endpoint = cl.ssh.Resolve(ep).String()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res, err := cl.ssh.RunWith(ctx, ep, command, sshx.RunOptions{MaxStdout: maxExecOutput, MaxStderr: maxExecOutput})
	r.DurationMS = time.Since(start).Milliseconds()
	r.Stdout, r.Stderr = string(res.Stdout), string(res.Stderr)
	var exit *sshx.ExitError
	switch {
	case err == nil:
		r.ExitCode = 0
	case errors.As(err, &exit):
		r.ExitCode = exit.Code
		if exit.Signal != "" {
			r.Error = err.Error()
		}
	default:
		r.Error = err.Error()
	}
	return r
}

// SSHInfo is how to open an SSH session to a node from the operator's
// machine: the node's endpoint and the cluster's key and known_hosts file
// paths (never a key itself).
type SSHInfo struct {
	Node            string   `json:"node"`
	Host            string   `json:"host"`
	Port            int      `json:"port"`
	User            string   `json:"user,omitempty"`
	IdentityFiles   []string `json:"identity_files,omitempty"`
	KnownHosts      string   `json:"known_hosts,omitempty"`
	TrustOnFirstUse bool     `json:"trust_on_first_use,omitempty"`
}

// NodeSSH returns how to reach a node over SSH.
func (c *Controller) NodeSSH(ctx context.Context, clusterName, nodeID string) (SSHInfo, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return SSHInfo{}, err
	}
	n, err := c.st.NodeGet(ctx, nodeID)
	if err != nil || n.Cluster != clusterName {
		return SSHInfo{}, fmt.Errorf("cluster %q has no node %q: %w", clusterName, nodeID, store.ErrNotFound)
	}
	if !n.State.Active() {
		return SSHInfo{}, fmt.Errorf("%w: node %s is %s", ErrInvalid, nodeID, n.State)
	}
	ep, err := sshx.NodeEndpoint(n.Address, n.Meta)
	if err != nil {
		return SSHInfo{}, fmt.Errorf("%w: node %s: %w", ErrInvalid, nodeID, err)
	}
	ep = cl.ssh.Resolve(ep)
	info := SSHInfo{Node: n.ID, Host: ep.Host, Port: ep.Port, User: ep.User}
	if s := cl.cfg.SSH; s != nil {
		info.IdentityFiles, info.KnownHosts, info.TrustOnFirstUse = s.IdentityFiles, s.KnownHosts, s.TrustOnFirstUse
	}
	return info, nil
}

// Reconfigure runs the cluster's configuration steps (its on_launch steps
// but lb_register) again on an in-service node, as a reconfigure_node
// activity whose steps carry their output.
func (c *Controller) Reconfigure(ctx context.Context, clusterName, nodeID string) (store.Activity, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return store.Activity{}, err
	}
	n, err := c.st.NodeGet(ctx, nodeID)
	if err != nil || n.Cluster != clusterName {
		return store.Activity{}, fmt.Errorf("cluster %q has no node %q: %w", clusterName, nodeID, store.ErrNotFound)
	}
	if n.State != store.NodeInService {
		return store.Activity{}, fmt.Errorf("%w: node %s is %s, not in service", ErrInvalid, nodeID, n.State)
	}
	var steps []*config.Action
	for _, a := range cl.cfg.OnLaunch {
		if a.Type != config.LBRegister {
			steps = append(steps, a)
		}
	}
	if len(steps) == 0 {
		return store.Activity{}, fmt.Errorf("%w: cluster %q has no on_launch steps to run again", ErrInvalid, clusterName)
	}
	err = c.nodeSteps(ctx, cl, &n, KindReconfigureNode, "", fmt.Sprintf("reconfigure node %s by hand", n.ID), steps)
	var se *stepError
	if err != nil && !errors.As(err, &se) {
		return store.Activity{}, err
	}
	acts, lerr := c.st.ActivityList(ctx, store.ActivityFilter{Cluster: clusterName, Kind: KindReconfigureNode, Limit: 20})
	if lerr != nil {
		return store.Activity{}, lerr
	}
	for _, a := range acts {
		if a.Node == n.ID {
			return a, nil
		}
	}
	return store.Activity{}, err
}
