package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
)

// kindOf returns the activities of a kind in a cluster, oldest first.
func kindOf(t *testing.T, a *apiClient, clusterName, kind string) []activity {
	t.Helper()
	acts, err := a.activities("cluster=" + clusterName + "&kind=" + kind + "&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(acts)-1; i < j; i, j = i+1, j-1 {
		acts[i], acts[j] = acts[j], acts[i]
	}
	return acts
}

// TestLaunchStepFailureReplacesNode runs a cluster of static sshd hosts
// whose on_launch deploy step fails once: the node it failed on is never put
// in service, it is terminated and replaced, the failure is an activity
// with the step's output, and every node in service ran its steps in order,
// with its own variables, before it was.
func TestLaunchStepFailureReplacesNode(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 3)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("launch")
	addr := freeAddr(t)
	failOnce := filepath.Join(dir, "fail-once")
	if err := os.WriteFile(failOnce, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	steps := filepath.Join(dir, "steps")
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name: name, Min: 2, Desired: 2,
		KnownHosts: set.WriteKnownHosts(filepath.Join(dir, "known_hosts")),
		// The health check runs on the node over SSH.
		Health: "      type: command\n      command: 'test -n \"$SSH_CONNECTION\"'\n      interval: 2s\n      timeout: 2s\n",
		Extra: fmt.Sprintf(`    on_launch:
      - type: local_script
        shell: 'echo configure {{.NodeID}} {{.Host}} >> %[1]s'
      - type: local_script
        shell: 'if [ -e %[2]s ]; then rm %[2]s; echo "deploy of app.war broke on {{.NodeID}}"; exit 3; fi; echo deploy {{.NodeID}} >> %[1]s'
    on_terminate:
      - type: local_script
        shell: 'echo bye {{.NodeID}} >> %[1]s'
`, steps, failOnce),
	})
	srv := startServer(t, cfg, addr, dataDir, "")

	nodes := waitInService(t, srv.api, name, 2, 90*time.Second)
	var failedNode string
	waitFor(t, 30*time.Second, 200*time.Millisecond, "a node_failed activity", func() (bool, string) {
		acts := kindOf(t, srv.api, name, "node_failed")
		if len(acts) != 1 {
			return false, fmt.Sprint(acts)
		}
		a := acts[0]
		failedNode = a.Node
		return strings.Contains(a.Output, "deploy of app.war broke on "+a.Node) && strings.Contains(a.Error, "launch step 2 (local_script) failed"),
			fmt.Sprintf("%s output %q error %q", a, a.Output, a.Error)
	})
	for _, n := range nodes {
		if n.ID == failedNode {
			t.Fatalf("node %s is in service although its deploy step failed", n.ID)
		}
	}
	all, err := srv.api.nodes(name, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range all {
		if n.ID == failedNode && n.State != "terminated" && n.State != "failed" {
			t.Errorf("failed node %s is %s", n.ID, n.State)
		}
	}
	waitFor(t, 30*time.Second, 200*time.Millisecond, "failed node terminated", func() (bool, string) {
		all, err := srv.api.nodes(name, true)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range all {
			if n.ID == failedNode {
				return n.State == "terminated", n.State
			}
		}
		return false, "not listed"
	})

	// The launch activities: one failed (its steps: configure done, deploy
	// failed with its output), one succeeded per node in service.
	launches := kindOf(t, srv.api, name, "launch_node")
	ok := map[string]bool{}
	for _, l := range launches {
		var kids []activity
		srv.api.must("GET", fmt.Sprintf("/api/v1/activities?parent=%d", l.ID), nil, &kids, 200)
		switch {
		case l.Node == failedNode:
			if l.Status != "failed" || len(kids) != 2 || kids[1].Status != "succeeded" || kids[0].Status != "failed" ||
				!strings.Contains(kids[0].Output, "deploy of app.war broke on "+failedNode) {
				t.Errorf("launch of the failed node: %s, steps (newest first) %v", l, kids)
			}
		case l.Status == "succeeded":
			ok[l.Node] = true
		}
	}
	for _, n := range nodes {
		if !ok[n.ID] {
			t.Errorf("node %s in service has no succeeded launch_node activity: %v", n.ID, launches)
		}
	}
	b, err := os.ReadFile(steps)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, n := range nodes {
		host := strings.Split(n.Address, ":")[0]
		c, d := strings.Index(log, "configure "+n.ID+" "+host+"\n"), strings.Index(log, "deploy "+n.ID+"\n")
		if c < 0 || d < c {
			t.Errorf("node %s: configure then deploy not both logged in order:\n%s", n.ID, log)
		}
	}
	if !strings.Contains(log, "bye "+failedNode+"\n") {
		t.Errorf("on_terminate did not run for %s:\n%s", failedNode, log)
	}
}

// TestPacedHealing breaks half the nodes of a cluster at once (their command
// health check, run on the node over SSH, starts failing): with
// max_replacing 1, one is replaced at a time, the other stays in service
// (one healing_paced activity) until the first replacement is in service,
// and the cluster ends with all its nodes healthy.
func TestPacedHealing(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 6)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("paced")
	addr := freeAddr(t)
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name: name, Min: 4, Desired: 4,
		KnownHosts: set.WriteKnownHosts(filepath.Join(dir, "known_hosts")),
		Health: fmt.Sprintf("      type: command\n      command: 'test ! -e %s/broken-{{.NodeID}}'\n      interval: 1s\n      timeout: 1s\n"+
			"      unhealthy_threshold: 2\n      max_replacing: 1\n", dir),
		// A slow deploy step, so that the pace shows.
		Extra: "    on_launch:\n      - {type: local_script, shell: 'sleep 2'}\n",
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 4, 90*time.Second)
	broken := map[string]bool{nodes[0].ID: true, nodes[1].ID: true}
	for id := range broken {
		if err := os.WriteFile(filepath.Join(dir, "broken-"+id), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	waitFor(t, 60*time.Second, 200*time.Millisecond, "both broken nodes replaced", func() (bool, string) {
		ns, err := srv.api.nodes(name, true)
		if err != nil {
			return false, err.Error()
		}
		serving, gone := 0, 0
		for _, n := range ns {
			switch {
			case broken[n.ID] && n.State == "terminated":
				gone++
			case !broken[n.ID] && n.State == "in_service":
				serving++
			}
		}
		return gone == 2 && serving == 4, describeNodes(ns)
	})
	failed := kindOf(t, srv.api, name, "node_failed")
	paced := kindOf(t, srv.api, name, "healing_paced")
	if len(failed) != 2 {
		t.Fatalf("node_failed activities: %v", failed)
	}
	if len(paced) != 1 || paced[0].Node != failed[1].Node || !strings.Contains(paced[0].Cause, "max_replacing allows 1") {
		t.Errorf("healing_paced activities: %v (failed: %v)", paced, failed)
	}
	// The second node failed only once the first one's replacement was in
	// service: its launch finished before the second failure.
	launches := kindOf(t, srv.api, name, "launch_node")
	var firstDone time.Time
	for _, l := range launches {
		if !broken[l.Node] && l.Status == "succeeded" && l.ID > failed[0].ID && (firstDone.IsZero() || l.FinishedAt.Before(firstDone)) {
			firstDone = l.FinishedAt
		}
	}
	if firstDone.IsZero() || failed[1].StartedAt.Before(firstDone) {
		t.Errorf("second failure at %s, first replacement in service at %s: healing was not paced\nfailed: %v\nlaunches: %v",
			failed[1].StartedAt, firstDone, failed, launches)
	}
}

// TestNodeExec runs commands on the nodes of a cluster of static sshd hosts
// through the CLI: node exec on one node (its output and exit status
// pass through), cluster exec on every in-service node (output per node,
// recorded as an activity), and node ssh through the system ssh client
// with the connection info the server gives.
func TestNodeExec(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("exec")
	addr := freeAddr(t)
	cfg := writeSSHConfig(t, dir, addr, dataDir, set, sshCluster{
		Name:       name,
		KnownHosts: set.WriteKnownHosts(filepath.Join(dir, "known_hosts")),
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 2, 60*time.Second)
	hosts := nodeHosts(t, nodes, set)
	server := "http://" + addr

	n0 := nodes[0]
	code, out, errOut := runCLI(t, "--server", server, "node", "exec", name, n0.ID, "--", `echo "$SSH_CONNECTION" | cut -d' ' -f4; echo oops >&2; exit 7`)
	if code != 7 || strings.TrimSpace(out) != fmt.Sprint(hosts[n0.ID].Port) || !strings.Contains(errOut, "oops") {
		t.Errorf("node exec: exit %d, stdout %q, stderr %q; want 7, the port %d of its sshd, oops", code, out, errOut, hosts[n0.ID].Port)
	}

	code, out, errOut = runCLI(t, "--server", server, "cluster", "exec", name, "--", `echo port $(echo "$SSH_CONNECTION" | cut -d' ' -f4)`)
	if code != 0 {
		t.Fatalf("cluster exec: exit %d: %s%s", code, out, errOut)
	}
	for _, n := range nodes {
		if !strings.Contains(out, "=== "+n.ID+" (") || !strings.Contains(out, fmt.Sprintf("port %d\n", hosts[n.ID].Port)) {
			t.Errorf("cluster exec output lacks node %s (port %d):\n%s", n.ID, hosts[n.ID].Port, out)
		}
	}
	var rep struct {
		Activity int64 `json:"activity"`
		Results  []struct {
			Node     string `json:"node"`
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
		} `json:"results"`
	}
	srv.api.must("POST", "/api/v1/clusters/"+name+"/exec", map[string]any{"command": "exit 3", "nodes": []string{nodes[1].ID}}, &rep, 200)
	if len(rep.Results) != 1 || rep.Results[0].Node != nodes[1].ID || rep.Results[0].ExitCode != 3 {
		t.Errorf("exec API: %+v", rep)
	}
	var a activity
	srv.api.must("GET", fmt.Sprintf("/api/v1/activities/%d", rep.Activity), nil, &a, 200)
	if a.Kind != "exec" || a.Status != "failed" || !strings.Contains(a.Output, nodes[1].ID+": exit 3") {
		t.Errorf("exec activity: %s output %q", a, a.Output)
	}
	if code, _, _ := srv.api.do("POST", "/api/v1/clusters/"+name+"/exec", map[string]any{"command": "true", "nodes": []string{"nope"}}, nil); code != 404 {
		t.Errorf("exec on an unknown node: HTTP %d, want 404", code)
	}

	// node ssh: the system ssh client with the cluster's key and known_hosts.
	code, out, errOut = runCLI(t, "--server", server, "node", "ssh", name, n0.ID, "--", "echo", "via-ssh", "$SSH_CONNECTION")
	if code != 0 || !strings.Contains(out, "via-ssh") || !strings.HasSuffix(strings.TrimSpace(out), fmt.Sprint(hosts[n0.ID].Port)) {
		t.Errorf("node ssh: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// node scp: to the node and back.
	src := filepath.Join(dir, "payload")
	if err := os.WriteFile(src, []byte("hello node\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(dir, "on-node")
	if code, out, errOut := runCLI(t, "--server", server, "node", "scp", name, src, n0.ID+":"+remote); code != 0 {
		t.Fatalf("node scp to: exit %d: %s%s", code, out, errOut)
	}
	back := filepath.Join(dir, "back")
	if code, out, errOut := runCLI(t, "--server", server, "node", "scp", name, n0.ID+":"+remote, back); code != 0 {
		t.Fatalf("node scp from: exit %d: %s%s", code, out, errOut)
	}
	if b, err := os.ReadFile(back); err != nil || string(b) != "hello node\n" {
		t.Errorf("scp round trip: %q, %v", b, err)
	}
}
