// Package osconfig holds the os_configuration action: `puppet apply` of a
// manifest on a cluster's nodes over SSH, with the node's variables as
// facts (FACTER_goscaler_cluster, FACTER_goscaler_node, …), and a summary of
// each run (changed and failed resources) in the activity.
package osconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/onnodes"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
)

func init() {
	action.Registry.Register("os_configuration", func() action.Config { return &Config{} })
}

// ToolPuppet is the only tool so far.
const ToolPuppet = "puppet"

// Defaults.
const (
	DefaultTimeout = 15 * time.Minute
	MaxManifest    = 1 << 20
	cleanupTimeout = 10 * time.Second
)

// Config configures os_configuration.
type Config struct {
	// Tool is "puppet" (the default).
	Tool string `yaml:"tool" json:"tool,omitempty"`
	// Manifest is a manifest file on the goscaler host, copied to each node
	// over SFTP; RemoteManifest is one already on the nodes. Exactly one is
	// set.
	Manifest       string `yaml:"manifest" json:"manifest,omitempty"`
	RemoteManifest string `yaml:"remote_manifest" json:"remote_manifest,omitempty"`
	// Puppet is the puppet command on the nodes; default "puppet".
	Puppet string `yaml:"puppet" json:"puppet,omitempty"`
	// Facts adds facts (values are templates over the node's variables) to
	// the goscaler_* ones every run gets.
	Facts map[string]string `yaml:"facts" json:"facts,omitempty"`
	// Noop runs puppet with --noop: it reports what it would change.
	Noop bool `yaml:"noop" json:"noop,omitempty"`
	// Timeout bounds the run on each node; puppet is killed then.
	Timeout plugin.Duration `yaml:"timeout" json:"timeout"`

	onnodes.Select `yaml:",inline"`
}

var factName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Validate checks every key and fills the defaults.
func (c *Config) Validate() error {
	var errs []error
	switch c.Tool {
	case "":
		c.Tool = ToolPuppet
	case ToolPuppet:
	default:
		errs = append(errs, fmt.Errorf("tool: %q is not supported (puppet)", c.Tool))
	}
	if (c.Manifest == "") == (c.RemoteManifest == "") {
		errs = append(errs, errors.New("set exactly one of manifest: (a file on the goscaler host) or remote_manifest: (a path on the nodes)"))
	}
	if c.RemoteManifest != "" && !path.IsAbs(c.RemoteManifest) {
		errs = append(errs, fmt.Errorf("remote_manifest: %q is not an absolute path", c.RemoteManifest))
	}
	if c.Puppet == "" {
		c.Puppet = "puppet"
	}
	for k, v := range c.Facts {
		if !factName.MatchString(k) {
			errs = append(errs, fmt.Errorf("facts: %q is not a fact name (lower case letters, digits and _)", k))
		}
		if _, err := plugin.ParseTemplate(v); err != nil {
			errs = append(errs, fmt.Errorf("facts %s: %w", k, err))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s must not be negative", c.Timeout))
	}
	if c.Timeout == 0 {
		c.Timeout = plugin.Duration(DefaultTimeout)
	}
	errs = append(errs, c.Select.Validate()...)
	return errors.Join(errs...)
}

// New builds the action.
func (c *Config) New(env action.Env) (action.Action, error) {
	if env.SSH == nil {
		return nil, fmt.Errorf("os_configuration: cluster %q has no SSH pool", env.Cluster)
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	return &run{c: *c, env: env}, nil
}

type run struct {
	c   Config
	env action.Env
}

// Run applies the manifest on every target node. A run cut off by a crash
// is run again: applying a manifest is idempotent.
func (s *run) Run(ctx context.Context, r action.Run) (string, error) {
	var manifest []byte
	if s.c.Manifest != "" {
		b, err := os.ReadFile(s.c.Manifest)
		if err != nil {
			return "", fmt.Errorf("%w: manifest: %w", action.ErrPermanent, err)
		}
		if len(b) > MaxManifest {
			return "", fmt.Errorf("%w: manifest: %s is larger than %d KiB", action.ErrPermanent, s.c.Manifest, MaxManifest>>10)
		}
		manifest = b
	}
	targets, skipped, err := onnodes.Targets(ctx, r, s.c.Select)
	if err != nil {
		return "", err
	}
	results := onnodes.RunAll(ctx, targets, s.c.Concurrency, func(ctx context.Context, t onnodes.Target) onnodes.Result {
		return s.onNode(ctx, r, t, manifest)
	})
	return onnodes.Outcome(s.c.Select, "puppet apply", results, skipped)
}

func (s *run) onNode(ctx context.Context, r action.Run, t onnodes.Target, manifest []byte) (res onnodes.Result) {
	res = onnodes.Result{ExitCode: -1, Endpoint: s.env.SSH.Resolve(t.Endpoint).String()}
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout.D())
	defer cancel()
	env := onnodes.Env(t.Vars, "FACTER_goscaler_", onnodes.LowerSnake)
	env = append(env, "FACTER_goscaler_node="+sshx.ShellQuote(t.Node.ID))
	for k, v := range s.c.Facts {
		val, err := plugin.Render(v, t.Vars)
		if err != nil {
			res.Err = fmt.Errorf("facts %s: %w", k, err)
			return res
		}
		env = append(env, "FACTER_"+k+"="+sshx.ShellQuote(val))
	}
	target := s.c.RemoteManifest
	if manifest != nil {
		target = fmt.Sprintf("/tmp/goscaler-manifest-%d-%s-%s.pp", r.Activity.ID, safe(t.Node.ID), strconv.FormatInt(time.Now().UnixNano(), 36))
		if _, err := s.env.SSH.Upload(ctx, t.Endpoint, strings.NewReader(string(manifest)), target, 0o600); err != nil {
			res.Err = fmt.Errorf("copying the manifest: %w", err)
			return res
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if _, err := s.env.SSH.Run(cctx, t.Endpoint, "rm -f "+sshx.ShellQuote(target)); err != nil {
				s.env.Logger.Warn("removing the manifest from a node failed", "node", t.Node.ID, "path", target, "err", err)
			}
		}()
	}
	cmd := "env " + strings.Join(env, " ") + " " + sshx.ShellQuote(s.c.Puppet) +
		" apply --detailed-exitcodes --summarize --logdest console --color false"
	if s.c.Noop {
		cmd += " --noop"
	}
	cmd += " " + sshx.ShellQuote(target)
	out, err := s.env.SSH.RunWith(ctx, t.Endpoint, cmd, sshx.RunOptions{})
	res.ExitCode, res.Stdout, res.Stderr = out.ExitCode, string(out.Stdout), string(out.Stderr)
	sum := ParseSummary(res.Stdout)
	res.Summary = sum.String()
	var exit *sshx.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.Signal == "" && exit.Code == 2:
		// --detailed-exitcodes: 2 is "changes applied".
	case errors.As(err, &exit) && exit.Signal == "":
		res.Err = fmt.Errorf("puppet apply exit code %d (%s)%s", exit.Code, exitMeaning(exit.Code), firstErr(res.Stdout+res.Stderr))
	default:
		res.Err = err
	}
	return res
}

func exitMeaning(code int) string {
	switch code {
	case 4:
		return "some resources failed"
	case 6:
		return "changes applied, some resources failed"
	case 1:
		return "the run failed"
	case 127:
		return "puppet not found on the node"
	}
	return "failure"
}

// firstErr is ": " and the first "Error:" line of puppet's output, if any.
func firstErr(s string) string {
	for line := range strings.Lines(s) {
		// Facter's complaints about facts it cannot read are noise.
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "Error:") && !strings.HasPrefix(line, "Error: Facter:") {
			return ": " + sshx.Short(line, 200)
		}
	}
	return ""
}

// Summary is what --summarize reports of a run.
type Summary struct {
	Found                             bool
	Total, Changed, Failed, OutOfSync int
	Events                            int
}

// String is one line for the report.
func (s Summary) String() string {
	if !s.Found {
		return ""
	}
	return fmt.Sprintf("resources: %d total, %d changed, %d failed, %d out of sync", s.Total, s.Changed, s.Failed, s.OutOfSync)
}

// ParseSummary reads the Resources section that `puppet apply --summarize`
// prints.
func ParseSummary(out string) Summary {
	var s Summary
	section := ""
	for line := range strings.Lines(out) {
		trimmed := strings.TrimSpace(line)
		if strings.HasSuffix(trimmed, ":") && !strings.HasPrefix(line, " ") {
			section = strings.TrimSuffix(trimmed, ":")
			continue
		}
		k, v, ok := strings.Cut(trimmed, ":")
		if !ok || section != "Resources" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		s.Found = true
		switch strings.TrimSpace(k) {
		case "Total":
			s.Total = n
		case "Changed":
			s.Changed = n
		case "Failed":
			s.Failed = n
		case "Out of sync":
			s.OutOfSync = n
		}
	}
	return s
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
