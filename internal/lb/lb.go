// Package lb defines load balancers: where a cluster's in-service nodes receive
// traffic. Built-ins register their typed config under a name (the
// `load_balancer.type` key of a cluster).
//
// Contract, held by every load balancer:
//   - Register puts a backend into rotation; registering it again is a no-op.
//     The controller registers a node only after it passed its health check.
//   - Deregister takes a backend out of rotation and drains it: new requests stop
//     going to it at once, and Deregister returns only when the requests already
//     in flight have finished (or ctx is done, which is returned as its error).
//     Deregistering an unknown backend is not an error.
//   - Backends lists what is registered (a balancer may also list backends it is
//     still removing), so that the controller can reconcile: it registers again
//     the in-service nodes a balancer lost (an HAProxy reload, a restart) and
//     deregisters backends of nodes that are gone.
//
// A balancer that holds resources (listeners, goroutines) implements io.Closer.
// A balancer that checks its backends itself (a cloud load balancer) may
// implement HealthReporter; a cluster with `health_check: {type:
// load_balancer}` then judges its nodes by what the balancer says.
package lb

import (
	"context"
	"errors"
	"log/slog"

	"github.com/goscaler/goscaler/internal/plugin"
)

// Backend is one node as the load balancer sees it.
type Backend struct {
	NodeID string `json:"node_id"`
	// Address is host:port where the node serves.
	Address string `json:"address"`
	// MachineID is the provider's ID of the node's machine (an EC2 instance
	// ID, …), for balancers that register machines rather than addresses. It
	// may be empty (a backend built before the machine was known); balancers
	// that need it say so in their error.
	MachineID string `json:"machine_id,omitempty"`
}

// ErrUnhealthy is wrapped by HealthReporter.BackendHealth when the balancer
// answered and does not consider the backend healthy.
var ErrUnhealthy = errors.New("backend not healthy in the load balancer")

// HealthReporter is implemented by balancers that check their backends
// themselves. The controller uses it for clusters whose health_check.type is
// load_balancer: it registers a new node right after its machine is created
// (so that the balancer starts checking it) and puts it in service once
// BackendHealth returns nil; an in-service node whose BackendHealth fails
// unhealthy_threshold times in a row is replaced.
type HealthReporter interface {
	// BackendHealth returns nil when the balancer considers b healthy (it
	// sends it traffic), an error wrapping ErrUnhealthy with the balancer's
	// state and reason when it does not (still being checked, failing its
	// checks, not registered, draining), or another error when the balancer
	// could not be asked.
	BackendHealth(ctx context.Context, b Backend) error
}

// Balancer spreads a cluster's traffic over its in-service nodes.
type Balancer interface {
	Register(ctx context.Context, b Backend) error
	Deregister(ctx context.Context, b Backend) error
	Backends(ctx context.Context) ([]Backend, error)
}

// Env is what a load balancer gets from the server when it is built.
type Env struct {
	Cluster string
	// HealthPath is the HTTP path of the cluster's health check ("" if the
	// cluster has no HTTP health check); balancers that check backends
	// actively use it.
	HealthPath string
	Logger     *slog.Logger
}

// Config is a load balancer's typed configuration; it is also its factory.
type Config interface {
	New(env Env) (Balancer, error)
}

// Registry holds the built-in load balancers by type name.
var Registry = plugin.NewRegistry[Config]("load balancer")
