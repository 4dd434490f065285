package sim

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/policy"
)

var start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// series builds a one-minute trace from runs of (count, value) pairs.
func series(runs ...float64) *Trace {
	t := &Trace{Step: time.Minute}
	for i := 0; i+1 < len(runs); i += 2 {
		for range int(runs[i]) {
			t.Points = append(t.Points, Point{At: start.Add(time.Duration(len(t.Points)) * time.Minute), Value: runs[i+1]})
		}
	}
	return t
}

func tracking(target, tol float64, settings policy.Settings) Strategy {
	return Strategy{Name: "tt", Min: 1, Max: 10, New: func() *policy.Scaler {
		pn := true
		p := policy.NewTargetTracking("tt", &config.TargetTracking{Counter: "rps", Target: target, Tolerance: &tol, PerNode: &pn})
		return policy.NewScaler(settings, []policy.Policy{p}, policy.Memory{})
	}}
}

var model = Model{RPSPerNode: 100, BootTime: 2 * time.Minute}
var perNode = Feed{Counter: "rps", PerNode: true, Aggregate: "avg"}

// TestRun follows a step in demand minute by minute: one minute to see it,
// two to boot, so three under-provisioned minutes.
func TestRun(t *testing.T) {
	t.Parallel()
	tr := series(5, 100, 10, 350, 10, 100)
	res, err := Run(tr, tracking(100, 0, policy.Settings{}), model, perNode, Options{KeepSteps: true, KeepActions: true})
	if err != nil {
		t.Fatal(err)
	}
	// 6 minutes at 1 node, 10 at 4 (3 launched at the end of minute 5), 9 at 1.
	if got := res.NodeHours * 60; math.Abs(got-55) > 1e-9 {
		t.Errorf("node-minutes %g, want 55", got)
	}
	if res.UnderMinutes != 3 || res.ScaleOuts != 1 || res.ScaleIns != 1 || res.PeakNodes != 4 {
		t.Errorf("under %g, actions %d/%d, peak %d", res.UnderMinutes, res.ScaleOuts, res.ScaleIns, res.PeakNodes)
	}
	for i, s := range res.Steps {
		if under := i >= 5 && i <= 7; s.Under != under {
			t.Errorf("step %d under = %v", i, s.Under)
		}
	}
	if s := res.Steps[8]; s.InService != 4 || s.Capacity != 400 || s.Nodes != 4 {
		t.Errorf("step 8 = %+v", s)
	}
	if s := res.Steps[6]; s.InService != 1 || s.Nodes != 4 || s.Desired != 4 {
		t.Errorf("step 6 = %+v", s)
	}
	if len(res.Actions) != 2 || !strings.Contains(res.Actions[0].Cause, "avg rps 350 > target 100 (±0%) → desired 1 → 4") ||
		!res.Actions[0].At.Equal(start.Add(6*time.Minute)) {
		t.Errorf("actions %+v", res.Actions)
	}
	if _, err := Run(tr, tracking(100, 0, policy.Settings{}), Model{}, perNode, Options{}); err == nil {
		t.Error("a model without capacity ran")
	}
}

// TestRunFeeds checks what the policies read: missing data, a total, noise.
func TestRunFeeds(t *testing.T) {
	t.Parallel()
	var seen []policy.Reading
	spy := Strategy{Name: "spy", Min: 1, Max: 10, New: func() *policy.Scaler {
		return policy.NewScaler(policy.Settings{}, []policy.Policy{spyPolicy(func(s policy.State) { seen = append(seen, s.Readings["q"]) })}, policy.Memory{})
	}}
	tr := series(3, 250)
	tr.Points[1].Missing = true
	if _, err := Run(tr, spy, model, Feed{Counter: "q", PerNode: false}, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 3 || seen[0].Value != 250 || seen[1].Err == "" || seen[2].Value != 250 || !seen[0].At.Equal(start.Add(time.Minute)) {
		t.Fatalf("readings %+v", seen)
	}
	seen = nil
	if _, err := Run(series(200, 250), spy, Model{RPSPerNode: 100, Noise: 0.1, Seed: 7}, Feed{Counter: "q"}, Options{}); err != nil {
		t.Fatal(err)
	}
	sum, sq := 0.0, 0.0
	for _, r := range seen {
		sum += r.Value
		sq += r.Value * r.Value
	}
	mean := sum / float64(len(seen))
	sd := math.Sqrt(sq/float64(len(seen)) - mean*mean)
	if math.Abs(mean-250) > 10 || math.Abs(sd-25) > 6 {
		t.Errorf("noisy readings: mean %g sd %g, want about 250 and 25", mean, sd)
	}
}

type spyPolicy func(policy.State)

func (spyPolicy) Name() string { return "spy" }
func (f spyPolicy) Recommend(s policy.State) (policy.Recommendation, bool) {
	f(s)
	return policy.Recommendation{}, false
}

func TestOracle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tr   *Trace
		want float64 // node-minutes
	}{
		// Level 1 for 25 minutes; levels 2-4 for 10 minutes plus a boot each.
		{"a step", series(5, 100, 10, 350, 10, 100), 25 + 3*12},
		// A 2-minute dip is not worth a 2-minute boot: keep the node.
		{"a short dip", series(2, 200, 2, 100, 2, 200), 6 + 6},
		// A 3-minute dip is: stop it and boot it again.
		{"a long dip", series(2, 200, 3, 100, 1, 200), 6 + 2 + 2 + 1},
		{"flat", series(10, 300), 30},
	}
	for _, tt := range tests {
		o := Oracle(tt.tr, model, 1, 10, true)
		if got := o.NodeHours * 60; math.Abs(got-tt.want) > 1e-9 || o.UnderMinutes != 0 {
			t.Errorf("%s: %g node-minutes, %g under, want %g", tt.name, got, o.UnderMinutes, tt.want)
		}
		for i, s := range o.Steps {
			if s.Nodes < s.InService {
				t.Errorf("%s: step %d has %d nodes for %d needed", tt.name, i, s.Nodes, s.InService)
			}
		}
	}
	if o := Oracle(series(3, 1500), model, 1, 10, false); o.UnderMinutes != 3 || o.PeakNodes != 10 {
		t.Errorf("above max: %+v", o)
	}
}

// TestOracleIsOptimal compares the oracle with an exhaustive search on small
// random traces.
func TestOracleIsOptimal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		n := 10
		need := make([]int, n)
		need[0] = 1 + rng.IntN(3)
		for i := 1; i < n; i++ {
			need[i] = 1 + rng.IntN(3)
			if i <= 2 {
				need[i] = min(need[i], need[0]) // nothing can boot before the start
			}
		}
		tr := &Trace{Step: time.Minute}
		for i, v := range need {
			tr.Points = append(tr.Points, Point{At: start.Add(time.Duration(i) * time.Minute), Value: float64(v) * 100})
		}
		got := Oracle(tr, model, 1, 10, false).NodeHours * 60
		if want := bruteForce(need, 2); math.Abs(got-float64(want)) > 1e-9 {
			t.Fatalf("trial %d, need %v: oracle %g node-minutes, exhaustive search %d", trial, need, got, want)
		}
	}
}

// bruteForce is the fewest node-steps serving need, nodes taking boot steps
// to boot, by dynamic programming over (serving, booting by age).
func bruteForce(need []int, boot int) int {
	type state [3]int // serving, ready in 1, ready in 2 (boot = 2)
	best := map[state]int{{need[0], 0, 0}: 0}
	for t := range need {
		next := map[state]int{}
		for s, cost := range best {
			// Keep any subset (by count) and launch up to 3 more.
			for keep := 0; keep <= s[0]; keep++ {
				for k1 := 0; k1 <= s[1]; k1++ {
					for k2 := 0; k2 <= s[2]; k2++ {
						for launch := 0; launch <= 3; launch++ {
							if keep < need[t] {
								continue
							}
							// Launched now: booting during t and t+1 (ready in 2).
							b2 := k2 + launch
							c := cost + keep + k1 + b2
							ns := state{keep + k1, b2, 0}
							if old, ok := next[ns]; !ok || c < old {
								next[ns] = c
							}
						}
					}
				}
			}
		}
		best = next
	}
	out := math.MaxInt
	for _, c := range best {
		out = min(out, c)
	}
	_ = boot
	return out
}
