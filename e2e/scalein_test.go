package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestNoRequestLostOnScaleIn sends steady traffic through the built-in load
// balancer while the cluster scales in from 4 nodes to 1: every request must
// succeed, during the drain too.
//
// Two kinds of traffic: short requests (the demo node's 40 ms), and requests
// of 8 s, longer than the demo node's own shutdown grace (5 s), sent in a
// wave just before the scale-in. The second case only passes if the balancer
// drains as documented (Deregister waits for the requests in flight, up to
// drain_timeout, 30 s by default) before the node is told to stop.
func TestNoRequestLostOnScaleIn(t *testing.T) {
	t.Parallel()
	t.Run("short requests", func(t *testing.T) {
		t.Parallel()
		scaleInUnderTraffic(t, "", time.Second)
	})
	t.Run("requests longer than the node's shutdown grace", func(t *testing.T) {
		t.Parallel()
		scaleInUnderTraffic(t, `, "--base-latency", "8s", "--capacity", "16"`, time.Second)
	})
}

// scaleInUnderTraffic runs a cluster of 4 demo nodes (with nodeArgs) behind
// the built-in balancer, starts 8 clients, scales in to 1 after lead, and
// checks that no request failed.
func scaleInUnderTraffic(t *testing.T, nodeArgs string, lead time.Duration) {
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("drain")
	cleanupNodes(t, name, dataDir)
	addr, lbAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{Name: name, Min: 1, Max: 4, Desired: 4,
		LBListen: lbAddr, NodeArgs: nodeArgs})
	srv := startServer(t, cfg, addr, dataDir, "")
	before := waitInService(t, srv.api, name, 4, 45*time.Second)

	waitLBServes(t, lbAddr, 4)

	// Steady traffic from 8 clients, for at most a minute.
	tr := startTraffic(lbAddr, 8, 60*time.Second)
	defer tr.stop()
	time.Sleep(lead) // traffic flows before the scale-in
	scaleAt := time.Now()
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 1}, nil, 200)
	var after []node
	waitFor(t, 50*time.Second, 100*time.Millisecond, "1 node in service and the 3 others terminated", func() (bool, string) {
		ns, err := srv.api.nodes(name, true)
		if err != nil {
			return false, err.Error()
		}
		after = ns
		in, term := 0, 0
		for _, n := range ns {
			switch n.State {
			case "in_service":
				in++
			case "terminated":
				term++
			}
		}
		return in == 1 && term == 3 && len(ns) == 4, describeNodes(ns)
	})
	doneAt := time.Now()
	time.Sleep(time.Second) // and keeps flowing after it
	results := tr.stop()
	t.Logf("scale-in 4 → 1 took %s: %s", doneAt.Sub(scaleAt).Round(time.Millisecond), describeNodes(after))
	if during := checkNoFailure(t, results, tr.began, "the scale-in", scaleAt, scaleAt, doneAt); during == 0 {
		t.Errorf("no request succeeded while the cluster scaled in")
	}
	// The survivor is one of the 4, and the only node process left.
	var survivor node
	for _, n := range after {
		if n.State == "in_service" {
			survivor = n
		}
	}
	found := false
	for _, n := range before {
		found = found || n.ID == survivor.ID
	}
	if !found {
		t.Errorf("the node left in service %s is not one of the original 4 (%s)", survivor.ID, describeNodes(before))
	}
	if procs := nodeProcs(name, dataDir); len(procs) != 1 || procs[0].Node != survivor.ID {
		t.Errorf("live node processes after the scale-in: %v, want only %s", procs, survivor.ID)
	}
}
