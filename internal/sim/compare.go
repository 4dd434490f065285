package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/policy"
	"github.com/goscaler/goscaler/internal/policy/baseline"
)

// Setup is a cluster's configuration, a trace and a capacity model to
// simulate.
type Setup struct {
	Cluster *config.Cluster
	Trace   *Trace
	Model   Model
	// Counter is the counter the trace feeds (default: the counter of the
	// cluster's first policy that reads one).
	Counter string
	// Compare adds the reference baselines (HPA, AWS) and, with Predictive,
	// the cluster's policies plus a predictive policy when they have none.
	Compare    bool
	Predictive bool
	// BaselineTarget is the baselines' target per node (default: the target
	// of the cluster's target_tracking policy on Counter).
	BaselineTarget float64
	// MatchNodeHours also runs each baseline with the target that makes it
	// use as many node-hours as the cluster's policies (at most).
	MatchNodeHours bool
	Options        Options
}

// Report is the outcome of a simulation: the cluster's policies first, the
// comparisons, then the oracle.
type Report struct {
	Cluster string
	Trace   *Trace
	Model   Model
	Feed    Feed
	Results []*Result
	Oracle  *Result
	// Notes say what the reader must know (counters the trace does not feed, …).
	Notes []string
}

// Policies returns the result of the cluster's own policies.
func (r *Report) Policies() *Result { return r.Results[0] }

// FeedOf returns how the trace reaches the policies of cl as counter name
// ("" for the counter of the first policy that reads one).
func FeedOf(cl *config.Cluster, name string) (Feed, error) {
	if name == "" {
		for _, p := range cl.Policies {
			if p != nil && p.Counter() != "" {
				name = p.Counter()
				break
			}
		}
	}
	if name == "" {
		return Feed{}, fmt.Errorf("cluster %q has no policy that reads a counter: add a target_tracking, step or predictive policy, or name the counter the trace feeds with --counter", cl.Name)
	}
	k := cl.Counter(name)
	if k == nil {
		return Feed{}, fmt.Errorf("cluster %q has no counter %q", cl.Name, name)
	}
	f := Feed{Counter: name, PerNode: config.PerNodeDefault(k), Aggregate: k.Aggregate}
	if k.Scope != "node" {
		f.Aggregate = ""
	}
	return f, nil
}

// Simulate runs the setup: the cluster's policies, and with Compare the
// baselines, then the oracle.
func Simulate(s Setup) (*Report, error) {
	cl := s.Cluster
	if !cl.HasPolicies() {
		return nil, fmt.Errorf("cluster %q has no policies: add policies: to simulate", cl.Name)
	}
	feed, err := FeedOf(cl, s.Counter)
	if err != nil {
		return nil, err
	}
	rep := &Report{Cluster: cl.Name, Trace: s.Trace, Model: s.Model, Feed: feed}
	for _, p := range cl.Policies {
		if p != nil && p.Counter() != "" && p.Counter() != feed.Counter {
			rep.Notes = append(rep.Notes, fmt.Sprintf("policy %s reads counter %s, which the trace does not feed: it sees no data and holds the size", p.Name, p.Counter()))
		}
	}
	if _, err := policy.Build(cl, policy.Resume{}); err != nil {
		return nil, err
	}
	own := Strategy{Name: "policies of " + cl.Name, Min: cl.Min, Max: cl.Max, New: func() *policy.Scaler {
		sc, _ := policy.Build(cl, policy.Resume{})
		return sc
	}}
	res, err := Run(s.Trace, own, s.Model, feed, s.Options)
	if err != nil {
		return nil, err
	}
	rep.Results = append(rep.Results, res)

	if s.Compare {
		target, perNode, err := baselineTarget(cl, feed, s.BaselineTarget)
		if err != nil {
			return nil, err
		}
		if s.Predictive && !hasPredictive(cl) {
			pred := &config.Predictive{Counter: feed.Counter, Target: target, PerNode: &perNode,
				HistoryDays: config.DefaultHistoryDays, Confidence: config.DefaultConfidence}
			with := Strategy{Name: "policies of " + cl.Name + " + predictive", Min: cl.Min, Max: cl.Max, New: func() *policy.Scaler {
				sc, _ := policy.Build(cl, policy.Resume{})
				sc.Policies = append(sc.Policies, policy.NewPredictive("predictive", pred))
				return sc
			}}
			r, err := Run(s.Trace, with, s.Model, feed, s.Options)
			if err != nil {
				return nil, err
			}
			rep.Results = append(rep.Results, r)
		}
		for _, b := range baselines(s.Model) {
			r, err := Run(s.Trace, b.strategy(cl, feed, target, perNode), s.Model, feed, s.Options)
			if err != nil {
				return nil, err
			}
			rep.Results = append(rep.Results, r)
		}
		if s.MatchNodeHours {
			for _, b := range baselines(s.Model) {
				r, err := matchNodeHours(s, b, cl, feed, target, perNode, res.NodeHours)
				if err != nil {
					return nil, err
				}
				rep.Results = append(rep.Results, r)
			}
		}
	}
	rep.Oracle = Oracle(s.Trace, s.Model, cl.Min, cl.Max, s.Options.KeepSteps)
	return rep, nil
}

func hasPredictive(cl *config.Cluster) bool {
	for _, p := range cl.Policies {
		if p != nil && p.Predictive != nil {
			return true
		}
	}
	return false
}

// baselineTarget returns the target per node the baselines track.
func baselineTarget(cl *config.Cluster, feed Feed, target float64) (float64, bool, error) {
	if target > 0 {
		return target, feed.PerNode, nil
	}
	for _, p := range cl.Policies {
		if p != nil && p.TargetTracking != nil && p.TargetTracking.Counter == feed.Counter {
			per := feed.PerNode
			if p.TargetTracking.PerNode != nil {
				per = *p.TargetTracking.PerNode
			}
			return p.TargetTracking.Target, per, nil
		}
	}
	return 0, false, errors.New("the baselines need a target: add a target_tracking policy on the counter the trace feeds, or give --baseline-target")
}

// kind is a baseline algorithm.
type kind struct {
	name     string
	settings policy.Settings
	build    func(name string, t baseline.Target) policy.Policy
}

func baselines(m Model) []kind {
	return []kind{
		{"hpa", baseline.HPASettings(), func(n string, t baseline.Target) policy.Policy { return baseline.NewHPA(n, t) }},
		{"aws", baseline.AWSSettings(m.BootTime), func(n string, t baseline.Target) policy.Policy { return baseline.NewAWS(n, t) }},
	}
}

func (k kind) label() string {
	if k.name == "hpa" {
		return "Kubernetes HPA"
	}
	return "AWS target tracking"
}

func (k kind) strategy(cl *config.Cluster, feed Feed, target float64, perNode bool) Strategy {
	t := baseline.Target{Counter: feed.Counter, Target: target, PerNode: perNode}
	return Strategy{Name: fmt.Sprintf("%s (target %s)", k.label(), fmtFloat(target)), Min: cl.Min, Max: cl.Max,
		New: func() *policy.Scaler {
			return policy.NewScaler(k.settings, []policy.Policy{k.build(k.name, t)}, policy.Memory{})
		}}
}

// matchNodeHours finds, by bisection, the target that makes baseline k use
// the most node-hours not above goal (a higher target means fewer nodes),
// and returns its run.
func matchNodeHours(s Setup, k kind, cl *config.Cluster, feed Feed, target float64, perNode bool, goal float64) (*Result, error) {
	nodeHours := func(t float64) (float64, error) {
		r, err := Run(s.Trace, k.strategy(cl, feed, t, perNode), s.Model, feed, Options{})
		if err != nil {
			return 0, err
		}
		return r.NodeHours, nil
	}
	// lo uses more node-hours than goal, hi not more.
	lo, hi := target, target
	nh, err := nodeHours(target)
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		if i == 40 {
			return nil, fmt.Errorf("%s: no target uses %.1f node-hours", k.name, goal)
		}
		if nh <= goal {
			hi, lo = lo, lo/2
			nh, err = nodeHours(lo)
			if err == nil && nh > goal {
				break
			}
		} else {
			lo, hi = hi, hi*2
			nh, err = nodeHours(hi)
			if err == nil && nh <= goal {
				break
			}
		}
		if err != nil {
			return nil, err
		}
	}
	for hi-lo > target*1e-4 {
		mid := (lo + hi) / 2
		nh, err := nodeHours(mid)
		if err != nil {
			return nil, err
		}
		if nh <= goal {
			hi = mid
		} else {
			lo = mid
		}
	}
	r, err := Run(s.Trace, k.strategy(cl, feed, hi, perNode), s.Model, feed, s.Options)
	if err != nil {
		return nil, err
	}
	r.Name = fmt.Sprintf("%s at the same node-hours (target %s)", k.label(), fmtFloat(hi))
	return r, nil
}

func fmtFloat(v float64) string {
	return fmt.Sprint(math.Round(v*100) / 100)
}

// Span returns the time the run covers, for rates.
func (r *Report) Span() time.Duration { return r.Trace.Span() }
