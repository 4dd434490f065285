// Package sshx is goscaler's SSH client: a pool of connections, one per
// host (and user), shared by everything that talks to that host — counters,
// health checks, scripts, file transfers.
//
// A connection is dialled on first use (TCP connect and SSH handshake bounded
// by the connect timeout), then reused: commands run in sessions multiplexed
// over it, at most MaxSessions at once (below OpenSSH's MaxSessions, so that
// the server never refuses one). A connection that drops is dialled again on
// the next use; a host that cannot be reached is retried with exponential
// backoff (1 s, 2 s, 4 s … 30 s) and meanwhile fails fast with its last error.
// Idle connections are probed with keepalive@openssh.com and closed after the
// idle timeout.
//
// Host keys are checked against a known_hosts file. A host that is not in it
// is refused unless trust on first use is on, which records its key; a host
// whose key changed is always refused, with an ErrHostKeyChanged error that
// says which known_hosts line to check.
//
// A command whose context ends is killed on the remote side: the session
// gets a KILL signal (sent to the command's process group), and commands run
// under a small sh wrapper that kills their process group as soon as the
// session is gone, so that a lost connection leaves nothing running either.
package sshx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// ErrClosed is returned by a pool that was closed.
var ErrClosed = errors.New("ssh pool closed")

// Backoff bounds of re-dialling a host that failed.
const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
)

// Options are the pool's collaborators.
type Options struct {
	Logger *slog.Logger
	// Now tells the time for backoff and idle decisions; default time.Now.
	Now func() time.Time
}

// Error is a failure to run something on an endpoint. It names the endpoint
// and wraps the cause (ErrHostKeyChanged, ErrAuth, *ExitError, a context
// error, …).
type Error struct {
	// Endpoint is user@host:port.
	Endpoint string
	Err      error
}

func (e *Error) Error() string { return "ssh " + e.Endpoint + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Pool holds one SSH connection per endpoint. It is safe for concurrent use.
type Pool struct {
	s        settings
	log      *slog.Logger
	now      func() time.Time
	keys     *knownHosts
	signers  []ssh.Signer
	keyFiles []string

	mu     sync.Mutex
	hosts  map[string]*host
	closed bool
	wg     sync.WaitGroup
}

// host is the connection state of one endpoint.
type host struct {
	key  string // user@host:port
	addr string // host:port
	user string
	sem  chan struct{}

	mu       sync.Mutex
	client   *ssh.Client
	dialing  chan struct{} // closed when the dial in flight ends
	failures int           // failed dials in a row
	retryAt  time.Time
	lastErr  error
	inUse    int
	lastUsed time.Time
	dials    int
}

// NewPool builds a pool. It loads the identity files and the known_hosts
// file; nothing is dialled until used. A configured identity file that cannot
// be read or decrypted is an error.
func NewPool(cfg Config, opts Options) (*Pool, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("ssh settings: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	signers, files, err := loadSigners(s, log)
	if err != nil {
		return nil, fmt.Errorf("ssh settings: %w", err)
	}
	keys, err := newKnownHosts(s.knownHosts, s.tofu, log)
	if err != nil {
		return nil, fmt.Errorf("ssh settings: %w", err)
	}
	return &Pool{s: s, log: log, now: now, keys: keys, signers: signers, keyFiles: files, hosts: map[string]*host{}}, nil
}

// Resolve fills in the pool's default port and user.
func (p *Pool) Resolve(ep Endpoint) Endpoint {
	if ep.Port == 0 {
		ep.Port = p.s.port
	}
	if ep.User == "" {
		ep.User = p.s.user
	}
	return ep
}

// host returns the state of ep, creating it.
func (p *Pool) host(ep Endpoint) (*host, error) {
	ep = p.Resolve(ep)
	if ep.Host == "" {
		return nil, errors.New("ssh: no host given")
	}
	key := ep.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, &Error{Endpoint: key, Err: ErrClosed}
	}
	h, ok := p.hosts[key]
	if !ok {
		h = &host{key: key, addr: net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port)), user: ep.User,
			sem: make(chan struct{}, p.s.maxSessions)}
		p.hosts[key] = h
	}
	return h, nil
}

// acquire takes one of the host's session slots.
func (p *Pool) acquire(ctx context.Context, h *host) (func(), error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free session (all %d in use): %w", cap(h.sem), ctx.Err())
	}
	h.mu.Lock()
	h.inUse++
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.inUse--
		h.lastUsed = p.now()
		h.mu.Unlock()
		<-h.sem
	}, nil
}

// client returns the host's connection, dialling it if there is none. Only
// one dial per host is in flight; other callers wait for it.
func (p *Pool) client(ctx context.Context, h *host) (*ssh.Client, error) {
	for {
		h.mu.Lock()
		if p.isClosed() {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		if h.client != nil {
			c := h.client
			h.mu.Unlock()
			return c, nil
		}
		if ch := h.dialing; ch != nil {
			h.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("connecting: %w", ctx.Err())
			}
		}
		if now := p.now(); now.Before(h.retryAt) {
			err := fmt.Errorf("%w (%d failed attempts in a row; next attempt in %s)",
				h.lastErr, h.failures, h.retryAt.Sub(now).Round(100*time.Millisecond))
			h.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		h.dialing = ch
		h.mu.Unlock()

		c, err := p.dial(ctx, h)

		h.mu.Lock()
		h.dialing = nil
		close(ch)
		if err != nil {
			if ctx.Err() == nil { // the host's fault, not the caller's
				h.failures++
				h.lastErr = err
				h.retryAt = p.now().Add(backoff(h.failures))
				p.log.Warn("ssh connection failed", "host", h.key, "failures", h.failures, "retry_in", backoff(h.failures), "err", err)
			}
			h.mu.Unlock()
			return nil, err
		}
		if p.isClosed() {
			h.mu.Unlock()
			_ = c.Close()
			return nil, ErrClosed
		}
		if h.failures > 0 {
			p.log.Info("ssh connection restored", "host", h.key, "after_failures", h.failures)
		}
		h.client, h.failures, h.lastErr, h.retryAt = c, 0, nil, time.Time{}
		h.dials++
		h.lastUsed = p.now()
		// Under h.mu: Close cannot wait for the watchers before they are counted.
		p.watch(h, c)
		h.mu.Unlock()
		return c, nil
	}
}

// backoff is the wait before the next dial after n failures in a row.
func backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return min(backoffMin<<min(n-1, 10), backoffMax)
}

func (p *Pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// dial connects and authenticates to h within the connect timeout.
func (p *Pool) dial(ctx context.Context, h *host) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, p.s.connectTimeout)
	defer cancel()
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConnect, timeoutSays(err, ctx, start))
	}
	signers := p.signers
	if p.s.agent {
		agentKeys, closeAgent, err := agentSigners()
		if err != nil {
			p.log.Warn("ssh-agent not usable; trying the identity files only", "err", err)
		} else {
			defer closeAgent()
			signers = append(slices.Clone(agentKeys), signers...)
		}
	}
	var auth []ssh.AuthMethod
	if len(signers) > 0 {
		auth = append(auth, ssh.PublicKeys(signers...))
	}
	algos := p.keys.algorithms(h.addr)
	cfg := &ssh.ClientConfig{
		User:              h.user,
		Auth:              auth,
		HostKeyCallback:   p.keys.check,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-goscaler",
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := ssh.NewClientConn(conn, h.addr, cfg)
	stopped := stop()
	if err != nil {
		_ = conn.Close()
		return nil, p.handshakeError(ctx, h, err, algos, len(signers), start, !stopped)
	}
	_ = conn.SetDeadline(time.Time{})
	p.log.Debug("ssh connected", "host", h.key, "in", time.Since(start).Round(time.Millisecond))
	return ssh.NewClient(cc, chans, reqs), nil
}

// handshakeError says why a handshake failed, in the operator's terms.
func (p *Pool) handshakeError(ctx context.Context, h *host, err error, algos []string, keys int, start time.Time, cut bool) error {
	var changed *HostKeyChangedError
	var unknown *UnknownHostError
	switch {
	case errors.As(err, &changed):
		return changed
	case errors.As(err, &unknown):
		return unknown
	case cut || ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's deadline is the context's: it may fire first.
		return fmt.Errorf("%w: SSH handshake: %w", ErrConnect, timeoutSays(context.DeadlineExceeded, ctx, start))
	case strings.Contains(err.Error(), "unable to authenticate"):
		what := "no key (set identity_files in the cluster's ssh section, or run an ssh-agent)"
		if keys > 0 {
			what = fmt.Sprintf("%d key(s)", keys)
			if len(p.keyFiles) > 0 {
				what += " from " + strings.Join(p.keyFiles, ", ")
			}
			if p.s.agent {
				what += " and the ssh-agent"
			}
		}
		return fmt.Errorf("%w: %s refused %s: add the public key to ~%s/.ssh/authorized_keys on the host, or set the right user",
			ErrAuth, h.user, what, h.user)
	case len(algos) > 0 && strings.Contains(err.Error(), "no common algorithm for host key"):
		want, lines := p.keys.recorded(h.addr)
		return &HostKeyChangedError{Host: h.addr, KnownHosts: p.s.knownHosts, Lines: lines, Want: want}
	default:
		return fmt.Errorf("%w: SSH handshake: %w", ErrConnect, err)
	}
}

// timeoutSays rewrites a deadline error as "timed out after 10s".
func timeoutSays(err error, ctx context.Context, start time.Time) error {
	if errors.Is(err, context.DeadlineExceeded) || (ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		return fmt.Errorf("timed out after %s: %w", time.Since(start).Round(time.Millisecond), context.DeadlineExceeded)
	}
	return err
}

// watch forgets c once it closes, and probes it while it lives.
func (p *Pool) watch(h *host, c *ssh.Client) {
	done := make(chan struct{})
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		err := c.Wait()
		close(done)
		h.mu.Lock()
		if h.client == c {
			h.client = nil
			p.log.Info("ssh connection lost", "host", h.key, "err", err)
		}
		h.mu.Unlock()
	}()
	go func() {
		defer p.wg.Done()
		p.keepalive(h, c, done)
	}()
}

// keepalive probes c every keepalive interval and closes it when a probe
// goes unanswered or when it has been idle for the idle timeout.
func (p *Pool) keepalive(h *host, c *ssh.Client, done <-chan struct{}) {
	t := time.NewTicker(p.s.keepalive)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		h.mu.Lock()
		idle := h.client == c && h.inUse == 0 && p.now().Sub(h.lastUsed) >= p.s.idle
		if idle {
			h.client = nil
		}
		h.mu.Unlock()
		if idle {
			p.log.Debug("ssh connection idle: closing it", "host", h.key, "idle_timeout", p.s.idle)
			_ = c.Close()
			return
		}
		if err := ping(c, p.s.keepalive); err != nil {
			p.drop(h, c, fmt.Errorf("keepalive: %w", err))
			return
		}
	}
}

// ping sends keepalive@openssh.com and waits up to timeout for the answer.
func ping(c *ssh.Client, timeout time.Duration) error {
	res := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		res <- err
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-res:
		return err
	case <-t.C:
		return fmt.Errorf("no answer within %s", timeout)
	}
}

// drop closes c and makes the next user dial again.
func (p *Pool) drop(h *host, c *ssh.Client, why error) {
	h.mu.Lock()
	if h.client == c {
		h.client = nil
		p.log.Info("ssh connection dropped", "host", h.key, "why", why)
	}
	h.mu.Unlock()
	_ = c.Close()
}

// session opens a session on h's connection, dialling it if needed. A
// connection that fails to open one is dropped and dialled once more.
func (p *Pool) session(ctx context.Context, h *host) (*ssh.Session, *ssh.Client, error) {
	dropped := 0
	for attempt := 0; ; attempt++ {
		c, err := p.client(ctx, h)
		if err != nil {
			return nil, nil, err
		}
		type result struct {
			s   *ssh.Session
			err error
		}
		ch := make(chan result, 1)
		go func() {
			s, err := c.NewSession()
			ch <- result{s, err}
		}()
		var r result
		select {
		case r = <-ch:
		case <-ctx.Done():
			// A connection that does not answer a session request in time
			// is not worth keeping.
			p.drop(h, c, errors.New("no answer to a session request"))
			if r = <-ch; r.s != nil {
				_ = r.s.Close()
			}
			return nil, nil, fmt.Errorf("opening a session: %w", ctx.Err())
		}
		if r.err == nil {
			return r.s, c, nil
		}
		var refused *ssh.OpenChannelError
		if errors.As(r.err, &refused) {
			// The connection works; the server said no. sshd counts a
			// session until it has processed its close, which may come in
			// the same batch of packets as the next open: a short wait
			// clears that, a real limit stays.
			if attempt < refusedRetries && (refused.Reason == ssh.ConnectionFailed || refused.Reason == ssh.ResourceShortage) {
				select {
				case <-time.After(refusedWait << attempt):
					continue
				case <-ctx.Done():
				}
			}
			return nil, nil, fmt.Errorf("the server refused a session (its MaxSessions may be below max_sessions): %w", r.err)
		}
		p.drop(h, c, r.err)
		if dropped++; dropped > 1 {
			return nil, nil, fmt.Errorf("%w: opening a session: %w", ErrConnect, r.err)
		}
	}
}

// A refused session is tried again refusedRetries times, after refusedWait,
// then twice that, ….
const (
	refusedRetries = 3
	refusedWait    = 20 * time.Millisecond
)

// Forget closes the connection to ep and drops what the pool knows of it (a
// removed node's host); with no user in ep, the connections of every user to
// that host and port. Commands still running on them are cut off.
func (p *Pool) Forget(ep Endpoint) {
	anyUser := ep.User == ""
	ep = p.Resolve(ep)
	addr := net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
	p.mu.Lock()
	var gone []*host
	for key, h := range p.hosts {
		if h.addr == addr && (anyUser || h.user == ep.User) {
			gone = append(gone, h)
			delete(p.hosts, key)
		}
	}
	p.mu.Unlock()
	for _, h := range gone {
		h.mu.Lock()
		c := h.client
		h.client = nil
		h.mu.Unlock()
		if c != nil {
			_ = c.Close()
		}
	}
}

// HostStats is the state of one endpoint's connection.
type HostStats struct {
	Endpoint  string `json:"endpoint"`
	Connected bool   `json:"connected"`
	// Dials counts the connections made, InUse the sessions open now.
	Dials    int `json:"dials"`
	InUse    int `json:"in_use"`
	Failures int `json:"failures,omitempty"`
	// LastError is the last failure to connect, while it lasts.
	LastError string `json:"last_error,omitempty"`
}

// Stats returns the state of every endpoint used so far, sorted.
func (p *Pool) Stats() []HostStats {
	p.mu.Lock()
	hosts := make([]*host, 0, len(p.hosts))
	for _, h := range p.hosts {
		hosts = append(hosts, h)
	}
	p.mu.Unlock()
	out := make([]HostStats, 0, len(hosts))
	for _, h := range hosts {
		h.mu.Lock()
		st := HostStats{Endpoint: h.key, Connected: h.client != nil, Dials: h.dials, InUse: h.inUse, Failures: h.failures}
		if h.lastErr != nil {
			st.LastError = h.lastErr.Error()
		}
		h.mu.Unlock()
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b HostStats) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return out
}

// Close closes every connection; commands still running are cut off (and
// killed on their hosts). Later calls fail with ErrClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	hosts := p.hosts
	p.mu.Unlock()
	for _, h := range hosts {
		h.mu.Lock()
		c := h.client
		h.client = nil
		h.mu.Unlock()
		if c != nil {
			_ = c.Close()
		}
	}
	p.wg.Wait()
	return nil
}
