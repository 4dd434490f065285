package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSelfHealing kills a node process and checks that goscaler notices,
// records why, replaces the node and terminates the dead one; traffic through
// the built-in load balancer loses no request meanwhile (the balancer sends a
// request whose connection fails to another node).
func TestSelfHealing(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("heal")
	cleanupNodes(t, name, dataDir)
	addr, lbAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{Name: name, Min: 2, Max: 4, Desired: 2, LBListen: lbAddr})
	srv := startServer(t, cfg, addr, dataDir, "")

	nodes := waitInService(t, srv.api, name, 2, 45*time.Second)
	victim := nodes[0]
	if victim.pid() <= 0 || !alive(victim.pid()) {
		t.Fatalf("node %s records pid %q, which is not a live process", victim.ID, victim.Meta["pid"])
	}
	if env := environ(victim.pid()); env["GOSCALER_NODE"] != victim.ID {
		t.Fatalf("pid %d of node %s is tagged GOSCALER_NODE=%q", victim.pid(), victim.ID, env["GOSCALER_NODE"])
	}
	waitLBServes(t, lbAddr, 2)
	tr := startTraffic(lbAddr, 4, 60*time.Second)
	defer tr.stop()
	time.Sleep(500 * time.Millisecond)

	killedAt := time.Now()
	if err := syscall.Kill(victim.pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node %s (pid %d)", victim.ID, victim.pid())

	var failed activity
	waitFor(t, 30*time.Second, 200*time.Millisecond, "a node_failed activity naming "+victim.ID, func() (bool, string) {
		acts, err := srv.api.activities("cluster=" + name + "&kind=node_failed")
		if err != nil {
			return false, err.Error()
		}
		for _, a := range acts {
			if a.Node == victim.ID || strings.Contains(a.Cause, victim.ID) {
				failed = a
				return true, ""
			}
		}
		return false, fmt.Sprint(acts)
	})
	t.Logf("after %s: %s", time.Since(killedAt).Round(time.Millisecond), failed)
	if !strings.Contains(failed.Cause, victim.ID) {
		t.Errorf("the node_failed cause does not name the node %s: %q", victim.ID, failed.Cause)
	}

	var healed []node
	// Healed within 30 s of the kill.
	waitFor(t, 30*time.Second-time.Since(killedAt), 200*time.Millisecond, "2 nodes in service again, one of them new", func() (bool, string) {
		ns, err := srv.api.nodes(name, false)
		if err != nil {
			return false, err.Error()
		}
		healed = inService(ns)
		if len(healed) != 2 || len(ns) != 2 {
			return false, describeNodes(ns)
		}
		for _, n := range healed {
			if n.ID == victim.ID {
				return false, describeNodes(ns)
			}
		}
		return true, ""
	})
	t.Logf("healed after %s: %s", time.Since(killedAt).Round(time.Millisecond), describeNodes(healed))
	ids := []string{healed[0].ID, healed[1].ID}
	if !slices.Contains(ids, nodes[1].ID) {
		t.Errorf("the surviving node %s was replaced too: in service now %v", nodes[1].ID, ids)
	}

	var dead node
	waitFor(t, 30*time.Second, 200*time.Millisecond, "the killed node to be terminated", func() (bool, string) {
		srv.api.must("GET", "/api/v1/clusters/"+name+"/nodes/"+victim.ID, nil, &dead, 200)
		return dead.State == "terminated", dead.State + ": " + dead.Reason
	})
	t.Logf("killed node ends %s: %s", dead.State, dead.Reason)
	healedAt := time.Now()

	// The replacement serves through the balancer, and no request was lost.
	newID := healed[0].ID
	if newID == nodes[1].ID {
		newID = healed[1].ID
	}
	waitFor(t, 10*time.Second, 50*time.Millisecond, "the replacement "+newID+" to serve through the load balancer", func() (bool, string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, r := range tr.results {
			if r.node == newID && r.err == "" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d requests so far", len(tr.results))
	})
	results := tr.stop()
	checkNoFailure(t, results, tr.began, "the kill", killedAt, killedAt, healedAt)

	procs := nodeProcs(name, dataDir)
	if len(procs) != 2 {
		t.Errorf("live node processes %v, want exactly the 2 in service", procs)
	}
	for _, n := range healed {
		if !alive(n.pid()) || environ(n.pid())["GOSCALER_NODE"] != n.ID {
			t.Errorf("in-service node %s records pid %q, which is not its live process", n.ID, n.Meta["pid"])
		}
	}
}
