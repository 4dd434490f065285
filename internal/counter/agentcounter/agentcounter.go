// Package agentcounter is the "agent" counter source: it reads the value a
// node's agent (goscaler agent) pushed to the server, instead of asking the
// node. A value older than max_age is no value: the reading is an error, never
// the stale number.
package agentcounter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
)

// DefaultMaxAge is how old a pushed value may be by default: three times the
// agent's default interval (5s).
const DefaultMaxAge = 15 * time.Second

func init() {
	counter.Registry.Register("agent", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "agent" counter source.
type Config struct {
	// Metric is the name the agent pushes the value under (its --counter
	// name); default: the counter's own name.
	Metric string `yaml:"metric" json:"metric"`
	// MaxAge is how old the pushed value may be; default 15s.
	MaxAge plugin.Duration `yaml:"max_age" json:"max_age"`
}

// DefaultScope is node: each node's agent pushes its own values.
func (c *Config) DefaultScope() counter.Scope { return counter.ScopeNode }

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxAge != 0 && c.MaxAge < plugin.Duration(time.Second) {
		errs = append(errs, fmt.Errorf("max_age: %s is too short: use at least 1s (a few agent intervals)", c.MaxAge))
	}
	if strings.TrimSpace(c.Metric) != c.Metric {
		errs = append(errs, fmt.Errorf("metric: %q has leading or trailing spaces", c.Metric))
	}
	return errors.Join(errs...)
}

// New builds the source on the server's agent reports.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("agent counter: %w", err)
	}
	if env.Agents == nil {
		return nil, errors.New("agent counter: this server does not receive agent reports")
	}
	s := &Source{agents: env.Agents, metric: c.Metric, maxAge: c.MaxAge.D()}
	if s.metric == "" {
		s.metric = env.Counter
	}
	if s.maxAge == 0 {
		s.maxAge = DefaultMaxAge
	}
	return s, nil
}

// Source reads pushed values. It is safe for concurrent use.
type Source struct {
	agents counter.AgentValues
	metric string
	maxAge time.Duration
}

var _ counter.Source = (*Source)(nil)

// Read returns the value node t.NodeID's agent pushed last, if it is recent.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("agent counter %q: %w", s.metric, err)
	}
	if t.NodeID == "" {
		return 0, fmt.Errorf("agent counter %q: a cluster-scoped reading has no node whose agent pushes it: use scope: node", s.metric)
	}
	v, ok, reported, known := s.agents.AgentValue(t.NodeID, s.metric)
	switch {
	case !reported:
		return 0, fmt.Errorf("no value pushed: node %s's agent has not reported (is goscaler agent running on it?)", t.NodeID)
	case !ok:
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return 0, fmt.Errorf("no value pushed for %q: node %s's agent reports other counters (%s); start it with --counter %s=COMMAND", s.metric, t.NodeID, list, s.metric)
	case v.Age > s.maxAge:
		return 0, fmt.Errorf("no value pushed for %s: node %s's agent last reported %s ago (max_age %s)", s.maxAge, t.NodeID, v.Age.Round(time.Second), s.maxAge)
	case v.Err != "":
		return 0, fmt.Errorf("node %s's agent could not measure %q: %s", t.NodeID, s.metric, v.Err)
	}
	return v.Value, nil
}
