package controller

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// policyYAML is the web cluster with extra cluster keys (settings and
// policies); its counter inflight is read every 100ms.
func policyYAML(bounds, extra string) string {
	return clusterYAML(bounds, "100ms", extra)
}

// holdLaunches makes new machines wait in Create until the returned release
// is called: the test sets the counter to what the bigger cluster reads
// before the new nodes serve (the fake counter does not spread the load).
func (e *env) holdLaunches() (release func()) {
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	e.t.Cleanup(release)
	e.prov.OnCreate(func(provider.NodeSpec) { <-gate })
	return release
}

// waitDesired waits until the cluster's desired size is n.
func (e *env) waitDesired(n int) {
	e.t.Helper()
	waitFor(e.t, 20*time.Second, fmt.Sprintf("desired %d", n), func() (bool, string) {
		d := e.clusterRec("web").Desired
		return d == n, fmt.Sprint(d)
	})
}

func TestPolicyScaleOutAndIn(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	e := newEnv(t, policyYAML("    min: 2\n    max: 6", `    scale_in_cooldown: 2m
    scale_in_stabilization: 1m
    policies:
      - {name: inflight-target, type: target_tracking, counter: inflight, target: 10}
`), withClock(clock))
	e.src.SetAllErr(errNotYet)
	e.start()
	e.waitInService("web", 2)

	// 2 nodes at 25: 50 in flight, 5 nodes of 10.
	release := e.holdLaunches()
	e.src.Set("web-1", 25)
	e.src.Set("web-2", 25)
	e.waitDesired(5)
	outs := e.kind("web", "scale_out")
	if len(outs) != 1 {
		t.Fatalf("%d scale_out activities: %+v", len(outs), outs)
	}
	if want := "policy inflight-target: avg inflight 25 > target 10 (±10%) → desired 2 → 5"; outs[0].Cause != want ||
		outs[0].Trigger != "inflight-target" || outs[0].Status != store.ActivitySucceeded {
		t.Errorf("activity %+v, want cause %q", outs[0], want)
	}
	e.waitCollections("web", "inflight", 3)
	e.src.SetAll(10) // 50 over 5: on target
	release()
	e.waitInService("web", 5)
	e.waitCollections("web", "inflight", 3)
	if n := len(e.kind("web", "scale_out")); n != 1 {
		t.Fatalf("%d scale-outs for one rise: %+v", n, e.kind("web", "scale_out"))
	}

	// 20 in flight: 2 nodes, once the cooldown and the window allow it.
	e.src.SetAll(4)
	e.waitAggregate("web", "inflight", func(s store.Sample) bool { return s.OK() && s.Value == 4 })
	e.waitCollections("web", "inflight", 3)
	if d := e.clusterRec("web").Desired; d != 5 {
		t.Fatalf("scaled in to %d during the scale-in cooldown", d)
	}
	clock.Advance(3 * time.Minute) // past the cooldown and the window
	e.waitDesired(2)
	ins := e.kind("web", "scale_in")
	if len(ins) != 1 || ins[0].Cause != "policy inflight-target: avg inflight 4 < target 10 (±10%) → desired 5 → 2" {
		t.Fatalf("scale_in activities %+v", ins)
	}
	e.waitInService("web", 2)

	for key, want := range map[string]int64{policyOutKey: 1, policyInKey: 1} {
		st, err := e.st.TriggerStateGet(t.Context(), "web", key)
		if err != nil || st.Firings != want || st.LastFiredAt.IsZero() {
			t.Errorf("state %s = %+v, %v", key, st, err)
		}
	}

	// A restart resumes the cooldowns and holds the size for one window.
	e.stop()
	e.build()
	mem := e.ctl.clusters["web"].pol.scaler.Memory()
	if mem.ScaleOuts != 1 || mem.ScaleIns != 1 || !mem.LastScaleIn.Equal(ins[0].StartedAt) {
		t.Errorf("memory after restart %+v, want the scale-in at %s", mem, ins[0].StartedAt)
	}
}

// Missing data never scales in.
func TestPolicyMissingData(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	e := newEnv(t, policyYAML("    min: 1\n    max: 5\n    desired: 3", `    scale_in_cooldown: 0s
    scale_in_stabilization: 0s
    policies:
      - {name: t, type: target_tracking, counter: inflight, target: 10}
`), withClock(clock))
	boom := errors.New("connection refused")
	e.src.SetAllErr(boom)
	e.start()
	e.waitInService("web", 3)
	for range 5 {
		e.waitCollections("web", "inflight", 3)
		clock.Advance(time.Minute)
	}
	e.waitCollections("web", "inflight", 3)
	if d := e.clusterRec("web").Desired; d != 3 || len(e.kind("web", "scale_in")) != 0 {
		t.Fatalf("desired %d after missing data, scale-ins %+v", d, e.kind("web", "scale_in"))
	}
	// Control: the same with data scales in.
	e.src.SetAll(1)
	e.waitAggregate("web", "inflight", func(s store.Sample) bool { return s.OK() })
	clock.Advance(time.Second)
	e.waitDesired(1)
}

func TestPolicySchedules(t *testing.T) {
	t.Parallel()
	clock := newManualClock() // 2030-01-02 03:04:05 UTC, a Wednesday
	e := newEnv(t, clusterYAML("    min: 1\n    max: 6", "1h", `    policies:
      - {name: office, type: scheduled, schedule: "0 4 * * *", duration: 1h, min: 4}
      - {name: burst, type: scheduled, schedule: "30 4 * * *", timezone: Europe/Paris, desired: 6}
`), withClock(clock))
	e.start()
	e.waitInService("web", 1)
	clock.Advance(56 * time.Minute) // 04:00:05
	e.waitDesired(4)
	if a := e.kind("web", "scale_out"); len(a) != 1 || a[0].Cause != "schedule office: min 4 → desired 1 → 4" || a[0].Trigger != "office" {
		t.Fatalf("activities %+v", a)
	}
	// 04:30 in Paris is 03:30 UTC: it fired before the server started; the
	// next one is tomorrow.
	clock.Advance(24*time.Hour - 30*time.Minute) // Thursday 03:30:05 UTC
	e.waitDesired(6)
	a := e.kind("web", "scale_out")
	if len(a) != 2 || !strings.HasPrefix(a[1].Cause, "schedule burst: desired 6 at Thu 04:30 CET → desired 4 → 6") {
		t.Fatalf("activities %+v", a)
	}
	st, err := e.st.TriggerStateGet(t.Context(), "web", "policy:burst")
	if want := time.Date(2030, 1, 3, 3, 30, 0, 0, time.UTC); err != nil || !st.LastFiredAt.Equal(want) {
		t.Fatalf("burst state %+v %v, want fired at %s", st, err, want)
	}
	// A restart does not set it again.
	e.stop()
	e.build()
	e.start()
	time.Sleep(300 * time.Millisecond)
	if n := len(e.kind("web", "scale_out")); n != 2 {
		t.Fatalf("%d scale-outs after a restart", n)
	}
}

// New nodes stay out of the aggregates during their warm-up, and scale-in
// waits for it.
func TestPolicyWarmup(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	e := newEnv(t, policyYAML("    min: 2\n    max: 6", `    warmup: 1m
    scale_in_cooldown: 0s
    scale_in_stabilization: 0s
    policies:
      - {name: t, type: target_tracking, counter: inflight, target: 10}
`), withClock(clock))
	e.src.SetAll(25)
	e.start()
	in := e.waitInService("web", 2)
	// Warming: nobody is read.
	e.waitAggregate("web", "inflight", func(s store.Sample) bool { return strings.Contains(s.Err, "no node in service") })
	if d := e.clusterRec("web").Desired; d != 2 {
		t.Fatalf("scaled to %d on no data", d)
	}
	release := e.holdLaunches()
	clock.Advance(2 * time.Minute)
	e.waitDesired(5)
	e.waitCollections("web", "inflight", 3)
	e.src.SetAll(1) // 1 per node: 5 in flight, 1 node would do (min 2)
	release()
	e.waitInService("web", 5)
	s := e.waitAggregate("web", "inflight", func(s store.Sample) bool { return s.OK() && s.Value == 1 })
	if s.Reporting != 2 {
		t.Fatalf("%d nodes reported, want the 2 out of warm-up", s.Reporting)
	}
	r, _ := e.ctl.Latest("web", "inflight")
	for _, n := range r.Nodes {
		if n.Node != in[0].ID && n.Node != in[1].ID {
			t.Errorf("warming node %s was read", n.Node)
		}
	}
	e.waitCollections("web", "inflight", 3)
	if d := e.clusterRec("web").Desired; d != 5 {
		t.Fatalf("scaled in to %d during the warm-up", d)
	}
	clock.Advance(2 * time.Minute)
	e.waitDesired(2)
}
