package baseline

import (
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/policy"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func state(now time.Time, desired, inService int, perNode float64) policy.State {
	return policy.State{Now: now, Min: 1, Max: 100, Desired: desired, InService: inService,
		Readings: map[string]policy.Reading{"rps": {Value: perNode, At: now, Interval: time.Minute}}}
}

func TestHPA(t *testing.T) {
	t.Parallel()
	h := NewHPA("hpa", Target{Counter: "rps", Target: 100, PerNode: true})
	tests := []struct {
		name  string
		state policy.State
		want  int
	}{
		// ceil(4 × 150 / 100) = 6.
		{"ratio formula", state(t0, 4, 4, 150), 6},
		{"within the 10 % tolerance", state(t0, 4, 4, 109), 4},
		{"just past the tolerance", state(t0, 4, 4, 111), 5},
		{"scale down", state(t0, 10, 10, 35), 4},
		{"down within tolerance", state(t0, 10, 10, 91), 10},
		// 2 of 4 ready at 150: missing pods count 0 % on scale-up,
		// 300 / (100 × 4) = 0.75: the direction flips, no change.
		{"missing pods flip the direction", state(t0, 4, 2, 150), 4},
		// 2 of 4 ready at 300: 600 / 400 = 1.5 → 6.
		{"missing pods count 0 % on scale-up", state(t0, 4, 2, 300), 6},
		// 2 of 4 ready at 20: missing at 100 %: (40 + 200) / 400 = 0.6 → 3.
		{"missing pods count 100 % on scale-down", state(t0, 4, 2, 20), 3},
		// At most max(2 × 3, 3 + 4) = 7 from 3.
		{"scale-up limit", state(t0, 3, 3, 1000), 7},
		{"scale-up limit, percent", state(t0, 10, 10, 1000), 20},
		{"missing metric", func() policy.State {
			s := state(t0, 4, 4, 0)
			s.Readings["rps"] = policy.Reading{At: t0, Err: "no metrics"}
			return s
		}(), 4},
	}
	for _, tt := range tests {
		r, ok := h.Recommend(tt.state)
		if !ok || !r.Sized || r.Desired != tt.want {
			t.Errorf("%s: %+v %v, want %d", tt.name, r, ok, tt.want)
		}
	}
	if s := HPASettings(); s.ScaleInStabilization != 5*time.Minute || s.ScaleOutCooldown != 0 || s.Warmup != 0 {
		t.Errorf("HPA settings %+v", s)
	}
}

// TestAWS feeds one-minute datapoints and checks when the alarms act.
func TestAWS(t *testing.T) {
	t.Parallel()
	type point struct {
		perNode float64 // -1: missing
		want    int     // 0: no recommendation
	}
	high := []point{{150, 0}, {150, 0}, {150, 6}}
	tests := []struct {
		name   string
		points []point
	}{
		{"3 of 3 above the target scale out", high},
		{"2 of 3 do not", []point{{150, 0}, {150, 0}, {90, 0}, {150, 0}, {150, 0}}},
		{"equal to the target is not above", []point{{100, 0}, {100, 0}, {100, 0}}},
		{"a missing datapoint: insufficient data", []point{{150, 0}, {150, 0}, {-1, 0}, {150, 0}, {150, 0}, {150, 6}}},
		{"15 of 15 below 90 % of the target scale in", func() []point {
			var ps []point
			for range 14 {
				ps = append(ps, point{50, 0})
			}
			return append(ps, point{50, 2})
		}()},
		{"14 of 15 do not", func() []point {
			var ps []point
			for i := range 15 {
				v := 50.0
				if i == 7 {
					v = 95
				}
				ps = append(ps, point{v, 0})
			}
			return ps
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAWS("aws", Target{Counter: "rps", Target: 100, PerNode: true})
			for i, p := range tt.points {
				now := t0.Add(time.Duration(i) * time.Minute)
				s := state(now, 4, 4, p.perNode)
				if p.perNode < 0 {
					s.Readings["rps"] = policy.Reading{At: now, Err: "no data", Interval: time.Minute}
				}
				r, ok := a.Recommend(s)
				got := 0
				if ok {
					got = r.Desired
				}
				if got != p.want {
					t.Fatalf("datapoint %d: %d (%+v), want %d", i, got, r, p.want)
				}
			}
		})
	}
	if s := AWSSettings(2 * time.Minute); s.Warmup != 3*time.Minute || s.ScaleInStabilization != 0 {
		t.Errorf("AWS settings %+v", s)
	}
}
