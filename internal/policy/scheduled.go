package policy

import (
	"fmt"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

// ScheduleCatchUp is how late a scheduled desired size may still be set: a
// server that was down at the firing sets it when it is back within this
// time, and not after.
const ScheduleCatchUp = 15 * time.Minute

// Scheduled sets min, max or desired on a cron schedule in a time zone (AWS
// scheduled actions, Nomad's schedule blocks).
//
// Semantics: at each firing of the schedule,
//   - min and max take effect: for Duration after the firing when it is
//     set (a window; windows in effect override the other scheduled bounds),
//     otherwise until another scheduled policy setting the same key fires
//     later (the latest firing wins). Scheduled bounds stay within the
//     configured ones;
//   - desired is set once, as is (clamped to the bounds), bypassing the
//     other policies' vote, the cooldowns and the stabilization window; the
//     other policies move it afterwards. A firing missed by more than
//     ScheduleCatchUp is skipped, and a new policy does not fire for a
//     firing before it started.
type Scheduled struct {
	name string
	cfg  config.Scheduled

	prev, next time.Time // the latest firing ≤ the last now, the first after it
	applied    time.Time // the latest firing whose desired size was handled
	started    bool
}

// NewScheduled builds the policy name from its validated configuration;
// applied is the latest firing whose desired size was already set (zero:
// none, and firings before the first call are not set).
func NewScheduled(name string, c *config.Scheduled, applied time.Time) *Scheduled {
	return &Scheduled{name: name, cfg: *c, applied: applied, started: !applied.IsZero()}
}

// Name is the policy's name.
func (p *Scheduled) Name() string { return p.name }

// Applied is the latest firing whose desired size was handled, to persist.
func (p *Scheduled) Applied() time.Time { return p.applied }

// Recommend implements Policy.
func (p *Scheduled) Recommend(s State) (Recommendation, bool) {
	fire := p.latest(s.Now)
	first := !p.started
	p.started = true
	if fire.IsZero() {
		return Recommendation{}, false
	}
	c := p.cfg
	r := Recommendation{Policy: p.name}
	at := fire.In(c.Location).Format("Mon 15:04 MST")
	ok := false
	if c.Min != nil || c.Max != nil {
		b := &Bounds{Min: -1, Max: -1, Since: fire}
		if c.Min != nil {
			b.Min = *c.Min
		}
		if c.Max != nil {
			b.Max = *c.Max
		}
		switch {
		case c.Duration == 0:
			r.Bounds, ok = b, true
		case s.Now.Before(fire.Add(c.Duration.D())):
			b.Window = true
			r.Bounds, ok = b, true
		}
		r.Reason = fmt.Sprintf("bounds since %s", at)
	}
	if c.Desired != nil && fire.After(p.applied) {
		p.applied = fire
		if !first && s.Now.Sub(fire) <= ScheduleCatchUp {
			r.Sized, r.Exact, r.Desired = true, true, *c.Desired
			r.Reason = fmt.Sprintf("desired %d at %s", *c.Desired, at)
			ok = true
		}
	}
	return r, ok
}

// latest returns the latest firing at or before now (zero if none in the
// last five years). Calls must come with non-decreasing now.
func (p *Scheduled) latest(now time.Time) time.Time {
	if p.cfg.Cron == nil {
		return time.Time{}
	}
	if !p.next.IsZero() {
		for !p.next.IsZero() && !p.next.After(now) {
			p.prev, p.next = p.next, p.cfg.Cron.Next(p.next)
		}
		return p.prev
	}
	for _, back := range []time.Duration{time.Hour, 24 * time.Hour, 8 * 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 366 * 24 * time.Hour} {
		t := p.cfg.Cron.Next(now.Add(-back))
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := p.cfg.Cron.Next(t)
			if n.IsZero() || n.After(now) {
				p.prev, p.next = t, n
				return t
			}
			t = n
		}
	}
	p.next = p.cfg.Cron.Next(now)
	return time.Time{}
}
