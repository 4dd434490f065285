// Package distscript holds the distributed_script action: a script run on
// every in-service node of a cluster (or a chosen subset) over SSH, in
// parallel under a concurrency limit. The script is copied to each node over
// SFTP (a private temporary file, removed afterwards); each node's exit code,
// output and duration go into the activity.
package distscript

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/onnodes"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
)

func init() {
	action.Registry.Register("distributed_script", func() action.Config { return &Config{} })
}

// Defaults.
const (
	DefaultTimeout   = 5 * time.Minute
	DefaultRemoteDir = "/tmp"
	// MaxScriptSize bounds the script file.
	MaxScriptSize  = 1 << 20
	cleanupTimeout = 10 * time.Second
)

// Config configures distributed_script.
type Config struct {
	// Script is the path of the script file on the goscaler host; Inline is
	// the script's text. Exactly one is set. A script that starts with #!
	// is run as is, any other with Interpreter.
	Script string `yaml:"script" json:"script,omitempty"`
	Inline string `yaml:"inline" json:"inline,omitempty"`
	// Interpreter runs a script without #!; default "sh".
	Interpreter string `yaml:"interpreter" json:"interpreter,omitempty"`
	// Args are the script's arguments, templates over the node's variables
	// ({{.NodeID}}, {{.Host}}, {{.Cluster}}, …).
	Args []string `yaml:"args" json:"args,omitempty"`
	// Env adds environment variables (values are templates) to the
	// GOSCALER_* ones every run gets.
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// RemoteDir is where the script is copied on the node; default /tmp.
	RemoteDir string `yaml:"remote_dir" json:"remote_dir,omitempty"`
	// Timeout bounds the run on each node; the remote script is killed then.
	Timeout plugin.Duration `yaml:"timeout" json:"timeout"`
	// Idempotent lets a run cut off by a server crash be run again.
	Idempotent bool `yaml:"idempotent" json:"idempotent,omitempty"`

	onnodes.Select `yaml:",inline"`
}

// Validate checks every key and fills the defaults.
func (c *Config) Validate() error {
	var errs []error
	if (c.Script == "") == (c.Inline == "") {
		errs = append(errs, errors.New("set exactly one of script: (a file on the goscaler host) or inline: (the script's text)"))
	}
	if c.Inline != "" && len(c.Inline) > MaxScriptSize {
		errs = append(errs, fmt.Errorf("inline: the script is larger than %d KiB", MaxScriptSize>>10))
	}
	for i, a := range c.Args {
		if _, err := plugin.ParseTemplate(a); err != nil {
			errs = append(errs, fmt.Errorf("args[%d]: %w", i, err))
		}
	}
	for k, v := range c.Env {
		if !validEnv(k) {
			errs = append(errs, fmt.Errorf("env: %q is not an environment variable name", k))
		}
		if _, err := plugin.ParseTemplate(v); err != nil {
			errs = append(errs, fmt.Errorf("env %s: %w", k, err))
		}
	}
	if c.Interpreter == "" {
		c.Interpreter = "sh"
	}
	if c.RemoteDir == "" {
		c.RemoteDir = DefaultRemoteDir
	}
	if !path.IsAbs(c.RemoteDir) {
		errs = append(errs, fmt.Errorf("remote_dir: %q is not an absolute path", c.RemoteDir))
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
		return nil, fmt.Errorf("distributed_script: cluster %q has no SSH pool", env.Cluster)
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

func (s *run) Run(ctx context.Context, r action.Run) (string, error) {
	if err := action.CheckInterrupted(r, s.c.Idempotent); err != nil {
		return "", err
	}
	body := []byte(s.c.Inline)
	if s.c.Script != "" {
		b, err := os.ReadFile(s.c.Script)
		if err != nil {
			return "", fmt.Errorf("%w: script: %w", action.ErrPermanent, err)
		}
		if len(b) > MaxScriptSize {
			return "", fmt.Errorf("%w: script: %s is larger than %d KiB", action.ErrPermanent, s.c.Script, MaxScriptSize>>10)
		}
		body = b
	}
	targets, skipped, err := onnodes.Targets(ctx, r, s.c.Select)
	if err != nil {
		return "", err
	}
	results := onnodes.RunAll(ctx, targets, s.c.Concurrency, func(ctx context.Context, t onnodes.Target) onnodes.Result {
		return s.onNode(ctx, r, t, body)
	})
	return onnodes.Outcome(s.c.Select, "script", results, skipped)
}

// onNode copies the script to t, runs it and removes it.
func (s *run) onNode(ctx context.Context, r action.Run, t onnodes.Target, body []byte) (res onnodes.Result) {
	res = onnodes.Result{ExitCode: -1, Endpoint: s.env.SSH.Resolve(t.Endpoint).String()}
	start := time.Now()
	defer func() { res.Duration = time.Since(start) }()
	cmd, err := s.command(t)
	if err != nil {
		res.Err = err
		return res
	}
	remote := path.Join(s.c.RemoteDir, fmt.Sprintf("goscaler-script-%d-%s-%s", r.Activity.ID, safe(t.Node.ID), strconv.FormatInt(time.Now().UnixNano(), 36)))
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout.D())
	defer cancel()
	if _, err := s.env.SSH.Upload(ctx, t.Endpoint, strings.NewReader(string(body)), remote, 0o700); err != nil {
		res.Err = fmt.Errorf("copying the script: %w", err)
		return res
	}
	defer func() {
		// Removed even when the run timed out or was cancelled.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if _, err := s.env.SSH.Run(cctx, t.Endpoint, "rm -f "+sshx.ShellQuote(remote)); err != nil {
			s.env.Logger.Warn("removing the script from a node failed", "node", t.Node.ID, "path", remote, "err", err)
		}
	}()
	runCmd := cmd + " " + sshx.ShellQuote(remote)
	if !strings.HasPrefix(string(body), "#!") {
		runCmd = cmd + " " + sshx.ShellQuote(s.c.Interpreter) + " " + sshx.ShellQuote(remote)
	}
	for i, a := range s.c.Args {
		v, err := plugin.Render(a, t.Vars)
		if err != nil {
			res.Err = fmt.Errorf("args[%d]: %w", i, err)
			return res
		}
		runCmd += " " + sshx.ShellQuote(v)
	}
	out, err := s.env.SSH.RunWith(ctx, t.Endpoint, runCmd, sshx.RunOptions{})
	res.ExitCode, res.Stdout, res.Stderr = out.ExitCode, string(out.Stdout), string(out.Stderr)
	if out.StdoutCut {
		res.Stdout += "\n[stdout cut]"
	}
	if out.StderrCut {
		res.Stderr += "\n[stderr cut]"
	}
	if err != nil {
		var exit *sshx.ExitError
		if errors.As(err, &exit) {
			res.Err = exit
		} else {
			res.Err = err
		}
	}
	return res
}

// command is the environment prefix of the run on t: `cd dir && env …`.
func (s *run) command(t onnodes.Target) (string, error) {
	env := onnodes.Env(t.Vars, "GOSCALER_", onnodes.UpperSnake)
	for k, v := range s.c.Env {
		val, err := plugin.Render(v, t.Vars)
		if err != nil {
			return "", fmt.Errorf("env %s: %w", k, err)
		}
		env = append(env, k+"="+sshx.ShellQuote(val))
	}
	return "cd " + sshx.ShellQuote(s.c.RemoteDir) + " && env " + strings.Join(env, " "), nil
}

// safe keeps a node ID usable in a file name.
func safe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func validEnv(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}
