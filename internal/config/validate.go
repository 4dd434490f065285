package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
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

// ErrorList is every problem of one configuration file.
type ErrorList struct {
	File string
	Errs []error
}

// Error lists the problems one per line as "file:line: message".
func (e *ErrorList) Error() string {
	var b strings.Builder
	for i, err := range e.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		var le *plugin.LineError
		if errors.As(err, &le) && le.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %v", e.File, le.Line, le.Err)
			continue
		}
		fmt.Fprintf(&b, "%s: %v", e.File, err)
	}
	return b.String()
}

// Unwrap returns the individual problems.
func (e *ErrorList) Unwrap() []error { return e.Errs }

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

type validator struct {
	// lines and values map paths to the line of their key and of their value.
	lines  map[string]int
	values map[string]int
	errs   []error
	// badKeys holds, by line, the keys whose value failed to decode.
	badKeys map[int]map[string]bool
}

// keyedError is a decoding problem that starts with its key ("max: …", "counters[2]: …").
var keyedError = regexp.MustCompile(`^([A-Za-z_][\w-]*(?:\[\d+\])*): `)

// decodeErrors records the problems of decoding (DecodeStrict's errors) and
// the keys they are about.
func (v *validator) decodeErrors(err error) {
	for _, e := range plugin.Flatten(err) {
		v.errs = append(v.errs, e)
		var le *plugin.LineError
		if !errors.As(e, &le) {
			continue
		}
		if m := keyedError.FindStringSubmatch(le.Err.Error()); m != nil {
			if v.badKeys[le.Line] == nil {
				v.badKeys[le.Line] = map[string]bool{}
			}
			v.badKeys[le.Line][m[1]] = true
		}
	}
}

// bad reports whether the value at path failed to decode: checks of the zero
// value it was left with would only repeat that problem.
func (v *validator) bad(path string) bool {
	key := path[strings.LastIndex(path, ".")+1:]
	for _, lines := range []map[string]int{v.lines, v.values} {
		if l, ok := lines[path]; ok && v.badKeys[l][key] {
			return true
		}
	}
	return false
}

// at records a problem at the line of path (or of the closest parent present),
// unless the value at path failed to decode.
func (v *validator) at(path string, format string, args ...any) {
	if v.bad(path) {
		return
	}
	v.errs = append(v.errs, &plugin.LineError{Line: v.line(path), Err: fmt.Errorf(format, args...)})
}

func (v *validator) line(path string) int {
	for p := path; p != ""; {
		if l, ok := v.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// plugin records errors from decoding a plugin section at path (its type key),
// keeping their lines. An unknown type is reported at the type key; an unknown
// key lists common, the section's keys that are not the plugin's own, too.
func (v *validator) plugin(path string, err error, common []string) {
	for _, e := range plugin.Flatten(err) {
		var uk *plugin.UnknownKeyError
		if errors.As(e, &uk) {
			uk.Valid = slices.Compact(slices.Sorted(slices.Values(append(uk.Valid, common...))))
		}
		var le *plugin.LineError
		switch {
		case errors.Is(e, plugin.ErrUnknownType) && errors.As(e, &le):
			v.at(path, "%v", le.Err)
		case errors.As(e, &le) && le.Line > 0:
			v.errs = append(v.errs, e)
		default:
			v.at(path, "%v", e)
		}
	}
}

func (v *validator) validate(cfg *Config) {
	s := cfg.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		v.at("server.listen", "server.listen %q is not host:port (for example 127.0.0.1:8080)", s.Listen)
	} else if !IsLoopback(s.Listen) && len(s.APITokens) == 0 {
		v.at("server.listen", "server.listen %q is reachable beyond loopback but no api_tokens are set: add server.api_tokens (or GOSCALER_API_TOKENS), or listen on 127.0.0.1", s.Listen)
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.at("server.log_level", "server.log_level %q is not one of debug, info, warn, error", s.LogLevel)
	}
	if s.Database != "" && !strings.HasPrefix(s.Database, "postgres://") && !strings.HasPrefix(s.Database, "postgresql://") && !strings.HasPrefix(s.Database, "sqlite:") {
		v.at("server.database", "server.database must be a postgres:// URL or sqlite:PATH (leave it empty for SQLite in data_dir)")
	}
	v.tokens("server.agent_tokens", "agent token", "GOSCALER_AGENT_TOKENS", s.AgentTokens, s.envAgentTokens)
	v.retention(s)
	if s.CollectConcurrency < 1 && !v.bad("server.collect_concurrency") {
		v.at("server.collect_concurrency", "server.collect_concurrency is %d: set it to at least 1 (default %d)", s.CollectConcurrency, DefaultCollectConcurrency)
	}
	if s.ReconcileInterval < plugin.Duration(1e9) && !v.bad("server.reconcile_interval") {
		v.at("server.reconcile_interval", "server.reconcile_interval %s is too short: at least 1s (default 2m)", s.ReconcileInterval)
	}
	switch s.Orphans {
	case OrphansTerminate, OrphansReport:
	default:
		v.at("server.orphans", "server.orphans %q is not one of terminate, report", s.Orphans)
	}
	fromFile := len(s.APITokens) - s.envTokens
	seenTokens := map[string]int{}
	for i, t := range s.APITokens {
		path := fmt.Sprintf("server.api_tokens[%d]", i)
		if t.decodeErr != nil {
			v.decodeErrors(t.decodeErr)
			continue
		}
		switch {
		case len(t.Token) >= 16:
		case i < fromFile && t.Token == "":
			v.at(path, "API token %d has no token: add token: (a long random string, openssl rand -hex 32)", i+1)
		case i < fromFile:
			v.at(path, "API token %d is shorter than 16 characters: use a long random string (openssl rand -hex 32)", i+1)
		default:
			v.errs = append(v.errs, fmt.Errorf("token %d of GOSCALER_API_TOKENS is shorter than 16 characters: use a long random string (openssl rand -hex 32)", i-fromFile+1))
		}
		if first, ok := seenTokens[t.Token]; ok && t.Token != "" {
			v.at(path, "API token %d is the same as token %d: keep one", i+1, first)
		} else {
			seenTokens[t.Token] = i + 1
		}
		switch t.Role {
		case RoleViewer, RoleOperator:
		default:
			v.at(path+".role", "API token %d: role %q is not viewer or operator", i+1, t.Role)
		}
	}
	if len(cfg.Clusters) == 0 {
		v.at("clusters", "no clusters defined: add at least one under clusters:")
	}
	names := map[string]int{}
	listens := map[string]string{}
	for i, cl := range cfg.Clusters {
		if cl == nil {
			v.at(fmt.Sprintf("clusters[%d]", i), "cluster %d is empty", i+1)
			continue
		}
		v.cluster(fmt.Sprintf("clusters[%d]", i), cl, names, listens)
	}
}

// tokens checks bearer tokens: the last fromEnv came from the variable env.
func (v *validator) tokens(path, what, env string, tokens []string, fromEnv int) {
	fromFile := len(tokens) - fromEnv
	for i, t := range tokens {
		switch {
		case len(t) >= 16:
		case i < fromFile:
			v.at(fmt.Sprintf("%s[%d]", path, i), "%s %d is shorter than 16 characters: use a long random string (openssl rand -hex 32)", what, i+1)
		default:
			v.errs = append(v.errs, fmt.Errorf("token %d of %s is shorter than 16 characters: use a long random string (openssl rand -hex 32)", i-fromFile+1, env))
		}
	}
}

// retention checks server.retention: rollups finest first, each step a
// multiple of the previous one and kept longer.
func (v *validator) retention(s Server) {
	r := s.Retention
	if s.SampleRetention != 0 && v.lines["server.retention.raw"] != 0 {
		v.at("server.sample_retention", "server.sample_retention is the former name of server.retention.raw: set only retention.raw")
	}
	if r.Raw < plugin.Duration(60*1e9) && !v.bad("server.retention.raw") && !v.bad("server.sample_retention") {
		v.at("server.retention.raw", "server.retention.raw (%s) is too short: keep raw samples for at least 1m", r.Raw)
	}
	if r.Memory > r.Raw && !v.bad("server.retention.memory") {
		v.at("server.retention.memory", "server.retention.memory (%s) is longer than retention.raw (%s): the memory holds recent raw samples", r.Memory, r.Raw)
	}
	prevStep, prevKeep := plugin.Duration(0), r.Raw
	for i, t := range r.Rollups {
		p := fmt.Sprintf("server.retention.rollups[%d]", i)
		if v.bad(p+".step") || v.bad(p+".keep") {
			return
		}
		switch {
		case t.Step < plugin.Duration(1e9) || t.Step%plugin.Duration(1e9) != 0:
			v.at(p+".step", "rollup step %s must be a whole number of seconds, at least 1s", t.Step)
		case t.Step <= prevStep || prevStep > 0 && t.Step%prevStep != 0:
			v.at(p+".step", "rollup step %s must be a multiple of the previous rollup's step (%s): list rollups finest first", t.Step, prevStep)
		case t.Step > prevKeep:
			v.at(p+".step", "rollup step %s is longer than the previous resolution is kept (%s)", t.Step, prevKeep)
		}
		if t.Keep <= prevKeep {
			v.at(p+".keep", "rollups[%d].keep (%s) must be longer than the previous resolution is kept (%s)", i, t.Keep, prevKeep)
		}
		prevStep, prevKeep = t.Step, t.Keep
	}
}

func (v *validator) cluster(p string, cl *Cluster, names map[string]int, listens map[string]string) {
	cl.Line = v.line(p)
	switch {
	case cl.Name == "":
		v.at(p, "cluster without a name: add name: (lowercase letters, digits and dashes)")
	case !nameRE.MatchString(cl.Name):
		v.at(p+".name", "cluster name %q must be 1-40 lowercase letters, digits and dashes", cl.Name)
	case names[cl.Name] > 0:
		v.at(p+".name", "cluster %q is defined twice (first at line %d)", cl.Name, names[cl.Name])
	default:
		names[cl.Name] = v.line(p + ".name")
	}
	if cl.Min < 0 {
		v.at(p+".min", "min is %d: it cannot be negative", cl.Min)
	}
	if cl.Max < 1 {
		v.at(p+".max", "max is %d: set max to at least 1", cl.Max)
	}
	if cl.Min > cl.Max && cl.Max >= 1 {
		v.at(p+".max", "min (%d) is greater than max (%d): lower min or raise max", cl.Min, cl.Max)
	}
	if cl.Desired != nil && (*cl.Desired < cl.Min || *cl.Desired > cl.Max) && cl.Min <= cl.Max && !v.bad(p+".min") && !v.bad(p+".max") {
		v.at(p+".desired", "desired (%d) is outside min..max (%d..%d)", *cl.Desired, cl.Min, cl.Max)
	}
	switch {
	case cl.Provider == nil:
		v.at(p, "cluster %q has no provider: add provider: {type: process, command: [...]}", cl.Name)
	case v.bad(p + ".provider"):
	default:
		if cfg, err := provider.Registry.Decode(cl.Provider.Type, cl.Provider.Params); err != nil {
			v.plugin(p+".provider.type", err, pluginKeys)
		} else {
			cl.ProviderConfig = cfg
			if c, ok := cfg.(provider.Capacity); ok && cl.Max > c.MaxMachines() && !v.bad(p+".max") {
				v.at(p+".max", "max (%d) is more than the %d host(s) the %s provider lists: lower max or list more hosts",
					cl.Max, c.MaxMachines(), cl.Provider.Type)
			}
		}
	}
	if cl.LoadBalancer != nil && !v.bad(p+".load_balancer") {
		if cfg, err := lb.Registry.Decode(cl.LoadBalancer.Type, cl.LoadBalancer.Params); err != nil {
			v.plugin(p+".load_balancer.type", err, pluginKeys)
		} else {
			cl.BalancerConfig = cfg
		}
		if addr := lbListen(cl.LoadBalancer.Params); addr != "" {
			if other, ok := listens[addr]; ok {
				v.at(p+".load_balancer", "load balancer address %s is already used by cluster %q", addr, other)
			}
			listens[addr] = cl.Name
		}
	}
	h := cl.HealthCheck
	switch h.Type {
	case "http", "tcp", "none":
	case HealthLoadBalancer:
		if cl.LoadBalancer == nil {
			v.at(p+".health_check.type", "health_check.type %s needs a load_balancer that checks its nodes (elb, elbv2): add one or use http or tcp", HealthLoadBalancer)
		}
	case "command":
		if strings.TrimSpace(h.Command) == "" {
			v.at(p+".health_check.command", "health_check.command is required with type: command (a line for sh -c; exit 0 is healthy)")
		} else if _, err := plugin.ParseTemplate(h.Command); err != nil {
			v.at(p+".health_check.command", "health_check.command: %v", err)
		}
	default:
		v.at(p+".health_check.type", "health_check.type %q is not one of http, tcp, command, load_balancer, none", h.Type)
	}
	if h.Type != "command" && (h.Command != "" || h.Local) {
		v.at(p+".health_check.command", "health_check.command and local are for type: command only")
	}
	if h.Type == "http" && !strings.HasPrefix(h.Path, "/") {
		v.at(p+".health_check.path", "health_check.path %q must start with /", h.Path)
	}
	if h.UnhealthyThreshold < 1 {
		v.at(p+".health_check.unhealthy_threshold", "health_check.unhealthy_threshold must be at least 1")
	}
	if h.Timeout > h.Interval && !v.bad(p+".health_check.interval") {
		v.at(p+".health_check.timeout", "health_check.timeout (%s) is longer than its interval (%s): lower timeout or raise interval", h.Timeout, h.Interval)
	}
	if hb := cl.Heartbeat; hb.Timeout != 0 && hb.Timeout < plugin.Duration(1e9) && !v.bad(p+".heartbeat.timeout") {
		v.at(p+".heartbeat.timeout", "heartbeat.timeout %s is too short: use at least 1s (a few agent intervals)", hb.Timeout)
	}
	if cl.SSH != nil && !v.bad(p+".ssh") {
		v.ssh(p+".ssh", cl.SSH)
	}
	for k, val := range cl.Vars {
		if _, err := plugin.ParseTemplate(val); err != nil {
			v.at(p+".vars."+k, "vars.%s: %v", k, err)
		}
	}

	counters := map[string]bool{}
	for i, k := range cl.Counters {
		v.counter(fmt.Sprintf("%s.counters[%d]", p, i), k, counters)
	}
	lbSteps := 0
	for i, a := range cl.OnLaunch {
		ap := fmt.Sprintf("%s.on_launch[%d]", p, i)
		if a != nil && a.Type == LBRegister {
			lbSteps++
			switch {
			case cl.LoadBalancer == nil:
				v.at(ap+".type", "lb_register needs a load_balancer: in this cluster")
			case lbSteps > 1:
				v.at(ap+".type", "lb_register is listed twice: a node joins the load balancer once")
			case a.Params != nil && len(a.Params.Content) > 0:
				v.at(ap+".type", "lb_register has no keys of its own")
			}
			a.Line = v.line(ap)
			continue
		}
		v.action(ap, a)
	}
	for i, a := range cl.OnTerminate {
		ap := fmt.Sprintf("%s.on_terminate[%d]", p, i)
		if a != nil && a.Type == LBRegister {
			v.at(ap+".type", "lb_register belongs in on_launch: a leaving node is taken out of the load balancer before on_terminate runs")
			continue
		}
		v.action(ap, a)
	}
	triggers := map[string]bool{}
	for i, t := range cl.Triggers {
		v.trigger(fmt.Sprintf("%s.triggers[%d]", p, i), i, t, counters, triggers)
	}
	v.policies(p, cl, counters)
}

// ssh records the problems of a cluster's ssh section at their keys.
func (v *validator) ssh(p string, c *sshx.Config) {
	for _, e := range plugin.Flatten(c.Validate()) {
		msg := e.Error()
		key := msg[:strings.IndexFunc(msg+":", func(r rune) bool { return r == ':' || r == '[' })]
		v.at(p+"."+key, "ssh.%s", msg)
	}
}

// itemError names the list item at path ("counters[0]: …") in err, the
// problem of an item that is not a mapping.
func itemError(path string, err error) error {
	var le *plugin.LineError
	if !errors.As(err, &le) {
		return err
	}
	return &plugin.LineError{Line: le.Line, Err: fmt.Errorf("%s: %w", path[strings.LastIndex(path, ".")+1:], le.Err)}
}

func lbListen(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "listen" {
			return n.Content[i+1].Value
		}
	}
	return ""
}

func (v *validator) counter(p string, k *Counter, seen map[string]bool) {
	if k == nil {
		v.at(p, "empty counter")
		return
	}
	k.Line = v.line(p)
	if k.notMapping {
		v.errs = append(v.errs, itemError(p, k.decodeErr))
		return
	}
	if k.decodeErr != nil {
		v.decodeErrors(k.decodeErr)
	}
	switch {
	case k.Name == "":
		v.at(p, "counter without a name: add name:")
	case !nameRE.MatchString(strings.ReplaceAll(k.Name, "_", "-")):
		v.at(p+".name", "counter name %q must be lowercase letters, digits, dashes or underscores", k.Name)
	case seen[k.Name]:
		v.at(p+".name", "counter %q is defined twice in this cluster", k.Name)
	}
	seen[k.Name] = true
	src, err := counter.Registry.Decode(k.Type, k.Params)
	switch {
	case v.bad(p + ".type"):
	case err != nil:
		v.plugin(p+".type", err, counterKeys)
	default:
		k.Source = src
		if k.Scope == "" {
			k.Scope = src.DefaultScope()
		}
	}
	switch k.Scope {
	case counter.ScopeNode, counter.ScopeCluster:
		if sc, ok := k.Source.(counter.ScopeChecker); ok {
			if err := sc.CheckScope(k.Scope); err != nil {
				v.at(p+".scope", "%v", err)
			}
		}
	case "":
	default:
		v.at(p+".scope", "scope %q is not node or cluster", k.Scope)
	}
	switch k.Aggregate {
	case AggAvg, AggMin, AggMax, AggSum:
	default:
		v.at(p+".aggregate", "aggregate %q is not one of avg, min, max, sum", k.Aggregate)
	}
	if k.Interval.D() < 100*1e6 {
		v.at(p+".interval", "interval %s is too short: use at least 100ms", k.Interval)
	}
	if k.Timeout > k.Interval && !v.bad(p+".interval") {
		v.at(p+".timeout", "timeout (%s) is longer than the interval (%s): readings would pile up", k.Timeout, k.Interval)
	}
}

func (v *validator) trigger(p string, i int, t *Trigger, counters, seen map[string]bool) {
	if t == nil {
		v.at(p, "empty trigger")
		return
	}
	t.Line = v.line(p)
	// what names the trigger in messages.
	what := fmt.Sprintf("trigger %q", t.Name)
	if t.Name == "" {
		what = fmt.Sprintf("trigger %d", i+1)
	}
	switch {
	case t.Name == "":
		v.at(p, "trigger without a name: add name:")
	case !nameRE.MatchString(strings.ReplaceAll(t.Name, "_", "-")):
		v.at(p+".name", "trigger name %q must be lowercase letters, digits, dashes or underscores", t.Name)
	case seen[t.Name]:
		v.at(p+".name", "trigger %q is defined twice in this cluster", t.Name)
	}
	seen[t.Name] = true
	if t.Counter == "" && len(t.When) == 0 {
		v.at(p, "%s has no condition: add counter: with above: or below:, or a when: list", what)
	} else if t.Counter == "" && (t.Above != nil || t.Below != nil) {
		v.at(p, "%s sets above/below without counter:", what)
	}
	if t.Counter != "" {
		v.condition(p, Condition{Counter: t.Counter, Above: t.Above, Below: t.Below}, counters)
	}
	for i, c := range t.When {
		cp := fmt.Sprintf("%s.when[%d]", p, i)
		if c == nil {
			v.at(cp, "empty condition")
			continue
		}
		c.Line = v.line(cp)
		v.condition(cp, *c, counters)
	}
	if len(t.Actions) == 0 {
		v.at(p, "%s has no actions: add actions: [{type: deploy_node, count: 1}]", what)
	}
	for i, a := range t.Actions {
		v.action(fmt.Sprintf("%s.actions[%d]", p, i), a)
	}
}

// action decodes and checks one action (of a trigger or a node's lifecycle).
func (v *validator) action(ap string, a *Action) {
	if a == nil {
		v.at(ap, "empty action")
		return
	}
	a.Line = v.line(ap)
	if a.notMapping {
		v.errs = append(v.errs, itemError(ap, a.decodeErr))
		return
	}
	if a.decodeErr != nil {
		v.decodeErrors(a.decodeErr)
	}
	if v.bad(ap + ".type") {
		return
	}
	cfg, err := action.Registry.Decode(a.Type, a.Params)
	if err != nil {
		v.plugin(ap+".type", err, pluginKeys)
		return
	}
	a.Config = cfg
}

func (v *validator) condition(p string, c Condition, counters map[string]bool) {
	if !counters[c.Counter] {
		known := make([]string, 0, len(counters))
		for k := range counters {
			if k != "" {
				known = append(known, k)
			}
		}
		if len(known) == 0 {
			v.at(p+".counter", "unknown counter %q: this cluster defines no counters; define it under counters:", c.Counter)
		} else {
			v.at(p+".counter", "unknown counter %q: define it under counters: (known: %s)", c.Counter, strings.Join(sortStrings(known), ", "))
		}
	}
	switch {
	case v.bad(p+".above") || v.bad(p+".below"):
	case c.Above == nil && c.Below == nil:
		v.at(p+".counter", "condition on %q needs above: or below:", c.Counter)
	case c.Above != nil && c.Below != nil:
		v.at(p+".below", "condition on %q sets both above: and below:; use two triggers", c.Counter)
	}
}

// indexLines maps paths like clusters[0].triggers[1].for to the line of their
// key (of the item, in a list), and to the line of their value.
func indexLines(root *yaml.Node) (keys, values map[string]int) {
	out := map[string]int{}
	values = map[string]int{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n == nil {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				child := k
				if path != "" {
					child = path + "." + k
				}
				out[child] = n.Content[i].Line
				values[child] = n.Content[i+1].Line
				walk(n.Content[i+1], child)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				child := path + "[" + strconv.Itoa(i) + "]"
				out[child] = c.Line
				values[child] = c.Line
				walk(c, child)
			}
		default:
		}
	}
	walk(root, "")
	return out, values
}

func sortStrings(s []string) []string {
	slices.Sort(s)
	return s
}
