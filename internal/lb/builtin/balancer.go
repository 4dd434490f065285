package builtin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
)

// NodeHeader is the response header naming the NodeID of the backend that
// served the request.
const NodeHeader = "X-Goscaler-Node"

// ErrClosed is returned by Register after Close.
var ErrClosed = errors.New("load balancer is closed")

// ErrDrainTimeout is wrapped by Deregister's error when DrainTimeout elapsed
// before the backend's requests in flight finished.
var ErrDrainTimeout = errors.New("drain timeout elapsed")

// Balancer is the built-in load balancer of one cluster. It implements
// lb.Balancer and io.Closer.
type Balancer struct {
	cluster    string
	healthPath string
	cfg        Config
	log        *slog.Logger

	ln        net.Listener
	srv       *http.Server
	proxy     *httputil.ReverseProxy
	transport *http.Transport
	health    *http.Client
	healthTr  *http.Transport

	// ctx is done when the balancer closes; it bounds health checks and
	// proxied requests.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // serve and health goroutines

	// mu guards everything below, including every backend's fields: picking a
	// backend and counting the request in flight happen under it, as does
	// taking a backend out of rotation, so they are atomic with respect to
	// each other.
	mu       sync.Mutex
	backends map[string]*backend // registered, by NodeID
	order    []*backend          // registered, sorted by NodeID
	next     int                 // round-robin position in order
	draining map[*backend]struct{}
	closed   bool
	handlers sync.WaitGroup // requests being served; Add only under mu while !closed

	closeOnce sync.Once
	closeErr  error
}

// backend is one registered (or draining) node. Its fields are guarded by
// Balancer.mu; id never changes.
type backend struct {
	id       string
	addr     string
	healthy  bool
	fails    int
	inflight int64
	served   uint64
	draining bool
	// idle is made when draining starts and closed when inflight reaches 0.
	idle chan struct{}
}

// BackendStats is a snapshot of one backend, for metrics and tests.
type BackendStats struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address"`
	// Healthy is false while active health checks keep the backend out of
	// rotation.
	Healthy bool `json:"healthy"`
	// Draining is true for a deregistered backend that still has requests in
	// flight.
	Draining bool `json:"draining"`
	// InFlight is the number of requests sent to it and not finished.
	InFlight int64 `json:"in_flight"`
	// Served is the number of responses it returned.
	Served uint64 `json:"served"`
}

var (
	_ lb.Balancer = (*Balancer)(nil)
	_ lb.Config   = (*Config)(nil)
)

func newBalancer(c Config, env lb.Env) (*Balancer, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("load balancer of cluster %q: %w", env.Cluster, err)
	}
	cfg := c.withDefaults()
	logger := env.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("lb", TypeName, "cluster", env.Cluster)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("load balancer of cluster %q: cannot listen on %s: %w", env.Cluster, cfg.Listen, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	b := &Balancer{
		cluster:    env.Cluster,
		healthPath: env.HealthPath,
		cfg:        cfg,
		log:        logger,
		ln:         ln,
		ctx:        ctx,
		cancel:     cancel,
		backends:   map[string]*backend{},
		draining:   map[*backend]struct{}{},
	}
	errLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	b.transport = &http.Transport{
		Proxy: nil, // backends are reached directly, whatever the environment says
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	b.proxy = &httputil.ReverseProxy{
		Rewrite:      b.rewrite,
		Transport:    &retryTransport{b: b, base: b.transport},
		ErrorHandler: b.proxyError,
		ErrorLog:     errLog,
	}
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(b.serve),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errLog,
	}
	b.healthTr = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	b.health = &http.Client{
		Transport: b.healthTr,
		// A redirect is an answer: 3xx counts as healthy, it is not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("load balancer stopped serving", "listen", b.Addr(), "error", err)
		}
	}()
	if b.healthPath != "" {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.healthLoop()
		}()
	}
	b.log.Info("load balancer listening", "listen", b.Addr())
	return b, nil
}

// Addr is the address the proxy listens on, with the port actually bound.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// Register puts a backend into rotation. Registering a NodeID again is a no-op,
// except that a new Address replaces the old one (and resets its health).
func (b *Balancer) Register(_ context.Context, be lb.Backend) error {
	if be.NodeID == "" {
		return errors.New("register backend: empty node id")
	}
	if _, _, err := net.SplitHostPort(be.Address); err != nil {
		return fmt.Errorf("register node %s: address %q is not host:port: %w", be.NodeID, be.Address, err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("register node %s: %w", be.NodeID, ErrClosed)
	}
	if cur, ok := b.backends[be.NodeID]; ok {
		old := cur.addr
		if old != be.Address {
			cur.addr = be.Address
			cur.healthy, cur.fails = true, 0
		}
		b.mu.Unlock()
		if old != be.Address {
			b.log.Info("backend address changed", "node", be.NodeID, "from", old, "to", be.Address)
		}
		return nil
	}
	nb := &backend{id: be.NodeID, addr: be.Address, healthy: true}
	b.backends[nb.id] = nb
	b.order = append(b.order, nb)
	slices.SortFunc(b.order, func(x, y *backend) int { return cmp.Compare(x.id, y.id) })
	b.mu.Unlock()
	b.log.Debug("backend registered", "node", be.NodeID, "address", be.Address)
	return nil
}

// Deregister takes the backend with be.NodeID out of rotation at once and waits
// until its requests in flight have finished. It returns ctx's error (wrapped)
// if ctx is done first, and an error wrapping ErrDrainTimeout if DrainTimeout
// elapses first; either way the backend stays out of rotation. Deregistering an
// unknown backend returns nil; only the NodeID is looked at.
func (b *Balancer) Deregister(ctx context.Context, be lb.Backend) error {
	b.mu.Lock()
	if cur, ok := b.backends[be.NodeID]; ok {
		delete(b.backends, cur.id)
		b.order = slices.DeleteFunc(b.order, func(x *backend) bool { return x == cur })
		cur.draining = true
		cur.idle = make(chan struct{})
		if cur.inflight == 0 {
			close(cur.idle)
		} else {
			b.draining[cur] = struct{}{}
		}
	}
	// Wait for every draining instance of this node, including one that an
	// earlier Deregister gave up on.
	var idle []chan struct{}
	for d := range b.draining {
		if d.id == be.NodeID {
			idle = append(idle, d.idle)
		}
	}
	b.mu.Unlock()
	if len(idle) == 0 {
		return nil
	}
	b.log.Debug("backend out of rotation, draining", "node", be.NodeID)

	timer := time.NewTimer(b.cfg.DrainTimeout.D())
	defer timer.Stop()
	for _, ch := range idle {
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("deregister node %s from load balancer of cluster %q: %d requests still in flight: %w",
				be.NodeID, b.cluster, b.inFlight(be.NodeID), ctx.Err())
		case <-timer.C:
			return fmt.Errorf("deregister node %s from load balancer of cluster %q: %w after %s, %d requests still in flight",
				be.NodeID, b.cluster, ErrDrainTimeout, b.cfg.DrainTimeout, b.inFlight(be.NodeID))
		}
	}
	return nil
}

// inFlight counts the requests in flight to the draining instances of a node.
func (b *Balancer) inFlight(nodeID string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for d := range b.draining {
		if d.id == nodeID {
			n += d.inflight
		}
	}
	return n
}

// Backends lists the registered backends (healthy or not, not the draining
// ones), sorted by NodeID.
func (b *Balancer) Backends(context.Context) ([]lb.Backend, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]lb.Backend, 0, len(b.order))
	for _, be := range b.order {
		out = append(out, lb.Backend{NodeID: be.id, Address: be.addr})
	}
	return out, nil
}

// Stats returns a snapshot of the registered backends sorted by NodeID, then of
// the draining ones (Draining set) sorted by NodeID.
func (b *Balancer) Stats() []BackendStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]BackendStats, 0, len(b.order)+len(b.draining))
	for _, be := range b.order {
		out = append(out, be.stats())
	}
	var drain []BackendStats
	for be := range b.draining {
		drain = append(drain, be.stats())
	}
	slices.SortFunc(drain, func(x, y BackendStats) int { return cmp.Compare(x.NodeID, y.NodeID) })
	return append(out, drain...)
}

func (be *backend) stats() BackendStats {
	return BackendStats{
		NodeID:   be.id,
		Address:  be.addr,
		Healthy:  be.healthy,
		Draining: be.draining,
		InFlight: be.inflight,
		Served:   be.served,
	}
}

// pick chooses the next healthy backend in rotation other than exclude and
// counts a request in flight to it, atomically. It returns nil if there is none.
func (b *Balancer) pick(exclude *backend) (*backend, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pickLocked(exclude)
}

func (b *Balancer) pickLocked(exclude *backend) (*backend, string) {
	n := len(b.order)
	for i := range n {
		idx := (b.next + i) % n
		be := b.order[idx]
		if !be.healthy || be == exclude {
			continue
		}
		b.next = idx + 1
		be.inflight++
		return be, be.addr
	}
	return nil, ""
}

// release ends a request in flight to be, and wakes a Deregister waiting for
// it to drain.
func (b *Balancer) release(be *backend) {
	b.mu.Lock()
	defer b.mu.Unlock()
	be.inflight--
	if be.inflight == 0 && be.draining {
		close(be.idle)
		delete(b.draining, be)
	}
}

// served counts a response from be.
func (b *Balancer) served(be *backend) {
	b.mu.Lock()
	be.served++
	b.mu.Unlock()
}

// Close stops the listener and the health checks, aborts the requests being
// proxied and waits for the balancer's goroutines to end. It is safe to call
// more than once.
func (b *Balancer) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.cancel()
		if err := b.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			b.closeErr = fmt.Errorf("close load balancer of cluster %q: %w", b.cluster, err)
		}
		b.wg.Wait()
		b.handlers.Wait()
		b.transport.CloseIdleConnections()
		b.healthTr.CloseIdleConnections()
		b.log.Info("load balancer closed", "listen", b.Addr())
	})
	return b.closeErr
}

// Shutdown stops accepting connections and waits for the requests being served
// to finish (or ctx to be done), then closes the balancer like Close.
func (b *Balancer) Shutdown(ctx context.Context) error {
	var err error
	if serr := b.srv.Shutdown(ctx); serr != nil {
		err = fmt.Errorf("shut down load balancer of cluster %q: %w", b.cluster, serr)
	}
	return errors.Join(err, b.Close())
}
