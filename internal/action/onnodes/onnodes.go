// Package onnodes is what the actions that work on a cluster's nodes over
// SSH share (distributed_script, os_configuration): choosing the target
// nodes, running on them in parallel under a concurrency limit, the failure
// policy, and a bounded per-node report for the activity.
package onnodes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/store"
)

// Failure policies.
const (
	// FailStop fails the step when a node fails: the later steps are skipped.
	FailStop = "stop"
	// FailContinue lets the step succeed (its output names the failed
	// nodes) as long as at least MinSuccess nodes succeeded.
	FailContinue = "continue"
)

// Defaults.
const (
	DefaultConcurrency = 5
	// MaxStreamInReport bounds what the report keeps of each node's stdout
	// and of its stderr; MaxReport bounds the whole report.
	MaxStreamInReport = 4 << 10
	MaxReport         = 64 << 10
)

// Select chooses the target nodes and says how to run on them. It is
// embedded (inline) in the configs of the actions that use it.
type Select struct {
	// Nodes, if set, restricts the run to these node IDs (those not in
	// service are reported as skipped).
	Nodes []string `yaml:"nodes" json:"nodes,omitempty"`
	// MaxNodes, if set, runs on at most that many nodes (oldest first).
	MaxNodes int `yaml:"max_nodes" json:"max_nodes,omitempty"`
	// Concurrency is how many nodes run at once; default 5.
	Concurrency int `yaml:"concurrency" json:"concurrency,omitempty"`
	// OnFailure is "stop" (default) or "continue".
	OnFailure string `yaml:"on_failure" json:"on_failure,omitempty"`
	// MinSuccess, with on_failure: continue, is how many nodes must succeed
	// for the step to succeed; default 0 (the step always succeeds).
	MinSuccess int `yaml:"min_success" json:"min_success,omitempty"`
}

// Validate checks the keys and fills the defaults.
func (s *Select) Validate() []error {
	var errs []error
	if s.MaxNodes < 0 {
		errs = append(errs, fmt.Errorf("max_nodes: %d must not be negative", s.MaxNodes))
	}
	if s.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency: %d must not be negative", s.Concurrency))
	}
	if s.Concurrency == 0 {
		s.Concurrency = DefaultConcurrency
	}
	for i, n := range s.Nodes {
		if strings.TrimSpace(n) == "" {
			errs = append(errs, fmt.Errorf("nodes[%d]: empty node ID", i))
		}
	}
	switch s.OnFailure {
	case "":
		s.OnFailure = FailStop
	case FailStop, FailContinue:
	default:
		errs = append(errs, fmt.Errorf("on_failure: %q is not stop or continue", s.OnFailure))
	}
	if s.MinSuccess < 0 {
		errs = append(errs, fmt.Errorf("min_success: %d must not be negative", s.MinSuccess))
	}
	if s.MinSuccess > 0 && s.OnFailure != FailContinue {
		errs = append(errs, errors.New("min_success: only applies with on_failure: continue"))
	}
	return errs
}

// Target is a node to run on.
type Target struct {
	Node     store.Node
	Endpoint sshx.Endpoint
	// Vars are the run's variables plus the node's: NodeID, Address, Host, Port.
	Vars map[string]string
}

// Result is how the run on one node ended.
type Result struct {
	Node     string
	Endpoint string
	// ExitCode is the command's exit status (-1 when it did not exit).
	ExitCode       int
	Stdout, Stderr string
	Duration       time.Duration
	// Summary is an extra line for the report (a configuration run's
	// changed resources, …).
	Summary string
	// Err is nil when the node succeeded; it says why not.
	Err error
}

// Targets returns the nodes of r's cluster that sel chooses, and a line per
// chosen node ID that is not in service. A launch or termination step (r.Node
// set) runs on its own node only, which is not in service yet (or any more).
func Targets(ctx context.Context, r action.Run, sel Select) ([]Target, []string, error) {
	var nodes []store.Node
	switch {
	case r.Node != nil:
		nodes = []store.Node{*r.Node}
	case r.Fleet == nil:
		return nil, nil, fmt.Errorf("%w: no fleet to list the nodes of cluster %q", action.ErrPermanent, r.Cluster)
	default:
		var err error
		if nodes, err = r.Fleet.Nodes(ctx, r.Cluster); err != nil {
			return nil, nil, err
		}
	}
	var missing []string
	if len(sel.Nodes) > 0 {
		byID := map[string]store.Node{}
		for _, n := range nodes {
			byID[n.ID] = n
		}
		chosen := nodes[:0:0]
		for _, id := range sel.Nodes {
			n, ok := byID[id]
			if !ok {
				missing = append(missing, fmt.Sprintf("%s: skipped: not an in-service node of cluster %s", id, r.Cluster))
				continue
			}
			chosen = append(chosen, n)
		}
		nodes = chosen
	}
	if sel.MaxNodes > 0 && len(nodes) > sel.MaxNodes {
		nodes = nodes[:sel.MaxNodes]
	}
	out := make([]Target, 0, len(nodes))
	for _, n := range nodes {
		ep, err := sshx.NodeEndpoint(n.Address, n.Meta)
		vars := make(map[string]string, len(r.Vars)+4)
		for k, v := range r.Vars {
			vars[k] = v
		}
		vars["NodeID"], vars["Address"] = n.ID, n.Address
		if host, port, splitErr := net.SplitHostPort(n.Address); splitErr == nil {
			vars["Host"], vars["Port"] = host, port
		}
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s: skipped: %v", n.ID, err))
			continue
		}
		out = append(out, Target{Node: n, Endpoint: ep, Vars: vars})
	}
	return out, missing, nil
}

// RunAll runs fn on every target, at most concurrency at once, and returns
// the results in the targets' order.
func RunAll(ctx context.Context, targets []Target, concurrency int, fn func(context.Context, Target) Result) []Result {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	out := make([]Result, len(targets))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i] = Result{Node: t.Node.ID, Endpoint: t.Endpoint.String(), ExitCode: -1,
					Err: fmt.Errorf("not started: %w", ctx.Err())}
				return
			}
			defer func() { <-sem }()
			res := fn(ctx, t)
			res.Node = t.Node.ID
			if res.Endpoint == "" {
				res.Endpoint = t.Endpoint.String()
			}
			out[i] = res
		})
	}
	wg.Wait()
	return out
}

// Outcome turns the results into the step's output and error under sel's
// failure policy. what names the work in messages ("script", "puppet apply").
func Outcome(sel Select, what string, results []Result, skipped []string) (string, error) {
	var failed []string
	for _, res := range results {
		if res.Err != nil {
			failed = append(failed, res.Node+" ("+sshx.Short(oneLine(res.Err.Error()), 160)+")")
		}
	}
	ok := len(results) - len(failed)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d of %d node(s) succeeded", what, ok, len(results))
	if len(failed) > 0 {
		fmt.Fprintf(&b, "; failed: %s", strings.Join(failed, ", "))
	}
	b.WriteString("\n")
	for _, s := range skipped {
		b.WriteString(s + "\n")
	}
	for _, res := range results {
		writeNode(&b, res)
	}
	out := b.String()
	if len(out) > MaxReport {
		out = sshx.Short(out, MaxReport) + "\n[report cut]\n"
	}
	switch {
	case len(failed) == 0:
		return out, nil
	case sel.OnFailure == FailContinue && ok >= sel.MinSuccess:
		return out, nil
	case sel.OnFailure == FailContinue:
		return out, fmt.Errorf("%w: %s succeeded on %d node(s), fewer than min_success %d; failed: %s",
			action.ErrPermanent, what, ok, sel.MinSuccess, strings.Join(failed, ", "))
	default:
		return out, fmt.Errorf("%w: %s failed on %d of %d node(s): %s", action.ErrPermanent, what,
			len(failed), len(results), strings.Join(failed, ", "))
	}
}

func writeNode(b *strings.Builder, res Result) {
	status := "ok"
	if res.Err != nil {
		status = "FAILED: " + oneLine(res.Err.Error())
	}
	fmt.Fprintf(b, "=== node %s (%s): exit code %d after %s: %s\n", res.Node, res.Endpoint, res.ExitCode,
		res.Duration.Round(time.Millisecond), status)
	if res.Summary != "" {
		b.WriteString(strings.TrimRight(res.Summary, "\n") + "\n")
	}
	for _, s := range []struct{ name, text string }{{"stdout", res.Stdout}, {"stderr", res.Stderr}} {
		if s.text == "" {
			continue
		}
		text := s.text
		if len(text) > MaxStreamInReport {
			text = sshx.Short(text, MaxStreamInReport) + fmt.Sprintf("\n[%d more bytes not kept]", len(s.text)-MaxStreamInReport)
		}
		fmt.Fprintf(b, "--- %s\n%s\n", s.name, strings.TrimRight(text, "\n"))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Env returns the GOSCALER_* variables of a target as shell assignments
// (NAME='value' …), sorted: GOSCALER_CLUSTER, GOSCALER_NODE_ID, … and the
// counter values as GOSCALER_COUNTER_<NAME>.
func Env(vars map[string]string, prefix string, name func(string) string) []string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		n := prefix + name(k)
		if !validEnv(n) {
			continue
		}
		out = append(out, n+"="+sshx.ShellQuote(vars[k]))
	}
	return out
}

func validEnv(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// UpperSnake turns NodeID into NODE_ID and Counter_load into COUNTER_LOAD.
func UpperSnake(k string) string {
	var b strings.Builder
	for i, r := range k {
		if i > 0 && r >= 'A' && r <= 'Z' && (k[i-1] < 'A' || k[i-1] > 'Z') && k[i-1] != '_' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// LowerSnake turns NodeID into node_id (for facts).
func LowerSnake(k string) string { return strings.ToLower(UpperSnake(k)) }
