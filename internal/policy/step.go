package policy

import (
	"fmt"
	"math"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

// Step changes the size by steps keyed on how far the counter is past its
// threshold (AWS step scaling), once the counter has been past it on every
// sample for For.
//
// Arithmetic: distance = value − threshold (above) or threshold − value
// (below); the step whose [from, to) holds the distance applies. A change
// or percent step is applied to the nodes in service, not to the desired
// size: while the nodes a step launched boot, the same breach asks for
// nothing more, and a deeper one only for the difference (booting nodes
// count toward the size). Percent rounds as AWS does — a result above 1 is
// rounded down, one in (0, 1) becomes 1, one in (−1, 0) becomes −1, one
// below −1 is rounded up — and is then raised to MinMagnitude. Exact sets
// the size. A missing reading ends the streak and holds the size.
type Step struct {
	name string
	cfg  config.StepScaling

	streak time.Time // first sample of the current run past the threshold
	seen   time.Time // the newest sample fed to the streak
}

// NewStep builds the policy name from its validated configuration.
func NewStep(name string, c *config.StepScaling) *Step {
	return &Step{name: name, cfg: *c}
}

// Name is the policy's name.
func (p *Step) Name() string { return p.name }

// Recommend implements Policy.
func (p *Step) Recommend(s State) (Recommendation, bool) {
	r := s.Readings[p.cfg.Counter]
	if why := r.Missing(s.Now); why != "" {
		p.streak = time.Time{}
		return holding(p.name, s, func() string {
			return fmt.Sprintf("no data from counter %s (%s): holding, missing data never scales in", p.cfg.Counter, why)
		}), true
	}
	th, above := p.cfg.Threshold()
	dist := r.Value - th
	if !above {
		dist = th - r.Value
	}
	if r.At.After(p.seen) {
		p.seen = r.At
		switch {
		case dist <= 0:
			p.streak = time.Time{}
		case p.streak.IsZero():
			p.streak = r.At
		}
	}
	if p.streak.IsZero() || s.Now.Sub(p.streak) < p.cfg.For.D() {
		return Recommendation{}, false
	}
	var step *config.StepAdjustment
	for _, st := range p.cfg.Steps {
		if dist >= st.From && (st.To == nil || dist < *st.To) {
			step = st
			break
		}
	}
	if step == nil {
		return Recommendation{}, false
	}
	base := s.InService
	var n, delta int
	switch p.cfg.Adjustment {
	case config.AdjustExact:
		n = step.Adjust
	case config.AdjustPercent:
		delta = percentChange(base, step.Adjust, p.cfg.MinMagnitude)
		n = base + delta
	default:
		n = base + step.Adjust
	}
	n = max(n, 0)
	if step.Adjust > 0 && p.cfg.Adjustment != config.AdjustExact && n < s.Desired {
		// Nodes already launched cover this step.
		n = s.Desired
	}
	held, value := s.Now.Sub(p.streak), r.Value
	return wantf(p.name, n, func() string {
		var how string
		switch p.cfg.Adjustment {
		case config.AdjustExact:
			how = fmt.Sprintf("size %d", step.Adjust)
		case config.AdjustPercent:
			how = fmt.Sprintf("%+d%% of %d in service = %+d", step.Adjust, base, delta)
		default:
			how = fmt.Sprintf("%+d to %d in service", step.Adjust, base)
		}
		op := ">"
		if !above {
			op = "<"
		}
		span := fmt.Sprintf("%s..", num(step.From))
		if step.To != nil {
			span += num(*step.To)
		}
		return fmt.Sprintf("%s %s %s %s by %s for %s (step %s: %s)", describe(r.Aggregate, p.cfg.Counter), num(value), op, num(th),
			num(math.Abs(dist)), held.Round(time.Second), span, how)
	}), true
}

// percentChange is pct % of base rounded as AWS does, at least minMag nodes.
func percentChange(base, pct, minMag int) int {
	v := float64(base) * float64(pct) / 100
	var d int
	switch {
	case v >= 1:
		d = int(math.Floor(v))
	case v > 0:
		d = 1
	case v <= -1:
		d = int(math.Ceil(v))
	case v < 0:
		d = -1
	}
	if d != 0 && abs(d) < minMag {
		d = minMag * sign(d)
	}
	if d == 0 && minMag > 0 && pct != 0 {
		d = minMag * sign(pct)
	}
	return d
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	if v < 0 {
		return -1
	}
	return 1
}
