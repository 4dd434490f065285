// Package exec is the "exec" counter source: it runs a local command and reads
// the number the command prints on stdout.
//
// The command runs in its own process group; when the reading's context is
// done, the whole group is killed, so that a shell's children do not outlive
// a timed-out reading. Besides the server's environment and the configured
// one, the command gets GOSCALER_CLUSTER, GOSCALER_NODE and GOSCALER_ADDRESS
// (the last two empty for a cluster-scoped reading).
package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	osexec "os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
)

const (
	// Shell is the shell that runs the shell key.
	Shell = "/bin/sh"

	maxStdout = 64 << 10
	maxStderr = 16 << 10
	// waitDelay bounds how long a reading waits for the output pipes once the
	// command has exited or was killed.
	waitDelay = 500 * time.Millisecond
)

func init() {
	counter.Registry.Register("exec", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "exec" counter source. Exactly one of
// Command and Shell is set.
type Config struct {
	// Command is the argv to run; each element is a template over the target
	// vars ({{.Cluster}}, {{.NodeID}}, {{.Address}}, … and the cluster's vars).
	Command []string `yaml:"command" json:"command"`
	// Env is extra environment for the command; values are templates.
	Env map[string]string `yaml:"env" json:"env"`
	// Shell is a script run with `sh -c`, instead of Command; it is a template
	// too. The target's vars are also in the environment (GOSCALER_*), which is
	// the safer way to hand them to a script.
	Shell string `yaml:"shell" json:"shell"`
}

// DefaultScope is ScopeCluster: a command usually reads a cluster-wide number.
func (c *Config) DefaultScope() counter.Scope { return counter.ScopeCluster }

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

var reservedEnv = []string{"GOSCALER_CLUSTER", "GOSCALER_NODE", "GOSCALER_ADDRESS"}

func (c *Config) compile() (*Source, error) {
	var errs []error
	s := &Source{env: map[string]*plugin.Template{}}
	switch {
	case len(c.Command) == 0 && c.Shell == "":
		errs = append(errs, errors.New("command: set either command (a program and its arguments) or shell (a script)"))
	case len(c.Command) > 0 && c.Shell != "":
		errs = append(errs, errors.New("shell: set either command or shell, not both"))
	case c.Shell != "":
		t, err := plugin.ParseTemplate(c.Shell)
		if err != nil {
			errs = append(errs, fmt.Errorf("shell: %w", err))
		}
		s.argv = []*plugin.Template{plugin.MustParseTemplate(Shell), plugin.MustParseTemplate("-c"), t}
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
		case k == "" || strings.ContainsAny(k, "=\x00"):
			errs = append(errs, fmt.Errorf("env: %q is not a valid variable name", k))
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
	return s, errors.Join(errs...)
}

// New builds the source.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	s, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("exec counter: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("counter", env.Counter, "cluster", env.Cluster)
	return s, nil
}

// Source runs the command at each reading. It is safe for concurrent use.
type Source struct {
	argv []*plugin.Template
	env  map[string]*plugin.Template
	log  *slog.Logger
}

var _ counter.Source = (*Source)(nil)

// Read runs the command and parses its trimmed stdout as a number.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	vars := targetVars(t)
	argv, environ, err := s.render(vars)
	if err != nil {
		return 0, err
	}
	environ = append(environ,
		"GOSCALER_CLUSTER="+t.Cluster,
		"GOSCALER_NODE="+t.NodeID,
		"GOSCALER_ADDRESS="+t.Address,
	)
	desc := fmt.Sprintf("command %q", short(strings.Join(argv, " "), 80))
	if err := ctx.Err(); err != nil {
		return 0, ctxError(desc, 0, err)
	}

	var stdout, stderr capped
	stdout.max, stderr.max = maxStdout, maxStderr
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = environ
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: a shell's children too.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	cmd.WaitDelay = waitDelay

	start := time.Now()
	err = cmd.Run()
	elapsed := time.Since(start)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return 0, ctxError(desc, elapsed, ctx.Err())
	case errors.Is(err, osexec.ErrWaitDelay):
		// The command exited successfully, but something it started in the
		// background still holds its output: kill the rest of the group and
		// use what was printed.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		s.log.Warn("counter command left processes behind; killed them", "command", desc)
	default:
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			if line := firstLine(stderr.buf.String()); line != "" {
				return 0, fmt.Errorf("%s: %w: %s", desc, err, line)
			}
		}
		return 0, fmt.Errorf("%s: %w", desc, err)
	}
	return parseOutput(desc, &stdout, &stderr)
}

// ctxError says why a reading stopped early.
func ctxError(desc string, elapsed time.Duration, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out after %s: %w", desc, elapsed.Round(time.Millisecond), err)
	}
	return fmt.Errorf("%s: %w", desc, err)
}

// parseOutput reads the number the command printed.
func parseOutput(desc string, stdout, stderr *capped) (float64, error) {
	if stdout.over {
		return 0, fmt.Errorf("%s: output larger than %d KiB, expected one number", desc, maxStdout>>10)
	}
	out := strings.TrimSpace(stdout.buf.String())
	if out == "" {
		if line := firstLine(stderr.buf.String()); line != "" {
			return 0, fmt.Errorf("%s: empty output, expected a number on stdout (stderr: %s)", desc, line)
		}
		return 0, fmt.Errorf("%s: empty output, expected a number on stdout", desc)
	}
	v, err := strconv.ParseFloat(out, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%s: output %q is out of range", desc, short(out, 100))
	case err != nil:
		return 0, fmt.Errorf("%s: output %q is not a number", desc, short(out, 100))
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%s: output %q is not a finite number", desc, short(out, 100))
	}
	return v, nil
}

// targetVars are the target's vars, completed with its own fields.
func targetVars(t counter.Target) map[string]string {
	vars := make(map[string]string, len(t.Vars)+3)
	maps.Copy(vars, t.Vars)
	for k, v := range map[string]string{"Cluster": t.Cluster, "NodeID": t.NodeID, "Address": t.Address} {
		if _, ok := vars[k]; !ok && v != "" {
			vars[k] = v
		}
	}
	return vars
}

// render renders the argv and the environment of one reading.
func (s *Source) render(vars map[string]string) (argv, environ []string, err error) {
	var errs []error
	for i, t := range s.argv {
		a, err := t.Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("command[%d]: %w", i, err))
		}
		argv = append(argv, a)
	}
	if len(argv) > 0 && argv[0] == "" {
		errs = append(errs, errors.New("command[0]: the program renders empty"))
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(reservedEnv, k) {
			environ = append(environ, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(s.env)) {
		v, err := s.env[k].Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("env.%s: %w", k, err))
		}
		environ = append(environ, k+"="+v)
	}
	return argv, environ, errors.Join(errs...)
}

// capped is a buffer that keeps the first max bytes written to it.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.buf.Len(); len(p) > room {
		p = p[:max(room, 0)]
		c.over = true
	}
	c.buf.Write(p)
	return n, nil
}

// firstLine is the first non-blank line of s, shortened.
func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return short(line, 200)
		}
	}
	return ""
}

// short cuts s to at most n bytes (on a rune boundary), marking the cut.
func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !isRuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
