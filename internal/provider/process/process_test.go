package process

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
)

// helperEnv selects what the re-executed test binary does.
const helperEnv = "GOSCALER_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helper(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helper is the node process of the tests. Modes:
//
//	serve ADDR [spawn]   serve HTTP on ADDR; with spawn, also start a child in the group
//	ignore-term ADDR     like serve, but ignore SIGTERM
//	exit CODE            exit with CODE at once
//	sleep                block
//
// It exits by itself when its parent goes away or after two minutes, so that a
// crashed test run leaves nothing behind.
func helper(mode string, args []string) int {
	ppid := os.Getppid()
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) && os.Getppid() == ppid {
			time.Sleep(100 * time.Millisecond)
		}
		os.Exit(3)
	}()
	switch mode {
	case "exit":
		code, _ := strconv.Atoi(args[0])
		return code
	case "sleep":
		select {}
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
	case "serve":
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		return 1
	}
	childPID := 0
	if len(args) > 1 && args[1] == "spawn" {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		childPID = cmd.Process.Pid
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "node=%s cluster=%s address=%s extra=%s child=%d",
			os.Getenv(TagNode), os.Getenv(TagCluster), os.Getenv(TagAddress), os.Getenv("EXTRA"), childPID)
	})
	fmt.Printf("helper listening on %s\n", args[0])
	if err := http.ListenAndServe(args[0], mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// serveConfig runs the helper in mode on the node's address.
func serveConfig(mode string, extraArgs ...string) *Config {
	return &Config{
		Command: append([]string{"{{.Executable}}", "{{.Address}}"}, extraArgs...),
		Env:     map[string]string{helperEnv: mode},
	}
}

type fixture struct {
	owner   string
	dataDir string
}

// newFixture gives a test its own owner and data dir, and kills every process
// of that owner when the test ends.
func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{owner: "test-" + rand.Text(), dataDir: t.TempDir()}
	t.Cleanup(func() { killOwner(t, f.owner) })
	return f
}

func (f fixture) provider(t *testing.T, cfg *Config) *Provider {
	t.Helper()
	p, err := cfg.New(provider.Env{Owner: f.owner, DataDir: f.dataDir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p.(*Provider)
}

// killOwner SIGKILLs every process tagged with owner (and its group).
func killOwner(t *testing.T, owner string) {
	pids, err := listPIDs()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, pid := range pids {
		env, err := readEnviron(pid)
		if err != nil || env[TagOwner] != owner {
			continue
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func spec(cluster, node string) provider.NodeSpec {
	return provider.NodeSpec{Cluster: cluster, NodeID: node, Vars: map[string]string{"Cluster": cluster, "NodeID": node}}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 10ms until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fetch waits until the node at addr answers and returns its body.
func fetch(t *testing.T, addr string) string {
	t.Helper()
	var body string
	client := &http.Client{Timeout: time.Second}
	waitFor(t, "the node on "+addr+" to serve", func() bool {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return body
}

func pidOf(t *testing.T, m provider.Machine) int {
	t.Helper()
	pid, err := strconv.Atoi(m.Meta["pid"])
	if err != nil {
		t.Fatalf("meta pid %q: %v", m.Meta["pid"], err)
	}
	return pid
}

// alive reports whether pid is a live (non-zombie) process.
func alive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && !st.dead()
}

func TestCreateServesOnAddress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cfg := serveConfig("serve")
	cfg.Env["EXTRA"] = "{{.NodeID}}-{{.Zone}}-{{.Port}}"
	p := f.provider(t, cfg)
	s := spec("web", "n1")
	s.Vars["Zone"] = "z9"

	m, err := p.Create(ctxFor(t), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if m.Cluster != "web" || m.NodeID != "n1" || m.State != provider.MachineRunning {
		t.Errorf("machine = %+v", m)
	}
	host, port, err := net.SplitHostPort(m.Address)
	if err != nil || host != DefaultHost || port == "0" {
		t.Errorf("address = %q", m.Address)
	}
	if want := m.Meta["pid"] + ":" + m.Meta["start_time"]; m.ID != want {
		t.Errorf("ID = %q, want %q", m.ID, want)
	}
	wantLog := filepath.Join(f.dataDir, "nodes", "web", "n1.log")
	if m.Meta["log"] != wantLog {
		t.Errorf("log = %q, want %q", m.Meta["log"], wantLog)
	}

	body := fetch(t, m.Address)
	want := fmt.Sprintf("node=n1 cluster=web address=%s extra=n1-z9-%s child=0", m.Address, port)
	if body != want {
		t.Errorf("node says %q, want %q", body, want)
	}
	st, err := readStat(pidOf(t, m))
	if err != nil || st.PGRP != pidOf(t, m) {
		t.Errorf("node is not the leader of its own process group: %+v, %v", st, err)
	}
	logText, err := os.ReadFile(wantLog)
	if err != nil || !strings.Contains(string(logText), "helper listening on "+m.Address) {
		t.Errorf("log file %q: %v: %q", wantLog, err, logText)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, serveConfig("serve"))
	ctx := ctxFor(t)

	first, err := p.Create(ctx, spec("web", "n1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	// Retries, some of them concurrent, find the same process.
	var wg sync.WaitGroup
	ids := make([]string, 4)
	errs := make([]error, 4)
	for i := range ids {
		wg.Go(func() {
			m, err := p.Create(ctx, spec("web", "n1"))
			ids[i], errs[i] = m.ID, err
		})
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != first.ID {
			t.Errorf("Create again: %q, %v; want %q", ids[i], errs[i], first.ID)
		}
	}
	ms, err := p.List(ctx, "web")
	if err != nil || len(ms) != 1 || ms[0].ID != first.ID {
		t.Errorf("List = %+v, %v; want only %s", ms, err, first.ID)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The node spawns a child: it inherits the tags but is not a node.
	p := f.provider(t, serveConfig("serve", "spawn"))
	ctx := ctxFor(t)

	a1, err := p.Create(ctx, spec("a", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := p.Create(ctx, spec("a", "n2"))
	if err != nil {
		t.Fatal(err)
	}
	b1, err := p.Create(ctx, spec("b", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []provider.Machine{a1, a2, b1} {
		fetch(t, m.Address) // the children are running too
	}

	tests := []struct {
		cluster string
		want    []provider.Machine
	}{
		{"a", []provider.Machine{a1, a2}},
		{"b", []provider.Machine{b1}},
		{"c", nil},
	}
	for _, tt := range tests {
		got, err := p.List(ctx, tt.cluster)
		if err != nil {
			t.Fatalf("List(%s): %v", tt.cluster, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("List(%s) = %+v, want %d machines", tt.cluster, got, len(tt.want))
		}
		for i := range got {
			w := tt.want[i]
			g := got[i]
			if g.ID != w.ID || g.NodeID != w.NodeID || g.Cluster != w.Cluster || g.Address != w.Address ||
				g.State != provider.MachineRunning || g.Meta["log"] != w.Meta["log"] {
				t.Errorf("List(%s)[%d] = %+v, want %+v", tt.cluster, i, g, w)
			}
		}
	}

	// Another owner sees none of them.
	other := newFixture(t)
	other.dataDir = f.dataDir
	got, err := other.provider(t, serveConfig("serve")).List(ctx, "a")
	if err != nil || len(got) != 0 {
		t.Errorf("List of another owner = %+v, %v; want nothing", got, err)
	}
}

// A second provider with the same owner stands for a restarted server.
func TestAdoption(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p1 := f.provider(t, serveConfig("serve"))
	ctx := ctxFor(t)
	m, err := p1.Create(ctx, spec("web", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	fetch(t, m.Address)

	p2 := f.provider(t, serveConfig("serve"))
	ms, err := p2.List(ctx, "web")
	if err != nil || len(ms) != 1 || ms[0].ID != m.ID || ms[0].Address != m.Address {
		t.Fatalf("List after restart = %+v, %v; want %+v", ms, err, m)
	}
	got, err := p2.Get(ctx, m.ID)
	if err != nil || got.State != provider.MachineRunning || got.NodeID != "n1" || got.Address != m.Address {
		t.Fatalf("Get after restart = %+v, %v", got, err)
	}
	again, err := p2.Create(ctx, spec("web", "n1"))
	if err != nil || again.ID != m.ID {
		t.Fatalf("Create after restart = %+v, %v; want the adopted %s", again, err, m.ID)
	}

	if err := p2.Delete(ctx, m.ID); err != nil {
		t.Fatalf("Delete of the adopted node: %v", err)
	}
	if alive(pidOf(t, m)) {
		t.Error("the process still runs after Delete")
	}
	if _, err := p2.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	// The provider that started it saw it end.
	got, err = p1.Get(ctx, m.ID)
	if err != nil || got.State != provider.MachineStopped || got.Reason != "killed by signal 15" {
		t.Errorf("Get from the starter = %+v, %v; want stopped by SIGTERM", got, err)
	}
}

func TestDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, serveConfig("serve", "spawn"))
	ctx := ctxFor(t)
	m, err := p.Create(ctx, spec("web", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	body := fetch(t, m.Address)
	_, childText, _ := strings.Cut(body, "child=")
	childPID, err := strconv.Atoi(childText)
	if err != nil || !alive(childPID) {
		t.Fatalf("the node's child %q is not running: %v", childText, err)
	}

	start := time.Now()
	if err := p.Delete(ctx, m.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Delete took %s", d)
	}
	if alive(pidOf(t, m)) {
		t.Error("the node still runs")
	}
	waitFor(t, "the node's child to be gone", func() bool { return !alive(childPID) })
	if ms, err := p.List(ctx, "web"); err != nil || len(ms) != 0 {
		t.Errorf("List after Delete = %+v, %v", ms, err)
	}
	if _, err := p.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := p.Delete(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
}

func TestDeleteKillsAfterStopTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cfg := serveConfig("ignore-term")
	cfg.StopTimeout = plugin.Duration(200 * time.Millisecond)
	p := f.provider(t, cfg)
	ctx := ctxFor(t)
	m, err := p.Create(ctx, spec("web", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	fetch(t, m.Address) // SIGTERM is ignored from now on

	start := time.Now()
	if err := p.Delete(ctx, m.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Delete took %s, want the stop timeout and a bit", d)
	}
	if alive(pidOf(t, m)) {
		t.Error("the process still runs")
	}
}

func TestProcessEndsByItself(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    *Config
		kill   bool
		reason string
	}{
		{
			name:   "exit status",
			cfg:    &Config{Command: []string{"{{.Executable}}", "2"}, Env: map[string]string{helperEnv: "exit"}},
			reason: "exited: exit status 2",
		},
		{
			name:   "killed",
			cfg:    serveConfig("serve"),
			kill:   true,
			reason: "killed by signal 9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.provider(t, tt.cfg)
			ctx := ctxFor(t)
			m, err := p.Create(ctx, spec("web", "n1"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.kill {
				fetch(t, m.Address)
				if err := syscall.Kill(pidOf(t, m), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			var got provider.Machine
			waitFor(t, "the process to end", func() bool {
				got, err = p.Get(ctx, m.ID)
				return err != nil || got.State != provider.MachineRunning
			})
			if err != nil || got.State != provider.MachineStopped || got.Reason != tt.reason ||
				got.NodeID != "n1" || got.Address != m.Address {
				t.Errorf("Get = %+v, %v; want stopped with %q", got, err, tt.reason)
			}
			// A restarted server no longer sees it.
			if _, err := f.provider(t, tt.cfg).Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
				t.Errorf("Get from another provider: %v, want ErrNotFound", err)
			}
			if ms, err := p.List(ctx, "web"); err != nil || len(ms) != 0 {
				t.Errorf("List = %+v, %v; want nothing", ms, err)
			}
			err = p.Delete(ctx, m.ID)
			if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("Delete: %v, want ErrNotFound naming %q", err, tt.reason)
			}
			// A new Create starts a new process.
			m2, err := p.Create(ctx, spec("web", "n1"))
			if err != nil || m2.ID == m.ID {
				t.Errorf("Create after the end = %+v, %v; want a new process", m2, err)
			}
		})
	}
}

func TestIDGuards(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, serveConfig("serve"))
	ctx := ctxFor(t)
	m, err := p.Create(ctx, spec("web", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	start, _ := strconv.ParseUint(m.Meta["start_time"], 10, 64)
	self, err := readStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		id   string
	}{
		{"pid reused", fmt.Sprintf("%s:%d", m.Meta["pid"], start+1)},
		{"not a node", fmt.Sprintf("%d:%s", os.Getpid(), self.StartTime)},
		{"no such process", "2147483646:1"},
		{"empty", ""},
		{"no start time", m.Meta["pid"]},
		{"bad pid", "x:1"},
		{"negative pid", "-1:1"},
		{"bad start time", m.Meta["pid"] + ":x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := p.Get(ctx, tt.id); !errors.Is(err, provider.ErrNotFound) {
				t.Errorf("Get(%q): %v, want ErrNotFound", tt.id, err)
			}
			if err := p.Delete(ctx, tt.id); !errors.Is(err, provider.ErrNotFound) {
				t.Errorf("Delete(%q): %v, want ErrNotFound", tt.id, err)
			}
		})
	}
	t.Cleanup(func() {
		if !alive(pidOf(t, m)) {
			t.Error("a guarded Delete killed the node")
		}
	})
}

func TestContextCancellation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.provider(t, serveConfig("ignore-term")) // stop timeout: 10s

	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Create(canceled, spec("web", "n0")); !errors.Is(err, context.Canceled) {
		t.Errorf("Create with a canceled context: %v", err)
	}
	if _, err := p.List(canceled, "web"); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a canceled context: %v", err)
	}

	ctx := ctxFor(t)
	if ms, err := p.List(ctx, "web"); err != nil || len(ms) != 0 {
		t.Fatalf("List = %+v, %v; want nothing started", ms, err)
	}
	m, err := p.Create(ctx, spec("web", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	fetch(t, m.Address)

	short, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Delete(short, m.ID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Delete: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Delete returned after %s", d)
	}
	if !alive(pidOf(t, m)) {
		t.Error("the process died, but it ignores SIGTERM")
	}
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *Config
		spec provider.NodeSpec
	}{
		{"no such program", &Config{Command: []string{"/nonexistent/program"}}, spec("web", "n1")},
		{"program not in PATH", &Config{Command: []string{"goscaler-no-such-program"}}, spec("web", "n1")},
		{"undefined var", &Config{Command: []string{"true", "{{.Nope}}"}}, spec("web", "n1")},
		{"no such dir", &Config{Command: []string{"true"}, Dir: "/nonexistent/dir"}, spec("web", "n1")},
		{"bad node ID", &Config{Command: []string{"true"}}, spec("web", "../n1")},
		{"bad cluster", &Config{Command: []string{"true"}}, spec("", "n1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			_, err := f.provider(t, tt.cfg).Create(ctxFor(t), tt.spec)
			if !errors.Is(err, provider.ErrConfig) {
				t.Errorf("Create: %v, want ErrConfig", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  *Config
		env  provider.Env
	}{
		{"no owner", serveConfig("serve"), provider.Env{DataDir: "/tmp"}},
		{"no data dir", serveConfig("serve"), provider.Env{Owner: "o"}},
		{"invalid config", &Config{}, provider.Env{Owner: "o", DataDir: "/tmp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tt.cfg.New(tt.env); !errors.Is(err, provider.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"minimal", Config{Command: []string{"server"}}, nil},
		{"full", Config{
			Command:     []string{"{{.Executable}}", "serve", "--listen={{.Address}}"},
			Env:         map[string]string{"NODE": "{{.NodeID}}"},
			Dir:         "/srv/{{.Cluster}}",
			Host:        "::1",
			StopTimeout: plugin.Duration(time.Second),
		}, nil},
		{"no command", Config{}, []string{"command: must not be empty"}},
		{"empty program", Config{Command: []string{" "}}, []string{"command[0]"}},
		{"bad argument template", Config{Command: []string{"x", "{{.Port"}}, []string{"command[1]"}},
		{"bad env template", Config{Command: []string{"x"}, Env: map[string]string{"A": "{{"}}, []string{"env.A"}},
		{"bad env name", Config{Command: []string{"x"}, Env: map[string]string{"A=B": "1"}}, []string{`env: "A=B"`}},
		{"reserved env", Config{Command: []string{"x"}, Env: map[string]string{TagNode: "1"}}, []string{"env.GOSCALER_NODE: reserved"}},
		{"bad dir template", Config{Command: []string{"x"}, Dir: "{{end}}"}, []string{"dir:"}},
		{"host not an IP", Config{Command: []string{"x"}, Host: "localhost"}, []string{`host: "localhost" is not an IP`}},
		{"negative stop timeout", Config{Command: []string{"x"}, StopTimeout: -1}, []string{"stop_timeout"}},
		{"all at once", Config{Host: "x", Dir: "{{", StopTimeout: -1}, []string{"command:", "host:", "dir:", "stop_timeout:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v; want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestRegistryDecode(t *testing.T) {
	t.Parallel()
	var node yaml.Node
	src := "command: ['{{.Executable}}', '{{.Address}}']\nenv: {A: b}\ndir: /tmp\nhost: 127.0.0.2\nstop_timeout: 3s\n"
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.Registry.Decode("process", &node)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	c := cfg.(*Config)
	if len(c.Command) != 2 || c.Env["A"] != "b" || c.Dir != "/tmp" || c.Host != "127.0.0.2" || c.StopTimeout.D() != 3*time.Second {
		t.Errorf("decoded %+v", c)
	}

	if err := yaml.Unmarshal([]byte("command: [x]\nhost: nope\ncmd: y\n"), &node); err != nil {
		t.Fatal(err)
	}
	_, err = provider.Registry.Decode("process", &node)
	if err == nil || !strings.Contains(err.Error(), `unknown key "cmd"`) {
		t.Errorf("Decode with an unknown key: %v", err)
	}
}

// A config is stored as JSON with an activity; it must come back the same.
func TestConfigJSON(t *testing.T) {
	t.Parallel()
	in := Config{
		Command:     []string{"{{.Executable}}", "{{.Address}}"},
		Env:         map[string]string{"A": "{{.NodeID}}"},
		Dir:         "/srv",
		Host:        "127.0.0.2",
		StopTimeout: plugin.Duration(1500 * time.Millisecond),
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Config
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal %s: %v", b, err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip through %s = %+v, want %+v", b, out, in)
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	rest := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"
	tests := []struct {
		name string
		in   string
		want procStat
		err  bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194304 1 0 0 0 0 0 0 0 20 0 1 0 987654 1" + rest,
			procStat{State: 'S', PPID: 1, PGRP: 42, StartTime: "987654"}, false},
		{"name with spaces and parens", "7 (a) b (c) Z 3 4 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 1",
			procStat{State: 'Z', PPID: 3, PGRP: 4, StartTime: "55"}, false},
		{"truncated", "7 (x) S 1 2 3", procStat{}, true},
		{"no name", "7 x S 1 2 3", procStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parseStat = %+v, %v; want %+v (error %v)", got, err, tt.want, tt.err)
			}
		})
	}
}
