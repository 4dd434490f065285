package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// traceFile writes two days of a daily curve, one value a minute, as
// timestamp,requests lines (requests per minute), and returns its path.
func traceFile(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,requests\n")
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	for i := range 2 * 24 * 60 {
		at := start.Add(time.Duration(i) * time.Minute)
		h := float64(at.Hour()) + float64(at.Minute())/60
		v := 30000 - 20000*math.Cos(2*math.Pi*h/24) + float64(i%7)*1500
		fmt.Fprintf(&b, "%s,%.0f\n", at.Format(time.RFC3339), v)
	}
	p := filepath.Join(t.TempDir(), "trace.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const recommendedConfig = "../sim/testdata/recommended.yaml"

func run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSimulateCommand(t *testing.T) {
	t.Parallel()
	trace := traceFile(t)
	dir := t.TempDir()
	csvPath, htmlPath := filepath.Join(dir, "sim.csv"), filepath.Join(dir, "sim.html")
	code, out, errOut := run("simulate", "--config", recommendedConfig, "--trace", trace, "--counts", "--boot-time", "3m",
		"--noise", "0.05", "--compare", "--out-csv", csvPath, "--out-html", htmlPath)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{"trace: 2880 steps of 1m0s (2d)", "boot time 3m0s, noise 5%", "policies of web",
		"Kubernetes HPA (target 100)", "AWS target tracking at the same node-hours", "oracle (lower bound)"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	for _, p := range []string{csvPath, htmlPath} {
		if fi, err := os.Stat(p); err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v", p, err)
		}
	}

	code, out, errOut = run("simulate", "-c", recommendedConfig, "--trace", trace, "--counts", "--peak-nodes", "10", "--compare",
		"--match-node-hours=false", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep struct {
		Cluster string  `json:"cluster"`
		PeakRPS float64 `json:"peak_rps"`
		Results []struct {
			Name      string  `json:"name"`
			NodeHours float64 `json:"node_hours"`
		} `json:"results"`
		Oracle struct {
			NodeHours float64 `json:"node_hours"`
		} `json:"oracle"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.Cluster != "web" || rep.PeakRPS != 1000 || len(rep.Results) != 3 || rep.Oracle.NodeHours <= 0 || rep.Results[0].NodeHours < rep.Oracle.NodeHours {
		t.Errorf("JSON report %+v", rep)
	}
}

func TestCheckPolicyCommand(t *testing.T) {
	t.Parallel()
	trace := traceFile(t)
	common := []string{"check", "policy", "--config", recommendedConfig, "--trace", trace, "--counts"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"within the limits", []string{"--max-underprovisioned-minutes", "1000", "--max-node-hours", "1000"}, 0, "OK"},
		{"too many under-provisioned minutes", []string{"--max-underprovisioned-minutes", "0"}, 1, "policy check failed: under-provisioned"},
		{"too many node-hours", []string{"--max-node-hours", "1"}, 1, "node-hours"},
		{"no limit", nil, 2, "give --max-underprovisioned-minutes, --max-node-hours or both"},
		{"negative limit", []string{"--max-node-hours", "-1"}, 2, "cannot be negative"},
		{"bad rps per node", []string{"--max-node-hours", "1", "--rps-per-node", "0"}, 2, "--rps-per-node is 0"},
		{"scale and peak", []string{"--max-node-hours", "1", "--scale", "2", "--peak-nodes", "3"}, 2, "not both"},
		{"unknown cluster", []string{"--max-node-hours", "1", "--cluster", "api"}, 2, `has no cluster "api"`},
		{"unknown counter", []string{"--max-node-hours", "1", "--counter", "cpu"}, 2, `no counter "cpu"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := run(append(append([]string{}, common...), tt.args...)...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", code, tt.code, out, errOut, tt.want)
			}
		})
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("1\n-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"check", "policy", "--config", recommendedConfig, "--max-node-hours", "1"},
		{"check", "policy", "--config", recommendedConfig, "--trace", bad, "--max-node-hours", "1"},
		{"check", "policy", "--config", "nope.yaml", "--trace", trace, "--max-node-hours", "1"},
		{"simulate", "--config", recommendedConfig, "--trace", filepath.Join(t.TempDir(), "missing.csv")},
	} {
		if code, _, errOut := run(args...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, %q; want 2 with a message", args, code, errOut)
		}
	}
}
