package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
)

// sshCluster is what the SSH tests vary in a cluster of static sshd hosts.
type sshCluster struct {
	Name string
	// Min and Desired default to the number of hosts (max is always that).
	Min, Desired int
	KnownHosts   string
	TOFU         bool
	Counters     string // YAML of the counters list items
	Triggers     string // YAML of the triggers list items, or ""
	// Max defaults to the number of hosts; Health replaces the tcp
	// health_check section (its indented keys); Extra is more cluster keys.
	Max           int
	Health, Extra string
}

// writeSSHConfig writes a server configuration with one cluster whose nodes
// are the sshd hosts of set (static provider, tcp health check on the sshd
// port) and returns its path.
func writeSSHConfig(t *testing.T, dir, addr, dataDir string, set *sshdtest.Set, c sshCluster) string {
	t.Helper()
	if c.Min == 0 {
		c.Min = len(set.Hosts)
	}
	if c.Desired == 0 {
		c.Desired = c.Min
	}
	if c.Max == 0 {
		c.Max = len(set.Hosts)
	}
	if c.Health == "" {
		c.Health = "      type: tcp\n      interval: 1s\n      timeout: 500ms\n"
	}
	var hosts strings.Builder
	for _, h := range set.Hosts {
		fmt.Fprintf(&hosts, "        - {address: %s, port: %d}\n", h.IP, h.Port)
	}
	src := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  tick: 500ms
  log_level: debug
clusters:
  - name: %s
    min: %d
    max: %d
    desired: %d
    ssh:
      user: %s
      identity_files: [%q]
      agent: false
      known_hosts: %q
      trust_on_first_use: %v
      connect_timeout: 5s
    provider:
      type: static
      hosts:
%s    health_check:
%s    boot_timeout: 30s
%s    counters:
%s`, addr, dataDir, c.Name, c.Min, c.Max, c.Desired, set.User, set.ClientKey, c.KnownHosts, c.TOFU,
		hosts.String(), c.Health, c.Extra, c.Counters)
	if c.Triggers != "" {
		src += "    triggers:\n" + c.Triggers
	}
	path := filepath.Join(dir, "goscaler.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "check", "config", path); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d):\n%s%s\n%s", code, out, errOut, src)
	}
	return path
}

// sshSample is a counter reading as the API shows it.
type sshSample struct {
	Node      string    `json:"node"`
	At        time.Time `json:"at"`
	Value     float64   `json:"value"`
	Error     string    `json:"error"`
	Reporting int       `json:"reporting"`
}

type sshReading struct {
	Aggregate sshSample   `json:"aggregate"`
	Nodes     []sshSample `json:"nodes"`
}

// readings returns the latest reading of every counter of a cluster.
func (a *apiClient) readings(clusterName string) (map[string]sshReading, error) {
	var out map[string]sshReading
	path := "/api/v1/clusters/" + clusterName + "/counters"
	code, data, err := a.do("GET", path, nil, &out)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET %s: HTTP %d: %s", path, code, data)
	}
	return out, err
}

// waitReading waits until the latest reading of counter, taken after since,
// satisfies ok.
func waitReading(t *testing.T, a *apiClient, clusterName, counter string, since time.Time, timeout time.Duration, ok func(sshReading) (bool, string)) sshReading {
	t.Helper()
	var got sshReading
	waitFor(t, timeout, 200*time.Millisecond, "counter "+counter+" of "+clusterName, func() (bool, string) {
		rs, err := a.readings(clusterName)
		if err != nil {
			return false, err.Error()
		}
		r, found := rs[counter]
		if !found || !r.Aggregate.At.After(since) {
			return false, fmt.Sprintf("no sshReading after %s yet: %+v", since.Format(time.TimeOnly), r)
		}
		got = r
		return ok(r)
	})
	return got
}

// nodeHosts maps the node IDs of the cluster's in-service nodes to their
// sshd host (by the machine ID the static provider gives: the SSH address).
func nodeHosts(t *testing.T, nodes []node, set *sshdtest.Set) map[string]*sshdtest.Host {
	t.Helper()
	out := map[string]*sshdtest.Host{}
	for _, n := range nodes {
		for _, h := range set.Hosts {
			if n.MachineID == h.Addr {
				out[n.ID] = h
			}
		}
		if out[n.ID] == nil {
			t.Fatalf("node %s has machine %q, which is none of the sshd hosts", n.ID, n.MachineID)
		}
		if n.Meta["ssh_host"] == "" || n.Meta["ssh_port"] == "" {
			t.Errorf("node %s does not record how to reach it over SSH: meta %v", n.ID, n.Meta)
		}
	}
	return out
}

// TestSSHCounters runs a cluster of three existing hosts (real sshd on
// 127.0.0.2-4, static provider) with three ssh counters: each node's reading
// comes from its own host, the aggregates are right, a trigger fires on
// them, and each host sees one SSH connection however many readings it
// serves.
func TestSSHCounters(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 3)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("ssh")
	addr := freeAddr(t)
	fired := filepath.Join(dir, "fired")
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name:       name,
		KnownHosts: set.WriteKnownHosts(filepath.Join(dir, "known_hosts")),
		// $SSH_CONNECTION's 4th field is the port of the sshd that runs the
		// command: proof of where it ran.
		Counters: `      - name: port
        type: ssh
        shell: echo "$SSH_CONNECTION" | cut -d' ' -f4
        interval: 1s
        aggregate: max
      - name: nodenum
        type: ssh
        command: ["sh", "-c", 'echo "${1##*-}"', "x", "{{.NodeID}}"]
        interval: 1s
        aggregate: sum
      - name: load
        type: ssh
        shell: cut -d' ' -f1 /proc/loadavg
        interval: 1s
`,
		Triggers: fmt.Sprintf(`      - name: seen
        counter: nodenum
        above: 0
        for: 2s
        cooldown: 1h
        actions:
          - type: local_script
            shell: 'echo {{.Counter_nodenum}} > %s'
`, fired),
	})
	srv := startServer(t, cfg, addr, dataDir, "")

	nodes := waitInService(t, srv.api, name, 3, 45*time.Second)
	hosts := nodeHosts(t, nodes, set)
	start := time.Now()

	r := waitReading(t, srv.api, name, "port", start, 30*time.Second, func(r sshReading) (bool, string) {
		return len(r.Nodes) == 3 && r.Aggregate.Error == "", fmt.Sprintf("%+v", r)
	})
	maxPort := 0
	for _, s := range r.Nodes {
		h := hosts[s.Node]
		if s.Error != "" || s.Value != float64(h.Port) {
			t.Errorf("node %s on %s: port counter %v (error %q), want its sshd's port %d", s.Node, h.Addr, s.Value, s.Error, h.Port)
		}
		maxPort = max(maxPort, h.Port)
	}
	if r.Aggregate.Value != float64(maxPort) || r.Aggregate.Reporting != 3 {
		t.Errorf("aggregate %+v, want max %d from 3 nodes", r.Aggregate, maxPort)
	}

	wantSum := 0
	for _, n := range nodes {
		k, err := strconv.Atoi(n.ID[strings.LastIndex(n.ID, "-")+1:])
		if err != nil {
			t.Fatal(err)
		}
		wantSum += k
	}
	waitReading(t, srv.api, name, "nodenum", start, 30*time.Second, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Value == float64(wantSum) && r.Aggregate.Reporting == 3, fmt.Sprintf("%+v, want sum %d", r, wantSum)
	})
	waitReading(t, srv.api, name, "load", start, 30*time.Second, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Reporting == 3 && r.Aggregate.Value >= 0, fmt.Sprintf("%+v", r)
	})

	// The trigger fed by the ssh counter fired, with the aggregate.
	waitFor(t, 20*time.Second, 200*time.Millisecond, "trigger seen to run its script", func() (bool, string) {
		b, err := os.ReadFile(fired)
		if err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(string(b)) == strconv.Itoa(wantSum), string(b)
	})

	// More readings, still one connection per host.
	later := time.Now()
	waitReading(t, srv.api, name, "load", later.Add(3*time.Second), 30*time.Second, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "", fmt.Sprintf("%+v", r)
	})
	for _, h := range set.Hosts {
		if n := h.Logins(); n != 1 {
			t.Errorf("sshd %s logged %d logins, want 1: every counter of a node shares its connection\n%s", h.Addr, n, h.Log())
		}
	}
	var series struct {
		Samples []sshSample `json:"samples"`
	}
	srv.api.must("GET", "/api/v1/clusters/"+name+"/counters/port?since=1m", nil, &series, 200)
	if len(series.Samples) < 3*4 {
		t.Errorf("only %d samples of port in the last minute", len(series.Samples))
	}
}

// TestSSHHostKeyChangedIsRefused replaces one host's key (a reinstalled
// machine, or someone in the middle): goscaler refuses the host, even with
// trust on first use, leaves known_hosts alone, says which line to check, and
// keeps reading the other hosts.
func TestSSHHostKeyChangedIsRefused(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("sshkey")
	addr := freeAddr(t)
	kh := set.WriteKnownHosts(filepath.Join(dir, "known_hosts"))
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name:       name,
		KnownHosts: kh,
		TOFU:       true,
		Counters: `      - name: one
        type: ssh
        shell: echo 1
        interval: 1s
        timeout: 900ms
`,
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 2, 45*time.Second)
	hosts := nodeHosts(t, nodes, set)
	waitReading(t, srv.api, name, "one", time.Now(), 30*time.Second, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Reporting == 2, fmt.Sprintf("%+v", r)
	})
	before, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}

	victim := set.Hosts[0]
	var victimNode string
	for id, h := range hosts {
		if h == victim {
			victimNode = id
		}
	}
	if err := victim.Restart(true); err != nil {
		t.Fatal(err)
	}
	changedAt := time.Now()
	t.Logf("host %s (node %s) now has a new host key", victim.Addr, victimNode)

	r := waitReading(t, srv.api, name, "one", changedAt, 30*time.Second, func(r sshReading) (bool, string) {
		for _, s := range r.Nodes {
			if s.Node == victimNode && strings.Contains(s.Error, "CHANGED") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", r)
	})
	for _, s := range r.Nodes {
		if s.Node != victimNode {
			if s.Error != "" || s.Value != 1 {
				t.Errorf("node %s on an unchanged host: %v (error %q), want 1", s.Node, s.Value, s.Error)
			}
			continue
		}
		t.Logf("node %s: %s", s.Node, s.Error)
		for _, want := range []string{"REFUSED", victim.Addr, kh, "line", "ssh-keygen -R"} {
			if !strings.Contains(s.Error, want) {
				t.Errorf("node %s's error does not contain %q: %s", s.Node, want, s.Error)
			}
		}
		if s.Value != 0 {
			t.Errorf("a refused sshReading has the value %v", s.Value)
		}
	}
	// Refused on every later reading too, never accepted.
	waitReading(t, srv.api, name, "one", time.Now().Add(2*time.Second), 30*time.Second, func(r sshReading) (bool, string) {
		for _, s := range r.Nodes {
			if s.Node == victimNode {
				return strings.Contains(s.Error, "CHANGED"), s.Error
			}
		}
		return false, "no sample of " + victimNode
	})
	if after, _ := os.ReadFile(kh); !bytes.Equal(before, after) {
		t.Errorf("known_hosts was changed:\n%s\nwas:\n%s", after, before)
	}
	if n := victim.Logins(); n != 0 {
		t.Errorf("goscaler logged in %d time(s) to the host with the changed key", n)
	}
	if log := tail(srv.logPath, 2000); !strings.Contains(log, "ssh host key changed: connection refused") {
		t.Errorf("the server did not log the refusal")
	}
}

// TestSSHNonNumericOutputIsAnError checks that output that is not a number,
// and a command that fails, are errors that name the host and say why —
// never a zero — and that a trigger on such a counter does not fire.
func TestSSHNonNumericOutputIsAnError(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("sshnan")
	addr := freeAddr(t)
	fired := filepath.Join(dir, "fired")
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name:       name,
		KnownHosts: set.WriteKnownHosts(filepath.Join(dir, "known_hosts")),
		Counters: `      - name: words
        type: ssh
        shell: echo hello
        interval: 1s
      - name: fails
        type: ssh
        shell: echo 12; echo 'disk gone' >&2; exit 3
        interval: 1s
`,
		Triggers: fmt.Sprintf(`      - name: low
        counter: words
        below: 1000000
        for: 1s
        actions:
          - type: local_script
            shell: 'touch %s'
      - name: high
        counter: fails
        above: -1
        for: 1s
        actions:
          - type: local_script
            shell: 'touch %s'
`, fired, fired),
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 2, 45*time.Second)
	hosts := nodeHosts(t, nodes, set)
	start := time.Now()

	check := func(counter string, want ...string) {
		t.Helper()
		r := waitReading(t, srv.api, name, counter, start, 30*time.Second, func(r sshReading) (bool, string) {
			return len(r.Nodes) == 2, fmt.Sprintf("%+v", r)
		})
		for _, s := range r.Nodes {
			h := hosts[s.Node]
			for _, w := range append([]string{"ssh " + set.User + "@" + h.Addr + ": command "}, want...) {
				if !strings.Contains(s.Error, w) {
					t.Errorf("%s on node %s: error %q does not contain %q", counter, s.Node, s.Error, w)
				}
			}
			if s.Value != 0 {
				t.Errorf("%s on node %s: a failed sshReading carries the value %v", counter, s.Node, s.Value)
			}
		}
		if !strings.Contains(r.Aggregate.Error, "only 0 of 2 nodes reported") || r.Aggregate.Reporting != 0 {
			t.Errorf("%s aggregate %+v, want an error saying no node reported", counter, r.Aggregate)
		}
	}
	check("words", `output "hello" is not a number`)
	check("fails", "exit status 3: disk gone")

	// Well past the triggers' 1 s: nothing fired on missing data.
	time.Sleep(4 * time.Second)
	acts, err := srv.api.activities("cluster=" + name + "&kind=trigger")
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) > 0 {
		t.Errorf("a trigger fired on errors: %v", acts)
	}
	if _, err := os.Stat(fired); err == nil {
		t.Error("a trigger's script ran on errors")
	}
	// The errors are in the history too.
	var series struct {
		Errors []sshSample `json:"errors"`
	}
	srv.api.must("GET", "/api/v1/clusters/"+name+"/counters/words?since=1m", nil, &series, 200)
	if len(series.Errors) < 4 {
		t.Errorf("only %d errors of words recorded", len(series.Errors))
	}
}

// TestStaticHostsSurviveRestart kills the server (-9) under a cluster of
// existing hosts: the next server finds each node on its host, launches
// nothing, and then hands the free host to a new node and takes one back.
func TestStaticHostsSurviveRestart(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 3)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("static")
	addr := freeAddr(t)
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name: name, Min: 1, Desired: 2,
		KnownHosts: set.WriteKnownHosts(filepath.Join(dir, "known_hosts")),
		Counters: `      - name: one
        type: ssh
        shell: echo 1
        interval: 1s
`,
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	before := waitInService(t, srv.api, name, 2, 45*time.Second)
	machines := map[string]string{}
	for _, n := range before {
		machines[n.ID] = n.MachineID
	}
	srv.kill9()

	srv = startServer(t, cfg, addr, dataDir, "")
	waitReading(t, srv.api, name, "one", time.Now(), 30*time.Second, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Reporting == 2, fmt.Sprintf("%+v", r)
	})
	all, err := srv.api.nodes(name, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("after the restart the cluster has nodes %s, want the same 2", describeNodes(all))
	}
	for _, n := range all {
		if n.State != "in_service" || machines[n.ID] != n.MachineID {
			t.Errorf("after the restart node %s is %s on %q, want in service on %q", n.ID, n.State, n.MachineID, machines[n.ID])
		}
	}

	// Scale out: the third, free host.
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 3}, nil, 200)
	three := waitInService(t, srv.api, name, 3, 45*time.Second)
	used := map[string]string{}
	for _, n := range three {
		if other, dup := used[n.MachineID]; dup {
			t.Fatalf("host %s is used by %s and %s", n.MachineID, other, n.ID)
		}
		used[n.MachineID] = n.ID
	}
	for _, h := range set.Hosts {
		if used[h.Addr] == "" {
			t.Errorf("host %s is not used by any of %s", h.Addr, describeNodes(three))
		}
	}
	// At max: a fourth node is refused at the API, nothing is launched.
	if code, _, _ := srv.api.do("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 4}, nil); code != 422 {
		t.Errorf("scaling past the 3 hosts: HTTP %d, want 422", code)
	}
	// Scale in: one node goes, its host is free again.
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 2}, nil, 200)
	two := waitInService(t, srv.api, name, 2, 45*time.Second)
	freed := ""
	for m := range used {
		if !slices.ContainsFunc(two, func(n node) bool { return n.MachineID == m }) {
			freed = m
		}
	}
	state, err := os.ReadFile(filepath.Join(dataDir, "static", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if freed == "" || strings.Contains(string(state), `"`+freed+`": {`) || !strings.Contains(string(state), `"freed"`) {
		t.Errorf("host %q should be free in the state file:\n%s", freed, state)
	}
}
