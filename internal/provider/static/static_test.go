package static

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/sshx"
)

var threeHosts = []Host{
	{Address: "10.0.0.1"},
	{Address: "10.0.0.2", Port: 2222, User: "deploy"},
	{Address: "web3.example", ServicePort: 9000},
}

// build makes a provider of cluster "web" in dataDir, with an SSH pool whose
// default port is 22 and user ops.
func build(t *testing.T, dataDir string, cfg *Config) *Provider {
	t.Helper()
	pool, err := sshx.NewPool(sshx.Config{User: "ops", KnownHosts: filepath.Join(dataDir, "known_hosts")}, sshx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	p, err := cfg.New(provider.Env{Cluster: "web", Owner: "test", DataDir: dataDir, SSH: pool})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Provider)
}

func spec(node string) provider.NodeSpec { return provider.NodeSpec{Cluster: "web", NodeID: node} }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCreateHandsOutListedHosts(t *testing.T) {
	t.Parallel()
	p := build(t, t.TempDir(), &Config{Hosts: threeHosts, ServicePort: 8080})
	want := []provider.Machine{
		{ID: "10.0.0.1:22", Cluster: "web", NodeID: "web-1", Address: "10.0.0.1:8080", State: provider.MachineRunning,
			Meta: map[string]string{MetaStaticHost: "10.0.0.1:22", sshx.MetaHost: "10.0.0.1", sshx.MetaPort: "22"}},
		{ID: "10.0.0.2:2222", Cluster: "web", NodeID: "web-2", Address: "10.0.0.2:8080", State: provider.MachineRunning,
			Meta: map[string]string{MetaStaticHost: "10.0.0.2:2222", sshx.MetaHost: "10.0.0.2", sshx.MetaPort: "2222", sshx.MetaUser: "deploy"}},
		{ID: "web3.example:22", Cluster: "web", NodeID: "web-3", Address: "web3.example:9000", State: provider.MachineRunning,
			Meta: map[string]string{MetaStaticHost: "web3.example:22", sshx.MetaHost: "web3.example", sshx.MetaPort: "22"}},
	}
	for i, w := range want {
		m, err := p.Create(ctx(t), spec(w.NodeID))
		if err != nil {
			t.Fatalf("Create %s: %v", w.NodeID, err)
		}
		if fmt.Sprint(m) != fmt.Sprint(w) {
			t.Errorf("machine %d:\n got %+v\nwant %+v", i, m, w)
		}
		// Idempotent: the same node gets the same host.
		again, err := p.Create(ctx(t), spec(w.NodeID))
		if err != nil || again.ID != m.ID {
			t.Errorf("Create %s again: %v, %v; want %s", w.NodeID, again.ID, err, m.ID)
		}
	}
	_, err := p.Create(ctx(t), spec("web-4"))
	if !errors.Is(err, provider.ErrCapacity) || !strings.Contains(err.Error(), "all 3 listed hosts are in use") || !strings.Contains(err.Error(), "web-2 on 10.0.0.2:2222") {
		t.Errorf("fourth node: %v, want ErrCapacity naming the hosts' users", err)
	}
	ms, err := p.List(ctx(t), "web")
	if err != nil || len(ms) != 3 || ms[0].NodeID != "web-1" || ms[2].NodeID != "web-3" {
		t.Errorf("List = %v, %v", ms, err)
	}
	if other, err := p.List(ctx(t), "db"); err != nil || len(other) != 0 {
		t.Errorf("List of another cluster = %v, %v", other, err)
	}
}

func TestDeleteReleasesAndFreedHostsGoLast(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := build(t, t.TempDir(), &Config{Hosts: threeHosts})
	p.now = func() time.Time { now = now.Add(time.Second); return now }
	a, _ := p.Create(ctx(t), spec("web-1")) // 10.0.0.1
	b, _ := p.Create(ctx(t), spec("web-2")) // 10.0.0.2
	if err := p.Delete(ctx(t), a.ID); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx(t), a.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if _, err := p.Get(ctx(t), a.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get of a released host: %v, want ErrNotFound", err)
	}
	// The never-used host first, then the one freed.
	c, _ := p.Create(ctx(t), spec("web-3"))
	if c.ID != "web3.example:22" {
		t.Errorf("web-3 got %s, want the host never used", c.ID)
	}
	if err := p.Delete(ctx(t), b.ID); err != nil {
		t.Fatal(err)
	}
	d, _ := p.Create(ctx(t), spec("web-4"))
	if d.ID != a.ID {
		t.Errorf("web-4 got %s, want %s, free the longest", d.ID, a.ID)
	}
	e, _ := p.Create(ctx(t), spec("web-5"))
	if e.ID != b.ID {
		t.Errorf("web-5 got %s, want %s", e.ID, b.ID)
	}
	if err := p.Delete(ctx(t), "10.9.9.9:22"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Delete of an unknown host: %v", err)
	}
}

// A new provider on the same data directory — a restarted server — sees the
// same hosts in use; one removed from the configuration is stopped.
func TestStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := build(t, dir, &Config{Hosts: threeHosts})
	for _, n := range []string{"web-1", "web-2"} {
		if _, err := p.Create(ctx(t), spec(n)); err != nil {
			t.Fatal(err)
		}
	}
	again := build(t, dir, &Config{Hosts: threeHosts})
	ms, err := again.List(ctx(t), "web")
	if err != nil || len(ms) != 2 || ms[0].ID != "10.0.0.1:22" || ms[1].ID != "10.0.0.2:2222" {
		t.Fatalf("after a restart List = %v, %v", ms, err)
	}
	if m, err := again.Create(ctx(t), spec("web-2")); err != nil || m.ID != "10.0.0.2:2222" {
		t.Errorf("web-2 after a restart: %v, %v", m.ID, err)
	}
	if m, err := again.Create(ctx(t), spec("web-3")); err != nil || m.ID != "web3.example:22" {
		t.Errorf("web-3 after a restart: %v, %v; want the host nobody uses", m.ID, err)
	}

	// 10.0.0.1 leaves the list: its node's machine is stopped, and Delete
	// still releases it.
	fewer := build(t, dir, &Config{Hosts: threeHosts[1:]})
	m, err := fewer.Get(ctx(t), "10.0.0.1:22")
	if err != nil || m.State != provider.MachineStopped || !strings.Contains(m.Reason, "no longer listed") || m.NodeID != "web-1" || m.Address != "10.0.0.1:22" {
		t.Errorf("unlisted host: %+v, %v", m, err)
	}
	if err := fewer.Delete(ctx(t), m.ID); err != nil {
		t.Errorf("Delete of an unlisted host: %v", err)
	}
	if _, err := fewer.Create(ctx(t), spec("web-4")); !errors.Is(err, provider.ErrCapacity) {
		t.Errorf("the unlisted host was handed out again: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "static", "web.json"))
	if !strings.Contains(string(b), `"node": "web-2"`) {
		t.Errorf("state file:\n%s", b)
	}
}

// Concurrent Creates never give one host to two nodes.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	p := build(t, t.TempDir(), &Config{Hosts: threeHosts})
	var mu sync.Mutex
	var got []string
	var full int
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			m, err := p.Create(ctx(t), spec(fmt.Sprintf("web-%d", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, provider.ErrCapacity):
				full++
			case err != nil:
				t.Error(err)
			default:
				got = append(got, m.ID)
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(slices.Compact(slices.Clone(got))) != 3 || len(got) != 3 || full != 7 {
		t.Errorf("hosts handed out %v and %d refusals; want 3 distinct and 7", got, full)
	}
}

func TestDamagedStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "static", "web.json"), []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := build(t, dir, &Config{Hosts: threeHosts})
	if _, err := p.List(ctx(t), "web"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("List with a damaged state file: %v", err)
	}
	if _, err := p.Create(ctx(t), spec("web-1")); err == nil {
		t.Error("Create with a damaged state file succeeded: it could hand out a used host")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "good", cfg: Config{Hosts: threeHosts, ServicePort: 80}},
		{name: "no hosts", cfg: Config{}, want: []string{"hosts: list at least one host"}},
		{name: "every problem", cfg: Config{ServicePort: -1, Hosts: []Host{
			{}, {Address: "10.0.0.1:22"}, {Address: "a", Port: 70000, ServicePort: 70000, User: "x y"}, {Address: "b"}, {Address: "b"},
		}}, want: []string{"service_port:", "hosts[0]: address: required", "hosts[1]: address: \"10.0.0.1:22\"", "hosts[2]: port:",
			"hosts[2]: service_port:", "hosts[2]: user:", "hosts[4]: host b is listed twice (also hosts[3])"}},
		{name: "same address, other ports", cfg: Config{Hosts: []Host{{Address: "a", Port: 2201}, {Address: "a", Port: 2202}, {Address: "fd00::1"}}}},
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
	if n := (&Config{Hosts: threeHosts}).MaxMachines(); n != 3 {
		t.Errorf("MaxMachines = %d", n)
	}
	if _, err := (&Config{Hosts: threeHosts}).New(provider.Env{DataDir: t.TempDir()}); !errors.Is(err, provider.ErrConfig) {
		t.Errorf("New without a cluster: %v", err)
	}
	// An explicit port equal to the default is the same host.
	if _, err := (&Config{Hosts: []Host{{Address: "a"}, {Address: "a", Port: 22}}}).New(provider.Env{Cluster: "web", DataDir: t.TempDir()}); !errors.Is(err, provider.ErrConfig) {
		t.Errorf("a host listed twice through the default port: %v", err)
	}
}

func TestRegistryDecode(t *testing.T) {
	t.Parallel()
	var node yaml.Node
	src := "service_port: 8080\nhosts:\n  - {address: 10.0.0.1}\n  - address: 10.0.0.2\n    port: 2222\n    user: deploy\n"
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.Registry.Decode("static", &node)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.(*Config)
	if c.ServicePort != 8080 || len(c.Hosts) != 2 || c.Hosts[1].User != "deploy" || c.Hosts[1].Port != 2222 {
		t.Errorf("decoded %+v", c)
	}
	if err := yaml.Unmarshal([]byte("hosts:\n  - {address: a, password: x}\n"), &node); err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Registry.Decode("static", &node); err == nil || !strings.Contains(err.Error(), `unknown key "password"`) {
		t.Errorf("unknown key: %v", err)
	}
}
