// Package provider defines where nodes come from. A Provider creates, inspects,
// lists and deletes the machines behind a cluster's nodes; built-ins register
// their typed config under a name (the `provider.type` key of a cluster).
//
// Contract, held by every provider:
//   - Create is idempotent per node: when a machine tagged with spec.NodeID
//     already exists (a retry after a crash or a timeout), Create returns it and
//     creates nothing.
//   - Every machine is tagged with the owner (the goscaler installation), the
//     cluster and the node ID, so that List finds all of them after a restart:
//     nothing is ever orphaned.
//   - Get and Delete return an error wrapping ErrNotFound when the machine does
//     not exist any more. Delete of a gone machine is that error, not success,
//     so that callers can tell "I deleted it" from "it was already gone".
//   - After Delete, Create for the same node ID may make a new machine or
//     return an error wrapping ErrNotFound (a cloud whose idempotency token
//     outlives the machine); it never returns the deleted machine. goscaler
//     never reuses a node ID.
//   - Errors that are worth a retry wrap ErrTransient; capacity, quota and bad
//     configuration have their own sentinels.
//
// Package providertest is the conformance suite of this contract: every
// provider runs it against its real backend (or a faithful stand-in).
package provider

import (
	"context"
	"errors"
	"log/slog"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
)

// Sentinel errors; wrap them with %w and test with errors.Is.
var (
	ErrNotFound  = errors.New("machine not found")
	ErrTransient = errors.New("transient provider error")
	ErrCapacity  = errors.New("insufficient capacity")
	ErrQuota     = errors.New("quota exceeded")
	ErrConfig    = errors.New("bad provider configuration")
)

// MachineState is what the provider says about a machine.
type MachineState string

// Machine states.
const (
	MachineRunning MachineState = "running"
	// MachineStopped means the machine exists but does not run (a process that
	// exited and was not reaped yet, a stopped VM).
	MachineStopped MachineState = "stopped"
)

// NodeSpec is what a provider needs to create one node's machine.
type NodeSpec struct {
	Cluster string
	NodeID  string
	// Vars are the template variables of the node (Cluster, NodeID and the
	// cluster's own vars); providers add their own (Port, Address, …).
	Vars map[string]string
}

// Machine is one machine as the provider sees it.
type Machine struct {
	// ID is the provider's identifier, stable for the machine's life.
	ID      string
	Cluster string
	NodeID  string
	// Address is host:port where the node serves.
	Address string
	State   MachineState
	// Reason explains State when it is not running (exit status, …).
	Reason string
	// Meta holds provider details worth storing (pid, start time, …). A
	// provider that knows how to reach the machine over SSH, when that is not
	// the host of Address with the cluster's SSH settings, says so with
	// sshx.MetaHost, sshx.MetaPort and sshx.MetaUser.
	Meta map[string]string
}

// Provider creates and deletes the machines of one cluster's nodes.
type Provider interface {
	// Create makes (or finds, see the package doc) the machine of spec.NodeID.
	Create(ctx context.Context, spec NodeSpec) (Machine, error)
	// Get returns the machine with the given ID, or ErrNotFound.
	Get(ctx context.Context, id string) (Machine, error)
	// Delete stops and removes the machine, waiting until it is gone or ctx is
	// done; ErrNotFound if it was already gone.
	Delete(ctx context.Context, id string) error
	// List returns every machine of the owner tagged for cluster.
	List(ctx context.Context, cluster string) ([]Machine, error)
}

// Env is what a provider gets from the server when it is built.
type Env struct {
	// Cluster is the cluster the provider serves.
	Cluster string
	// Owner tags every machine with the goscaler installation that made it.
	Owner string
	// DataDir is a directory the provider may write to (logs, state).
	DataDir string
	Logger  *slog.Logger
	// SSH is the cluster's SSH connection pool (its default port and user
	// too); nil where the caller has none.
	SSH *sshx.Pool
}

// Capacity is implemented by configs that can make a bounded number of
// machines (a static list of hosts): the cluster's max must not exceed it.
type Capacity interface {
	MaxMachines() int
}

// Config is a provider's typed configuration; it is also its factory.
type Config interface {
	// New builds the provider for one cluster.
	New(env Env) (Provider, error)
}

// Registry holds the built-in providers by type name.
var Registry = plugin.NewRegistry[Config]("provider")
