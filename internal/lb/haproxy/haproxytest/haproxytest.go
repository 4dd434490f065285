// Package haproxytest runs a real HAProxy for tests: its own configuration,
// admin socket and frontend port in a temporary directory, in master-worker
// mode so that a test can reload it. It needs the haproxy binary (Debian's
// haproxy package: /usr/sbin/haproxy); a test that uses it fails, and says
// what to install, when the binary is missing.
package haproxytest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of the haproxy binary: $GOSCALER_TEST_HAPROXY,
// haproxy in PATH, or /usr/sbin/haproxy.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GOSCALER_TEST_HAPROXY"); p != "" {
		return p
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	t.Fatal("this test needs HAProxy 2.4 or later: apt-get install haproxy (or set GOSCALER_TEST_HAPROXY to its binary)")
	return ""
}

// Options shape the HAProxy configuration.
type Options struct {
	// Backend is the backend the frontend sends its traffic to.
	Backend string
	// BackendLines, when not nil, define Backend in the main configuration
	// (say "balance roundrobin"); leave it nil when Files define it.
	BackendLines []string
	// Files are extra configuration files, loaded after the main one (-f),
	// in order; each must exist when HAProxy starts.
	Files []string
	// Defaults are extra lines of the defaults section.
	Defaults []string
	// Global are extra lines of the global section (say a second stats
	// socket); {{DIR}} stands for the instance's directory.
	Global []string
}

// Instance is a running HAProxy.
type Instance struct {
	t testing.TB
	// Dir holds the configuration and the socket.
	Dir string
	// Config is the main configuration file.
	Config string
	// Socket is the admin socket's path (level admin).
	Socket string
	// Frontend is the 127.0.0.1:PORT the frontend listens on.
	Frontend string
	// LogPath collects HAProxy's output.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs HAProxy with opts until the test ends, and waits until its admin
// socket answers.
func Start(t testing.TB, opts Options) *Instance {
	t.Helper()
	bin := Binary(t)
	// A short directory: a unix socket path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "hx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	in := &Instance{t: t, Dir: dir, Config: filepath.Join(dir, "haproxy.cfg"), Socket: filepath.Join(dir, "admin.sock"),
		LogPath: filepath.Join(dir, "haproxy.log")}
	// The free port may be taken by someone else between picking and
	// binding: try again with another one.
	for attempt := 1; ; attempt++ {
		in.Frontend = freeAddr(t)
		in.done = make(chan struct{})
		in.start(bin, opts)
		if in.poll("", 15*time.Second) {
			break
		}
		select {
		case <-in.done:
			if attempt < 5 && strings.Contains(in.Log(), "Address already in use") {
				continue
			}
			t.Fatalf("haproxy exited:\n%s", in.Log())
		default:
			t.Fatalf("haproxy did not answer on %s within 15s:\n%s", in.Socket, in.Log())
		}
	}
	t.Cleanup(in.Stop)
	return in
}

// start writes the configuration and starts HAProxy.
func (in *Instance) start(bin string, opts Options) {
	t, dir := in.t, in.Dir
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s level admin
    stats timeout 30s
    pidfile %s
`, in.Socket, filepath.Join(dir, "haproxy.pid"))
	for _, l := range opts.Global {
		fmt.Fprintf(&b, "    %s\n", strings.ReplaceAll(l, "{{DIR}}", dir))
	}
	b.WriteString(`
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout queue 10s
`)
	for _, l := range opts.Defaults {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	fmt.Fprintf(&b, "\nfrontend fe\n    bind %s\n    default_backend %s\n", in.Frontend, opts.Backend)
	if opts.BackendLines != nil {
		fmt.Fprintf(&b, "\nbackend %s\n", opts.Backend)
		for _, l := range opts.BackendLines {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	if err := os.WriteFile(in.Config, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-W", "-db", "-f", in.Config}
	for _, f := range opts.Files {
		args = append(args, "-f", f)
	}
	logf, err := os.Create(in.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(bin, args...) //nolint:gosec // the test's own haproxy
	in.cmd.Dir = dir
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := in.cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("starting %s: %v", bin, err)
	}
	_ = logf.Close()
	go func() {
		_ = in.cmd.Wait()
		close(in.done)
	}()
}

// Stop stops HAProxy (master and workers) and waits for it.
func (in *Instance) Stop() {
	select {
	case <-in.done:
		return
	default:
	}
	_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
		<-in.done
	}
}

// Reload makes HAProxy reload its configuration files (SIGUSR2 to the
// master) and waits until a new worker answers on the admin socket. A
// master still busy with the previous reload may miss the signal: it is
// sent again until a new worker shows.
func (in *Instance) Reload() {
	in.t.Helper()
	old := in.workerPID()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := in.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			in.t.Fatalf("reloading haproxy: %v", err)
		}
		if in.poll(old, 3*time.Second) {
			return
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("haproxy did not reload:\n%s", in.Log())
		}
	}
}

// Command sends one runtime API command and returns the answer.
func (in *Instance) Command(cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", in.Socket, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(conn)
	return buf.String(), err
}

// workerPID is the Pid of "show info", "" if the socket does not answer.
func (in *Instance) workerPID() string {
	out, err := in.Command("show info")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(line, "Pid: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// poll reports whether a worker other than old answers within timeout.
func (in *Instance) poll(old string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-in.done:
			return false
		default:
		}
		if pid := in.workerPID(); pid != "" && pid != old {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns HAProxy's output so far.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.LogPath)
	return string(b)
}

// WaitUp waits until HAProxy's status of every named server of backend is
// UP (its health checks pass), or fails the test.
func (in *Instance) WaitUp(ctx context.Context, backend string, names ...string) {
	in.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := in.Command("show stat " + backend + " 4 -1")
		up := 0
		if err == nil {
			for line := range strings.Lines(out) {
				f := strings.Split(line, ",")
				if len(f) > 17 && f[0] == backend && f[17] == "UP" {
					for _, n := range names {
						if f[1] == n {
							up++
						}
					}
				}
			}
		}
		if up == len(names) {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			in.t.Fatalf("servers %v of %s not UP: %v\n%s", names, backend, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}
