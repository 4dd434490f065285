package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDestroyLeavesNothing destroys a cluster with `goscaler cluster
// destroy`: afterwards the provider has no machine of it (no node process is
// left), the load balancer has no server of it, the cluster stays at zero
// until `goscaler cluster start`, and then comes back. Once with the process
// provider and the built-in balancer, once behind a real HAProxy.
func TestDestroyLeavesNothing(t *testing.T) {
	t.Parallel()
	t.Run("builtin", func(t *testing.T) {
		t.Parallel()
		dir := tempDir(t)
		dataDir := filepath.Join(dir, "data")
		name := uniqueName("destroy")
		cleanupNodes(t, name, dataDir)
		addr, lbAddr := freeAddr(t), freeAddr(t)
		cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{Name: name, Min: 2, Max: 3, Desired: 2, LBListen: lbAddr})
		srv := startServer(t, cfg, addr, dataDir, "")
		nodes := waitInService(t, srv.api, name, 2, 60*time.Second)
		waitLBServes(t, lbAddr, 2)

		server := "--server=http://" + addr
		// Without --yes it asks; anything but yes changes nothing.
		code, out, errOut := runCLIInput(t, "no\n", "cluster", "destroy", name, server)
		if code == 0 || !strings.Contains(errOut, "not confirmed") || len(nodeProcs(name, dataDir)) != 2 {
			t.Fatalf("destroy answered no: exit %d\n%s%s\nprocesses %v", code, out, errOut, nodeProcs(name, dataDir))
		}
		// A dry run lists and changes nothing.
		code, out, errOut = runCLI(t, "cluster", "destroy", name, "--dry-run", server)
		if code != 0 || !strings.Contains(out, "WOULD REMOVE") || !strings.Contains(out, "nothing was changed") || len(nodeProcs(name, dataDir)) != 2 {
			t.Fatalf("destroy --dry-run: exit %d\n%s%s", code, out, errOut)
		}

		code, out, errOut = runCLIInput(t, "y\n", "cluster", "destroy", name, server)
		if code != 0 {
			t.Fatalf("destroy: exit %d\n%s%s", code, out, errOut)
		}
		t.Logf("goscaler cluster destroy:\n%s", out)
		for _, n := range nodes {
			for _, want := range []string{"machine  " + n.MachineID, "lb server  " + n.ID, "node  " + n.ID} {
				if !containsFields(out, want) {
					t.Errorf("destroy output does not list %q", want)
				}
			}
		}
		if !strings.Contains(out, "removed 2 machine(s), 2 load balancer server(s), 2 node(s)") {
			t.Errorf("destroy output lacks the summary")
		}
		checkNothingLeft(t, srv, name, dataDir)
		// The balancer has no server: it answers 503 itself.
		resp, err := http.Get("http://" + lbAddr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Goscaler-Node") != "" {
			t.Errorf("the load balancer after destroy: %s from %q: %s; want 503 from no node", resp.Status, resp.Header.Get("X-Goscaler-Node"), body)
		}

		if code, out, errOut := runCLI(t, "cluster", "list", server); code != 0 || !containsFields(out, name+" 0 2 (stopped)") {
			t.Errorf("cluster list after destroy: exit %d\n%s%s", code, out, errOut)
		}
		if code, out, errOut := runCLI(t, "cluster", "start", name, server); code != 0 {
			t.Fatalf("start: exit %d\n%s%s", code, out, errOut)
		}
		waitInService(t, srv.api, name, 2, 60*time.Second)
		waitLBServes(t, lbAddr, 2)
	})
	t.Run("haproxy", func(t *testing.T) {
		t.Parallel()
		h := startHAProxyCluster(t, "hxd", 3, "")
		h.srv.api.must("POST", "/api/v1/clusters/"+h.name+"/scale", map[string]int{"desired": 3}, nil, 200)
		nodes := waitInService(t, h.srv.api, h.name, 3, 60*time.Second)
		h.waitServers(t, nodes)

		code, out, errOut := runCLI(t, "cluster", "destroy", "--all", "--yes", "--server=http://"+h.srv.addr)
		if code != 0 {
			t.Fatalf("destroy --all: exit %d\n%s%s", code, out, errOut)
		}
		t.Logf("goscaler cluster destroy --all:\n%s", out)
		if !strings.Contains(out, "removed 3 machine(s), 3 load balancer server(s), 3 node(s)") {
			t.Errorf("destroy output lacks the summary")
		}
		checkNothingLeft(t, h.srv, h.name, h.dataDir)
		if ss := h.servers(t); len(ss) != 0 {
			t.Errorf("HAProxy servers after destroy: %+v, want none", ss)
		}
		// Nor after a reload: the file lists none.
		h.hx.Reload()
		if ss := h.servers(t); len(ss) != 0 {
			t.Errorf("HAProxy servers after destroy and a reload: %+v, want none", ss)
		}
	})
}

// containsFields reports whether a line of out holds want's words in order,
// whatever the spacing between them (tabwriter columns).
func containsFields(out, want string) bool {
	w := strings.Fields(want)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+len(w) <= len(f); i++ {
			if strings.Join(f[i:i+len(w)], " ") == strings.Join(w, " ") {
				return true
			}
		}
	}
	return false
}

// checkNothingLeft checks that no node process of the cluster is left, every
// node is terminated, and none is launched again while the cluster is
// stopped (three seconds: six reconcile ticks).
func checkNothingLeft(t *testing.T, srv *server, name, dataDir string) {
	t.Helper()
	if procs := nodeProcs(name, dataDir); len(procs) != 0 {
		t.Errorf("node processes after destroy: %v", procs)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		ns, err := srv.api.nodes(name, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != 0 || len(nodeProcs(name, dataDir)) != 0 {
			t.Fatalf("after destroy the cluster has nodes again: %s; processes %v", describeNodes(ns), nodeProcs(name, dataDir))
		}
		time.Sleep(200 * time.Millisecond)
	}
	var c struct {
		clusterView
		Stopped bool `json:"stopped"`
	}
	srv.api.must("GET", "/api/v1/clusters/"+name, nil, &c, 200)
	if !c.Stopped {
		t.Errorf("cluster after destroy: %+v, want stopped", c)
	}
	acts, err := srv.api.activities("cluster=" + name + "&kind=destroy")
	if err != nil || len(acts) != 1 || acts[0].Status != "succeeded" {
		t.Errorf("destroy activities: %v, %v", acts, err)
	}
}

// TestDryRunServer runs `goscaler server --dry-run`: it launches nothing,
// records what it would launch once, and `cluster scale --dry-run` shows a
// plan and changes nothing.
func TestDryRunServer(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("dry")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{Name: name, Min: 1, Max: 4, Desired: 2})
	srv := startServer(t, cfg, addr, dataDir, "", "--dry-run")
	var plans []activity
	waitFor(t, 20*time.Second, 100*time.Millisecond, "the dry-run plan", func() (bool, string) {
		acts, err := srv.api.activities("cluster=" + name + "&kind=dry_run")
		plans = acts
		return err == nil && len(acts) > 0, fmt.Sprint(acts, err)
	})
	time.Sleep(2 * time.Second) // four reconcile ticks
	acts, err := srv.api.activities("cluster=" + name + "&kind=dry_run")
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || !strings.Contains(acts[0].Cause, "create a machine for node "+name+"-1 (provider process)") ||
		!strings.Contains(acts[0].Cause, name+"-2") {
		t.Errorf("dry_run activities %v (first seen %v), want one plan naming %s-1 and %s-2", acts, plans, name, name)
	}
	if ns, _ := srv.api.nodes(name, true); len(ns) != 0 || len(nodeProcs(name, dataDir)) != 0 {
		t.Errorf("a dry-run server made nodes %s / processes %v", describeNodes(ns), nodeProcs(name, dataDir))
	}

	code, out, errOut := runCLI(t, "cluster", "scale", name, "4", "--dry-run", "--server=http://"+addr)
	if code != 0 || !strings.Contains(out, "desired 2 → 4") || !strings.Contains(out, "create a machine for node "+name+"-4") ||
		!strings.Contains(out, "nothing was changed") {
		t.Errorf("cluster scale --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if c, ok := srv.api.cluster(name); !ok || c.Desired != 2 {
		t.Errorf("after scale --dry-run the cluster is %+v, want desired 2", c)
	}
}
