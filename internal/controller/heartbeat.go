package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/agent"
	"github.com/goscaler/goscaler/internal/store"
)

// heartbeatEvery is how often a cluster's nodes are checked for missed
// heartbeats (at most; a short timeout checks more often).
const heartbeatEvery = time.Second

// heartbeatLoop fails the in-service nodes whose agent has been silent for
// longer than the cluster's heartbeat.timeout: they are replaced like any
// other unhealthy node, within health_check.max_replacing.
func (c *Controller) heartbeatLoop(ctx context.Context, cl *cluster) {
	hb := cl.cfg.Heartbeat
	t := time.NewTicker(min(heartbeatEvery, max(hb.Timeout.D()/4, 50*time.Millisecond)))
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
		var silent []unhealthyNode
		for _, n := range nodes {
			if reason := c.missedHeartbeats(cl, n); reason != "" {
				silent = append(silent, unhealthyNode{n: n, err: errors.New(reason)})
			} else {
				delete(paced, n.ID)
			}
		}
		if len(silent) == 0 || ctx.Err() != nil {
			continue
		}
		sort.Slice(silent, func(i, j int) bool { return silent[i].n.InServiceAt.Before(silent[j].n.InServiceAt) })
		allowed, replacing, limit := c.healingRoom(ctx, cl, len(nodes))
		for _, u := range silent {
			if allowed == 0 {
				if !paced[u.n.ID] {
					paced[u.n.ID] = true
					c.activity(ctx, c.st, store.Activity{Cluster: cl.cfg.Name, Node: u.n.ID, Kind: KindHealingPaced,
						Cause: fmt.Sprintf("node %s %v, but stays in service for now: %d node(s) are being replaced, health_check.max_replacing allows %d (%s)",
							u.n.ID, u.err, replacing, limit, cl.cfg.HealthCheck.MaxReplacing)})
				}
				continue
			}
			if allowed > 0 {
				allowed--
			}
			delete(paced, u.n.ID)
			if err := c.nodeFailed(ctx, cl, u.n, u.err.Error()); err != nil {
				c.log.Error("failing a node that missed its heartbeats", "node", u.n.ID, "err", err)
			}
		}
	}
}

// missedHeartbeats says why node n missed its heartbeats, or "" if it did
// not. A node has heartbeat.timeout (plus grace_period for the first one)
// after it went in service, or after this server began to lead, whichever
// is later: a server that was down does not blame the agents.
func (c *Controller) missedHeartbeats(cl *cluster, n store.Node) string {
	hb := cl.cfg.Heartbeat
	if n.Maintenance || n.State != store.NodeInService {
		return ""
	}
	now := c.clock.Now()
	c.leadingMu.RLock()
	since := c.leadingSince
	c.leadingMu.RUnlock()
	start := n.InServiceAt.Add(hb.GracePeriod.D())
	if since.After(start) {
		start = since
	}
	last, reported := c.agents.Latest(n.ID)
	ref := start
	if reported && last.ReceivedAt.After(ref) {
		ref = last.ReceivedAt
	}
	if now.Sub(ref) <= hb.Timeout.D() {
		return ""
	}
	if reported {
		return fmt.Sprintf("missed its heartbeats: its agent's last heartbeat came %s ago (heartbeat.timeout %s)",
			now.Sub(last.ReceivedAt).Round(100*time.Millisecond), hb.Timeout)
	}
	what := fmt.Sprintf("in the %s since it went in service", now.Sub(n.InServiceAt).Round(100*time.Millisecond))
	if start.Equal(since) {
		what = fmt.Sprintf("in the %s since this server began to lead", now.Sub(since).Round(100*time.Millisecond))
	}
	return fmt.Sprintf("missed its heartbeats: no heartbeat from its agent %s (heartbeat.timeout %s%s); is goscaler agent running on it?",
		what, hb.Timeout, graceNote(cl))
}

func graceNote(cl *cluster) string {
	if g := cl.cfg.Heartbeat.GracePeriod; g > 0 {
		return ", grace_period " + g.String()
	}
	return ""
}

// AgentHeartbeat records a heartbeat of a node's agent with the counters it
// measured. The node must exist, be of the given cluster (if any) and not be
// gone. It returns the report as recorded.
func (c *Controller) AgentHeartbeat(ctx context.Context, hb agent.Heartbeat) (store.AgentReport, error) {
	if hb.Node == "" {
		return store.AgentReport{}, fmt.Errorf("%w: the heartbeat names no node: send {\"node\": ID, ...}", ErrInvalid)
	}
	if len(hb.Counters) > maxAgentCounters {
		return store.AgentReport{}, fmt.Errorf("%w: %d counters in one heartbeat, at most %d", ErrInvalid, len(hb.Counters), maxAgentCounters)
	}
	var problems []string
	for name, r := range hb.Counters {
		if err := agent.ValidName(name); err != nil {
			problems = append(problems, err.Error())
		}
		if len(r.Err) > maxAgentError {
			r.Err = r.Err[:maxAgentError] + "…"
			hb.Counters[name] = r
		}
	}
	if len(problems) > 0 {
		return store.AgentReport{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	n, err := c.st.NodeGet(ctx, hb.Node)
	if err != nil {
		return store.AgentReport{}, err
	}
	if hb.Cluster != "" && hb.Cluster != n.Cluster {
		return store.AgentReport{}, fmt.Errorf("%w: node %s is of cluster %q, not %q", ErrInvalid, n.ID, n.Cluster, hb.Cluster)
	}
	if n.State.Gone() || n.State == store.NodeFailed {
		return store.AgentReport{}, fmt.Errorf("%w: node %s is %s (%s): its agent should stop", ErrGone, n.ID, n.State, n.Reason)
	}
	return c.agents.Receive(store.AgentReport{Node: n.ID, Cluster: n.Cluster, Counters: hb.Counters}), nil
}

// Limits of an agent's heartbeat.
const (
	maxAgentCounters = 200
	maxAgentError    = 1000
)
