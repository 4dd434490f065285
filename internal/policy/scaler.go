package policy

import (
	"fmt"
	"time"
)

// Settings are a cluster's policy settings (see config.ClusterPolicies).
type Settings struct {
	// ScaleOutCooldown is the least time between two scale-outs.
	ScaleOutCooldown time.Duration
	// ScaleInCooldown is the least time from any scaling to a scale-in.
	ScaleInCooldown time.Duration
	// Warmup is how long a node just in service is left out of the
	// aggregates; when it is set, scale-in also waits until no node boots or
	// warms up.
	Warmup time.Duration
	// ScaleInStabilization is the window whose highest recommendation a
	// scale-in may not go below.
	ScaleInStabilization time.Duration
}

// Memory is what a Scaler must remember across restarts: when it last
// scaled each way.
type Memory struct {
	LastScaleOut, LastScaleIn time.Time
	ScaleOuts, ScaleIns       int64
}

// lastScale is the time of the latest scaling either way.
func (m Memory) lastScale() time.Time {
	if m.LastScaleIn.After(m.LastScaleOut) {
		return m.LastScaleIn
	}
	return m.LastScaleOut
}

// Decision is what a Scaler decided at At: To == From means no change.
type Decision struct {
	At       time.Time
	From, To int
	// Cause says why the size changes, for the activity history
	// ("policy rps: avg rps 140 > target 100 (±10%) → desired 4 → 6").
	Cause string
	// Policy names the policy behind the change ("" for a configured bound).
	Policy string
	// blocked says why a change the policies want does not happen now.
	blocked func() string
	// Min and Max are the bounds in effect (scheduled ones included).
	Min, Max int
	// Recommendations are every policy's answer.
	Recommendations []Recommendation
}

// Blocked says why a change the policies want does not happen now
// (cooldown, warm-up, stabilization window), or "".
func (d Decision) Blocked() string {
	if d.blocked == nil {
		return ""
	}
	return d.blocked()
}

// Kind is "scale_out", "scale_in" or "" (no change): the activity kind.
func (d Decision) Kind() string {
	switch {
	case d.To > d.From:
		return "scale_out"
	case d.To < d.From:
		return "scale_in"
	default:
		return ""
	}
}

// Scaler combines a cluster's policies: the size is the highest
// recommendation (out if any policy wants more, in only if every policy with
// an opinion wants less), never below the highest recommendation of the
// stabilization window when scaling in, gated by the cooldowns and the
// warm-up, and kept within the bounds (scheduled ones included). A scheduled
// desired size is set as is.
//
// A Scaler is not safe for concurrent use.
type Scaler struct {
	Settings Settings
	Policies []Policy

	mem    Memory
	window []point
}

type point struct {
	at time.Time
	n  int
}

// NewScaler returns a Scaler that resumes from mem.
func NewScaler(s Settings, policies []Policy, mem Memory) *Scaler {
	return &Scaler{Settings: s, Policies: policies, mem: mem}
}

// Memory returns what must survive a restart.
func (s *Scaler) Memory() Memory { return s.mem }

// Hold records n as a recommendation at now in the stabilization window: a
// restarted server holds the size it found for one window.
func (s *Scaler) Hold(now time.Time, n int) { s.record(now, n) }

// Applied records that d was carried out: its time starts the cooldowns.
func (s *Scaler) Applied(d Decision) {
	switch {
	case d.To > d.From:
		s.mem.LastScaleOut = d.At
		s.mem.ScaleOuts++
	case d.To < d.From:
		s.mem.LastScaleIn = d.At
		s.mem.ScaleIns++
	}
}

// Evaluate asks every policy and decides at st.Now. It does not count the
// decision as carried out: call Applied when it is.
func (s *Scaler) Evaluate(st State) Decision {
	now, cur := st.Now, st.Desired
	d := Decision{At: now, From: cur, To: cur}
	for _, p := range s.Policies {
		if r, ok := p.Recommend(st); ok {
			d.Recommendations = append(d.Recommendations, r)
		}
	}
	b := bounds(st, d.Recommendations)
	lo, hi := b.lo, b.hi
	d.Min, d.Max = lo, hi

	// A scheduled desired size is a command, not a vote.
	var exact, drv *Recommendation
	for i := range d.Recommendations {
		r := &d.Recommendations[i]
		switch {
		case !r.Sized:
		case r.Exact:
			if exact == nil || r.Desired > exact.Desired {
				exact = r
			}
		case drv == nil || r.Desired > drv.Desired || r.Desired == drv.Desired && drv.Hold:
			drv = r
		}
	}
	if exact != nil {
		d.To = clamp(exact.Desired, lo, hi)
		s.record(now, d.To)
		if d.To != cur {
			d.Cause = fmt.Sprintf("schedule %s: %s → desired %d → %d", exact.Policy, exact.Why(), cur, d.To)
			d.Policy = exact.Policy
		}
		return d
	}

	wanted := cur
	if drv != nil {
		wanted = drv.Desired
	}
	if drv == nil || !drv.Hold {
		s.record(now, wanted)
	}
	target, held := wanted, -1
	if wanted < cur && s.Settings.ScaleInStabilization > 0 {
		if h, ago := s.windowMax(now); h > wanted {
			if h >= cur {
				d.blocked = func() string {
					return fmt.Sprintf("scale-in to %d held by the stabilization window: %d was recommended %s ago (window %s)",
						wanted, h, ago.Round(time.Second), s.Settings.ScaleInStabilization)
				}
				target = cur
			} else {
				target, held = h, h
			}
		}
	}
	switch {
	case target > cur:
		if until := s.mem.LastScaleOut.Add(s.Settings.ScaleOutCooldown); !s.mem.LastScaleOut.IsZero() && now.Before(until) {
			t := target
			d.blocked = func() string {
				return fmt.Sprintf("scale-out to %d waits for the scale-out cooldown (%s left)", t, until.Sub(now).Round(time.Second))
			}
			target = cur
		}
	case target < cur:
		last := s.mem.lastScale()
		t := target
		if until := last.Add(s.Settings.ScaleInCooldown); !last.IsZero() && now.Before(until) {
			d.blocked = func() string {
				return fmt.Sprintf("scale-in to %d waits for the scale-in cooldown (%s left)", t, until.Sub(now).Round(time.Second))
			}
			target = cur
		} else if n := st.Booting + st.Warming; n > 0 && s.Settings.Warmup > 0 {
			d.blocked = func() string { return fmt.Sprintf("scale-in to %d waits: %d node(s) booting or warming up", t, n) }
			target = cur
		}
	}
	d.To = clamp(target, lo, hi)
	if d.To == cur {
		return d
	}
	// Only now is the cause written.
	why := ""
	if drv != nil {
		why = fmt.Sprintf("policy %s: %s", drv.Policy, drv.Why())
		d.Policy = drv.Policy
	}
	if held >= 0 {
		why += fmt.Sprintf("; the %s stabilization window holds %d", s.Settings.ScaleInStabilization, held)
	}
	switch {
	case d.To > target && d.To > cur:
		why, d.Policy = b.loWhy(), b.loBy // a min above the size
	case d.To > target:
		why += fmt.Sprintf(" (limited by %s)", b.loWhy())
	case d.To < target && d.To < cur:
		why, d.Policy = b.hiWhy(), b.hiBy // a max below the size
	case d.To < target:
		why += fmt.Sprintf(" (capped by %s)", b.hiWhy())
	}
	d.Cause = fmt.Sprintf("%s → desired %d → %d", why, cur, d.To)
	return d
}

// record adds a recommendation to the stabilization window and forgets the
// ones that left it.
func (s *Scaler) record(now time.Time, n int) {
	s.window = append(s.window, point{at: now, n: n})
	cut := 0
	for cut < len(s.window)-1 && now.Sub(s.window[cut].at) > s.Settings.ScaleInStabilization {
		cut++
	}
	if cut > 0 {
		s.window = append(s.window[:0], s.window[cut:]...)
	}
}

// windowMax returns the highest recommendation in the window and its age.
func (s *Scaler) windowMax(now time.Time) (int, time.Duration) {
	best, at := -1, now
	for _, p := range s.window {
		if p.n >= best {
			best, at = p.n, p.at
		}
	}
	return best, now.Sub(at)
}

// effective are the bounds in effect and the scheduled policies that set
// them ("" for a configured bound).
type effective struct {
	lo, hi     int
	loBy, hiBy string
}

func (e effective) loWhy() string {
	if e.loBy != "" {
		return fmt.Sprintf("schedule %s: min %d", e.loBy, e.lo)
	}
	return fmt.Sprintf("min %d", e.lo)
}

func (e effective) hiWhy() string {
	if e.hiBy != "" {
		return fmt.Sprintf("schedule %s: max %d", e.hiBy, e.hi)
	}
	return fmt.Sprintf("max %d", e.hi)
}

// bounds returns the bounds in effect: the configured ones, replaced by the
// latest firing of a scheduled policy without a window, and by the scheduled
// windows in effect (the highest min and the lowest max).
func bounds(st State, recs []Recommendation) effective {
	e := effective{lo: st.Min, hi: st.Max}
	var loSince, hiSince time.Time
	winLo, winHi := -1, -1
	var winLoBy, winHiBy string
	for _, r := range recs {
		b := r.Bounds
		if b == nil {
			continue
		}
		if b.Window {
			if b.Min >= 0 && b.Min > winLo {
				winLo, winLoBy = b.Min, r.Policy
			}
			if b.Max >= 0 && (winHi < 0 || b.Max < winHi) {
				winHi, winHiBy = b.Max, r.Policy
			}
			continue
		}
		if b.Min >= 0 && !b.Since.Before(loSince) {
			e.lo, loSince, e.loBy = b.Min, b.Since, r.Policy
		}
		if b.Max >= 0 && !b.Since.Before(hiSince) {
			e.hi, hiSince, e.hiBy = b.Max, b.Since, r.Policy
		}
	}
	if winLo >= 0 {
		e.lo, e.loBy = winLo, winLoBy
	}
	if winHi >= 0 {
		e.hi, e.hiBy = winHi, winHiBy
	}
	// Scheduled bounds stay within the configured ones.
	e.lo, e.hi = clamp(e.lo, st.Min, st.Max), clamp(e.hi, st.Min, st.Max)
	return e
}
