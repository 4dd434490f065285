package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	// Time zones of scheduled policies resolve even where the system has no
	// zoneinfo database.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
)

// Policy types.
const (
	PolicyTargetTracking = "target_tracking"
	PolicyStep           = "step"
	PolicyScheduled      = "scheduled"
	PolicyPredictive     = "predictive"
)

// PolicyTypes are the policy types, sorted.
var PolicyTypes = []string{PolicyPredictive, PolicyScheduled, PolicyStep, PolicyTargetTracking}

// Defaults of the cluster-level policy settings.
const (
	DefaultScaleOutCooldown     = 0
	DefaultScaleInCooldown      = 5 * time.Minute
	DefaultWarmup               = 0
	DefaultScaleInStabilization = 5 * time.Minute
	DefaultTolerance            = 0.1
	DefaultHistoryDays          = 14
	DefaultConfidence           = 0.9
)

// Policy is one scaling policy of a cluster: a name, a type and the type's own
// keys, decoded into exactly one of the typed fields.
type Policy struct {
	Name   string     `yaml:"name"`
	Type   string     `yaml:"type"`
	Params *yaml.Node `yaml:"-"`
	Line   int        `yaml:"-"`

	TargetTracking *TargetTracking `yaml:"-"`
	Step           *StepScaling    `yaml:"-"`
	Scheduled      *Scheduled      `yaml:"-"`
	Predictive     *Predictive     `yaml:"-"`

	// decodeErr and notMapping are as in Counter.
	decodeErr  error
	notMapping bool
}

// policyKeys are the keys of a policy that are not its type's own.
var policyKeys = []string{"name", "type"}

// UnmarshalYAML splits the policy into its name, its type and the type's own
// keys. Problems are kept for the validator (see Counter.decodeErr).
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	type common struct {
		Name string `yaml:"name"`
		Type string `yaml:"type"`
	}
	var c common
	params, err := splitDecode(n, &c)
	*p = Policy{Name: c.Name, Type: c.Type, Params: params, Line: n.Line, decodeErr: err, notMapping: n.Kind != yaml.MappingNode}
	return nil
}

// Counter returns the counter the policy reads ("" for a scheduled policy).
func (p *Policy) Counter() string {
	switch {
	case p.TargetTracking != nil:
		return p.TargetTracking.Counter
	case p.Step != nil:
		return p.Step.Counter
	case p.Predictive != nil:
		return p.Predictive.Counter
	default:
		return ""
	}
}

// TargetTracking keeps a counter's aggregate near Target: it asks for
// ceil(load / Target) nodes, where load is the aggregate times the serving
// nodes (PerNode) or the aggregate itself (a cluster total), once the
// aggregate per node is more than Tolerance away from Target.
type TargetTracking struct {
	Counter string  `yaml:"counter"`
	Target  float64 `yaml:"target"`
	// Tolerance is the band around Target, as a fraction (0.1: ±10 %).
	Tolerance *float64 `yaml:"tolerance"`
	// PerNode says the aggregate is already per node (avg, min or max of a
	// node counter); otherwise it is a total that is divided by the nodes.
	// Default: true for a node counter aggregated by avg, min or max.
	PerNode *bool `yaml:"per_node"`
	// DisableScaleIn makes the policy only ever scale out.
	DisableScaleIn bool `yaml:"disable_scale_in"`
}

// Step adjustment types.
const (
	AdjustChange  = "change"
	AdjustExact   = "exact"
	AdjustPercent = "percent"
)

// StepScaling changes the size by steps keyed on how far the counter is past
// its threshold, once it has been past it on every sample for For.
type StepScaling struct {
	Counter string          `yaml:"counter"`
	Above   *float64        `yaml:"above"`
	Below   *float64        `yaml:"below"`
	For     plugin.Duration `yaml:"for"`
	// Adjustment is change (default), exact or percent.
	Adjustment string `yaml:"adjustment"`
	// MinMagnitude is, for percent, the fewest nodes a step changes.
	MinMagnitude int               `yaml:"min_magnitude"`
	Steps        []*StepAdjustment `yaml:"steps"`
}

// Threshold returns the threshold and whether it is an upper one (above).
func (s *StepScaling) Threshold() (float64, bool) {
	if s.Above != nil {
		return *s.Above, true
	}
	if s.Below != nil {
		return *s.Below, false
	}
	return 0, true
}

// StepAdjustment applies Adjust when the distance past the threshold is in
// [From, To) (To nil: no upper bound).
type StepAdjustment struct {
	From   float64  `yaml:"from"`
	To     *float64 `yaml:"to"`
	Adjust int      `yaml:"adjust"`
}

// Scheduled sets min, max or desired on a cron schedule in a time zone.
// With Duration, Min and Max hold for that long after each firing; without,
// until another scheduled policy setting the same key fires. Desired is set
// once at each firing.
type Scheduled struct {
	Schedule string          `yaml:"schedule"`
	Timezone string          `yaml:"timezone"`
	Duration plugin.Duration `yaml:"duration"`
	Min      *int            `yaml:"min"`
	Max      *int            `yaml:"max"`
	Desired  *int            `yaml:"desired"`

	// Cron and Location are Schedule and Timezone parsed.
	Cron     cron.Schedule  `yaml:"-"`
	Location *time.Location `yaml:"-"`
}

// Predictive forecasts a counter from the cluster's own history (daily and
// weekly seasonality) and scales out ahead of the expected load by the
// nodes' boot time. It never scales in below what the other policies want.
type Predictive struct {
	Counter string `yaml:"counter"`
	// Target is the aggregate per node to plan for. Default: the target of a
	// target_tracking policy on the same counter.
	Target  float64 `yaml:"target"`
	PerNode *bool   `yaml:"per_node"`
	// Confidence is the probability the planned capacity covers the load:
	// the forecast's upper quantile it plans for (default 0.9).
	Confidence float64 `yaml:"confidence"`
	// HistoryDays is how many days of history the forecast uses (default 14).
	HistoryDays int `yaml:"history_days"`
	// Lead is how far ahead capacity is planned. Default: the nodes' boot time.
	Lead plugin.Duration `yaml:"lead"`
	// ForecastOnly computes and logs the forecast but recommends nothing.
	ForecastOnly bool `yaml:"forecast_only"`
}

// ClusterPolicies are the cluster-level settings of its policies, with defaults.
type ClusterPolicies struct {
	ScaleOutCooldown     time.Duration
	ScaleInCooldown      time.Duration
	Warmup               time.Duration
	ScaleInStabilization time.Duration
}

// PolicySettings returns the cluster's policy settings with their defaults.
func (c *Cluster) PolicySettings() ClusterPolicies {
	s := ClusterPolicies{ScaleOutCooldown: DefaultScaleOutCooldown, ScaleInCooldown: DefaultScaleInCooldown,
		Warmup: DefaultWarmup, ScaleInStabilization: DefaultScaleInStabilization}
	if c.ScaleOutCooldown != nil {
		s.ScaleOutCooldown = c.ScaleOutCooldown.D()
	}
	if c.ScaleInCooldown != nil {
		s.ScaleInCooldown = c.ScaleInCooldown.D()
	}
	if c.Warmup != nil {
		s.Warmup = c.Warmup.D()
	}
	if c.ScaleInStabilization != nil {
		s.ScaleInStabilization = c.ScaleInStabilization.D()
	}
	return s
}

// Policy returns the policy named name, or nil.
func (c *Cluster) Policy(name string) *Policy {
	for _, p := range c.Policies {
		if p != nil && p.Name == name {
			return p
		}
	}
	return nil
}

// PerNodeDefault says whether counter k's aggregate is per node: a node
// counter aggregated by avg, min or max. A sum, or a cluster counter, is a
// total.
func PerNodeDefault(k *Counter) bool {
	return k != nil && k.Scope == counter.ScopeNode && k.Aggregate != AggSum
}

// policyConfig returns a new typed config of a policy type, or nil.
func policyConfig(typ string) any {
	switch typ {
	case PolicyTargetTracking:
		return &TargetTracking{}
	case PolicyStep:
		return &StepScaling{}
	case PolicyScheduled:
		return &Scheduled{}
	case PolicyPredictive:
		return &Predictive{}
	default:
		return nil
	}
}

// policies validates the cluster's policies and their cluster-level settings.
func (v *validator) policies(p string, cl *Cluster, counters map[string]bool) {
	seen := map[string]bool{}
	for i, pol := range cl.Policies {
		v.policy(fmt.Sprintf("%s.policies[%d]", p, i), i, cl, pol, counters, seen)
	}
	// A predictive policy without a target borrows the one of a
	// target_tracking policy on the same counter.
	for i, pol := range cl.Policies {
		if pol == nil || pol.Predictive == nil || pol.Predictive.Target != 0 {
			continue
		}
		for _, o := range cl.Policies {
			if o != nil && o.TargetTracking != nil && o.TargetTracking.Counter == pol.Predictive.Counter {
				pol.Predictive.Target = o.TargetTracking.Target
				if pol.Predictive.PerNode == nil {
					pol.Predictive.PerNode = o.TargetTracking.PerNode
				}
				break
			}
		}
		if pol.Predictive.Target == 0 {
			v.at(fmt.Sprintf("%s.policies[%d]", p, i), "predictive policy %q has no target: add target: (the aggregate per node to plan for), or a target_tracking policy on counter %q",
				pol.Name, pol.Predictive.Counter)
		}
	}
}

func (v *validator) policy(p string, i int, cl *Cluster, pol *Policy, counters, seen map[string]bool) {
	if pol == nil {
		v.at(p, "empty policy")
		return
	}
	pol.Line = v.line(p)
	if pol.notMapping {
		v.errs = append(v.errs, itemError(p, pol.decodeErr))
		return
	}
	if pol.decodeErr != nil {
		v.decodeErrors(pol.decodeErr)
	}
	what := fmt.Sprintf("policy %q", pol.Name)
	switch {
	case pol.Name == "":
		what = fmt.Sprintf("policy %d", i+1)
		v.at(p, "policy without a name: add name:")
	case !nameRE.MatchString(strings.ReplaceAll(pol.Name, "_", "-")):
		v.at(p+".name", "policy name %q must be lowercase letters, digits, dashes or underscores", pol.Name)
	case seen[pol.Name]:
		v.at(p+".name", "policy %q is defined twice in this cluster", pol.Name)
	}
	seen[pol.Name] = true
	if v.bad(p + ".type") {
		return
	}
	cfg := policyConfig(pol.Type)
	if cfg == nil {
		if pol.Type == "" {
			v.at(p, "%s has no type: add type: with one of %s", what, strings.Join(PolicyTypes, ", "))
		} else {
			v.at(p+".type", "unknown policy type %q; known types: %s", pol.Type, strings.Join(PolicyTypes, ", "))
		}
		return
	}
	if pol.Params != nil {
		if err := plugin.DecodeStrict(pol.Params, cfg); err != nil {
			v.plugin(p+".type", err, policyKeys)
			return
		}
	}
	switch c := cfg.(type) {
	case *TargetTracking:
		pol.TargetTracking = c
		v.targetTracking(p, what, c, cl, counters)
	case *StepScaling:
		pol.Step = c
		v.stepScaling(p, what, c, counters)
	case *Scheduled:
		pol.Scheduled = c
		v.scheduled(p, what, c, cl)
	case *Predictive:
		pol.Predictive = c
		v.predictive(p, what, c, cl, counters)
	}
}

// policyCounter checks that a policy names a counter of the cluster.
func (v *validator) policyCounter(p, what, name string, counters map[string]bool) {
	if name == "" {
		v.at(p, "%s has no counter: add counter: (the counter whose aggregate it follows)", what)
		return
	}
	if counters[name] {
		return
	}
	known := make([]string, 0, len(counters))
	for k := range counters {
		if k != "" {
			known = append(known, k)
		}
	}
	if len(known) == 0 {
		v.at(p+".counter", "%s: unknown counter %q: this cluster defines no counters; define it under counters:", what, name)
		return
	}
	v.at(p+".counter", "%s: unknown counter %q: define it under counters: (known: %s)", what, name, strings.Join(sortStrings(known), ", "))
}

func (v *validator) targetTracking(p, what string, c *TargetTracking, cl *Cluster, counters map[string]bool) {
	v.policyCounter(p, what, c.Counter, counters)
	if !(c.Target > 0) && !v.bad(p+".target") {
		v.at(p+".target", "%s: target must be a number above 0 (the aggregate per node to keep, such as 100 requests per second)", what)
	}
	if c.Tolerance == nil {
		t := DefaultTolerance
		c.Tolerance = &t
	} else if *c.Tolerance < 0 || *c.Tolerance >= 1 || math.IsNaN(*c.Tolerance) {
		v.at(p+".tolerance", "%s: tolerance %g is not a fraction in [0, 1): 0.1 is ±10 %%", what, *c.Tolerance)
	}
	if c.PerNode == nil {
		b := PerNodeDefault(cl.Counter(c.Counter))
		c.PerNode = &b
	}
}

func (v *validator) stepScaling(p, what string, c *StepScaling, counters map[string]bool) {
	v.policyCounter(p, what, c.Counter, counters)
	switch {
	case v.bad(p+".above") || v.bad(p+".below"):
	case c.Above == nil && c.Below == nil:
		v.at(p, "%s needs above: or below: (the threshold the steps are measured from)", what)
	case c.Above != nil && c.Below != nil:
		v.at(p+".below", "%s sets both above: and below:; use two step policies", what)
	}
	switch c.Adjustment {
	case "":
		c.Adjustment = AdjustChange
	case AdjustChange, AdjustExact, AdjustPercent:
	default:
		v.at(p+".adjustment", "%s: adjustment %q is not one of change, exact, percent", what, c.Adjustment)
	}
	if c.MinMagnitude < 0 {
		v.at(p+".min_magnitude", "%s: min_magnitude is %d: it cannot be negative", what, c.MinMagnitude)
	} else if c.MinMagnitude > 0 && c.Adjustment != AdjustPercent && !v.bad(p+".adjustment") {
		v.at(p+".min_magnitude", "%s: min_magnitude applies only to adjustment: percent", what)
	}
	if len(c.Steps) == 0 && !v.bad(p+".steps") {
		v.at(p, "%s has no steps: add steps: [{from: 0, adjust: 1}]", what)
	}
	for i, s := range c.Steps {
		sp := fmt.Sprintf("%s.steps[%d]", p, i)
		if s == nil {
			v.at(sp, "%s: step %d is empty", what, i+1)
			continue
		}
		if s.From < 0 {
			v.at(sp+".from", "%s: step %d: from is %g: distances past the threshold start at 0", what, i+1, s.From)
		}
		if s.To != nil && *s.To <= s.From {
			v.at(sp+".to", "%s: step %d: to (%g) must be above from (%g)", what, i+1, *s.To, s.From)
		}
		switch {
		case c.Adjustment == AdjustExact && s.Adjust < 0:
			v.at(sp+".adjust", "%s: step %d: adjust is %d: an exact size cannot be negative", what, i+1, s.Adjust)
		case c.Adjustment != AdjustExact && s.Adjust == 0:
			v.at(sp, "%s: step %d has no adjust: (the nodes to add, or remove when negative)", what, i+1)
		}
		if i == 0 {
			continue
		}
		prev := c.Steps[i-1]
		if prev == nil {
			continue
		}
		switch {
		case prev.To == nil:
			v.at(sp, "%s: step %d comes after step %d, which has no upper bound (to:): only the last step can be open", what, i+1, i)
		case s.From < *prev.To:
			v.at(sp+".from", "%s: step %d starts at %g, inside step %d (%g..%g): steps must be in order and must not overlap", what, i+1, s.From, i, prev.From, *prev.To)
		}
	}
}

func (v *validator) scheduled(p, what string, c *Scheduled, cl *Cluster) {
	if c.Schedule == "" {
		v.at(p, "%s has no schedule: add schedule: with a cron expression such as \"0 8 * * 1-5\"", what)
	} else if strings.Contains(c.Schedule, "TZ=") {
		v.at(p+".schedule", "%s: set the time zone with timezone:, not in the schedule", what)
	} else if sched, err := cron.ParseStandard(c.Schedule); err != nil {
		v.at(p+".schedule", "%s: schedule %q is not a cron expression (minute hour day-of-month month day-of-week, such as \"0 8 * * 1-5\"): %v", what, c.Schedule, err)
	} else if spec, ok := sched.(*cron.SpecSchedule); !ok {
		v.at(p+".schedule", "%s: schedule %q has no fixed times: use a cron expression such as \"0 8 * * 1-5\" or @daily, not @every", what, c.Schedule)
	} else {
		c.Cron = spec
	}
	c.Location = time.UTC
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil {
			v.at(p+".timezone", "%s: unknown time zone %q: use an IANA name such as Europe/Paris or America/New_York", what, c.Timezone)
		} else {
			c.Location = loc
		}
	}
	if spec, ok := c.Cron.(*cron.SpecSchedule); ok {
		spec.Location = c.Location
	}
	if c.Min == nil && c.Max == nil && c.Desired == nil {
		v.at(p, "%s sets nothing: add min:, max: or desired:", what)
	}
	bounded := cl.Min <= cl.Max
	for _, f := range []struct {
		key string
		val *int
	}{{"min", c.Min}, {"max", c.Max}, {"desired", c.Desired}} {
		if f.val != nil && bounded && (*f.val < cl.Min || *f.val > cl.Max) {
			v.at(p+"."+f.key, "%s: %s (%d) is outside the cluster's min..max (%d..%d)", what, f.key, *f.val, cl.Min, cl.Max)
		}
	}
	if c.Min != nil && c.Max != nil && *c.Min > *c.Max {
		v.at(p+".max", "%s: min (%d) is greater than max (%d)", what, *c.Min, *c.Max)
	}
	if c.Duration > 0 && c.Desired != nil && c.Min == nil && c.Max == nil {
		v.at(p+".duration", "%s: duration applies to min: and max:; desired: is set once at each firing", what)
	}
}

func (v *validator) predictive(p, what string, c *Predictive, cl *Cluster, counters map[string]bool) {
	v.policyCounter(p, what, c.Counter, counters)
	if c.Target < 0 || math.IsNaN(c.Target) {
		v.at(p+".target", "%s: target must be a number above 0", what)
	}
	switch {
	case c.Confidence == 0:
		c.Confidence = DefaultConfidence
	case c.Confidence < 0.5 || c.Confidence >= 1 || math.IsNaN(c.Confidence):
		v.at(p+".confidence", "%s: confidence %g is not in [0.5, 1): 0.9 plans for the load's 90th percentile", what, c.Confidence)
	}
	switch {
	case c.HistoryDays == 0:
		c.HistoryDays = DefaultHistoryDays
	case c.HistoryDays < 1 || c.HistoryDays > 90:
		v.at(p+".history_days", "%s: history_days is %d: use 1 to 90 (14 covers two weekly cycles)", what, c.HistoryDays)
	}
	if c.PerNode == nil && c.Target > 0 {
		b := PerNodeDefault(cl.Counter(c.Counter))
		c.PerNode = &b
	}
}

// HasPolicies reports whether the cluster has any policy.
func (c *Cluster) HasPolicies() bool {
	return slices.ContainsFunc(c.Policies, func(p *Policy) bool { return p != nil })
}
