package sshx_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
)

// newPool builds a pool for set's hosts with their known_hosts file and the
// client key; mod changes the config first.
func newPool(t *testing.T, set *sshdtest.Set, mod func(*sshx.Config)) *sshx.Pool {
	t.Helper()
	no := false
	cfg := sshx.Config{User: set.User, IdentityFiles: []string{set.ClientKey}, Agent: &no,
		KnownHosts: set.WriteKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))}
	if mod != nil {
		mod(&cfg)
	}
	p, err := sshx.NewPool(cfg, sshx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func endpoint(h *sshdtest.Host) sshx.Endpoint { return sshx.Endpoint{Host: h.IP, Port: h.Port} }

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// marker returns a sleep command unique to this test run, to find it in /proc.
func marker() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	return fmt.Sprintf("sleep 40.%06d", n.Int64())
}

func TestRunOutputAndExitStatus(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set, nil)
	ep := endpoint(set.Hosts[0])
	tests := []struct {
		name       string
		cmd        string
		stdout     string
		stderr     string
		code       int
		errContain string
	}{
		{name: "number", cmd: "echo 42", stdout: "42\n"},
		{name: "quoting survives the wrapper", cmd: `printf '%s|' "a'b" 'c"d' '$HOME'`, stdout: `a'b|c"d|$HOME|`},
		{name: "pipes and redirections", cmd: "echo 3 | tr 3 7; echo oops >&2", stdout: "7\n", stderr: "oops\n"},
		{name: "exit status with stderr", cmd: "echo 'no such queue' >&2; exit 3", stderr: "no such queue\n", code: 3, errContain: "exit status 3: no such queue"},
		{name: "command not found", cmd: "goscaler-no-such-command-xyz", code: 127, errContain: "exit status 127"},
		{name: "stdin is empty", cmd: "cat; echo done", stdout: "done\n"},
		{name: "exit inside the command", cmd: "echo 5; exit 0", stdout: "5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := p.Run(ctxFor(t, 20*time.Second), ep, tt.cmd)
			if string(res.Stdout) != tt.stdout {
				t.Errorf("stdout %q, want %q", res.Stdout, tt.stdout)
			}
			if tt.stderr != "" && string(res.Stderr) != tt.stderr {
				t.Errorf("stderr %q, want %q", res.Stderr, tt.stderr)
			}
			if res.ExitCode != tt.code {
				t.Errorf("exit code %d, want %d", res.ExitCode, tt.code)
			}
			if tt.errContain == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			var exit *sshx.ExitError
			if !errors.As(err, &exit) || exit.Code != tt.code {
				t.Fatalf("error %v, want an *ExitError with code %d", err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.errContain) || !strings.Contains(err.Error(), set.Hosts[0].Addr) {
				t.Errorf("error %q should name the host %s and contain %q", err, set.Hosts[0].Addr, tt.errContain)
			}
		})
	}
}

func TestStdin(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set, nil)
	res, err := p.RunWith(ctxFor(t, 20*time.Second), endpoint(set.Hosts[0]), "read a; read b; echo $((a+b))",
		sshx.RunOptions{Stdin: strings.NewReader("3\n4\n")})
	if err != nil || string(res.Stdout) != "7\n" {
		t.Fatalf("%q, %v; want 7", res.Stdout, err)
	}
}

func TestOutputIsCapped(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set, nil)
	res, err := p.RunWith(ctxFor(t, 20*time.Second), endpoint(set.Hosts[0]), "head -c 100000 /dev/zero; echo end",
		sshx.RunOptions{MaxStdout: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != 1000 || !res.StdoutCut {
		t.Errorf("kept %d bytes (cut %v), want 1000 and cut", len(res.Stdout), res.StdoutCut)
	}
}

// All the commands of a host share one connection, whatever their number.
func TestOneConnectionPerHost(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 3)
	p := newPool(t, set, nil)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for round := range 4 {
		for _, h := range set.Hosts {
			for i := range 5 {
				wg.Go(func() {
					res, err := p.Run(ctxFor(t, 30*time.Second), endpoint(h), fmt.Sprintf("echo %d", round*10+i))
					if err != nil || strings.TrimSpace(string(res.Stdout)) != fmt.Sprint(round*10+i) {
						failed.Add(1)
						t.Errorf("%s: %q, %v", h.Addr, res.Stdout, err)
					}
				})
			}
		}
		wg.Wait()
	}
	if failed.Load() > 0 {
		t.FailNow()
	}
	for _, st := range p.Stats() {
		if st.Dials != 1 || !st.Connected {
			t.Errorf("%s: %d dials (connected %v), want one connection", st.Endpoint, st.Dials, st.Connected)
		}
	}
	for _, h := range set.Hosts {
		if n := h.Logins(); n != 1 {
			t.Errorf("sshd %s logged %d logins for 20 commands, want 1", h.Addr, n)
		}
	}
}

// Sessions are capped below sshd's MaxSessions (10): 30 slow commands at once
// all succeed, 8 at a time. With a cap above sshd's, the server refuses some.
func TestSessionsCappedBelowMaxSessions(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	run := func(p *sshx.Pool, n int) (errs []error, elapsed time.Duration) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for range n {
			wg.Go(func() {
				_, err := p.Run(ctxFor(t, 60*time.Second), endpoint(set.Hosts[0]), "sleep 0.4")
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		return errs, time.Since(start)
	}

	capped := newPool(t, set, nil)
	errs, elapsed := run(capped, 30)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("with the default cap of %d sessions: %v", sshx.DefaultMaxSessions, err)
	}
	// 30 commands of 0.4 s, 8 at a time: at least 4 rounds.
	if elapsed < 1600*time.Millisecond {
		t.Errorf("30 commands took %s: more than %d ran at once", elapsed, sshx.DefaultMaxSessions)
	}

	over := newPool(t, set, func(c *sshx.Config) { c.MaxSessions = 30 })
	errs, _ = run(over, 30)
	refused := 0
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), "refused a session") {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("with max_sessions 30 over sshd's MaxSessions 10, no session was refused: the cap test proves nothing (errors %v)", errs)
	}
}

// A command whose context ends is killed on the host, with what it started.
func TestTimeoutKillsRemoteCommand(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set, nil)
	m1, m2 := marker(), marker()
	start := time.Now()
	_, err := p.Run(ctxFor(t, 700*time.Millisecond), endpoint(set.Hosts[0]), m1+" & "+m2+"; echo never")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after") || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("error %v, want a timeout that says the command was killed", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Run returned %s after its deadline", d)
	}
	for _, m := range []string{m1, m2} {
		if left := sshdtest.WaitGone(ctxFor(t, 5*time.Second), m); len(left) > 0 {
			t.Errorf("%q still runs on the host after the timeout: pids %v", m, left)
		}
	}
	// The connection is still good.
	if res, err := p.Run(ctxFor(t, 10*time.Second), endpoint(set.Hosts[0]), "echo ok"); err != nil || string(res.Stdout) != "ok\n" {
		t.Errorf("after a killed command: %q, %v", res.Stdout, err)
	}
	if st := p.Stats(); st[0].Dials != 1 {
		t.Errorf("%d dials, want the connection kept after a timeout", st[0].Dials)
	}
}

// A command whose connection goes away dies too.
func TestLostConnectionKillsRemoteCommand(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set, nil)
	m := marker()
	done := make(chan error, 1)
	go func() {
		_, err := p.Run(context.Background(), endpoint(set.Hosts[0]), m)
		done <- err
	}()
	waitFor(t, 10*time.Second, "the remote command to start", func() bool { return len(sshdtest.Processes(m)) > 0 })
	_ = p.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Run succeeded although its connection was closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the pool was closed")
	}
	if left := sshdtest.WaitGone(ctxFor(t, 5*time.Second), m); len(left) > 0 {
		t.Errorf("%q still runs after its connection was closed: pids %v", m, left)
	}
	if _, err := p.Run(ctxFor(t, time.Second), endpoint(set.Hosts[0]), "true"); !errors.Is(err, sshx.ErrClosed) {
		t.Errorf("Run on a closed pool: %v, want ErrClosed", err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection that drops is dialled again on the next use; a host that is
// down is retried with backoff and meanwhile fails fast.
func TestRedialAndBackoff(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	h := set.Hosts[0]
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	no := false
	p, err := sshx.NewPool(sshx.Config{User: set.User, IdentityFiles: []string{set.ClientKey}, Agent: &no,
		KnownHosts: set.WriteKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))}, sshx.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ep := endpoint(h)
	mustRun := func(what string) {
		t.Helper()
		if _, err := p.Run(ctxFor(t, 10*time.Second), ep, "true"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	mustRun("first run")
	if err := h.Restart(false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the pool to notice the dropped connection", func() bool { return !p.Stats()[0].Connected })
	mustRun("after sshd restarted")
	if st := p.Stats()[0]; st.Dials != 2 {
		t.Errorf("%d dials after a restart, want 2", st.Dials)
	}

	h.Stop()
	waitFor(t, 10*time.Second, "the pool to notice the host is gone", func() bool { return !p.Stats()[0].Connected })
	_, err = p.Run(ctxFor(t, 10*time.Second), ep, "true")
	if !errors.Is(err, sshx.ErrConnect) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("host down: %v, want ErrConnect (connection refused)", err)
	}
	start := time.Now()
	_, err = p.Run(ctxFor(t, 10*time.Second), ep, "true")
	if !errors.Is(err, sshx.ErrConnect) || !strings.Contains(err.Error(), "next attempt in") {
		t.Fatalf("second try within the backoff: %v, want the last error and when the next attempt is", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("a try within the backoff took %s, want it to fail fast", d)
	}
	if err := h.Restart(false); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Run(ctxFor(t, 10*time.Second), ep, "true"); err == nil || !strings.Contains(err.Error(), "next attempt in") {
		t.Fatalf("host back but the backoff not over: %v, want the backoff error", err)
	}
	advance(1100 * time.Millisecond)
	mustRun("after the backoff")
	if st := p.Stats()[0]; st.Dials != 3 || st.Failures != 0 || st.LastError != "" {
		t.Errorf("stats after recovery %+v, want 3 dials and no failure", st)
	}
}

// A host that accepts TCP but never answers is given up after connect_timeout.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	h := set.Hosts[0]
	p := newPool(t, set, func(c *sshx.Config) { c.ConnectTimeout = plugin.Duration(500 * time.Millisecond) })
	h.Freeze()
	defer h.Thaw()
	start := time.Now()
	_, err := p.Run(ctxFor(t, 10*time.Second), endpoint(h), "true")
	if !errors.Is(err, sshx.ErrConnect) || !strings.Contains(err.Error(), "timed out after") {
		t.Fatalf("frozen host: %v, want a connect timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("gave up after %s, want about the 500ms connect timeout", d)
	}
}

// A connection whose host stops answering is dropped by the keepalive; an
// idle one is closed after the idle timeout.
func TestKeepaliveAndIdle(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	p := newPool(t, set, func(c *sshx.Config) {
		c.KeepaliveInterval = plugin.Duration(time.Second)
		c.IdleTimeout = plugin.Duration(2 * time.Second)
	})
	hung, idle := set.Hosts[0], set.Hosts[1]
	for _, h := range set.Hosts {
		if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(h), "true"); err != nil {
			t.Fatal(err)
		}
	}
	// Keep the first one busy (a running command is not idle) and freeze it.
	go func() { _, _ = p.Run(ctxFor(t, 30*time.Second), endpoint(hung), marker()) }()
	time.Sleep(300 * time.Millisecond)
	hung.Freeze()
	defer hung.Thaw()
	connected := func(h *sshdtest.Host) bool {
		for _, st := range p.Stats() {
			if strings.HasSuffix(st.Endpoint, "@"+h.Addr) {
				return st.Connected
			}
		}
		return false
	}
	waitFor(t, 10*time.Second, "the keepalive to drop the hung host's connection", func() bool { return !connected(hung) })
	waitFor(t, 10*time.Second, "the idle connection to close", func() bool { return !connected(idle) })
	if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(idle), "true"); err != nil {
		t.Fatalf("after the idle close: %v", err)
	}
	if !connected(idle) {
		t.Error("not connected again after a run")
	}
}

func TestHostKeyChangedIsRefused(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	h := set.Hosts[0]
	kh := set.WriteKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))
	before, _ := os.ReadFile(kh)
	// Even with trust on first use: a changed key is never accepted.
	p := newPool(t, set, func(c *sshx.Config) { c.KnownHosts = kh; c.TrustOnFirstUse = true })
	if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(h), "true"); err != nil {
		t.Fatal(err)
	}
	if err := h.Restart(true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the dropped connection", func() bool { return !p.Stats()[0].Connected })
	_, err := p.Run(ctxFor(t, 10*time.Second), endpoint(h), "true")
	var changed *sshx.HostKeyChangedError
	if !errors.Is(err, sshx.ErrHostKeyChanged) || !errors.As(err, &changed) {
		t.Fatalf("new host key: %v, want ErrHostKeyChanged", err)
	}
	msg := err.Error()
	for _, want := range []string{"REFUSED", "CHANGED", h.Addr, kh + " (line 1)", "ssh-keygen -R '[" + h.IP + "]:", "SHA256:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the message does not contain %q:\n%s", want, msg)
		}
	}
	if after, _ := os.ReadFile(kh); !bytes.Equal(before, after) {
		t.Errorf("known_hosts changed:\n%s\nwas:\n%s", after, before)
	}
	// Still refused on the next attempt (after the backoff), never accepted.
	_, err = p.Run(ctxFor(t, 10*time.Second), endpoint(h), "true")
	if !errors.Is(err, sshx.ErrHostKeyChanged) {
		t.Errorf("second attempt: %v, want ErrHostKeyChanged", err)
	}
}

func TestUnknownHostAndTrustOnFirstUse(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	h := set.Hosts[0]
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts") // not there yet
	strict := newPool(t, set, func(c *sshx.Config) { c.KnownHosts = kh })
	_, err := strict.Run(ctxFor(t, 10*time.Second), endpoint(h), "true")
	if !errors.Is(err, sshx.ErrHostUnknown) || !strings.Contains(err.Error(), "ssh-keyscan -p "+fmt.Sprint(h.Port)) ||
		!strings.Contains(err.Error(), "trust_on_first_use") {
		t.Fatalf("unknown host: %v, want ErrHostUnknown with how to add the key", err)
	}
	if _, err := os.Stat(kh); err == nil {
		t.Fatal("a refused host was recorded")
	}

	tofu := newPool(t, set, func(c *sshx.Config) { c.KnownHosts = kh; c.TrustOnFirstUse = true })
	if _, err := tofu.Run(ctxFor(t, 10*time.Second), endpoint(h), "true"); err != nil {
		t.Fatalf("trust on first use: %v", err)
	}
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[%s]:%d %s", h.IP, h.Port, strings.Join(strings.Fields(h.HostKeyPub)[:2], " "))
	if strings.TrimSpace(string(b)) != want {
		t.Errorf("recorded %q, want %q", b, want)
	}
	// The strict pool reloads the file and now knows the host.
	if _, err := strict.Run(ctxFor(t, 10*time.Second), endpoint(h), "true"); err != nil && !strings.Contains(err.Error(), "next attempt") {
		t.Errorf("strict pool after the key was recorded: %v", err)
	}
}

func TestAuthFailureSaysWhy(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	other := filepath.Join(t.TempDir(), "other_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	p := newPool(t, set, func(c *sshx.Config) { c.IdentityFiles = []string{other} })
	_, err := p.Run(ctxFor(t, 10*time.Second), endpoint(set.Hosts[0]), "true")
	if !errors.Is(err, sshx.ErrAuth) || !strings.Contains(err.Error(), other) || !strings.Contains(err.Error(), "authorized_keys") {
		t.Fatalf("wrong key: %v, want ErrAuth naming the key file and authorized_keys", err)
	}
}

func TestEncryptedKey(t *testing.T) {
	set := sshdtest.Start(t, 1)
	key := filepath.Join(t.TempDir(), "enc_key")
	const pass = "correct horse battery staple"
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", pass, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	f, err := os.OpenFile(set.AuthorizedKeys, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.Write(pub)
	_ = f.Close()

	_, err = sshx.NewPool(sshx.Config{IdentityFiles: []string{key}, KnownHosts: filepath.Join(t.TempDir(), "kh")}, sshx.Options{})
	if err == nil || !strings.Contains(err.Error(), "passphrase_env") {
		t.Errorf("encrypted key without passphrase: %v, want an error pointing to passphrase_env", err)
	}
	t.Setenv("GOSCALER_TEST_SSH_PASS", pass)
	p := newPool(t, set, func(c *sshx.Config) {
		c.IdentityFiles = []string{key}
		c.PassphraseEnv = "GOSCALER_TEST_SSH_PASS"
	})
	if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(set.Hosts[0]), "true"); err != nil {
		t.Fatalf("with the passphrase from the environment: %v", err)
	}
	t.Setenv("GOSCALER_TEST_SSH_PASS", "wrong")
	_, err = sshx.NewPool(sshx.Config{IdentityFiles: []string{key}, PassphraseEnv: "GOSCALER_TEST_SSH_PASS",
		KnownHosts: filepath.Join(t.TempDir(), "kh")}, sshx.Options{})
	if err == nil || strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong passphrase: %v, want an error that does not show the passphrase", err)
	}
}

func TestAgent(t *testing.T) {
	set := sshdtest.Start(t, 1)
	raw, err := os.ReadFile(set.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv.(*ed25519.PrivateKey)}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, c); _ = c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	yes := true
	p := newPool(t, set, func(c *sshx.Config) {
		c.IdentityFiles = nil // the defaults: ~/.ssh/id_*, if any
		c.Agent = &yes
	})
	if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(set.Hosts[0]), "true"); err != nil {
		t.Fatalf("with the key in the agent only: %v", err)
	}
}

func TestUploadDownload(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 1)
	p := newPool(t, set, nil)
	dir := t.TempDir() // the host is this machine: its files are ours to check
	remote := filepath.Join(dir, "app.conf")
	content := bytes.Repeat([]byte("listen 8080\n"), 10000)
	n, err := p.Upload(ctxFor(t, 20*time.Second), endpoint(set.Hosts[0]), bytes.NewReader(content), remote, 0o640)
	if err != nil || n != int64(len(content)) {
		t.Fatalf("upload: %d bytes, %v", n, err)
	}
	got, err := os.ReadFile(remote)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the uploaded file holds %d bytes (%v), want %d", len(got), err, len(content))
	}
	if fi, _ := os.Stat(remote); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".app.conf.goscaler-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	var buf bytes.Buffer
	if n, err := p.Download(ctxFor(t, 20*time.Second), endpoint(set.Hosts[0]), remote, &buf); err != nil || n != int64(len(content)) || !bytes.Equal(buf.Bytes(), content) {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	_, err = p.Download(ctxFor(t, 20*time.Second), endpoint(set.Hosts[0]), filepath.Join(dir, "missing"), &buf)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("download of a missing file: %v", err)
	}
	if st := p.Stats()[0]; st.Dials != 1 {
		t.Errorf("%d dials for three transfers, want 1", st.Dials)
	}
}

// Forget closes a host's connections (of every user without one given) and
// the next use dials again.
func TestForget(t *testing.T) {
	t.Parallel()
	set := sshdtest.Start(t, 2)
	p := newPool(t, set, nil)
	for _, h := range set.Hosts {
		if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(h), "true"); err != nil {
			t.Fatal(err)
		}
	}
	p.Forget(endpoint(set.Hosts[0]))
	st := p.Stats()
	if len(st) != 1 || !strings.HasSuffix(st[0].Endpoint, set.Hosts[1].Addr) || !st[0].Connected {
		t.Fatalf("after Forget of %s: %+v", set.Hosts[0].Addr, st)
	}
	if _, err := p.Run(ctxFor(t, 10*time.Second), endpoint(set.Hosts[0]), "true"); err != nil {
		t.Fatal(err)
	}
	if n := set.Hosts[0].Logins(); n != 2 {
		t.Errorf("%d logins to the forgotten host, want 2", n)
	}
}
