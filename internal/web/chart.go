package web

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// Graph limits.
const (
	// maxChartWindow is the longest window a graph may ask for.
	maxChartWindow = 6 * time.Hour
	// maxChartSamples caps the samples read for one graph.
	maxChartSamples = 20000
	// maxNodeLines is how many nodes get their own line; beyond, a graph
	// shows the aggregate only.
	maxNodeLines = 12
)

// threshold is a trigger's threshold drawn on a graph.
type threshold struct {
	Trigger string  `json:"trigger"`
	Label   string  `json:"label"`
	Value   float64 `json:"value"`
}

// chartSeries is one line of a graph; a missing or failed reading is null.
type chartSeries struct {
	Label     string     `json:"label"`
	Aggregate bool       `json:"aggregate,omitempty"`
	Values    []*float64 `json:"values"`
}

// chartData is what a graph draws, in uPlot's column layout: X holds unix
// seconds, each series one value per X.
type chartData struct {
	Counter    string        `json:"counter"`
	Aggregate  string        `json:"aggregate"`
	IntervalMS int64         `json:"interval_ms"`
	X          []float64     `json:"x"`
	Series     []chartSeries `json:"series"`
	Thresholds []threshold   `json:"thresholds"`
	// Points counts the values drawn; Errors the failed readings, LastError
	// the newest one's reason.
	Points    int    `json:"points"`
	Errors    int    `json:"errors"`
	LastError string `json:"last_error,omitempty"`
	// Note says what the graph leaves out.
	Note string `json:"note,omitempty"`
}

func (u *UI) chartData(w http.ResponseWriter, r *http.Request, _ *session) error {
	q := r.URL.Query()
	window := 15 * time.Minute
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > maxChartWindow {
			return fmt.Errorf("%w: since %q must be a duration up to %s, such as 15m", errBadInput, s, maxChartWindow)
		}
		window = d
	}
	f := store.SampleFilter{Cluster: r.PathValue("name"), Counter: r.PathValue("counter"),
		Since: time.Now().Add(-window), Limit: maxChartSamples}
	series, err := u.data.Series(r.Context(), f)
	if err != nil {
		return err
	}
	cc, _ := u.data.ClusterConfig(f.Cluster)
	k := cc.Counter(f.Counter)
	out := buildChart(series.Samples, q.Get("node"))
	out.Counter, out.Aggregate, out.IntervalMS = k.Name, k.Aggregate, k.Interval.D().Milliseconds()
	if k.Scope == "cluster" {
		out.Aggregate = "cluster"
	}
	out.Thresholds = thresholdsOf(cc, k.Name)
	if out.Thresholds == nil {
		out.Thresholds = []threshold{}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
	return nil
}

// buildChart lays samples out in columns: one X per collection time, one
// series per node (only node, if given) and the aggregate last.
func buildChart(samples []store.Sample, node string) chartData {
	var xs []int64
	seen := map[int64]bool{}
	nodes := map[string]bool{}
	var out chartData
	for _, s := range samples {
		ms := s.At.UnixMilli()
		if !seen[ms] {
			seen[ms] = true
			xs = append(xs, ms)
		}
		if s.Node != "" && (node == "" || s.Node == node) {
			nodes[s.Node] = true
		}
		if !s.OK() && (s.Node == "" || s.Node == node) {
			out.Errors++
			out.LastError = s.Err
		}
	}
	slices.Sort(xs)
	index := make(map[int64]int, len(xs))
	out.X = make([]float64, len(xs))
	for i, ms := range xs {
		index[ms] = i
		out.X[i] = float64(ms) / 1000
	}
	names := make([]string, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
	}
	slices.SortFunc(names, compareNodeIDs)
	if len(names) > maxNodeLines {
		out.Note = fmt.Sprintf("%d nodes: only the aggregate is drawn (per-node lines up to %d nodes)", len(names), maxNodeLines)
		names = nil
	}
	col := map[string]int{}
	for i, n := range names {
		col[n] = i
		out.Series = append(out.Series, chartSeries{Label: n, Values: make([]*float64, len(xs))})
	}
	agg := chartSeries{Label: "aggregate", Aggregate: true, Values: make([]*float64, len(xs))}
	for _, s := range samples {
		if !s.OK() || math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			continue
		}
		v := s.Value
		i := index[s.At.UnixMilli()]
		switch c, ok := col[s.Node]; {
		case s.Node == "":
			agg.Values[i] = &v
		case ok:
			out.Series[c].Values[i] = &v
		default:
			continue
		}
		out.Points++
	}
	out.Series = append(out.Series, agg)
	if out.X == nil {
		out.X = []float64{}
	}
	return out
}

// compareNodeIDs orders web-2 before web-10.
func compareNodeIDs(a, b string) int {
	ai, aok := nodeSeq(a)
	bi, bok := nodeSeq(b)
	if aok && bok && a[:strings.LastIndexByte(a, '-')] == b[:strings.LastIndexByte(b, '-')] {
		return ai - bi
	}
	return strings.Compare(a, b)
}

func nodeSeq(id string) (int, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	return n, err == nil
}

// sparkline is a small inline SVG of a cluster's main counter.
type sparkline struct {
	// Points is the polyline's "x,y x,y …" in a 120×28 box; empty without data.
	Points string
	// Thresholds are the y of each trigger threshold inside the box.
	Thresholds []sparkThreshold
	Title      string
	Count      int
}

type sparkThreshold struct {
	Y     string
	Label string
}

// Sparkline box.
const (
	sparkW = 120.0
	sparkH = 28.0
)

// newSparkline draws samples between from and to, scaled so that the
// thresholds fit too.
func newSparkline(samples []store.Sample, from, to time.Time, ths []threshold) sparkline {
	var sp sparkline
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range samples {
		if s.OK() {
			lo, hi = min(lo, s.Value), max(hi, s.Value)
			sp.Count++
		}
	}
	if sp.Count == 0 {
		return sp
	}
	for _, th := range ths {
		lo, hi = min(lo, th.Value), max(hi, th.Value)
	}
	lo = min(lo, 0)
	if hi == lo {
		hi = lo + 1
	}
	span := to.Sub(from).Seconds()
	y := func(v float64) string {
		return strconv.FormatFloat(sparkH-1-(v-lo)/(hi-lo)*(sparkH-2), 'f', 1, 64)
	}
	var b strings.Builder
	for _, s := range samples {
		if !s.OK() {
			continue
		}
		x := (s.At.Sub(from).Seconds() / span) * sparkW
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(math.Max(0, math.Min(sparkW, x)), 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(y(s.Value))
	}
	sp.Points = b.String()
	for _, th := range ths {
		sp.Thresholds = append(sp.Thresholds, sparkThreshold{Y: y(th.Value), Label: th.Label})
	}
	sp.Title = fmt.Sprintf("last %s: %d readings from %s to %s", to.Sub(from).Round(time.Minute), sp.Count, num(lo), num(hi))
	return sp
}

// sparkCache keeps the aggregates the dashboard's sparklines drew, so that
// each refresh reads only the samples stored since the last one instead of
// the whole window (a cluster of many nodes stores a sample per node too,
// which a window query would scan).
type sparkCache struct {
	mu sync.Mutex
	m  map[string]*sparkEntry
}

type sparkEntry struct {
	samples []store.Sample
	// read is when the store was last read; rows stored after it are new.
	read time.Time
}

func newSparkCache() *sparkCache { return &sparkCache{m: map[string]*sparkEntry{}} }

// sparkOverlap re-reads this much before the last read, for samples stored
// late (a collection records its start time, and storing takes a moment).
const sparkOverlap = 30 * time.Second

// recent returns a counter's aggregates of the last sparkWindow before now.
func (c *sparkCache) recent(ctx context.Context, st store.Store, cluster, counter string, now time.Time) ([]store.Sample, error) {
	key := cluster + "\x00" + counter
	c.mu.Lock()
	e := c.m[key]
	if e == nil {
		e = &sparkEntry{}
		c.m[key] = e
	}
	since := now.Add(-sparkWindow)
	if !e.read.IsZero() && e.read.Add(-sparkOverlap).After(since) {
		since = e.read.Add(-sparkOverlap)
	}
	c.mu.Unlock()
	fresh, err := st.SampleList(ctx, store.SampleFilter{Cluster: cluster, Counter: counter, AggregateOnly: true, Since: since})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Keep what is older than the re-read part and still in the window, then
	// the fresh rows (which hold the re-read part).
	from := now.Add(-sparkWindow)
	kept := e.samples[:0:0]
	for _, s := range e.samples {
		if !s.At.Before(from) && s.At.Before(since) {
			kept = append(kept, s)
		}
	}
	e.samples = append(kept, fresh...)
	e.read = now
	return slices.Clone(e.samples), nil
}
