package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/lb/haproxy/haproxytest"
	"github.com/goscaler/goscaler/internal/plugin"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{Socket: "/run/haproxy/admin.sock", Backend: "be_web"}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string // substrings of the error; none: valid
	}{
		{"minimal", func(*Config) {}, nil},
		{"everything", func(c *Config) {
			c.Socket, c.ConfigFile = "ipv4@127.0.0.1:9999", "/etc/haproxy/conf.d/web.cfg"
			c.BackendConfig = []string{"balance leastconn", "option httpchk GET /healthz"}
			c.ServerOptions, c.DrainTimeout, c.Timeout = "check inter 1s weight 10", plugin.Duration(time.Minute), plugin.Duration(time.Second)
		}, nil},
		{"nothing", func(c *Config) { c.Socket, c.Backend = "", "" }, []string{"socket: required", "backend: required"}},
		{"bad socket", func(c *Config) { c.Socket = "localhost:9999" }, []string{"socket: \"localhost:9999\" is neither"}},
		{"bad backend", func(c *Config) { c.Backend = "be web" }, []string{"backend: backend \"be web\""}},
		{"backend_config without file", func(c *Config) { c.BackendConfig = []string{"balance roundrobin"} }, []string{"backend_config: only used with config_file"}},
		{"bad backend lines", func(c *Config) {
			c.ConfigFile = "/tmp/x.cfg"
			c.BackendConfig = []string{"", "server x 1.2.3.4:80", "default-server check", "frontend fe", "balance static-rr", "a\nb"}
		}, []string{"backend_config[0]: empty line", "backend_config[1]: \"server x", "backend_config[2]: \"default-server check\": HAProxy does not apply",
			"backend_config[3]: \"frontend fe\" would start a new section", "backend_config[4]: \"balance static-rr\" does not support", "backend_config[5]: one line per item"}},
		{"bad server options", func(c *Config) { c.ServerOptions = "check; shutdown" }, []string{"server_options: \"check; shutdown\": must not hold"}},
		{"negative durations", func(c *Config) {
			c.DrainTimeout, c.Timeout = plugin.Duration(-time.Second), plugin.Duration(-time.Second)
		}, []string{"drain_timeout: must not be negative", "timeout: must not be negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := good
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q\nlacks %q", err, w)
				}
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("Validate reported %d problems, want %d: %v", n, len(tc.want), err)
			}
		})
	}
}

func TestConfigDecodes(t *testing.T) {
	t.Parallel()
	cfg, err := lb.Registry.DecodeJSON(TypeName, []byte(`{"socket":"/tmp/a.sock","backend":"be","server_options":"check inter 1s","drain_timeout":"5s"}`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.(*Config)
	if c.Socket != "/tmp/a.sock" || c.Backend != "be" || c.DrainTimeout.D() != 5*time.Second {
		t.Errorf("decoded %+v", c)
	}
	if _, err := lb.Registry.DecodeJSON(TypeName, []byte(`{"socket":"/tmp/a.sock"}`)); err == nil || !strings.Contains(err.Error(), "backend: required") {
		t.Errorf("decoding without backend: %v, want the Validate error", err)
	}
}

// node is a test HTTP backend: it answers its name; /slow waits for release.
type node struct {
	name    string
	srv     *httptest.Server
	release chan struct{}
	started chan struct{}
}

func newNode(t *testing.T, name string) *node {
	t.Helper()
	n := &node{name: name, release: make(chan struct{}), started: make(chan struct{}, 100)}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			n.started <- struct{}{}
			select {
			case <-n.release:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, n.name)
	}))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *node) backend() lb.Backend {
	return lb.Backend{NodeID: n.name, Address: strings.TrimPrefix(n.srv.URL, "http://")}
}

var noKeepAlive = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get requests path through the frontend and returns the body (the node's name).
func get(t *testing.T, frontend, path string) (string, error) {
	t.Helper()
	resp, err := noKeepAlive.Get("http://" + frontend + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	return string(body), nil
}

func newTestBalancer(t *testing.T, c Config) *Balancer {
	t.Helper()
	b, err := c.New(lb.Env{Cluster: "web", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*Balancer)
}

func names(t *testing.T, b *Balancer) []string {
	t.Helper()
	bs, err := b.Backends(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range bs {
		out = append(out, x.NodeID)
	}
	slices.Sort(out)
	return out
}

// TestBalancerDrains registers a node, holds a request on it, and checks
// that Deregister sends new requests elsewhere at once, waits for the held
// request, and then removes the server.
func TestBalancerDrains(t *testing.T) {
	t.Parallel()
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be", BackendLines: []string{"balance roundrobin"}})
	b := newTestBalancer(t, Config{Socket: hx.Socket, Backend: "be", ServerOptions: "check inter 200ms"})
	ctx := context.Background()
	a, c := newNode(t, "web-1"), newNode(t, "web-2")
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatalf("Register again: %v (must be a no-op)", err)
	}
	hx.WaitUp(ctx, "be", "web-1")
	if got := names(t, b); !slices.Equal(got, []string{"web-1"}) {
		t.Fatalf("Backends = %v, want [web-1]", got)
	}

	held := make(chan error, 1)
	go func() {
		body, err := get(t, hx.Frontend, "/slow")
		if err == nil && body != "web-1" {
			err = fmt.Errorf("served by %q", body)
		}
		held <- err
	}()
	<-a.started
	if err := b.Register(ctx, c.backend()); err != nil {
		t.Fatal(err)
	}
	hx.WaitUp(ctx, "be", "web-2")

	deregistered := make(chan error, 1)
	go func() { deregistered <- b.Deregister(ctx, a.backend()) }()
	waitState(t, b, "web-1", Server.Draining)
	for range 10 {
		body, err := get(t, hx.Frontend, "/")
		if err != nil || body != "web-2" {
			t.Fatalf("a request while web-1 drains: %q, %v; want web-2", body, err)
		}
	}
	select {
	case err := <-deregistered:
		t.Fatalf("Deregister returned (%v) while a request was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(a.release)
	if err := <-held; err != nil {
		t.Errorf("the request in flight during the drain: %v", err)
	}
	select {
	case err := <-deregistered:
		if err != nil {
			t.Fatalf("Deregister: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deregister did not return after the last request ended")
	}
	if got := names(t, b); !slices.Equal(got, []string{"web-2"}) {
		t.Errorf("Backends after Deregister = %v, want [web-2]", got)
	}
	if err := b.Deregister(ctx, a.backend()); err != nil {
		t.Errorf("Deregister of a gone server: %v, want nil", err)
	}
	if err := b.Deregister(ctx, lb.Backend{NodeID: "never", Address: "127.0.0.1:1"}); err != nil {
		t.Errorf("Deregister of an unknown server: %v, want nil", err)
	}
}

// waitState waits until the named server satisfies cond.
func waitState(t *testing.T, b *Balancer, name string, cond func(Server) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss, err := b.Servers(context.Background())
		if err == nil {
			for _, s := range ss {
				if s.Name == name && cond(s) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s never reached the state: %+v, %v", name, ss, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBalancerDrainTimeoutCutsSessions(t *testing.T) {
	t.Parallel()
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be", BackendLines: []string{"balance roundrobin"}})
	b := newTestBalancer(t, Config{Socket: hx.Socket, Backend: "be", DrainTimeout: plugin.Duration(300 * time.Millisecond)})
	ctx := context.Background()
	a := newNode(t, "web-1")
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatal(err)
	}
	hx.WaitUp(ctx, "be", "web-1")
	held := make(chan error, 1)
	go func() { _, err := get(t, hx.Frontend, "/slow"); held <- err }()
	<-a.started
	start := time.Now()
	err := b.Deregister(ctx, a.backend())
	if !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("Deregister with a request held past the drain timeout: %v, want ErrDrainTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Deregister took %s with a 300ms drain timeout", d)
	}
	if got := names(t, b); len(got) != 0 {
		t.Errorf("Backends after a timed-out drain = %v, want none (the server is removed)", got)
	}
	if err := <-held; err == nil {
		t.Errorf("the request held past the drain timeout succeeded; want it cut")
	}
}

func TestBalancerDeregisterCancelledLeavesItDraining(t *testing.T) {
	t.Parallel()
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be", BackendLines: []string{"balance roundrobin"}})
	b := newTestBalancer(t, Config{Socket: hx.Socket, Backend: "be"})
	ctx := context.Background()
	a := newNode(t, "web-1")
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatal(err)
	}
	hx.WaitUp(ctx, "be", "web-1")
	held := make(chan error, 1)
	go func() { _, err := get(t, hx.Frontend, "/slow"); held <- err }()
	<-a.started
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := b.Deregister(cctx, a.backend()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deregister cut off by its context: %v, want DeadlineExceeded", err)
	}
	waitState(t, b, "web-1", Server.Draining)
	close(a.release)
	if err := <-held; err != nil {
		t.Errorf("the request held during the interrupted drain: %v", err)
	}
	if err := b.Deregister(ctx, a.backend()); err != nil {
		t.Fatalf("Deregister again: %v", err)
	}
	if got := names(t, b); len(got) != 0 {
		t.Errorf("Backends = %v, want none", got)
	}
	// Registering a server that is draining puts it back into rotation.
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatal(err)
	}
	if err := b.client.SetState(ctx, "be", "web-1", StateDrain); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, "web-1", Server.Ready)
}

// TestBalancerReloadKeepsServers writes the backend to a configuration file
// that HAProxy loads, and checks that a reload keeps the registered servers,
// drops the deregistered ones, and that a new balancer (a goscaler restart)
// keeps the file's servers.
func TestBalancerReloadKeepsServers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "goscaler-web.cfg")
	sock, err := os.MkdirTemp("", "hxr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sock) })
	// The balancer is built before HAProxy runs: it writes the file HAProxy
	// needs to start. The socket path is known in advance.
	cfg := Config{Socket: filepath.Join(sock, "admin.sock"), Backend: "be_web", ConfigFile: file,
		BackendConfig: []string{"balance leastconn", "retries 2"}, ServerOptions: "check inter 500ms"}
	b := newTestBalancer(t, cfg)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("New did not write the config file: %v", err)
	}
	if !strings.Contains(string(data), "backend be_web\n    balance leastconn\n    retries 2\n") || strings.Contains(string(data), "server ") {
		t.Fatalf("initial config file:\n%s", data)
	}
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be_web", Files: []string{file},
		Global: []string{"stats socket " + cfg.Socket + " level admin"}})
	ctx := context.Background()
	a, c := newNode(t, "web-1"), newNode(t, "web-2")
	for _, n := range []*node{a, c} {
		if err := b.Register(ctx, n.backend()); err != nil {
			t.Fatal(err)
		}
	}
	data, _ = os.ReadFile(file)
	for _, n := range []*node{a, c} {
		if line := fmt.Sprintf("    server %s %s check inter 500ms\n", n.name, n.backend().Address); !strings.Contains(string(data), line) {
			t.Errorf("config file lacks %q:\n%s", line, data)
		}
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("config file mode: %v, %v; want 0644 (HAProxy may run as another user)", fi.Mode(), err)
	}

	hx.Reload()
	if got := names(t, b); !slices.Equal(got, []string{"web-1", "web-2"}) {
		t.Fatalf("Backends after a reload = %v, want [web-1 web-2]", got)
	}
	hx.WaitUp(ctx, "be_web", "web-1", "web-2")
	seen := map[string]bool{}
	for range 20 {
		body, err := get(t, hx.Frontend, "/")
		if err != nil {
			t.Fatalf("request after the reload: %v", err)
		}
		seen[body] = true
	}
	if !seen["web-1"] || !seen["web-2"] {
		t.Errorf("after the reload requests reached %v, want both nodes", seen)
	}
	// A server loaded from the file is registered again without error, and
	// removed like a dynamic one.
	if err := b.Register(ctx, a.backend()); err != nil {
		t.Fatalf("Register of a server from the file: %v", err)
	}
	if err := b.Deregister(ctx, a.backend()); err != nil {
		t.Fatalf("Deregister of a server from the file: %v", err)
	}
	hx.Reload()
	if got := names(t, b); !slices.Equal(got, []string{"web-2"}) {
		t.Errorf("Backends after deregistering web-1 and a reload = %v, want [web-2]", got)
	}
	// A restarted goscaler keeps what the file lists.
	b2 := newTestBalancer(t, cfg)
	data, _ = os.ReadFile(file)
	if strings.Contains(string(data), "web-1") || !strings.Contains(string(data), "server web-2 ") {
		t.Errorf("config file after a restart:\n%s", data)
	}
	if err := b2.Deregister(ctx, c.backend()); err != nil {
		t.Fatal(err)
	}
	hx.Reload()
	if got := names(t, b2); len(got) != 0 {
		t.Errorf("Backends after deregistering everything and a reload = %v, want none", got)
	}
}

func TestBalancerErrorsSayWhatToDo(t *testing.T) {
	t.Parallel()
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be", BackendLines: []string{"balance roundrobin"}})
	ctx := context.Background()
	a := newNode(t, "web-1")
	tests := []struct {
		name string
		cfg  Config
		be   lb.Backend
		want []string
	}{
		{"no such backend with a file", Config{Socket: hx.Socket, Backend: "other", ConfigFile: filepath.Join(t.TempDir(), "x.cfg")},
			a.backend(), []string{"no backend other", "-f "}},
		{"no such backend", Config{Socket: hx.Socket, Backend: "other"}, a.backend(), []string{"define it in HAProxy's configuration"}},
		{"unreachable", Config{Socket: filepath.Join(t.TempDir(), "none.sock"), Backend: "be"}, a.backend(), []string{"unreachable"}},
		{"bad address", Config{Socket: hx.Socket, Backend: "be"}, lb.Backend{NodeID: "web-9", Address: "nowhere"}, []string{"not host:port"}},
		{"bad node name", Config{Socket: hx.Socket, Backend: "be"}, lb.Backend{NodeID: "web 9", Address: "127.0.0.1:1"}, []string{"only letters"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newTestBalancer(t, tc.cfg)
			err := b.Register(ctx, tc.be)
			if err == nil {
				t.Fatal("Register: nil error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Register error %q lacks %q", err, w)
				}
			}
		})
	}
	// A host name is resolved: HAProxy takes IPs only.
	b := newTestBalancer(t, Config{Socket: hx.Socket, Backend: "be"})
	be := a.backend()
	be.Address = strings.Replace(be.Address, "127.0.0.1", "localhost", 1)
	if err := b.Register(ctx, be); err != nil {
		t.Fatalf("Register with a host name: %v", err)
	}
	ss, _ := b.Servers(ctx)
	if len(ss) != 1 || !strings.HasPrefix(ss[0].Address, "127.0.0.1:") && !strings.HasPrefix(ss[0].Address, "[::1]:") {
		t.Errorf("servers = %+v, want web-1 at a loopback IP", ss)
	}
}

// TestConfigFileSharedByServers: two goscaler servers of one installation
// (two Balancers on one file) register nodes of the cluster; the file keeps
// the servers of both.
func TestConfigFileSharedByServers(t *testing.T) {
	t.Parallel()
	sock := fakeSocket(t, func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "show servers state"):
			return "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_port\n"
		case strings.HasPrefix(cmd, "add server"):
			return "New server registered.\n"
		}
		return "\n"
	})
	file := filepath.Join(t.TempDir(), "web.cfg")
	cfg := Config{Socket: sock, Backend: "be", ConfigFile: file}
	b1, b2 := newTestBalancer(t, cfg), newTestBalancer(t, cfg)
	ctx := context.Background()
	for i, b := range []*Balancer{b1, b2, b1, b2} {
		if err := b.Register(ctx, lb.Backend{NodeID: fmt.Sprintf("web-%d", i+1), Address: fmt.Sprintf("10.0.0.%d:80", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b2.Deregister(ctx, lb.Backend{NodeID: "web-1", Address: "10.0.0.1:80"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "server" {
			got = append(got, f[1]+"="+f[2])
		}
	}
	if want := []string{"web-2=10.0.0.2:80", "web-3=10.0.0.3:80", "web-4=10.0.0.4:80"}; !slices.Equal(got, want) {
		t.Errorf("servers in the shared file %v, want %v:\n%s", got, want, data)
	}
	entries, _ := os.ReadDir(filepath.Dir(file))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".cfg") && e.Name() != "web.cfg" {
			t.Errorf("stray .cfg file %s next to the config file (HAProxy would load it from a -f directory)", e.Name())
		}
	}
}
