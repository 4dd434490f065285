package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // a Monday

func fptr(f float64) *float64 { return &f }
func bptr(b bool) *bool       { return &b }

// st is a state with n nodes in service, desired n, bounds 1..20 and one
// reading of counter rps taken at now.
func st(now time.Time, n int, rps float64) State {
	return State{Now: now, Min: 1, Max: 20, Desired: n, InService: n, BootTime: 2 * time.Minute,
		Readings: map[string]Reading{"rps": {Value: rps, At: now, Interval: time.Minute, Aggregate: "avg"}}}
}

func TestTargetTracking(t *testing.T) {
	t.Parallel()
	perNode := &config.TargetTracking{Counter: "rps", Target: 100, Tolerance: fptr(0.1), PerNode: bptr(true)}
	total := &config.TargetTracking{Counter: "rps", Target: 50, Tolerance: fptr(0.1), PerNode: bptr(false)}
	noIn := &config.TargetTracking{Counter: "rps", Target: 100, Tolerance: fptr(0.1), PerNode: bptr(true), DisableScaleIn: true}
	exact := &config.TargetTracking{Counter: "rps", Target: 100, Tolerance: fptr(0), PerNode: bptr(true)}
	tests := []struct {
		name   string
		cfg    *config.TargetTracking
		state  State
		ok     bool
		want   int
		reason string
	}{
		// 4 nodes at 140 rps = 560 rps: ceil(5.6) = 6.
		{"above the band scales out to ceil(load/target)", perNode, st(t0, 4, 140), true, 6, "avg rps 140 > target 100 (±10%)"},
		{"just above the band", perNode, st(t0, 4, 111), true, 5, "> target"},
		{"at the top of the band holds", perNode, st(t0, 4, 110), true, 4, "within target 100 (±10%)"},
		{"at the bottom of the band holds", perNode, st(t0, 4, 90), true, 4, "within"},
		// 4 × 60 = 240: ceil(2.4) = 3, not 2: conservative.
		{"below the band scales in, rounding up", perNode, st(t0, 4, 60), true, 3, "avg rps 60 < target 100"},
		// 5 × 85 = 425 → ceil 4.25 = 5: no change although below the band.
		{"below the band but a node's worth is missing holds", perNode, st(t0, 5, 85), true, 5, "within"},
		{"exact load holds", exact, st(t0, 4, 100), true, 4, "within"},
		// Booting nodes count: 4 serving at 140 (560) with 6 desired is 93
		// per desired node: in the band, no second scale-out.
		{"booting nodes count toward the size", perNode, func() State {
			s := st(t0, 4, 140)
			s.Desired, s.Booting = 6, 2
			return s
		}(), true, 6, "93.33 per node over 6"},
		{"a total is divided by the nodes", total, st(t0, 4, 340), true, 7, "rps 340 (85 per node over 4) > target 50"},
		{"missing reading holds", perNode, func() State {
			s := st(t0, 4, 0)
			s.Readings["rps"] = Reading{At: t0, Err: "timeout", Interval: time.Minute}
			return s
		}(), true, 4, "missing data never scales in"},
		{"stale reading holds", perNode, func() State {
			s := st(t0, 4, 10)
			s.Readings["rps"] = Reading{Value: 10, At: t0.Add(-4 * time.Minute), Interval: time.Minute}
			return s
		}(), true, 4, "4m0s old"},
		{"no reading yet holds", perNode, State{Now: t0, Min: 1, Max: 20, Desired: 3, InService: 3}, true, 3, "no reading yet"},
		{"warming nodes alone report nothing", perNode, func() State {
			s := st(t0, 2, 150)
			s.Warming = 2
			return s
		}(), true, 2, "no node in service reports"},
		{"disable_scale_in: no opinion below the band", noIn, st(t0, 4, 10), false, 0, ""},
		{"disable_scale_in: no opinion within the band", noIn, st(t0, 4, 100), false, 0, ""},
		{"disable_scale_in: no opinion without data", noIn, State{Now: t0, Desired: 3, InService: 3}, false, 0, ""},
		{"disable_scale_in still scales out", noIn, st(t0, 4, 200), true, 8, "> target"},
		{"an empty cluster with a total scales out", total, func() State {
			s := st(t0, 0, 120)
			s.Readings["rps"] = Reading{Value: 120, At: t0, Interval: time.Minute}
			return s
		}(), true, 3, "with no node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewTargetTracking("cpu-target", tt.cfg)
			r, ok := p.Recommend(tt.state)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tt.ok, r)
			}
			if !ok {
				return
			}
			if !r.Sized || r.Desired != tt.want || r.Policy != "cpu-target" {
				t.Errorf("recommendation = %+v, want %d", r, tt.want)
			}
			if !strings.Contains(r.Why(), tt.reason) {
				t.Errorf("reason %q does not contain %q", r.Why(), tt.reason)
			}
		})
	}
}

// TestTargetTrackingNoOscillation: after any decision, the next reading of the
// same load must not ask to go back.
func TestTargetTrackingNoOscillation(t *testing.T) {
	t.Parallel()
	p := NewTargetTracking("t", &config.TargetTracking{Counter: "rps", Target: 100, Tolerance: fptr(0.1), PerNode: bptr(true)})
	for load := 1.0; load <= 2000; load += 7.3 {
		for n := 1; n <= 25; n++ {
			r, ok := p.Recommend(st(t0, n, load/float64(n)))
			if !ok || r.Desired == n {
				continue
			}
			again, _ := p.Recommend(st(t0, r.Desired, load/float64(r.Desired)))
			if again.Desired != r.Desired {
				t.Fatalf("load %g: %d → %d, then %d → %d", load, n, r.Desired, r.Desired, again.Desired)
			}
		}
	}
}
