// Package action defines the steps a trigger (or an operator) runs: deploy or
// remove nodes, run a script, and later mail, webhooks, configuration. Built-ins
// register their typed config under a name (the `type` key of an action).
//
// Contract, held by every action:
//   - Run is called from a durable job. It may be called again for the same
//     activity after an error or a server crash, so it must be idempotent per
//     activity: effects already made (a node launched) are found again, not
//     repeated. An action that cannot know whether an interrupted attempt had
//     its effect (a script) says so through Interrupted.
//   - Run returns the output worth recording in the activity; an error fails the
//     step (after the job's retries) and skips the steps after it.
//   - A config is stored with the activity as JSON (its json tags), so a step
//     queued before a restart runs as it was decided.
package action

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/store"
)

// ErrPermanent marks an error that retrying cannot fix (wrap it with %w): the
// job fails at once instead of retrying.
var ErrPermanent = errors.New("permanent failure")

// Fleet is what actions may do to a cluster's nodes; the controller implements it.
type Fleet interface {
	// DeployNodes launches up to count new nodes for the activity, never past
	// the cluster's max, and waits until they are in service or failed. Called
	// again for the same activity it resumes the same nodes.
	DeployNodes(ctx context.Context, cluster string, activity store.Activity, count int) (string, error)
	// RemoveNodes drains and terminates up to count in-service nodes (order:
	// "oldest" or "newest" first), never below the cluster's min. Called again
	// for the same activity it resumes the same nodes.
	RemoveNodes(ctx context.Context, cluster string, activity store.Activity, count int, order string) (string, error)
	// Nodes returns the cluster's in-service nodes (not in maintenance),
	// oldest first. sshx.NodeEndpoint gives the SSH endpoint of each.
	Nodes(ctx context.Context, cluster string) ([]store.Node, error)
}

// Run is one execution of an action.
type Run struct {
	// Activity is the action's own activity (its ID, cause, params, …).
	Activity store.Activity
	Cluster  string
	Trigger  string
	// Attempt is 1 on the first try, 2 on the first retry, and so on.
	Attempt int
	// Node is the node a launch or termination step runs for (nil for a
	// step of a trigger); its variables (NodeID, Address, Host, Port) are
	// in Vars.
	Node *store.Node
	// Vars are the variables of the run (Cluster, Trigger, Cause, counter
	// values, and the node's for a node step).
	Vars  map[string]string
	Fleet Fleet
	// Steps are the steps of the same firing that come before this one, in
	// order, as they ended (status, output, error): what a notification
	// reports as the outcome so far.
	Steps []store.Activity
	// Interrupted is true when an earlier attempt of this activity was cut off
	// by a server crash, so its effect is unknown.
	Interrupted bool
}

// Action is one configured step.
type Action interface {
	Run(ctx context.Context, r Run) (string, error)
}

// Env is what an action gets from the server when it is built.
type Env struct {
	Cluster string
	DataDir string
	Logger  *slog.Logger
	// SSH is the cluster's SSH pool (nil where there is none, as in some
	// unit tests): actions that work on nodes use it.
	SSH *sshx.Pool
}

// Config is an action's typed configuration; it is also its factory.
type Config interface {
	New(env Env) (Action, error)
}

// Registry holds the built-in actions by type name.
var Registry = plugin.NewRegistry[Config]("action")

// CheckInterrupted is the rule for actions whose effect cannot be known after
// a crash (scripts): a run cut off by a server restart is not run again unless
// the action is declared idempotent. It returns a permanent error to refuse.
func CheckInterrupted(r Run, idempotent bool) error {
	if r.Interrupted && !idempotent {
		return fmt.Errorf("%w: an earlier run was cut off by a server restart and may have had its effect; not run again (set idempotent: true to allow it)", ErrPermanent)
	}
	return nil
}
