package osconfig_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/osconfig"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
	"github.com/goscaler/goscaler/internal/store"
)

type hostsFleet struct{ nodes []store.Node }

func (f hostsFleet) DeployNodes(context.Context, string, store.Activity, int) (string, error) {
	return "", errors.New("not in this test")
}

func (f hostsFleet) RemoveNodes(context.Context, string, store.Activity, int, string) (string, error) {
	return "", errors.New("not in this test")
}

func (f hostsFleet) Nodes(context.Context, string) ([]store.Node, error) { return f.nodes, nil }

// TestPuppetApply applies a manifest with the real puppet on sshd test
// hosts (they run on this machine): each node writes a file with its facts.
func TestPuppetApply(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("puppet"); err != nil {
		t.Fatalf("puppet is not installed (Debian package puppet): %v", err)
	}
	set := sshdtest.Start(t, 2)
	no := false
	pool, err := sshx.NewPool(sshx.Config{User: set.User, IdentityFiles: []string{set.ClientKey}, Agent: &no,
		KnownHosts: set.WriteKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))}, sshx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	var fleet hostsFleet
	for i, h := range set.Hosts {
		fleet.nodes = append(fleet.nodes, store.Node{ID: fmt.Sprintf("node-%d", i+1), State: store.NodeInService,
			Address: h.IP + ":8080", Meta: map[string]string{sshx.MetaHost: h.IP, sshx.MetaPort: strconv.Itoa(h.Port)}})
	}
	out := t.TempDir()
	manifest := filepath.Join(t.TempDir(), "site.pp")
	src := fmt.Sprintf(`file { "%s/${facts['goscaler_node']}":
  content => "${facts['goscaler_cluster']} ${facts['goscaler_trigger']} ${facts['goscaler_counter_load']} ${facts['role']}\n",
}
if $facts['goscaler_node'] == 'node-2' and $facts['fail_node2'] == 'yes' {
  exec { 'fails': command => '/bin/false' }
}
`, out)
	if err := os.WriteFile(manifest, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	apply := func(failNode2 bool) (string, error) {
		c := &osconfig.Config{Manifest: manifest, Facts: map[string]string{"role": "web-{{.NodeID}}", "fail_node2": "no"}}
		if failNode2 {
			c.Facts["fail_node2"] = "yes"
		}
		// The hosts share this machine's puppet state: one at a time.
		c.Concurrency = 1
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		a, err := c.New(action.Env{Cluster: "web", SSH: pool})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		return a.Run(ctx, action.Run{Activity: store.Activity{ID: 5}, Cluster: "web", Trigger: "configure",
			Vars: map[string]string{"Cluster": "web", "Trigger": "configure", "Counter_load": "3"}, Fleet: fleet})
	}

	got, err := apply(false)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, got)
	}
	for i := range set.Hosts {
		id := fmt.Sprintf("node-%d", i+1)
		b, err := os.ReadFile(filepath.Join(out, id))
		if want := "web configure 3 web-" + id + "\n"; err != nil || string(b) != want {
			t.Errorf("%s: file %q (%v), want %q", id, b, err, want)
		}
	}
	if !strings.HasPrefix(got, "puppet apply: 2 of 2 node(s) succeeded") || !strings.Contains(got, "exit code 2") ||
		!strings.Contains(got, "1 changed, 0 failed") {
		t.Errorf("report:\n%s", got)
	}
	// Applied again: nothing to change (exit code 0).
	if got, err = apply(false); err != nil || !strings.Contains(got, "0 changed, 0 failed") || !strings.Contains(got, "exit code 0") {
		t.Errorf("second apply: %v\n%s", err, got)
	}
	// A failing resource on node-2: exit code 4 or 6, the step fails and
	// names the node.
	got, err = apply(true)
	if err == nil || !strings.Contains(err.Error(), "node-2 (puppet apply exit code") || !strings.Contains(err.Error(), "some resources failed") {
		t.Errorf("with a failing resource: err = %v\n%s", err, got)
	}
	if !strings.Contains(got, "1 failed") {
		t.Errorf("the report does not count the failed resource:\n%s", got)
	}
	// The uploaded manifests are gone.
	left, _ := filepath.Glob("/tmp/goscaler-manifest-5-*")
	if len(left) > 0 {
		t.Errorf("manifests left on the nodes: %v", left)
	}
}

func TestParseSummary(t *testing.T) {
	t.Parallel()
	out := "Notice: x\nChanges:\n            Total: 1\nResources:\n          Changed: 1\n           Failed: 2\n      Out of sync: 3\n            Total: 8\nTime:\n            Total: 0.03\n"
	s := osconfig.ParseSummary(out)
	if !s.Found || s.Total != 8 || s.Changed != 1 || s.Failed != 2 || s.OutOfSync != 3 {
		t.Errorf("%+v", s)
	}
	if osconfig.ParseSummary("Error: could not compile").Found {
		t.Error("a summary found in output without one")
	}
}

func TestOSConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    osconfig.Config
		want []string
	}{
		{"ok", osconfig.Config{RemoteManifest: "/etc/puppet/site.pp"}, nil},
		{"neither", osconfig.Config{}, []string{"set exactly one of manifest"}},
		{"bad", osconfig.Config{Tool: "chef", RemoteManifest: "site.pp", Facts: map[string]string{"Bad-Name": "{{"}},
			[]string{"tool:", "remote_manifest:", `facts: "Bad-Name"`, "facts Bad-Name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil || tc.c.Tool != osconfig.ToolPuppet || tc.c.Puppet != "puppet" {
					t.Fatalf("err %v, config %+v", err, tc.c)
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
