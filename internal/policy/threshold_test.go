package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/store"
)

func ptr(f float64) *float64 { return &f }

// step is one event fed to the tracker: a sample at offset At (Err set for a
// missing one), then a check that Due at that moment gives Want.
type step struct {
	At    time.Duration
	Value float64
	Err   string
	Want  bool
}

func TestThreshold(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	above20 := &config.Trigger{Name: "out", Counter: "inflight", Above: ptr(20),
		For: plugin.Duration(30 * time.Second), Cooldown: plugin.Duration(60 * time.Second)}
	below5 := &config.Trigger{Name: "in", Counter: "inflight", Below: ptr(5),
		For: plugin.Duration(20 * time.Second)}
	s := time.Second
	tests := []struct {
		name  string
		trig  *config.Trigger
		steps []step
	}{
		{"fires after the whole duration", above20, []step{
			{0, 25, "", false}, {10 * s, 26, "", false}, {20 * s, 30, "", false}, {30 * s, 27, "", true}}},
		{"one low sample resets the streak", above20, []step{
			{0, 25, "", false}, {10 * s, 26, "", false}, {20 * s, 10, "", false}, {30 * s, 27, "", false},
			{50 * s, 27, "", false}, {60 * s, 27, "", true}}},
		{"a missing sample resets and never fires", above20, []step{
			{0, 25, "", false}, {10 * s, 0, "connection refused", false}, {30 * s, 27, "", false}, {59 * s, 27, "", false}}},
		{"equal to the threshold is not past it", above20, []step{
			{0, 20, "", false}, {40 * s, 20, "", false}}},
		{"missing data is not low", below5, []step{
			{0, 0, "timeout", false}, {10 * s, 0, "timeout", false}, {30 * s, 0, "timeout", false}}},
		{"low for the duration fires scale-in", below5, []step{
			{0, 1, "", false}, {10 * s, 0, "", false}, {20 * s, 2, "", true}}},
		{"hovering around the threshold never fires", above20, []step{
			{0, 21, "", false}, {10 * s, 19, "", false}, {20 * s, 21, "", false}, {30 * s, 19, "", false},
			{40 * s, 21, "", false}, {50 * s, 19, "", false}, {60 * s, 21, "", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			th := NewThreshold("web", tc.trig, map[string]string{"inflight": "avg"}, store.TriggerState{})
			for i, st := range tc.steps {
				now := t0.Add(st.At)
				th.Observe("inflight", store.Sample{At: now, Value: st.Value, Err: st.Err})
				got, cause := th.Due(now)
				if got != st.Want {
					t.Fatalf("step %d (t=%s): due=%v, want %v (cause %q)", i, st.At, got, st.Want, cause)
				}
				if got && !strings.Contains(cause, "avg inflight") {
					t.Fatalf("cause %q does not name the aggregate and counter", cause)
				}
			}
		})
	}
}

func TestThresholdCooldown(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	trig := &config.Trigger{Name: "out", Counter: "q", Above: ptr(1),
		For: plugin.Duration(10 * time.Second), Cooldown: plugin.Duration(60 * time.Second)}
	th := NewThreshold("web", trig, nil, store.TriggerState{})
	feed := func(at time.Duration) bool {
		now := t0.Add(at)
		th.Observe("q", store.Sample{At: now, Value: 5})
		due, _ := th.Due(now)
		return due
	}
	feed(0)
	if !feed(10 * time.Second) {
		t.Fatal("not due after 10s")
	}
	th.Fired(t0.Add(10 * time.Second))
	for at := 15 * time.Second; at < 70*time.Second; at += 5 * time.Second {
		if feed(at) {
			t.Fatalf("due during cooldown at %s", at)
		}
	}
	// The streak starts again at the first sample after the cooldown (70s).
	if feed(70*time.Second) || feed(75*time.Second) {
		t.Fatal("due before a full duration after the cooldown")
	}
	if !feed(80 * time.Second) {
		t.Fatal("not due a full duration after the cooldown")
	}
	st := th.State()
	if st.Firings != 1 || !st.CooldownUntil.Equal(t0.Add(70*time.Second)) {
		t.Fatalf("state %+v", st)
	}
	// A restart resumes the cooldown from the stored state.
	resumed := NewThreshold("web", trig, nil, store.TriggerState{CooldownUntil: t0.Add(200 * time.Second), Firings: 3})
	resumed.Observe("q", store.Sample{At: t0.Add(100 * time.Second), Value: 5})
	if due, _ := resumed.Due(t0.Add(150 * time.Second)); due {
		t.Fatal("resumed tracker ignored its cooldown")
	}
}

// TestThresholdPartialAggregates checks what an aggregate that misses nodes
// (Reporting < Expected) decides: only what the missing nodes could not
// change. Missing nodes never make a cluster look idle.
func TestThresholdPartialAggregates(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	above := &config.Trigger{Name: "out", Counter: "c", Above: ptr(10), For: plugin.Duration(10 * time.Second)}
	below := &config.Trigger{Name: "in", Counter: "c", Below: ptr(10), For: plugin.Duration(10 * time.Second)}
	tests := []struct {
		agg  string
		trig *config.Trigger
		// value is past the threshold; 2 of 3 nodes report.
		value float64
		want  bool
	}{
		{config.AggAvg, above, 20, true},  // an estimate, trusted to scale out
		{config.AggAvg, below, 1, false},  // never trusted to scale in
		{config.AggMax, above, 20, true},  // the true max is at least this
		{config.AggMax, below, 1, false},  // the missing node may be higher
		{config.AggSum, above, 20, true},  // the true sum is at least this
		{config.AggSum, below, 1, false},  // the missing node adds to it
		{config.AggMin, below, 1, true},   // the true min is at most this
		{config.AggMin, above, 20, false}, // the missing node may be lower
	}
	for _, tc := range tests {
		t.Run(tc.agg+" "+tc.trig.Name, func(t *testing.T) {
			t.Parallel()
			th := NewThreshold("web", tc.trig, map[string]string{"c": tc.agg}, store.TriggerState{})
			for _, at := range []time.Duration{0, 5 * time.Second, 10 * time.Second} {
				th.Observe("c", store.Sample{At: t0.Add(at), Value: tc.value, Reporting: 2, Expected: 3})
			}
			if due, cause := th.Due(t0.Add(10 * time.Second)); due != tc.want {
				t.Fatalf("due = %v (%q), want %v", due, cause, tc.want)
			}
			// With every node reporting, the same values always decide.
			complete := NewThreshold("web", tc.trig, map[string]string{"c": tc.agg}, store.TriggerState{})
			for _, at := range []time.Duration{0, 5 * time.Second, 10 * time.Second} {
				complete.Observe("c", store.Sample{At: t0.Add(at), Value: tc.value, Reporting: 3, Expected: 3})
			}
			if due, _ := complete.Due(t0.Add(10 * time.Second)); !due {
				t.Fatal("a complete aggregate past the threshold is not due")
			}
		})
	}
	// One partial sample in the middle of a scale-in streak resets it.
	th := NewThreshold("web", below, map[string]string{"c": config.AggAvg}, store.TriggerState{})
	th.Observe("c", store.Sample{At: t0, Value: 1, Reporting: 3, Expected: 3})
	th.Observe("c", store.Sample{At: t0.Add(5 * time.Second), Value: 1, Reporting: 2, Expected: 3})
	th.Observe("c", store.Sample{At: t0.Add(10 * time.Second), Value: 1, Reporting: 3, Expected: 3})
	if due, _ := th.Due(t0.Add(10 * time.Second)); due {
		t.Fatal("a scale-in streak survived a sample that missed a node")
	}
}
