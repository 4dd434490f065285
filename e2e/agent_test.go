package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// agentConfig is a server whose nodes each run a demo node and, next to it,
// `goscaler agent` pushing a counter "load" (always 0.5) every 300 ms.
func agentConfig(t *testing.T, dir, addr, dataDir, name, agentToken string) string {
	t.Helper()
	cfg := fmt.Sprintf(`server:
  listen: %[1]q
  data_dir: %[2]q
  tick: 500ms
  log_level: debug
  agent_tokens: [%[4]q]
clusters:
  - name: %[3]s
    min: 2
    max: 3
    provider:
      type: process
      # The agent in the background, the demo node in the foreground: both
      # in the node's process group, stopped together.
      command: ["/bin/sh", "-c", "\"$0\" agent --interval 300ms --counter 'load=echo 0.5' & exec \"$0\" demo-node --listen \"$1\" --node-id \"$2\"", "{{.Executable}}", "{{.Address}}", "{{.NodeID}}"]
      env:
        GOSCALER_SERVER: "http://%[1]s"
        GOSCALER_AGENT_TOKEN: %[4]q
      stop_timeout: 5s
    health_check: {type: http, path: /healthz, interval: 500ms, timeout: 400ms, unhealthy_threshold: 3}
    boot_timeout: 30s
    heartbeat: {timeout: 3s, grace_period: 2s}
    counters:
      - {name: load, type: agent, interval: 500ms, max_age: 2s, aggregate: max}
`, addr, dataDir, name, agentToken)
	path := filepath.Join(dir, "goscaler.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "check", "config", path); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d):\n%s%s\n%s", code, out, errOut, cfg)
	}
	return path
}

// nodeDetail is GET /api/v1/clusters/C/nodes/N.
type nodeDetail struct {
	node
	Counters []struct {
		Counter string `json:"counter"`
		Sample  struct {
			Value *float64  `json:"value"`
			Error string    `json:"error"`
			At    time.Time `json:"at"`
		} `json:"sample"`
	} `json:"counters"`
	Agent *struct {
		LastHeartbeat time.Time `json:"last_heartbeat"`
		Counters      map[string]struct {
			Value *float64 `json:"value"`
			Error string   `json:"error"`
		} `json:"counters"`
	} `json:"agent"`
}

// agentPID returns the pid of the agent process of node id (0 if none).
func agentPID(id string) int {
	for _, pid := range procsWithEnv("GOSCALER_NODE", id) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) > 1 && args[1] == "agent" {
			return pid
		}
	}
	return 0
}

// TestAgentHeartbeatLossReplacesNode runs nodes whose agent pushes a counter
// and heartbeats; it kills one node's agent (its service keeps running and
// stays healthy) and checks that the node is failed for its missed
// heartbeats and replaced, and that the counter came from the agents.
func TestAgentHeartbeatLossReplacesNode(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("agent")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	cfg := agentConfig(t, dir, addr, dataDir, name, "agent-"+randHex(16))
	srv := startServer(t, cfg, addr, dataDir, "")

	nodes := waitInService(t, srv.api, name, 2, 45*time.Second)
	// Both agents report, and the counter is read from what they pushed.
	for _, n := range nodes {
		waitFor(t, 20*time.Second, 100*time.Millisecond, "a heartbeat from the agent of "+n.ID, func() (bool, string) {
			var d nodeDetail
			srv.api.must("GET", "/api/v1/clusters/"+name+"/nodes/"+n.ID, nil, &d, 200)
			if d.Agent == nil {
				return false, "no agent report"
			}
			load := d.Agent.Counters["load"]
			return load.Value != nil && *load.Value == 0.5, fmt.Sprintf("%+v", d.Agent)
		})
	}
	waitFor(t, 20*time.Second, 100*time.Millisecond, "the load counter from both agents", func() (bool, string) {
		var c struct {
			Readings map[string]struct {
				Aggregate struct {
					Value     *float64 `json:"value"`
					Error     string   `json:"error"`
					Reporting int      `json:"reporting"`
					Expected  int      `json:"expected"`
				} `json:"aggregate"`
			} `json:"readings"`
		}
		srv.api.must("GET", "/api/v1/clusters/"+name, nil, &c, 200)
		a := c.Readings["load"].Aggregate
		return a.Value != nil && *a.Value == 0.5 && a.Reporting == 2 && a.Expected == 2, fmt.Sprintf("%+v", a)
	})

	victim := nodes[0]
	pid := agentPID(victim.ID)
	if pid == 0 {
		t.Fatalf("no agent process of node %s", victim.ID)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	t.Logf("killed the agent of %s (pid %d); its demo node (pid %d) runs on", victim.ID, pid, victim.pid())

	var failed activity
	waitFor(t, 20*time.Second, 100*time.Millisecond, "a node_failed activity for "+victim.ID, func() (bool, string) {
		acts, err := srv.api.activities("cluster=" + name + "&kind=node_failed")
		if err != nil {
			return false, err.Error()
		}
		for _, a := range acts {
			if a.Node == victim.ID {
				failed = a
				return true, ""
			}
		}
		return false, fmt.Sprint(acts)
	})
	t.Logf("after %s: %s", time.Since(killedAt).Round(time.Millisecond), failed)
	if !strings.Contains(failed.Cause, "missed its heartbeats: its agent's last heartbeat came") || !strings.Contains(failed.Cause, "heartbeat.timeout 3s") {
		t.Errorf("the cause does not name the missed heartbeats: %q", failed.Cause)
	}
	if d := time.Since(killedAt); d < 3*time.Second {
		t.Errorf("failed %s after the agent stopped, before heartbeat.timeout (3s)", d)
	}

	var healed []node
	waitFor(t, 45*time.Second, 200*time.Millisecond, "2 nodes in service, the victim replaced", func() (bool, string) {
		ns, err := srv.api.nodes(name, false)
		if err != nil {
			return false, err.Error()
		}
		healed = inService(ns)
		if len(healed) != 2 || len(ns) != 2 {
			return false, describeNodes(ns)
		}
		for _, n := range healed {
			if n.ID == victim.ID {
				return false, describeNodes(ns)
			}
		}
		return true, ""
	})
	var dead node
	waitFor(t, 30*time.Second, 200*time.Millisecond, "the victim to be terminated", func() (bool, string) {
		srv.api.must("GET", "/api/v1/clusters/"+name+"/nodes/"+victim.ID, nil, &dead, 200)
		return dead.State == "terminated", dead.State + ": " + dead.Reason
	})
	if alive(victim.pid()) {
		t.Errorf("the victim's demo node (pid %d) still runs after its node was terminated", victim.pid())
	}

	// The replacement's agent reports too, and `goscaler node show` shows
	// its counter and heartbeat.
	newNode := healed[0]
	if newNode.ID == nodes[1].ID {
		newNode = healed[1]
	}
	waitFor(t, 20*time.Second, 200*time.Millisecond, "the counter of the replacement "+newNode.ID, func() (bool, string) {
		var d nodeDetail
		srv.api.must("GET", "/api/v1/clusters/"+name+"/nodes/"+newNode.ID, nil, &d, 200)
		for _, c := range d.Counters {
			if c.Counter == "load" && c.Sample.Value != nil && *c.Sample.Value == 0.5 {
				return d.Agent != nil, ""
			}
		}
		return false, fmt.Sprintf("%+v", d.Counters)
	})
	code, out, errOut := runCLI(t, "node", "show", name, newNode.ID, "--server", "http://"+addr)
	if code != 0 || !strings.Contains(out, "Agent:") || !strings.Contains(out, "last heartbeat") ||
		!regexp.MustCompile(`(?m)^load\s+0\.5\s`).MatchString(out) {
		t.Errorf("goscaler node show (exit %d):\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "node", "show", name, newNode.ID, "--server", "http://"+addr, "-o", "json")
	var asJSON nodeDetail
	if code != 0 || json.Unmarshal([]byte(out), &asJSON) != nil || asJSON.Agent == nil {
		t.Errorf("goscaler node show -o json (exit %d): %s", code, out)
	}
}
