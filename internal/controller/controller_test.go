package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/script"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// clusterYAML is a one-cluster configuration named web on the fakes, with a
// node-scoped fake counter "inflight"; extra is appended to the cluster (its
// triggers, …) and may override nothing.
func clusterYAML(bounds, counterInterval, extra string) string {
	return `
server:
  tick: 50ms
clusters:
  - name: web
` + bounds + `
    provider: {type: fake, instance: "{{I}}"}
    load_balancer: {type: fake, instance: "{{I}}"}
    health_check: {type: none}
    counters:
      - {name: inflight, type: fake, instance: "{{I}}", interval: ` + counterInterval + `}
` + extra
}

func TestReconcileFromEmpty(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		bounds string
		want   int
	}{
		{"min", "    min: 2\n    max: 4", 2},
		{"desired", "    min: 0\n    max: 5\n    desired: 3", 3},
		{"zero", "    min: 0\n    max: 2", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, clusterYAML(tt.bounds, "1h", "")).start()
			in := e.waitInService("web", tt.want)
			// A few more reconcile ticks change nothing.
			time.Sleep(200 * time.Millisecond)
			if got := len(e.nodes("web")); got != tt.want {
				t.Fatalf("%d nodes, want %d", got, tt.want)
			}
			for _, n := range in {
				if c := e.prov.CreateCallsFor(n.ID); c != 1 {
					t.Errorf("node %s: %d Create calls, want 1", n.ID, c)
				}
				m, ok := e.prov.Machine(n.ID)
				if !ok || m.ID != n.MachineID || m.Address != n.Address {
					t.Errorf("node %s: machine %q at %q, provider has %+v", n.ID, n.MachineID, n.Address, m)
				}
				if !e.bal.Registered(n.ID) {
					t.Errorf("node %s is in service but not in the load balancer", n.ID)
				}
				evs, err := e.st.NodeEvents(t.Context(), n.ID)
				if err != nil {
					t.Fatal(err)
				}
				var path []string
				for _, ev := range evs {
					path = append(path, string(ev.To))
				}
				if got := strings.Join(path, " → "); got != "pending → provisioning → configuring → in_service" {
					t.Errorf("node %s went %s", n.ID, got)
				}
			}
			deploys := e.kind("web", "deploy_node")
			if tt.want == 0 {
				if len(deploys) != 0 {
					t.Fatalf("deploy activities for an empty cluster: %+v", deploys)
				}
				return
			}
			if len(deploys) != 1 {
				t.Fatalf("%d deploy_node activities, want 1: %+v", len(deploys), deploys)
			}
			d := deploys[0]
			wantCause := fmt.Sprintf("reconcile: 0 node(s) active or starting, %d desired", tt.want)
			if d.Cause != wantCause || d.Status != store.ActivitySucceeded || d.FinishedAt.IsZero() {
				t.Errorf("deploy activity = %q %s, want %q succeeded", d.Cause, d.Status, wantCause)
			}
			for _, n := range in {
				if !strings.Contains(d.Output, n.ID) {
					t.Errorf("deploy output %q does not name %s", d.Output, n.ID)
				}
				if n.LaunchActivity != d.ID {
					t.Errorf("node %s launched by activity %d, want %d", n.ID, n.LaunchActivity, d.ID)
				}
			}
		})
	}
}

// scaleOutYAML has a trigger scale-out: avg inflight > 20 for 2s, then deploy_node.
func scaleOutYAML(bounds string, count int) string {
	return clusterYAML(bounds, "100ms", fmt.Sprintf(`    triggers:
      - name: scale-out
        counter: inflight
        above: 20
        for: 2s
        cooldown: 1m
        actions:
          - {type: deploy_node, count: %d}
`, count))
}

func TestTriggerScaleOut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		bounds      string
		count       int
		wantFire    bool
		wantDesired int
	}{
		{"launches count", "    min: 2\n    max: 5", 2, true, 4},
		{"never past max", "    min: 2\n    max: 3", 2, true, 3},
		{"at max does not fire", "    min: 2\n    max: 2", 1, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			e := newEnv(t, scaleOutYAML(tt.bounds, tt.count), withClock(clock))
			e.src.SetAllErr(errNotYet)
			e.start()
			e.waitInService("web", 2)
			e.src.Set("web-1", 25)
			e.src.Set("web-2", 30)
			e.waitAggregate("web", "inflight", func(s store.Sample) bool { return s.OK() && s.Reporting == 2 })
			if got := e.kind("web", "trigger"); len(got) != 0 {
				t.Fatalf("fired before its 2s: %+v", got)
			}
			clock.Advance(2 * time.Second)

			if !tt.wantFire {
				e.waitCollections("web", "inflight", 3)
				if got := e.kind("web", "trigger"); len(got) != 0 {
					t.Fatalf("a cluster at max fired: %+v", got)
				}
				if d := e.clusterRec("web").Desired; d != tt.wantDesired {
					t.Fatalf("desired %d, want %d", d, tt.wantDesired)
				}
				return
			}
			var fired []store.Activity
			waitFor(t, 10*time.Second, "the trigger to fire", func() (bool, string) {
				fired = e.kind("web", "trigger")
				return len(fired) > 0, ""
			})
			if want := "trigger scale-out: avg inflight 27.5 > 20 for 2s"; fired[0].Cause != want {
				t.Errorf("cause %q, want %q", fired[0].Cause, want)
			}
			steps := e.waitSteps(fired[0].ID)
			if len(steps) != 1 || steps[0].Kind != "deploy_node" || steps[0].Status != store.ActivitySucceeded {
				t.Fatalf("steps = %+v", steps)
			}
			if steps[0].Cause != fired[0].Cause {
				t.Errorf("step cause %q, want the trigger's", steps[0].Cause)
			}
			launched := 0
			for _, n := range e.nodes("web") {
				if n.LaunchActivity == steps[0].ID {
					launched++
					if n.State != store.NodeInService {
						t.Errorf("launched node %s is %s", n.ID, n.State)
					}
				}
			}
			if want := tt.wantDesired - 2; launched != want {
				t.Errorf("the step launched %d node(s), want %d", launched, want)
			}
			if d := e.clusterRec("web").Desired; d != tt.wantDesired {
				t.Errorf("desired %d, want %d", d, tt.wantDesired)
			}
			for _, n := range e.nodes("web") {
				if n.LaunchActivity == steps[0].ID && !strings.Contains(steps[0].Output, n.ID) {
					t.Errorf("step output %q does not name launched node %s", steps[0].Output, n.ID)
				}
			}
			e.waitInService("web", tt.wantDesired)

			// It fired once: later samples, still past the threshold, do not
			// fire it again (cooldown), and the reconciler adds nothing.
			clock.Advance(3 * time.Second)
			e.waitCollections("web", "inflight", 3)
			if got := e.kind("web", "trigger"); len(got) != 1 {
				t.Errorf("%d firings, want 1", len(got))
			}
			st, err := e.st.TriggerStateGet(t.Context(), "web", "scale-out")
			if err != nil || st.Firings != 1 || st.CooldownUntil.IsZero() {
				t.Errorf("trigger state = %+v, %v", st, err)
			}
			if got := len(e.nodes("web")); got != tt.wantDesired {
				t.Errorf("%d nodes, want %d", got, tt.wantDesired)
			}
			if c := len(e.prov.CreateCalls()); c != tt.wantDesired {
				t.Errorf("%d Create calls, want %d", c, tt.wantDesired)
			}
		})
	}
}

// scaleInYAML has a trigger scale-in: avg inflight < 5 for 1s, then remove_node.
func scaleInYAML(bounds string, count int) string {
	return clusterYAML(bounds, "100ms", fmt.Sprintf(`    triggers:
      - name: scale-in
        counter: inflight
        below: 5
        for: 1s
        cooldown: 1m
        actions:
          - {type: remove_node, count: %d}
`, count))
}

func TestTriggerScaleIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		bounds      string
		start       int
		count       int
		wantFire    bool
		wantDesired int
	}{
		{"removes count", "    min: 1\n    max: 5\n    desired: 3", 3, 1, true, 2},
		{"never below min", "    min: 1\n    max: 5\n    desired: 3", 3, 5, true, 1},
		{"at min does not fire", "    min: 2\n    max: 5", 2, 1, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			e := newEnv(t, scaleInYAML(tt.bounds, tt.count), withClock(clock))
			e.src.SetAllErr(errNotYet)
			// The load balancer must have drained a node before its machine goes.
			var mu sync.Mutex
			var violations []string
			e.prov.OnDelete(func(m provider.Machine) {
				if !e.bal.Deregistered(m.NodeID) || e.bal.Registered(m.NodeID) {
					mu.Lock()
					violations = append(violations, m.NodeID)
					mu.Unlock()
				}
			})
			e.start()
			before := e.waitInService("web", tt.start)
			e.src.SetAll(1)
			e.waitAggregate("web", "inflight", func(s store.Sample) bool { return s.OK() && s.Reporting == tt.start })
			clock.Advance(time.Second)

			if !tt.wantFire {
				e.waitCollections("web", "inflight", 3)
				if got := e.kind("web", "trigger"); len(got) != 0 {
					t.Fatalf("a cluster at min fired: %+v", got)
				}
				return
			}
			var fired []store.Activity
			waitFor(t, 10*time.Second, "the trigger to fire", func() (bool, string) {
				fired = e.kind("web", "trigger")
				return len(fired) > 0, ""
			})
			if want := "trigger scale-in: avg inflight 1 < 5 for 1s"; fired[0].Cause != want {
				t.Errorf("cause %q, want %q", fired[0].Cause, want)
			}
			steps := e.waitSteps(fired[0].ID)
			if len(steps) != 1 || steps[0].Kind != "remove_node" || steps[0].Status != store.ActivitySucceeded {
				t.Fatalf("steps = %+v", steps)
			}
			in := e.waitInService("web", tt.wantDesired)
			if d := e.clusterRec("web").Desired; d != tt.wantDesired {
				t.Errorf("desired %d, want %d", d, tt.wantDesired)
			}
			// Oldest first: the nodes left are the newest.
			removed := before[:tt.start-tt.wantDesired]
			for i, n := range in {
				if want := before[tt.start-tt.wantDesired+i].ID; n.ID != want {
					t.Errorf("node %s kept, want %s", n.ID, want)
				}
			}
			deleted := map[string]bool{}
			for _, id := range e.prov.DeleteCalls() {
				deleted[id] = true
			}
			for _, n := range removed {
				cur := e.node(n.ID)
				if cur.State != store.NodeTerminated {
					t.Errorf("removed node %s is %s", n.ID, cur.State)
				}
				if !deleted[n.MachineID] {
					t.Errorf("machine %s of removed node %s was not deleted", n.MachineID, n.ID)
				}
				if !e.bal.Deregistered(n.ID) {
					t.Errorf("removed node %s was never deregistered", n.ID)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(violations) > 0 {
				t.Errorf("machines deleted before their node left the load balancer: %v", violations)
			}
		})
	}
}

// Missing data is never "low": a scale-in trigger does not fire on errors, nor
// on an average that some nodes are missing from (they may be the busy ones).
func TestMissingDataNeverFiresScaleIn(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection refused")
	tests := []struct {
		name     string
		set      func(e *env)
		wantFire bool
	}{
		{"every node fails", func(e *env) { e.src.SetAllErr(boom) }, false},
		{"most nodes fail", func(e *env) {
			e.src.SetAllErr(boom)
			e.src.Set("web-1", 1)
		}, false},
		{"readings are NaN", func(e *env) { e.src.SetAll(math.NaN()) }, false},
		{"readings are infinite", func(e *env) { e.src.SetAll(math.Inf(-1)) }, false},
		{"one node fails, the others read low", func(e *env) {
			e.src.SetAll(1)
			e.src.SetErr("web-3", boom)
		}, false},
		{"control: every node reads low", func(e *env) { e.src.SetAll(1) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			e := newEnv(t, scaleInYAML("    min: 1\n    max: 5\n    desired: 3", 1), withClock(clock))
			e.src.SetAllErr(errNotYet)
			e.start()
			e.waitInService("web", 3)
			tt.set(e)
			// Several windows of the trigger's 1s pass with this data.
			for range 3 {
				e.waitCollections("web", "inflight", 3)
				clock.Advance(1500 * time.Millisecond)
			}
			e.waitCollections("web", "inflight", 3)
			fired := len(e.kind("web", "trigger")) > 0
			if fired != tt.wantFire {
				last, _ := e.ctl.Latest("web", "inflight")
				t.Fatalf("fired = %v, want %v (last aggregate %+v)", fired, tt.wantFire, last.Aggregate)
			}
			if !tt.wantFire {
				if d := e.clusterRec("web").Desired; d != 3 {
					t.Fatalf("desired %d, want 3", d)
				}
				last, _ := e.ctl.Latest("web", "inflight")
				if last.Aggregate.Expected != 3 {
					t.Fatalf("aggregate expected %d nodes, want 3: %+v", last.Aggregate.Expected, last.Aggregate)
				}
				if last.Aggregate.OK() && last.Aggregate.Reporting == 3 {
					t.Fatalf("aggregate of missing data is complete: %+v", last.Aggregate)
				}
			}
		})
	}
}

// pipelineYAML has a trigger "pipeline" whose actions are steps; its counter
// is never collected (1h), so it fires only by hand.
func pipelineYAML(steps string) string {
	return clusterYAML("    min: 0\n    max: 2", "1h", `    triggers:
      - name: pipeline
        counter: inflight
        above: 100
        actions:
`+steps)
}

func TestActionsRunInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pipelineYAML(`          - {type: fake, instance: "{{I}}", name: one}
          - {type: fake, instance: "{{I}}", name: two}
          - {type: fake, instance: "{{I}}", name: three}
`)).start()
	release := e.act.Hold("two")
	parent, err := e.ctl.Fire(t.Context(), "web", "pipeline", "by test")
	if err != nil {
		t.Fatal(err)
	}
	if parent.Kind != "trigger" || parent.Cause != "by test" || parent.Trigger != "pipeline" {
		t.Fatalf("decision = %+v", parent)
	}
	waitFor(t, 10*time.Second, "step two to start", func() (bool, string) {
		names := e.act.Names()
		return len(names) == 2, strings.Join(names, ",")
	})
	// While step two runs, step three waits.
	steps := e.activities(store.ActivityFilter{ParentID: parent.ID})
	sortSteps(steps)
	if len(steps) != 3 || steps[0].Status != store.ActivitySucceeded || steps[1].Status != store.ActivityRunning ||
		steps[2].Status != store.ActivityPending {
		t.Fatalf("while step 2 runs: %+v", steps)
	}
	time.Sleep(100 * time.Millisecond)
	if names := e.act.Names(); len(names) != 2 {
		t.Fatalf("step three started before step two ended: %v", names)
	}
	release()
	steps = e.waitSteps(parent.ID)
	if got := strings.Join(e.act.Names(), ","); got != "one,two,three" {
		t.Fatalf("ran %s, want one,two,three", got)
	}
	for i, s := range steps {
		if s.Status != store.ActivitySucceeded || s.Step != i || s.Output != "ran "+[]string{"one", "two", "three"}[i] {
			t.Errorf("step %d = %s %q", i, s.Status, s.Output)
		}
		if i > 0 && s.StartedAt.Before(steps[i-1].FinishedAt) {
			t.Errorf("step %d started before step %d finished", i, i-1)
		}
	}
	runs := e.act.Runs()
	if runs[0].Vars["Trigger"] != "pipeline" || runs[0].Vars["Cause"] != "by test" || runs[0].Vars["Cluster"] != "web" {
		t.Errorf("vars of a step = %v", runs[0].Vars)
	}
}

func TestFailedStepSkipsTheRest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		steps      string
		setup      func(e *env)
		wantStatus []store.ActivityStatus
		wantError  []string // substrings of each step's Error
		wantOutput string   // substring of the failed step's Output
		wantRuns   string
	}{
		{
			name: "local_script exits 3",
			steps: `          - {type: local_script, shell: "echo working; echo 'no space left' >&2; exit 3"}
          - {type: fake, instance: "{{I}}", name: after}
`,
			wantStatus: []store.ActivityStatus{store.ActivityFailed, store.ActivitySkipped},
			wantError:  []string{"exit code 3: no space left", "not run: step 1 (local_script) failed"},
			wantOutput: "exit code 3 after",
			wantRuns:   "",
		},
		{
			name: "middle step fails for good",
			steps: `          - {type: fake, instance: "{{I}}", name: one}
          - {type: fake, instance: "{{I}}", name: two}
          - {type: fake, instance: "{{I}}", name: three}
          - {type: fake, instance: "{{I}}", name: four}
`,
			setup: func(e *env) {
				e.act.SetResult("two", "half done", fmt.Errorf("%w: the disk is full", action.ErrPermanent))
			},
			wantStatus: []store.ActivityStatus{store.ActivitySucceeded, store.ActivityFailed, store.ActivitySkipped, store.ActivitySkipped},
			wantError:  []string{"", "the disk is full", "not run: step 2 (fake) failed", "not run: step 2 (fake) failed"},
			wantOutput: "half done",
			wantRuns:   "one,two",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, pipelineYAML(tt.steps))
			if tt.setup != nil {
				tt.setup(e)
			}
			e.start()
			parent, err := e.ctl.Fire(t.Context(), "web", "pipeline", "by test")
			if err != nil {
				t.Fatal(err)
			}
			steps := e.waitSteps(parent.ID)
			if len(steps) != len(tt.wantStatus) {
				t.Fatalf("%d steps, want %d", len(steps), len(tt.wantStatus))
			}
			for i, s := range steps {
				if s.Status != tt.wantStatus[i] {
					t.Errorf("step %d (%s) is %s, want %s", i, s.Kind, s.Status, tt.wantStatus[i])
				}
				if tt.wantError[i] == "" && s.Error != "" || !strings.Contains(s.Error, tt.wantError[i]) {
					t.Errorf("step %d error %q, want %q", i, s.Error, tt.wantError[i])
				}
				if s.Status == store.ActivityFailed {
					if !strings.Contains(s.Output, tt.wantOutput) {
						t.Errorf("step %d output %q lacks %q", i, s.Output, tt.wantOutput)
					}
					if strings.HasPrefix(s.Error, action.ErrPermanent.Error()) {
						t.Errorf("step %d error shows the internal sentinel: %q", i, s.Error)
					}
				}
				if s.Status == store.ActivitySkipped && !s.StartedAt.IsZero() {
					t.Errorf("skipped step %d has a start time", i)
				}
			}
			if tt.name == "local_script exits 3" {
				for _, w := range []string{"--- stdout\nworking\n", "--- stderr\nno space left\n"} {
					if !strings.Contains(steps[0].Output, w) {
						t.Errorf("script output lacks %q:\n%s", w, steps[0].Output)
					}
				}
			}
			if got := strings.Join(e.act.Names(), ","); got != tt.wantRuns {
				t.Errorf("fake steps ran %q, want %q", got, tt.wantRuns)
			}
		})
	}
}

// tcpNodes makes the fake provider give every machine a real TCP listener,
// and returns a function that closes a node's listener (its service dies
// while its machine runs).
// Nodes in silent get an address where nothing listens.
func tcpNodes(t *testing.T, e *env, silent ...string) (kill func(nodeID string)) {
	var mu sync.Mutex
	lns := map[string]net.Listener{}
	e.prov.SetAddress(func(s provider.NodeSpec) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if slices.Contains(silent, s.NodeID) && err == nil {
			addr := ln.Addr().String()
			_ = ln.Close()
			return addr
		}
		if err != nil {
			t.Errorf("listen: %v", err)
			return "127.0.0.1:1"
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		mu.Lock()
		lns[s.NodeID] = ln
		mu.Unlock()
		return ln.Addr().String()
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ln := range lns {
			_ = ln.Close()
		}
	})
	return func(nodeID string) {
		mu.Lock()
		defer mu.Unlock()
		_ = lns[nodeID].Close()
	}
}

func TestSelfHealing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		health    string
		kill      func(e *env, tcpKill func(string))
		wantCause string
		deletes   bool // whether the machine still existed to be deleted
	}{
		{"machine vanished", "{type: none}", func(e *env, _ func(string)) { e.prov.KillNode("web-1") },
			"node web-1 failed: its machine {{M}} is gone; it will be replaced", false},
		{"machine stopped", "{type: none}", func(e *env, _ func(string)) { e.prov.Stop("web-1", "exit status 2") },
			"node web-1 failed: its machine {{M}} stopped: exit status 2; it will be replaced", true},
		{"health check fails", "{type: tcp, interval: 100ms, timeout: 50ms, unhealthy_threshold: 2}",
			func(_ *env, tcpKill func(string)) { tcpKill("web-1") },
			"node web-1 failed: health check failed 2 times in a row", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			y := strings.Replace(clusterYAML("    min: 2\n    max: 3", "1h", ""), "health_check: {type: none}", "health_check: "+tt.health, 1)
			e := newEnv(t, y)
			tcpKill := tcpNodes(t, e)
			e.start()
			e.waitInService("web", 2)
			wantCause := strings.ReplaceAll(tt.wantCause, "{{M}}", e.node("web-1").MachineID)
			tt.kill(e, tcpKill)
			waitFor(t, 20*time.Second, "web-1 to be terminated", func() (bool, string) {
				n := e.node("web-1")
				return n.State == store.NodeTerminated, string(n.State) + ": " + n.Reason
			})
			in := e.waitInService("web", 2)
			if in[0].ID != "web-2" || in[1].ID != "web-3" {
				t.Errorf("in service: %s, %s; want web-2 and its replacement web-3", in[0].ID, in[1].ID)
			}
			failed := e.kind("web", "node_failed")
			if len(failed) != 1 {
				t.Fatalf("%d node_failed activities, want 1: %+v", len(failed), failed)
			}
			if f := failed[0]; f.Node != "web-1" || f.Status != store.ActivityFailed || !strings.HasPrefix(f.Cause, wantCause) {
				t.Errorf("node_failed = %s %s %q; want cause %q", f.Node, f.Status, f.Cause, wantCause)
			}
			evs, _ := e.st.NodeEvents(t.Context(), "web-1")
			if len(evs) < 2 || evs[len(evs)-2].To != store.NodeFailed {
				t.Errorf("web-1 events %+v: want failed then terminated", evs)
			}
			if !strings.HasPrefix(e.node("web-1").Reason, "terminated after failing: ") {
				t.Errorf("web-1 reason %q", e.node("web-1").Reason)
			}
			deploys := e.kind("web", "deploy_node")
			if len(deploys) != 2 || deploys[1].Cause != "reconcile: 1 node(s) active or starting, 2 desired" {
				t.Errorf("deploy activities %+v", deploys)
			}
			waitFor(t, 5*time.Second, "web-1 out of the load balancer", func() (bool, string) {
				return !e.bal.Registered("web-1") && e.bal.Deregistered("web-1"), ""
			})
			if _, ok := e.prov.Machine("web-1"); ok {
				t.Errorf("the failed node's machine still exists")
			}
			wantDeletes := 0
			if tt.deletes {
				wantDeletes = 1
			}
			if got := len(e.prov.DeleteCalls()); got < wantDeletes {
				t.Errorf("%d Delete calls, want at least %d", got, wantDeletes)
			}
		})
	}
}

func TestManualRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pipelineYAML(`          - {type: fake, instance: "{{I}}"}
`))
	ctx := t.Context()
	tests := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"scale above max", func() error { _, err := e.ctl.Scale(ctx, "web", 3, "by test"); return err }, ErrInvalid},
		{"scale below min", func() error { _, err := e.ctl.Scale(ctx, "web", -1, "by test"); return err }, ErrInvalid},
		{"scale unknown cluster", func() error { _, err := e.ctl.Scale(ctx, "nope", 1, "by test"); return err }, store.ErrNotFound},
		{"fire unknown trigger", func() error { _, err := e.ctl.Fire(ctx, "web", "nope", "by test"); return err }, store.ErrNotFound},
		{"fire in unknown cluster", func() error { _, err := e.ctl.Fire(ctx, "nope", "pipeline", "by test"); return err }, store.ErrNotFound},
		{"scale in range", func() error { _, err := e.ctl.Scale(ctx, "web", 2, "by test"); return err }, nil},
	}
	for _, tt := range tests {
		err := tt.call()
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: error %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if d := e.clusterRec("web").Desired; d != 2 {
		t.Fatalf("desired %d after the valid Scale, want 2", d)
	}
	scales := e.kind("web", "scale")
	if len(scales) != 1 || scales[0].Cause != "by test: desired 0 → 2" || scales[0].Status != store.ActivitySucceeded {
		t.Fatalf("scale activities %+v", scales)
	}
	if n := len(e.kind("web", "trigger")); n != 0 {
		t.Fatalf("%d trigger activities after failed Fire calls", n)
	}
}

func TestRecoverAdoptsAndRemovesOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 2\n    max: 4", "1h", ""))
	ctx := t.Context()
	// The previous server decided two nodes, created both machines, and was
	// killed before it stored web-2's machine ID (web-2 stays provisioning).
	decision, err := e.st.ActivityCreate(ctx, store.Activity{Cluster: "web", Kind: "deploy_node", Status: store.ActivitySucceeded,
		Cause: "reconcile: 0 node(s) active or starting, 2 desired"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		seq, _ := e.st.NodeNextSeq(ctx, "web")
		id := fmt.Sprintf("web-%d", seq)
		n, err := e.st.NodeCreate(ctx, store.Node{ID: id, Cluster: "web", State: store.NodePending,
			LaunchActivity: decision.ID, LaunchIndex: i})
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: id})
		if err != nil {
			t.Fatal(err)
		}
		n.State = store.NodeProvisioning
		if i == 0 {
			n.State, n.MachineID, n.Address = store.NodeInService, m.ID, m.Address
		}
		if _, err := e.st.NodeUpdate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// A machine of ours that no node wants, a machine of a node long
	// terminated, and a machine of another installation.
	orphan, _ := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: "web-99"})
	seq, _ := e.st.NodeNextSeq(ctx, "web")
	deadID := fmt.Sprintf("web-%d", seq)
	if _, err := e.st.NodeCreate(ctx, store.Node{ID: deadID, Cluster: "web", State: store.NodeTerminated}); err != nil {
		t.Fatal(err)
	}
	zombie, _ := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: deadID})
	foreign, _ := e.prov.CreateOwned(ctx, "someone-else", provider.NodeSpec{Cluster: "web", NodeID: "web-1"})
	createsBefore := len(e.prov.CreateCalls())

	e.start()
	in := e.waitInService("web", 2)
	if in[0].ID != "web-1" || in[1].ID != "web-2" {
		t.Fatalf("in service: %+v; want the adopted web-1 and web-2", in)
	}
	// web-1: ours before the crash and the other installation's; web-2: ours.
	for id, want := range map[string]int{"web-1": 2, "web-2": 1} {
		if c := e.prov.CreateCallsFor(id); c != want {
			t.Errorf("%s: %d Create calls, want %d", id, c, want)
		}
	}
	if got := len(e.prov.CreateCalls()); got != createsBefore {
		t.Errorf("the new server called Create %d time(s): adopted nodes must not be created again", got-createsBefore)
	}
	m2, _ := e.prov.Machine("web-2")
	if n := e.node("web-2"); n.MachineID == "" || n.Address == "" {
		t.Errorf("web-2 adopted without its machine: %+v", n)
	} else if got, _ := e.prov.Get(ctx, n.MachineID); got.NodeID != "web-2" || got.Meta["owner"] != testOwner {
		t.Errorf("web-2 has machine %s (%+v); ours is %+v", n.MachineID, got, m2)
	}
	waitFor(t, 10*time.Second, "the orphans to be removed", func() (bool, string) {
		return len(e.kind("web", "remove_orphan")) == 2, fmt.Sprint(e.prov.Machines())
	})
	for _, m := range []provider.Machine{orphan, zombie} {
		if _, err := e.prov.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("orphan machine %s (node %s) still exists: %v", m.ID, m.NodeID, err)
		}
	}
	if _, err := e.prov.Get(ctx, foreign.ID); err != nil {
		t.Errorf("the other installation's machine was touched: %v", err)
	}
	orphans := e.kind("web", "remove_orphan")
	if orphans[0].Node != "web-99" || !strings.Contains(orphans[0].Cause, orphan.ID) {
		t.Errorf("remove_orphan activity %+v", orphans[0])
	}
	if !e.bal.Registered("web-1") || !e.bal.Registered("web-2") {
		t.Errorf("adopted nodes are not in the load balancer: %+v", e.bal.Registers())
	}
}

// A node whose machine vanished while the server was down is failed and
// replaced by the next server.
func TestRecoverFailsNodesWithoutMachine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 1\n    max: 2", "1h", "")).start()
	first := e.waitInService("web", 1)[0]
	e.stop()
	e.prov.Kill(first.MachineID)

	e.build()
	e.start()
	waitFor(t, 10*time.Second, first.ID+" to be terminated", func() (bool, string) {
		n := e.node(first.ID)
		return n.State == store.NodeTerminated, string(n.State)
	})
	in := e.waitInService("web", 1)
	if in[0].ID == first.ID {
		t.Fatal("the node without a machine is still in service")
	}
	failed := e.kind("web", "node_failed")
	if len(failed) != 1 || !strings.Contains(failed[0].Cause, "was gone when the server started") {
		t.Fatalf("node_failed activities %+v", failed)
	}
}

// A server restart keeps every node: the new server adopts the machines and
// creates nothing.
func TestRestartAdoptsEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 3\n    max: 3", "1h", "")).start()
	e.waitInService("web", 3)
	e.stop()
	creates := len(e.prov.CreateCalls())

	e.build()
	e.start()
	time.Sleep(300 * time.Millisecond) // several reconcile ticks
	e.waitInService("web", 3)
	if got := len(e.prov.CreateCalls()); got != creates {
		t.Fatalf("%d Create calls after the restart", got-creates)
	}
	if n := len(e.kind("web", "remove_orphan")) + len(e.kind("web", "node_failed")); n != 0 {
		t.Fatalf("%d orphan/failure activities after a clean restart", n)
	}
	if got := len(e.prov.Machines()); got != 3 {
		t.Fatalf("%d machines, want 3", got)
	}
}

// A step left "running" by a crash: a script that is not idempotent is failed
// as interrupted rather than run twice; an idempotent one runs again.
func TestInterruptedStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		idempotent bool
		wantStatus store.ActivityStatus
		wantRan    bool
	}{
		{"not idempotent", false, store.ActivityFailed, false},
		{"idempotent", true, store.ActivitySucceeded, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, pipelineYAML(`          - {type: local_script, shell: "true"}
          - {type: fake, instance: "{{I}}", name: after}
`))
			ctx := t.Context()
			marker := filepath.Join(t.TempDir(), "ran")
			params, err := json.Marshal(&script.Config{Command: []string{"touch", marker}, Idempotent: tt.idempotent,
				Timeout: plugin.Duration(10 * time.Second)})
			if err != nil {
				t.Fatal(err)
			}
			parent, err := e.st.ActivityCreate(ctx, store.Activity{Cluster: "web", Trigger: "pipeline", Kind: "trigger",
				Cause: "before the crash", Status: store.ActivitySucceeded})
			if err != nil {
				t.Fatal(err)
			}
			started := time.Now().Add(-time.Minute)
			step0, err := e.st.ActivityCreate(ctx, store.Activity{ParentID: parent.ID, Cluster: "web", Trigger: "pipeline",
				Kind: "local_script", Cause: parent.Cause, Status: store.ActivityRunning, Step: 0, Params: params, StartedAt: started})
			if err != nil {
				t.Fatal(err)
			}
			afterParams, _ := json.Marshal(map[string]string{"instance": e.instance, "name": "after"})
			if _, err := e.st.ActivityCreate(ctx, store.Activity{ParentID: parent.ID, Cluster: "web", Trigger: "pipeline",
				Kind: "fake", Cause: parent.Cause, Status: store.ActivityPending, Step: 1, Params: afterParams}); err != nil {
				t.Fatal(err)
			}

			e.start()
			steps := e.waitSteps(parent.ID)
			if steps[0].ID != step0.ID || steps[0].Status != tt.wantStatus {
				t.Fatalf("interrupted step is %s (%q), want %s", steps[0].Status, steps[0].Error, tt.wantStatus)
			}
			if !steps[0].StartedAt.Equal(started.Truncate(time.Millisecond)) {
				t.Errorf("the step's start time changed from %s to %s", started, steps[0].StartedAt)
			}
			_, statErr := os.Stat(marker)
			if ran := statErr == nil; ran != tt.wantRan {
				t.Fatalf("script ran again = %v, want %v", ran, tt.wantRan)
			}
			if !tt.wantRan {
				if !strings.Contains(steps[0].Error, "cut off by a server restart") {
					t.Errorf("error %q does not say it was interrupted", steps[0].Error)
				}
				if steps[1].Status != store.ActivitySkipped || len(e.act.Runs()) != 0 {
					t.Errorf("the step after an interrupted one is %s (ran %v)", steps[1].Status, e.act.Names())
				}
				return
			}
			if steps[1].Status != store.ActivitySucceeded || strings.Join(e.act.Names(), ",") != "after" {
				t.Errorf("the step after is %s, ran %v", steps[1].Status, e.act.Names())
			}
		})
	}
}

// Steps of a firing decided before a restart run on the next server, from
// where they were.
func TestPendingStepsResumeAfterRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pipelineYAML(`          - {type: fake, instance: "{{I}}", name: one}
          - {type: fake, instance: "{{I}}", name: two}
`)).start()
	release := e.act.Hold("two")
	parent, err := e.ctl.Fire(t.Context(), "web", "pipeline", "by test")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "step two to start", func() (bool, string) { return len(e.act.Runs()) == 2, "" })
	e.stop() // cancels step two mid-run: it stays running
	release()
	steps := e.activities(store.ActivityFilter{ParentID: parent.ID})
	sortSteps(steps)
	if steps[1].Status != store.ActivityRunning {
		t.Fatalf("step two is %s after the stop, want running", steps[1].Status)
	}

	e.build()
	e.start()
	steps = e.waitSteps(parent.ID)
	for _, s := range steps {
		if s.Status != store.ActivitySucceeded {
			t.Errorf("step %d is %s: %s", s.Step, s.Status, s.Error)
		}
	}
	runs := e.act.Runs()
	if len(runs) != 3 || runs[2].Name != "two" || !runs[2].Interrupted {
		t.Fatalf("runs %+v: want one, two, then two again marked interrupted", runs)
	}
}
