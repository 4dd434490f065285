// Package perfdata is goscaler's performance-data store on top of package
// store: the recent window of every series (a counter of a node, or the
// cluster aggregate) in bounded memory, every sample in the database for the
// raw retention, older history downsampled into coarser rollups, and the
// queries that turn it all into graphs.
//
// A graph query asks for a time range and a step. It is answered from the
// finest resolution that still holds each part of the range: memory or raw
// samples for the recent past, then each rollup in turn. Missing data is a
// null point, never a zero.
package perfdata

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// Key names a series: a counter of a node, or its cluster aggregate (Node "").
type Key struct {
	Cluster string
	Counter string
	Node    string
}

// maxErrorsPerSeries is how many recent error messages memory keeps per series.
const maxErrorsPerSeries = 4

// point is one sample: a value, or NaN for a failed reading.
type point struct {
	at int64 // unix milliseconds
	v  float64
}

// errEntry is a failed reading kept in memory.
type errEntry struct {
	at  int64
	msg string
}

// ring holds the newest points of one series, oldest overwritten first.
type ring struct {
	pts   []point
	start int // index of the oldest point
	n     int
	errs  []errEntry // newest last, at most maxErrorsPerSeries
}

func (r *ring) add(p point) {
	if r.n < len(r.pts) {
		r.pts[(r.start+r.n)%len(r.pts)] = p
		r.n++
		return
	}
	r.pts[r.start] = p
	r.start = (r.start + 1) % len(r.pts)
}

// each calls fn with the points in [since, until), oldest first.
func (r *ring) each(since, until int64, fn func(point)) {
	for i := range r.n {
		p := r.pts[(r.start+i)%len(r.pts)]
		if p.at >= since && p.at < until {
			fn(p)
		}
	}
}

func (r *ring) newest() int64 {
	if r.n == 0 {
		return math.MinInt64
	}
	return r.pts[(r.start+r.n-1)%len(r.pts)].at
}

// Memory holds the recent window of every series, each in a ring sized for
// the window at its counter's interval: memory is bounded per series. It is
// safe for concurrent use.
type Memory struct {
	window time.Duration

	mu     sync.RWMutex
	since  time.Time // when it began to record: older data is in the store only
	series map[Key]*ring
}

// NewMemory returns an empty memory that keeps window of each series.
func NewMemory(window time.Duration) *Memory {
	return &Memory{window: window, series: map[Key]*ring{}}
}

// Window is how much of each series the memory keeps.
func (m *Memory) Window() time.Duration { return m.window }

// Reset forgets everything and starts recording at now (a controller that
// starts leading: what other servers recorded meanwhile is in the store only).
func (m *Memory) Reset(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.since, m.series = now, map[Key]*ring{}
}

// Capacity is the number of points a series read every interval keeps.
func (m *Memory) Capacity(interval time.Duration) int {
	if interval <= 0 {
		interval = time.Second
	}
	return int(m.window/interval) + 2
}

// Add records samples of one counter read every interval.
func (m *Memory) Add(samples []store.Sample, interval time.Duration) {
	if m.window <= 0 || len(samples) == 0 {
		return
	}
	capacity := m.Capacity(interval)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range samples {
		k := Key{s.Cluster, s.Counter, s.Node}
		r := m.series[k]
		if r == nil || len(r.pts) != capacity {
			old := r
			r = &ring{pts: make([]point, capacity)}
			if old != nil {
				old.each(math.MinInt64, math.MaxInt64, r.add)
				r.errs = old.errs
			}
			m.series[k] = r
		}
		p := point{at: s.At.UnixMilli(), v: s.Value}
		if !s.OK() {
			p.v = math.NaN()
			if len(r.errs) == maxErrorsPerSeries {
				copy(r.errs, r.errs[1:])
				r.errs = r.errs[:maxErrorsPerSeries-1]
			}
			r.errs = append(r.errs, errEntry{at: p.at, msg: s.Err})
		}
		r.add(p)
	}
}

// Covers reports whether the memory holds every sample recorded at or after
// since (as of now).
func (m *Memory) Covers(since, now time.Time) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.window > 0 && !m.since.IsZero() && !since.Before(m.since) && !since.Before(now.Add(-m.window))
}

// Prune forgets the series that recorded nothing within the window (nodes
// that are gone) and returns how many it forgot.
func (m *Memory) Prune(now time.Time) int {
	cut := now.Add(-m.window).UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, r := range m.series {
		if r.newest() < cut {
			delete(m.series, k)
			n++
		}
	}
	return n
}

// Len is the number of series in memory.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.series)
}

// scan calls fn for each point in [since, until) of the series of a counter
// that sel selects, and errFn for each error kept in that range.
func (m *Memory) scan(cluster, counter string, sel func(node string) bool, since, until time.Time,
	fn func(node string, p point), errFn func(node string, e errEntry)) {
	from, to := since.UnixMilli(), until.UnixMilli()
	m.mu.RLock()
	defer m.mu.RUnlock()
	keys := make([]Key, 0)
	for k := range m.series {
		if k.Cluster == cluster && k.Counter == counter && sel(k.Node) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Node < keys[j].Node })
	for _, k := range keys {
		r := m.series[k]
		r.each(from, to, func(p point) { fn(k.Node, p) })
		for _, e := range r.errs {
			if e.at >= from && e.at < to {
				errFn(k.Node, e)
			}
		}
	}
}
