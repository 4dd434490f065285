package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/lb/haproxy"
	"github.com/goscaler/goscaler/internal/lb/haproxy/haproxytest"
)

// haproxyCluster is a goscaler server whose cluster sits behind a real
// HAProxy (Debian's 2.6) that the test runs with its own configuration: the
// admin socket goscaler drives, and the file goscaler writes the backend to.
type haproxyCluster struct {
	name    string
	dataDir string
	srv     *server
	hx      *haproxytest.Instance
	client  *haproxy.Client
	backend string
	file    string
}

// startHAProxyCluster starts goscaler (the cluster at 0 nodes), waits for it
// to write the backend's file, then starts HAProxy with it.
func startHAProxyCluster(t *testing.T, prefix string, maxNodes int, nodeArgs string) *haproxyCluster {
	t.Helper()
	haproxytest.Binary(t) // fails early, saying what to install
	dir := tempDir(t)
	sockDir, err := os.MkdirTemp("", "hxe-") // short: a socket path is limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	h := &haproxyCluster{name: uniqueName(prefix), dataDir: filepath.Join(dir, "data")}
	h.backend, h.file = "be_"+h.name, filepath.Join(dir, "goscaler-"+h.name+".cfg")
	socket := filepath.Join(sockDir, "admin.sock")
	cleanupNodes(t, h.name, h.dataDir)
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, h.dataDir, clusterSpec{Name: h.name, Min: 0, Max: maxNodes, Desired: 0, NodeArgs: nodeArgs,
		LoadBalancer: fmt.Sprintf(`    load_balancer:
      type: haproxy
      socket: %s
      backend: %s
      config_file: %s
      backend_config: ["balance roundrobin", "retries 0"]
      server_options: "check inter 1s"
      drain_timeout: 30s
`, socket, h.backend, h.file)})
	h.srv = startServer(t, cfg, addr, h.dataDir, "")
	if _, err := os.Stat(h.file); err != nil {
		t.Fatalf("goscaler did not write the backend's file %s: %v", h.file, err)
	}
	h.hx = haproxytest.Start(t, haproxytest.Options{Backend: h.backend, Files: []string{h.file},
		Global: []string{"stats socket " + socket + " level admin"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- HAProxy log:\n%s", tail(h.hx.LogPath, 40))
		}
	})
	h.client, err = haproxy.NewClient(socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// servers returns the backend's servers, by name.
func (h *haproxyCluster) servers(t *testing.T) []haproxy.Server {
	t.Helper()
	ss, err := h.client.Servers(context.Background(), h.backend)
	if err != nil {
		t.Fatalf("show servers state: %v", err)
	}
	slices.SortFunc(ss, func(a, b haproxy.Server) int { return strings.Compare(a.Name, b.Name) })
	return ss
}

// waitServers waits until the backend holds exactly the nodes' servers, in
// rotation at their addresses.
func (h *haproxyCluster) waitServers(t *testing.T, nodes []node) {
	t.Helper()
	want := map[string]string{}
	for _, n := range nodes {
		want[n.ID] = n.Address
	}
	waitFor(t, 20*time.Second, 50*time.Millisecond, fmt.Sprintf("HAProxy to hold exactly %d server(s)", len(nodes)), func() (bool, string) {
		ss := h.servers(t)
		ok := len(ss) == len(want)
		for _, s := range ss {
			ok = ok && want[s.Name] == s.Address && s.Ready()
		}
		return ok, fmt.Sprintf("%+v", ss)
	})
}

// TestHAProxyScaleInLosesNoRequest sends steady traffic through a real
// HAProxy while goscaler scales the cluster out from 2 to 4 nodes, HAProxy is
// reloaded (the servers come back from goscaler's file), and the cluster
// scales in to 1: every request must succeed. Requests take 300 ms, so
// sessions are in flight on the nodes being removed: they only finish if
// goscaler drains each server before it stops its node.
func TestHAProxyScaleInLosesNoRequest(t *testing.T) {
	t.Parallel()
	h := startHAProxyCluster(t, "hx", 4, `, "--base-latency", "300ms", "--capacity", "16"`)
	api := h.srv.api
	scale := func(n int) {
		api.must("POST", "/api/v1/clusters/"+h.name+"/scale", map[string]int{"desired": n}, nil, 200)
	}
	scale(2)
	h.waitServers(t, waitInService(t, api, h.name, 2, 60*time.Second))

	tr := startTraffic(h.hx.Frontend, 8, 3*time.Minute)
	defer tr.stop()
	time.Sleep(time.Second)

	outAt := time.Now()
	scale(4)
	four := waitInService(t, api, h.name, 4, 60*time.Second)
	h.waitServers(t, four)
	time.Sleep(time.Second)

	// A reload keeps the servers: they come back from the file.
	h.hx.Reload()
	h.waitServers(t, four)
	time.Sleep(time.Second)

	inAt := time.Now()
	scale(1)
	var after []node
	waitFor(t, 60*time.Second, 100*time.Millisecond, "1 node in service and the others terminated", func() (bool, string) {
		ns, err := api.nodes(h.name, true)
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
		return in == 1 && term == len(ns)-1 && len(ns) == 4, describeNodes(ns)
	})
	doneAt := time.Now()
	time.Sleep(time.Second)
	results := tr.stop()
	t.Logf("scale-out 2 → 4, reload, scale-in 4 → 1 (%s): %s", doneAt.Sub(inAt).Round(time.Millisecond), describeNodes(after))
	t.Logf("scale-out began %s after the traffic", outAt.Sub(tr.began).Round(time.Millisecond))
	if during := checkNoFailure(t, results, tr.began, "the scale-in", inAt, inAt, doneAt); during == 0 {
		t.Errorf("no request succeeded while the cluster scaled in")
	}
	survivor := inService(after)
	h.waitServers(t, survivor)
	data, err := os.ReadFile(h.file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n    server "); n != 1 || !strings.Contains(string(data), "server "+survivor[0].ID+" "+survivor[0].Address) {
		t.Errorf("the backend's file after the scale-in lists %d server(s), want only %s:\n%s", n, survivor[0].ID, data)
	}
	if procs := nodeProcs(h.name, h.dataDir); len(procs) != 1 || procs[0].Node != survivor[0].ID {
		t.Errorf("node processes after the scale-in: %v, want only %s", procs, survivor[0].ID)
	}
}
