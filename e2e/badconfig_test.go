package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// validConfig is a small valid configuration; the cases below break it.
const validConfig = `server:
  listen: 127.0.0.1:0
  data_dir: @DATA@
clusters:
  - name: web
    min: 1
    max: 3
    desired: 1
    provider:
      type: process
      command: ["{{.Executable}}", "demo-node", "--listen", "{{.Address}}"]
    counters:
      - name: load
        type: exec
        command: ["echo", "1"]
        interval: 5s
    triggers:
      - name: grow
        counter: load
        above: 10
        for: 30s
        cooldown: 1m
        actions:
          - type: deploy_node
            count: 1
`

// problem is one error check config must report: on the line holding needle
// (or one of alsoAt), with every word of fix in the message.
type problem struct {
	needle string
	alsoAt []string
	fix    []string
}

// lineOf returns the 1-based number of the first line of src holding s.
func lineOf(t *testing.T, src, s string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("test bug: %q is not in the config", s)
	return 0
}

// TestBadConfig checks that `goscaler check config` and `goscaler server`
// reject broken configurations with FILE:LINE: messages that say how to fix
// them, every problem at once.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		old, new []string // replacements applied to validConfig, in order
		problems []problem
	}{
		{
			name: "unknown key",
			old:  []string{"    min: 1\n"}, new: []string{"    minn: 1\n"},
			problems: []problem{{needle: "minn: 1", fix: []string{`"minn"`, "valid keys", "min"}}},
		},
		{
			name: "wrong type",
			old:  []string{"max: 3"}, new: []string{"max: many"},
			problems: []problem{{needle: "max: many", fix: []string{"many", "whole number"}}},
		},
		{
			name: "bad duration",
			old:  []string{"for: 30s"}, new: []string{"for: 30 seconds"},
			problems: []problem{{needle: "for: 30 seconds", fix: []string{"30 seconds", "duration", "30s"}}},
		},
		{
			name: "min greater than max",
			old:  []string{"min: 1", "max: 3", "desired: 1"}, new: []string{"min: 5", "max: 2", "desired: 2"},
			problems: []problem{{needle: "max: 2", alsoAt: []string{"min: 5"}, fix: []string{"min (5)", "max (2)", "raise max"}}},
		},
		{
			name: "trigger on an unknown counter",
			old:  []string{"counter: load"}, new: []string{"counter: lod"},
			problems: []problem{{needle: "counter: lod", fix: []string{`"lod"`, "counters:", "load"}}},
		},
		{
			name: "unknown provider type",
			old:  []string{"type: process"}, new: []string{"type: cloud9"},
			problems: []problem{{needle: "type: cloud9", fix: []string{`"cloud9"`, "process"}}},
		},
		{
			name: "several problems",
			old:  []string{"    min: 1\n", "max: 3", "for: 30s", "counter: load", "type: deploy_node"},
			new:  []string{"    minn: 1\n", "max: many", "for: 30 seconds", "counter: lod", "type: deploy_nodes"},
			problems: []problem{
				{needle: "minn: 1", fix: []string{`"minn"`}},
				{needle: "max: many", fix: []string{"many"}},
				{needle: "for: 30 seconds", fix: []string{"30s"}},
				{needle: "counter: lod", fix: []string{`"lod"`}},
				{needle: "type: deploy_nodes", fix: []string{`"deploy_nodes"`, "deploy_node"}},
			},
		},
	}
	dir := t.TempDir()
	valid := strings.ReplaceAll(validConfig, "@DATA@", filepath.Join(dir, "data"))

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "valid.yaml")
		if err := os.WriteFile(path, []byte(valid), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCLI(t, "check", "config", path)
		if code != 0 || !strings.Contains(out, "OK") {
			t.Errorf("check config of a valid file: exit %d, stdout %q, stderr %q; want exit 0 and OK", code, out, errOut)
		}
	})

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := valid
			for j := range tc.old {
				if !strings.Contains(src, tc.old[j]) {
					t.Fatalf("test bug: %q not in the config", tc.old[j])
				}
				src = strings.Replace(src, tc.old[j], tc.new[j], 1)
			}
			path := filepath.Join(dir, fmt.Sprintf("bad-%d.yaml", i))
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}

			code, out, errOut := runCLI(t, "check", "config", path)
			if code != 2 {
				t.Errorf("check config: exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			checkProblems(t, "check config", path, src, errOut, tc.problems)

			// The server refuses it the same way, before doing anything.
			cmdOut := runServerBriefly(t, path)
			checkProblems(t, "server --config", path, src, cmdOut, tc.problems)
		})
	}
}

// checkProblems checks that stderr reports each problem as PATH:LINE: on
// its own line, with the words of its fix.
func checkProblems(t *testing.T, what, path, src, stderr string, problems []problem) {
	t.Helper()
	lineRE := regexp.MustCompile(`^(?:error: )?` + regexp.QuoteMeta(path) + `:(\d+): (.*)$`)
	byLine := map[int][]string{}
	for _, l := range strings.Split(stderr, "\n") {
		if m := lineRE.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			byLine[n] = append(byLine[n], m[2])
		}
	}
	for _, p := range problems {
		lines := []int{lineOf(t, src, p.needle)}
		for _, a := range p.alsoAt {
			lines = append(lines, lineOf(t, src, a))
		}
		found := false
		for _, ln := range lines {
			for _, msg := range byLine[ln] {
				ok := true
				for _, w := range p.fix {
					ok = ok && strings.Contains(msg, w)
				}
				found = found || ok
			}
		}
		if !found {
			t.Errorf("%s: no %s:%d: message with %q for `%s`; stderr:\n%s", what, path, lines[0], p.fix, p.needle, stderr)
		}
	}
}

// runServerBriefly runs `goscaler server --config path`, which must exit
// non-zero at once, and returns its stderr.
func runServerBriefly(t *testing.T, path string) string {
	t.Helper()
	logPath := path + ".server.log"
	p := start(t, "server", filepath.Dir(path), logPath, "server", "--config", path)
	if !p.wait(20 * time.Second) {
		t.Fatalf("server --config %s (a broken config) still runs after 20 s", path)
	}
	if p.err == nil {
		t.Errorf("server --config %s (a broken config) exited 0, want an error", path)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
