package distscript_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/distscript"
	"github.com/goscaler/goscaler/internal/action/onnodes"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
	"github.com/goscaler/goscaler/internal/store"
)

// hostsFleet is an action.Fleet whose in-service nodes are sshd test hosts.
type hostsFleet struct{ nodes []store.Node }

func (f hostsFleet) DeployNodes(context.Context, string, store.Activity, int) (string, error) {
	return "", errors.New("not in this test")
}

func (f hostsFleet) RemoveNodes(context.Context, string, store.Activity, int, string) (string, error) {
	return "", errors.New("not in this test")
}

func (f hostsFleet) Nodes(context.Context, string) ([]store.Node, error) { return f.nodes, nil }

func fleetOf(set *sshdtest.Set) hostsFleet {
	var f hostsFleet
	for i, h := range set.Hosts {
		f.nodes = append(f.nodes, store.Node{ID: fmt.Sprintf("node-%d", i+1), Cluster: "web", State: store.NodeInService,
			Address: h.IP + ":8080", Meta: map[string]string{sshx.MetaHost: h.IP, sshx.MetaPort: strconv.Itoa(h.Port)}})
	}
	return f
}

func newPool(t *testing.T, set *sshdtest.Set) *sshx.Pool {
	t.Helper()
	no := false
	p, err := sshx.NewPool(sshx.Config{User: set.User, IdentityFiles: []string{set.ClientKey}, Agent: &no,
		KnownHosts: set.WriteKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))}, sshx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func build(t *testing.T, p *sshx.Pool, c *distscript.Config) action.Action {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := c.New(action.Env{Cluster: "web", SSH: p, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The script writes a file per node into out; a node whose marker file
// exists fails.
const script = `#!/bin/sh
echo "hello from $GOSCALER_NODE_ID of $GOSCALER_CLUSTER ($1)"
if [ -e "$OUT/fail-$GOSCALER_NODE_ID" ]; then
  echo "marker file says fail" >&2
  exit 1
fi
printf '%s' "$GOSCALER_NODE_ID $GOSCALER_TRIGGER $GOSCALER_COUNTER_LOAD" > "$OUT/$GOSCALER_NODE_ID"
echo "$0" > "$OUT/$GOSCALER_NODE_ID.path"
`

func TestDistributedScriptAllNodes(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 3)
	p := newPool(t, set)
	fleet := fleetOf(set)
	out := t.TempDir()
	scriptFile := filepath.Join(t.TempDir(), "deploy.sh")
	if err := os.WriteFile(scriptFile, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(c *distscript.Config) (string, error) {
		c.Env = map[string]string{"OUT": out}
		c.Args = []string{"{{.Host}}"}
		a := build(t, p, c)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return a.Run(ctx, action.Run{Activity: store.Activity{ID: 7}, Cluster: "web", Trigger: "deploy",
			Vars: map[string]string{"Cluster": "web", "Trigger": "deploy", "Counter_load": "42"}, Fleet: fleet})
	}

	// Every node runs it.
	got, err := run(&distscript.Config{Script: scriptFile})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, got)
	}
	for i, h := range set.Hosts {
		id := fmt.Sprintf("node-%d", i+1)
		b, err := os.ReadFile(filepath.Join(out, id))
		if err != nil || string(b) != id+" deploy 42" {
			t.Errorf("%s wrote %q (%v), want %q", id, b, err, id+" deploy 42")
		}
		if !strings.Contains(got, "hello from "+id+" of web ("+h.IP+")") || !strings.Contains(got, "=== node "+id) {
			t.Errorf("the report has no output of %s:\n%s", id, got)
		}
		// The copy on the node is gone.
		pathFile, _ := os.ReadFile(filepath.Join(out, id+".path"))
		remote := strings.TrimSpace(string(pathFile))
		if !strings.HasPrefix(remote, "/tmp/goscaler-script-7-"+id) {
			t.Errorf("the script ran as %q, not a temporary copy in /tmp", remote)
		} else if _, err := os.Stat(remote); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the copy %s was not removed: %v", remote, err)
		}
	}
	if !strings.HasPrefix(got, "script: 3 of 3 node(s) succeeded") {
		t.Errorf("report: %s", got)
	}

	// node-2 fails: with on_failure stop (the default) the step fails and
	// says which node and why.
	if err := os.WriteFile(filepath.Join(out, "fail-node-2"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = run(&distscript.Config{Script: scriptFile})
	if !errors.Is(err, action.ErrPermanent) || !strings.Contains(err.Error(), "node-2 (exit status 1: marker file says fail)") ||
		!strings.Contains(err.Error(), "failed on 1 of 3 node(s)") {
		t.Errorf("with a failing node: err = %v", err)
	}
	if !strings.Contains(got, "=== node node-2 ("+set.User+"@"+set.Hosts[1].Addr+"): exit code 1") ||
		!strings.Contains(got, "marker file says fail") || !strings.Contains(got, "2 of 3 node(s) succeeded; failed: node-2") {
		t.Errorf("the report does not show node-2's failure:\n%s", got)
	}

	// on_failure continue: the step succeeds while enough nodes do.
	c := &distscript.Config{Script: scriptFile}
	c.OnFailure, c.MinSuccess = onnodes.FailContinue, 2
	if got, err = run(c); err != nil || !strings.Contains(got, "failed: node-2") {
		t.Errorf("continue, min_success 2: err = %v\n%s", err, got)
	}
	c = &distscript.Config{Script: scriptFile}
	c.OnFailure, c.MinSuccess = onnodes.FailContinue, 3
	if _, err = run(c); err == nil || !strings.Contains(err.Error(), "fewer than min_success 3") {
		t.Errorf("continue, min_success 3: err = %v", err)
	}

	// A subset: the chosen IDs, at most max_nodes of them; a node not in
	// service is reported as skipped.
	for _, id := range []string{"node-1", "node-3"} {
		_ = os.Remove(filepath.Join(out, id))
	}
	c = &distscript.Config{Inline: script}
	c.Nodes, c.MaxNodes = []string{"node-3", "node-9", "node-1"}, 1
	got, err = run(c)
	if err != nil {
		t.Fatalf("subset: %v\n%s", err, got)
	}
	if _, err := os.Stat(filepath.Join(out, "node-3")); err != nil {
		t.Errorf("node-3 did not run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "node-1")); err == nil {
		t.Errorf("node-1 ran past max_nodes 1")
	}
	if !strings.Contains(got, "node-9: skipped: not an in-service node") || !strings.HasPrefix(got, "script: 1 of 1") {
		t.Errorf("subset report:\n%s", got)
	}

	// A launch step (the run names its node, not in service yet) runs on
	// that node only.
	for _, id := range []string{"node-1", "node-2", "node-3"} {
		_ = os.Remove(filepath.Join(out, id))
	}
	_ = os.Remove(filepath.Join(out, "fail-node-2"))
	launching := fleet.nodes[1]
	launching.ID, launching.State = "node-new", store.NodeConfiguring
	a := build(t, p, &distscript.Config{Inline: script, Env: map[string]string{"OUT": out}})
	got, err = a.Run(context.Background(), action.Run{Activity: store.Activity{ID: 8}, Cluster: "web", Node: &launching,
		Vars: map[string]string{"Cluster": "web"}, Fleet: fleet})
	if err != nil || !strings.HasPrefix(got, "script: 1 of 1") {
		t.Fatalf("launch step: %v\n%s", err, got)
	}
	if _, err := os.Stat(filepath.Join(out, "node-new")); err != nil {
		t.Errorf("the launching node did not run the script: %v", err)
	}
	for _, id := range []string{"node-1", "node-2", "node-3"} {
		if _, err := os.Stat(filepath.Join(out, id)); err == nil {
			t.Errorf("a launch step ran on the in-service node %s", id)
		}
	}
}

func TestDistributedScriptTimeoutKills(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set)
	marker := fmt.Sprintf("goscaler-distscript-timeout-%d", time.Now().UnixNano())
	c := &distscript.Config{Inline: "sleep 300 # " + marker + "\n", Timeout: plugin.Duration(time.Second)}
	c.Inline = "exec sh -c 'sleep 300; : " + marker + "'\n"
	a := build(t, p, c)
	start := time.Now()
	got, err := a.Run(context.Background(), action.Run{Activity: store.Activity{ID: 8}, Cluster: "web",
		Vars: map[string]string{"Cluster": "web"}, Fleet: fleetOf(set)})
	if err == nil || !strings.Contains(err.Error(), "timed out after") || !strings.Contains(got, "remote command was killed") {
		t.Errorf("err = %v\n%s", err, got)
	}
	if time.Since(start) > 30*time.Second {
		t.Errorf("the run took %s with a 1s timeout", time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if left := sshdtest.WaitGone(ctx, marker); len(left) > 0 {
		t.Errorf("the script still runs after its timeout: pids %v", left)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    distscript.Config
		want []string
	}{
		{"ok", distscript.Config{Inline: "true"}, nil},
		{"neither", distscript.Config{}, []string{"set exactly one of script"}},
		{"both", distscript.Config{Inline: "x", Script: "/x"}, []string{"set exactly one of script"}},
		{"bad", distscript.Config{Inline: "x", Args: []string{"{{"}, Env: map[string]string{"1x": "y"}, RemoteDir: "tmp",
			Select: onnodes.Select{OnFailure: "maybe", MaxNodes: -1, MinSuccess: 2}},
			[]string{"args[0]", `env: "1x"`, "remote_dir", "on_failure", "max_nodes", "min_success"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if tc.c.Timeout.D() != distscript.DefaultTimeout || tc.c.Concurrency != onnodes.DefaultConcurrency || tc.c.OnFailure != onnodes.FailStop {
					t.Errorf("defaults not filled: %+v", tc.c)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %q", err, w)
				}
			}
		})
	}
}
