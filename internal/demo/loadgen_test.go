package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestProfileAt(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	profile := []Phase{
		{Name: "up", From: 0, To: 4, Duration: 400 * ms},
		{Name: "skip", From: 9, To: 9, Duration: 0},
		{Name: "hold", From: 4, To: 4, Duration: 200 * ms},
		{Name: "down", From: 4, To: 0, Duration: 400 * ms},
	}
	tests := []struct {
		elapsed     time.Duration
		loop        bool
		wantName    string
		wantWorkers int
		wantDone    bool
	}{
		{-5 * ms, false, "up", 0, false},
		{0, false, "up", 0, false},
		{50 * ms, false, "up", 1, false}, // 0.5 rounds up
		{100 * ms, false, "up", 1, false},
		{200 * ms, false, "up", 2, false},
		{399 * ms, false, "up", 4, false},
		{400 * ms, false, "hold", 4, false},
		{599 * ms, false, "hold", 4, false},
		{600 * ms, false, "down", 4, false},
		{800 * ms, false, "down", 2, false},
		{999 * ms, false, "down", 0, false},
		{1000 * ms, false, "done", 0, true},
		{5000 * ms, false, "done", 0, true},
		{1000 * ms, true, "up", 0, false},
		{1200 * ms, true, "up", 2, false},
		{3500 * ms, true, "hold", 4, false},
	}
	for _, tt := range tests {
		name, workers, done := profileAt(profile, tt.elapsed, tt.loop)
		if name != tt.wantName || workers != tt.wantWorkers || done != tt.wantDone {
			t.Errorf("profileAt(%v, loop=%v) = %q %d %v, want %q %d %v",
				tt.elapsed, tt.loop, name, workers, done, tt.wantName, tt.wantWorkers, tt.wantDone)
		}
	}
}

func TestDefaultProfile(t *testing.T) {
	t.Parallel()
	p := DefaultProfile()
	var total time.Duration
	peak := 0
	for _, ph := range p {
		if ph.Name == "" || ph.Duration <= 0 {
			t.Errorf("phase %+v: want a name and a positive duration", ph)
		}
		total += ph.Duration
		peak = max(peak, ph.From, ph.To)
	}
	if total != 225*time.Second || peak != 24 {
		t.Errorf("total %v peak %d, want 3m45s and 24", total, peak)
	}
	if first, last := p[0], p[len(p)-1]; first.From != 1 || last.To != 0 {
		t.Errorf("starts at %d, ends at %d workers; want 1 and 0", first.From, last.To)
	}
	g := NewLoadGen("http://127.0.0.1:1/", p, true)
	if got := g.transport.MaxIdleConnsPerHost; got < 24 {
		t.Errorf("MaxIdleConnsPerHost = %d, want ≥ 24", got)
	}
	if g.client.Timeout != 10*time.Second {
		t.Errorf("client timeout %v, want 10s", g.client.Timeout)
	}
}

// concurrencyServer answers after delay (or when the client goes away) with
// status, tracking the number of requests in flight.
type concurrencyServer struct {
	*httptest.Server
	cur, peak atomic.Int64
	hits      atomic.Int64
}

func newConcurrencyServer(t *testing.T, delay time.Duration, status int) *concurrencyServer {
	t.Helper()
	s := &concurrencyServer{}
	release := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		n := s.cur.Add(1)
		defer s.cur.Add(-1)
		for {
			p := s.peak.Load()
			if n <= p || s.peak.CompareAndSwap(p, n) {
				break
			}
		}
		timer := time.NewTimer(delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.Context().Done():
			return
		case <-release:
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("hello\n"))
	}))
	t.Cleanup(func() {
		close(release)
		s.Close()
	})
	return s
}

// runLoadGen runs g in the background; the returned func waits for Run's
// result.
func runLoadGen(ctx context.Context, g *LoadGen) func(t *testing.T, within time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	return func(t *testing.T, within time.Duration) error {
		t.Helper()
		select {
		case err := <-errc:
			return err
		case <-time.After(within):
			t.Fatalf("Run did not return within %v", within)
			return nil
		}
	}
}

func TestLoadGenFollowsProfile(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	srv := newConcurrencyServer(t, 30*ms, http.StatusOK)
	profile := []Phase{
		{Name: "up", From: 0, To: 4, Duration: 300 * ms},
		{Name: "hold", From: 4, To: 4, Duration: 400 * ms},
		{Name: "down", From: 4, To: 0, Duration: 200 * ms},
	}
	g := NewLoadGen(srv.URL+"/", profile, false)

	// Sample the generator's own view while it runs.
	var mu sync.Mutex
	phases := map[string]bool{}
	maxWorkers := 0
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			st := g.Stats()
			mu.Lock()
			phases[st.Phase] = true
			maxWorkers = max(maxWorkers, st.Workers)
			mu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * ms):
			}
		}
	})

	start := time.Now()
	wait := runLoadGen(t.Context(), g)
	if err := wait(t, 10*time.Second); err != nil {
		t.Fatalf("Run = %v", err)
	}
	elapsed := time.Since(start)
	close(stopSampling)
	sampler.Wait()

	if elapsed < 900*ms || elapsed > 3*time.Second {
		t.Errorf("Run took %v for a 900ms profile", elapsed)
	}
	if p := srv.peak.Load(); p != 4 {
		t.Errorf("peak concurrency at the server = %d, want 4", p)
	}
	if c := srv.cur.Load(); c != 0 {
		t.Errorf("concurrency at the server after Run = %d, want 0", c)
	}
	if n := g.running.Load(); n != 0 {
		t.Errorf("%d workers still running after Run", n)
	}
	st := g.Stats()
	if st.Phase != "done" || st.Workers != 0 {
		t.Errorf("final phase %q workers %d, want done and 0", st.Phase, st.Workers)
	}
	if st.OK == 0 || st.Failed != 0 || st.Sent != st.OK || st.LastError != "" {
		t.Errorf("final stats %+v: want only OK requests", st)
	}
	if hits := uint64(srv.hits.Load()); hits != st.Sent {
		t.Errorf("server saw %d requests, generator sent %d", hits, st.Sent)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxWorkers != 4 {
		t.Errorf("max workers seen in Stats = %d, want 4", maxWorkers)
	}
	for _, name := range []string{"up", "hold", "down"} {
		if !phases[name] {
			t.Errorf("phase %q never seen in Stats (saw %v)", name, phases)
		}
	}
}

func TestLoadGenCountsFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		target  func(t *testing.T) string
		wantErr string
	}{
		{"HTTP 500", func(t *testing.T) string {
			return newConcurrencyServer(t, time.Millisecond, http.StatusInternalServerError).URL + "/"
		}, "500"},
		{"HTTP 404", func(t *testing.T) string {
			return newConcurrencyServer(t, time.Millisecond, http.StatusNotFound).URL + "/"
		}, "404"},
		{"connection refused", func(t *testing.T) string {
			srv := httptest.NewServer(http.NotFoundHandler())
			srv.Close()
			return srv.URL + "/"
		}, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			profile := []Phase{{Name: "hold", From: 2, To: 2, Duration: 300 * time.Millisecond}}
			g := NewLoadGen(tt.target(t), profile, false)
			wait := runLoadGen(t.Context(), g)
			if err := wait(t, 10*time.Second); err != nil {
				t.Fatalf("Run = %v, want nil (failures are not fatal)", err)
			}
			st := g.Stats()
			if st.Failed == 0 || st.OK != 0 || st.Sent != st.Failed {
				t.Errorf("stats %+v: want only failed requests", st)
			}
			if !strings.Contains(st.LastError, tt.wantErr) {
				t.Errorf("LastError %q, want it to mention %q", st.LastError, tt.wantErr)
			}
		})
	}
}

func TestLoadGenStopsOnCancel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		delay time.Duration // server answer time
	}{
		{"requests hanging", time.Hour},
		{"requests fast", time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newConcurrencyServer(t, tt.delay, http.StatusOK)
			profile := []Phase{{Name: "hold", From: 8, To: 8, Duration: time.Minute}}
			g := NewLoadGen(srv.URL+"/", profile, true)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			wait := runLoadGen(ctx, g)
			waitFor(t, "8 workers running", 5*time.Second, func() bool { return g.running.Load() == 8 })
			waitFor(t, "requests sent", 5*time.Second, func() bool { return g.Stats().Sent >= 8 })

			start := time.Now()
			cancel()
			if err := wait(t, 2*time.Second); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Run returned %v after cancel, want ≤ 1s", d)
			}
			if n := g.running.Load(); n != 0 {
				t.Errorf("%d workers still running after Run returned", n)
			}
			if st := g.Stats(); st.Failed != 0 {
				t.Errorf("aborted requests counted as failures: %+v", st)
			}
			// The server sees every aborted request go away.
			waitFor(t, "the server to drain", 5*time.Second, func() bool { return srv.cur.Load() == 0 })
		})
	}
}

func TestLoadGenRunErrors(t *testing.T) {
	t.Parallel()
	ok := []Phase{{Name: "p", From: 1, To: 1, Duration: time.Second}}
	tests := []struct {
		name    string
		target  string
		profile []Phase
	}{
		{"not a URL", "://nope", ok},
		{"no scheme", "127.0.0.1:8081", ok},
		{"no host", "http:///path", ok},
		{"empty profile", "http://127.0.0.1:1/", nil},
		{"zero-length profile", "http://127.0.0.1:1/", []Phase{{Name: "p", From: 1, To: 1}}},
		{"negative duration", "http://127.0.0.1:1/", []Phase{{Name: "p", From: 1, To: 1, Duration: -time.Second}, ok[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := NewLoadGen(tt.target, tt.profile, true)
			if err := g.Run(t.Context()); err == nil {
				t.Error("Run = nil, want an error")
			}
			if n := g.running.Load(); n != 0 {
				t.Errorf("%d workers started", n)
			}
		})
	}
}

func TestLoadGenCancelledBeforeRun(t *testing.T) {
	t.Parallel()
	srv := newConcurrencyServer(t, time.Millisecond, http.StatusOK)
	g := NewLoadGen(srv.URL+"/", DefaultProfile(), true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := g.Run(ctx); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if st := g.Stats(); st.Sent != 0 {
		t.Errorf("sent %d requests with a cancelled context", st.Sent)
	}
}
