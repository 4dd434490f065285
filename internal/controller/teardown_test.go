package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// sweepYAML is a cluster web on the fakes, swept every second; orphans is
// terminate or report, extra goes into the cluster.
func sweepYAML(orphans, bounds, extra string) string {
	return sweepEvery("1s", orphans, bounds, extra)
}

// sweepEvery is sweepYAML with another reconcile_interval.
func sweepEvery(interval, orphans, bounds, extra string) string {
	return `
server:
  tick: 50ms
  reconcile_interval: ` + interval + `
  orphans: ` + orphans + `
clusters:
  - name: web
` + bounds + `
    provider: {type: fake, instance: "{{I}}"}
    load_balancer: {type: fake, instance: "{{I}}"}
    health_check: {type: none}
` + extra
}

// TestPeriodicReconcileFindsOrphans makes machines appear behind the
// controller's back while it runs: a machine of a node that never existed
// and one of a terminated node are orphans; another installation's machine
// is not ours. With orphans: terminate they are deleted, with report they
// are reported once and left running.
func TestPeriodicReconcileFindsOrphans(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"terminate", "report"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, sweepYAML(mode, "    min: 1\n    max: 3", "")).start()
			ctx := t.Context()
			first := e.waitInService("web", 1)[0]
			seq, _ := e.st.NodeNextSeq(ctx, "web")
			dead := fmt.Sprintf("web-%d", seq)
			if _, err := e.st.NodeCreate(ctx, store.Node{ID: dead, Cluster: "web", State: store.NodeTerminated}); err != nil {
				t.Fatal(err)
			}
			stray, _ := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: "web-77"})
			zombie, _ := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: dead})
			foreign, _ := e.prov.CreateOwned(ctx, "someone-else", provider.NodeSpec{Cluster: "web", NodeID: "web-78"})
			kind := map[string]string{"terminate": KindRemoveOrphan, "report": KindOrphanFound}[mode]
			waitFor(t, 10*time.Second, "both orphans handled", func() (bool, string) {
				acts := e.kind("web", kind)
				return len(acts) == 2, fmt.Sprint(acts)
			})
			for _, m := range []provider.Machine{stray, zombie} {
				_, err := e.prov.Get(ctx, m.ID)
				gone := errors.Is(err, provider.ErrNotFound)
				if gone != (mode == "terminate") {
					t.Errorf("orphan %s (node %s): gone=%v with orphans: %s", m.ID, m.NodeID, gone, mode)
				}
			}
			if _, err := e.prov.Get(ctx, foreign.ID); err != nil {
				t.Errorf("another installation's machine was touched: %v", err)
			}
			if _, err := e.prov.Get(ctx, first.MachineID); err != nil || e.node(first.ID).State != store.NodeInService {
				t.Errorf("the node in service was touched: %v %s", err, e.node(first.ID).State)
			}
			for _, a := range e.kind("web", kind) {
				if !strings.Contains(a.Cause, "tagged for cluster web") || (a.Node != "web-77" && a.Node != dead) {
					t.Errorf("%s activity: node %q cause %q", kind, a.Node, a.Cause)
				}
			}
			// Later sweeps report nothing new.
			time.Sleep(2500 * time.Millisecond)
			if n := len(e.kind("web", kind)); n != 2 {
				t.Errorf("%d %s activities after more sweeps, want still 2", n, kind)
			}
		})
	}
}

// TestSweepRepairsTheLoadBalancer: an in-service node missing from the load
// balancer is registered again, and a server of ours without a live node is
// removed; a server that is not ours by name is left alone.
func TestSweepRepairsTheLoadBalancer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sweepYAML("terminate", "    min: 2\n    max: 3", "")).start()
	ctx := t.Context()
	in := e.waitInService("web", 2)
	lost := in[0]
	if err := e.bal.Deregister(ctx, lb.Backend{NodeID: lost.ID, Address: lost.Address}); err != nil { // "HAProxy reloaded"
		t.Fatal(err)
	}
	for _, id := range []string{"web-90", "static-1", "web-x1"} {
		if err := e.bal.Register(ctx, lb.Backend{NodeID: id, Address: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the load balancer repaired", func() (bool, string) {
		bs, _ := e.bal.Backends(ctx)
		return e.bal.Registered(lost.ID) && !e.bal.Registered("web-90") && len(e.kind("web", KindLBRepair)) == 2, fmt.Sprint(bs, e.activities(store.ActivityFilter{Cluster: "web"}))
	})
	if !e.bal.Registered("static-1") || !e.bal.Registered("web-x1") {
		t.Errorf("servers that are not ours by name were removed")
	}
	var outs []string
	for _, a := range e.kind("web", KindLBRepair) {
		outs = append(outs, a.Output)
	}
	slices.Sort(outs)
	if want := []string{"deregistered web-90", "registered " + lost.ID}; !slices.Equal(outs, want) {
		t.Errorf("lb_repair outputs %q, want %q", outs, want)
	}
}

// TestStopAndStart: a stopped cluster is drained to zero and stays there
// (its triggers and deploy steps launch nothing), keeps its desired size,
// and comes back to it when started.
func TestStopAndStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sweepYAML("terminate", "    min: 1\n    max: 4\n    desired: 2", `    triggers:
      - name: more
        counter: inflight
        above: 1
        for: 1s
        actions:
          - {type: deploy_node, count: 1}
    counters:
      - {name: inflight, type: fake, instance: "{{I}}", interval: 1h}
`)).start()
	ctx := t.Context()
	before := e.waitInService("web", 2)
	rec, err := e.ctl.SetStopped(ctx, "web", true, "test")
	if err != nil || !rec.Stopped || rec.Desired != 2 {
		t.Fatalf("SetStopped(true) = %+v, %v", rec, err)
	}
	waitFor(t, 10*time.Second, "every node terminated", func() (bool, string) {
		for _, n := range before {
			if e.nodeState(n.ID) != store.NodeTerminated {
				return false, n.ID + " " + string(e.nodeState(n.ID))
			}
		}
		return true, ""
	})
	for _, n := range before {
		if _, ok := e.prov.Machine(n.ID); ok || e.bal.Registered(n.ID) {
			t.Errorf("node %s of a stopped cluster still has its machine or its server", n.ID)
		}
	}
	fired, err := e.ctl.Fire(ctx, "web", "more", "by hand")
	if err != nil {
		t.Fatal(err)
	}
	steps := e.waitSteps(fired.ID)
	if !strings.Contains(steps[0].Output, "stopped") {
		t.Errorf("deploy step on a stopped cluster: %q, want it to say the cluster is stopped", steps[0].Output)
	}
	if _, err := e.ctl.Scale(ctx, "web", 3, "test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // reconcile ticks
	if n := len(e.nodes("web", store.NodePending, store.NodeProvisioning, store.NodeConfiguring, store.NodeInService)); n != 0 {
		t.Fatalf("%d active node(s) in a stopped cluster", n)
	}
	if rec := e.clusterRec("web"); !rec.Stopped || rec.Desired != 3 {
		t.Fatalf("cluster %+v, want stopped with desired 3", rec)
	}
	if _, err := e.ctl.SetStopped(ctx, "web", false, "test"); err != nil {
		t.Fatal(err)
	}
	e.waitInService("web", 3)
	kinds := map[string]int{}
	for _, a := range e.activities(store.ActivityFilter{Cluster: "web"}) {
		kinds[a.Kind]++
	}
	if kinds["stop"] != 1 || kinds["start"] != 1 {
		t.Errorf("activities by kind %v, want one stop and one start", kinds)
	}
}

// TestDestroyLeavesNothingBehind destroys a cluster with nodes in service,
// an orphan machine, a stray load balancer server and a launch in flight:
// afterwards the provider lists no machine of the cluster, the balancer has
// no server of it, every node is terminated, and nothing is relaunched
// until the cluster is started again.
func TestDestroyLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	// No periodic sweep during the test: the destroy must find the orphans.
	e := newEnv(t, sweepEvery("1h", "terminate", "    min: 2\n    max: 4", "")).start()
	ctx := t.Context()
	e.waitInService("web", 2)
	orphan, _ := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: "web-66"})
	if err := e.bal.Register(ctx, lb.Backend{NodeID: "web-67", Address: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	// A third node whose Create is held until the destroy has begun.
	hold, held := make(chan struct{}), make(chan struct{}, 1)
	e.prov.OnCreate(func(s provider.NodeSpec) {
		if s.NodeID == "web-3" {
			held <- struct{}{}
			<-hold
		}
	})
	if _, err := e.ctl.Scale(ctx, "web", 3, "test"); err != nil {
		t.Fatal(err)
	}
	<-held
	type result struct {
		r   DestroyResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := e.ctl.Destroy(context.Background(), "web", "test", false)
		done <- result{r, err}
	}()
	waitFor(t, 10*time.Second, "web-3 taken out by the destroy", func() (bool, string) {
		s := e.nodeState("web-3")
		return s == store.NodeDraining || s == store.NodeTerminated, string(s)
	})
	close(hold)
	res := <-done
	if res.err != nil {
		t.Fatalf("Destroy: %v (%+v)", res.err, res.r)
	}
	waitFor(t, 10*time.Second, "no machine of web left", func() (bool, string) {
		ms, _ := e.prov.List(ctx, "web")
		return len(ms) == 0, fmt.Sprint(ms)
	})
	if bs, _ := e.bal.Backends(ctx); len(bs) != 0 {
		t.Errorf("load balancer servers after destroy: %+v", bs)
	}
	got := map[string][]string{}
	for _, r := range res.r.Removed {
		got[r.What] = append(got[r.What], r.Node)
	}
	for what := range got {
		slices.Sort(got[what])
	}
	if !slices.Contains(got[RemovedMachine], "web-66") || !slices.Contains(got[RemovedMachine], "web-1") || !slices.Contains(got[RemovedMachine], "web-2") {
		t.Errorf("removed machines %v, want web-1, web-2 and the orphan web-66 (%s)", got[RemovedMachine], orphan.ID)
	}
	if !slices.Equal(got[RemovedLBServer], []string{"web-1", "web-2", "web-67"}) {
		t.Errorf("removed load balancer servers %v, want web-1 web-2 web-67", got[RemovedLBServer])
	}
	if !slices.Equal(got[RemovedNode], []string{"web-1", "web-2", "web-3"}) {
		t.Errorf("removed nodes %v, want web-1 web-2 web-3", got[RemovedNode])
	}
	for _, n := range e.nodes("web") {
		if n.State != store.NodeTerminated {
			t.Errorf("node %s is %s after destroy", n.ID, n.State)
		}
	}
	act, err := e.st.ActivityGet(ctx, res.r.Activity)
	if err != nil || act.Kind != "destroy" || act.Status != store.ActivitySucceeded || !strings.Contains(act.Output, "load balancer server(s)") {
		t.Errorf("destroy activity %+v, %v", act, err)
	}
	// It stays at zero until started.
	time.Sleep(300 * time.Millisecond)
	if rec := e.clusterRec("web"); !rec.Stopped {
		t.Errorf("cluster after destroy: %+v, want stopped", rec)
	}
	e.waitInService("web", 0)
	if _, err := e.ctl.SetStopped(ctx, "web", false, "test"); err != nil {
		t.Fatal(err)
	}
	e.waitInService("web", 3)
}

// TestDryRun runs a dry-run controller: it plans what reconcile, triggers,
// scale, destroy and orphans would do, records it once as dry_run
// activities, and calls no provider or load balancer method that changes
// anything, creates no node and runs no script.
func TestDryRun(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "ran")
	e := newEnv(t, sweepYAML("terminate", "    min: 2\n    max: 4", fmt.Sprintf(`    counters:
      - {name: inflight, type: fake, instance: "{{I}}", interval: 1h}
    triggers:
      - name: more
        counter: inflight
        above: 1
        for: 1s
        actions:
          - {type: deploy_node, count: 1}
          - {type: local_script, shell: "touch %s"}
`, marker)), withDryRun())
	ctx := t.Context()
	orphan, _ := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{Cluster: "web", NodeID: "web-55"})
	e.start()
	waitFor(t, 10*time.Second, "the reconcile plan", func() (bool, string) {
		for _, a := range e.kind("web", KindDryRun) {
			if strings.Contains(a.Cause, "reconcile: 0 node(s) active or starting, 2 wanted") {
				return true, ""
			}
		}
		return false, fmt.Sprint(e.kind("web", KindDryRun))
	})
	time.Sleep(500 * time.Millisecond) // ten more ticks
	var plans []store.Activity
	for _, a := range e.kind("web", KindDryRun) {
		if strings.HasPrefix(a.Cause, "reconcile:") {
			plans = append(plans, a)
		}
	}
	if len(plans) != 1 || !strings.Contains(plans[0].Cause, "create a machine for node web-1 (provider fake)") ||
		!strings.Contains(plans[0].Cause, "create a machine for node web-2") {
		t.Errorf("reconcile plans %+v, want one naming web-1 and web-2", plans)
	}

	fired, err := e.ctl.Fire(ctx, "web", "more", "by hand")
	if err != nil {
		t.Fatal(err)
	}
	steps := e.waitSteps(fired.ID)
	if steps[0].Status != store.ActivitySucceeded || !strings.Contains(steps[0].Output, "dry run: desired 2 → 3: would create a machine for node web-1") {
		t.Errorf("deploy step in a dry run: %s %q", steps[0].Status, steps[0].Output)
	}
	if steps[1].Status != store.ActivitySucceeded || !strings.Contains(steps[1].Output, "not run") {
		t.Errorf("script step in a dry run: %s %q", steps[1].Status, steps[1].Output)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the script ran in a dry run")
	}

	plan, err := e.ctl.PlanScale(ctx, "web", 4, "by hand")
	if err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || plan.NewDesired != 4 || len(plan.Launch) != 4 || plan.Desired != 2 {
		t.Errorf("PlanScale = %+v", plan)
	}
	if _, err := e.ctl.PlanScale(ctx, "web", 9, "by hand"); !errors.Is(err, ErrInvalid) {
		t.Errorf("PlanScale out of bounds: %v, want ErrInvalid", err)
	}
	res, err := e.ctl.Destroy(ctx, "web", "by hand", false)
	if err != nil || !res.DryRun || len(res.Removed) != 1 || res.Removed[0].ID != orphan.ID {
		t.Errorf("Destroy in a dry run = %+v, %v; want the orphan machine listed", res, err)
	}
	waitFor(t, 10*time.Second, "the orphan planned", func() (bool, string) {
		for _, a := range e.kind("web", KindDryRun) {
			if strings.Contains(a.Cause, "would terminate machine "+orphan.ID) {
				return true, ""
			}
		}
		return false, ""
	})

	if rec := e.clusterRec("web"); rec.Desired != 2 || rec.Stopped {
		t.Errorf("cluster after a dry run: %+v, want desired 2, not stopped", rec)
	}
	if n := len(e.nodes("web")); n != 0 {
		t.Errorf("%d node(s) created in a dry run", n)
	}
	if calls := e.prov.CreateCalls(); len(calls) != 1 { // the test's own orphan
		t.Errorf("%d Create calls in a dry run", len(calls)-1)
	}
	if calls := e.prov.DeleteCalls(); len(calls) != 0 {
		t.Errorf("Delete calls in a dry run: %v", calls)
	}
	if calls := e.bal.Calls(); len(calls) != 0 {
		t.Errorf("load balancer calls in a dry run: %+v", calls)
	}
	if len(e.kind("web", KindRemoveOrphan)) != 0 {
		t.Errorf("an orphan was removed in a dry run")
	}
}

// TestDryRunLeavesExistingNodesAlone restarts a real controller's cluster
// as a dry run and kills a node's machine: the dry run says it would replace
// it, and does not.
func TestDryRunLeavesExistingNodesAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sweepYAML("terminate", "    min: 1\n    max: 4\n    desired: 2", ""))
	e.start()
	in := e.waitInService("web", 2)
	e.stop()
	e.dryRun = true
	e.build()
	e.start()
	ctx := t.Context()
	creates := len(e.prov.CreateCalls())
	e.prov.Kill(in[0].MachineID)
	waitFor(t, 10*time.Second, "the planned replacement", func() (bool, string) {
		for _, a := range e.kind("web", KindDryRun) {
			if strings.Contains(a.Cause, "would take node "+in[0].ID+" out of service and replace it") {
				return true, ""
			}
		}
		return false, fmt.Sprint(e.kind("web", KindDryRun))
	})
	if _, err := e.ctl.Scale(ctx, "web", 1, "by hand"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the planned removal", func() (bool, string) {
		for _, a := range e.kind("web", KindDryRun) {
			if strings.Contains(a.Cause, "reconcile: 2 node(s) active or starting, 1 wanted") {
				return true, ""
			}
		}
		return false, fmt.Sprint(e.kind("web", KindDryRun))
	})
	time.Sleep(300 * time.Millisecond)
	for _, n := range in {
		if s := e.nodeState(n.ID); s != store.NodeInService {
			t.Errorf("node %s is %s after a dry run, want in_service (untouched)", n.ID, s)
		}
	}
	if got := len(e.prov.CreateCalls()); got != creates {
		t.Errorf("%d Create calls in the dry run", got-creates)
	}
	if calls := e.prov.DeleteCalls(); len(calls) != 0 {
		t.Errorf("Delete calls in the dry run: %v", calls)
	}
}
