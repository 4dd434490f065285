// Package fake is a counter source for tests, registered as type "fake".
// A test sets the value (or the error) each target reads, through the
// package registry keyed by the config's instance name:
//
//	counters: [{name: inflight, type: fake, instance: "TestSomething"}]
//
//	s := fake.Get("TestSomething")
//	s.Set("web-1", 25)           // node web-1 reads 25
//	s.SetErr("web-2", someErr)   // node web-2's reading fails
//	s.SetCluster(7)              // a cluster-scoped reading is 7
//	s.SetAll(3)                  // every other node reads 3
//
// It holds the counter contract: a target without a value is an error, never
// a zero; Read honours ctx (see SetBlock); Read may be called concurrently.
// The default scope is node. It is safe for concurrent use.
package fake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/goscaler/goscaler/internal/counter"
)

func init() {
	counter.Registry.Register("fake", func() counter.Config { return &Config{} })
}

// Config configures the fake source.
type Config struct {
	// Instance names the *Source in the package registry (see Get).
	Instance string `yaml:"instance" json:"instance"`
}

// Validate requires an instance name.
func (c *Config) Validate() error {
	if c.Instance == "" {
		return errors.New("instance: is required (the name tests pass to fake.Get)")
	}
	return nil
}

// DefaultScope is node.
func (c *Config) DefaultScope() counter.Scope { return counter.ScopeNode }

// New returns the registered instance.
func (c *Config) New(counter.Env) (counter.Source, error) { return Get(c.Instance), nil }

var (
	registryMu sync.Mutex
	registry   = map[string]*Source{}
)

// Get returns the source registered under name, creating it if needed.
func Get(name string) *Source {
	registryMu.Lock()
	defer registryMu.Unlock()
	s, ok := registry[name]
	if !ok {
		s = &Source{name: name, values: map[string]float64{}, errs: map[string]error{}}
		registry[name] = s
	}
	return s
}

// Forget removes the source registered under name (a test's cleanup).
func Forget(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(registry, name)
}

// ErrNoValue is returned for a target that has no value set.
var ErrNoValue = errors.New("fake counter: no value set")

// clusterKey is the key of the cluster-scoped reading.
const clusterKey = "\x00cluster"

// Source is the fake's state.
type Source struct {
	name string

	mu     sync.Mutex
	values map[string]float64
	errs   map[string]error
	all    *float64
	allErr error
	reads  []counter.Target
	block  bool
}

var _ counter.Source = (*Source)(nil)

// Read returns the value set for t (its node, or the cluster when t.NodeID is
// empty), else the SetAll value, else an error.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	s.mu.Lock()
	s.reads = append(s.reads, t)
	block := s.block
	s.mu.Unlock()
	if block {
		<-ctx.Done()
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("fake counter %s: %w", target(t), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := t.NodeID
	if key == "" {
		key = clusterKey
	}
	if err, ok := s.errs[key]; ok {
		return 0, fmt.Errorf("fake counter %s: %w", target(t), err)
	}
	if v, ok := s.values[key]; ok {
		return v, nil
	}
	if key != clusterKey {
		if s.allErr != nil {
			return 0, fmt.Errorf("fake counter %s: %w", target(t), s.allErr)
		}
		if s.all != nil {
			return *s.all, nil
		}
	}
	return 0, fmt.Errorf("%w for %s", ErrNoValue, target(t))
}

func target(t counter.Target) string {
	if t.NodeID == "" {
		return "cluster " + t.Cluster
	}
	return "node " + t.NodeID
}

// Set makes node read v (clearing its error).
func (s *Source) Set(nodeID string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.errs, nodeID)
	s.values[nodeID] = v
}

// SetErr makes node's reading fail with err (wrapped).
func (s *Source) SetErr(nodeID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.values, nodeID)
	s.errs[nodeID] = err
}

// Unset removes node's value and error.
func (s *Source) Unset(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.values, nodeID)
	delete(s.errs, nodeID)
}

// SetCluster makes a cluster-scoped reading return v.
func (s *Source) SetCluster(v float64) { s.Set(clusterKey, v) }

// SetClusterErr makes a cluster-scoped reading fail with err.
func (s *Source) SetClusterErr(err error) { s.SetErr(clusterKey, err) }

// SetAll makes every node read v, dropping the values and errors set per node.
func (s *Source) SetAll(v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetNodes()
	s.all, s.allErr = &v, nil
}

// SetAllErr makes every node's reading fail with err, dropping the values and
// errors set per node.
func (s *Source) SetAllErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resetNodes()
	s.all, s.allErr = nil, err
}

// resetNodes drops per-node values and errors; the caller holds s.mu.
func (s *Source) resetNodes() {
	for k := range s.values {
		if k != clusterKey {
			delete(s.values, k)
		}
	}
	for k := range s.errs {
		if k != clusterKey {
			delete(s.errs, k)
		}
	}
}

// SetBlock makes Read wait until its ctx is done (a hung command).
func (s *Source) SetBlock(block bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.block = block
}

// Reads returns the target of every Read, in order.
func (s *Source) Reads() []counter.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reads)
}
