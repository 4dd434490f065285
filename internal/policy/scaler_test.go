package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

// fixed is a policy that recommends what it is told.
type fixed struct {
	name string
	rec  func(s State) (Recommendation, bool)
}

func (f *fixed) Name() string                             { return f.name }
func (f *fixed) Recommend(s State) (Recommendation, bool) { return f.rec(s) }

func wants(name string, n int) *fixed {
	return &fixed{name, func(State) (Recommendation, bool) { return want(name, n, "wants %d", n), true }}
}

func none(name string) *fixed {
	return &fixed{name, func(State) (Recommendation, bool) { return Recommendation{}, false }}
}

func TestScalerVote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		policies []Policy
		desired  int
		want     int
		cause    string
	}{
		{"out if any", []Policy{wants("a", 3), wants("b", 7), none("c")}, 4, 7, "policy b: wants 7 → desired 4 → 7"},
		{"in only if all: one holds", []Policy{wants("a", 2), wants("b", 4)}, 4, 4, ""},
		{"in only if all: all agree, to the highest", []Policy{wants("a", 2), wants("b", 3)}, 4, 3, "policy b: wants 3 → desired 4 → 3"},
		{"no opinion does not block a scale-in", []Policy{wants("a", 2), none("b")}, 4, 2, "policy a: wants 2 → desired 4 → 2"},
		{"no policy with an opinion: no change", []Policy{none("a")}, 4, 4, ""},
		{"capped by max", []Policy{wants("a", 50)}, 4, 20, "policy a: wants 50 (capped by max 20) → desired 4 → 20"},
		{"limited by min", []Policy{wants("a", 0)}, 4, 1, "policy a: wants 0 (limited by min 1) → desired 4 → 1"},
		{"a size outside the bounds is brought back", []Policy{none("a")}, 25, 20, "max 20 → desired 25 → 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewScaler(Settings{}, tt.policies, Memory{})
			d := s.Evaluate(State{Now: t0, Min: 1, Max: 20, Desired: tt.desired, InService: tt.desired})
			if d.To != tt.want || d.Cause != tt.cause {
				t.Fatalf("→ %d %q, want %d %q", d.To, d.Cause, tt.want, tt.cause)
			}
			if tt.want > tt.desired && d.Kind() != "scale_out" || tt.want < tt.desired && d.Kind() != "scale_in" || tt.want == tt.desired && d.Kind() != "" {
				t.Errorf("Kind() = %q", d.Kind())
			}
		})
	}
}

// run feeds a Scaler a series of recommendations of one policy, one a
// minute, carrying out its decisions, and returns the size after each.
func run(s *Scaler, start int, recs []int, booting func(i int) int) []int {
	p := s.Policies[0].(*fixed)
	size := start
	var out []int
	for i, n := range recs {
		p.rec = func(State) (Recommendation, bool) { return want(p.name, n, "wants %d", n), true }
		st := State{Now: t0.Add(time.Duration(i) * time.Minute), Min: 1, Max: 20, Desired: size, InService: size}
		if booting != nil {
			st.Booting = booting(i)
		}
		d := s.Evaluate(st)
		if d.To != d.From {
			s.Applied(d)
			size = d.To
		}
		out = append(out, size)
	}
	return out
}

func eq(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestScalerDampening(t *testing.T) {
	t.Parallel()
	m := time.Minute
	tests := []struct {
		name     string
		settings Settings
		recs     []int
		booting  func(int) int
		want     []int
	}{
		{"no dampening follows the policy", Settings{}, []int{6, 3, 6, 3}, nil, []int{6, 3, 6, 3}},
		// The window keeps the highest recommendation of the last 3 minutes.
		{"stabilization window", Settings{ScaleInStabilization: 3 * m}, []int{6, 3, 3, 3, 3, 2, 2, 2, 2}, nil,
			[]int{6, 6, 6, 6, 3, 3, 3, 3, 2}},
		{"stabilization never delays a scale-out", Settings{ScaleInStabilization: 10 * m}, []int{3, 6, 9}, nil, []int{3, 6, 9}},
		{"scale-out cooldown", Settings{ScaleOutCooldown: 2 * m}, []int{5, 7, 9, 9, 9}, nil, []int{5, 5, 9, 9, 9}},
		{"scale-in cooldown counts from any scaling", Settings{ScaleInCooldown: 3 * m}, []int{8, 2, 2, 2, 2}, nil, []int{8, 8, 8, 2, 2}},
		{"scale-out right after a scale-in", Settings{ScaleInCooldown: 3 * m}, []int{2, 8}, nil, []int{2, 8}},
		{"warm-up blocks scale-in while nodes boot", Settings{Warmup: m}, []int{8, 2, 2, 2}, func(i int) int { return []int{0, 3, 3, 0}[i] }, []int{8, 8, 8, 2}},
		{"without warm-up, booting nodes do not block", Settings{}, []int{8, 2}, func(int) int { return 3 }, []int{8, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewScaler(tt.settings, []Policy{&fixed{name: "p"}}, Memory{})
			if got := run(s, 4, tt.recs, tt.booting); !eq(got, tt.want) {
				t.Fatalf("sizes %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScalerBlockedSays(t *testing.T) {
	t.Parallel()
	s := NewScaler(Settings{ScaleInStabilization: 5 * time.Minute}, []Policy{&fixed{name: "p"}}, Memory{})
	run(s, 4, []int{6}, nil)
	s.Policies[0].(*fixed).rec = func(State) (Recommendation, bool) { return want("p", 3, "x"), true }
	d := s.Evaluate(State{Now: t0.Add(time.Minute), Min: 1, Max: 20, Desired: 6, InService: 6})
	if d.To != 6 || !strings.Contains(d.Blocked(), "stabilization window: 6 was recommended 1m0s ago") {
		t.Fatalf("%+v", d)
	}
}

// TestScalerMemory: a restarted Scaler keeps its cooldowns.
func TestScalerMemory(t *testing.T) {
	t.Parallel()
	s := NewScaler(Settings{ScaleInCooldown: 10 * time.Minute}, []Policy{wants("p", 2)}, Memory{LastScaleOut: t0.Add(-5 * time.Minute), ScaleOuts: 3})
	if d := s.Evaluate(State{Now: t0, Min: 1, Max: 20, Desired: 6, InService: 6}); d.To != 6 || !strings.Contains(d.Blocked(), "scale-in cooldown (5m0s left)") {
		t.Fatalf("%+v", d)
	}
	if d := s.Evaluate(State{Now: t0.Add(5 * time.Minute), Min: 1, Max: 20, Desired: 6, InService: 6}); d.To != 2 {
		t.Fatalf("after the cooldown: %+v", d)
	}
	s.Applied(Decision{At: t0, From: 6, To: 2})
	if m := s.Memory(); m.ScaleIns != 1 || m.ScaleOuts != 3 || !m.LastScaleIn.Equal(t0) {
		t.Fatalf("memory %+v", m)
	}
	// Hold: a restarted server holds the size it found for one window.
	h := NewScaler(Settings{ScaleInStabilization: 5 * time.Minute}, []Policy{wants("p", 2)}, Memory{})
	h.Hold(t0, 6)
	if d := h.Evaluate(State{Now: t0.Add(time.Minute), Min: 1, Max: 20, Desired: 6, InService: 6}); d.To != 6 {
		t.Fatalf("held: %+v", d)
	}
}

func TestScalerSchedules(t *testing.T) {
	t.Parallel()
	now := t0.Add(30 * time.Minute) // Monday 09:30 UTC
	win := func(name string, min, max int) *fixed {
		return &fixed{name, func(State) (Recommendation, bool) {
			return Recommendation{Policy: name, Bounds: &Bounds{Min: min, Max: max, Since: t0, Window: true}}, true
		}}
	}
	since := func(name string, min, max int, at time.Time) *fixed {
		return &fixed{name, func(State) (Recommendation, bool) {
			return Recommendation{Policy: name, Bounds: &Bounds{Min: min, Max: max, Since: at}}, true
		}}
	}
	exact := func(name string, n int) *fixed {
		return &fixed{name, func(State) (Recommendation, bool) {
			return Recommendation{Policy: name, Sized: true, Exact: true, Desired: n, Reason: "desired set"}, true
		}}
	}
	tests := []struct {
		name     string
		policies []Policy
		settings Settings
		desired  int
		want     int
		cause    string
		by       string
	}{
		{"a scheduled min raises the size, cooldown or not", []Policy{win("office", 8, -1), wants("tt", 3)},
			Settings{ScaleOutCooldown: time.Hour}, 3, 8, "schedule office: min 8 → desired 3 → 8", "office"},
		{"a scheduled max lowers the size, warm-up or not", []Policy{win("night", -1, 2), wants("tt", 5)},
			Settings{Warmup: time.Hour}, 5, 2, "schedule night: max 2 → desired 5 → 2", "night"},
		{"the latest firing wins", []Policy{since("early", 6, -1, t0.Add(-time.Hour)), since("late", 4, -1, t0)},
			Settings{}, 1, 4, "schedule late: min 4", "late"},
		{"a window overrides", []Policy{since("late", 4, -1, t0), win("office", 9, -1)}, Settings{}, 1, 9, "schedule office: min 9", "office"},
		{"the highest windowed min", []Policy{win("a", 5, -1), win("b", 7, -1)}, Settings{}, 1, 7, "schedule b: min 7", "b"},
		{"scheduled bounds stay within the configured ones", []Policy{win("big", 50, -1)}, Settings{}, 1, 20, "schedule big: min 20", "big"},
		{"a scheduled desired is set as is", []Policy{exact("s", 9), wants("tt", 2)}, Settings{ScaleOutCooldown: time.Hour}, 4, 9,
			"schedule s: desired set → desired 4 → 9", "s"},
		{"a scheduled desired within scheduled bounds", []Policy{exact("s", 9), win("cap", -1, 6)}, Settings{}, 4, 6, "schedule s", "s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewScaler(tt.settings, tt.policies, Memory{LastScaleOut: now.Add(-time.Minute)})
			d := s.Evaluate(State{Now: now, Min: 1, Max: 20, Desired: tt.desired, InService: tt.desired})
			if d.To != tt.want || !strings.Contains(d.Cause, tt.cause) || d.Policy != tt.by {
				t.Fatalf("→ %d %q by %q, want %d %q by %q", d.To, d.Cause, d.Policy, tt.want, tt.cause, tt.by)
			}
		})
	}
}

// TestNoFlapping drives the real target-tracking policy through the Scaler
// with the settings of docs/policies.md on signals that must not make it flap.
func TestNoFlapping(t *testing.T) {
	t.Parallel()
	tt := &config.TargetTracking{Counter: "rps", Target: 100, Tolerance: fptr(0.1), PerNode: bptr(true)}
	settings := Settings{ScaleInCooldown: 5 * time.Minute, ScaleInStabilization: 5 * time.Minute}
	// load returns the total load at minute i (NaN: missing sample).
	tests := []struct {
		name       string
		load       func(i int) float64
		minutes    int
		maxActions int
		final      int
	}{
		{"a load hovering around the target (400 ± 8 %)", func(i int) float64 { return 400 * (1 + 0.08*float64(1-2*(i%2))) }, 120, 0, 4},
		{"a load drifting slowly across a node boundary", func(i int) float64 { return 390 + 20*float64(i%10)/10 }, 120, 0, 4},
		// One minute at 1000: one scale-out, one scale-in after the window.
		{"a single spike", func(i int) float64 {
			if i == 10 {
				return 1000
			}
			return 380
		}, 60, 2, 4},
		{"missing samples never scale in", func(i int) float64 {
			if i >= 5 {
				return -1
			}
			return 380
		}, 60, 0, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := NewScaler(settings, []Policy{NewTargetTracking("rps-target", tt)}, Memory{})
			size, actions := 4, 0
			for i := range tc.minutes {
				now := t0.Add(time.Duration(i) * time.Minute)
				load := tc.load(i)
				r := Reading{Value: load / float64(size), At: now, Interval: time.Minute, Aggregate: "avg"}
				if load < 0 {
					r = Reading{At: now, Err: "connection refused", Interval: time.Minute}
				}
				d := s.Evaluate(State{Now: now, Min: 1, Max: 20, Desired: size, InService: size, Readings: map[string]Reading{"rps": r}})
				if d.To != d.From {
					s.Applied(d)
					size = d.To
					actions++
				}
			}
			if actions > tc.maxActions || size != tc.final {
				t.Fatalf("%d actions (at most %d), final size %d (want %d)", actions, tc.maxActions, size, tc.final)
			}
		})
	}
}
