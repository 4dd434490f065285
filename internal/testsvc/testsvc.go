// Package testsvc starts the real services that tests of counter sources run
// against — Tomcat (Debian's tomcat10 and tomcat10-admin), Prometheus
// (Debian's prometheus) — each with its own configuration, data directory and
// free loopback port, stopped in the test's cleanup; and it hands tests a
// private virtual host on the machine's RabbitMQ.
//
// When a service is not installed or not reachable, the test is skipped with
// what to install — unless CI is set, where it fails: CI installs them.
package testsvc

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Unavailable skips the test (or fails it when CI is set) because a service
// it needs is missing; hint says what to install or start.
func Unavailable(t testing.TB, what, hint string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not available (CI is set, so this fails): %s", what, hint)
	}
	t.Skipf("%s is not available, skipping (with CI=true this fails): %s", what, hint)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// process is a service process started by a test.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startProcess starts argv with its output in logPath, in its own process
// group; stop (registered in t.Cleanup) sends SIGTERM, then SIGKILL after
// grace.
func startProcess(t testing.TB, name, logPath string, grace time.Duration, env []string, argv ...string) *process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	_ = logf.Close()
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(grace)
		if t.Failed() {
			t.Logf("--- tail of %s's log (%s):\n%s", name, logPath, tail(logPath, 40))
		}
	})
	return p
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// waitReady polls ready every 200 ms until it returns nil, failing the test
// after timeout or as soon as the process exits.
func (p *process) waitReady(t testing.TB, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if !p.running() {
			t.Fatalf("%s exited before it was ready (%v); last check: %v\n%s", p.name, p.err, err, tail(p.logPath, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v\n%s", p.name, timeout, err, tail(p.logPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// httpStatus GETs url (with basic auth if user is set) and returns an error
// unless the answer has one of the statuses want.
func httpStatus(url, user, password string, want ...int) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// missing returns the first of paths that does not exist, or "".
func missing(paths ...string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
	}
	return ""
}
