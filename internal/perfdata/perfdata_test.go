package perfdata

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

// t0 is aligned on every step used here (a whole day).
var t0 = time.Date(2030, 5, 6, 0, 0, 0, 0, time.UTC)

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func sample(node string, at time.Time, v float64) store.Sample {
	return store.Sample{Cluster: "web", Counter: "cpu", Node: node, At: at, Value: v}
}

func failed(node string, at time.Time, msg string) store.Sample {
	return store.Sample{Cluster: "web", Counter: "cpu", Node: node, At: at, Err: msg}
}

func TestRingIsBounded(t *testing.T) {
	t.Parallel()
	m := NewMemory(time.Minute)
	if got := m.Capacity(10 * time.Second); got != 8 {
		t.Fatalf("Capacity(10s) = %d, want 8 (window/interval + 2)", got)
	}
	m.Reset(t0)
	for i := range 100 {
		m.Add([]store.Sample{sample("web-1", t0.Add(time.Duration(i)*10*time.Second), float64(i))}, 10*time.Second)
	}
	r := m.series[Key{"web", "cpu", "web-1"}]
	if len(r.pts) != 8 || r.n != 8 {
		t.Fatalf("ring of %d points holding %d, want 8 and 8", len(r.pts), r.n)
	}
	var got []float64
	r.each(math.MinInt64, math.MaxInt64, func(p point) { got = append(got, p.v) })
	if fmt.Sprint(got) != "[92 93 94 95 96 97 98 99]" {
		t.Fatalf("ring holds %v, want the newest 8 in order", got)
	}
	// Errors: the newest few messages only.
	for i := range 10 {
		m.Add([]store.Sample{failed("web-1", t0.Add(time.Duration(1000+i)*time.Second), fmt.Sprintf("refused %d", i))}, 10*time.Second)
	}
	if len(r.errs) != maxErrorsPerSeries || r.errs[len(r.errs)-1].msg != "refused 9" || r.errs[0].msg != "refused 6" {
		t.Fatalf("errors kept: %+v", r.errs)
	}
	// A series that records nothing for the window is forgotten.
	m.Add([]store.Sample{sample("web-2", t0.Add(2000*time.Second), 1)}, 10*time.Second)
	if n := m.Prune(t0.Add(2000*time.Second + 30*time.Second)); n != 1 || m.Len() != 1 {
		t.Fatalf("Prune forgot %d, %d left; want web-1 forgotten, web-2 kept", n, m.Len())
	}
}

func TestMemoryCovers(t *testing.T) {
	t.Parallel()
	m := NewMemory(10 * time.Minute)
	now := t0.Add(time.Hour)
	if m.Covers(now, now) {
		t.Fatal("a memory that never started covers something")
	}
	m.Reset(t0.Add(55 * time.Minute))
	for _, tc := range []struct {
		since time.Time
		want  bool
	}{
		{now.Add(-time.Minute), true},
		{now.Add(-5 * time.Minute), true},                   // its start
		{now.Add(-6 * time.Minute), false},                  // before it started
		{now.Add(-11 * time.Minute), false},                 // beyond the window
		{now.Add(-5*time.Minute - time.Millisecond), false}, // just before it started
	} {
		if got := m.Covers(tc.since, now); got != tc.want {
			t.Errorf("Covers(%s) = %v, want %v", tc.since.Sub(now), got, tc.want)
		}
	}
	if NewMemory(0).Covers(now, now) {
		t.Error("a memory with no window covers something")
	}
}

func TestChooseStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		asked, finest, span, want time.Duration
	}{
		{0, 10 * time.Second, time.Hour, 20 * time.Second},                 // about 300 points, a whole number of intervals
		{0, 10 * time.Second, 10 * time.Minute, 10 * time.Second},          // not finer than the data
		{5 * time.Second, time.Minute, time.Hour, time.Minute},             // raised to the rollup
		{90 * time.Second, time.Minute, 24 * time.Hour, 2 * time.Minute},   // a whole number of the rollup's step
		{time.Second, time.Second, 30 * 24 * time.Hour, 260 * time.Second}, // at most MaxPoints points
		{0, 0, time.Minute, time.Second},
		{250 * time.Millisecond, 100 * time.Millisecond, time.Minute, time.Second},
	}
	for _, tc := range tests {
		if got := chooseStep(tc.asked, tc.finest, tc.span); got != tc.want {
			t.Errorf("chooseStep(%s, %s, %s) = %s, want %s", tc.asked, tc.finest, tc.span, got, tc.want)
		}
	}
}

func TestPointJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal([]Point{{At: t0, Value: 1.5, Valid: true}, {At: t0.Add(time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[[%d,1.5],[%d,null]]", t0.UnixMilli(), t0.UnixMilli()+1000)
	if string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	var back []Point
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 2 || !back[0].At.Equal(t0) || back[0].Value != 1.5 || !back[0].Valid || back[1].Valid {
		t.Fatalf("decoded %+v", back)
	}
	if err := json.Unmarshal([]byte(`[[1]]`), &back); err == nil {
		t.Fatal("a point without a value decoded")
	}
}

// fixture is a store with raw samples of web/cpu every 10 s for the last
// 3 hours before now (web-1 always, web-2 failing between 20 and 25 minutes
// ago), rolled up by a Downsampler.
type fixture struct {
	st  store.Store
	now time.Time
	ret Retention
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{st: openStore(t), now: t0.Add(3 * time.Hour),
		ret: Retention{{Keep: time.Hour}, {Step: time.Minute, Keep: 2 * time.Hour}, {Step: 10 * time.Minute, Keep: 24 * time.Hour}}}
	var in []store.Sample
	for at := t0; at.Before(f.now); at = at.Add(10 * time.Second) {
		// web-1 reads the minute of the hour; the aggregate 100 + that.
		v := float64(at.Minute())
		in = append(in, sample("web-1", at, v))
		agg := sample("", at, 100+v)
		agg.Reporting, agg.Expected = 2, 2
		if ago := f.now.Sub(at); ago <= 25*time.Minute && ago > 20*time.Minute {
			in = append(in, failed("web-2", at, "connection refused"))
			agg.Reporting = 1
		} else {
			in = append(in, sample("web-2", at, -v))
		}
		in = append(in, agg)
	}
	if err := f.st.SampleInsert(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	d := &Downsampler{Store: f.st, Retention: f.ret, Settle: 20 * time.Second}
	// Passes as the housekeeping would run them while the data came in.
	for at := t0.Add(5 * time.Minute); !at.After(f.now); at = at.Add(5 * time.Minute) {
		if _, err := d.Run(t.Context(), at); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) engine(mem *Memory) *Engine {
	return &Engine{Store: f.st, Memory: mem, Retention: f.ret, Now: func() time.Time { return f.now }}
}

func TestDownsamplerKeepsEachLevel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	raw, err := f.st.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// Raw samples are kept for an hour (the last pass ran at now).
	if oldest := raw[0].At; oldest.Before(f.now.Add(-time.Hour)) || oldest.After(f.now.Add(-time.Hour+10*time.Second)) {
		t.Errorf("oldest raw sample %s before now, want 1h", f.now.Sub(oldest))
	}
	m1, err := f.st.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: time.Minute, AggregateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(m1) == 0 || m1[0].At.Before(f.now.Add(-2*time.Hour)) {
		t.Fatalf("1-minute rollups start at %v, want within 2h", m1)
	}
	// Rolled up to the last completed minute before the settle delay.
	if newest := m1[len(m1)-1].At; !newest.Equal(f.now.Add(-2 * time.Minute)) {
		t.Errorf("newest 1-minute rollup at now-%s, want now-2m (the minute ending 20 s ago is not complete)", f.now.Sub(newest))
	}
	for _, r := range m1 {
		if r.Count != 6 || r.Avg != 100+float64(r.At.Minute()) {
			t.Fatalf("1-minute rollup %+v: want 6 values averaging %d", r, 100+r.At.Minute())
		}
	}
	m10, err := f.st.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: 10 * time.Minute, Nodes: []string{"web-2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m10) == 0 || !m10[0].At.Equal(t0) {
		t.Fatalf("10-minute rollups of web-2: %+v, want from the start", m10)
	}
	// The bucket that holds web-2's failures, 20 to 25 minutes ago.
	var found bool
	for _, r := range m10 {
		if r.At.Equal(f.now.Add(-30 * time.Minute)) {
			found = true
			if r.Errors != 30 || r.Count != 30 || r.LastErr != "connection refused" {
				t.Errorf("10-minute rollup with the failures: %+v, want 30 errors and 30 values", r)
			}
		}
	}
	if !found {
		t.Errorf("no 10-minute rollup 30 minutes ago in %+v", m10)
	}
}

func TestDownsamplerResumesAfterAStop(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := t.Context()
	ret := Retention{{Keep: 10 * time.Minute}, {Step: time.Minute, Keep: time.Hour}}
	var in []store.Sample
	for at := t0; at.Before(t0.Add(30 * time.Minute)); at = at.Add(15 * time.Second) {
		in = append(in, sample("", at, 1))
	}
	if err := st.SampleInsert(ctx, in); err != nil {
		t.Fatal(err)
	}
	d := &Downsampler{Store: st, Retention: ret, Settle: time.Second}
	if _, err := d.Run(ctx, t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A new server starts 25 minutes later: raw samples from minute 5 on are
	// older than the raw retention, but not rolled up yet, so they stay
	// until the new Downsampler (which reads the watermark) rolls them up.
	d2 := &Downsampler{Store: st, Retention: ret, Settle: time.Second}
	pass, err := d2.Run(ctx, t0.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if pass.Rolled[time.Minute] != 25 {
		t.Errorf("second pass rolled up %d minutes, want 25 (minutes 4 to 28; 29 ends within the settle delay)", pass.Rolled[time.Minute])
	}
	rs, err := st.RollupList(ctx, store.RollupFilter{Cluster: "web", Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 29 {
		t.Fatalf("%d 1-minute rollups, want 29 (none lost to the stop)", len(rs))
	}
	for _, r := range rs {
		if r.Count != 4 {
			t.Fatalf("rollup %+v: want 4 samples (every 15 s)", r)
		}
	}
	raw, err := st.SampleList(ctx, store.SampleFilter{Cluster: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 40 || raw[0].At.Before(t0.Add(20*time.Minute)) {
		t.Fatalf("%d raw samples from %s, want the last 10 minutes (40) only", len(raw), raw[0].At)
	}
	v, err := st.MetaGet(ctx, watermarkKey(time.Minute))
	if err != nil || v != fmt.Sprint(t0.Add(29*time.Minute).UnixMilli()) {
		t.Fatalf("watermark %q, %v", v, err)
	}
}

func TestQueryAcrossLevels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	e := f.engine(nil)

	// The last 3 hours at 10 minutes: 10-minute rollups, then 1-minute ones,
	// then raw samples.
	res, err := e.Query(ctx, Query{Cluster: "web", Counter: "cpu", Since: f.now.Add(-3 * time.Hour), Step: 10 * time.Minute, Interval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Step != 10*time.Minute || len(res.Aggregate) != 18 || fmt.Sprint(res.Resolutions) != "[10m0s 1m0s raw]" {
		t.Fatalf("step %s, %d points, resolutions %v; want 10m, 18, [10m0s 1m0s raw]", res.Step, len(res.Aggregate), res.Resolutions)
	}
	for _, p := range res.Aggregate {
		// Each 10 minutes averages minutes m..m+9: 100 + m + 4.5.
		want := 100 + float64(p.At.Minute()) + 4.5
		if !p.Valid || math.Abs(p.Value-want) > 1e-9 {
			t.Errorf("point at %s = %+v, want %g", p.At.Sub(f.now), p, want)
		}
	}
	if len(res.Nodes) != 2 || len(res.Nodes["web-1"]) != 18 {
		t.Fatalf("nodes %v", keys(res.Nodes))
	}
	// web-2's failures are errors, not zeros: its point over them averages
	// only the values it had.
	if len(res.Errors) == 0 || res.Errors[0].Node != "web-2" || res.Errors[0].Error != "connection refused" {
		t.Errorf("errors %+v, want web-2's failures", res.Errors)
	}

	// A range with no data at all: every point is null.
	res, err = e.Query(ctx, Query{Cluster: "web", Counter: "cpu", Since: f.now.Add(-23 * time.Hour), Until: f.now.Add(-22 * time.Hour), Step: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Aggregate {
		if p.Valid {
			t.Fatalf("point %+v before the data began is not null", p)
		}
	}
	if len(res.Nodes) != 0 {
		t.Errorf("nodes %v without data", keys(res.Nodes))
	}
}

func TestQueryRecentRaw(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	e := f.engine(nil)
	res, err := e.Query(ctx, Query{Cluster: "web", Counter: "cpu", Since: f.now.Add(-30 * time.Minute), Interval: 10 * time.Second,
		Nodes: []string{"web-2", "web-9"}})
	if err != nil {
		t.Fatal(err)
	}
	// About 300 points: 6 s would be finer than the data, so 10 s.
	if res.Step != 10*time.Second || len(res.Aggregate) != 180 || fmt.Sprint(res.Resolutions) != "[raw]" {
		t.Fatalf("step %s, %d points, %v; want 10s, 180, [raw]", res.Step, len(res.Aggregate), res.Resolutions)
	}
	if _, ok := res.Nodes["web-1"]; ok || len(res.Nodes) != 2 {
		t.Fatalf("nodes %v, want web-2 and web-9 only", keys(res.Nodes))
	}
	nulls := 0
	for _, p := range res.Nodes["web-2"] {
		if !p.Valid {
			nulls++
		}
	}
	if nulls != 30 {
		t.Errorf("web-2 has %d null points, want 30 (its failures over 5 minutes)", nulls)
	}
	for _, p := range res.Nodes["web-9"] {
		if p.Valid {
			t.Fatalf("web-9, which never reported, has a value: %+v", p)
		}
	}
	if len(res.Errors) != 30 || res.Errors[0].At.Before(res.Errors[29].At) {
		t.Errorf("%d errors, want 30, newest first", len(res.Errors))
	}

	res, err = e.Query(ctx, Query{Cluster: "web", Counter: "cpu", Since: f.now.Add(-5 * time.Minute), AggregateOnly: true, Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 0 || len(res.Aggregate) != 5 {
		t.Fatalf("aggregate only: %d nodes, %d points", len(res.Nodes), len(res.Aggregate))
	}

	if _, err := e.Query(ctx, Query{Cluster: "web", Counter: "cpu", Since: f.now, Until: f.now.Add(-time.Minute)}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("an empty range: %v, want ErrBadQuery", err)
	}
	if _, err := e.Query(ctx, Query{Cluster: "web", Counter: "cpu", Step: -time.Second}); !errors.Is(err, ErrBadQuery) {
		t.Errorf("a negative step: %v, want ErrBadQuery", err)
	}
}

// TestQueryFromMemory checks that a recent range is answered from memory,
// the same as from the store.
func TestQueryFromMemory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	mem := NewMemory(10 * time.Minute)
	mem.Reset(f.now.Add(-10 * time.Minute))
	raw, err := f.st.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu", Since: f.now.Add(-10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	mem.Add(raw, 10*time.Second)
	q := Query{Cluster: "web", Counter: "cpu", Since: f.now.Add(-5 * time.Minute), Step: 30 * time.Second, Interval: 10 * time.Second}
	fromMem, err := f.engine(mem).Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	fromStore, err := f.engine(nil).Query(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(fromMem.Resolutions) != "[memory]" || fmt.Sprint(fromStore.Resolutions) != "[raw]" {
		t.Fatalf("resolutions %v and %v", fromMem.Resolutions, fromStore.Resolutions)
	}
	a, _ := json.Marshal(fromMem.Nodes)
	b, _ := json.Marshal(fromStore.Nodes)
	if string(a) != string(b) || fmt.Sprint(fromMem.Aggregate) != fmt.Sprint(fromStore.Aggregate) {
		t.Fatalf("memory and store differ:\n%s\n%s", a, b)
	}
	// Older than the memory's start: the store answers.
	q.Since = f.now.Add(-20 * time.Minute)
	res, err := f.engine(mem).Query(ctx, q)
	if err != nil || fmt.Sprint(res.Resolutions) != "[raw]" {
		t.Fatalf("a range older than the memory: %v, %v", res.Resolutions, err)
	}
}

func keys[V any](m map[string]V) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ",")
}
