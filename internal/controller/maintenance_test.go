package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// TestMaintenance: a node in maintenance leaves the load balancer, is not
// healed although its health check fails, and comes back into the load
// balancer when maintenance ends; the health results show what happened.
func TestMaintenance(t *testing.T) {
	t.Parallel()
	y := strings.Replace(clusterYAML("    min: 2\n    max: 3", "1h", ""), "health_check: {type: none}",
		"health_check: {type: tcp, interval: 100ms, timeout: 50ms, unhealthy_threshold: 2}", 1)
	e := newEnv(t, y)
	tcpKill := tcpNodes(t, e)
	e.start()
	e.waitInService("web", 2)
	ctx := t.Context()
	waitFor(t, 5*time.Second, "health results of web-1", func() (bool, string) {
		rs := e.ctl.HealthResults("web", "web-1")
		return len(rs) >= 2 && rs[len(rs)-1].OK, ""
	})

	n, a, err := e.ctl.SetMaintenance(ctx, "web", "web-1", true, "by test")
	if err != nil {
		t.Fatal(err)
	}
	if !n.Maintenance || a.Kind != "maintenance" || a.Node != "web-1" || a.Cause != "node web-1 into maintenance: by test" {
		t.Fatalf("SetMaintenance on: node maintenance %v, activity %+v", n.Maintenance, a)
	}
	waitFor(t, 5*time.Second, "web-1 out of the load balancer", func() (bool, string) {
		return !e.bal.Registered("web-1") && e.bal.Deregistered("web-1"), ""
	})
	waitFor(t, 5*time.Second, "the maintenance activity to finish", func() (bool, string) {
		got, err := e.st.ActivityGet(ctx, a.ID)
		return err == nil && got.Status == store.ActivitySucceeded && strings.Contains(got.Output, "drained"), got.Output
	})
	// Its health check fails now, and it is not replaced.
	tcpKill("web-1")
	before := len(e.ctl.HealthResults("web", "web-1"))
	time.Sleep(600 * time.Millisecond)
	if st := e.nodeState("web-1"); st != store.NodeInService {
		t.Fatalf("web-1 in maintenance is %s, want in_service (no healing in maintenance)", st)
	}
	if after := len(e.ctl.HealthResults("web", "web-1")); after != before {
		t.Errorf("web-1 was health-checked in maintenance (%d → %d results)", before, after)
	}
	if f := e.kind("web", "node_failed"); len(f) != 0 {
		t.Errorf("node_failed in maintenance: %+v", f)
	}
	// Asking again changes nothing.
	if _, again, err := e.ctl.SetMaintenance(ctx, "web", "web-1", true, "again"); err != nil || again.ID != 0 {
		t.Errorf("SetMaintenance on again: activity %d, %v; want no activity", again.ID, err)
	}

	// Out of maintenance: back in the load balancer, and healed again.
	_, a, err = e.ctl.SetMaintenance(ctx, "web", "web-1", false, "by test")
	if err != nil || a.Status != store.ActivitySucceeded || a.Output != "back in the load balancer" {
		t.Fatalf("SetMaintenance off: %+v, %v", a, err)
	}
	if !e.bal.Registered("web-1") {
		t.Errorf("web-1 is not in the load balancer after its maintenance")
	}
	waitFor(t, 10*time.Second, "web-1, unhealthy, to be replaced after its maintenance", func() (bool, string) {
		n := e.node("web-1")
		return n.State == store.NodeTerminated, string(n.State)
	})
	// web-2's results are kept, with their times, newest last (at most 20).
	rs := e.ctl.HealthResults("web", "web-2")
	ok := 0
	for i, r := range rs {
		if r.OK && !r.At.IsZero() {
			ok++
		}
		if i > 0 && r.At.Before(rs[i-1].At) {
			t.Errorf("web-2 health results out of order at %d", i)
		}
	}
	if ok == 0 || len(rs) > 20 {
		t.Errorf("web-2: %d health results, %d OK; want some OK, at most 20", len(rs), ok)
	}

	// Errors.
	for _, tt := range []struct {
		cluster, node string
		want          error
	}{
		{"web", "web-1", ErrInvalid}, // terminated
		{"web", "nope", store.ErrNotFound},
		{"nope", "web-2", store.ErrNotFound},
	} {
		if _, _, err := e.ctl.SetMaintenance(ctx, tt.cluster, tt.node, true, "t"); !errors.Is(err, tt.want) {
			t.Errorf("SetMaintenance(%s, %s) = %v, want %v", tt.cluster, tt.node, err, tt.want)
		}
	}
}

// TestMaintenanceSurvivesStateChanges: a stale copy of a node written by a
// state change keeps the operator's maintenance flag.
func TestMaintenanceSurvivesStateChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 1\n    max: 2", "1h", ""))
	ctx := t.Context()
	n, err := e.st.NodeCreate(ctx, store.Node{ID: "web-1", Cluster: "web", State: store.NodeConfiguring})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.ctl.SetMaintenance(ctx, "web", "web-1", true, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctl.setState(ctx, n, store.NodeInService, "passed"); err != nil {
		t.Fatal(err)
	}
	if got := e.node("web-1"); !got.Maintenance || got.State != store.NodeInService {
		t.Errorf("after a state change from a stale copy: %s maintenance %v", got.State, got.Maintenance)
	}
}
