// Package policy decides when a cluster must change size.
//
// Two families live here. Threshold is PyScaler's trigger (a counter past its
// threshold for a while fires ordered actions). Policy is the other one: a
// target-tracking, step, scheduled or predictive policy (and, in package
// baseline, the Kubernetes HPA and AWS target tracking algorithms) looks at
// the cluster's State and recommends a desired size; a Scaler combines the
// recommendations ("out if any, in only if all"), applies the bounds,
// cooldowns, warm-up and the scale-in stabilization window, and decides.
//
// Everything here is pure: fed the state and the time, it never reads a
// clock nor does I/O, so the server, the simulator and the tests drive
// exactly the same code.
package policy

import (
	"fmt"
	"math"
	"time"
)

// StaleAfter is how many counter intervals old a reading may be before it
// counts as missing.
const StaleAfter = 3

// Reading is the newest cluster aggregate of a counter.
type Reading struct {
	Value float64
	At    time.Time
	// Err is set for a failed reading: it has no value.
	Err string
	// Interval is how often the counter is read (0: never stale).
	Interval time.Duration
	// Aggregate names how node readings were combined (avg, sum, …; "" for a
	// cluster counter), for reasons.
	Aggregate string
	// Nodes is how many nodes were in service when it was read (0: unknown,
	// take the state's): a per-node aggregate times Nodes is the load.
	Nodes int
}

// Serving is how many nodes served when r was read: r.Nodes, else s.InService.
func (r Reading) Serving(s State) int {
	if r.Nodes > 0 {
		return r.Nodes
	}
	return s.InService
}

// Missing reports why the reading cannot be used at now ("" if it can):
// absent, failed or stale. Missing data never scales in.
func (r Reading) Missing(now time.Time) string {
	switch {
	case r.At.IsZero():
		return "no reading yet"
	case r.Err != "":
		return "reading failed: " + r.Err
	case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
		return "reading is not a number"
	case r.Interval > 0 && now.Sub(r.At) > StaleAfter*r.Interval:
		return fmt.Sprintf("latest reading is %s old", now.Sub(r.At).Round(time.Second))
	}
	return ""
}

// State is what a policy sees of its cluster at Now.
type State struct {
	Now time.Time
	// Min and Max are the configured bounds; Desired is the current target size.
	Min, Max int
	Desired  int
	// InService counts the nodes serving; Warming is how many of them are
	// still in their warm-up (not in the aggregates); Booting counts the
	// nodes launched but not yet in service.
	InService, Warming, Booting int
	// BootTime is how long a node takes from launch to service.
	BootTime time.Duration
	// Readings holds the newest aggregate of each counter, by name.
	Readings map[string]Reading
}

// Counted is the number of nodes whose readings are in the aggregates.
func (s State) Counted() int { return s.InService - s.Warming }

// Bounds are a scheduled policy's min and max (-1: not set).
type Bounds struct {
	Min, Max int
	// Since is the firing that set them: among policies without a window,
	// the latest firing wins.
	Since time.Time
	// Window marks bounds that hold for a duration; they take precedence.
	Window bool
}

// Recommendation is a policy's answer.
type Recommendation struct {
	Policy string
	// Sized reports whether Desired holds the size the policy wants.
	Sized   bool
	Desired int
	// Reason says why, for people ("avg rps 140 > target 100 (±10%)");
	// Explain, when set, writes it only when it is needed (see Why).
	Reason  string
	Explain func() string
	// Hold marks a recommendation of the current size for lack of data:
	// it blocks a scale-in now, but the stabilization window does not keep
	// it (once data is back, the window holds only what the data said).
	Hold bool
	// Exact asks to set Desired as is, once (a scheduled desired size): it
	// bypasses the vote, the cooldowns and the stabilization window.
	Exact bool
	// Bounds, when set, are the bounds in effect (scheduled min/max).
	Bounds *Bounds
}

// Policy recommends a desired size from the cluster's state.
//
// Contract: Recommend is pure (no I/O, no clock but s.Now), is called with
// non-decreasing s.Now, and returns false when the policy has no opinion
// (which does not block a scale-in). A policy that cannot judge because its
// data is missing returns s.Desired ("hold"): missing data never scales in.
// A policy may keep history between calls (streaks, forecasts).
type Policy interface {
	// Name is the policy's name, as in the configuration.
	Name() string
	// Recommend returns the policy's recommendation at s.Now, if any.
	Recommend(s State) (Recommendation, bool)
}

// Why says why the policy recommends it.
func (r Recommendation) Why() string {
	if r.Explain != nil {
		return r.Explain()
	}
	return r.Reason
}

// want builds a sized recommendation; its reason is written only when read
// (policies are evaluated every few seconds, their reasons rarely read).
func want(policy string, n int, format string, args ...any) Recommendation {
	return Recommendation{Policy: policy, Sized: true, Desired: n, Explain: func() string { return fmt.Sprintf(format, args...) }}
}

// holding builds the recommendation of a policy without data: the current size.
func holding(policy string, s State, explain func() string) Recommendation {
	return Recommendation{Policy: policy, Sized: true, Desired: s.Desired, Hold: true, Explain: explain}
}

// wantf builds a sized recommendation whose reason explain writes when read.
func wantf(policy string, n int, explain func() string) Recommendation {
	return Recommendation{Policy: policy, Sized: true, Desired: n, Explain: explain}
}

// pct formats a fraction as a percentage ("10%").
func pct(f float64) string { return num(f*100) + "%" }

// ceilTol is math.Ceil that forgives floating-point noise: 3.0000000001 is 3.
func ceilTol(v float64) int {
	r := math.Round(v)
	if math.Abs(v-r) < 1e-9 {
		return int(r)
	}
	return int(math.Ceil(v))
}

// clamp keeps v within [lo, hi]; when lo > hi, lo wins (capacity first).
func clamp(v, lo, hi int) int {
	if v > hi {
		v = hi
	}
	if v < lo {
		v = lo
	}
	return v
}
