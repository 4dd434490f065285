package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the averaging tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestNodeConfigDefaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   NodeConfig
		want NodeConfig
	}{
		{"zero", NodeConfig{}, NodeConfig{NodeID: "demo-node", BaseLatency: 40 * time.Millisecond, Capacity: 4}},
		{"id from listen", NodeConfig{Listen: "127.0.0.1:9000"},
			NodeConfig{Listen: "127.0.0.1:9000", NodeID: "127.0.0.1:9000", BaseLatency: 40 * time.Millisecond, Capacity: 4}},
		{"kept", NodeConfig{NodeID: "n1", BaseLatency: time.Second, Capacity: 2},
			NodeConfig{NodeID: "n1", BaseLatency: time.Second, Capacity: 2}},
		{"negative", NodeConfig{NodeID: "n1", BaseLatency: -1, Capacity: -3},
			NodeConfig{NodeID: "n1", BaseLatency: 40 * time.Millisecond, Capacity: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := NewNodeHandler(tt.in).cfg; got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestNodeLatencyGrowsWithConcurrency drives the handler with a sleep hook
// that holds every request, so request i arrives with exactly i in flight.
func TestNodeLatencyGrowsWithConcurrency(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		name     string
		base     time.Duration
		capacity int
		want     []time.Duration // latency of the i-th concurrent request
	}{
		{"capacity 1", 5 * ms, 1, []time.Duration{5 * ms, 10 * ms, 15 * ms, 20 * ms}},
		{"capacity 4", 40 * ms, 4, []time.Duration{40 * ms, 40 * ms, 40 * ms, 40 * ms, 50 * ms, 60 * ms, 70 * ms}},
		{"capacity 3 rounds to µs", 10 * ms, 3, []time.Duration{10 * ms, 10 * ms, 10 * ms, 13333 * time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := NewNodeHandler(NodeConfig{NodeID: "n1", BaseLatency: tt.base, Capacity: tt.capacity})
			started := make(chan time.Duration)
			release := make(chan struct{})
			node.sleep = func(ctx context.Context, d time.Duration) error {
				started <- d
				select {
				case <-release:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			recs := make([]*httptest.ResponseRecorder, len(tt.want))
			var wg sync.WaitGroup
			for i, want := range tt.want {
				recs[i] = httptest.NewRecorder()
				wg.Go(func() { node.ServeHTTP(recs[i], httptest.NewRequest(http.MethodGet, "/work", nil)) })
				select {
				case got := <-started:
					if got != want {
						t.Errorf("request %d (inflight %d): latency %v, want %v", i, i+1, got, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("request %d never started", i)
				}
			}
			if got := node.Stats().Inflight; got != len(tt.want) {
				t.Errorf("inflight = %d, want %d", got, len(tt.want))
			}
			close(release)
			wg.Wait()
			for i, rec := range recs {
				if rec.Code != http.StatusOK {
					t.Errorf("request %d: status %d", i, rec.Code)
				}
				if body, want := rec.Body.String(), fmt.Sprintf("served by n1 in %v\n", tt.want[i]); body != want {
					t.Errorf("request %d: body %q, want %q", i, body, want)
				}
				if h := rec.Header().Get("X-Demo-Node"); h != "n1" {
					t.Errorf("request %d: X-Demo-Node %q", i, h)
				}
			}
			st := node.Stats()
			if st.Inflight != 0 || st.Requests != uint64(len(tt.want)) {
				t.Errorf("after: inflight %d requests %d, want 0 and %d", st.Inflight, st.Requests, len(tt.want))
			}
		})
	}
}

// TestNodeLatencyRealTimers: with real timers, 4 requests sent together to a
// node of capacity 1 take 1×, 2×, 3× and 4× the base latency.
func TestNodeLatencyRealTimers(t *testing.T) {
	t.Parallel()
	const base = 50 * time.Millisecond
	node := NewNodeHandler(NodeConfig{NodeID: "n1", BaseLatency: base, Capacity: 1})
	type result struct {
		body    string
		elapsed time.Duration
	}
	results := make([]result, 4)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			start := time.Now()
			node.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			results[i] = result{rec.Body.String(), time.Since(start)}
		})
	}
	wg.Wait()
	var got []string
	for _, r := range results {
		got = append(got, r.body)
		s := strings.TrimSuffix(strings.TrimPrefix(r.body, "served by n1 in "), "\n")
		lat, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("body %q: %v", r.body, err)
		}
		if r.elapsed < lat {
			t.Errorf("request answered after %v, shorter than its latency %v", r.elapsed, lat)
		}
	}
	slices.Sort(got)
	want := []string{"served by n1 in 100ms\n", "served by n1 in 150ms\n", "served by n1 in 200ms\n", "served by n1 in 50ms\n"}
	if !slices.Equal(got, want) {
		t.Errorf("bodies = %q, want %q", got, want)
	}
}

func TestNodeEndpoints(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		path     string
		wantType string
		check    func(t *testing.T, body string)
	}{
		{"healthz", "/healthz", "text/plain; charset=utf-8", func(t *testing.T, body string) {
			if body != "ok" {
				t.Errorf("body %q, want ok", body)
			}
		}},
		{"root", "/", "text/plain; charset=utf-8", func(t *testing.T, body string) {
			if body != "served by n1 in 1ms\n" {
				t.Errorf("body %q", body)
			}
		}},
		{"other path", "/some/page?x=1", "text/plain; charset=utf-8", func(t *testing.T, body string) {
			if body != "served by n1 in 1ms\n" {
				t.Errorf("body %q", body)
			}
		}},
		{"stats", "/stats", "application/json", func(t *testing.T, body string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(body), &m); err != nil {
				t.Fatalf("stats %q: %v", body, err)
			}
			var keys []string
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := []string{"inflight", "inflight_avg", "latency_ms_avg", "node", "requests", "rps"}
			if !slices.Equal(keys, want) {
				t.Errorf("stats keys %v, want %v", keys, want)
			}
			if m["node"] != "n1" {
				t.Errorf("node = %v", m["node"])
			}
			var st NodeStats
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				t.Fatal(err)
			}
			if st.Requests != 1 || st.Inflight != 0 || st.RPS <= 0 || st.LatencyMsAvg < 1 {
				t.Errorf("stats after one request: %+v", st)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			node := NewNodeHandler(NodeConfig{NodeID: "n1", BaseLatency: time.Millisecond, Capacity: 1})
			srv := httptest.NewServer(node)
			t.Cleanup(srv.Close)
			// One work request first, so /stats has something to show.
			warm, err := http.Get(srv.URL + "/warmup")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, warm.Body)
			_ = warm.Body.Close()
			time.Sleep(5 * time.Millisecond) // let the clock move past the completion

			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
			if h := resp.Header.Get("X-Demo-Node"); h != "n1" {
				t.Errorf("X-Demo-Node %q", h)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.wantType {
				t.Errorf("Content-Type %q, want %q", ct, tt.wantType)
			}
			tt.check(t, string(body))
			if tt.path == "/healthz" || tt.path == "/stats" {
				if got := node.Stats().Requests; got != 1 {
					t.Errorf("%s counted as work: requests = %d", tt.path, got)
				}
			}
		})
	}
}

// statsHarness drives a node's accounting with a fake clock.
type statsHarness struct {
	node  *Node
	clock *fakeClock
	open  []time.Time // arrival times of the requests in flight, oldest first
}

func (h *statsHarness) start(k int) {
	for range k {
		at, _ := h.node.enter()
		h.open = append(h.open, at)
	}
}

func (h *statsHarness) finish(k int) {
	for range k {
		h.node.leave(h.open[0], true)
		h.open = h.open[1:]
	}
}

func (h *statsHarness) advance(d time.Duration) { h.clock.Advance(d) }

func newStatsHarness() *statsHarness {
	clock := newFakeClock()
	return &statsHarness{node: newNode(NodeConfig{NodeID: "n1"}, clock.Now), clock: clock}
}

func TestNodeStatsAveraging(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		run          func(h *statsHarness)
		wantInflight int
		wantAvg      float64
		wantRPS      float64
		wantLatMs    float64
		wantRequests uint64
	}{
		{
			name:         "no uptime yet reads the current inflight",
			run:          func(h *statsHarness) { h.start(2) },
			wantInflight: 2, wantAvg: 2,
		},
		{
			name:         "two in flight for the whole window",
			run:          func(h *statsHarness) { h.start(2); h.advance(5 * time.Second) },
			wantInflight: 2, wantAvg: 2,
		},
		{
			name: "one request for half the window",
			run: func(h *statsHarness) {
				h.start(1)
				h.advance(2500 * time.Millisecond)
				h.finish(1)
				h.advance(2500 * time.Millisecond)
			},
			wantAvg: 0.5, wantRPS: 0.2, wantLatMs: 2500, wantRequests: 1,
		},
		{
			name: "young node averages over its uptime",
			run:  func(h *statsHarness) { h.start(2); h.advance(time.Second) },
			// Window is the 1s of uptime, not 5s.
			wantInflight: 2, wantAvg: 2,
		},
		{
			name: "steady 3 in flight with churn",
			run: func(h *statsHarness) {
				h.start(3)
				for range 200 { // 10s: one completes and one arrives every 50ms
					h.advance(50 * time.Millisecond)
					h.finish(1)
					h.start(1)
				}
			},
			wantInflight: 3, wantAvg: 3, wantRPS: 20, wantLatMs: 150, wantRequests: 200,
		},
		{
			name: "window slides",
			run: func(h *statsHarness) {
				h.start(4)
				h.advance(5 * time.Second)
				h.finish(4)
				h.advance(2500 * time.Millisecond)
			},
			// [2.5s, 7.5s]: 4 in flight for 2.5s.
			wantAvg: 2, wantRPS: 0.8, wantLatMs: 5000, wantRequests: 4,
		},
		{
			name: "activity older than the window is forgotten",
			run: func(h *statsHarness) {
				h.start(4)
				h.advance(5 * time.Second)
				h.finish(4)
				h.advance(6 * time.Second)
			},
			wantRequests: 4,
		},
		{
			name: "partly covered oldest bucket is pro-rated",
			run: func(h *statsHarness) {
				h.advance(100 * time.Millisecond)
				h.start(1)
				h.advance(5100 * time.Millisecond)
			},
			// Window [0.2s, 5.2s]; 1 in flight from 0.1s: exactly 1.0,
			// read as 0.996 (bucket [0, 0.25s) assumed uniform).
			wantInflight: 1, wantAvg: 1,
		},
		{
			name:         "long gap",
			run:          func(h *statsHarness) { h.start(1); h.advance(time.Hour) },
			wantInflight: 1, wantAvg: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newStatsHarness()
			tt.run(h)
			st := h.node.Stats()
			near := func(got, want float64) bool { return math.Abs(got-want) <= 0.01*math.Max(1, want) }
			if st.Node != "n1" || st.Inflight != tt.wantInflight || st.Requests != tt.wantRequests ||
				!near(st.InflightAvg, tt.wantAvg) || !near(st.RPS, tt.wantRPS) || !near(st.LatencyMsAvg, tt.wantLatMs) {
				t.Errorf("stats = %+v, want inflight %d avg %v rps %v latency %vms requests %d",
					st, tt.wantInflight, tt.wantAvg, tt.wantRPS, tt.wantLatMs, tt.wantRequests)
			}
		})
	}
}

// TestNodeStatsStable: under a steady load whose rhythm does not line up with
// the buckets, readings 2s apart agree, and stay close to the true average.
func TestNodeStatsStable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		period time.Duration // one request completes and one arrives
		inflt  int
	}{
		{"3 in flight, 70ms", 70 * time.Millisecond, 3},
		{"1 in flight, 333ms", 333 * time.Millisecond, 1},
		{"8 in flight, 9ms", 9 * time.Millisecond, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newStatsHarness()
			h.start(tt.inflt)
			var prev *NodeStats
			for elapsed := time.Duration(0); elapsed < 30*time.Second; elapsed += tt.period {
				h.advance(tt.period)
				h.finish(1)
				h.start(1)
				if elapsed < 6*time.Second || (elapsed/(2*time.Second)) == ((elapsed-tt.period)/(2*time.Second)) {
					continue // read once per 2s, after warm-up
				}
				st := h.node.Stats()
				if math.Abs(st.InflightAvg-float64(tt.inflt)) > 0.05 {
					t.Errorf("at %v: inflight_avg %v, want ≈%d", elapsed, st.InflightAvg, tt.inflt)
				}
				if prev != nil {
					if d := math.Abs(st.RPS - prev.RPS); d > 0.05*prev.RPS {
						t.Errorf("at %v: rps jumped %v → %v", elapsed, prev.RPS, st.RPS)
					}
					if d := math.Abs(st.LatencyMsAvg - prev.LatencyMsAvg); d > 0.05*prev.LatencyMsAvg {
						t.Errorf("at %v: latency jumped %v → %v", elapsed, prev.LatencyMsAvg, st.LatencyMsAvg)
					}
				}
				prev = &st
			}
			if prev == nil {
				t.Fatal("no reading taken")
			}
			wantRPS := float64(time.Second) / float64(tt.period)
			if math.Abs(prev.RPS-wantRPS) > 0.05*wantRPS {
				t.Errorf("rps %v, want ≈%v", prev.RPS, wantRPS)
			}
			wantLat := float64(time.Duration(tt.inflt)*tt.period) / float64(time.Millisecond)
			if math.Abs(prev.LatencyMsAvg-wantLat) > 0.01*wantLat {
				t.Errorf("latency %vms, want ≈%vms", prev.LatencyMsAvg, wantLat)
			}
		})
	}
}

func TestNodeClientCancel(t *testing.T) {
	t.Parallel()
	node := NewNodeHandler(NodeConfig{NodeID: "n1", BaseLatency: time.Minute})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		node.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	}()
	waitFor(t, "the request to be in flight", 5*time.Second, func() bool { return node.Stats().Inflight == 1 })
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("handler still running 2s after the client went away")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("handler took %v to notice the cancel", d)
	}
	if st := node.Stats(); st.Inflight != 0 || st.Requests != 0 {
		t.Errorf("after cancel: %+v, want nothing in flight and nothing completed", st)
	}
}

func TestRunNode(t *testing.T) {
	t.Parallel()
	t.Run("shuts down on cancel", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- RunNode(ctx, NodeConfig{Listen: "127.0.0.1:0"}, nil) }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("RunNode = %v, want nil", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("RunNode still running 3s after cancel")
		}
	})
	t.Run("listen error", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ln.Close() }()
		err = RunNode(t.Context(), NodeConfig{Listen: ln.Addr().String()}, nil)
		if err == nil {
			t.Fatal("RunNode on a busy address = nil, want an error")
		}
	})
	t.Run("in-flight requests finish", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		node := NewNodeHandler(NodeConfig{NodeID: "n1", BaseLatency: 300 * time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- serveNode(ctx, ln, node, nil) }()

		type reply struct {
			body string
			err  error
		}
		replies := make(chan reply, 1)
		go func() {
			resp, err := http.Get("http://" + addr + "/")
			if err != nil {
				replies <- reply{err: err}
				return
			}
			defer func() { _ = resp.Body.Close() }()
			b, err := io.ReadAll(resp.Body)
			replies <- reply{string(b), err}
		}()
		waitFor(t, "the request to be in flight", 5*time.Second, func() bool { return node.Stats().Inflight == 1 })
		cancel()
		r := <-replies
		if r.err != nil || r.body != "served by n1 in 300ms\n" {
			t.Errorf("in-flight request: body %q err %v", r.body, r.err)
		}
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("serveNode = %v, want nil", err)
			}
		case <-time.After(6 * time.Second):
			t.Fatal("serveNode still running after shutdown")
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			t.Error("still accepting connections after shutdown")
		} else if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "refused") {
			t.Logf("dial after shutdown: %v", err)
		}
	})
}
