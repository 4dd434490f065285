package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/store"
)

// Threshold tracks one trigger: PyScaler's "counter past its threshold on
// every sample for a duration" (the Timing), reset as soon as one sample is
// not past it.
//
// Semantics:
//   - Each condition keeps a streak: the time of the first sample of an
//     unbroken run of samples past its threshold.
//   - A sample that is not past, or that is missing (a counter error), ends the
//     streak: missing data never fires a trigger and never counts as "low".
//   - An aggregate that some nodes are missing from (Reporting < Expected) only
//     bounds the true value, so it ends the streak of a condition it cannot
//     decide (see judgeable): missing nodes never make a cluster look idle.
//   - The trigger is due when any condition's streak has lasted For, and the
//     cooldown is over. Samples taken during the cooldown do not start a streak.
//   - Firing ends every streak: firing again takes another full For.
type Threshold struct {
	Cluster    string
	Trigger    string
	Conditions []config.Condition
	For        time.Duration
	Cooldown   time.Duration

	streaks       []time.Time
	last          []float64
	aggregate     []string
	cooldownUntil time.Time
	lastFired     time.Time
	firings       int64
}

// NewThreshold builds the tracker of t, resuming the durable part of st
// (cooldown and firing count; streaks restart from zero, which can only delay
// a firing).
func NewThreshold(cluster string, t *config.Trigger, aggregates map[string]string, st store.TriggerState) *Threshold {
	conds := t.Conditions()
	th := &Threshold{
		Cluster: cluster, Trigger: t.Name, Conditions: conds,
		For: t.For.D(), Cooldown: t.Cooldown.D(),
		streaks: make([]time.Time, len(conds)), last: make([]float64, len(conds)),
		aggregate:     make([]string, len(conds)),
		cooldownUntil: st.CooldownUntil, lastFired: st.LastFiredAt, firings: st.Firings,
	}
	for i, c := range conds {
		th.aggregate[i] = aggregates[c.Counter]
	}
	return th
}

// Observe feeds the aggregate sample s of counter to the conditions that watch it.
func (th *Threshold) Observe(counter string, s store.Sample) {
	for i, c := range th.Conditions {
		if c.Counter != counter {
			continue
		}
		th.last[i] = s.Value
		switch {
		case !s.OK() || !judgeable(c, th.aggregate[i], s) || !c.Past(s.Value) || s.At.Before(th.cooldownUntil):
			th.streaks[i] = time.Time{}
		case th.streaks[i].IsZero():
			th.streaks[i] = s.At
		}
	}
}

// judgeable reports whether aggregate sample s can decide condition c, whose
// counter aggregates with agg. A complete aggregate always can. One that
// misses nodes is a bound: the missing nodes can only raise a max or a sum
// (of non-negative readings) and only lower a min, so a partial max or sum
// decides "above" and a partial min decides "below". A partial average is
// an estimate: trusted for "above" (scaling out on it is safe), never for
// "below" (the nodes that do not answer may be the busiest).
func judgeable(c config.Condition, agg string, s store.Sample) bool {
	if s.Expected == 0 || s.Reporting >= s.Expected {
		return true
	}
	if c.Above != nil {
		return agg != config.AggMin
	}
	return agg == config.AggMin
}

// Due reports whether the trigger should fire at now and, if so, why.
func (th *Threshold) Due(now time.Time) (bool, string) {
	if now.Before(th.cooldownUntil) {
		return false, ""
	}
	for i, c := range th.Conditions {
		since := th.streaks[i]
		if since.IsZero() || now.Sub(since) < th.For {
			continue
		}
		return true, strings.TrimSpace(fmt.Sprintf("trigger %s: %s %s %s %s %s for %s", th.Trigger,
			th.aggregate[i], c.Counter, num(th.last[i]), op(c), num(threshold(c)), now.Sub(since).Round(time.Second)))
	}
	return false, ""
}

// Fired records a firing at now: the cooldown starts and every streak ends.
func (th *Threshold) Fired(now time.Time) {
	th.lastFired = now
	th.cooldownUntil = now.Add(th.Cooldown)
	th.firings++
	for i := range th.streaks {
		th.streaks[i] = time.Time{}
	}
}

// State is the trigger's state for the store and the API.
func (th *Threshold) State() store.TriggerState {
	st := store.TriggerState{
		Cluster: th.Cluster, Trigger: th.Trigger,
		LastFiredAt: th.lastFired, CooldownUntil: th.cooldownUntil, Firings: th.firings,
	}
	for i, s := range th.streaks {
		if !s.IsZero() && (st.PastSince.IsZero() || s.Before(st.PastSince)) {
			st.PastSince = s
			st.LastValue = th.last[i]
		}
	}
	if st.PastSince.IsZero() && len(th.last) > 0 {
		st.LastValue = th.last[0]
	}
	return st
}

// num formats a reading for people: at most two decimals, no trailing zeros.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

func op(c config.Condition) string {
	if c.Above != nil {
		return ">"
	}
	return "<"
}

func threshold(c config.Condition) float64 {
	if c.Above != nil {
		return *c.Above
	}
	return *c.Below
}
