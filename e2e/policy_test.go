package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPolicyScalesByItself runs the server with a target-tracking policy on a
// cluster counter (a backlog read from a file): the cluster scales out when
// the backlog grows and back in when it shrinks, each change recorded as a
// scale_out or scale_in activity with its cause.
func TestPolicyScalesByItself(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("policy")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	backlog := filepath.Join(dir, "backlog")
	write := func(v int) {
		if err := os.WriteFile(backlog, []byte(fmt.Sprintln(v)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(5)
	cfg := filepath.Join(dir, "goscaler.yaml")
	src := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  tick: 500ms
clusters:
  - name: %s
    min: 1
    max: 3
    provider:
      type: process
      command: ["{{.Executable}}", "demo-node", "--listen", "{{.Address}}", "--node-id", "{{.NodeID}}"]
      stop_timeout: 5s
    health_check: {type: http, path: /healthz, interval: 1s, timeout: 500ms}
    counters:
      - {name: backlog, type: exec, command: ["cat", %q], scope: cluster, interval: 500ms}
    scale_in_cooldown: 2s
    scale_in_stabilization: 2s
    policies:
      - {name: backlog-target, type: target_tracking, counter: backlog, target: 10}
`, addr, dataDir, name, backlog)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "check", "config", cfg); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d):\n%s%s", code, out, errOut)
	}
	srv := startServer(t, cfg, addr, dataDir, "")
	waitInService(t, srv.api, name, 1, 45*time.Second)

	write(25) // 3 nodes of 10
	waitInService(t, srv.api, name, 3, 45*time.Second)
	outs, err := srv.api.activities("cluster=" + name + "&kind=scale_out")
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || !strings.HasPrefix(outs[0].Cause, "policy backlog-target: backlog 25 ") ||
		!strings.HasSuffix(outs[0].Cause, "> target 10 (±10%) → desired 1 → 3") {
		t.Fatalf("scale_out activities: %v", outs)
	}

	write(4) // 1 node
	waitInService(t, srv.api, name, 1, 45*time.Second)
	ins, err := srv.api.activities("cluster=" + name + "&kind=scale_in")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || !strings.HasSuffix(ins[0].Cause, "< target 10 (±10%) → desired 3 → 1") {
		t.Fatalf("scale_in activities: %v", ins)
	}
}

// TestSimulateAndCheckPolicy runs `goscaler simulate` and `goscaler check
// policy` as a user would, on a small trace.
func TestSimulateAndCheckPolicy(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	cfg := filepath.Join(dir, "goscaler.yaml")
	if err := os.WriteFile(cfg, []byte(`clusters:
  - name: web
    min: 1
    max: 10
    provider: {type: process, command: ["sleep", "1000"]}
    counters:
      - {name: rps, type: http, url: "http://{{.Address}}/stats", path: rps}
    policies:
      - {name: rps-target, type: target_tracking, counter: rps, target: 80}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := range 600 { // ten hours, one value a minute: a slow wave
		fmt.Fprintf(&b, "%d\n", 200+int(150*float64((i/30)%4)))
	}
	trace := filepath.Join(dir, "rps.txt")
	if err := os.WriteFile(trace, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	html := filepath.Join(dir, "sim.html")
	code, out, errOut := runCLI(t, "simulate", "--config", cfg, "--trace", trace, "--compare", "--out-html", html)
	if code != 0 || !strings.Contains(out, "policies of web") || !strings.Contains(out, "Kubernetes HPA (target 80)") {
		t.Fatalf("simulate: exit %d\n%s%s", code, out, errOut)
	}
	if page, err := os.ReadFile(html); err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("HTML page: %v", err)
	}
	code, out, errOut = runCLI(t, "check", "policy", "--config", cfg, "--trace", trace, "--max-node-hours", "1000")
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("check policy within limits: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "check", "policy", "--config", cfg, "--trace", trace, "--max-node-hours", "1")
	if code != 1 || !strings.Contains(errOut, "node-hours") {
		t.Fatalf("check policy over the limit: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "check", "policy", "--config", cfg, "--trace", filepath.Join(dir, "none.csv"), "--max-node-hours", "1")
	if code != 2 || !strings.Contains(errOut, "none.csv") {
		t.Fatalf("check policy of a missing trace: exit %d, %s", code, errOut)
	}
}
