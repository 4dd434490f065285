package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Output limits of Run, by default.
const (
	DefaultMaxStdout = 64 << 10
	DefaultMaxStderr = 16 << 10
	// closeWait bounds how long a killed session may take to close before
	// its whole connection is dropped.
	closeWait = 2 * time.Second
)

// RunOptions tune one command.
type RunOptions struct {
	// Stdin, if set, is the command's standard input. Without it the command
	// reads nothing, and runs under the wrapper that kills it when the
	// session goes away (see wrap); with it, only the KILL signal sent when
	// ctx ends stops it, which OpenSSH honours for logins other than root
	// (it has no privilege separation for root sessions).
	Stdin io.Reader
	// MaxStdout and MaxStderr cap what is kept of each stream (the rest is
	// read and dropped); defaults DefaultMaxStdout and DefaultMaxStderr.
	MaxStdout, MaxStderr int
}

// Result is what a command printed and how it ended.
type Result struct {
	Stdout, Stderr []byte
	// StdoutCut and StderrCut report output beyond the limits.
	StdoutCut, StderrCut bool
	// ExitCode is the exit status (-1 when the command was killed by a
	// signal or its status is unknown).
	ExitCode int
	Duration time.Duration
}

// ExitError is a command that exited with a non-zero status or was killed by
// a signal.
type ExitError struct {
	Code   int
	Signal string
	// Stderr is the first non-blank line the command wrote to stderr.
	Stderr string
}

func (e *ExitError) Error() string {
	s := fmt.Sprintf("exit status %d", e.Code)
	if e.Signal != "" {
		s = "killed by signal " + e.Signal
	}
	if e.Stderr != "" {
		s += ": " + e.Stderr
	}
	return s
}

// Run runs cmd on ep with `sh -c` (started by the remote user's login
// shell, which must understand POSIX single quotes: sh, bash, dash, zsh,
// ksh) and returns its output. A command that exits non-zero returns its Result and an *ExitError.
// When ctx ends first, the remote command is killed and the error wraps
// ctx's. Every error is an *Error naming the endpoint.
func (p *Pool) Run(ctx context.Context, ep Endpoint, cmd string) (Result, error) {
	return p.RunWith(ctx, ep, cmd, RunOptions{})
}

// RunWith is Run with options.
func (p *Pool) RunWith(ctx context.Context, ep Endpoint, cmd string, opts RunOptions) (Result, error) {
	h, err := p.host(ep)
	if err != nil {
		return Result{ExitCode: -1}, err
	}
	res, err := p.run(ctx, h, cmd, opts)
	if err != nil {
		return res, &Error{Endpoint: h.key, Err: err}
	}
	return res, nil
}

func (p *Pool) run(ctx context.Context, h *host, cmd string, opts RunOptions) (Result, error) {
	res := Result{ExitCode: -1}
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	release, err := p.acquire(ctx, h)
	if err != nil {
		return res, err
	}
	defer release()
	s, c, err := p.session(ctx, h)
	if err != nil {
		return res, err
	}
	defer func() { _ = s.Close() }()

	stdout := &capped{max: cmp(opts.MaxStdout, DefaultMaxStdout)}
	stderr := &capped{max: cmp(opts.MaxStderr, DefaultMaxStderr)}
	s.Stdout, s.Stderr = stdout, stderr
	var remote string
	if opts.Stdin != nil {
		s.Stdin = opts.Stdin
		remote = "sh -c " + ShellQuote(cmd)
	} else {
		// Held open and never written: the wrapper takes its end of file
		// for the session's end.
		stdin, err := s.StdinPipe()
		if err != nil {
			return res, fmt.Errorf("opening stdin: %w", err)
		}
		defer func() { _ = stdin.Close() }()
		remote = wrap(cmd)
	}
	if err := s.Start(remote); err != nil {
		p.drop(h, c, err)
		return res, fmt.Errorf("%w: starting the command: %w", ErrConnect, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()

	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		// KILL goes to the command's process group (OpenSSH killpg()s the
		// session's leader); closing the session also ends the wrapper.
		_ = s.Signal(ssh.SIGKILL)
		_ = s.Close()
		t := time.NewTimer(closeWait)
		select {
		case werr = <-waited:
		case <-t.C:
			p.drop(h, c, errors.New("a killed session did not close"))
			werr = <-waited
		}
		p.log.Debug("ssh command killed", "host", h.key, "wait", werr)
		t.Stop()
		res.fill(stdout, stderr, start)
		return res, killed(ctx.Err(), time.Since(start))
	}
	res.fill(stdout, stderr, start)

	var exit *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case werr == nil:
		res.ExitCode = 0
		return res, nil
	case errors.As(werr, &exit):
		e := &ExitError{Code: exit.ExitStatus(), Signal: exit.Signal(), Stderr: FirstLine(string(res.Stderr))}
		res.ExitCode = e.Code
		if e.Signal != "" {
			res.ExitCode = -1
		}
		return res, e
	case errors.As(werr, &missing):
		return res, errors.New("the command ended without an exit status (the connection was lost?)")
	default:
		p.drop(h, c, werr)
		return res, fmt.Errorf("%w: the connection failed while the command ran: %w", ErrConnect, werr)
	}
}

// killed is the error of a command stopped because its context ended.
func killed(err error, elapsed time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s; the remote command was killed: %w", elapsed.Round(time.Millisecond), err)
	}
	return fmt.Errorf("stopped (%w); the remote command was killed", err)
}

func (r *Result) fill(stdout, stderr *capped, start time.Time) {
	r.Stdout, r.StdoutCut = stdout.buf.Bytes(), stdout.over
	r.Stderr, r.StderrCut = stderr.buf.Bytes(), stderr.over
	r.Duration = time.Since(start)
}

func cmp(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// wrapper runs "$1" with stdin from /dev/null while a background subshell
// reads the session's stdin (fd 3): that read ends only when the session
// is gone (goscaler never writes to it), and then the subshell kills the
// whole process group — the command and whatever it started. sshd makes
// each session's command a process group leader (setsid), so the group is
// exactly the session's processes. When the command ends on its own, the
// watcher is stopped and the command's status returned.
const wrapper = `exec 3<&0 </dev/null
(while read -r _ <&3; do :; done; kill -KILL 0) >/dev/null 2>&1 &
w=$!
exec 3<&-
eval "$1"
s=$?
kill $w 2>/dev/null
exit $s`

// wrap returns the remote command line that runs cmd under the wrapper.
func wrap(cmd string) string {
	return "sh -c " + ShellQuote(wrapper) + " goscaler-run " + ShellQuote(cmd)
}

// ShellQuote quotes s as one word for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, unsafeInShell) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// unsafeInShell reports whether r needs quoting in a shell word.
func unsafeInShell(r rune) bool {
	safe := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r)
	return !safe
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(b []byte) (int, error) {
	n := len(b)
	if room := c.max - c.buf.Len(); len(b) > room {
		b = b[:max(room, 0)]
		c.over = true
	}
	c.buf.Write(b)
	return n, nil
}

// FirstLine is the first non-blank line of s, cut to 200 bytes.
func FirstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return Short(line, 200)
		}
	}
	return ""
}

// Short cuts s to at most n bytes on a rune boundary, marking the cut.
func Short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
