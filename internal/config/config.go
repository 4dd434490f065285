// Package config loads goscaler's YAML configuration: the server's settings
// and the cluster definitions with their provider, load balancer, health check,
// counters and triggers.
//
// Decoding is strict: unknown keys, wrong types, bad durations and values that
// do not fit together are errors that name file:line and the fix, and every
// problem is reported at once. Plugin sections (provider, load_balancer, each
// counter and action) hold a `type` and that plugin's own keys, which are
// decoded into the plugin's typed config and validated at load.
package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/sshx"
)

// Defaults.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultDataDir         = "goscaler-data"
	DefaultCounterInterval = 5 * 1e9
	// DefaultReconcileInterval is the default of server.reconcile_interval.
	DefaultReconcileInterval = 2 * 60 * 1e9
)

// What server.orphans does with a machine no node wants.
const (
	OrphansTerminate = "terminate"
	OrphansReport    = "report"
)

// Config is a whole configuration file.
type Config struct {
	Server   Server     `yaml:"server"`
	Clusters []*Cluster `yaml:"clusters"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
}

// Server holds the daemon's own settings.
type Server struct {
	// Listen is the address of the API, metrics and UI.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite database, node logs and other state.
	DataDir string `yaml:"data_dir"`
	// Database is empty for SQLite in DataDir, or a postgres:// URL.
	Database string `yaml:"database"`
	// APITokens, when set, are required as `Authorization: Bearer TOKEN` on
	// every /api/ call and to log in to the web UI. An entry is a plain token
	// (an operator) or {token: ..., role: viewer|operator}.
	// GOSCALER_API_TOKENS (comma separated) adds operator tokens.
	APITokens []APIToken `yaml:"api_tokens"`
	// AgentTokens are bearer tokens that node agents send; they are accepted
	// on the agent endpoints only (POST /api/v1/agent/heartbeat), as are the
	// APITokens. GOSCALER_AGENT_TOKENS (comma separated) adds to them.
	AgentTokens []string `yaml:"agent_tokens"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// SampleRetention is the former name of Retention.Raw.
	SampleRetention plugin.Duration `yaml:"sample_retention"`
	// Retention says how long performance data is kept, and at which resolution.
	Retention Retention `yaml:"retention"`
	// CollectConcurrency bounds how many counter readings run at once, over
	// every counter of every cluster.
	CollectConcurrency int `yaml:"collect_concurrency"`
	// Tick is how often the controller reconciles clusters.
	Tick plugin.Duration `yaml:"tick"`
	// ReconcileInterval is how often the controller compares every
	// provider's machines and every load balancer's servers with the nodes
	// it knows (also done at start); default 2m.
	ReconcileInterval plugin.Duration `yaml:"reconcile_interval"`
	// Orphans says what happens to a machine tagged for a cluster that no
	// node wants: terminate (default) or report (an activity, the machine
	// is left running).
	Orphans string `yaml:"orphans"`

	// envTokens counts the APITokens that came from GOSCALER_API_TOKENS (the last ones).
	envTokens int
	// envAgentTokens counts the AgentTokens from GOSCALER_AGENT_TOKENS.
	envAgentTokens int
}

// Retention is how long performance data is kept: every sample as read for
// Raw, then coarser and coarser rollups (average, minimum and maximum of
// each bucket of Step) for longer.
type Retention struct {
	// Raw is how long every sample is kept as it was read.
	Raw plugin.Duration `yaml:"raw"`
	// Memory is the recent window of each series kept in memory as well, which
	// serves recent graphs without reading the database.
	Memory plugin.Duration `yaml:"memory"`
	// Rollups are the coarser resolutions, finest first: each Step is a
	// multiple of the previous one and each Keep longer.
	Rollups []RollupTier `yaml:"rollups"`
}

// RollupTier is one resolution of older history.
type RollupTier struct {
	Step plugin.Duration `yaml:"step"`
	Keep plugin.Duration `yaml:"keep"`
}

// Retention defaults.
const (
	DefaultRawRetention    = 3600 * 1e9
	DefaultMemoryRetention = 600 * 1e9
	// DefaultCollectConcurrency is the default of server.collect_concurrency.
	DefaultCollectConcurrency = 256
)

// DefaultRollups are the rollups of a configuration that sets none: 1-minute
// buckets for a day, 10-minute buckets for 30 days.
func DefaultRollups() []RollupTier {
	return []RollupTier{
		{Step: plugin.Duration(60 * 1e9), Keep: plugin.Duration(24 * 3600 * 1e9)},
		{Step: plugin.Duration(600 * 1e9), Keep: plugin.Duration(30 * 24 * 3600 * 1e9)},
	}
}

// Role is what a token may do: viewers read, operators also act.
type Role string

// Roles of API tokens.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// CanAct reports whether the role may change things (scale, fire, maintain).
func (r Role) CanAct() bool { return r == RoleOperator }

// APIToken is one entry of server.api_tokens: a plain string (an operator's
// token) or a mapping {token: ..., role: viewer|operator}.
type APIToken struct {
	Token string `yaml:"token"`
	// Role defaults to operator.
	Role Role `yaml:"role"`
	// Line is where the entry is defined.
	Line int `yaml:"-"`

	// decodeErr holds the problems of a mapping entry, reported by the
	// validator (see Counter.decodeErr).
	decodeErr error
}

// UnmarshalYAML accepts a plain token or a {token, role} mapping.
func (t *APIToken) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	*t = APIToken{Line: n.Line}
	switch n.Kind {
	case yaml.ScalarNode:
		t.Token, t.Role = n.Value, RoleOperator
	case yaml.MappingNode:
		type entry struct {
			Token string `yaml:"token"`
			Role  Role   `yaml:"role"`
		}
		var e entry
		t.decodeErr = plugin.DecodeStrict(n, &e)
		t.Token, t.Role = e.Token, e.Role
		if t.Role == "" {
			t.Role = RoleOperator
		}
	default:
		t.decodeErr = &plugin.LineError{Line: n.Line, Err: errors.New("expected a token or a mapping {token: ..., role: viewer|operator}, got a list")}
	}
	return nil
}

// String names the token's role, never the token itself.
func (t APIToken) String() string { return string(t.Role) + " token" }

// Cluster is one cluster's definition.
type Cluster struct {
	Name    string `yaml:"name"`
	Min     int    `yaml:"min"`
	Max     int    `yaml:"max"`
	Desired *int   `yaml:"desired"`
	// Vars are extra template variables for the provider, counters and actions.
	Vars         map[string]string `yaml:"vars"`
	Provider     *PluginSpec       `yaml:"provider"`
	LoadBalancer *PluginSpec       `yaml:"load_balancer"`
	HealthCheck  HealthCheck       `yaml:"health_check"`
	// BootTimeout bounds how long a new node may take to pass its health check.
	BootTimeout plugin.Duration `yaml:"boot_timeout"`
	// Heartbeat, when its Timeout is set, requires each in-service node's
	// agent (goscaler agent) to send heartbeats.
	Heartbeat Heartbeat `yaml:"heartbeat"`
	// OnLaunch are the steps run in order for every new node once it
	// answers its health check and before it is in service (any action,
	// plus lb_register: the point where it joins the load balancer, by
	// default after the last step). A node whose step fails is terminated
	// and replaced.
	OnLaunch []*Action `yaml:"on_launch"`
	// OnTerminate are the steps run for a node leaving the cluster, after it
	// left the load balancer and before its machine is deleted.
	OnTerminate []*Action  `yaml:"on_terminate"`
	Counters    []*Counter `yaml:"counters"`
	Triggers    []*Trigger `yaml:"triggers"`
	// Policies are the scaling policies (target tracking, step, scheduled,
	// predictive), combined as "out if any, in only if all".
	Policies []*Policy `yaml:"policies"`
	// ScaleOutCooldown is the least time between two policy scale-outs;
	// ScaleInCooldown the least time from any scaling to a policy scale-in.
	ScaleOutCooldown *plugin.Duration `yaml:"scale_out_cooldown"`
	ScaleInCooldown  *plugin.Duration `yaml:"scale_in_cooldown"`
	// Warmup is how long a node just in service stays out of the aggregates,
	// blocking policy scale-in.
	Warmup *plugin.Duration `yaml:"warmup"`
	// ScaleInStabilization is the window whose highest recommendation a
	// policy scale-in may not go below.
	ScaleInStabilization *plugin.Duration `yaml:"scale_in_stabilization"`
	// SSH is how goscaler reaches the nodes over SSH (ssh counters, the
	// static provider's hosts); nil for the defaults.
	SSH *sshx.Config `yaml:"ssh"`

	// ProviderConfig and BalancerConfig are the decoded plugin configs
	// (BalancerConfig is nil without a load balancer).
	ProviderConfig provider.Config `yaml:"-"`
	BalancerConfig lb.Config       `yaml:"-"`
	// Line is where the cluster is defined.
	Line int `yaml:"-"`
}

// DesiredOrMin returns the configured desired size, or Min when unset.
func (c *Cluster) DesiredOrMin() int {
	if c.Desired != nil {
		return *c.Desired
	}
	return c.Min
}

// Counter returns the counter named name, or nil.
func (c *Cluster) Counter(name string) *Counter {
	for _, k := range c.Counters {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Trigger returns the trigger named name, or nil.
func (c *Cluster) Trigger(name string) *Trigger {
	for _, t := range c.Triggers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// HealthLoadBalancer is the health check type that asks the cluster's load
// balancer (one that implements lb.HealthReporter, such as elbv2) whether a
// node is healthy.
const HealthLoadBalancer = "load_balancer"

// HealthCheck says how a node is judged healthy.
type HealthCheck struct {
	// Type is http, tcp, command, load_balancer (the balancer's own view of
	// the node) or none. Default: http when the cluster has a load balancer,
	// tcp otherwise.
	Type string `yaml:"type"`
	// Path is the HTTP path (http only), default /healthz.
	Path string `yaml:"path"`
	// Command (command only) is a line for sh -c, a template over the
	// node's variables ({{.NodeID}}, {{.Host}}, …): exit 0 is healthy. It
	// runs on the node over SSH, or on the goscaler host when Local is set.
	Command string `yaml:"command"`
	Local   bool   `yaml:"local"`
	// MaxReplacing bounds how many unhealthy nodes are being replaced at
	// once: a number, or a percentage of the desired size ("25%"). Zero
	// means no bound. Further unhealthy nodes stay in service until the
	// replacements are.
	MaxReplacing Pace            `yaml:"max_replacing"`
	Interval     plugin.Duration `yaml:"interval"`
	Timeout      plugin.Duration `yaml:"timeout"`
	// UnhealthyThreshold is how many failures in a row make an in-service node
	// unhealthy, and so replaced.
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// GracePeriod after a node is in service during which failures do not count.
	GracePeriod plugin.Duration `yaml:"grace_period"`
}

// Heartbeat says how long a node's agent may stay silent.
type Heartbeat struct {
	// Timeout, when not zero, fails an in-service node (which is then
	// replaced) whose agent sent no heartbeat for this long.
	Timeout plugin.Duration `yaml:"timeout"`
	// GracePeriod is added to Timeout for the first heartbeat after a node
	// goes in service (its agent may start later than its service).
	GracePeriod plugin.Duration `yaml:"grace_period"`
}

// Pace is a count of nodes, or a percentage of the desired size.
type Pace struct {
	N       int
	Percent bool
}

// UnmarshalYAML reads 2 or "25%".
func (p *Pace) UnmarshalYAML(n *yaml.Node) error {
	v := strings.TrimSpace(n.Value)
	num, pct := strings.CutSuffix(v, "%")
	i, err := strconv.Atoi(strings.TrimSpace(num))
	if n.Kind != yaml.ScalarNode || err != nil || i < 0 || pct && i > 100 {
		return &plugin.LineError{Line: n.Line, Err: fmt.Errorf("%q is not a node count (2) or a percentage (\"25%%\")", v)}
	}
	*p = Pace{N: i, Percent: pct}
	return nil
}

// Of returns the number of nodes the pace allows for a desired size (at
// least 1 for a non-zero pace), or 0 for no bound.
func (p Pace) Of(desired int) int {
	if p.N == 0 {
		return 0
	}
	if !p.Percent {
		return p.N
	}
	return max(1, desired*p.N/100)
}

// String writes the pace as it is configured.
func (p Pace) String() string {
	if p.Percent {
		return strconv.Itoa(p.N) + "%"
	}
	return strconv.Itoa(p.N)
}

// LBRegister is the launch step that registers the node in the load balancer.
const LBRegister = "lb_register"

// PluginSpec is a plugin section: its type and its own keys.
type PluginSpec struct {
	Type string `yaml:"type"`
	// Params holds the plugin's own keys (everything but type).
	Params *yaml.Node `yaml:"-"`
	Line   int        `yaml:"-"`
}

// UnmarshalYAML splits the section into type and the plugin's own keys.
func (p *PluginSpec) UnmarshalYAML(n *yaml.Node) error {
	params, err := p.split(n)
	p.Params = params
	return plugin.TypeError(err)
}

func (p *PluginSpec) split(n *yaml.Node) (*yaml.Node, error) {
	type common struct {
		Type string `yaml:"type"`
	}
	var c common
	params, err := splitDecode(n, &c)
	p.Type, p.Line = c.Type, n.Line
	return params, err
}

// pluginKeys are the keys of a plugin section that are not the plugin's own.
var pluginKeys = []string{"type"}

// Aggregations of a node-scoped counter over the cluster's nodes.
const (
	AggAvg = "avg"
	AggMin = "min"
	AggMax = "max"
	AggSum = "sum"
)

// Counter is a metric read every Interval.
type Counter struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// Scope is node (read from each in-service node) or cluster (read once).
	Scope counter.Scope `yaml:"scope"`
	// Aggregate combines node readings: avg, min, max or sum.
	Aggregate string          `yaml:"aggregate"`
	Interval  plugin.Duration `yaml:"interval"`
	Timeout   plugin.Duration `yaml:"timeout"`

	// Params holds the source's own keys; Source is their decoded config.
	Params *yaml.Node     `yaml:"-"`
	Source counter.Config `yaml:"-"`
	Line   int            `yaml:"-"`

	// decodeErr holds the problems of decoding the common keys, reported by
	// the validator: returning them from UnmarshalYAML would make yaml.v3 drop
	// the counter, and with it its other problems and the line of every
	// counter after it.
	decodeErr error
	// notMapping is set when the counter is not a mapping at all.
	notMapping bool
}

// counterKeys are the keys of a counter that are not its source's own.
var counterKeys = []string{"aggregate", "interval", "name", "scope", "timeout", "type"}

// UnmarshalYAML splits the counter into its common keys and its source's keys.
func (c *Counter) UnmarshalYAML(n *yaml.Node) error {
	type common struct {
		Name      string          `yaml:"name"`
		Type      string          `yaml:"type"`
		Scope     counter.Scope   `yaml:"scope"`
		Aggregate string          `yaml:"aggregate"`
		Interval  plugin.Duration `yaml:"interval"`
		Timeout   plugin.Duration `yaml:"timeout"`
	}
	var k common
	params, err := splitDecode(n, &k)
	*c = Counter{Name: k.Name, Type: k.Type, Scope: k.Scope, Aggregate: k.Aggregate,
		Interval: k.Interval, Timeout: k.Timeout, Params: params, Line: n.Line,
		decodeErr: err, notMapping: n.Kind != yaml.MappingNode}
	return nil
}

// Condition is one "counter past threshold" test.
type Condition struct {
	Counter string   `yaml:"counter"`
	Above   *float64 `yaml:"above"`
	Below   *float64 `yaml:"below"`
	Line    int      `yaml:"-"`
}

// Past reports whether v is past the threshold.
func (c Condition) Past(v float64) bool {
	if c.Above != nil {
		return v > *c.Above
	}
	return c.Below != nil && v < *c.Below
}

// String writes the condition as "inflight > 20".
func (c Condition) String() string {
	if c.Above != nil {
		return fmt.Sprintf("%s > %g", c.Counter, *c.Above)
	}
	if c.Below != nil {
		return fmt.Sprintf("%s < %g", c.Counter, *c.Below)
	}
	return c.Counter
}

// Trigger fires its actions when any of its conditions holds on every sample
// for For, and then waits Cooldown.
type Trigger struct {
	Name string `yaml:"name"`
	// Counter with Above or Below is the one-condition shorthand of When.
	Counter  string          `yaml:"counter"`
	Above    *float64        `yaml:"above"`
	Below    *float64        `yaml:"below"`
	When     []*Condition    `yaml:"when"`
	For      plugin.Duration `yaml:"for"`
	Cooldown plugin.Duration `yaml:"cooldown"`
	Actions  []*Action       `yaml:"actions"`
	Line     int             `yaml:"-"`
}

// Conditions returns the trigger's conditions, shorthand included.
func (t *Trigger) Conditions() []Condition {
	var out []Condition
	if t.Counter != "" {
		out = append(out, Condition{Counter: t.Counter, Above: t.Above, Below: t.Below, Line: t.Line})
	}
	for _, c := range t.When {
		out = append(out, *c)
	}
	return out
}

// Action is one step of a trigger.
type Action struct {
	Type   string        `yaml:"type"`
	Params *yaml.Node    `yaml:"-"`
	Config action.Config `yaml:"-"`
	Line   int           `yaml:"-"`

	// decodeErr and notMapping are as in Counter.
	decodeErr  error
	notMapping bool
}

// UnmarshalYAML splits the action into its type and its own keys. Problems are
// kept for the validator (see Counter.decodeErr).
func (a *Action) UnmarshalYAML(n *yaml.Node) error {
	var s PluginSpec
	params, err := s.split(n)
	*a = Action{Type: s.Type, Params: params, Line: n.Line, decodeErr: err, notMapping: n.Kind != yaml.MappingNode}
	return nil
}

// ParamsJSON returns the action's decoded config as JSON, as stored with an activity.
func (a *Action) ParamsJSON() json.RawMessage {
	b, err := json.Marshal(a.Config)
	if err != nil {
		return nil
	}
	return b
}

// splitDecode decodes the keys of mapping n that common declares into common
// (strictly) and returns the remaining keys as a new mapping node (nil if none).
// Errors are DecodeStrict's *plugin.LineError values.
func splitDecode(n *yaml.Node, common any) (*yaml.Node, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		got := "a list"
		if n.Kind == yaml.ScalarNode {
			got = strconv.Quote(n.Value)
		}
		return nil, &plugin.LineError{Line: n.Line, Err: fmt.Errorf("expected a mapping with type: and the plugin's own keys, got %s", got)}
	}
	known := map[string]bool{}
	t := reflect.TypeOf(common).Elem()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		known[name] = true
	}
	mine := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column, Tag: "!!map"}
	rest := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column, Tag: "!!map"}
	for i := 0; i+1 < len(n.Content); i += 2 {
		dst := rest
		if known[n.Content[i].Value] {
			dst = mine
		}
		dst.Content = append(dst.Content, n.Content[i], n.Content[i+1])
	}
	err := plugin.DecodeStrict(mine, common)
	if len(rest.Content) == 0 {
		return nil, err
	}
	return rest, err
}

// Load reads, decodes, defaults and validates the configuration at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the file
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates a configuration; file names it in errors.
func Parse(file string, data []byte) (*Config, error) {
	cfg := &Config{File: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ErrorList{File: file, Errs: []error{syntaxError(err, data)}}
	}
	if isEmpty(&root) {
		return nil, &ErrorList{File: file, Errs: []error{&plugin.LineError{Line: 1, Err: errors.New("the file is empty: define at least server or clusters")}}}
	}
	keys, values := indexLines(&root)
	v := &validator{lines: keys, values: values, badKeys: map[int]map[string]bool{}}
	if err := plugin.DecodeStrict(&root, cfg); err != nil {
		v.decodeErrors(err)
	}
	cfg.applyDefaults()
	v.validate(cfg)
	if len(v.errs) > 0 {
		slices.SortStableFunc(v.errs, func(a, b error) int { return cmp.Compare(errorLine(a), errorLine(b)) })
		return nil, &ErrorList{File: file, Errs: v.errs}
	}
	return cfg, nil
}

// isEmpty reports whether the document holds nothing: no text, only comments,
// or a bare null.
func isEmpty(root *yaml.Node) bool {
	if root.Kind == 0 {
		return true
	}
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return true
		}
		c := root.Content[0]
		return c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
	}
	return false
}

func errorLine(err error) int {
	var le *plugin.LineError
	if errors.As(err, &le) {
		return le.Line
	}
	return 0
}

// parserProblems are the messages of yaml.v3's parser (not its scanner): it
// reports their line 0-based, one line early.
var parserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'", "did not find expected '-' indicator",
	"did not find expected <document start>", "did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive", "found duplicate %YAML directive",
	"found incompatible YAML document", "found undefined tag handle",
}

// syntaxHints add the usual fix to yaml.v3's syntax messages.
var syntaxHints = map[string]string{
	"did not find expected ',' or '}'":                             "the { that opens a mapping here is not closed with }",
	"did not find expected ',' or ']'":                             "the [ that opens a list here is not closed with ]",
	"found a tab character that violates indentation":              "indent with spaces, not tabs",
	"found a tab character where an indentation space is expected": "indent with spaces, not tabs",
	"mapping values are not allowed in this context":               "check the indentation, or quote a value that holds \": \"",
	"did not find expected key":                                    "check the indentation of this line",
	"did not find expected '-' indicator":                          "a list item and a key are mixed at the same indentation",
}

func syntaxError(err error, data []byte) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		_, msg, _ = strings.Cut(msg, ":")
		msg = strings.TrimSpace(msg)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	switch {
	case slices.Contains(parserProblems, msg):
		// 0-based, and at the end of the input past the last line.
		line = min(line+1, len(lines))
	case strings.HasPrefix(msg, "found a tab character"):
		// The line is that of the scalar before the tab: find the tab.
		for i := max(line-1, 0); i < len(lines); i++ {
			indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]
			if strings.Contains(indent, "\t") {
				line = i + 1
				break
			}
		}
	}
	if hint, ok := syntaxHints[msg]; ok {
		msg += ": " + hint
	}
	if line == 0 {
		return fmt.Errorf("YAML syntax: %s", msg)
	}
	return &plugin.LineError{Line: line, Err: fmt.Errorf("YAML syntax: %s", msg)}
}

func (c *Config) applyDefaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	if s.LogLevel == "" {
		s.LogLevel = "info"
	}
	r := &s.Retention
	if r.Raw == 0 {
		r.Raw = s.SampleRetention
		if r.Raw == 0 {
			r.Raw = plugin.Duration(DefaultRawRetention)
		}
	}
	if r.Memory == 0 {
		r.Memory = min(plugin.Duration(DefaultMemoryRetention), r.Raw)
	}
	if r.Rollups == nil {
		r.Rollups = DefaultRollups()
	}
	if s.CollectConcurrency == 0 {
		s.CollectConcurrency = DefaultCollectConcurrency
	}
	if s.Tick == 0 {
		s.Tick = plugin.Duration(1e9)
	}
	if s.ReconcileInterval == 0 {
		s.ReconcileInterval = plugin.Duration(DefaultReconcileInterval)
	}
	if s.Orphans == "" {
		s.Orphans = OrphansTerminate
	}
	if env := os.Getenv("GOSCALER_API_TOKENS"); env != "" {
		for _, t := range strings.Split(env, ",") {
			if t = strings.TrimSpace(t); t != "" {
				s.APITokens = append(s.APITokens, APIToken{Token: t, Role: RoleOperator})
				s.envTokens++
			}
		}
	}
	s.AgentTokens, s.envAgentTokens = appendEnvTokens(s.AgentTokens, "GOSCALER_AGENT_TOKENS")
	for _, cl := range c.Clusters {
		if cl == nil {
			continue
		}
		if cl.BootTimeout == 0 {
			cl.BootTimeout = plugin.Duration(120 * 1e9)
		}
		h := &cl.HealthCheck
		if h.Type == "" {
			h.Type = "tcp"
			if cl.LoadBalancer != nil {
				h.Type = "http"
			}
		}
		if h.Type == "http" && h.Path == "" {
			h.Path = "/healthz"
		}
		if h.Interval == 0 {
			h.Interval = plugin.Duration(2 * 1e9)
			if h.Type == HealthLoadBalancer {
				// One API call per node and interval: spare the cloud's rate limits.
				h.Interval = plugin.Duration(10 * 1e9)
			}
		}
		if h.Timeout == 0 {
			h.Timeout = plugin.Duration(1e9)
			if h.Type == HealthLoadBalancer {
				h.Timeout = plugin.Duration(5 * 1e9)
			}
		}
		if h.UnhealthyThreshold == 0 {
			h.UnhealthyThreshold = 3
		}
		for _, k := range cl.Counters {
			if k == nil {
				continue
			}
			if k.Interval == 0 {
				k.Interval = plugin.Duration(DefaultCounterInterval)
			}
			if k.Timeout == 0 {
				k.Timeout = k.Interval
			}
			if k.Aggregate == "" {
				k.Aggregate = AggAvg
			}
		}
	}
}

// appendEnvTokens appends the comma-separated tokens of the environment
// variable env to tokens, and says how many it appended.
func appendEnvTokens(tokens []string, env string) ([]string, int) {
	n := 0
	for _, t := range strings.Split(os.Getenv(env), ",") {
		if t = strings.TrimSpace(t); t != "" {
			tokens = append(tokens, t)
			n++
		}
	}
	return tokens, n
}

// Level returns the slog level of Server.LogLevel.
func (s Server) Level() slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s.LogLevel))
	return l
}

// IsLoopback reports whether addr (host:port) listens on loopback only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
