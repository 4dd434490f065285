package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/plugin"
)

func steps(adjust ...float64) []*config.StepAdjustment {
	// adjust holds from, to (-1: none), adjust triples.
	var out []*config.StepAdjustment
	for i := 0; i+2 < len(adjust); i += 3 {
		s := &config.StepAdjustment{From: adjust[i], Adjust: int(adjust[i+2])}
		if adjust[i+1] >= 0 {
			s.To = fptr(adjust[i+1])
		}
		out = append(out, s)
	}
	return out
}

func TestStepArithmetic(t *testing.T) {
	t.Parallel()
	// AWS's worked example: threshold 50, +10 % from 60 to 70, +30 % above 70
	// (as distances: 10..20 and 20..).
	awsExample := &config.StepScaling{Counter: "rps", Above: fptr(50), Adjustment: config.AdjustPercent,
		Steps: steps(10, 20, 10, 20, -1, 30)}
	change := &config.StepScaling{Counter: "rps", Above: fptr(100), Adjustment: config.AdjustChange,
		Steps: steps(0, 50, 1, 50, 200, 2, 200, -1, 4)}
	below := &config.StepScaling{Counter: "rps", Below: fptr(20), Adjustment: config.AdjustChange,
		Steps: steps(0, 10, -1, 10, -1, -2)}
	exact := &config.StepScaling{Counter: "rps", Above: fptr(100), Adjustment: config.AdjustExact,
		Steps: steps(0, -1, 12)}
	pctMin := &config.StepScaling{Counter: "rps", Above: fptr(100), Adjustment: config.AdjustPercent, MinMagnitude: 2,
		Steps: steps(0, -1, 10)}
	tests := []struct {
		name  string
		cfg   *config.StepScaling
		nodes int
		value float64
		ok    bool
		want  int
		why   string
	}{
		{"not past the threshold: no opinion", change, 4, 100, false, 0, ""},
		{"first step", change, 4, 120, true, 5, "avg rps 120 > 100 by 20 for 0s (step 0..50: +1 to 4 in service)"},
		{"second step starts at its from", change, 4, 150, true, 6, "step 50..200"},
		{"open last step", change, 4, 900, true, 8, "step 200..: +4"},
		{"below: distance under the threshold", below, 6, 15, true, 5, "avg rps 15 < 20 by 5"},
		{"below: deeper step", below, 6, 2, true, 4, "step 10..: -2"},
		{"exact sets the size", exact, 3, 101, true, 12, "size 12"},
		// 10 % of 10 = 1, 30 % of 10 = 3.
		{"AWS example, first step", awsExample, 10, 65, true, 11, "+10% of 10 in service = +1"},
		{"AWS example, second step", awsExample, 10, 75, true, 13, "+30% of 10 in service = +3"},
		{"AWS example, below the first step: none", awsExample, 10, 55, false, 0, ""},
		// 10 % of 3 = 0.3 → 1 (values in (0, 1) become 1).
		{"percent in (0,1) rounds to 1", awsExample, 3, 65, true, 4, "= +1"},
		// 10 % of 25 = 2.5 → 2 (values above 1 round down).
		{"percent above 1 rounds down", awsExample, 25, 65, true, 27, "= +2"},
		{"min magnitude", pctMin, 5, 150, true, 7, "= +2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewStep("steps", tt.cfg)
			r, ok := p.Recommend(st(t0, tt.nodes, tt.value))
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, r)
			}
			if ok && (r.Desired != tt.want || !strings.Contains(r.Why(), tt.why)) {
				t.Errorf("= %d %q, want %d %q", r.Desired, r.Why(), tt.want, tt.why)
			}
		})
	}
}

func TestPercentChange(t *testing.T) {
	t.Parallel()
	tests := []struct{ base, pct, min, want int }{
		{10, 10, 0, 1}, {10, 15, 0, 1}, {10, 25, 0, 2}, {3, 10, 0, 1}, {0, 50, 0, 0},
		{10, -10, 0, -1}, {10, -25, 0, -2}, {3, -10, 0, -1}, {10, 10, 3, 3}, {10, -10, 2, -2}, {0, 50, 2, 2},
	}
	for _, tt := range tests {
		if got := percentChange(tt.base, tt.pct, tt.min); got != tt.want {
			t.Errorf("percentChange(%d, %d%%, min %d) = %d, want %d", tt.base, tt.pct, tt.min, got, tt.want)
		}
	}
}

// TestStepStreak: the counter must be past the threshold on every sample for
// For; a sample that is not, or a missing one, restarts the streak.
func TestStepStreak(t *testing.T) {
	t.Parallel()
	cfg := &config.StepScaling{Counter: "rps", Above: fptr(100), For: plugin.Duration(2 * time.Minute),
		Adjustment: config.AdjustChange, Steps: steps(0, -1, 1)}
	m := time.Minute
	type sample struct {
		at    time.Duration
		value float64
		err   string
		want  int // 0: no recommendation; -1: hold
	}
	tests := []struct {
		name    string
		samples []sample
	}{
		{"fires after For", []sample{{0, 150, "", 0}, {m, 150, "", 0}, {2 * m, 150, "", 5}}},
		{"a low sample restarts the streak", []sample{{0, 150, "", 0}, {m, 90, "", 0}, {2 * m, 150, "", 0}, {3 * m, 150, "", 0}, {4 * m, 150, "", 5}}},
		{"a missing sample holds and restarts the streak", []sample{{0, 150, "", 0}, {m, 0, "timeout", -1}, {2 * m, 150, "", 0}, {3 * m, 150, "", 0}, {4 * m, 150, "", 5}}},
		{"a single spike never fires", []sample{{0, 90, "", 0}, {m, 900, "", 0}, {2 * m, 90, "", 0}, {3 * m, 90, "", 0}}},
		// Evaluations between samples do not extend the streak with an old sample.
		{"the same sample counts once", []sample{{0, 150, "", 0}, {30 * time.Second, -1, "", 0}, {m, 150, "", 0}, {2 * m, 150, "", 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewStep("s", cfg)
			var last Reading
			for i, s := range tt.samples {
				now := t0.Add(s.at)
				state := st(now, 4, s.value)
				switch {
				case s.value < 0: // no new sample
					state.Readings["rps"] = last
				case s.err != "":
					state.Readings["rps"] = Reading{At: now, Err: s.err, Interval: time.Minute}
				}
				last = state.Readings["rps"]
				r, ok := p.Recommend(state)
				got := 0
				if ok {
					got = r.Desired
					if r.Desired == state.Desired {
						got = -1
					}
				}
				if got != s.want {
					t.Fatalf("sample %d at %s: got %d (%+v), want %d", i, s.at, got, r, s.want)
				}
			}
		})
	}
}

// TestStepCountsBootingNodes: while the nodes a step launched boot, the same
// breach asks for nothing more.
func TestStepCountsBootingNodes(t *testing.T) {
	t.Parallel()
	p := NewStep("s", &config.StepScaling{Counter: "rps", Above: fptr(100), Adjustment: config.AdjustChange, Steps: steps(0, -1, 2)})
	s := st(t0, 4, 150)
	r, _ := p.Recommend(s)
	if r.Desired != 6 {
		t.Fatalf("first: %d, want 6", r.Desired)
	}
	s = st(t0.Add(time.Minute), 4, 150)
	s.Desired, s.Booting = 6, 2
	if r, _ := p.Recommend(s); r.Desired != 6 {
		t.Fatalf("while booting: %d, want 6 (hold)", r.Desired)
	}
	s = st(t0.Add(3*time.Minute), 6, 150)
	if r, _ := p.Recommend(s); r.Desired != 8 {
		t.Fatalf("once in service: %d, want 8", r.Desired)
	}
}
