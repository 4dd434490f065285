package builtin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
)

const healthPath = "/healthz"

// testBackend is a real HTTP server standing for one node. It answers its name,
// echoes a request body, and answers health checks as failHealth says.
type testBackend struct {
	*httptest.Server
	name         string
	hits         atomic.Int64 // non-health requests
	healthChecks atomic.Int64
	failHealth   atomic.Int32 // healthOK, healthStatus500 or healthHang
}

const (
	healthOK int32 = iota
	healthStatus500
	healthHang
)

// newBackend starts a backend; extra, if not nil, handles requests instead of
// the default answer (it is still counted in hits).
func newBackend(t *testing.T, name string, extra http.HandlerFunc) *testBackend {
	t.Helper()
	tb := &testBackend{name: name}
	tb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == healthPath {
			tb.healthChecks.Add(1)
			switch tb.failHealth.Load() {
			case healthStatus500:
				http.Error(w, "sick", http.StatusInternalServerError)
			case healthHang:
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			default:
				_, _ = io.WriteString(w, "ok")
			}
			return
		}
		tb.hits.Add(1)
		w.Header().Set("X-Seen-Forwarded-For", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Forwarded-Host", r.Header.Get("X-Forwarded-Host"))
		w.Header().Set("X-Seen-Host", r.Host)
		if extra != nil {
			extra(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, name+string(body))
	}))
	t.Cleanup(tb.Close)
	return tb
}

func (tb *testBackend) backend() lb.Backend {
	return lb.Backend{NodeID: tb.name, Address: tb.Listener.Addr().String()}
}

// deadAddress returns an address where nothing listens.
func deadAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newLB starts a balancer for cluster "web" on a free port of 127.0.0.1 and
// closes it when the test ends.
func newLB(t *testing.T, cfg Config, health string, logger *slog.Logger) *Balancer {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	got, err := cfg.New(lb.Env{Cluster: "web", HealthPath: health, Logger: logger})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b, ok := got.(*Balancer)
	if !ok {
		t.Fatalf("New returned %T, want *Balancer", got)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func register(t *testing.T, b *Balancer, backends ...*testBackend) {
	t.Helper()
	for _, tb := range backends {
		if err := b.Register(t.Context(), tb.backend()); err != nil {
			t.Fatalf("Register %s: %v", tb.name, err)
		}
	}
}

func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type result struct {
	status int
	body   string
	node   string
	header http.Header
	err    error
}

func send(c *http.Client, method, url, body string) result {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return result{err: err}
	}
	res, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	return result{status: res.StatusCode, body: string(b), node: res.Header.Get(NodeHeader), header: res.Header, err: err}
}

// get sends a GET to the balancer and fails the test on a transport error.
func get(t *testing.T, c *http.Client, b *Balancer, path string) result {
	t.Helper()
	r := send(c, http.MethodGet, "http://"+b.Addr()+path, "")
	if r.err != nil {
		t.Fatalf("GET %s: %v", path, r.err)
	}
	return r
}

// waitFor polls cond until it holds or timeout elapses.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statsOf(b *Balancer, node string) (BackendStats, bool) {
	for _, s := range b.Stats() {
		if s.NodeID == node {
			return s, true
		}
	}
	return BackendStats{}, false
}

func TestRegistered(t *testing.T) {
	t.Parallel()
	if !slices.Contains(lb.Registry.Names(), TypeName) {
		t.Fatalf("lb.Registry.Names() = %v, want it to hold %q", lb.Registry.Names(), TypeName)
	}
	_, err := lb.Registry.Decode(TypeName, nil)
	if err == nil || !strings.Contains(err.Error(), "listen: required") {
		t.Fatalf("Decode without keys: err = %v, want listen: required", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per expected problem; none: valid
	}{
		{name: "minimal", cfg: Config{Listen: ":8080"}},
		{name: "port zero", cfg: Config{Listen: "127.0.0.1:0"}},
		{name: "ipv6", cfg: Config{Listen: "[::1]:8080"}},
		{name: "all set", cfg: Config{Listen: "0.0.0.0:80", HealthInterval: plugin.Duration(time.Second),
			HealthTimeout: plugin.Duration(time.Second), UnhealthyThreshold: 3, DrainTimeout: plugin.Duration(time.Minute)}},
		{name: "missing listen", cfg: Config{}, want: []string{"listen: required"}},
		{name: "no port", cfg: Config{Listen: "foo"}, want: []string{`listen: "foo" is not host:port`}},
		{name: "named port", cfg: Config{Listen: "localhost:http"}, want: []string{`listen: port "http" of "localhost:http" is not a number`}},
		{name: "port too big", cfg: Config{Listen: ":70000"}, want: []string{`listen: port "70000"`}},
		{name: "negative interval", cfg: Config{Listen: ":80", HealthInterval: plugin.Duration(-time.Second)},
			want: []string{"health_interval: must not be negative"}},
		{name: "negative timeout", cfg: Config{Listen: ":80", HealthTimeout: plugin.Duration(-time.Second)},
			want: []string{"health_timeout: must not be negative"}},
		{name: "negative drain", cfg: Config{Listen: ":80", DrainTimeout: plugin.Duration(-time.Second)},
			want: []string{"drain_timeout: must not be negative"}},
		{name: "negative threshold", cfg: Config{Listen: ":80", UnhealthyThreshold: -1},
			want: []string{"unhealthy_threshold: must not be negative, got -1"}},
		{name: "every problem", cfg: Config{Listen: "a:b:c", HealthInterval: -1, HealthTimeout: -1, DrainTimeout: -1, UnhealthyThreshold: -2},
			want: []string{`listen: "a:b:c" is not host:port`, "health_interval:", "health_timeout:", "drain_timeout:", "unhealthy_threshold:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if got := len(plugin.Flatten(err)); got != len(tt.want) {
				t.Errorf("Validate() returned %d problems, want %d: %v", got, len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			// New refuses what Validate refuses, naming the cluster.
			if _, nerr := tt.cfg.New(lb.Env{Cluster: "web"}); nerr == nil || !strings.Contains(nerr.Error(), `"web"`) {
				t.Errorf("New() = %v, want an error naming cluster \"web\"", nerr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	got := Config{Listen: ":1"}.withDefaults()
	want := Config{Listen: ":1", HealthInterval: plugin.Duration(DefaultHealthInterval), HealthTimeout: plugin.Duration(DefaultHealthTimeout),
		UnhealthyThreshold: DefaultUnhealthyThreshold, DrainTimeout: plugin.Duration(DefaultDrainTimeout)}
	if got != want {
		t.Fatalf("withDefaults() = %+v, want %+v", got, want)
	}
}

func TestNewPortClash(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	addr := ln.Addr().String()
	_, err = (&Config{Listen: addr}).New(lb.Env{Cluster: "web"})
	if err == nil {
		t.Fatal("New on a port in use succeeded")
	}
	if !strings.Contains(err.Error(), `"web"`) || !strings.Contains(err.Error(), addr) {
		t.Errorf("New error %q does not name the cluster and %s", err, addr)
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("New error %v does not wrap EADDRINUSE", err)
	}
}

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d backends", n), func(t *testing.T) {
			t.Parallel()
			b := newLB(t, Config{}, "", nil)
			var names []string
			// Register in reverse order: rotation follows NodeID order anyway.
			for i := n - 1; i >= 0; i-- {
				name := fmt.Sprintf("node-%d", i)
				register(t, b, newBackend(t, name, nil))
				names = append([]string{name}, names...)
			}
			c := newClient(t)
			const rounds = 3
			for i := range rounds * n {
				r := get(t, c, b, "/")
				want := names[i%n]
				if r.status != http.StatusOK || r.body != want || r.node != want {
					t.Fatalf("request %d: status %d body %q node %q, want 200 from %s", i, r.status, r.body, r.node, want)
				}
			}
			for _, s := range b.Stats() {
				if s.Served != rounds || s.InFlight != 0 || !s.Healthy || s.Draining {
					t.Errorf("stats %+v, want served %d, nothing in flight, healthy", s, rounds)
				}
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	t.Parallel()
	b := newLB(t, Config{}, "", nil)
	register(t, b, newBackend(t, "a", nil))
	r := get(t, newClient(t), b, "/x")
	if got := r.header.Get("X-Seen-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("backend saw X-Forwarded-For %q, want 127.0.0.1", got)
	}
	if got := r.header.Get("X-Seen-Forwarded-Host"); got != b.Addr() {
		t.Errorf("backend saw X-Forwarded-Host %q, want %s", got, b.Addr())
	}
	if got := r.header.Get("X-Seen-Host"); got != b.Addr() {
		t.Errorf("backend saw Host %q, want the client's %s", got, b.Addr())
	}
}

func TestNoBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, b *Balancer)
	}{
		{name: "none registered", setup: func(*testing.T, *Balancer) {}},
		{name: "all deregistered", setup: func(t *testing.T, b *Balancer) {
			tb := newBackend(t, "a", nil)
			register(t, b, tb)
			if err := b.Deregister(t.Context(), tb.backend()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newLB(t, Config{}, "", nil)
			tt.setup(t, b)
			r := get(t, newClient(t), b, "/")
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", r.status)
			}
			if !strings.Contains(r.body, "no backend in service for cluster web") {
				t.Errorf("body %q, want the no-backend message", r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
		})
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	t.Run("idempotent and sorted", func(t *testing.T) {
		t.Parallel()
		b := newLB(t, Config{}, "", nil)
		for _, be := range []lb.Backend{
			{NodeID: "c", Address: "127.0.0.1:3"},
			{NodeID: "a", Address: "127.0.0.1:1"},
			{NodeID: "b", Address: "127.0.0.1:2"},
			{NodeID: "a", Address: "127.0.0.1:1"},
			{NodeID: "c", Address: "127.0.0.1:3"},
		} {
			if err := b.Register(t.Context(), be); err != nil {
				t.Fatalf("Register(%+v): %v", be, err)
			}
		}
		got, err := b.Backends(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := []lb.Backend{
			{NodeID: "a", Address: "127.0.0.1:1"},
			{NodeID: "b", Address: "127.0.0.1:2"},
			{NodeID: "c", Address: "127.0.0.1:3"},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Backends() = %v, want %v", got, want)
		}
	})
	t.Run("new address replaces the old one", func(t *testing.T) {
		t.Parallel()
		b := newLB(t, Config{}, "", nil)
		old, cur := newBackend(t, "old", nil), newBackend(t, "new", nil)
		if err := b.Register(t.Context(), lb.Backend{NodeID: "n1", Address: old.Listener.Addr().String()}); err != nil {
			t.Fatal(err)
		}
		if err := b.Register(t.Context(), lb.Backend{NodeID: "n1", Address: cur.Listener.Addr().String()}); err != nil {
			t.Fatal(err)
		}
		got, _ := b.Backends(t.Context())
		if len(got) != 1 || got[0].Address != cur.Listener.Addr().String() {
			t.Fatalf("Backends() = %v, want n1 at the new address", got)
		}
		if r := get(t, newClient(t), b, "/"); r.body != "new" || r.node != "n1" {
			t.Fatalf("served by %q (node %q), want the new address", r.body, r.node)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		b := newLB(t, Config{}, "", nil)
		for _, be := range []lb.Backend{{NodeID: "", Address: "127.0.0.1:1"}, {NodeID: "x", Address: "nope"}, {NodeID: "x"}} {
			if err := b.Register(t.Context(), be); err == nil {
				t.Errorf("Register(%+v) = nil, want an error", be)
			}
		}
	})
}

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		failure int32
	}{
		{"status 500", healthStatus500},
		{"timeout", healthHang},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			cfg := Config{HealthInterval: plugin.Duration(20 * time.Millisecond), HealthTimeout: plugin.Duration(100 * time.Millisecond), UnhealthyThreshold: 2}
			b := newLB(t, cfg, healthPath, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			sick, well := newBackend(t, "a", nil), newBackend(t, "b", nil)
			register(t, b, sick, well)
			client := newClient(t)

			sick.failHealth.Store(tt.failure)
			waitFor(t, 5*time.Second, "a out of rotation", func() bool { s, _ := statsOf(b, "a"); return !s.Healthy })
			for range 6 {
				if r := get(t, client, b, "/"); r.status != http.StatusOK || r.node != "b" {
					t.Fatalf("while a is unhealthy: status %d from %q, want 200 from b", r.status, r.node)
				}
			}
			if got, _ := b.Backends(t.Context()); len(got) != 2 {
				t.Errorf("Backends() = %v: an unhealthy backend must stay registered", got)
			}

			sick.failHealth.Store(healthOK)
			waitFor(t, 5*time.Second, "a back in rotation", func() bool { s, _ := statsOf(b, "a"); return s.Healthy })
			seen := map[string]bool{}
			for range 4 {
				seen[get(t, client, b, "/").node] = true
			}
			if !seen["a"] || !seen["b"] {
				t.Errorf("after recovery served by %v, want both a and b", seen)
			}
			out := logs.String()
			for _, w := range []string{"backend out of rotation", "backend back in rotation", "node=a", "cluster=web"} {
				if !strings.Contains(out, w) {
					t.Errorf("logs lack %q:\n%s", w, out)
				}
			}
		})
	}
}

// slowBackend answers /slow only when release is closed; started receives one
// value per /slow request as it arrives.
type slowBackend struct {
	*testBackend
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

// Release lets the /slow requests finish.
func (sb *slowBackend) Release() { sb.once.Do(func() { close(sb.release) }) }

func newSlowBackend(t *testing.T, name string, onFinish func()) *slowBackend {
	t.Helper()
	sb := &slowBackend{started: make(chan struct{}, 16), release: make(chan struct{})}
	sb.testBackend = newBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			sb.started <- struct{}{}
			<-sb.release
			if onFinish != nil {
				onFinish()
			}
		}
		_, _ = io.WriteString(w, name)
	})
	// Registered after the server's Close, so it runs first: a failed test
	// never leaves Close waiting on a held request.
	t.Cleanup(sb.Release)
	return sb
}

func waitStarted(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("slow request never reached the backend")
	}
}

func TestDeregisterDrains(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		events []string
	)
	event := func(e string) { mu.Lock(); events = append(events, e); mu.Unlock() }

	b := newLB(t, Config{}, "", nil)
	slow := newSlowBackend(t, "a", func() { event("slow request finished") })
	register(t, b, slow.testBackend)
	client := newClient(t)

	slowRes := make(chan result, 1)
	go func() { slowRes <- send(client, http.MethodGet, "http://"+b.Addr()+"/slow", "") }()
	waitStarted(t, slow.started)

	other := newBackend(t, "b", nil)
	register(t, b, other)
	deregistered := make(chan error, 1)
	go func() {
		err := b.Deregister(context.Background(), slow.backend())
		event("deregister returned")
		deregistered <- err
	}()
	waitFor(t, 5*time.Second, "a out of rotation", func() bool { got, _ := b.Backends(t.Context()); return len(got) == 1 })
	if s, _ := statsOf(b, "a"); !s.Draining || s.InFlight != 1 {
		t.Errorf("stats of a while draining = %+v, want draining with 1 in flight", s)
	}

	// Meanwhile no new request goes to the draining backend.
	for range 5 {
		if r := get(t, client, b, "/"); r.status != http.StatusOK || r.node != "b" {
			t.Fatalf("during drain: status %d from %q, want 200 from b", r.status, r.node)
		}
	}
	if got := slow.hits.Load(); got != 1 {
		t.Errorf("draining backend received %d requests, want only the slow one", got)
	}
	select {
	case err := <-deregistered:
		t.Fatalf("Deregister returned (%v) while a request was still in flight", err)
	default:
	}

	slow.Release()
	if r := <-slowRes; r.err != nil || r.status != http.StatusOK || r.node != "a" {
		t.Fatalf("slow request: %+v, want 200 from a", r)
	}
	select {
	case err := <-deregistered:
		if err != nil {
			t.Fatalf("Deregister: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Deregister did not return after the request finished")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"slow request finished", "deregister returned"}; !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	if _, ok := statsOf(b, "a"); ok {
		t.Errorf("a still in Stats after draining: %+v", b.Stats())
	}
}

func TestDeregisterGivesUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		drain   time.Duration
		ctxWait time.Duration // 0: no deadline
		wantErr error
	}{
		{name: "context deadline", ctxWait: 50 * time.Millisecond, wantErr: context.DeadlineExceeded},
		{name: "drain timeout", drain: 50 * time.Millisecond, wantErr: ErrDrainTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newLB(t, Config{DrainTimeout: plugin.Duration(tt.drain)}, "", nil)
			slow := newSlowBackend(t, "a", nil)
			register(t, b, slow.testBackend)
			client := newClient(t)
			slowRes := make(chan result, 1)
			go func() { slowRes <- send(client, http.MethodGet, "http://"+b.Addr()+"/slow", "") }()
			waitStarted(t, slow.started)

			ctx := t.Context()
			if tt.ctxWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxWait)
				defer cancel()
			}
			start := time.Now()
			err := b.Deregister(ctx, slow.backend())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Deregister = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "1 requests still in flight") || !strings.Contains(err.Error(), "node a") {
				t.Errorf("Deregister error %q does not say node a has 1 request in flight", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Deregister took %s", d)
			}
			// It stays out of rotation; the request in flight still completes.
			if got, _ := b.Backends(t.Context()); len(got) != 0 {
				t.Errorf("Backends() = %v after a failed drain, want none", got)
			}
			if r := get(t, client, b, "/"); r.status != http.StatusServiceUnavailable {
				t.Errorf("new request: status %d, want 503", r.status)
			}
			slow.Release()
			if r := <-slowRes; r.err != nil || r.status != http.StatusOK {
				t.Fatalf("slow request: %+v, want 200", r)
			}
			waitFor(t, 5*time.Second, "drained backend to leave Stats", func() bool { return len(b.Stats()) == 0 })
			if err := b.Deregister(t.Context(), slow.backend()); err != nil {
				t.Errorf("second Deregister = %v, want nil", err)
			}
		})
	}
}

func TestDeregisterUnknown(t *testing.T) {
	t.Parallel()
	b := newLB(t, Config{}, "", nil)
	if err := b.Deregister(t.Context(), lb.Backend{NodeID: "ghost", Address: "127.0.0.1:1"}); err != nil {
		t.Fatalf("Deregister(unknown) = %v, want nil", err)
	}
}

func TestRetryOnConnectionRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, body string
	}{
		{http.MethodGet, ""},
		{http.MethodHead, ""},
		{http.MethodPost, ""},
		{http.MethodPost, "payload"},
		{http.MethodPut, strings.Repeat("x", 100_000)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %d bytes", tt.method, len(tt.body)), func(t *testing.T) {
			t.Parallel()
			b := newLB(t, Config{}, "", nil)
			// "a" sorts first, so rotation starts on the dead backend.
			if err := b.Register(t.Context(), lb.Backend{NodeID: "a", Address: deadAddress(t)}); err != nil {
				t.Fatal(err)
			}
			live := newBackend(t, "b", nil)
			register(t, b, live)
			client := newClient(t)
			const n = 6
			for i := range n {
				r := send(client, tt.method, "http://"+b.Addr()+"/", tt.body)
				if r.err != nil || r.status != http.StatusOK || r.node != "b" {
					t.Fatalf("request %d: %+v, want 200 from b", i, r)
				}
				if tt.method != http.MethodHead && r.body != "b"+tt.body {
					t.Fatalf("request %d: body of %d bytes, want the echo of %d", i, len(r.body), len(tt.body)+1)
				}
			}
			dead, _ := statsOf(b, "a")
			alive, _ := statsOf(b, "b")
			if dead.Served != 0 || dead.InFlight != 0 || alive.Served != n || alive.InFlight != 0 {
				t.Errorf("stats a=%+v b=%+v, want all %d served by b, nothing in flight", dead, alive, n)
			}
		})
	}
}

func TestBadGatewayAfterRetry(t *testing.T) {
	t.Parallel()
	b := newLB(t, Config{}, "", nil)
	for _, id := range []string{"a", "b"} {
		if err := b.Register(t.Context(), lb.Backend{NodeID: id, Address: deadAddress(t)}); err != nil {
			t.Fatal(err)
		}
	}
	r := get(t, newClient(t), b, "/")
	if r.status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", r.status)
	}
	for _, s := range b.Stats() {
		if s.InFlight != 0 {
			t.Errorf("stats %+v: in flight after a failed request", s)
		}
	}
}

func TestScaleInUnderLoad(t *testing.T) {
	t.Parallel()
	b := newLB(t, Config{}, healthPath, nil)
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			body, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, name+string(body))
		}
	}
	leaving, staying := newBackend(t, "a", handler("a")), newBackend(t, "b", handler("b"))
	register(t, b, leaving, staying)

	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	var (
		ok, failed atomic.Int64
		errMu      sync.Mutex
		errs       []string
		wg         sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				method, body := http.MethodGet, ""
				if (w+i)%2 == 1 {
					method, body = http.MethodPost, fmt.Sprintf("w%d-%d", w, i)
				}
				r := send(client, method, "http://"+b.Addr()+"/", body)
				if r.err == nil && r.status == http.StatusOK && r.body == r.node+body {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				errMu.Lock()
				errs = append(errs, fmt.Sprintf("%s: status %d body %q node %q err %v", method, r.status, r.body, r.node, r.err))
				errMu.Unlock()
			}
		})
	}

	time.Sleep(300 * time.Millisecond)
	dctx, dcancel := context.WithTimeout(t.Context(), 5*time.Second)
	err := b.Deregister(dctx, leaving.backend())
	dcancel()
	if err != nil {
		t.Errorf("Deregister under load: %v", err)
	}
	hitsAtDrain := leaving.hits.Load()
	leaving.Close()
	wg.Wait()

	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during scale-in; first: %v", n, n+ok.Load(), errs[:min(len(errs), 5)])
	}
	if ok.Load() < 50 {
		t.Errorf("only %d requests succeeded: the load was too light to mean anything", ok.Load())
	}
	if hitsAtDrain == 0 {
		t.Errorf("the leaving backend served nothing before it left")
	}
	if got := leaving.hits.Load(); got != hitsAtDrain {
		t.Errorf("leaving backend got %d requests after Deregister returned", got-hitsAtDrain)
	}
	if st := b.Stats(); len(st) != 1 || st[0].NodeID != "b" || st[0].InFlight != 0 {
		t.Errorf("Stats() = %+v, want only b, idle", st)
	}
}

func TestShutdownWaitsForRequests(t *testing.T) {
	t.Parallel()
	b := newLB(t, Config{}, "", nil)
	slow := newSlowBackend(t, "a", nil)
	register(t, b, slow.testBackend)
	client := newClient(t)
	slowRes := make(chan result, 1)
	go func() { slowRes <- send(client, http.MethodGet, "http://"+b.Addr()+"/slow", "") }()
	waitStarted(t, slow.started)

	done := make(chan error, 1)
	go func() { done <- b.Shutdown(t.Context()) }()
	waitFor(t, 5*time.Second, "listener to close", func() bool {
		conn, err := net.Dial("tcp", b.Addr())
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	slow.Release()
	if r := <-slowRes; r.err != nil || r.status != http.StatusOK {
		t.Fatalf("slow request: %+v, want 200", r)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}

// TestCloseReleasesEverything is not parallel: it counts goroutines, so it runs
// before the parallel tests start.
func TestCloseReleasesEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		tb := newBackend(t, "a", nil)
		defer tb.Close()
		cfg := Config{Listen: "127.0.0.1:0", HealthInterval: plugin.Duration(10 * time.Millisecond)}
		got, err := cfg.New(lb.Env{Cluster: "web", HealthPath: healthPath, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		b := got.(*Balancer)
		register(t, b, tb)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		for range 3 {
			if r := get(t, client, b, "/"); r.status != http.StatusOK {
				t.Fatalf("status %d", r.status)
			}
		}
		waitFor(t, 5*time.Second, "a health check", func() bool { return tb.healthChecks.Load() > 0 })
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := net.Dial("tcp", b.Addr()); err == nil {
			t.Error("listener still accepts after Close")
		}
		if err := b.Register(t.Context(), tb.backend()); !errors.Is(err, ErrClosed) {
			t.Errorf("Register after Close = %v, want ErrClosed", err)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
