package sim

import (
	"bytes"
	"encoding/csv"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	_ "github.com/goscaler/goscaler/internal/builtins"
	"github.com/goscaler/goscaler/internal/config"
)

// daily is three days of a noisy daily curve (2 to 9 nodes' worth).
func daily() *Trace {
	rng := rand.New(rand.NewPCG(3, 4))
	t := &Trace{Step: time.Minute}
	for i := range 3 * 24 * 60 {
		at := start.Add(time.Duration(i) * time.Minute)
		h := float64(at.Hour()) + float64(at.Minute())/60
		v := 550 - 350*math.Cos(2*math.Pi*h/24)
		v *= 1 + 0.15*rng.NormFloat64()
		t.Points = append(t.Points, Point{At: at, Value: max(v, 0)})
	}
	return t
}

func recommended(t testing.TB) *config.Cluster {
	t.Helper()
	cfg, err := config.Load("testdata/recommended.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Clusters[0]
}

func TestSimulateCompare(t *testing.T) {
	t.Parallel()
	cl := recommended(t)
	rep, err := Simulate(Setup{Cluster: cl, Trace: daily(), Model: model, Compare: true, Predictive: true, MatchNodeHours: true,
		Options: Options{KeepSteps: true}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rep.Results {
		names = append(names, r.Name)
	}
	want := []string{"policies of web", "Kubernetes HPA (target 100)", "AWS target tracking (target 100)",
		"Kubernetes HPA at the same node-hours (target ", "AWS target tracking at the same node-hours (target "}
	if len(names) != len(want) {
		t.Fatalf("results %q", names)
	}
	for i, w := range want {
		if !strings.HasPrefix(names[i], w) {
			t.Errorf("result %d = %q, want %q…", i, names[i], w)
		}
	}
	own := rep.Policies()
	for _, r := range rep.Results[3:] {
		if r.NodeHours > own.NodeHours {
			t.Errorf("%s uses %.1f node-hours, more than the policies' %.1f", r.Name, r.NodeHours, own.NodeHours)
		}
		if r.NodeHours < own.NodeHours*0.97 {
			t.Errorf("%s uses %.1f node-hours, far below the policies' %.1f: the match is loose", r.Name, r.NodeHours, own.NodeHours)
		}
	}
	if rep.Oracle.NodeHours > own.NodeHours || rep.Oracle.UnderMinutes != 0 {
		t.Errorf("oracle %+v vs policies %.1f", rep.Oracle, own.NodeHours)
	}

	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"trace: 4320 steps of 1m0s (3d)", "model: 100 rps per node, boot time 2m0s, noise 0%, counter rps (per node)",
		"oracle (lower bound)", "policies of web"} {
		if !strings.Contains(table.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, table.String())
		}
	}

	var out bytes.Buffer
	if err := rep.WriteCSV(&out); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+4320 || len(rows[0]) != 2+4*6 || rows[0][2] != "policies of web: nodes" || rows[0][25] != "oracle: under" ||
		rows[1][0] != "2026-01-05T00:00:00Z" {
		t.Errorf("CSV: %d rows, header %q, first %q", len(rows), rows[0], rows[1])
	}

	out.Reset()
	if err := rep.WriteHTML(&out); err != nil {
		t.Fatal(err)
	}
	page := out.String()
	if n := strings.Count(page, "<svg"); n != 12 {
		t.Errorf("%d plots, want 6 over the whole trace and 6 over the worst day", n)
	}
	// Self-contained: no script, no stylesheet or image to fetch.
	for _, bad := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q", bad)
		}
	}
	if strings.Count(page, "http") != strings.Count(page, `xmlns="http://www.w3.org/2000/svg"`) {
		t.Error("the page names a URL other than the SVG namespace")
	}
}

func TestSimulateSetupErrors(t *testing.T) {
	t.Parallel()
	cl := recommended(t)
	bare := *cl
	bare.Policies = nil
	if _, err := Simulate(Setup{Cluster: &bare, Trace: daily(), Model: model}); err == nil || !strings.Contains(err.Error(), "has no policies") {
		t.Errorf("no policies: %v", err)
	}
	if _, err := Simulate(Setup{Cluster: cl, Trace: daily(), Model: model, Counter: "nope"}); err == nil || !strings.Contains(err.Error(), `no counter "nope"`) {
		t.Errorf("unknown counter: %v", err)
	}
	stepOnly := *cl
	stepOnly.Policies = []*config.Policy{cl.Policies[0]} // the predictive one: no target_tracking for the baselines
	if _, err := Simulate(Setup{Cluster: &stepOnly, Trace: daily(), Model: model, Compare: true}); err == nil || !strings.Contains(err.Error(), "--baseline-target") {
		t.Errorf("no baseline target: %v", err)
	}
	if rep, err := Simulate(Setup{Cluster: &stepOnly, Trace: daily(), Model: model, Compare: true, BaselineTarget: 80}); err != nil ||
		!strings.Contains(rep.Results[1].Name, "target 80") {
		t.Errorf("baseline target: %v", err)
	}
}
