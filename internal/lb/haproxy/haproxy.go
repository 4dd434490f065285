package haproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
)

// ErrDrainTimeout is wrapped by Deregister's error when the server still had
// sessions after DrainTimeout (they were cut and the server removed).
var ErrDrainTimeout = errors.New("drain timeout elapsed")

// Timing of Deregister's polls.
const (
	drainPoll = 100 * time.Millisecond
	// delRetry bounds how long del server is retried while HAProxy still
	// holds (idle) connections to a server in maintenance.
	delRetry = 10 * time.Second
)

// Balancer puts one cluster's nodes into a backend of a running HAProxy. It
// implements lb.Balancer.
type Balancer struct {
	cluster string
	backend string
	file    string
	lines   []string
	options []string
	check   bool
	drain   time.Duration
	client  *Client
	log     *slog.Logger

	// mu serialises this process's changes of the configuration file (a
	// flock on FILE.lock those of other processes).
	mu sync.Mutex
	// inFile are the servers the configuration file lists, name → IP:port,
	// as last read or written.
	inFile map[string]string
}

var (
	_ lb.Balancer = (*Balancer)(nil)
	_ lb.Config   = (*Config)(nil)
)

func newBalancer(c Config, env lb.Env) (*Balancer, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("haproxy load balancer of cluster %q: %w", env.Cluster, err)
	}
	opts, _ := c.serverOptions()
	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = DefaultCommandTimeout
	}
	client, err := NewClient(c.Socket, timeout)
	if err != nil {
		return nil, fmt.Errorf("haproxy load balancer of cluster %q: socket: %w", env.Cluster, err)
	}
	drain := c.DrainTimeout.D()
	if drain == 0 {
		drain = DefaultDrainTimeout
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Balancer{cluster: env.Cluster, backend: c.Backend, file: c.ConfigFile, lines: c.backendConfig(),
		options: opts, check: slices.Contains(opts, "check"), drain: drain, client: client,
		log: log.With("lb", TypeName, "backend", c.Backend), inFile: map[string]string{}}
	// Rewritten at start, keeping its servers: backend_config may have changed.
	if err := b.editFile(func(map[string]string) bool { return true }); err != nil {
		return nil, fmt.Errorf("haproxy load balancer of cluster %q: config_file: %w", env.Cluster, err)
	}
	return b, nil
}

// Client is the runtime API client the balancer uses.
func (b *Balancer) Client() *Client { return b.client }

// Register adds the node's server to the backend and puts it into rotation;
// a server already there (from before a restart, or from the configuration
// file after a reload) is put back into rotation.
func (b *Balancer) Register(ctx context.Context, be lb.Backend) error {
	if err := checkName("node", be.NodeID); err != nil {
		return fmt.Errorf("haproxy: registering: %w", err)
	}
	addr, err := resolve(ctx, be.Address)
	if err != nil {
		return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, err)
	}
	srv, found, err := b.server(ctx, be.NodeID)
	if err != nil {
		return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, err)
	}
	if found && srv.Address != addr {
		return fmt.Errorf("haproxy: registering %s at %s: backend %s already has a server %s at %s: deregister it first: %w",
			be.NodeID, addr, b.backend, be.NodeID, srv.Address, ErrServerExists)
	}
	if !found {
		err := b.client.AddServer(ctx, b.backend, be.NodeID, addr, b.options)
		if err != nil && !errors.Is(err, ErrServerExists) {
			return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, b.explain(err))
		}
	}
	// Into the file before the server takes traffic: a reload from now on
	// keeps it.
	if err := b.remember(be.NodeID, addr); err != nil {
		return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, err)
	}
	if b.check {
		if err := b.client.EnableHealth(ctx, b.backend, be.NodeID); err != nil {
			return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, err)
		}
	}
	if err := b.client.EnableServer(ctx, b.backend, be.NodeID); err != nil {
		return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, err)
	}
	if found && srv.Draining() {
		if err := b.client.SetState(ctx, b.backend, be.NodeID, StateReady); err != nil {
			return fmt.Errorf("haproxy: registering %s: %w", be.NodeID, err)
		}
	}
	if !found || !srv.Ready() {
		b.log.Info("server in rotation", "node", be.NodeID, "address", addr)
	}
	return nil
}

// Deregister drains the node's server and removes it: no new request goes
// to it from the start; it is removed once its sessions have ended (at most
// DrainTimeout, then they are cut). When ctx ends first, the server is left
// draining and ctx's error returned (a later call finishes the job).
func (b *Balancer) Deregister(ctx context.Context, be lb.Backend) error {
	if err := checkName("node", be.NodeID); err != nil {
		return fmt.Errorf("haproxy: deregistering: %w", err)
	}
	// Out of the file first: a reload while it drains must not bring it back.
	if err := b.forget(be.NodeID); err != nil {
		return fmt.Errorf("haproxy: deregistering %s: %w", be.NodeID, err)
	}
	srv, found, err := b.server(ctx, be.NodeID)
	if errors.Is(err, ErrNoSuchBackend) {
		return nil // nothing of ours there
	}
	if err != nil {
		return fmt.Errorf("haproxy: deregistering %s: %w", be.NodeID, err)
	}
	if !found {
		return nil
	}
	if !srv.Maintenance() && !srv.Draining() {
		if err := b.client.SetState(ctx, b.backend, be.NodeID, StateDrain); err != nil {
			if errors.Is(err, ErrNoSuchServer) {
				return nil
			}
			return fmt.Errorf("haproxy: draining %s: %w", be.NodeID, err)
		}
		b.log.Info("draining server", "node", be.NodeID, "timeout", b.drain)
	}
	drained, err := b.waitDrained(ctx, be.NodeID)
	if err != nil {
		return err
	}
	// Past this point, finish even if ctx ends: a half-removed server helps
	// nobody.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), delRetry+2*b.client.timeout)
	defer cancel()
	if err := b.remove(rctx, be.NodeID); err != nil {
		return err
	}
	if !drained {
		return fmt.Errorf("haproxy: %s still had sessions after %s; they were cut: %w", be.NodeID, b.drain, ErrDrainTimeout)
	}
	return nil
}

// waitDrained polls the server's sessions until there are none (true), the
// drain timeout passes (false) or ctx ends (its error).
func (b *Balancer) waitDrained(ctx context.Context, name string) (bool, error) {
	deadline := time.NewTimer(b.drain)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		stats, err := b.client.Stats(ctx, b.backend)
		if err == nil {
			busy := false
			for _, s := range stats {
				if s.Name == name && s.Sessions+s.Queued > 0 {
					busy = true
				}
			}
			if !busy {
				return true, nil
			}
		} else if ctx.Err() == nil {
			b.log.Warn("reading the server's sessions failed", "node", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("haproxy: draining %s: %w", name, ctx.Err())
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
	}
}

// remove puts the server into maintenance, cuts its sessions and deletes it.
func (b *Balancer) remove(ctx context.Context, name string) error {
	if err := b.client.SetState(ctx, b.backend, name, StateMaint); err != nil {
		if errors.Is(err, ErrNoSuchServer) {
			return nil
		}
		return fmt.Errorf("haproxy: removing %s: %w", name, err)
	}
	if err := b.client.ShutdownSessions(ctx, b.backend, name); err != nil && !errors.Is(err, ErrNoSuchServer) {
		return fmt.Errorf("haproxy: removing %s: %w", name, err)
	}
	// HAProxy refuses while connections (idle ones in its pool included) are
	// attached; they go within moments once the server is in maintenance.
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		err := b.client.DelServer(ctx, b.backend, name)
		switch {
		case err == nil:
			b.log.Info("server removed", "node", name)
			return nil
		case errors.Is(err, ErrNoSuchServer):
			return nil
		case !errors.Is(err, ErrServerBusy):
			return fmt.Errorf("haproxy: removing %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("haproxy: removing %s: connections still attached: %w", name, err)
		case <-tick.C:
		}
	}
}

// Backends lists every server of the backend, in rotation or not (a server
// left in maintenance or draining by an interrupted call is listed too, so
// that the controller can finish removing it).
func (b *Balancer) Backends(ctx context.Context) ([]lb.Backend, error) {
	servers, err := b.client.Servers(ctx, b.backend)
	if err != nil {
		return nil, fmt.Errorf("haproxy: listing backend %s: %w", b.backend, b.explain(err))
	}
	out := make([]lb.Backend, 0, len(servers))
	for _, s := range servers {
		out = append(out, lb.Backend{NodeID: s.Name, Address: s.Address})
	}
	return out, nil
}

// Servers lists the backend's servers with their states.
func (b *Balancer) Servers(ctx context.Context) ([]Server, error) {
	return b.client.Servers(ctx, b.backend)
}

// server finds one server of the backend.
func (b *Balancer) server(ctx context.Context, name string) (Server, bool, error) {
	servers, err := b.client.Servers(ctx, b.backend)
	if err != nil {
		return Server{}, false, b.explain(err)
	}
	for _, s := range servers {
		if s.Name == name {
			return s, true, nil
		}
	}
	return Server{}, false, nil
}

// explain adds the fix to errors a user must act on.
func (b *Balancer) explain(err error) error {
	switch {
	case errors.Is(err, ErrNoSuchBackend) && b.file != "":
		return fmt.Errorf("%w: HAProxy has no backend %s: start it with -f %s (goscaler writes the backend there)", err, b.backend, b.file)
	case errors.Is(err, ErrNoSuchBackend):
		return fmt.Errorf("%w: HAProxy has no backend %s: define it in HAProxy's configuration, or set config_file", err, b.backend)
	case errors.Is(err, ErrStaticBackend):
		return fmt.Errorf("%w: use balance roundrobin, leastconn, random or first (or hash-type consistent)", err)
	case errors.Is(err, ErrPermission):
		return fmt.Errorf("%w: the stats socket needs \"level admin\"", err)
	case errors.Is(err, ErrUnknownCommand):
		return fmt.Errorf("%w: dynamic servers need HAProxy 2.4 or later", err)
	}
	return err
}

// resolve turns host:port into IP:port (HAProxy does not resolve names of
// dynamic servers).
func resolve(ctx context.Context, address string) (string, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("address %q is not host:port: %w", address, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.Unmap().String(), port), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("resolving %s: %w", host, err)
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		switch {
		case a.Unmap().Is4() == b.Unmap().Is4():
			return 0
		case a.Unmap().Is4():
			return -1
		default:
			return 1
		}
	})
	return net.JoinHostPort(ips[0].Unmap().String(), port), nil
}

// --- the configuration file ---

func (b *Balancer) remember(name, addr string) error {
	return b.editFile(func(servers map[string]string) bool {
		if servers[name] == addr {
			return false
		}
		servers[name] = addr
		return true
	})
}

func (b *Balancer) forget(name string) error {
	return b.editFile(func(servers map[string]string) bool {
		if _, ok := servers[name]; !ok {
			return false
		}
		delete(servers, name)
		return true
	})
}

// editFile changes the servers of the configuration file: it reads the file
// again under a lock (several goscaler servers of one installation may
// register nodes of the cluster, each with its own Balancer), lets edit change
// them, and writes the file if edit reports a change.
func (b *Balancer) editFile(edit func(servers map[string]string) bool) error {
	if b.file == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	unlock, err := lockFile(b.file + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	b.inFile = map[string]string{}
	if err := b.loadFile(); err != nil {
		return fmt.Errorf("reading %s: %w", b.file, err)
	}
	if !edit(b.inFile) {
		return nil
	}
	return b.writeFile()
}

// lockFile takes an exclusive flock on path (created if needed).
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // next to the configured file
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil { //nolint:gosec // fd fits an int
		_ = f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:gosec // fd fits an int
		_ = f.Close()
	}, nil
}

// loadFile reads the servers of an existing configuration file.
func (b *Balancer) loadFile() error {
	data, err := os.ReadFile(b.file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "server" && checkName("server", f[1]) == nil {
			b.inFile[f[1]] = f[2]
		}
	}
	return nil
}

// writeFile writes the backend's section atomically; the caller holds b.mu.
func (b *Balancer) writeFile() error {
	var s strings.Builder
	fmt.Fprintf(&s, "# Written by goscaler for cluster %s: the backend of its nodes. Do not edit: goscaler\n", b.cluster)
	s.WriteString("# rewrites it whenever a node enters or leaves. Load it with: haproxy -f haproxy.cfg -f THIS_FILE\n")
	fmt.Fprintf(&s, "backend %s\n", b.backend)
	for _, l := range b.lines {
		fmt.Fprintf(&s, "    %s\n", strings.TrimSpace(l))
	}
	opts := ""
	if len(b.options) > 0 {
		opts = " " + strings.Join(b.options, " ")
	}
	for _, name := range slices.Sorted(maps.Keys(b.inFile)) {
		fmt.Fprintf(&s, "    server %s %s%s\n", name, b.inFile[name], opts)
	}
	dir := filepath.Dir(b.file)
	tmp, err := os.CreateTemp(dir, ".goscaler-*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", b.file, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.WriteString(s.String()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", b.file, err)
	}
	// HAProxy often runs as another user: the file holds no secret.
	if err := tmp.Chmod(0o644); err != nil { //nolint:gosec // world-readable on purpose, see above
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", b.file, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", b.file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", b.file, err)
	}
	if err := os.Rename(tmp.Name(), b.file); err != nil {
		return fmt.Errorf("writing %s: %w", b.file, err)
	}
	return nil
}
