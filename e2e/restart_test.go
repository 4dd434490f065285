package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRestartAdoptsNodes kills the server with SIGKILL in the middle of a
// scale-out and in the middle of a local script, restarts it on the same data
// directory, and checks that the nodes are adopted (no orphan, no duplicate,
// no process started twice) and that the script never runs twice.
func TestRestartAdoptsNodes(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("restart")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	marks := filepath.Join(dir, "marks.txt")
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{
		Name: name, Min: 1, Max: 6, Desired: 1, BootTimeout: "30s",
		Counters: `      - name: zero
        type: exec
        command: ["echo", "0"]
        interval: 2s
`,
		Triggers: fmt.Sprintf(`      - name: mark
        counter: zero
        above: 1000
        for: 1m
        actions:
          - type: local_script
            shell: 'sleep 1; echo "fired {{.Activity}}" >> %s'
`, marks),
	})

	srv := startServer(t, cfg, addr, dataDir, "")
	first := waitInService(t, srv.api, name, 1, 45*time.Second)
	t.Logf("first node in service: %s", describeNodes(first))

	// Scale out, and kill the server as soon as a new node is past pending.
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 5}, nil, 200)
	var atKill []node
	newNodes := func() (created, pastPending int) {
		ns, err := srv.api.nodes(name, true)
		if err != nil {
			return 0, 0
		}
		atKill = ns
		for _, n := range ns {
			if n.ID == first[0].ID {
				continue
			}
			created++
			if n.State != "pending" {
				pastPending++
			}
		}
		return created, pastPending
	}
	waitFor(t, 5*time.Second, 10*time.Millisecond, "the new nodes to be created", func() (bool, string) {
		c, _ := newNodes()
		return c > 0, describeNodes(atKill)
	})
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, past := newNodes(); past > 0 {
			break
		}
	}
	srv.kill9()
	t.Logf("killed the server (kill -9) with nodes: %s", describeNodes(atKill))
	restartAt := time.Now()
	t.Logf("live node processes after the kill: %v", nodeProcs(name, dataDir))

	srv = startServer(t, cfg, addr, dataDir, "")
	checkAdopted(t, srv, name, 5)
	t.Logf("5 nodes in service %s after the restart", time.Since(restartAt).Round(time.Millisecond))

	// A local script cut off by a crash is never run twice: kill the server
	// right after the firing (its step most likely still pending), then while
	// the script runs.
	for _, when := range []string{"right after the fire", "while the script runs"} {
		var parent activity
		srv.api.must("POST", "/api/v1/clusters/"+name+"/triggers/mark/fire", nil, &parent, 202)
		if parent.ID == 0 || parent.Kind != "trigger" {
			t.Fatalf("POST …/triggers/mark/fire answered %s, want the trigger activity", parent)
		}
		step := func() (activity, bool) {
			acts, err := srv.api.activities(fmt.Sprintf("parent=%d", parent.ID))
			if err != nil || len(acts) != 1 {
				return activity{}, false
			}
			return acts[0], true
		}
		if when == "while the script runs" {
			waitFor(t, 10*time.Second, 10*time.Millisecond, "the local_script step to run", func() (bool, string) {
				a, ok := step()
				return ok && a.Status == "running", a.String()
			})
			// The step is marked running just before the script starts.
			time.Sleep(200 * time.Millisecond)
		}
		before, _ := step()
		srv.kill9()
		t.Logf("killed the server %s; the step was %s", when, before)

		srv = startServer(t, cfg, addr, dataDir, "")
		var final activity
		waitFor(t, 30*time.Second, 100*time.Millisecond, "the local_script step to finish after the restart", func() (bool, string) {
			a, ok := step()
			final = a
			return ok && (a.Status == "succeeded" || a.Status == "failed"), a.String()
		})
		if final.Kind != "local_script" {
			t.Fatalf("the step of the firing is %s, want local_script", final)
		}
		// A script that outlived the killed server may still be sleeping.
		waitFor(t, 10*time.Second, 50*time.Millisecond, "the script to end", func() (bool, string) {
			left := procsWithEnv("GOSCALER_ACTIVITY", fmt.Sprint(final.ID))
			return len(left) == 0, fmt.Sprintf("pids %v", left)
		})
		want := fmt.Sprintf("fired %d", final.ID)
		count := countLines(t, marks, func(l string) bool { return strings.TrimSpace(l) == want })
		t.Logf("killed %s: the step ended %s; the script ran %d time(s)", when, final, count)
		switch {
		case count > 1:
			t.Errorf("killed %s: the local script ran %d times, want at most once (step %s)", when, count, final)
		case final.Status == "succeeded" && count != 1:
			t.Errorf("killed %s: the step succeeded but the script ran %d times", when, count)
		case final.Status == "failed" && !strings.Contains(final.Error, "restart"):
			t.Errorf("killed %s: the step failed without saying it was cut off by a restart: %s", when, final)
		}
	}
	checkAdopted(t, srv, name, 5)
}

// checkAdopted waits until the cluster has want nodes in service after a
// restart, and checks them against the node processes: exactly one live
// process per node, each the node's recorded pid, none started twice, and no
// node lost or replaced on the way.
func checkAdopted(t *testing.T, srv *server, name string, want int) {
	t.Helper()
	nodes := waitInService(t, srv.api, name, want, 60*time.Second)
	var procs []nodeProc
	waitFor(t, 10*time.Second, 100*time.Millisecond, fmt.Sprintf("exactly %d live node processes", want), func() (bool, string) {
		procs = nodeProcs(name, srv.dataDir)
		return len(procs) == want, fmt.Sprintf("%d processes: %v", len(procs), procs)
	})
	perNode := map[string][]int{}
	byPID := map[int]string{}
	for _, p := range procs {
		perNode[p.Node] = append(perNode[p.Node], p.PID)
		byPID[p.PID] = p.Node
	}
	for id, pids := range perNode {
		if len(pids) != 1 {
			t.Errorf("node %s has %d live processes %v, want 1", id, len(pids), pids)
		}
	}
	for _, n := range nodes {
		if got, ok := byPID[n.pid()]; !ok || got != n.ID {
			t.Errorf("in-service node %s records pid %q, which is not its live process (processes: %v)", n.ID, n.Meta["pid"], procs)
		}
		logPath := filepath.Join(srv.dataDir, "nodes", name, n.ID+".log")
		starts := countLines(t, logPath, func(l string) bool { return strings.Contains(l, "starting node "+n.ID+" ") })
		if starts != 1 {
			t.Errorf("node %s: its process was started %d times (%s), want once", n.ID, starts, logPath)
		}
	}
	all, err := srv.api.nodes(name, true)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range all {
		if slices.Contains(ids, n.ID) {
			t.Errorf("node ID %s appears twice in the node list", n.ID)
		}
		ids = append(ids, n.ID)
		if n.State != "in_service" {
			t.Errorf("node %s is %s (%s): nothing should fail or be replaced across a restart", n.ID, n.State, n.Reason)
		}
	}
	if orphans, err := srv.api.activities("cluster=" + name + "&kind=remove_orphan"); err == nil && len(orphans) > 0 {
		t.Errorf("the restart found orphan machines: %v", orphans)
	}
}
