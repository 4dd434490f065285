package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemoScalesOutAndIn runs `goscaler demo` as a user would and watches the
// cluster scale out under the demo's load and back to min after it; the
// activities carry their causes, and Ctrl-C leaves no node behind. It mirrors
// /work/shared/acceptance/demo.sh.
func TestDemoScalesOutAndIn(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo's load cycle takes about 4 minutes")
	}
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	cleanupNodes(t, "demo", dataDir)
	addr := freeAddr(t)
	demo := start(t, "demo", dir, filepath.Join(dir, "demo.log"), "demo", "--listen", addr, "--data-dir", dataDir)
	waitHealthy(t, demo, addr, 60*time.Second)
	api := &apiClient{t: t, base: "http://" + addr}

	var clusters []clusterView
	api.must("GET", "/api/v1/clusters", nil, &clusters, 200)
	if len(clusters) != 1 || clusters[0].Name != "demo" {
		t.Fatalf("GET /api/v1/clusters = %+v, want the one cluster demo", clusters)
	}
	minSize := clusters[0].Min
	if minSize < 1 || clusters[0].Max <= minSize {
		t.Fatalf("demo cluster bounds min %d max %d: nothing to scale", minSize, clusters[0].Max)
	}

	began := time.Now()
	var out, back time.Duration
	peak := 0
	waitFor(t, 8*time.Minute, 2*time.Second, fmt.Sprintf("the demo to scale above min %d and back", minSize), func() (bool, string) {
		if !demo.running() {
			t.Fatalf("the demo exited: %v", demo.err)
		}
		c, ok := api.cluster("demo")
		if !ok {
			return false, "GET /api/v1/clusters/demo failed"
		}
		peak = max(peak, c.InService)
		el := time.Since(began)
		if out == 0 && c.InService > minSize {
			out = el
			t.Logf("scaled out at %s: %d in service", el.Round(time.Second), c.InService)
		}
		if out != 0 && el > out+5*time.Second && c.InService <= minSize {
			back = el
			return true, ""
		}
		return false, fmt.Sprintf("at %s: in service %d, desired %d, peak %d, scaled out at %s",
			el.Round(time.Second), c.InService, c.Desired, peak, out.Round(time.Second))
	})
	t.Logf("back to min %d at %s (peak %d in service)", minSize, back.Round(time.Second), peak)

	// Every scale-out and scale-in of the cycle is an activity naming its trigger.
	for _, want := range []struct{ kind, trigger string }{
		{"deploy_node", "scale-out"},
		{"remove_node", "scale-in"},
	} {
		acts, err := api.activities("cluster=demo&kind=" + want.kind + "&limit=1000")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, a := range acts {
			if a.Kind != want.kind {
				t.Errorf("activities?kind=%s returned %s", want.kind, a)
			}
			if a.Cause == "" {
				t.Errorf("activity without a cause: %s", a)
			}
			if strings.Contains(a.Cause, "trigger "+want.trigger) && a.Status == "succeeded" {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no succeeded %s activity caused by trigger %s; got %v", want.kind, want.trigger, acts)
		}
		t.Logf("%d %s activities caused by trigger %s", n, want.kind, want.trigger)
	}
	// And every decision too.
	if acts, err := api.activities("cluster=demo&kind=trigger&limit=1000"); err != nil {
		t.Fatal(err)
	} else if len(acts) == 0 {
		t.Errorf("no trigger activity recorded")
	}

	if len(nodeProcs("demo", dataDir)) == 0 {
		t.Fatalf("no demo-node process of this demo found under /proc before Ctrl-C (the test cannot check they stop)")
	}

	// Ctrl-C: the demo stops with every node.
	stopAt := time.Now()
	if err := syscall.Kill(demo.pid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if !demo.wait(20 * time.Second) {
		t.Fatalf("the demo did not exit within 20 s of SIGINT")
	}
	t.Logf("the demo exited %s after SIGINT: %v", time.Since(stopAt).Round(time.Millisecond), demo.err)
	if demo.err != nil {
		t.Errorf("the demo exited with %v after SIGINT, want success", demo.err)
	}
	if left := nodeProcs("demo", dataDir); len(left) > 0 {
		t.Errorf("demo-node processes left running after the demo exited: %v", left)
	}
	if left := procsInDir(dataDir); len(left) > 0 {
		t.Errorf("processes left running in the demo's data directory after it exited: %v", left)
	}
}
