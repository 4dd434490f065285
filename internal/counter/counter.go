// Package counter defines counter sources: how a number is read from a node or
// from a cluster. Built-ins register their typed config under a name (the
// `type` key of a counter).
//
// Contract, held by every source:
//   - Read returns one number, or an error that says why there is none (the
//     output was not a number, the command timed out, the connection was
//     refused, …). A failure is never reported as a zero.
//   - Read honours ctx: when ctx is done it stops (killing a command, closing a
//     connection) and returns ctx's error wrapped.
//   - Read may be called concurrently for different targets.
package counter

import (
	"context"
	"log/slog"
	"maps"
	"time"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
)

// Scope says what one reading of a counter describes.
type Scope string

// Scopes.
const (
	// ScopeNode reads the counter once per in-service node.
	ScopeNode Scope = "node"
	// ScopeCluster reads the counter once for the whole cluster.
	ScopeCluster Scope = "cluster"
)

// Target is what one reading is about.
type Target struct {
	Cluster string
	// NodeID and Address are empty for a cluster-scoped reading.
	NodeID  string
	Address string
	// Vars are the template variables of the target (Cluster, NodeID, Address,
	// Host, Port and the cluster's vars).
	Vars map[string]string
	// InService is how many of the cluster's nodes were in service (and not
	// in maintenance: the nodes a node-scoped counter reads) when the reading
	// started. Sources that report a value per node ("messages per worker")
	// divide by it. Zero means none, or a caller that does not count them.
	InService int
	// Meta holds the node's provider details (nil for a cluster-scoped
	// reading), such as how to reach it over SSH (sshx.MetaHost, …).
	Meta map[string]string
}

// TemplateVars are the target's Vars, completed with Cluster, NodeID and
// Address from its own fields when Vars lacks them; a new map.
func (t Target) TemplateVars() map[string]string {
	vars := make(map[string]string, len(t.Vars)+3)
	maps.Copy(vars, t.Vars)
	for k, v := range map[string]string{"Cluster": t.Cluster, "NodeID": t.NodeID, "Address": t.Address} {
		if _, ok := vars[k]; !ok && v != "" {
			vars[k] = v
		}
	}
	return vars
}

// Source reads a counter.
type Source interface {
	Read(ctx context.Context, t Target) (float64, error)
}

// Env is what a source gets from the server when it is built.
type Env struct {
	Cluster string
	Counter string
	Logger  *slog.Logger
	// Agents holds what node agents pushed (for the "agent" source); nil
	// where there is none.
	Agents AgentValues
	// SSH is the cluster's SSH connection pool, shared by all its counters
	// and closed by the server; nil where the caller has none.
	SSH *sshx.Pool
}

// AgentValue is the latest value of one counter pushed by a node's agent.
type AgentValue struct {
	Value float64
	// Err is why the agent could not measure it ("" with a value).
	Err string
	// Age is how long ago the agent's report holding it was received.
	Age time.Duration
}

// AgentValues gives the counters node agents pushed.
type AgentValues interface {
	// AgentValue returns the latest value of counter name pushed by the agent
	// of node. reported is false if the node's agent never reported; ok is
	// false if it reported but not this counter (then known lists the
	// counters it did report).
	AgentValue(node, name string) (v AgentValue, ok, reported bool, known []string)
}

// ScopeChecker is implemented by configs that work in one scope only, or
// need more settings in one of them. CheckScope says what is wrong with
// using the source in scope (nil: nothing).
type ScopeChecker interface {
	CheckScope(scope Scope) error
}

// Config is a source's typed configuration; it is also its factory.
type Config interface {
	// DefaultScope is the scope used when the counter does not set one.
	DefaultScope() Scope
	New(env Env) (Source, error)
}

// Registry holds the built-in counter sources by type name.
var Registry = plugin.NewRegistry[Config]("counter")
