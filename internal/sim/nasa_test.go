package sim

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/policy"
)

// nasaPath returns the NASA 1995 per-minute trace, which lives beside the
// repository: ../shared/traces from its root (GOSCALER_TRACES names another
// traces directory, for a checkout elsewhere). CI has it there; elsewhere a
// missing trace skips the test.
func nasaPath(t testing.TB) string {
	t.Helper()
	const file = "nasa-http-1995/nasa_requests_per_minute.csv"
	if dir := os.Getenv("GOSCALER_TRACES"); dir != "" {
		return filepath.Join(dir, file)
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	p := filepath.Join(dir, "..", "shared", "traces", file)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the NASA 1995 trace is missing: CI must have shared/traces/nasa-http-1995/nasa_requests_per_minute.csv beside the clone, at %s (%v)", p, err)
		}
		t.Skipf("the NASA 1995 trace is not beside the repository (%s): %v", p, err)
	}
	return p
}

// nasa reads the trace scaled as in docs/policies.md: its peak minute needs
// 20 nodes of 100 rps.
func nasa(t testing.TB) *Trace {
	t.Helper()
	tr, err := ReadFile(nasaPath(t), ReadOptions{Counts: true})
	if err != nil {
		t.Fatal(err)
	}
	tr.Scale(20 * model.RPSPerNode / tr.Peak())
	return tr
}

// TestNASABenchmark runs the benchmark of docs/policies.md: the recommended
// policies, the HPA and AWS baselines (at the same target and at the same
// node-hours) and the oracle on the NASA trace, with a 2-minute boot time.
func TestNASABenchmark(t *testing.T) {
	t.Parallel()
	tr := nasa(t)
	if len(tr.Points) != 84334 || tr.Gaps != 1 || tr.Peak() != 2000 {
		t.Fatalf("trace: %d points, %d gaps, peak %g", len(tr.Points), tr.Gaps, tr.Peak())
	}
	rep, err := Simulate(Setup{Cluster: recommended(t), Trace: tr, Model: model, Compare: true, Predictive: true, MatchNodeHours: true})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	own := rep.Policies()
	for _, r := range rep.Results[1:] {
		if r.UnderMinutes <= own.UnderMinutes {
			t.Errorf("%s: %.0f under-provisioned minutes, not more than the policies' %.0f", r.Name, r.UnderMinutes, own.UnderMinutes)
		}
		if strings.Contains(r.Name, "same node-hours") && r.NodeHours > own.NodeHours {
			t.Errorf("%s: %.1f node-hours, more than the policies' %.1f", r.Name, r.NodeHours, own.NodeHours)
		}
	}
	// docs/policies.md reports 1.126; the goal is 1.15.
	if ratio := own.NodeHours / rep.Oracle.NodeHours; ratio > 1.15 {
		t.Errorf("the policies use %.3f × the oracle's node-hours", ratio)
	}
}

// TestDocsShowRecommended checks that docs/policies.md shows the configuration
// the benchmark runs.
func TestDocsShowRecommended(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "policies.md"))
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := os.ReadFile("testdata/recommended.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The policies part, from scale_in_stabilization on.
	part := string(yaml[bytes.Index(yaml, []byte("    scale_in_stabilization")):])
	if !strings.Contains(string(doc), part) {
		t.Errorf("docs/policies.md does not show internal/sim/testdata/recommended.yaml's policies:\n%s", part)
	}
}

// BenchmarkSimulateMonth replays a month of per-minute data (August 1995 of
// the NASA trace, 44,640 steps) through the recommended policies.
func BenchmarkSimulateMonth(b *testing.B) {
	tr := nasa(b)
	for i, p := range tr.Points {
		if p.Jump {
			tr.Points = tr.Points[i:]
			break
		}
	}
	tr.Points = tr.Points[:31*24*60]
	cl := recommended(b)
	feed, err := FeedOf(cl, "")
	if err != nil {
		b.Fatal(err)
	}
	s := Strategy{Name: "recommended", Min: cl.Min, Max: cl.Max, New: func() *policy.Scaler {
		sc, _ := policy.Build(cl, policy.Resume{})
		return sc
	}}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := Run(tr, s, model, feed, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(tr.Points)*b.N)/time.Since(start).Seconds(), "steps/s")
}
