package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// loadTick is how often Run re-evaluates the profile's worker count.
	loadTick = 250 * time.Millisecond
	// thinkTime is the pause of a worker between two requests.
	thinkTime = 10 * time.Millisecond
	// requestTimeout bounds one request, body included.
	requestTimeout = 10 * time.Second
)

// Phase is one segment of the load profile: the number of concurrent workers
// goes linearly from From to To over Duration (rounded to the nearest
// integer). A phase with From == To holds that many workers.
type Phase struct {
	// Name is shown in LoadStats while the phase runs.
	Name string
	// From and To are the worker counts at the start and at the end of the
	// phase; negative counts mean 0.
	From, To int
	// Duration is the length of the phase; a phase of zero length is
	// skipped.
	Duration time.Duration
}

// DefaultProfile is the demo's load profile, 3m45s long:
//
//   - warmup, 15s at 1 worker: the cluster sits at its minimum size and the
//     counters show a light baseline load;
//   - ramp-up, 1→24 workers over 40s (about one more worker every 1.7s): the
//     per-node average crosses the scale-out threshold gradually, so the
//     cluster grows one step at a time instead of all at once;
//   - peak, 24 workers for 60s: long enough for several sustain windows,
//     node start-ups and cooldowns, so the cluster reaches the size the load
//     calls for and stays there visibly;
//   - ramp-down, 24→0 over 20s: the load drops faster than it rose;
//   - idle, 0 workers for 90s: room for the scale-in sustain windows and
//     cooldowns to bring the cluster back to its minimum size before the
//     profile starts over (when looping).
//
// Each worker keeps about one request in flight (the think time, 10ms, is
// small next to the service time, 40ms and more), so 24 workers keep about
// 24 requests in flight across the cluster: 6 nodes' worth at the default
// capacity of 4.
func DefaultProfile() []Phase {
	return []Phase{
		{Name: "warmup", From: 1, To: 1, Duration: 15 * time.Second},
		{Name: "ramp-up", From: 1, To: 24, Duration: 40 * time.Second},
		{Name: "peak", From: 24, To: 24, Duration: 60 * time.Second},
		{Name: "ramp-down", From: 24, To: 0, Duration: 20 * time.Second},
		{Name: "idle", From: 0, To: 0, Duration: 90 * time.Second},
	}
}

// LoadStats is a snapshot of a load generator.
type LoadStats struct {
	// Phase is the name of the current phase ("" before Run, "done" after a
	// non-looping profile completed).
	Phase string
	// Workers is the current target number of workers.
	Workers int
	// Sent counts requests started; OK those answered 2xx; Failed those
	// answered otherwise or that failed in transport. Requests aborted
	// because Run's context was cancelled count as neither OK nor Failed.
	Sent, OK, Failed uint64
	// LastError describes the last failed request, "" if none.
	LastError string
}

// LoadGen is a closed-loop HTTP load generator following a Phase profile.
// Create it with NewLoadGen. Stats may be called concurrently with Run; Run
// must not be called concurrently with itself.
type LoadGen struct {
	target  string
	profile []Phase
	loop    bool

	client    *http.Client
	transport *http.Transport
	tick      time.Duration
	think     time.Duration

	sent, ok, failed atomic.Uint64
	running          atomic.Int64 // worker goroutines alive

	mu      sync.Mutex
	phase   string
	workers int
	lastErr string
}

// NewLoadGen returns a load generator sending GET requests to target (a base
// URL like http://127.0.0.1:8081/) following profile, repeated if loop.
func NewLoadGen(target string, profile []Phase, loop bool) *LoadGen {
	profile = append([]Phase(nil), profile...)
	maxWorkers := 1
	for _, p := range profile {
		maxWorkers = max(maxWorkers, p.From, p.To)
	}
	tr := &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no global limit
		MaxIdleConnsPerHost:   maxWorkers,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
	}
	return &LoadGen{
		target:    target,
		profile:   profile,
		loop:      loop,
		transport: tr,
		client:    &http.Client{Transport: tr, Timeout: requestTimeout},
		tick:      loadTick,
		think:     thinkTime,
	}
}

// Stats returns a snapshot of the generator's progress.
func (g *LoadGen) Stats() LoadStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return LoadStats{
		Phase:     g.phase,
		Workers:   g.workers,
		Sent:      g.sent.Load(),
		OK:        g.ok.Load(),
		Failed:    g.failed.Load(),
		LastError: g.lastErr,
	}
}

// Run drives closed-loop workers (each sends GET target, reads the body, waits
// about 10ms and repeats) following the profile: every 250ms the current
// phase's target worker count is re-evaluated and workers are started, or
// asked to stop after their current request, to match it. Failed requests
// are counted, never fatal.
//
// Run returns when ctx is done (within a second: in-flight requests are
// aborted) or, if the profile does not loop, once it has completed and the
// last requests have finished. In both cases every worker goroutine has
// finished and idle connections are closed. It returns nil then, or an error
// when the target or profile is unusable.
func (g *LoadGen) Run(ctx context.Context) error {
	u, err := url.Parse(g.target)
	if err != nil {
		return fmt.Errorf("load generator: target: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("load generator: target %q: want an http(s) URL with a host", g.target)
	}
	var total time.Duration
	for _, p := range g.profile {
		if p.Duration < 0 {
			return fmt.Errorf("load generator: phase %q: negative duration", p.Name)
		}
		total += p.Duration
	}
	if total <= 0 {
		return errors.New("load generator: the profile has no duration")
	}

	if ctx.Err() != nil {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var stops []chan struct{} // one per worker not asked to stop, oldest first
	setWorkers := func(n int) {
		for len(stops) < n {
			stop := make(chan struct{})
			stops = append(stops, stop)
			wg.Go(func() { g.worker(wctx, stop) })
		}
		for len(stops) > n {
			close(stops[len(stops)-1])
			stops = stops[:len(stops)-1]
		}
	}
	finish := func(phase string) {
		setWorkers(0)
		g.setState(phase, 0)
		wg.Wait()
		g.transport.CloseIdleConnections()
	}

	start := time.Now()
	ticker := time.NewTicker(g.tick)
	defer ticker.Stop()
	for {
		name, n, done := profileAt(g.profile, time.Since(start), g.loop)
		if done {
			finish("done")
			return nil
		}
		g.setState(name, n)
		setWorkers(n)
		select {
		case <-ctx.Done():
			cancel() // abort in-flight requests and think times
			finish(name)
			return nil
		case <-ticker.C:
		}
	}
}

// setState records the current phase and target worker count.
func (g *LoadGen) setState(phase string, workers int) {
	g.mu.Lock()
	g.phase, g.workers = phase, workers
	g.mu.Unlock()
}

// worker sends requests until ctx is done or stop is closed. A stop lets the
// current request finish.
func (g *LoadGen) worker(ctx context.Context, stop <-chan struct{}) {
	g.running.Add(1)
	defer g.running.Add(-1)
	think := time.NewTimer(g.think)
	defer think.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		default:
		}
		g.request(ctx)
		think.Reset(g.think)
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-think.C:
		}
	}
}

// request sends one request and counts its outcome.
func (g *LoadGen) request(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.target, nil)
	if err != nil {
		g.fail(err.Error())
		return
	}
	g.sent.Add(1)
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			g.fail(err.Error())
		}
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	switch {
	case err != nil:
		if ctx.Err() == nil {
			g.fail(fmt.Sprintf("reading the response: %v", err))
		}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		g.fail("HTTP " + resp.Status)
	default:
		g.ok.Add(1)
	}
}

// fail counts a failed request.
func (g *LoadGen) fail(msg string) {
	g.failed.Add(1)
	g.mu.Lock()
	g.lastErr = msg
	g.mu.Unlock()
}

// profileAt returns the phase and worker count of profile at elapsed time,
// wrapping around if loop. done is true when the profile does not loop and
// elapsed is past its end. profile must have a positive total duration.
func profileAt(profile []Phase, elapsed time.Duration, loop bool) (name string, workers int, done bool) {
	var total time.Duration
	for _, p := range profile {
		total += p.Duration
	}
	if elapsed < 0 {
		elapsed = 0
	}
	if elapsed >= total {
		if !loop {
			return "done", 0, true
		}
		elapsed %= total
	}
	for _, p := range profile {
		if elapsed >= p.Duration {
			elapsed -= p.Duration
			continue
		}
		frac := float64(elapsed) / float64(p.Duration)
		w := math.Round(float64(p.From) + float64(p.To-p.From)*frac)
		return p.Name, max(0, int(w)), false
	}
	return "done", 0, true // unreachable with a positive total
}
