// Package fake is an in-memory provider for tests, registered as type "fake".
//
// The controller builds its provider from configuration, so a test reaches the
// fake through a package-level registry keyed by the config's instance name:
//
//	provider: {type: fake, instance: "TestSomething"}
//
//	p := fake.Get("TestSomething") // the same *Provider the controller uses
//	p.SetNextCreateErr(provider.ErrCapacity)
//	p.KillNode("web-1")
//
// The fake holds the provider contract: Create is idempotent per NodeID, every
// machine is tagged with the owner, cluster and node ID, Get and Delete return
// ErrNotFound for a gone machine, and List returns one owner's machines of one
// cluster. Every call is recorded. It is safe for concurrent use.
package fake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/goscaler/goscaler/internal/provider"
)

func init() {
	provider.Registry.Register("fake", func() provider.Config { return &Config{} })
}

// MetaOwner is the Meta key of the owner tag of a fake machine.
const MetaOwner = "owner"

// Config configures the fake provider.
type Config struct {
	// Instance names the *Provider in the package registry (see Get).
	Instance string `yaml:"instance" json:"instance"`
}

// Validate requires an instance name.
func (c *Config) Validate() error {
	if c.Instance == "" {
		return errors.New("instance: is required (the name tests pass to fake.Get)")
	}
	return nil
}

// New returns the registered instance, bound to env's owner.
func (c *Config) New(env provider.Env) (provider.Provider, error) {
	return &bound{p: Get(c.Instance), owner: env.Owner}, nil
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Provider{}
)

// Get returns the provider registered under name, creating it if needed.
func Get(name string) *Provider {
	registryMu.Lock()
	defer registryMu.Unlock()
	p, ok := registry[name]
	if !ok {
		p = &Provider{name: name, machines: map[string]*provider.Machine{}}
		registry[name] = p
	}
	return p
}

// Forget removes the provider registered under name (a test's cleanup).
func Forget(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(registry, name)
}

// Provider is the fake's state, shared by every cluster built from the same
// instance name.
type Provider struct {
	name string

	mu       sync.Mutex
	seq      int
	machines map[string]*provider.Machine // by machine ID, alive only
	order    []string                     // machine IDs in creation order

	createCalls []provider.NodeSpec
	getCalls    []string
	deleteCalls []string
	listCalls   []string

	nextCreateErr error
	nextDeleteErr error
	listErr       error
	address       func(provider.NodeSpec) string
	onCreate      func(provider.NodeSpec)
	onDelete      func(provider.Machine)
}

// bound is the provider.Provider handed to one controller: the shared state
// plus the owner tag of its installation.
type bound struct {
	p     *Provider
	owner string
}

func (b *bound) Create(ctx context.Context, spec provider.NodeSpec) (provider.Machine, error) {
	return b.p.create(ctx, b.owner, spec)
}

func (b *bound) Get(ctx context.Context, id string) (provider.Machine, error) {
	return b.p.Get(ctx, id)
}

func (b *bound) Delete(ctx context.Context, id string) error { return b.p.Delete(ctx, id) }

func (b *bound) List(ctx context.Context, cluster string) ([]provider.Machine, error) {
	return b.p.list(ctx, b.owner, cluster, true)
}

var _ provider.Provider = (*bound)(nil)
var _ provider.Provider = (*Provider)(nil)

// Create makes a machine for spec with no owner tag (tests may call it to
// simulate a machine created before a crash: use CreateOwned for the owner).
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) (provider.Machine, error) {
	return p.create(ctx, "", spec)
}

// CreateOwned is Create for the given owner, as a controller with that owner would call it.
func (p *Provider) CreateOwned(ctx context.Context, owner string, spec provider.NodeSpec) (provider.Machine, error) {
	return p.create(ctx, owner, spec)
}

func (p *Provider) create(ctx context.Context, owner string, spec provider.NodeSpec) (provider.Machine, error) {
	p.mu.Lock()
	p.createCalls = append(p.createCalls, copySpec(spec))
	hook := p.onCreate
	p.mu.Unlock()
	if hook != nil {
		hook(spec)
	}
	if err := ctx.Err(); err != nil {
		return provider.Machine{}, fmt.Errorf("fake create %s: %w", spec.NodeID, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.nextCreateErr; err != nil {
		p.nextCreateErr = nil
		return provider.Machine{}, fmt.Errorf("fake create %s: %w", spec.NodeID, err)
	}
	for _, id := range p.order {
		m, ok := p.machines[id]
		if ok && m.NodeID == spec.NodeID && m.Cluster == spec.Cluster && m.Meta[MetaOwner] == owner {
			return copyMachine(*m), nil
		}
	}
	p.seq++
	id := fmt.Sprintf("m-%d", p.seq)
	addr := fmt.Sprintf("127.0.0.1:%d", 20000+p.seq)
	if p.address != nil {
		addr = p.address(spec)
	}
	m := &provider.Machine{ID: id, Cluster: spec.Cluster, NodeID: spec.NodeID, Address: addr,
		State: provider.MachineRunning, Meta: map[string]string{MetaOwner: owner, "seq": fmt.Sprint(p.seq)}}
	p.machines[id] = m
	p.order = append(p.order, id)
	return copyMachine(*m), nil
}

// Get returns the machine or an error wrapping provider.ErrNotFound.
func (p *Provider) Get(ctx context.Context, id string) (provider.Machine, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.getCalls = append(p.getCalls, id)
	if err := ctx.Err(); err != nil {
		return provider.Machine{}, fmt.Errorf("fake get %s: %w", id, err)
	}
	m, ok := p.machines[id]
	if !ok {
		return provider.Machine{}, fmt.Errorf("fake machine %s: %w", id, provider.ErrNotFound)
	}
	return copyMachine(*m), nil
}

// Delete removes the machine; an error wrapping provider.ErrNotFound if it is gone.
func (p *Provider) Delete(ctx context.Context, id string) error {
	p.mu.Lock()
	p.deleteCalls = append(p.deleteCalls, id)
	hook := p.onDelete
	m, ok := p.machines[id]
	var mc provider.Machine
	if ok {
		mc = copyMachine(*m)
	}
	p.mu.Unlock()
	if ok && hook != nil {
		hook(mc)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fake delete %s: %w", id, err)
	}
	if err := p.nextDeleteErr; err != nil {
		p.nextDeleteErr = nil
		return fmt.Errorf("fake delete %s: %w", id, err)
	}
	if _, ok := p.machines[id]; !ok {
		return fmt.Errorf("fake machine %s: %w", id, provider.ErrNotFound)
	}
	p.remove(id)
	return nil
}

// List returns every live machine of cluster, whatever its owner.
func (p *Provider) List(ctx context.Context, cluster string) ([]provider.Machine, error) {
	return p.list(ctx, "", cluster, false)
}

func (p *Provider) list(ctx context.Context, owner, cluster string, byOwner bool) ([]provider.Machine, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listCalls = append(p.listCalls, cluster)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fake list %s: %w", cluster, err)
	}
	if p.listErr != nil {
		return nil, fmt.Errorf("fake list %s: %w", cluster, p.listErr)
	}
	var out []provider.Machine
	for _, id := range p.order {
		m, ok := p.machines[id]
		if !ok || m.Cluster != cluster || byOwner && m.Meta[MetaOwner] != owner {
			continue
		}
		out = append(out, copyMachine(*m))
	}
	return out, nil
}

// remove forgets a machine; the caller holds p.mu.
func (p *Provider) remove(id string) {
	delete(p.machines, id)
	p.order = slices.DeleteFunc(p.order, func(s string) bool { return s == id })
}

// --- knobs ---

// SetNextCreateErr makes the next Create fail with err (wrapped), once.
func (p *Provider) SetNextCreateErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextCreateErr = err
}

// SetNextDeleteErr makes the next Delete of a live machine fail with err, once.
func (p *Provider) SetNextDeleteErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextDeleteErr = err
}

// SetListErr makes every List fail with err until it is set to nil.
func (p *Provider) SetListErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listErr = err
}

// SetAddress chooses the address of new machines (default 127.0.0.1:2000N,
// where nothing listens).
func (p *Provider) SetAddress(f func(provider.NodeSpec) string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.address = f
}

// OnCreate calls f at the start of every Create, outside the fake's lock (it
// may block, to hold a launch in flight).
func (p *Provider) OnCreate(f func(provider.NodeSpec)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onCreate = f
}

// OnDelete calls f with the machine before a live machine is deleted, outside
// the fake's lock.
func (p *Provider) OnDelete(f func(provider.Machine)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onDelete = f
}

// Kill makes a machine vanish, as a VM terminated behind goscaler's back.
func (p *Provider) Kill(machineID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.machines[machineID]; !ok {
		return false
	}
	p.remove(machineID)
	return true
}

// KillNode kills the machine of a node; it reports whether there was one.
func (p *Provider) KillNode(nodeID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.order {
		if p.machines[id].NodeID == nodeID {
			p.remove(id)
			return true
		}
	}
	return false
}

// Stop marks a node's machine stopped with reason (it still exists, as a
// crashed process not yet reaped); it reports whether there was one.
func (p *Provider) Stop(nodeID, reason string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.order {
		if m := p.machines[id]; m.NodeID == nodeID {
			m.State, m.Reason = provider.MachineStopped, reason
			return true
		}
	}
	return false
}

// --- records ---

// Machines returns every live machine, oldest first.
func (p *Provider) Machines() []provider.Machine {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]provider.Machine, 0, len(p.order))
	for _, id := range p.order {
		out = append(out, copyMachine(*p.machines[id]))
	}
	return out
}

// Machine returns the live machine of a node.
func (p *Provider) Machine(nodeID string) (provider.Machine, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.order {
		if m := p.machines[id]; m.NodeID == nodeID {
			return copyMachine(*m), true
		}
	}
	return provider.Machine{}, false
}

// CreateCalls returns the specs of every Create, in order.
func (p *Provider) CreateCalls() []provider.NodeSpec {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]provider.NodeSpec, len(p.createCalls))
	for i, s := range p.createCalls {
		out[i] = copySpec(s)
	}
	return out
}

// CreateCallsFor counts the Create calls for a node.
func (p *Provider) CreateCallsFor(nodeID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.createCalls {
		if s.NodeID == nodeID {
			n++
		}
	}
	return n
}

// DeleteCalls returns the machine IDs of every Delete, in order.
func (p *Provider) DeleteCalls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.deleteCalls)
}

// GetCalls returns the machine IDs of every Get, in order.
func (p *Provider) GetCalls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.getCalls)
}

// ListCalls returns the cluster of every List, in order.
func (p *Provider) ListCalls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.listCalls)
}

func copySpec(s provider.NodeSpec) provider.NodeSpec {
	s.Vars = maps.Clone(s.Vars)
	return s
}

func copyMachine(m provider.Machine) provider.Machine {
	m.Meta = maps.Clone(m.Meta)
	return m
}
