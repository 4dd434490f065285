package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMaintenanceMode puts a node in maintenance with the CLI: it leaves the
// load balancer, and it is not replaced although its health check fails (its
// process is stopped with SIGSTOP); out of maintenance it serves again.
func TestMaintenanceMode(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("maint")
	cleanupNodes(t, name, dataDir)
	addr, lbAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{Name: name, Min: 2, Max: 3, Desired: 2, LBListen: lbAddr,
		HealthInterval: "500ms", UnhealthyThreshold: 2})
	srv := startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 2, 45*time.Second)
	waitLBServes(t, lbAddr, 2)
	target, other := nodes[0], nodes[1]

	code, out, errOut := runCLI(t, "--server", "http://"+addr, "node", "maintenance", name, target.ID, "on")
	if code != 0 || !strings.Contains(out, "in maintenance") {
		t.Fatalf("node maintenance on: exit %d\n%s%s", code, out, errOut)
	}
	// Out of the load balancer: every answer comes from the other node.
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		resp, err := c.Get("http://" + lbAddr + "/")
		if err != nil {
			t.Fatalf("request %d through the load balancer: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if got := resp.Header.Get("X-Goscaler-Node"); resp.StatusCode != http.StatusOK || got != other.ID {
			t.Fatalf("request %d: HTTP %d from %q; want 200 from %s only while %s is in maintenance", i, resp.StatusCode, got, other.ID, target.ID)
		}
	}
	// Out of healing: freeze its process so that its health check fails; the
	// node must stay, in maintenance, and nothing is launched to replace it.
	if err := syscall.Kill(target.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(target.pid(), syscall.SIGCONT) })
	time.Sleep(3 * time.Second) // 6 health intervals: far past the threshold of 2
	ns, err := srv.api.nodes(name, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 {
		t.Fatalf("a node in maintenance was replaced or failed: %s", describeNodes(ns))
	}
	for _, n := range ns {
		if n.ID == target.ID && (n.State != "in_service" || !n.Maintenance) {
			t.Fatalf("node %s is %s (maintenance %v); want in_service in maintenance", n.ID, n.State, n.Maintenance)
		}
	}
	if acts, err := srv.api.activities("cluster=" + name + "&kind=node_failed"); err != nil || len(acts) != 0 {
		t.Fatalf("node_failed activities while in maintenance: %v %v", acts, err)
	}

	// Back: thaw it and take it out of maintenance; it serves again.
	if err := syscall.Kill(target.pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "--server", "http://"+addr, "node", "maintenance", name, target.ID, "off")
	if code != 0 || !strings.Contains(out, "out of maintenance") {
		t.Fatalf("node maintenance off: exit %d\n%s%s", code, out, errOut)
	}
	waitLBServes(t, lbAddr, 2)
	acts, err := srv.api.activities("cluster=" + name + "&kind=maintenance")
	if err != nil || len(acts) != 2 {
		t.Fatalf("want 2 maintenance activities (on, off), got %v %v", acts, err)
	}
	for _, a := range acts {
		if !strings.Contains(a.Cause, target.ID) {
			t.Errorf("maintenance activity does not name the node: %s", fmt.Sprint(a))
		}
	}
}
