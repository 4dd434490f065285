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

	"github.com/goscaler/goscaler/internal/plugin"
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
}

// Config is a source's typed configuration; it is also its factory.
type Config interface {
	// DefaultScope is the scope used when the counter does not set one.
	DefaultScope() Scope
	New(env Env) (Source, error)
}

// Registry holds the built-in counter sources by type name.
var Registry = plugin.NewRegistry[Config]("counter")
