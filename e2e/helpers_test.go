// Package e2e holds goscaler's end-to-end tests: they build the real binary,
// run it as a user would (server, demo, CLI) with real node processes, and
// look at the result through the REST API and /proc.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// bin is the goscaler binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "goscaler-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "goscaler")
	build := exec.Command("go", "build", "-o", bin, "./cmd/goscaler")
	build.Dir = ".." // the module root: the tests run in e2e/
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build ./cmd/goscaler failed:", err)
		return 1
	}
	return m.Run()
}

// ---------------------------------------------------------------------------
// Small utilities

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueName returns a cluster name unique to this run: prefix-<8 hex>.
func uniqueName(prefix string) string { return prefix + "-" + randHex(4) }

// freeAddr returns a free 127.0.0.1:PORT.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// tempDir is t.TempDir with symlinks resolved, so that it compares equal to
// what /proc shows.
func tempDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if r, err := filepath.EvalSymlinks(d); err == nil {
		d = r
	}
	return d
}

// waitFor polls cond every interval until it holds, or fails the test after
// timeout with what and cond's last explanation.
func waitFor(t *testing.T, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(interval)
	}
}

// cleanEnv is the environment of the processes the tests start: the test's
// own, without goscaler settings that would change what is tested.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOSCALER_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// goscaler processes

// proc is a goscaler process the test started (server or demo).
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // set before done is closed
}

// start runs the goscaler binary with args in dir, output appended to logPath.
// The process is killed (SIGKILL) in t.Cleanup if it still runs, and the tail
// of its log is printed if the test failed.
func start(t *testing.T, name, dir, logPath string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, dir, logPath, cleanEnv(), args...)
}

// startEnv is start with the process's environment.
func startEnv(t *testing.T, name, dir, logPath string, env []string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("opening %s: %v", logPath, err)
	}
	fmt.Fprintf(logf, "=== e2e %s: goscaler %s\n", time.Now().Format("15:04:05.000"), strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("starting goscaler %v: %v", args, err)
	}
	_ = logf.Close()
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- tail of %s log (%s):\n%s", p.name, p.logPath, tail(p.logPath, 60))
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill9 kills the process with SIGKILL and waits until it is reaped.
func (p *proc) kill9() {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("%s (pid %d) had already exited before kill -9: %v", p.name, p.pid(), p.err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// wait waits up to timeout for the process to exit and reports whether it did.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// server is a goscaler server with its config and data directory.
type server struct {
	*proc
	addr    string
	dataDir string
	config  string
	token   string
	api     *apiClient
}

// startServer runs `goscaler server --config cfgPath [extra…]` and waits for /healthz.
func startServer(t *testing.T, cfgPath, addr, dataDir, token string, extra ...string) *server {
	t.Helper()
	return startServerEnv(t, cfgPath, addr, dataDir, token, cleanEnv(), extra...)
}

// startServerEnv is startServer with the server's environment.
func startServerEnv(t *testing.T, cfgPath, addr, dataDir, token string, env []string, extra ...string) *server {
	t.Helper()
	dir := filepath.Dir(cfgPath)
	p := startEnv(t, "server", dir, filepath.Join(dir, "server.log"), env, append([]string{"server", "--config", cfgPath}, extra...)...)
	s := &server{proc: p, addr: addr, dataDir: dataDir, config: cfgPath, token: token,
		api: &apiClient{t: t, base: "http://" + addr, token: token}}
	waitHealthy(t, p, addr, 30*time.Second)
	return s
}

// waitHealthy waits until GET /healthz answers 200, failing early if the
// process exits.
func waitHealthy(t *testing.T, p *proc, addr string, timeout time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	waitFor(t, timeout, 100*time.Millisecond, p.name+" /healthz on "+addr, func() (bool, string) {
		if !p.running() {
			t.Fatalf("%s exited before it was healthy: %v\n%s", p.name, p.err, tail(p.logPath, 30))
		}
		resp, err := c.Get("http://" + addr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// runCLI runs the goscaler binary to completion and returns its exit code,
// stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCLIInput(t, "", args...)
}

// runCLIInput is runCLI with stdin.
func runCLIInput(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	default:
		t.Fatalf("running goscaler %v: %v", args, err)
		return -1, "", ""
	}
}

// ---------------------------------------------------------------------------
// Configuration

// clusterSpec is what the tests vary in a cluster of demo nodes.
type clusterSpec struct {
	Name              string
	Min, Max, Desired int
	LBListen          string // "" for no load balancer
	// LoadBalancer, when set, is the cluster's whole load_balancer section
	// (YAML indented for the cluster), instead of the builtin on LBListen.
	LoadBalancer        string
	Triggers            string // YAML of the triggers list items, indented for the cluster, or ""
	Counters            string // YAML of the counters list items, or ""
	BootTimeout         string
	HealthInterval      string
	UnhealthyThreshold  int
	StopTimeout         string
	ExtraServerSettings string
	// NodeArgs are extra demo-node flags, as a YAML flow list tail: `, "--capacity", "16"`.
	NodeArgs string
}

// writeConfig writes a server configuration with one cluster of demo nodes
// and returns its path.
func writeConfig(t *testing.T, dir, addr, dataDir string, c clusterSpec) string {
	t.Helper()
	if c.BootTimeout == "" {
		c.BootTimeout = "30s"
	}
	if c.HealthInterval == "" {
		c.HealthInterval = "1s"
	}
	if c.UnhealthyThreshold == 0 {
		c.UnhealthyThreshold = 3
	}
	if c.StopTimeout == "" {
		c.StopTimeout = "5s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  listen: %q
  data_dir: %q
  tick: 500ms
  log_level: debug
%s
clusters:
  - name: %s
    min: %d
    max: %d
    desired: %d
    provider:
      type: process
      command: ["{{.Executable}}", "demo-node", "--listen", "{{.Address}}", "--node-id", "{{.NodeID}}"%s]
      stop_timeout: %s
    health_check:
      type: http
      path: /healthz
      interval: %s
      timeout: 500ms
      unhealthy_threshold: %d
    boot_timeout: %s
`, addr, dataDir, c.ExtraServerSettings, c.Name, c.Min, c.Max, c.Desired, c.NodeArgs, c.StopTimeout,
		c.HealthInterval, c.UnhealthyThreshold, c.BootTimeout)
	if c.LoadBalancer != "" {
		b.WriteString(c.LoadBalancer)
	} else if c.LBListen != "" {
		fmt.Fprintf(&b, `    load_balancer:
      type: builtin
      listen: %q
      health_interval: 1s
`, c.LBListen)
	}
	if c.Counters != "" {
		b.WriteString("    counters:\n" + c.Counters)
	}
	if c.Triggers != "" {
		b.WriteString("    triggers:\n" + c.Triggers)
	}
	path := filepath.Join(dir, "goscaler.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every config a test writes must be valid: catch a test bug early.
	if code, out, errOut := runCLI(t, "check", "config", path); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d):\n%s%s\n%s", code, out, errOut, b.String())
	}
	return path
}

// ---------------------------------------------------------------------------
// REST API

type apiClient struct {
	t     *testing.T
	base  string
	token string
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// do sends a request and decodes a JSON answer into out (if not nil). It
// returns the status code; a transport error is returned as err.
func (a *apiClient) do(method, path string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, data, fmt.Errorf("decoding %s %s: %w: %s", method, path, err, data)
		}
	}
	return resp.StatusCode, data, nil
}

// must sends a request that must succeed with want and decodes the answer.
func (a *apiClient) must(method, path string, body, out any, want int) {
	a.t.Helper()
	code, data, err := a.do(method, path, body, out)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		a.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, code, want, data)
	}
}

type clusterView struct {
	Name      string         `json:"name"`
	Min       int            `json:"min"`
	Max       int            `json:"max"`
	Desired   int            `json:"desired"`
	InService int            `json:"in_service"`
	Nodes     map[string]int `json:"nodes"`
}

type node struct {
	ID          string            `json:"id"`
	Cluster     string            `json:"cluster"`
	State       string            `json:"state"`
	Address     string            `json:"address"`
	MachineID   string            `json:"machine_id"`
	Reason      string            `json:"reason"`
	Maintenance bool              `json:"maintenance"`
	Meta        map[string]string `json:"meta"`
}

func (n node) pid() int {
	p, _ := strconv.Atoi(n.Meta["pid"])
	return p
}

type activity struct {
	ID         int64     `json:"id"`
	ParentID   int64     `json:"parent_id"`
	Cluster    string    `json:"cluster"`
	Node       string    `json:"node"`
	Trigger    string    `json:"trigger"`
	Kind       string    `json:"kind"`
	Cause      string    `json:"cause"`
	Status     string    `json:"status"`
	Step       int       `json:"step"`
	Output     string    `json:"output"`
	Error      string    `json:"error"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

func (a activity) String() string {
	s := fmt.Sprintf("#%d %s %s %q", a.ID, a.Kind, a.Status, a.Cause)
	if a.Node != "" {
		s += " node=" + a.Node
	}
	if a.Error != "" {
		s += " error=" + strconv.Quote(a.Error)
	}
	return s
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// cluster returns GET /api/v1/clusters/NAME (ok false on any error).
func (a *apiClient) cluster(name string) (clusterView, bool) {
	var c clusterView
	code, _, err := a.do("GET", "/api/v1/clusters/"+name, nil, &c)
	return c, err == nil && code == http.StatusOK
}

// nodes returns the cluster's nodes (terminated ones too with all).
func (a *apiClient) nodes(clusterName string, all bool) ([]node, error) {
	var ns []node
	path := "/api/v1/clusters/" + clusterName + "/nodes"
	if all {
		path += "?all=true"
	}
	code, data, err := a.do("GET", path, nil, &ns)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", path, code, data)
	}
	return ns, err
}

// activities returns GET /api/v1/activities?QUERY.
func (a *apiClient) activities(query string) ([]activity, error) {
	var acts []activity
	path := "/api/v1/activities?" + query
	code, data, err := a.do("GET", path, nil, &acts)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d: %s", path, code, data)
	}
	return acts, err
}

// inService returns the in-service nodes of a node list.
func inService(ns []node) []node {
	var out []node
	for _, n := range ns {
		if n.State == "in_service" {
			out = append(out, n)
		}
	}
	return out
}

func describeNodes(ns []node) string {
	var parts []string
	for _, n := range ns {
		parts = append(parts, fmt.Sprintf("%s=%s(pid %s)", n.ID, n.State, n.Meta["pid"]))
	}
	return strings.Join(parts, " ")
}

// waitInService waits until the cluster has exactly want nodes in service and
// no other live (non-terminated) node, and returns them.
func waitInService(t *testing.T, a *apiClient, clusterName string, want int, timeout time.Duration) []node {
	t.Helper()
	var got []node
	waitFor(t, timeout, 200*time.Millisecond, fmt.Sprintf("%d node(s) of %s in service", want, clusterName), func() (bool, string) {
		ns, err := a.nodes(clusterName, false)
		if err != nil {
			return false, err.Error()
		}
		got = inService(ns)
		return len(got) == want && len(ns) == want, describeNodes(ns)
	})
	return got
}

// ---------------------------------------------------------------------------
// Node processes, found through /proc

// nodeProc is a live node process.
type nodeProc struct {
	PID  int
	Node string
	Cmd  string
}

func (p nodeProc) String() string { return fmt.Sprintf("%s(pid %d)", p.Node, p.PID) }

// procState returns the state letter of /proc/PID/stat, 0 if the process is gone.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	s := procState(pid)
	return s != 0 && s != 'Z' && s != 'X' && s != 'x'
}

func environ(pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if ok {
			env[string(k)] = string(v)
		}
	}
	return env
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// nodeProcs returns the live node processes of cluster clusterName started by
// a server whose data directory is dataDir: tagged with GOSCALER_CLUSTER, an
// owner and a node ID, and working in dataDir (the process provider's
// default). Only group leaders count: a node's own children share its tags.
func nodeProcs(clusterName, dataDir string) []nodeProc {
	var out []nodeProc
	for _, pid := range allPIDs() {
		env := environ(pid)
		if env["GOSCALER_CLUSTER"] != clusterName || env["GOSCALER_NODE"] == "" || env["GOSCALER_OWNER"] == "" {
			continue
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != dataDir {
			continue
		}
		if !alive(pid) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, nodeProc{PID: pid, Node: env["GOSCALER_NODE"],
			Cmd: strings.Join(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), " ")})
	}
	slices.SortFunc(out, func(a, b nodeProc) int { return strings.Compare(a.Node, b.Node) })
	return out
}

// procsInDir returns the live processes working in dir.
func procsInDir(dir string) []int {
	var out []int
	for _, pid := range allPIDs() {
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd == dir && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// procsWithEnv returns the live processes whose environment has key=value.
func procsWithEnv(key, value string) []int {
	var out []int
	for _, pid := range allPIDs() {
		if environ(pid)[key] == value && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// cleanupNodes registers a cleanup that kills every node process of the
// cluster left running (a killed server leaves its nodes behind on purpose)
// and waits for them to be gone, so that the data directory can be removed.
// Register it after the data directory's TempDir and before the server, so
// that it runs after the server is killed and before the directory goes.
func cleanupNodes(t *testing.T, clusterName, dataDir string) {
	t.Cleanup(func() {
		left := nodeProcs(clusterName, dataDir)
		for _, p := range left {
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, p := range left {
			for alive(p.PID) && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
}

// countLines counts the lines of a file for which match holds (0 if the file
// does not exist).
func countLines(t *testing.T, path string, match func(line string) bool) int {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if match(sc.Text()) {
			n++
		}
	}
	return n
}

// ---------------------------------------------------------------------------
// Traffic through a load balancer

// request is the outcome of one request of a traffic run.
type request struct {
	start, end time.Time
	node       string // X-Goscaler-Node of the answer
	err        string // "" when it succeeded (2xx, whole body read)
}

// traffic is a set of clients sending GET requests in a loop through a load
// balancer until stopped (or for at most limit).
type traffic struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []request
	began   time.Time
}

// startTraffic starts clients goroutines sending GET http://lbAddr/work/…,
// for at most limit.
func startTraffic(lbAddr string, clients int, limit time.Duration) *traffic {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	tr := &traffic{cancel: cancel, began: time.Now()}
	for i := range clients {
		tr.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				r := request{start: time.Now()}
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s/work/%d/%d", lbAddr, i, n), nil)
				resp, err := client.Do(req)
				switch {
				case err != nil && ctx.Err() != nil:
					return // stopped
				case err != nil:
					r.err = err.Error()
				default:
					body, rerr := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					r.node = resp.Header.Get("X-Goscaler-Node")
					switch {
					case rerr != nil && ctx.Err() != nil:
						return
					case rerr != nil:
						r.err = "reading the body: " + rerr.Error()
					case resp.StatusCode/100 != 2:
						r.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
					}
				}
				r.end = time.Now()
				tr.mu.Lock()
				tr.results = append(tr.results, r)
				tr.mu.Unlock()
			}
		})
	}
	return tr
}

// stop stops the clients (requests in flight are abandoned, not counted) and
// returns the finished requests. It may be called more than once.
func (tr *traffic) stop() []request {
	tr.cancel()
	tr.wg.Wait()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.results)
}

// checkNoFailure fails the test if a request failed, logging the first ones
// with their times relative to event (named eventName), and returns the
// number of requests that succeeded between from and to.
func checkNoFailure(t *testing.T, results []request, began time.Time, eventName string, event, from, to time.Time) int {
	t.Helper()
	ok, failed, during := 0, 0, 0
	for _, r := range results {
		if r.err != "" {
			failed++
			if failed <= 10 {
				t.Logf("request sent at %s, failed at %s (%s at %s): node %q: %s",
					r.start.Sub(began).Round(time.Millisecond), r.end.Sub(began).Round(time.Millisecond),
					eventName, event.Sub(began).Round(time.Millisecond), r.node, r.err)
			}
			continue
		}
		ok++
		if r.end.After(from) && r.end.Before(to) {
			during++
		}
	}
	t.Logf("requests: %d succeeded (%d between %s and the end of its effect), %d failed", ok, during, eventName, failed)
	if failed > 0 {
		t.Errorf("%d request(s) through the load balancer failed; want none", failed)
	}
	return during
}

// waitLBServes waits until the balancer at lbAddr has served /healthz from
// each of the want nodes.
func waitLBServes(t *testing.T, lbAddr string, want int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	seen := map[string]bool{}
	waitFor(t, 20*time.Second, 20*time.Millisecond, fmt.Sprintf("the load balancer to serve all %d nodes", want), func() (bool, string) {
		resp, err := c.Get("http://" + lbAddr + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			seen[resp.Header.Get("X-Goscaler-Node")] = true
		}
		return len(seen) == want, fmt.Sprintf("HTTP %d, served by %v", resp.StatusCode, seen)
	})
}
