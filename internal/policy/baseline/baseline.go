// Package baseline re-implements, as policy.Policy values, the scaling
// algorithms of the Kubernetes Horizontal Pod Autoscaler and of AWS EC2 Auto
// Scaling target tracking, from their public documentation, so that the
// simulator can compare a cluster's own policies with them on the same trace.
//
// Sources (see docs/policies.md):
//   - HPA: kubernetes/website, concepts/workloads/autoscaling/horizontal-pod-autoscale.md
//     (ratio formula, 10 % tolerance, missing pods, 300 s scale-down
//     stabilization, scale-up limited to max(100 %, 4 pods) per 15 s).
//   - AWS: amazon-ec2-auto-scaling-user-guide as-scaling-target-tracking.md
//     and ec2-auto-scaling-default-instance-warmup.md (conservative
//     rounding, warm-up, no scaling on missing data), and the managed alarms
//     observed in users' consoles: AlarmHigh "metric > target for 3
//     datapoints within 3 minutes", AlarmLow "metric < 0.9 × target for 15
//     datapoints within 15 minutes".
package baseline

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/goscaler/goscaler/internal/policy"
)

// Target is what both baselines track: a counter whose aggregate is per node
// (PerNode) or a cluster total, kept near Target per node.
type Target struct {
	Counter string
	Target  float64
	PerNode bool
}

// load returns the cluster's total from reading r, or false if it cannot be
// known (no node reports a per-node metric).
func (t Target) load(s policy.State, r policy.Reading) (float64, bool) {
	if !t.PerNode {
		return r.Value, true
	}
	if s.Counted() <= 0 {
		return 0, false
	}
	return r.Value * float64(r.Serving(s)), true
}

// HPA defaults (kube-controller-manager flags and the default behavior).
const (
	HPATolerance         = 0.1
	HPAScaleDownWindow   = 300 * time.Second
	HPAScaleUpPods       = 4
	HPAScaleUpPercent    = 100
	HPAScaleUpPeriod     = 15 * time.Second
	HPASyncPeriod        = 15 * time.Second
	AWSHighDatapoints    = 3
	AWSLowDatapoints     = 15
	AWSLowRatio          = 0.9
	AWSDefaultCooldown   = 300 * time.Second
	AWSDatapointPeriod   = time.Minute
	awsMaxKeptDatapoints = AWSLowDatapoints
)

// HPA is the Kubernetes HPA's algorithm for one Pods-type metric:
//
//	desiredReplicas = ceil(currentReplicas × currentMetric / target)
//
// with the 10 % tolerance (no change while the ratio is within 1 ± 0.1).
// Nodes without a reading (booting) count as 0 % of the target when the
// ratio asks to scale up and as 100 % when it asks to scale down; if that
// flips the direction or lands in the tolerance, nothing changes. A scale-up
// is limited to max(2 × current, current + 4) per period. The 5-minute
// scale-down stabilization (the highest recommendation of the window) is the
// Scaler's: use HPASettings.
type HPA struct {
	name string
	t    Target
}

// NewHPA returns the HPA algorithm on t.
func NewHPA(name string, t Target) *HPA { return &HPA{name: name, t: t} }

// HPASettings are the Scaler settings of the HPA's default behavior: the
// 300 s scale-down stabilization window, no cooldowns, no warm-up gate.
func HPASettings() policy.Settings {
	return policy.Settings{ScaleInStabilization: HPAScaleDownWindow}
}

// Name is the baseline's name.
func (h *HPA) Name() string { return h.name }

// Recommend implements policy.Policy.
func (h *HPA) Recommend(s policy.State) (policy.Recommendation, bool) {
	r := s.Readings[h.t.Counter]
	hold := policy.Recommendation{Policy: h.name, Sized: true, Desired: s.Desired}
	if why := r.Missing(s.Now); why != "" {
		hold.Reason = "metric missing (" + why + "): no change"
		return hold, true
	}
	load, ok := h.t.load(s, r)
	if !ok {
		hold.Reason = "no ready pod reports the metric: no change"
		return hold, true
	}
	cur := s.Desired
	if cur <= 0 {
		// The HPA is paused at 0 replicas; scaling from zero is not its job.
		hold.Reason = "0 replicas: the HPA does not scale from zero"
		return hold, true
	}
	ready := max(s.InService, 0)
	missing := max(cur-ready, 0)
	var ratio float64
	if ready > 0 {
		ratio = load / float64(ready) / h.t.Target
	}
	if missing > 0 {
		// Pods without metrics: 0 % on scale-up, 100 % on scale-down.
		fill := 0.0
		if ratio < 1 {
			fill = h.t.Target
		}
		newRatio := (load + fill*float64(missing)) / (h.t.Target * float64(cur))
		if (ratio > 1) != (newRatio > 1) {
			hold.Reason = "the missing pods flip the direction: no change"
			return hold, true
		}
		ratio = newRatio
	}
	if math.Abs(ratio-1) <= HPATolerance {
		hold.Explain = func() string { return fmt.Sprintf("ratio %s within tolerance", fnum(ratio)) }
		return hold, true
	}
	n := int(math.Ceil(ratio*float64(cur) - 1e-9))
	if limit := max(cur*(100+HPAScaleUpPercent)/100, cur+HPAScaleUpPods); n > limit {
		n = limit
	}
	return policy.Recommendation{Policy: h.name, Sized: true, Desired: max(n, 0),
		Explain: func() string { return fmt.Sprintf("ratio %s × %d replicas", fnum(ratio), cur) }}, true
}

// AWS is AWS EC2 Auto Scaling target tracking with its managed alarms, on
// one-minute datapoints: when the metric is above the target on the last 3
// datapoints (AlarmHigh) the group scales to ceil(load / target); when it is
// below 0.9 × target on the last 15 (AlarmLow), it scales in to
// ceil(load / target) (conservative rounding). A missing datapoint leaves
// the alarms without data: no scaling. Warming nodes count toward the size;
// scale-in waits for the warm-up: use AWSSettings.
type AWS struct {
	name   string
	t      Target
	points []awsPoint
}

type awsPoint struct {
	at    time.Time
	value float64
	ok    bool
}

// NewAWS returns AWS target tracking on t.
func NewAWS(name string, t Target) *AWS { return &AWS{name: name, t: t} }

// AWSSettings are the Scaler settings of AWS target tracking with the
// group's defaults: no cooldown (target tracking ignores it), no
// stabilization window (the 15-datapoint alarm is one), and a warm-up of
// 300 s from launch (DefaultInstanceWarmup unset falls back to
// DefaultCooldown) — the simulator's warm-up starts in service, so it is
// 300 s minus the boot time.
func AWSSettings(boot time.Duration) policy.Settings {
	return policy.Settings{Warmup: max(AWSDefaultCooldown-boot, 0)}
}

// Name is the baseline's name.
func (a *AWS) Name() string { return a.name }

// Recommend implements policy.Policy.
func (a *AWS) Recommend(s policy.State) (policy.Recommendation, bool) {
	r := s.Readings[a.t.Counter]
	missing := r.Missing(s.Now)
	if n := len(a.points); n == 0 || r.At.After(a.points[n-1].at) || (missing != "" && s.Now.Sub(a.points[n-1].at) >= AWSDatapointPeriod) {
		p := awsPoint{at: r.At, ok: missing == ""}
		if !p.ok {
			p.at = s.Now
		}
		switch {
		case !p.ok:
		case !a.t.PerNode:
			p.value = r.Value / float64(max(s.InService, 1))
		case s.Counted() > 0:
			p.value = r.Value
		default:
			p.ok = false
		}
		a.points = append(a.points, p)
		if len(a.points) > awsMaxKeptDatapoints {
			a.points = a.points[len(a.points)-awsMaxKeptDatapoints:]
		}
	}
	last := a.points[len(a.points)-1]
	if !last.ok {
		return policy.Recommendation{}, false // INSUFFICIENT_DATA
	}
	load, _ := a.t.load(s, r)
	n := int(math.Ceil(load/a.t.Target - 1e-9))
	switch {
	case a.breach(AWSHighDatapoints, func(v float64) bool { return v > a.t.Target }) && n > s.Desired:
		return policy.Recommendation{Policy: a.name, Sized: true, Desired: n,
			Reason: fmt.Sprintf("AlarmHigh: metric > %s for %d datapoints", fnum(a.t.Target), AWSHighDatapoints)}, true
	case a.breach(AWSLowDatapoints, func(v float64) bool { return v < AWSLowRatio*a.t.Target }) && n < s.Desired:
		return policy.Recommendation{Policy: a.name, Sized: true, Desired: n,
			Reason: fmt.Sprintf("AlarmLow: metric < %s for %d datapoints", fnum(AWSLowRatio*a.t.Target), AWSLowDatapoints)}, true
	}
	return policy.Recommendation{}, false
}

// breach reports whether the last n datapoints all exist and pass.
func (a *AWS) breach(n int, past func(float64) bool) bool {
	if len(a.points) < n {
		return false
	}
	for _, p := range a.points[len(a.points)-n:] {
		if !p.ok || !past(p.value) {
			return false
		}
	}
	return true
}

func fnum(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}
