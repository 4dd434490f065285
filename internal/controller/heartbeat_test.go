package controller

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/agent"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

func heartbeatYAML(timeout, grace string) string {
	return clusterYAML("    min: 2\n    max: 4", "1h", "    heartbeat: {timeout: "+timeout+", grace_period: "+grace+"}\n")
}

func TestMissedHeartbeats(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	e := newEnv(t, heartbeatYAML("10s", "5s"), withClock(clock))
	cl := e.ctl.clusters["web"]
	t0 := clock.Now()
	s := time.Second
	tests := []struct {
		name        string
		maintenance bool
		reportAt    time.Duration // -1: never
		leading     time.Duration // when the server began to lead
		now         time.Duration
		want        string
	}{
		{"no report, within timeout and grace", false, -1, -time.Hour, 14 * s, ""},
		{"no report, past timeout and grace", false, -1, -time.Hour, 15*s + 100*time.Millisecond,
			"missed its heartbeats: no heartbeat from its agent in the 15.1s since it went in service (heartbeat.timeout 10s, grace_period 5s)"},
		{"recent report", false, 1 * s, -time.Hour, 11 * s, ""},
		{"an early report, then silence", false, 1 * s, -time.Hour, 15*s + 500*time.Millisecond,
			"missed its heartbeats: its agent's last heartbeat came 14.5s ago (heartbeat.timeout 10s)"},
		{"a report after the grace period", false, 8 * s, -time.Hour, 18 * s, ""},
		{"silent for the timeout", false, 8 * s, -time.Hour, 18*s + 100*time.Millisecond, "its agent's last heartbeat came 10.1s ago"},
		{"the server just began to lead", false, 8 * s, 100 * s, 105 * s, ""},
		{"silent since the server began to lead", false, 8 * s, 100 * s, 110*s + 100*time.Millisecond, "its agent's last heartbeat came 1m42.1s ago"},
		{"never reported since the server began to lead", false, -1, 100 * s, 110*s + 100*time.Millisecond,
			"no heartbeat from its agent in the 10.1s since this server began to lead"},
		{"maintenance", true, -1, -time.Hour, time.Hour, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := store.Node{ID: fmt.Sprintf("web-%d", 100+i), Cluster: "web", State: store.NodeInService, InServiceAt: t0, Maintenance: tc.maintenance}
			if tc.reportAt >= 0 {
				clock.mu.Lock()
				clock.now = t0.Add(tc.reportAt)
				clock.mu.Unlock()
				e.ctl.agents.Receive(store.AgentReport{Node: n.ID, Cluster: "web"})
			}
			e.ctl.leadingSince = t0.Add(tc.leading)
			clock.mu.Lock()
			clock.now = t0.Add(tc.now)
			clock.mu.Unlock()
			got := e.ctl.missedHeartbeats(cl, n)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("missedHeartbeats = %q, want %q", got, tc.want)
			}
		})
	}
}

// A node whose agent stops sending heartbeats is failed and replaced; the
// node whose agent goes on is left alone.
func TestHeartbeatLossReplacesNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, heartbeatYAML("1s", "0s")).start()
	in := e.waitInService("web", 2)
	var mu sync.Mutex
	silent := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			for _, n := range e.nodes("web", store.NodeInService) {
				mu.Lock()
				quiet := silent[n.ID]
				mu.Unlock()
				if !quiet {
					_, _ = e.ctl.AgentHeartbeat(t.Context(), agent.Heartbeat{Node: n.ID, Cluster: "web",
						Counters: map[string]store.AgentReading{"load": {Value: 1}}})
				}
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()
	// Beating: nobody fails for longer than the timeout.
	time.Sleep(2 * time.Second)
	if acts := e.kind("web", "node_failed"); len(acts) != 0 {
		t.Fatalf("nodes failed while their agents beat: %+v", acts)
	}
	victim := in[0]
	mu.Lock()
	silent[victim.ID] = true
	mu.Unlock()
	waitFor(t, 10*time.Second, "the silent node to fail", func() (bool, string) {
		n := e.node(victim.ID)
		return n.State == store.NodeFailed || n.State == store.NodeTerminated, string(n.State) + " " + n.Reason
	})
	failed := e.kind("web", "node_failed")
	if len(failed) != 1 || failed[0].Node != victim.ID || !strings.Contains(failed[0].Cause, "missed its heartbeats") {
		t.Fatalf("node_failed activities %+v", failed)
	}
	now := e.waitInService("web", 2)
	for _, n := range now {
		if n.ID == victim.ID {
			t.Fatalf("the silent node is in service again")
		}
	}
	if s := e.node(in[1].ID).State; s != store.NodeInService {
		t.Fatalf("the beating node is %s", s)
	}
}

func TestAgentHeartbeatChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, heartbeatYAML("10s", "0s"))
	ctx := t.Context()
	for _, n := range []store.Node{
		{ID: "web-1", Cluster: "web", State: store.NodeConfiguring},
		{ID: "web-2", Cluster: "web", State: store.NodeFailed, Reason: "boom"},
	} {
		if _, err := e.st.NodeCreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// A node still configuring may report already.
	rep, err := e.ctl.AgentHeartbeat(ctx, agent.Heartbeat{Node: "web-1", Counters: map[string]store.AgentReading{"x": {Err: strings.Repeat("e", 5000)}}})
	if err != nil || rep.Cluster != "web" || len(rep.Counters["x"].Err) > 1100 {
		t.Fatalf("AgentHeartbeat = %+v, %v; want recorded with its error cut", rep, err)
	}
	if _, err := e.ctl.AgentHeartbeat(ctx, agent.Heartbeat{Node: "web-2"}); err == nil || !strings.Contains(err.Error(), "node web-2 is failed (boom)") {
		t.Errorf("a failed node's heartbeat: %v", err)
	}
	many := map[string]store.AgentReading{}
	for i := range maxAgentCounters + 1 {
		many[fmt.Sprint("c", i)] = store.AgentReading{Value: 1}
	}
	if _, err := e.ctl.AgentHeartbeat(ctx, agent.Heartbeat{Node: "web-1", Counters: many}); err == nil {
		t.Error("a heartbeat with too many counters was accepted")
	}
}

// Nodes whose agents all fall silent are replaced within
// health_check.max_replacing: one at a time here, the others recorded as
// paced and left in service meanwhile.
func TestHeartbeatLossIsPaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
server:
  tick: 50ms
clusters:
  - name: web
    min: 3
    max: 4
    provider: {type: fake, instance: "{{I}}"}
    health_check: {type: none, max_replacing: 1}
    heartbeat: {timeout: 1s}
`)
	// Replacements boot slowly: the first one is still coming up when the
	// others are found silent.
	slow := make(chan struct{})
	e.prov.OnCreate(func(s provider.NodeSpec) {
		if s.NodeID > "web-3" {
			<-slow
		}
	})
	defer close(slow)
	e.start()
	in := e.waitInService("web", 3)
	waitFor(t, 10*time.Second, "one silent node failed and the others paced", func() (bool, string) {
		failed := e.kind("web", "node_failed")
		paced := e.kind("web", KindHealingPaced)
		return len(failed) == 1 && len(paced) == 2, fmt.Sprintf("%d failed, %d paced", len(failed), len(paced))
	})
	time.Sleep(1500 * time.Millisecond)
	failed := e.kind("web", "node_failed")
	if len(failed) != 1 {
		t.Fatalf("node_failed %+v: want one node only while its replacement boots", failed)
	}
	oldest := in[0]
	for _, n := range in {
		if n.InServiceAt.Before(oldest.InServiceAt) {
			oldest = n
		}
	}
	if first := e.node(failed[0].Node); !first.InServiceAt.Equal(oldest.InServiceAt) {
		t.Errorf("failed %s first (in service at %s), want a node longest in service (%s at %s)",
			first.ID, first.InServiceAt, oldest.ID, oldest.InServiceAt)
	}
	for _, p := range e.kind("web", KindHealingPaced) {
		if !strings.Contains(p.Cause, "missed its heartbeats") || !strings.Contains(p.Cause, "max_replacing allows 1") {
			t.Errorf("paced cause %q", p.Cause)
		}
	}
}
