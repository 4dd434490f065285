// Package script holds the local_script action: a command run on the goscaler
// host with the cluster, trigger and cause in its environment.
package script

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/plugin"
)

func init() {
	action.Registry.Register("local_script", func() action.Config { return &Config{} })
}

// maxOutput bounds the stdout and stderr kept in the activity.
const maxOutput = 64 << 10

// Config configures local_script.
type Config struct {
	// Command is argv; Shell is a line for sh -c. Exactly one is set. Both are
	// templates over the run's variables ({{.Cluster}}, {{.Trigger}}, …).
	Command []string          `yaml:"command" json:"command,omitempty"`
	Shell   string            `yaml:"shell" json:"shell,omitempty"`
	Env     map[string]string `yaml:"env" json:"env,omitempty"`
	Dir     string            `yaml:"dir" json:"dir,omitempty"`
	Timeout plugin.Duration   `yaml:"timeout" json:"timeout"`
	// Idempotent lets a run cut off by a server crash be run again; otherwise
	// such a run is failed rather than risk running twice.
	Idempotent bool `yaml:"idempotent" json:"idempotent"`
}

// Validate checks that exactly one of command and shell is set and that every
// template parses.
func (c *Config) Validate() error {
	var errs []error
	if (len(c.Command) == 0) == (c.Shell == "") {
		errs = append(errs, errors.New("set exactly one of command: (a list) or shell: (a line for sh -c)"))
	}
	for _, s := range append(append([]string{c.Shell, c.Dir}, c.Command...), values(c.Env)...) {
		if _, err := plugin.ParseTemplate(s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Timeout == 0 {
		c.Timeout = plugin.Duration(5 * time.Minute)
	}
	return errors.Join(errs...)
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// New builds the action.
func (c *Config) New(env action.Env) (action.Action, error) { return &run{c: *c, env: env}, nil }

type run struct {
	c   Config
	env action.Env
}

func (s *run) Run(ctx context.Context, r action.Run) (string, error) {
	if err := action.CheckInterrupted(r, s.c.Idempotent); err != nil {
		return "", err
	}
	argv := s.c.Command
	if s.c.Shell != "" {
		argv = []string{"/bin/sh", "-c", s.c.Shell}
	}
	args := make([]string, len(argv))
	for i, a := range argv {
		v, err := plugin.Render(a, r.Vars)
		if err != nil {
			return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
		}
		args[i] = v
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout.D())
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...) //nolint:gosec // the operator configures the command
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(r.Vars))
	for k := range r.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, "GOSCALER_"+envName(k)+"="+r.Vars[k])
	}
	for k, v := range s.c.Env {
		val, err := plugin.Render(v, r.Vars)
		if err != nil {
			return "", fmt.Errorf("%w: env %s: %w", action.ErrPermanent, k, err)
		}
		cmd.Env = append(cmd.Env, k+"="+val)
	}
	if s.c.Dir != "" {
		dir, err := plugin.Render(s.c.Dir, r.Vars)
		if err != nil {
			return "", fmt.Errorf("%w: dir: %w", action.ErrPermanent, err)
		}
		cmd.Dir = dir
	}
	var stdout, stderr limitedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		return "", fmt.Errorf("%w: starting %q: %w", action.ErrPermanent, args[0], err)
	}
	out := fmt.Sprintf("exit code %d after %s\n--- stdout\n%s--- stderr\n%s", code, time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
	if ctx.Err() != nil {
		return out, fmt.Errorf("%w: timed out after %s", action.ErrPermanent, s.c.Timeout)
	}
	if code != 0 {
		return out, fmt.Errorf("%w: exit code %d: %s", action.ErrPermanent, code, firstLine(stderr.String()))
	}
	return out, nil
}

// envName turns a variable name like NodeID into NODE_ID.
func envName(k string) string {
	var b strings.Builder
	for i, r := range k {
		if i > 0 && r >= 'A' && r <= 'Z' && (k[i-1] < 'A' || k[i-1] > 'Z') {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// limitedBuffer keeps the first maxOutput bytes written to it. It wraps the
// buffer instead of embedding it: an embedded bytes.Buffer would expose
// ReadFrom, which os/exec uses, skipping the cap.
type limitedBuffer struct {
	buf     bytes.Buffer
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := maxOutput - b.buf.Len()
	if room <= 0 {
		b.dropped += len(p)
		return len(p), nil
	}
	if len(p) > room {
		b.dropped += len(p) - room
		b.buf.Write(p[:room])
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *limitedBuffer) String() string {
	s := b.buf.String()
	if b.dropped > 0 {
		s += fmt.Sprintf("\n[%d more bytes not kept]\n", b.dropped)
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}
