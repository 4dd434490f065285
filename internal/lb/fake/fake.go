// Package fake is an in-memory load balancer for tests, registered as type
// "fake". A test reaches the instance the controller built through the
// package registry keyed by the config's instance name:
//
//	load_balancer: {type: fake, instance: "TestSomething"}
//
//	b := fake.Get("TestSomething")
//	b.Deregistered("web-1") // true once web-1 was taken out of rotation
//
// It holds the load balancer contract: Register of a registered backend is a
// no-op, Deregister of an unknown backend is not an error, Deregister returns
// ctx's error when ctx ends while it drains (see SetDrain), Backends lists
// what is registered. Every call is recorded. It is safe for concurrent use.
package fake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/goscaler/goscaler/internal/lb"
)

func init() {
	lb.Registry.Register("fake", func() lb.Config { return &Config{} })
}

// Config configures the fake load balancer.
type Config struct {
	// Instance names the *Balancer in the package registry (see Get).
	Instance string `yaml:"instance" json:"instance"`
}

// Validate requires an instance name.
func (c *Config) Validate() error {
	if c.Instance == "" {
		return errors.New("instance: is required (the name tests pass to fake.Get)")
	}
	return nil
}

// New returns the registered instance.
func (c *Config) New(env lb.Env) (lb.Balancer, error) {
	b := Get(c.Instance)
	b.mu.Lock()
	b.envs = append(b.envs, env)
	b.mu.Unlock()
	return b, nil
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Balancer{}
)

// Get returns the balancer registered under name, creating it if needed.
func Get(name string) *Balancer {
	registryMu.Lock()
	defer registryMu.Unlock()
	b, ok := registry[name]
	if !ok {
		b = &Balancer{name: name}
		registry[name] = b
	}
	return b
}

// Forget removes the balancer registered under name (a test's cleanup).
func Forget(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(registry, name)
}

// Call is one recorded Register or Deregister.
type Call struct {
	Op      string // "register" or "deregister"
	Backend lb.Backend
	// Seq orders the calls of one balancer (1, 2, …).
	Seq int
}

// Balancer is the fake's state.
type Balancer struct {
	name string

	mu       sync.Mutex
	backends []lb.Backend
	calls    []Call
	envs     []lb.Env
	closed   int

	nextRegisterErr   error
	nextDeregisterErr error
	drain             <-chan struct{}
	onDeregister      func(lb.Backend)
}

var _ lb.Balancer = (*Balancer)(nil)

// Register puts b into rotation (a no-op if it is there).
func (f *Balancer) Register(ctx context.Context, b lb.Backend) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("register", b)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake register %s: %w", b.NodeID, err)
	}
	if err := f.nextRegisterErr; err != nil {
		f.nextRegisterErr = nil
		return fmt.Errorf("fake register %s: %w", b.NodeID, err)
	}
	if i := f.index(b.NodeID); i >= 0 {
		f.backends[i] = b
		return nil
	}
	f.backends = append(f.backends, b)
	return nil
}

// Deregister takes b out of rotation at once, then "drains": it waits for the
// drain channel set by SetDrain (if any) or for ctx.
func (f *Balancer) Deregister(ctx context.Context, b lb.Backend) error {
	f.mu.Lock()
	f.record("deregister", b)
	if err := f.nextDeregisterErr; err != nil {
		f.nextDeregisterErr = nil
		f.mu.Unlock()
		return fmt.Errorf("fake deregister %s: %w", b.NodeID, err)
	}
	if i := f.index(b.NodeID); i >= 0 {
		f.backends = slices.Delete(f.backends, i, i+1)
	}
	drain, hook := f.drain, f.onDeregister
	f.mu.Unlock()
	if hook != nil {
		hook(b)
	}
	if drain != nil {
		select {
		case <-drain:
		case <-ctx.Done():
			return fmt.Errorf("fake deregister %s: draining: %w", b.NodeID, ctx.Err())
		}
	}
	return nil
}

// Backends lists the registered backends in registration order.
func (f *Balancer) Backends(ctx context.Context) ([]lb.Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.backends), nil
}

// Close records that the controller released the balancer.
func (f *Balancer) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func (f *Balancer) index(nodeID string) int {
	return slices.IndexFunc(f.backends, func(b lb.Backend) bool { return b.NodeID == nodeID })
}

// record appends a call; the caller holds f.mu.
func (f *Balancer) record(op string, b lb.Backend) {
	f.calls = append(f.calls, Call{Op: op, Backend: b, Seq: len(f.calls) + 1})
}

// --- knobs ---

// SetNextRegisterErr makes the next Register fail with err (wrapped), once.
func (f *Balancer) SetNextRegisterErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextRegisterErr = err
}

// SetNextDeregisterErr makes the next Deregister fail with err (wrapped), once.
func (f *Balancer) SetNextDeregisterErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextDeregisterErr = err
}

// SetDrain makes Deregister wait, after taking the backend out of rotation,
// until ch is closed (or ctx ends); nil drains at once.
func (f *Balancer) SetDrain(ch <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drain = ch
}

// OnDeregister calls fn once a backend is out of rotation, outside the lock.
func (f *Balancer) OnDeregister(fn func(lb.Backend)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onDeregister = fn
}

// --- records ---

// Calls returns every Register and Deregister, in order.
func (f *Balancer) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Registers returns the backends of every Register call, in order.
func (f *Balancer) Registers() []lb.Backend { return f.callsOf("register") }

// Deregisters returns the backends of every Deregister call, in order.
func (f *Balancer) Deregisters() []lb.Backend { return f.callsOf("deregister") }

func (f *Balancer) callsOf(op string) []lb.Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []lb.Backend
	for _, c := range f.calls {
		if c.Op == op {
			out = append(out, c.Backend)
		}
	}
	return out
}

// Registered reports whether a node is in rotation now.
func (f *Balancer) Registered(nodeID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index(nodeID) >= 0
}

// Deregistered reports whether Deregister was ever called for a node.
func (f *Balancer) Deregistered(nodeID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c.Op == "deregister" && c.Backend.NodeID == nodeID {
			return true
		}
	}
	return false
}

// Envs returns the env of every New, in order.
func (f *Balancer) Envs() []lb.Env {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.envs)
}

// Closed counts the Close calls.
func (f *Balancer) Closed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}
