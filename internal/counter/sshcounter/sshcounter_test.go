package sshcounter

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
)

func pool(t testing.TB, set *sshdtest.Set, mod func(*sshx.Config)) *sshx.Pool {
	t.Helper()
	no := false
	cfg := sshx.Config{User: set.User, IdentityFiles: []string{set.ClientKey}, Agent: &no,
		KnownHosts: set.WriteKnownHosts(filepath.Join(set.Dir, fmt.Sprintf("known_hosts-%d", time.Now().UnixNano())))}
	if mod != nil {
		mod(&cfg)
	}
	p, err := sshx.NewPool(cfg, sshx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// target is how the controller describes a node of the static provider.
func target(h *sshdtest.Host, node string) counter.Target {
	return counter.Target{Cluster: "web", NodeID: node, Address: h.IP + ":8080",
		Vars: map[string]string{"Cluster": "web", "NodeID": node, "Address": h.IP + ":8080", "Host": h.IP, "Port": "8080", "Queue": "jobs"},
		Meta: map[string]string{sshx.MetaHost: h.IP, sshx.MetaPort: strconv.Itoa(h.Port)}}
}

func source(t *testing.T, cfg *Config, p *sshx.Pool) counter.Source {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := cfg.New(counter.Env{Cluster: "web", Counter: "c", SSH: p})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func read(t *testing.T, s counter.Source, tg counter.Target, timeout time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.Read(ctx, tg)
}

func TestReadsANumberOnEachNode(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	p := pool(t, set, nil)
	tests := []struct {
		name string
		cfg  Config
		want func(h *sshdtest.Host, node string) float64
	}{
		// $SSH_CONNECTION's 4th field is the server's port: proof that the
		// command ran on the node's own host.
		{name: "shell line", cfg: Config{Shell: `echo "$SSH_CONNECTION" | cut -d' ' -f4`},
			want: func(h *sshdtest.Host, _ string) float64 { return float64(h.Port) }},
		{name: "command with a templated argument", cfg: Config{Command: []string{"sh", "-c", `echo "${1#web-}"`, "x", "{{.NodeID}}"}},
			want: func(_ *sshdtest.Host, node string) float64 {
				n, _ := strconv.Atoi(strings.TrimPrefix(node, "web-"))
				return float64(n)
			}},
		{name: "environment", cfg: Config{Shell: `test "$GOSCALER_CLUSTER/$QUEUE" = web/jobs && echo "${GOSCALER_NODE#web-}.5"`, Env: map[string]string{"QUEUE": "{{.Queue}}"}},
			want: func(_ *sshdtest.Host, node string) float64 {
				n, _ := strconv.Atoi(strings.TrimPrefix(node, "web-"))
				return float64(n) + 0.5
			}},
		{name: "surrounding blanks", cfg: Config{Shell: `printf '  -1.25e3 \n\n'`},
			want: func(*sshdtest.Host, string) float64 { return -1250 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := source(t, &tt.cfg, p)
			for i, h := range set.Hosts {
				node := fmt.Sprintf("web-%d", i+7)
				v, err := read(t, s, target(h, node), 20*time.Second)
				if err != nil {
					t.Fatalf("%s: %v", node, err)
				}
				if want := tt.want(h, node); v != want {
					t.Errorf("%s on %s: %v, want %v", node, h.Addr, v, want)
				}
			}
		})
	}
}

// Without provider meta, the node is reached at the host of its address,
// with the pool's port and user; the counter's host, port and user win.
func TestEndpointChoice(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	h0, h1 := set.Hosts[0], set.Hosts[1]
	p := pool(t, set, func(c *sshx.Config) { c.Port = h0.Port })
	port := `echo "$SSH_CONNECTION" | cut -d' ' -f4`

	plain := counter.Target{Cluster: "web", NodeID: "web-1", Address: h0.IP + ":8080"}
	if v, err := read(t, source(t, &Config{Shell: port}, p), plain, 20*time.Second); err != nil || v != float64(h0.Port) {
		t.Errorf("by address: %v, %v; want %d", v, err, h0.Port)
	}
	other := source(t, &Config{Shell: port, Host: h1.IP + ":" + strconv.Itoa(h1.Port)}, p)
	if v, err := read(t, other, plain, 20*time.Second); err != nil || v != float64(h1.Port) {
		t.Errorf("host override: %v, %v; want %d", v, err, h1.Port)
	}
	// Cluster scope: no node, the host says where.
	if v, err := read(t, other, counter.Target{Cluster: "web"}, 20*time.Second); err != nil || v != float64(h1.Port) {
		t.Errorf("cluster scope with host: %v, %v", v, err)
	}
	_, err := read(t, source(t, &Config{Shell: port}, p), counter.Target{Cluster: "web"}, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "set host") {
		t.Errorf("cluster scope without host: %v", err)
	}
	portOverride := source(t, &Config{Shell: port, Port: h1.Port}, p)
	if v, err := read(t, portOverride, counter.Target{Cluster: "web", NodeID: "web-1", Address: h1.IP + ":8080"}, 20*time.Second); err != nil || v != float64(h1.Port) {
		t.Errorf("port override: %v, %v", v, err)
	}
	_, err = read(t, source(t, &Config{Shell: port, User: "goscaler-no-such-user"}, p), target(h0, "web-1"), 20*time.Second)
	if !errors.Is(err, sshx.ErrAuth) || !strings.Contains(err.Error(), "goscaler-no-such-user@"+h0.Addr) {
		t.Errorf("user override: %v, want an authentication failure as that user", err)
	}
}

// Every failure is an error that names the host and says why; never a zero.
func TestFailuresAreErrors(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	h := set.Hosts[0]
	p := pool(t, set, nil)
	tests := []struct {
		name string
		cfg  Config
		want []string
		is   error
	}{
		{name: "not a number", cfg: Config{Shell: "echo hello"}, want: []string{`output "hello" is not a number`}, is: counter.ErrNotANumber},
		{name: "two numbers", cfg: Config{Shell: "echo 1 2"}, want: []string{`output "1 2" is not a number`}},
		{name: "empty with stderr", cfg: Config{Shell: "echo 'queue down' >&2"}, want: []string{"empty output", "queue down"}},
		{name: "exit status", cfg: Config{Shell: "echo 12; echo 'permission denied' >&2; exit 2"}, want: []string{"exit status 2: permission denied"}},
		{name: "not finite", cfg: Config{Shell: "echo NaN"}, want: []string{"not a finite number"}},
		{name: "too much output", cfg: Config{Shell: "head -c 70000 /dev/zero | tr '\\0' 1"}, want: []string{"larger than 64 KiB"}},
		{name: "timeout", cfg: Config{Shell: "sleep 30; echo 1"}, want: []string{"timed out after", "killed"}, is: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := read(t, source(t, &tt.cfg, p), target(h, "web-1"), 2*time.Second)
			if err == nil {
				t.Fatalf("read %v, want an error", v)
			}
			msg := err.Error()
			for _, w := range append([]string{"ssh " + set.User + "@" + h.Addr + ": command "}, tt.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}

func TestHostKeyChangedIsAnError(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	h := set.Hosts[0]
	p := pool(t, set, nil)
	s := source(t, &Config{Shell: "echo 1"}, p)
	if _, err := read(t, s, target(h, "web-1"), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.Restart(true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := read(t, s, target(h, "web-1"), 5*time.Second)
		if errors.Is(err, sshx.ErrHostKeyChanged) {
			if !strings.Contains(err.Error(), h.Addr) || !strings.Contains(err.Error(), "known_hosts") {
				t.Errorf("error %q should name the host and the known_hosts file", err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("last read: %v, want ErrHostKeyChanged", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "shell", cfg: Config{Shell: "cat /proc/loadavg | cut -d' ' -f1"}},
		{name: "command", cfg: Config{Command: []string{"cat", "/var/run/{{.NodeID}}.n"}, Env: map[string]string{"A": "b"}, Host: "db1:2222", Port: 22, User: "ops"}},
		{name: "neither", cfg: Config{}, want: []string{"command: set either command"}},
		{name: "both", cfg: Config{Command: []string{"x"}, Shell: "y"}, want: []string{"shell: set either"}},
		{name: "every problem", cfg: Config{Command: []string{" ", "{{.X"}, Env: map[string]string{"1A": "x", "GOSCALER_NODE": "y", "OK": "{{"},
			Host: "{{", Port: 99999, User: "a@b"},
			want: []string{"command[0]:", "command[1]:", "env:", "env.GOSCALER_NODE: reserved", "env.OK:", "host:", "port:", "user:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := plugin.Flatten(tt.cfg.Validate())
			if len(errs) != len(tt.want) {
				t.Fatalf("problems %v, want %v", errs, tt.want)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("problem %d: %q, want it to start with %q", i, e, tt.want[i])
				}
			}
		})
	}
	if err := (&Config{Shell: "x"}).CheckScope(counter.ScopeCluster); err == nil || !strings.HasPrefix(err.Error(), "host:") {
		t.Errorf("cluster scope without host: %v", err)
	}
	if err := (&Config{Shell: "x", Host: "db1"}).CheckScope(counter.ScopeCluster); err != nil {
		t.Errorf("cluster scope with host: %v", err)
	}
	if _, err := (&Config{Shell: "x"}).New(counter.Env{}); err == nil {
		t.Error("New without a pool succeeded")
	}
	if s := (&Config{}).DefaultScope(); s != counter.ScopeNode {
		t.Errorf("default scope %s", s)
	}
}
