package policy

import (
	"fmt"

	"github.com/goscaler/goscaler/internal/config"
)

// TargetTracking keeps a counter's aggregate per node near Target, like a
// thermostat (AWS target tracking, the HPA's ratio).
//
// Arithmetic: load is the aggregate times the serving nodes when the
// aggregate is per node (an average over the nodes that report, warming ones
// left out), or the aggregate itself when it is a cluster total. Spread over
// the desired nodes (booting ones included, so that repeated readings during
// a boot do not pile up launches), the load per node is compared with
// Target: within Target × (1 ± Tolerance) the policy holds the size;
// outside it asks for ceil(load / Target) nodes. Rounding up both ways is
// conservative and cannot oscillate: after scaling to ceil(load / Target)
// the load per node is at most Target, inside the band for a scale-out, and
// a scale-in needs the load to fall by at least a node's worth. A missing
// reading holds the size.
type TargetTracking struct {
	name string
	cfg  config.TargetTracking
	tol  float64
	per  bool
}

// NewTargetTracking builds the policy name from its validated configuration.
func NewTargetTracking(name string, c *config.TargetTracking) *TargetTracking {
	p := &TargetTracking{name: name, cfg: *c, tol: config.DefaultTolerance, per: true}
	if c.Tolerance != nil {
		p.tol = *c.Tolerance
	}
	if c.PerNode != nil {
		p.per = *c.PerNode
	}
	return p
}

// Name is the policy's name.
func (p *TargetTracking) Name() string { return p.name }

// Recommend implements Policy.
func (p *TargetTracking) Recommend(s State) (Recommendation, bool) {
	r := s.Readings[p.cfg.Counter]
	hold := func(explain func() string) (Recommendation, bool) {
		if p.cfg.DisableScaleIn {
			return Recommendation{}, false
		}
		return wantf(p.name, s.Desired, explain), true
	}
	if why := r.Missing(s.Now); why != "" {
		if p.cfg.DisableScaleIn {
			return Recommendation{}, false
		}
		return holding(p.name, s, func() string {
			return fmt.Sprintf("no data from counter %s (%s): holding, missing data never scales in", p.cfg.Counter, why)
		}), true
	}
	load := r.Value
	if p.per {
		if s.Counted() <= 0 {
			if p.cfg.DisableScaleIn {
				return Recommendation{}, false
			}
			return holding(p.name, s, func() string { return fmt.Sprintf("no node in service reports %s: holding", p.cfg.Counter) }), true
		}
		load = r.Value * float64(r.Serving(s))
	}
	target := p.cfg.Target
	n := max(ceilTol(load/target), 0)
	// explain writes "avg rps 140 > target 100 (±10%)".
	explain := func(op string) func() string {
		return func() string {
			what := describe(r.Aggregate, p.cfg.Counter)
			band := fmt.Sprintf("target %s (±%s)", num(target), pct(p.tol))
			if s.Desired <= 0 {
				return fmt.Sprintf("%s %s with no node %s %s", what, num(r.Value), op, band)
			}
			shown := num(r.Value)
			if !p.per || s.Desired != s.InService {
				shown = fmt.Sprintf("%s (%s per node over %d)", num(r.Value), num(load/float64(s.Desired)), s.Desired)
			}
			return fmt.Sprintf("%s %s %s %s", what, shown, op, band)
		}
	}
	if s.Desired <= 0 {
		if n > 0 {
			return wantf(p.name, n, explain(">")), true
		}
		return hold(explain("within"))
	}
	switch ratio := load / float64(s.Desired) / target; {
	case ratio > 1+p.tol && n > s.Desired:
		return wantf(p.name, n, explain(">")), true
	case ratio < 1-p.tol && n < s.Desired:
		if p.cfg.DisableScaleIn {
			return Recommendation{}, false
		}
		return wantf(p.name, n, explain("<")), true
	default:
		return hold(explain("within"))
	}
}

// describe names an aggregate for reasons: "avg rps", "queue".
func describe(aggregate, counter string) string {
	if aggregate == "" {
		return counter
	}
	return aggregate + " " + counter
}
