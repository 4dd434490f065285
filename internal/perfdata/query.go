package perfdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/store"
)

// ErrBadQuery is wrapped by the errors of a query that cannot be answered as
// asked (an empty range, a negative step).
var ErrBadQuery = errors.New("bad query")

// Query limits.
const (
	// AutoPoints is about how many points a query without a step gets.
	AutoPoints = 300
	// MaxPoints is the most points per series a query returns: a smaller
	// step is raised.
	MaxPoints = 10000
	// MaxErrors is the most errors a query lists (the newest).
	MaxErrors = 100
	// DefaultRange is the range of a query without a start.
	DefaultRange = time.Hour
)

// Resolution is one level of history: raw samples (Step 0) or a rollup,
// kept for Keep.
type Resolution struct {
	Step time.Duration
	Keep time.Duration
}

// Retention is every level of history, raw first, then the rollups from the
// finest.
type Retention []Resolution

// RetentionOf converts the configuration's retention.
func RetentionOf(r config.Retention) Retention {
	out := Retention{{Keep: r.Raw.D()}}
	for _, t := range r.Rollups {
		out = append(out, Resolution{Step: t.Step.D(), Keep: t.Keep.D()})
	}
	return out
}

// Query asks for the graph of one counter.
type Query struct {
	Cluster string
	Counter string
	// Since and Until bound the range; zero Until is now, zero Since is
	// DefaultRange before Until.
	Since time.Time
	Until time.Time
	// Step is the width of a point; 0 chooses one for about AutoPoints points.
	// It is raised to the resolution of the oldest data the range needs.
	Step time.Duration
	// Interval is the counter's interval: the finest step worth asking.
	Interval time.Duration
	// Nodes, if not empty, limits the per-node series to these nodes;
	// AggregateOnly leaves them out.
	Nodes         []string
	AggregateOnly bool
}

// Point is the average of the values of one step, or null when the step has
// none (no reading, or only failed ones): missing data is never a zero. It
// encodes in JSON as [unix milliseconds, value or null].
type Point struct {
	At    time.Time
	Value float64
	Valid bool
}

// MarshalJSON writes [ms, value] or [ms, null].
func (p Point) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	b = strconv.AppendInt(b, p.At.UnixMilli(), 10)
	if p.Valid {
		b = append(b, ',')
		b = strconv.AppendFloat(b, p.Value, 'g', -1, 64)
	} else {
		b = append(b, ",null"...)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads [ms, value] or [ms, null].
func (p *Point) UnmarshalJSON(data []byte) error {
	var raw []*float64
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if len(raw) != 2 || raw[0] == nil {
		return fmt.Errorf("point %s: want [milliseconds, value or null]", data)
	}
	*p = Point{At: time.UnixMilli(int64(*raw[0])).UTC()}
	if raw[1] != nil {
		p.Value, p.Valid = *raw[1], true
	}
	return nil
}

// Error is a failed reading (Count 1), or the failed readings of one bucket
// of a rollup (Count of them, Error one of their messages).
type Error struct {
	At    time.Time `json:"at"`
	Node  string    `json:"node,omitempty"`
	Error string    `json:"error"`
	Count int       `json:"count"`
}

// Result is a counter's graph.
type Result struct {
	Step  time.Duration
	Since time.Time
	Until time.Time
	// Resolutions names what answered, oldest first: "1m0s" (a rollup),
	// "raw" (the database) or "memory".
	Resolutions []string
	Aggregate   []Point
	Nodes       map[string][]Point
	// Errors are the newest failed readings of the range (at most MaxErrors).
	Errors []Error
}

// Engine answers queries from memory, raw samples and rollups.
type Engine struct {
	Store     store.Store
	Memory    *Memory // may be nil
	Retention Retention
	Now       func() time.Time
}

// buckets accumulates values per step.
type buckets struct {
	first int64 // unix ms of the first bucket
	step  int64
	sum   []float64
	n     []float64
}

func (b *buckets) add(at int64, v, weight float64) {
	if math.IsNaN(v) || weight <= 0 {
		return
	}
	i := (at - b.first) / b.step
	if at < b.first || i >= int64(len(b.sum)) {
		return
	}
	b.sum[i] += v * weight
	b.n[i] += weight
}

func (b *buckets) points() []Point {
	out := make([]Point, len(b.sum))
	for i := range out {
		out[i].At = time.UnixMilli(b.first + int64(i)*b.step).UTC()
		if b.n[i] > 0 {
			out[i].Value, out[i].Valid = b.sum[i]/b.n[i], true
		}
	}
	return out
}

// Query answers q.
func (e *Engine) Query(ctx context.Context, q Query) (Result, error) {
	now := e.Now()
	until := q.Until
	if until.IsZero() || until.After(now) {
		until = now
	}
	since := q.Since
	if since.IsZero() {
		since = until.Add(-DefaultRange)
	}
	if !since.Before(until) {
		return Result{}, fmt.Errorf("%w: the range starts at %s, not before its end %s", ErrBadQuery,
			since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	}
	if q.Step < 0 {
		return Result{}, fmt.Errorf("%w: step %s is negative", ErrBadQuery, q.Step)
	}
	levels := e.Retention
	if len(levels) == 0 {
		levels = Retention{{Keep: math.MaxInt64}}
	}
	// The levels the range needs: the finest that reaches back to since, and
	// every finer one.
	last := len(levels) - 1
	for i, l := range levels {
		if !since.Before(now.Add(-l.Keep)) {
			last = i
			break
		}
	}
	finest := q.Interval
	if last > 0 {
		finest = levels[last].Step
	}
	step := chooseStep(q.Step, finest, until.Sub(since))

	res := Result{Step: step, Until: until, Nodes: map[string][]Point{}}
	res.Since = floorTime(since, step)
	first := res.Since.UnixMilli()
	n := int((until.UnixMilli() - first + step.Milliseconds() - 1) / step.Milliseconds())
	newBuckets := func() *buckets {
		return &buckets{first: first, step: step.Milliseconds(), sum: make([]float64, n), n: make([]float64, n)}
	}
	agg := newBuckets()
	perNode := map[string]*buckets{}
	for _, node := range q.Nodes {
		if node != "" && !q.AggregateOnly {
			perNode[node] = newBuckets()
		}
	}
	series := func(node string) *buckets {
		if node == "" {
			return agg
		}
		b := perNode[node]
		if b == nil {
			b = newBuckets()
			perNode[node] = b
		}
		return b
	}
	selected := func(node string) bool {
		switch {
		case node == "":
			return true
		case q.AggregateOnly:
			return false
		case len(q.Nodes) > 0:
			return slices.Contains(q.Nodes, node)
		}
		return true
	}
	var nodesFilter []string
	if len(q.Nodes) > 0 && !q.AggregateOnly {
		nodesFilter = append([]string{""}, q.Nodes...)
	}
	var errs []Error

	// Oldest level first; each covers what the next finer one does not.
	for i := last; i >= 0; i-- {
		from := maxTime(res.Since, now.Add(-levels[i].Keep))
		to := until
		if i > 0 {
			to = minTime(until, now.Add(-levels[i-1].Keep))
		}
		if !from.Before(to) {
			continue
		}
		switch {
		case i > 0:
			rs, err := e.Store.RollupList(ctx, store.RollupFilter{Cluster: q.Cluster, Counter: q.Counter, Step: levels[i].Step,
				Since: floorTime(from, levels[i].Step), Until: to, AggregateOnly: q.AggregateOnly, Nodes: nodesFilter})
			if err != nil {
				return Result{}, err
			}
			for _, r := range rs {
				if r.At.Before(res.Since) {
					continue
				}
				series(r.Node).add(r.At.UnixMilli(), r.Avg, float64(r.Count))
				if r.Errors > 0 {
					errs = append(errs, Error{At: r.At, Node: r.Node, Error: r.LastErr, Count: r.Errors})
				}
			}
			res.Resolutions = append(res.Resolutions, levels[i].Step.String())
		case e.Memory != nil && e.Memory.Covers(from, now):
			e.Memory.scan(q.Cluster, q.Counter, selected, from, to,
				func(node string, p point) { series(node).add(p.at, p.v, 1) },
				func(node string, er errEntry) {
					errs = append(errs, Error{At: time.UnixMilli(er.at).UTC(), Node: node, Error: er.msg, Count: 1})
				})
			res.Resolutions = append(res.Resolutions, "memory")
		default:
			ss, err := e.Store.SampleList(ctx, store.SampleFilter{Cluster: q.Cluster, Counter: q.Counter,
				Since: from, Until: to, AggregateOnly: q.AggregateOnly, Nodes: nodesFilter})
			if err != nil {
				return Result{}, err
			}
			for _, s := range ss {
				if !s.OK() {
					errs = append(errs, Error{At: s.At, Node: s.Node, Error: s.Err, Count: 1})
					continue
				}
				series(s.Node).add(s.At.UnixMilli(), s.Value, 1)
			}
			res.Resolutions = append(res.Resolutions, "raw")
		}
	}
	res.Aggregate = agg.points()
	for node, b := range perNode {
		res.Nodes[node] = b.points()
	}
	slices.SortStableFunc(errs, func(a, b Error) int { return b.At.Compare(a.At) })
	if len(errs) > MaxErrors {
		errs = errs[:MaxErrors]
	}
	res.Errors = errs
	if res.Errors == nil {
		res.Errors = []Error{}
	}
	return res, nil
}

// chooseStep returns the step of a query: asked (or about AutoPoints points
// over span when 0), at least finest, at most MaxPoints points, a whole
// number of finest (or of seconds).
func chooseStep(asked, finest, span time.Duration) time.Duration {
	unit := finest
	if unit < time.Second {
		unit = time.Second
	}
	step := asked
	if step == 0 {
		step = span / AutoPoints
	}
	step = max(step, finest, span/MaxPoints, time.Millisecond)
	if step%unit != 0 {
		step = (step/unit + 1) * unit
	}
	return step
}

// floorTime rounds t down to a multiple of d since the Unix epoch.
func floorTime(t time.Time, d time.Duration) time.Time {
	ms := t.UnixMilli()
	return time.UnixMilli(ms - mod(ms, max(d.Milliseconds(), 1))).UTC()
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
