// Package demo holds the pure-HTTP pieces of `goscaler demo`: the demo node
// server (the goscaler binary in "demo-node" mode) and the load generator that
// drives a ramp-up / hold / ramp-down profile through the demo's load
// balancer.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of NodeConfig.
const (
	// DefaultBaseLatency is the service time of a request when the node is not
	// loaded beyond its capacity.
	DefaultBaseLatency = 40 * time.Millisecond
	// DefaultCapacity is the number of concurrent requests a node serves
	// without slowing down.
	DefaultCapacity = 4
)

const (
	// statsWindow is the sliding window of the averages in /stats.
	statsWindow = 5 * time.Second
	// bucketWidth is the resolution of the sliding window. The oldest bucket,
	// only partly inside the window, is pro-rated, so a reading moves smoothly.
	bucketWidth = 250 * time.Millisecond
	// numBuckets covers the window plus the partial buckets at both ends.
	numBuckets = int(statsWindow/bucketWidth) + 2
	// shutdownGrace bounds how long RunNode waits for in-flight requests.
	shutdownGrace = 5 * time.Second
)

// NodeConfig configures a demo node.
type NodeConfig struct {
	// Listen is the host:port the node listens on.
	Listen string
	// NodeID is shown in responses (body and X-Demo-Node header) and in
	// /stats. Defaults to Listen.
	NodeID string
	// BaseLatency is the service time with no concurrency. Defaults to
	// DefaultBaseLatency (40ms).
	BaseLatency time.Duration
	// Capacity is the number of concurrent requests the node serves without
	// slowing down. Defaults to DefaultCapacity (4).
	Capacity int
}

// withDefaults returns cfg with its zero (or invalid) fields defaulted.
func (cfg NodeConfig) withDefaults() NodeConfig {
	if cfg.BaseLatency <= 0 {
		cfg.BaseLatency = DefaultBaseLatency
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.NodeID == "" {
		cfg.NodeID = cfg.Listen
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "demo-node"
	}
	return cfg
}

// NodeStats is a snapshot of a node's load, as served by GET /stats.
type NodeStats struct {
	// Node is the node's ID.
	Node string `json:"node"`
	// Inflight is the number of work requests being served right now.
	Inflight int `json:"inflight"`
	// InflightAvg is the time-weighted average of Inflight over the last 5s
	// (over the node's uptime while it is younger than that).
	InflightAvg float64 `json:"inflight_avg"`
	// Requests is the number of work requests completed since the node
	// started (requests whose client went away are not counted).
	Requests uint64 `json:"requests"`
	// RPS is the number of work requests completed per second over the last
	// 5s.
	RPS float64 `json:"rps"`
	// LatencyMsAvg is the average latency, in milliseconds, of the work
	// requests completed over the last 5s; 0 when none completed.
	LatencyMsAvg float64 `json:"latency_ms_avg"`
}

// bucket accumulates one bucketWidth slice of time.
type bucket struct {
	idx      int64   // absolute bucket number; the slot is stale when it differs
	area     float64 // ∫ inflight dt, in request·seconds
	done     float64 // requests completed
	latSumMs float64 // sum of the latencies of those requests, in ms
}

// Node is a demo node: an http.Handler that simulates work whose latency grows
// with concurrency beyond the node's capacity, and reports its load.
//
// Paths:
//   - GET /healthz: 200 "ok".
//   - GET /stats: NodeStats as JSON.
//   - any other path: simulated work, answered with
//     "served by <NodeID> in <latency>\n".
type Node struct {
	cfg NodeConfig

	// now is the clock; tests replace it.
	now func() time.Time
	// sleep waits d or until ctx is done (returning ctx's error); tests
	// replace it.
	sleep func(ctx context.Context, d time.Duration) error

	mu       sync.Mutex
	start    time.Time // creation time: bucket 0 starts here
	last     time.Time // time up to which inflight has been integrated
	inflight int
	requests uint64
	ring     [numBuckets]bucket
}

// NewNodeHandler returns a demo node for cfg (zero fields defaulted), to be
// served as an http.Handler; Stats reads its load.
func NewNodeHandler(cfg NodeConfig) *Node {
	return newNode(cfg, time.Now)
}

// newNode returns a node whose clock is now.
func newNode(cfg NodeConfig, now func() time.Time) *Node {
	t := now()
	return &Node{
		cfg:   cfg.withDefaults(),
		now:   now,
		sleep: sleepCtx,
		start: t,
		last:  t,
	}
}

// sleepCtx waits d, or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP implements http.Handler.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Demo-Node", n.cfg.NodeID)
	switch r.URL.Path {
	case "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprint(w, "ok")
	case "/stats":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.Stats())
	default:
		n.work(w, r)
	}
}

// work simulates one request whose service time grows with concurrency.
func (n *Node) work(w http.ResponseWriter, r *http.Request) {
	arrival, inflight := n.enter()
	latency := n.latency(inflight)
	err := n.sleep(r.Context(), latency)
	n.leave(arrival, err == nil)
	if err != nil {
		// The client went away: nobody is left to answer.
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, "served by %s in %s\n", n.cfg.NodeID, latency)
}

// latency is the service time of a request that arrived when inflight
// requests (itself included) were being served:
// BaseLatency × max(1, inflight/Capacity).
func (n *Node) latency(inflight int) time.Duration {
	f := max(1, float64(inflight)/float64(n.cfg.Capacity))
	return time.Duration(float64(n.cfg.BaseLatency) * f).Round(time.Microsecond)
}

// enter records the arrival of a work request and returns its arrival time and
// the number of requests in flight including it.
func (n *Node) enter() (time.Time, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.now()
	n.advance(t)
	n.inflight++
	return t, n.inflight
}

// leave records the end of a work request that arrived at arrival; completed
// is false when its client went away.
func (n *Node) leave(arrival time.Time, completed bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.now()
	n.advance(t)
	n.inflight--
	if !completed {
		return
	}
	n.requests++
	if b := n.bucketIndex(t); b >= 0 {
		s := n.slot(b)
		s.done++
		s.latSumMs += float64(t.Sub(arrival)) / float64(time.Millisecond)
	}
}

// bucketIndex is the absolute number of the bucket holding t.
func (n *Node) bucketIndex(t time.Time) int64 {
	d := t.Sub(n.start)
	if d < 0 {
		return -1
	}
	return int64(d / bucketWidth)
}

// bucketStart is the time bucket b starts.
func (n *Node) bucketStart(b int64) time.Time {
	return n.start.Add(time.Duration(b) * bucketWidth)
}

// slot returns bucket b for writing, recycling its ring slot if stale.
func (n *Node) slot(b int64) *bucket {
	s := &n.ring[b%int64(numBuckets)]
	if s.idx != b {
		*s = bucket{idx: b}
	}
	return s
}

// peek returns bucket b for reading: zero if its slot holds another bucket.
func (n *Node) peek(b int64) bucket {
	s := n.ring[b%int64(numBuckets)]
	if s.idx != b {
		return bucket{idx: b}
	}
	return s
}

// advance integrates the current inflight from n.last up to t. n.mu is held.
func (n *Node) advance(t time.Time) {
	if !t.After(n.last) {
		return // no time passed (or the clock went backwards)
	}
	from := n.last
	n.last = t
	if n.inflight == 0 {
		return
	}
	// Older time would land in buckets the ring has no room for (and that
	// are outside the window anyway).
	if span := time.Duration(numBuckets) * bucketWidth; t.Sub(from) > span {
		from = t.Add(-span)
	}
	for from.Before(t) {
		b := n.bucketIndex(from)
		end := n.bucketStart(b + 1)
		if end.After(t) {
			end = t
		}
		n.slot(b).area += float64(n.inflight) * end.Sub(from).Seconds()
		from = end
	}
}

// Stats returns a snapshot of the node's load.
func (n *Node) Stats() NodeStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	n.advance(now)
	st := NodeStats{
		Node:        n.cfg.NodeID,
		Inflight:    n.inflight,
		InflightAvg: float64(n.inflight),
		Requests:    n.requests,
	}
	// The window is the last statsWindow, or the node's uptime while it is
	// younger than that, so a fresh node does not under-report.
	win := min(now.Sub(n.start), statsWindow)
	if win <= 0 {
		return st
	}
	winStart := now.Add(-win)
	first, last := n.bucketIndex(winStart), n.bucketIndex(now)
	var area, done, latSum float64
	for b := first; b <= last; b++ {
		s := n.peek(b)
		w := 1.0
		if b == first {
			// Only part of the oldest bucket is in the window: assume
			// its content is spread evenly over it.
			w = float64(n.bucketStart(b+1).Sub(winStart)) / float64(bucketWidth)
			w = min(max(w, 0), 1)
		}
		area += w * s.area
		done += w * s.done
		latSum += w * s.latSumMs
	}
	secs := win.Seconds()
	st.InflightAvg = round3(area / secs)
	st.RPS = round3(done / secs)
	if done > 0 {
		st.LatencyMsAvg = round3(latSum / done)
	}
	return st
}

// round3 rounds f to 3 decimals, keeping the JSON readable.
func round3(f float64) float64 {
	return math.Round(f*1000) / 1000
}

// RunNode serves a demo node on cfg.Listen until ctx is done, then shuts down
// gracefully: in-flight requests finish, for at most 5s, after which the
// remaining connections are closed. It returns nil after a shutdown caused by
// ctx, or the error that stopped it (e.g. the address cannot be listened on).
// A nil logger discards logs.
func RunNode(ctx context.Context, cfg NodeConfig, logger *slog.Logger) error {
	cfg = cfg.withDefaults()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("demo node %s: %w", cfg.NodeID, err)
	}
	return serveNode(ctx, ln, NewNodeHandler(cfg), logger)
}

// serveNode serves node on ln until ctx is done, then shuts down gracefully.
// It closes ln.
func serveNode(ctx context.Context, ln net.Listener, node *Node, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", node.cfg.NodeID)
	srv := &http.Server{
		Handler:           node,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("demo node listening", "addr", ln.Addr().String(),
		"base_latency", node.cfg.BaseLatency, "capacity", node.cfg.Capacity)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		// Serve never returns nil; ErrServerClosed cannot happen before
		// Shutdown, but be safe.
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("demo node %s: %w", node.cfg.NodeID, err)
	case <-ctx.Done():
	}

	logger.Info("demo node shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("demo node: in-flight requests did not finish in time, closing", "err", err)
		_ = srv.Close()
	}
	<-errc //nolint:errcheck // Serve has returned http.ErrServerClosed
	logger.Info("demo node stopped")
	return nil
}
