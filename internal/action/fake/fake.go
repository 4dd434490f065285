// Package fake is an action for tests, registered as type "fake". It records
// every run and returns what the test told it to, through the package registry
// keyed by the config's instance name:
//
//	actions: [{type: fake, instance: "TestSomething", name: first}]
//
//	a := fake.Get("TestSomething")
//	a.SetResult("first", "done", nil)
//	a.OnRun(func(r fake.Record) { started <- r })
//
// Unlike a real action it has no effect to repeat, so it runs again when
// interrupted; it records Interrupted so that tests can see it. It is safe for
// concurrent use.
package fake

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/action"
)

func init() {
	action.Registry.Register("fake", func() action.Config { return &Config{} })
}

// Config configures the fake action.
type Config struct {
	// Instance names the *Action in the package registry (see Get).
	Instance string `yaml:"instance" json:"instance"`
	// Name tells the steps of one instance apart in the records.
	Name string `yaml:"name" json:"name,omitempty"`
}

// Validate requires an instance name.
func (c *Config) Validate() error {
	if c.Instance == "" {
		return errors.New("instance: is required (the name tests pass to fake.Get)")
	}
	return nil
}

// New returns a step of the registered instance.
func (c *Config) New(env action.Env) (action.Action, error) {
	return step{a: Get(c.Instance), name: c.Name, env: env}, nil
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Action{}
)

// Get returns the action registered under name, creating it if needed.
func Get(name string) *Action {
	registryMu.Lock()
	defer registryMu.Unlock()
	a, ok := registry[name]
	if !ok {
		a = &Action{name: name, results: map[string]result{}, gates: map[string]chan struct{}{}}
		registry[name] = a
	}
	return a
}

// Forget removes the action registered under name (a test's cleanup).
func Forget(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(registry, name)
}

// Record is one run of a step.
type Record struct {
	Name        string
	ActivityID  int64
	Cluster     string
	Trigger     string
	Attempt     int
	Interrupted bool
	Vars        map[string]string
	Started     time.Time
}

type result struct {
	out string
	err error
}

// Action is the fake's state.
type Action struct {
	name string

	mu      sync.Mutex
	runs    []Record
	results map[string]result
	gates   map[string]chan struct{}
	onRun   func(Record)
}

type step struct {
	a    *Action
	name string
	env  action.Env
}

// Run records the run, calls the OnRun hook, waits for the step's gate (see
// Hold) and returns the step's result (default: "ran NAME", no error).
func (s step) Run(ctx context.Context, r action.Run) (string, error) {
	rec := Record{Name: s.name, ActivityID: r.Activity.ID, Cluster: r.Cluster, Trigger: r.Trigger,
		Attempt: r.Attempt, Interrupted: r.Interrupted, Vars: maps.Clone(r.Vars), Started: time.Now()}
	a := s.a
	a.mu.Lock()
	a.runs = append(a.runs, rec)
	hook, gate := a.onRun, a.gates[s.name]
	res, ok := a.results[s.name]
	a.mu.Unlock()
	if hook != nil {
		hook(rec)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", fmt.Errorf("fake action %s: %w", s.name, ctx.Err())
		}
	}
	if !ok {
		return "ran " + s.name, nil
	}
	return res.out, res.err
}

// SetResult sets what the steps named name return.
func (a *Action) SetResult(name, out string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.results[name] = result{out: out, err: err}
}

// Hold makes the steps named name wait, once started, until the returned
// release function is called (or their ctx ends).
func (a *Action) Hold(name string) (release func()) {
	ch := make(chan struct{})
	a.mu.Lock()
	a.gates[name] = ch
	a.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			if a.gates[name] == ch {
				delete(a.gates, name)
			}
			a.mu.Unlock()
			close(ch)
		})
	}
}

// OnRun calls fn at the start of every run, outside the fake's lock.
func (a *Action) OnRun(fn func(Record)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.onRun = fn
}

// Runs returns every run, in the order they started.
func (a *Action) Runs() []Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.runs)
}

// Names returns the step name of every run, in order.
func (a *Action) Names() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, len(a.runs))
	for i, r := range a.runs {
		out[i] = r.Name
	}
	return out
}
