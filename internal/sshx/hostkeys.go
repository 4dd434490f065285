package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/skeema/knownhosts"
	"golang.org/x/crypto/ssh"
	xknownhosts "golang.org/x/crypto/ssh/knownhosts"
)

// Sentinel errors of the pool; test them with errors.Is.
var (
	// ErrHostKeyChanged: the host presented a key other than the one recorded
	// in known_hosts. The connection is refused.
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrHostUnknown: the host is not in known_hosts and trust on first use
	// is off. The connection is refused.
	ErrHostUnknown = errors.New("host key unknown")
	// ErrAuth: the host accepted none of the keys.
	ErrAuth = errors.New("authentication failed")
	// ErrConnect: no TCP connection or no SSH handshake.
	ErrConnect = errors.New("cannot connect")
)

// HostKeyChangedError is a host whose key differs from the one known_hosts
// records for it. It matches ErrHostKeyChanged.
type HostKeyChangedError struct {
	// Host is host:port as dialled.
	Host string
	// KnownHosts is the file, Lines the lines that record the host's keys.
	KnownHosts string
	Lines      []int
	// Got is the presented key ("ssh-ed25519 SHA256:…"), Want the recorded
	// ones; Got is empty when the host offered none of the recorded key types.
	Got  string
	Want []string
}

func (e *HostKeyChangedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "REFUSED: the host key of %s has CHANGED", e.Host)
	if e.Got != "" {
		fmt.Fprintf(&b, ": it presents %s but %s records %s", e.Got, e.where(), strings.Join(e.Want, ", "))
	} else {
		fmt.Fprintf(&b, ": it offers none of the key types %s records for it (%s)", e.where(), strings.Join(e.Want, ", "))
	}
	b.WriteString(". Someone may be intercepting the connection, or the host was reinstalled. ")
	fmt.Fprintf(&b, "If the change is expected, compare the new fingerprint with the host's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console), then remove the old entry: ssh-keygen -R '%s' -f %s",
		knownhosts.Normalize(e.Host), e.KnownHosts)
	return b.String()
}

func (e *HostKeyChangedError) where() string {
	if len(e.Lines) == 0 {
		return e.KnownHosts
	}
	lines := make([]string, len(e.Lines))
	for i, l := range e.Lines {
		lines[i] = fmt.Sprint(l)
	}
	word := "line"
	if len(lines) > 1 {
		word = "lines"
	}
	return fmt.Sprintf("%s (%s %s)", e.KnownHosts, word, strings.Join(lines, ", "))
}

// Is makes the error match ErrHostKeyChanged.
func (e *HostKeyChangedError) Is(target error) bool { return target == ErrHostKeyChanged }

// UnknownHostError is a host that known_hosts does not know, with trust on
// first use off. It matches ErrHostUnknown.
type UnknownHostError struct {
	Host       string
	KnownHosts string
	Got        string
}

func (e *UnknownHostError) Error() string {
	host, port, _ := net.SplitHostPort(e.Host)
	return fmt.Sprintf("refused: host %s is not in %s (it presents %s): check that fingerprint, then add the key with `ssh-keyscan -p %s %s >> %s`, or set trust_on_first_use: true in the cluster's ssh section",
		e.Host, e.KnownHosts, e.Got, port, host, e.KnownHosts)
}

// Is makes the error match ErrHostUnknown.
func (e *UnknownHostError) Is(target error) bool { return target == ErrHostUnknown }

// fingerprint describes a key as "ssh-ed25519 SHA256:…".
func fingerprint(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// knownHosts checks host keys against a known_hosts file, reloading it when
// it changes (an operator who removes a stale line need not restart
// goscaler), and records new hosts when trust on first use is on.
type knownHosts struct {
	path string
	tofu bool
	log  *slog.Logger

	mu    sync.Mutex
	db    *knownhosts.HostKeyDB // nil while the file does not exist
	stamp fileStamp
}

type fileStamp struct {
	exists bool
	mod    time.Time
	size   int64
}

func newKnownHosts(path string, tofu bool, log *slog.Logger) (*knownHosts, error) {
	k := &knownHosts{path: path, tofu: tofu, log: log}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.refresh(); err != nil {
		return nil, err
	}
	return k, nil
}

// refresh (re)loads the file if it changed. The caller holds k.mu.
func (k *knownHosts) refresh() error {
	fi, err := os.Stat(k.path)
	var st fileStamp
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("known_hosts %s: %w", k.path, err)
	default:
		st = fileStamp{exists: true, mod: fi.ModTime(), size: fi.Size()}
	}
	if st == k.stamp && (k.db != nil || !st.exists) {
		return nil
	}
	if !st.exists {
		k.db, k.stamp = nil, st
		return nil
	}
	db, err := knownhosts.NewDB(k.path)
	if err != nil {
		return fmt.Errorf("known_hosts %s: %w", k.path, err)
	}
	k.db, k.stamp = db, st
	return nil
}

// algorithms returns the host key algorithms recorded for host:port, to be
// preferred in the handshake (nil: any).
func (k *knownHosts) algorithms(hostport string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.refresh(); err != nil || k.db == nil {
		return nil
	}
	return k.db.HostKeyAlgorithms(hostport)
}

// recorded returns the fingerprints and lines of the keys recorded for host:port.
func (k *knownHosts) recorded(hostport string) (want []string, lines []int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.db == nil {
		return nil, nil
	}
	// A callback with a key that cannot match lists the recorded ones.
	err := k.db.HostKeyCallback()(hostport, fakeAddr(hostport), fakeKey{})
	var ke *xknownhosts.KeyError
	if errors.As(err, &ke) {
		for _, w := range ke.Want {
			want = append(want, fingerprint(w.Key))
			lines = append(lines, w.Line)
		}
	}
	return want, lines
}

// check is the ssh.HostKeyCallback.
func (k *knownHosts) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.refresh(); err != nil {
		return err
	}
	var err error
	if k.db != nil {
		err = k.db.HostKeyCallback()(hostname, remote, key)
	} else {
		err = &xknownhosts.KeyError{} // no file: every host is unknown
	}
	var ke *xknownhosts.KeyError
	var re *xknownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return fmt.Errorf("REFUSED: the host key of %s (%s) is marked @revoked in %s line %d", hostname, fingerprint(key), re.Revoked.Filename, re.Revoked.Line)
	case !errors.As(err, &ke):
		return fmt.Errorf("checking the host key of %s against %s: %w", hostname, k.path, err)
	case len(ke.Want) > 0:
		e := &HostKeyChangedError{Host: hostname, KnownHosts: k.path, Got: fingerprint(key)}
		for _, w := range ke.Want {
			e.Want = append(e.Want, fingerprint(w.Key))
			e.Lines = append(e.Lines, w.Line)
		}
		k.log.Error("ssh host key changed: connection refused", "host", hostname, "got", e.Got, "want", e.Want, "known_hosts", k.path)
		return e
	case !k.tofu:
		return &UnknownHostError{Host: hostname, KnownHosts: k.path, Got: fingerprint(key)}
	}
	if err := k.record(hostname, remote, key); err != nil {
		return fmt.Errorf("trusting %s on first use: %w", hostname, err)
	}
	k.log.Warn("ssh host trusted on first use: key recorded", "host", hostname, "key", fingerprint(key), "known_hosts", k.path)
	return nil
}

// record appends the host's key to the file. The caller holds k.mu.
func (k *knownHosts) record(hostname string, remote net.Addr, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	// A file that does not end with a newline would glue our line to its last.
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		if last, err := lastByte(k.path); err == nil && last != '\n' {
			_, _ = f.WriteString("\n")
		}
	}
	if err := knownhosts.WriteKnownHost(f, hostname, remote, key); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	k.stamp = fileStamp{} // reload on the next look-up
	return k.refresh()
}

func lastByte(path string) (byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	b := make([]byte, 1)
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if _, err := f.ReadAt(b, fi.Size()-1); err != nil {
		return 0, err
	}
	return b[0], nil
}

// fakeAddr is the net.Addr of hostport, for a look-up without a connection.
func fakeAddr(hostport string) net.Addr {
	host, port, _ := net.SplitHostPort(hostport)
	ip := net.ParseIP(host)
	p := 0
	_, _ = fmt.Sscan(port, &p)
	return &net.TCPAddr{IP: ip, Port: p}
}

// fakeKey matches no recorded key.
type fakeKey struct{}

func (fakeKey) Type() string                            { return "goscaler-no-such-key" }
func (fakeKey) Marshal() []byte                         { return []byte("goscaler-no-such-key") }
func (fakeKey) Verify(_ []byte, _ *ssh.Signature) error { return errors.New("not a key") }
