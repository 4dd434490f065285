package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/provider/openstack/openstacktest"
)

// vms stands in for the servers' operating systems: each server of the fake
// cloud that becomes ACTIVE gets an HTTP server on its fixed IP (a loopback
// address of 127.0.0.0/8) and the cluster's port, answering the health
// check; it stops when the server is deleted.
type vms struct {
	t    *testing.T
	port int
	mu   sync.Mutex
	up   map[string]*http.Server // by server ID
}

func startVMs(t *testing.T, cloud *openstacktest.Cloud, port int) *vms {
	v := &vms{t: t, port: port, up: map[string]*http.Server{}}
	cloud.OnServerActive(func(s openstacktest.Server) {
		for _, ip := range s.FixedIPs {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				t.Errorf("server %s: cannot listen on %s:%d: %v", s.ID, ip, port, err)
				return
			}
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprintf(w, "server %s\n", s.Name)
			})}
			go func() { _ = srv.Serve(ln) }()
			v.mu.Lock()
			v.up[s.ID] = srv
			v.mu.Unlock()
		}
	})
	cloud.OnServerDeleted(func(s openstacktest.Server) {
		v.mu.Lock()
		srv := v.up[s.ID]
		delete(v.up, s.ID)
		v.mu.Unlock()
		if srv != nil {
			_ = srv.Close()
		}
	})
	t.Cleanup(func() {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, srv := range v.up {
			_ = srv.Close()
		}
	})
	return v
}

// TestOpenStackNoOrphanAfterCrash kills the server (kill -9) after its create
// request reached Nova and before it could store the server's ID. The
// restarted server finds the server by its metadata and adopts it, although
// it is still building: one node, one server, never a second one. Scaled to
// zero, the cluster leaves no server and no pool member behind.
func TestOpenStackNoOrphanAfterCrash(t *testing.T) {
	t.Parallel()
	cloud := openstacktest.New()
	t.Cleanup(cloud.Close)
	cloud.AddFlavor("m1.small")
	cloud.AddImage("debian-12")
	// A random 127.x.y.0/24: the servers' addresses are the test's own.
	subnet := fmt.Sprintf("127.%d.%d.0/24", 100+rand.IntN(150), 1+rand.IntN(250))
	cloud.AddNetwork("private", subnet)
	pool := cloud.AddLoadBalancer("web-lb", "web-pool")
	_, portStr, _ := net.SplitHostPort(freeAddr(t))
	port, _ := strconv.Atoi(portStr)
	startVMs(t, cloud, port)
	// The server is still building when the restarted goscaler adopts it.
	cloud.SetBuildTime(4 * time.Second)

	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	clouds := filepath.Join(dir, "clouds.yaml")
	if err := os.WriteFile(clouds, []byte(cloud.CloudsYAML("fake")), 0o600); err != nil {
		t.Fatal(err)
	}
	name := uniqueName("os")
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "goscaler.yaml")
	conf := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  tick: 500ms
  log_level: debug
clusters:
  - name: %s
    min: 0
    max: 3
    desired: 1
    provider:
      type: openstack
      cloud: fake
      clouds_file: %q
      flavor: m1.small
      image: debian-12
      network: private
      port: %d
      user_data: "#cloud-config\nhostname: {{.NodeID}}\n"
      poll_interval: 100ms
      retry_delay: 50ms
      build_timeout: 1m
    load_balancer:
      type: octavia
      cloud: fake
      clouds_file: %q
      pool: web-pool
      subnet: private-subnet
      drain_delay: 200ms
      poll_interval: 50ms
      retry_delay: 50ms
    health_check:
      type: http
      path: /healthz
      interval: 500ms
      timeout: 500ms
      unhealthy_threshold: 3
    boot_timeout: 90s
`, addr, dataDir, name, clouds, port, clouds)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "check", "config", cfg); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d):\n%s%s", code, out, errOut)
	}

	// The create request reaches Nova, the server is made, and the answer
	// never comes back: goscaler is killed meanwhile.
	reached := make(chan openstacktest.Request, 1)
	lost := cloud.Inject(openstacktest.Fault{Service: openstacktest.Compute, Method: "POST", Path: "^/servers$",
		Times: 1, After: true, Hang: true, OnMatch: func(r openstacktest.Request) { reached <- r }})
	t.Cleanup(lost.Release)

	srv := startServer(t, cfg, addr, dataDir, "")
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatalf("the create request never reached Nova; requests: %v", cloud.Requests())
	}
	srv.kill9()
	lost.Release()
	made := cloud.Servers()
	if len(made) != 1 {
		t.Fatalf("after the crash the cloud has %d servers, want the one the request made: %+v", len(made), made)
	}
	t.Logf("killed goscaler after Nova made server %s (%s, %s)", made[0].ID, made[0].Name, made[0].Status)
	if made[0].Status != "BUILD" {
		t.Errorf("the server is %s already; the test wants the restart to find it building", made[0].Status)
	}

	srv = startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 1, 90*time.Second)
	servers := cloud.Servers()
	creates := cloud.Count(openstacktest.Compute, "POST", "^/servers$")
	if len(servers) != 1 || creates != 1 || nodes[0].MachineID != made[0].ID {
		t.Fatalf("after the restart: node %+v; servers %+v; %d create requests; want the node on server %s, the only one, made once",
			nodes[0], servers, creates, made[0].ID)
	}
	if s := servers[0]; s.Metadata["goscaler_node"] != nodes[0].ID || s.Metadata["goscaler_cluster"] != name ||
		s.UserData != "#cloud-config\nhostname: "+nodes[0].ID+"\n" {
		t.Errorf("server %+v for node %s", s, nodes[0].ID)
	}
	wantAddr := net.JoinHostPort(servers[0].FixedIPs["private"], portStr)
	if nodes[0].Address != wantAddr {
		t.Errorf("node address %q, want %q", nodes[0].Address, wantAddr)
	}
	waitFor(t, 30*time.Second, 100*time.Millisecond, "the node in the Octavia pool", func() (bool, string) {
		ms := cloud.Members(pool.ID)
		return len(ms) == 1 && net.JoinHostPort(ms[0].Address, strconv.Itoa(ms[0].ProtocolPort)) == wantAddr &&
			ms[0].Name == "goscaler/"+name+"/"+nodes[0].ID, fmt.Sprintf("%+v", ms)
	})
	t.Logf("node %s adopted on server %s at %s, in the pool", nodes[0].ID, made[0].ID, wantAddr)

	// Scaled to zero: no server, no member left.
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 0}, nil, 200)
	waitFor(t, 60*time.Second, 200*time.Millisecond, "no server and no member left", func() (bool, string) {
		s, m := cloud.Servers(), cloud.Members(pool.ID)
		return len(s) == 0 && len(m) == 0, fmt.Sprintf("servers %+v, members %+v", s, m)
	})
	ns, err := srv.api.nodes(name, true)
	if err != nil || len(ns) != 1 || ns[0].State != "terminated" {
		t.Errorf("nodes %+v, %v; want the one node terminated", ns, err)
	}
	if n := cloud.Count(openstacktest.Compute, "POST", "^/servers$"); n != 1 {
		t.Errorf("%d create requests in all, want 1", n)
	}
	for _, r := range cloud.Requests() {
		if r.Service == openstacktest.Identity && r.Status != 201 && r.Status != 200 && r.Status != 300 {
			t.Errorf("a refused authentication: %v", r)
		}
	}
}
