// Package sim replays a request-rate trace through a cluster's scaling
// policies — the very policy.Scaler the server runs — on an injected clock,
// with a capacity model (requests per second one node serves, boot time,
// measurement noise), and reports what they would have cost and missed:
// node-hours, under-provisioned minutes, scaling actions. It also computes
// the oracle: the fewest node-hours with no under-provisioned minute, given
// the boot time, knowing the future.
//
// Model, per step of the trace:
//   - a node serves Model.RPSPerNode once in service, BootTime after its
//     launch; it costs node-hours from launch to removal (removal is
//     immediate, booting nodes go first);
//   - a step is under-provisioned when its demand is above the capacity of
//     the nodes in service during it;
//   - at the end of the step the policies see the counter the trace feeds:
//     the demand per node in service (a node counter aggregated by avg, min
//     or max) or the demand itself (sum, cluster counter), times
//     1 + Noise × N(0, 1); a step without data, or without a node in service
//     for a per-node counter, is a failed reading;
//   - the Scaler decides at that instant; nodes launched then are in service
//     BootTime later.
package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/goscaler/goscaler/internal/policy"
)

// Model is the capacity model.
type Model struct {
	// RPSPerNode is the demand one node in service serves.
	RPSPerNode float64
	// BootTime is the time from a launch to service.
	BootTime time.Duration
	// Noise is the relative standard deviation of the measurement (0.05: 5 %).
	Noise float64
	// Seed seeds the noise.
	Seed uint64
}

// Feed says how the trace reaches the policies: as counter Counter, per node
// or as a total.
type Feed struct {
	Counter   string
	PerNode   bool
	Aggregate string
	// Interval is the counter's interval as policies see it (default: the step).
	Interval time.Duration
}

// Strategy is a set of policies to simulate: New returns a fresh Scaler
// (policies keep history, so each run needs its own).
type Strategy struct {
	Name string
	New  func() *policy.Scaler
	// Min and Max are the cluster's bounds.
	Min, Max int
	// Initial is the size at the start (default: what the first step needs,
	// within Min..Max).
	Initial int
}

// StepRecord is one step of a run.
type StepRecord struct {
	At        time.Time
	Demand    float64
	Missing   bool
	Nodes     int // nodes that exist (booting ones included)
	InService int
	Capacity  float64
	Under     bool
	Desired   int // after the decision at the end of the step
}

// Action is one scaling decision of a run.
type Action struct {
	At       time.Time
	From, To int
	Cause    string
}

// Result is what a run cost and missed.
type Result struct {
	Name string
	// NodeHours counts every node from launch to removal.
	NodeHours float64
	// UnderMinutes is the time with demand above the serving capacity.
	UnderMinutes float64
	// ScaleOuts and ScaleIns count the decisions that changed the size.
	ScaleOuts, ScaleIns int
	PeakNodes           int
	// Steps is the run, step by step (nil when not kept).
	Steps   []StepRecord
	Actions []Action
	// Elapsed is the wall time the run took.
	Elapsed time.Duration
}

// ScalingActions is ScaleOuts + ScaleIns.
func (r *Result) ScalingActions() int { return r.ScaleOuts + r.ScaleIns }

// Options tunes a run.
type Options struct {
	// KeepSteps keeps every step in Result.Steps (for CSV and HTML output).
	KeepSteps bool
	// KeepActions keeps every decision in Result.Actions.
	KeepActions bool
}

type node struct {
	readyAt time.Time
}

// Run replays trace through strategy s under model m.
func Run(trace *Trace, s Strategy, m Model, feed Feed, opts Options) (*Result, error) {
	if m.RPSPerNode <= 0 {
		return nil, fmt.Errorf("requests per second per node is %g: it must be above 0", m.RPSPerNode)
	}
	if len(trace.Points) == 0 {
		return nil, fmt.Errorf("the trace is empty")
	}
	start := time.Now()
	sc := s.New()
	step := trace.Step
	interval := feed.Interval
	if interval == 0 {
		interval = step
	}
	rng := rand.New(rand.NewPCG(m.Seed, 0x5eed)) //nolint:gosec // simulated measurement noise, seeded to be reproducible
	warmup := sc.Settings.Warmup
	res := &Result{Name: s.Name}
	if opts.KeepSteps {
		res.Steps = make([]StepRecord, 0, len(trace.Points))
	}

	first := trace.Points[0]
	initial := s.Initial
	if initial == 0 {
		initial = needed(first.Value, m.RPSPerNode)
	}
	initial = clampInt(initial, s.Min, s.Max)
	nodes := make([]node, initial)
	for i := range nodes {
		nodes[i].readyAt = first.At.Add(-m.BootTime)
	}
	desired := initial
	readings := map[string]policy.Reading{}
	var nodeTime time.Duration
	var underSteps int
	for _, p := range trace.Points {
		t := p.At
		inService := 0
		for _, n := range nodes {
			if !n.readyAt.After(t) {
				inService++
			}
		}
		capacity := float64(inService) * m.RPSPerNode
		under := !p.Missing && p.Value > capacity*(1+1e-9)
		if under {
			underSteps++
		}
		count := len(nodes)
		nodeTime += time.Duration(count) * step
		res.PeakNodes = max(res.PeakNodes, count)

		// The end of the step: the policies read and decide.
		now := t.Add(step)
		r := policy.Reading{At: now, Interval: interval, Aggregate: feed.Aggregate, Nodes: inService}
		switch {
		case p.Missing:
			r.Err = "no data in the trace"
		case feed.PerNode && inService == 0:
			r.Err = "no node in service to read"
		case feed.PerNode:
			r.Value = noisy(p.Value/float64(inService), m.Noise, rng)
		default:
			r.Value = noisy(p.Value, m.Noise, rng)
		}
		readings[feed.Counter] = r
		warming := 0
		for _, n := range nodes {
			if !n.readyAt.After(t) && warmup > 0 && now.Sub(n.readyAt) < warmup {
				warming++
			}
		}
		st := policy.State{Now: now, Min: s.Min, Max: s.Max, Desired: desired,
			InService: inService, Warming: warming, Booting: len(nodes) - inService,
			BootTime: m.BootTime, Readings: readings}
		d := sc.Evaluate(st)
		if d.To != d.From {
			sc.Applied(d)
			if d.To > d.From {
				res.ScaleOuts++
			} else {
				res.ScaleIns++
			}
			if opts.KeepActions {
				res.Actions = append(res.Actions, Action{At: now, From: d.From, To: d.To, Cause: d.Cause})
			}
			desired = d.To
			nodes = resize(nodes, desired, now.Add(m.BootTime))
		}
		if opts.KeepSteps {
			res.Steps = append(res.Steps, StepRecord{At: t, Demand: p.Value, Missing: p.Missing, Nodes: count,
				InService: inService, Capacity: capacity, Under: under, Desired: desired})
		}
	}
	res.NodeHours = nodeTime.Hours()
	res.UnderMinutes = float64(underSteps) * step.Minutes()
	res.Elapsed = time.Since(start)
	return res, nil
}

// resize launches nodes ready at readyAt, or removes nodes (the ones not
// yet in service first, the newest first), to reach n.
func resize(nodes []node, n int, readyAt time.Time) []node {
	for len(nodes) < n {
		nodes = append(nodes, node{readyAt: readyAt})
	}
	if len(nodes) > n {
		// Nodes are in launch order: the newest, booting ones are last.
		nodes = nodes[:n]
	}
	return nodes
}

// needed is the fewest nodes that serve demand.
func needed(demand, perNode float64) int {
	n := demand / perNode
	r := math.Round(n)
	if math.Abs(n-r) < 1e-9 {
		return int(r)
	}
	return int(math.Ceil(n))
}

func noisy(v, noise float64, rng *rand.Rand) float64 {
	if noise <= 0 {
		return v
	}
	return max(v*(1+noise*rng.NormFloat64()), 0)
}

func clampInt(v, lo, hi int) int {
	return max(min(v, hi), lo)
}
