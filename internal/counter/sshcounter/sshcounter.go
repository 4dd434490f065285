// Package sshcounter is the "ssh" counter source: it runs a command on each
// node over SSH and reads the number the command prints on stdout.
//
// Readings go through the cluster's SSH pool (package sshx): one connection
// per node, shared by every counter of the cluster, with sessions
// multiplexed over it. The node is reached at the SSH host, port and user its
// provider recorded (the static provider's host list), else at the host of
// its address with the cluster's ssh settings; the counter's own host, port
// and user override both. When a reading's timeout ends, the remote command
// is killed.
//
// The command gets GOSCALER_CLUSTER, GOSCALER_NODE and GOSCALER_ADDRESS in
// its environment, and the configured env.
package sshcounter

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
)

func init() {
	counter.Registry.Register("ssh", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "ssh" counter source. Exactly one of
// Command and Shell is set.
type Config struct {
	// Command is a program and its arguments; each element is a template
	// over the target's vars, and is quoted for the remote sh.
	Command []string `yaml:"command" json:"command,omitempty"`
	// Shell is a line for sh on the host (a template, not quoted:
	// pipes and redirections work).
	Shell string `yaml:"shell" json:"shell,omitempty"`
	// Env is extra environment for the command; values are templates.
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// Host (a template) is where to run the command instead of the node:
	// required for a cluster-scoped counter.
	Host string `yaml:"host" json:"host,omitempty"`
	// Port and User override the node's SSH port and user.
	Port int    `yaml:"port" json:"port,omitempty"`
	User string `yaml:"user" json:"user,omitempty"`
}

// DefaultScope is ScopeNode: the command runs on every node.
func (c *Config) DefaultScope() counter.Scope { return counter.ScopeNode }

// CheckScope requires host for a cluster-scoped counter: there is no node to
// run the command on.
func (c *Config) CheckScope(scope counter.Scope) error {
	if scope == counter.ScopeCluster && c.Host == "" {
		return errors.New("host: a cluster-scoped ssh counter needs host: (where to run the command)")
	}
	return nil
}

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

var (
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reservedEnv = []string{"GOSCALER_CLUSTER", "GOSCALER_NODE", "GOSCALER_ADDRESS"}
)

func (c *Config) compile() (*Source, error) {
	var errs []error
	s := &Source{env: map[string]*plugin.Template{}, port: c.Port, user: c.User}
	switch {
	case len(c.Command) == 0 && c.Shell == "":
		errs = append(errs, errors.New("command: set either command (a program and its arguments) or shell (a line for sh on the host)"))
	case len(c.Command) > 0 && c.Shell != "":
		errs = append(errs, errors.New("shell: set either command or shell, not both"))
	case c.Shell != "":
		t, err := plugin.ParseTemplate(c.Shell)
		if err != nil {
			errs = append(errs, fmt.Errorf("shell: %w", err))
		}
		s.shell = t
	default:
		for i, a := range c.Command {
			if i == 0 && strings.TrimSpace(a) == "" {
				errs = append(errs, errors.New("command[0]: the program must not be empty"))
				continue
			}
			t, err := plugin.ParseTemplate(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("command[%d]: %w", i, err))
				continue
			}
			s.argv = append(s.argv, t)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		switch {
		case !envName.MatchString(k):
			errs = append(errs, fmt.Errorf("env: %q is not a valid variable name (letters, digits, _)", k))
			continue
		case slices.Contains(reservedEnv, k):
			errs = append(errs, fmt.Errorf("env.%s: reserved, goscaler sets it itself", k))
			continue
		}
		t, err := plugin.ParseTemplate(c.Env[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("env.%s: %w", k, err))
			continue
		}
		s.env[k] = t
	}
	if c.Host != "" {
		t, err := plugin.ParseTemplate(c.Host)
		if err != nil {
			errs = append(errs, fmt.Errorf("host: %w", err))
		}
		s.host = t
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port (1-65535)", c.Port))
	}
	if strings.ContainsAny(c.User, " \t\n@:") {
		errs = append(errs, fmt.Errorf("user: %q is not a login name", c.User))
	}
	return s, errors.Join(errs...)
}

// New builds the source on env.SSH, the cluster's SSH pool.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	s, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("ssh counter: %w", err)
	}
	if env.SSH == nil {
		return nil, errors.New("ssh counter: no SSH connection pool (the server gives each cluster one)")
	}
	s.pool = env.SSH
	return s, nil
}

// Source runs the command at each reading. It is safe for concurrent use.
type Source struct {
	argv  []*plugin.Template
	shell *plugin.Template
	env   map[string]*plugin.Template
	host  *plugin.Template
	port  int
	user  string
	pool  *sshx.Pool
}

var _ counter.Source = (*Source)(nil)

// Read runs the command on the target's node and parses its trimmed stdout
// as a number. Every error names the host and the command.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	vars := t.TemplateVars()
	line, shown, err := s.render(vars, t)
	if err != nil {
		return 0, err
	}
	ep, err := s.endpoint(vars, t)
	if err != nil {
		return 0, fmt.Errorf("ssh: %s: %w", shown, err)
	}
	res, err := s.pool.Run(ctx, ep, line)
	if err != nil {
		var se *sshx.Error
		if errors.As(err, &se) {
			return 0, fmt.Errorf("ssh %s: %s: %w", se.Endpoint, shown, se.Err)
		}
		return 0, fmt.Errorf("ssh %s: %s: %w", s.pool.Resolve(ep), shown, err)
	}
	v, err := parse(res)
	if err != nil {
		return 0, fmt.Errorf("ssh %s: %s: %w", s.pool.Resolve(ep), shown, err)
	}
	return v, nil
}

// parse reads the number a command printed.
func parse(res sshx.Result) (float64, error) {
	if res.StdoutCut {
		return 0, fmt.Errorf("output larger than %d KiB, expected one number", sshx.DefaultMaxStdout>>10)
	}
	out := strings.TrimSpace(string(res.Stdout))
	if out == "" {
		if line := sshx.FirstLine(string(res.Stderr)); line != "" {
			return 0, fmt.Errorf("empty output, expected a number on stdout (stderr: %s)", line)
		}
		return 0, errors.New("empty output, expected a number on stdout")
	}
	v, err := counter.ParseNumber(out)
	if err != nil {
		return 0, fmt.Errorf("output %w", err)
	}
	return v, nil
}

// render returns the remote command line, and how to show it in errors
// (without the environment prefix).
func (s *Source) render(vars map[string]string, t counter.Target) (line, shown string, err error) {
	var errs []error
	var cmd string
	if s.shell != nil {
		cmd, err = s.shell.Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("shell: %w", err))
		}
	} else {
		words := make([]string, 0, len(s.argv))
		for i, a := range s.argv {
			w, err := a.Render(vars)
			if err != nil {
				errs = append(errs, fmt.Errorf("command[%d]: %w", i, err))
			}
			words = append(words, sshx.ShellQuote(w))
		}
		cmd = strings.Join(words, " ")
	}
	env := []string{
		"GOSCALER_CLUSTER=" + sshx.ShellQuote(t.Cluster),
		"GOSCALER_NODE=" + sshx.ShellQuote(t.NodeID),
		"GOSCALER_ADDRESS=" + sshx.ShellQuote(t.Address),
	}
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		v, err := s.env[k].Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("env.%s: %w", k, err))
		}
		env = append(env, k+"="+sshx.ShellQuote(v))
	}
	shown = fmt.Sprintf("command %q", sshx.Short(cmd, 80))
	if err := errors.Join(errs...); err != nil {
		return "", shown, fmt.Errorf("ssh counter: %w", err)
	}
	return "export " + strings.Join(env, " ") + "\n" + cmd, shown, nil
}

// endpoint is where the command runs: the counter's host, else the node's
// SSH endpoint; the counter's port and user win.
func (s *Source) endpoint(vars map[string]string, t counter.Target) (sshx.Endpoint, error) {
	var ep sshx.Endpoint
	if s.host != nil {
		h, err := s.host.Render(vars)
		if err != nil {
			return ep, fmt.Errorf("host: %w", err)
		}
		// host may carry a port: "db1:2222".
		if hh, p, err := net.SplitHostPort(h); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return ep, fmt.Errorf("host %q: the port is not a number", h)
			}
			h, ep.Port = hh, n
		}
		ep.Host = h
	} else {
		if t.NodeID == "" {
			return ep, errors.New("no node to run on: set host, where a cluster-scoped ssh counter runs")
		}
		var err error
		if ep, err = sshx.NodeEndpoint(t.Address, t.Meta); err != nil {
			return ep, fmt.Errorf("node %s: %w", t.NodeID, err)
		}
	}
	if s.port != 0 {
		ep.Port = s.port
	}
	if s.user != "" {
		ep.User = s.user
	}
	return ep, nil
}
