package storetest

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// minute is a time aligned on 10 minutes (so on every rollup step used here).
var minute = time.Date(2025, 3, 14, 15, 10, 0, 0, time.UTC)

func testMetaSet(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.MetaSet(ctx, "watermark", "1"))
	equal(t, "MetaGet after MetaSet", must(s.MetaGet(ctx, "watermark"))(t), "1")
	ok(t, s.MetaSet(ctx, "watermark", "2"))
	equal(t, "MetaGet after second MetaSet", must(s.MetaGet(ctx, "watermark"))(t), "2")
	equal(t, "MetaSetIfAbsent after MetaSet", must(s.MetaSetIfAbsent(ctx, "watermark", "3"))(t), "2")
}

func testSampleFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := func(i int) time.Time { return minute.Add(time.Duration(i) * time.Second) }
	var in []store.Sample
	for i := range 4 {
		in = append(in,
			store.Sample{Cluster: "web", Counter: "cpu", At: at(i), Value: float64(i), Reporting: 1, Expected: 3},
			store.Sample{Cluster: "web", Counter: "cpu", Node: "web-1", At: at(i), Value: float64(10 + i)},
			store.Sample{Cluster: "web", Counter: "cpu", Node: "web-2", At: at(i), Err: "refused"},
			store.Sample{Cluster: "web", Counter: "cpu", Node: "web-3", At: at(i), Value: float64(30 + i)},
		)
	}
	// Inserted in two calls: the second reuses the series of the first.
	ok(t, s.SampleInsert(ctx, in[:8]))
	ok(t, s.SampleInsert(ctx, in[8:]))
	pick := func(idx ...int) []store.Sample {
		out := []store.Sample{}
		for _, i := range idx {
			sm := in[i]
			sm.At = ms(sm.At)
			out = append(out, sm)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.SampleFilter
		want []store.Sample
	}{
		{"one node", store.SampleFilter{Cluster: "web", Counter: "cpu", Nodes: []string{"web-3"}}, pick(3, 7, 11, 15)},
		{"nodes and aggregate", store.SampleFilter{Cluster: "web", Counter: "cpu", Nodes: []string{"", "web-1"}, Since: at(2)}, pick(8, 9, 12, 13)},
		{"until", store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true, Until: at(2)}, pick(0, 4)},
		{"since and until", store.SampleFilter{Cluster: "web", Counter: "cpu", Nodes: []string{"web-2"}, Since: at(1), Until: at(3)}, pick(6, 10)},
		{"latest of a node", store.SampleFilter{Cluster: "web", Counter: "cpu", Nodes: []string{"web-1"}, Limit: 1}, pick(13)},
		{"unknown node", store.SampleFilter{Cluster: "web", Counter: "cpu", Nodes: []string{"web-9"}}, []store.Sample{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := must(s.SampleList(ctx, tc.f))(t)
			for i := range got {
				if got[i].Err != "" {
					got[i].Value = 0
				}
			}
			sortSamples(got)
			sortSamples(tc.want)
			equal(t, fmt.Sprintf("SampleList(%+v)", tc.f), got, tc.want)
		})
	}
}

func sortSamples(s []store.Sample) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].At.Before(s[i].At) || s[j].At.Equal(s[i].At) && s[j].Node < s[i].Node {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// testSampleInsertTx checks that samples written in a rolled-back
// transaction leave nothing behind, and that their series work afterwards.
func testSampleInsertTx(t *testing.T, s store.Store) {
	ctx := t.Context()
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx store.Store) error {
		if err := tx.SampleInsert(ctx, []store.Sample{{Cluster: "web", Counter: "cpu", Node: "web-1", At: minute, Value: 1}}); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Tx", err, boom)
	equal(t, "samples after rollback", len(must(s.SampleList(ctx, store.SampleFilter{Cluster: "web"}))(t)), 0)
	ok(t, s.SampleInsert(ctx, []store.Sample{{Cluster: "web", Counter: "cpu", Node: "web-1", At: minute, Value: 2}}))
	got := must(s.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu", Nodes: []string{"web-1"}}))(t)
	if len(got) != 1 || got[0].Value != 2 {
		t.Fatalf("after rollback and insert: %+v, want one sample of value 2", got)
	}
	ok(t, s.Tx(ctx, func(tx store.Store) error {
		return tx.SampleInsert(ctx, []store.Sample{{Cluster: "web", Counter: "cpu", Node: "web-1", At: minute.Add(time.Second), Value: 3}})
	}))
	equal(t, "samples after a committed Tx", len(must(s.SampleList(ctx, store.SampleFilter{Cluster: "web"}))(t)), 2)
}

// rollupOf returns the rollup of node in rs (ok false if none).
func rollupOf(rs []store.Rollup, node string, at time.Time) (store.Rollup, bool) {
	for _, r := range rs {
		if r.Node == node && r.At.Equal(at) {
			return r, true
		}
	}
	return store.Rollup{}, false
}

// sameFloat compares floats, NaN equal to NaN.
func sameFloat(a, b float64) bool {
	return a == b || math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func checkRollup(t *testing.T, what string, got store.Rollup, want store.Rollup) {
	t.Helper()
	if got.Cluster != want.Cluster || got.Counter != want.Counter || got.Node != want.Node || got.Step != want.Step ||
		!got.At.Equal(want.At) || got.At.Location() != time.UTC || got.Count != want.Count || got.Errors != want.Errors ||
		!sameFloat(got.Avg, want.Avg) || !sameFloat(got.Min, want.Min) || !sameFloat(got.Max, want.Max) || got.LastErr != want.LastErr {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testRollupCompute(t *testing.T, s store.Store) {
	ctx := t.Context()
	nan := math.NaN()
	var in []store.Sample
	// Three minutes of samples every 20 s; web-1 has a value at each, web-2
	// fails at second 20 of the first minute and always in the third.
	for i := range 9 {
		at := minute.Add(time.Duration(i) * 20 * time.Second)
		in = append(in,
			store.Sample{Cluster: "web", Counter: "cpu", At: at, Value: float64(i), Reporting: 2, Expected: 2},
			store.Sample{Cluster: "web", Counter: "cpu", Node: "web-1", At: at, Value: float64(100 + i)})
		web2 := store.Sample{Cluster: "web", Counter: "cpu", Node: "web-2", At: at, Value: float64(-i)}
		if i == 1 || i >= 6 {
			web2 = store.Sample{Cluster: "web", Counter: "cpu", Node: "web-2", At: at, Err: fmt.Sprintf("refused %d", i)}
		}
		in = append(in, web2)
	}
	in = append(in, store.Sample{Cluster: "db", Counter: "qps", At: minute.Add(50 * time.Second), Value: 7})
	ok(t, s.SampleInsert(ctx, in))

	// Only the first two minutes: the third is not complete yet.
	n := must(s.RollupCompute(ctx, time.Minute, 0, minute, minute.Add(2*time.Minute)))(t)
	equal(t, "rollups written", n, int64(7)) // web: 3 series × 2 minutes, db: 1
	m1 := must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: time.Minute}))(t)
	equal(t, "rollups of web/cpu", len(m1), 6)
	for i := 1; i < len(m1); i++ {
		if m1[i].At.Before(m1[i-1].At) {
			t.Fatalf("RollupList not oldest first: %+v", m1)
		}
	}
	r := func(node string, at time.Time, count, errs int, avg, mn, mx float64, lastErr string) store.Rollup {
		return store.Rollup{Cluster: "web", Counter: "cpu", Node: node, Step: time.Minute, At: at, Count: count,
			Errors: errs, Avg: avg, Min: mn, Max: mx, LastErr: lastErr}
	}
	m2 := minute.Add(time.Minute)
	for _, want := range []store.Rollup{
		r("", minute, 3, 0, 1, 0, 2, ""),
		r("web-1", minute, 3, 0, 101, 100, 102, ""),
		r("web-2", minute, 2, 1, -1, -2, 0, "refused 1"),
		r("", m2, 3, 0, 4, 3, 5, ""),
		r("web-2", m2, 3, 0, -4, -5, -3, ""),
	} {
		got, found := rollupOf(m1, want.Node, want.At)
		if !found {
			t.Fatalf("no rollup of %q at %s in %+v", want.Node, want.At, m1)
		}
		checkRollup(t, "rollup", got, want)
	}

	// The third minute, and the first again from a zero from (the oldest
	// data): computed again, the first minute is replaced, not doubled.
	must(s.RollupCompute(ctx, time.Minute, 0, time.Time{}, minute.Add(3*time.Minute)))(t)
	m1 = must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: time.Minute}))(t)
	equal(t, "rollups after recompute", len(m1), 9)
	m3 := minute.Add(2 * time.Minute)
	got, _ := rollupOf(m1, "web-2", m3)
	checkRollup(t, "a bucket of errors only", got, r("web-2", m3, 0, 3, nan, nan, nan, "refused 8"))
	got, _ = rollupOf(m1, "web-1", minute)
	checkRollup(t, "recomputed", got, r("web-1", minute, 3, 0, 101, 100, 102, ""))

	// Filters.
	equal(t, "aggregate only", len(must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: time.Minute, AggregateOnly: true}))(t)), 3)
	equal(t, "nodes", len(must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: time.Minute, Nodes: []string{"web-1", "web-2"}}))(t)), 6)
	equal(t, "since/until", len(must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Step: time.Minute, Since: m2, Until: m3}))(t)), 3)
	equal(t, "other step", len(must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Step: 10 * time.Minute}))(t)), 0)
	equal(t, "other cluster", len(must(s.RollupList(ctx, store.RollupFilter{Cluster: "db", Step: time.Minute}))(t)), 1)

	// 5-minute rollups from the 1-minute ones: averages weighted by count.
	must(s.RollupCompute(ctx, 5*time.Minute, time.Minute, minute, minute.Add(5*time.Minute)))(t)
	coarse := must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Counter: "cpu", Step: 5 * time.Minute}))(t)
	got, found := rollupOf(coarse, "web-2", minute)
	if !found {
		t.Fatalf("no 5-minute rollup of web-2 in %+v", coarse)
	}
	want := store.Rollup{Cluster: "web", Counter: "cpu", Node: "web-2", Step: 5 * time.Minute, At: minute, Count: 5, Errors: 4,
		Avg: (0 - 2 - 3 - 4 - 5) / 5.0, Min: -5, Max: 0, LastErr: "refused 8"}
	checkRollup(t, "5-minute rollup", got, want)

	// Arguments that do not fit.
	for _, tc := range []struct {
		name     string
		step     time.Duration
		src      time.Duration
		from, to time.Time
	}{
		{"zero step", 0, 0, minute, minute},
		{"source not dividing", 10 * time.Minute, 3 * time.Minute, minute, minute.Add(10 * time.Minute)},
		{"source coarser", time.Minute, 10 * time.Minute, minute, minute.Add(10 * time.Minute)},
		{"unaligned bounds", time.Minute, 0, minute.Add(time.Second), minute.Add(time.Minute)},
	} {
		if _, err := s.RollupCompute(ctx, tc.step, tc.src, tc.from, tc.to); err == nil {
			t.Errorf("RollupCompute(%s): no error", tc.name)
		}
	}
	if _, err := s.RollupList(ctx, store.RollupFilter{Cluster: "web"}); err == nil {
		t.Errorf("RollupList without a step: no error")
	}
}

func testRollupPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	var in []store.Sample
	for i := range 5 {
		in = append(in, store.Sample{Cluster: "web", Counter: "cpu", At: minute.Add(time.Duration(i) * time.Minute), Value: float64(i)})
	}
	ok(t, s.SampleInsert(ctx, in))
	must(s.RollupCompute(ctx, time.Minute, 0, minute, minute.Add(5*time.Minute)))(t)
	must(s.RollupCompute(ctx, 5*time.Minute, time.Minute, minute, minute.Add(5*time.Minute)))(t)
	equal(t, "RollupPrune(+3m)", must(s.RollupPrune(ctx, time.Minute, minute.Add(3*time.Minute)))(t), int64(3))
	equal(t, "RollupPrune(+3m again)", must(s.RollupPrune(ctx, time.Minute, minute.Add(3*time.Minute)))(t), int64(0))
	left := must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Step: time.Minute}))(t)
	if len(left) != 2 || !left[0].At.Equal(minute.Add(3*time.Minute)) {
		t.Fatalf("1-minute rollups after prune: %+v, want minutes 3 and 4", left)
	}
	equal(t, "other step untouched", len(must(s.RollupList(ctx, store.RollupFilter{Cluster: "web", Step: 5 * time.Minute}))(t)), 1)
}

func testSeriesPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.SampleInsert(ctx, []store.Sample{
		{Cluster: "web", Counter: "cpu", Node: "web-1", At: minute, Value: 1},
		{Cluster: "web", Counter: "cpu", Node: "web-2", At: minute, Value: 2},
		{Cluster: "web", Counter: "cpu", Node: "web-3", At: minute.Add(time.Hour), Value: 3},
	}))
	must(s.RollupCompute(ctx, time.Minute, 0, minute, minute.Add(time.Minute)))(t)
	equal(t, "SeriesPrune(all have data)", must(s.SeriesPrune(ctx))(t), int64(0))
	must(s.SamplePrune(ctx, minute.Add(time.Minute)))(t)
	// web-1 and web-2 keep their rollups.
	equal(t, "SeriesPrune(rollups left)", must(s.SeriesPrune(ctx))(t), int64(0))
	must(s.RollupPrune(ctx, time.Minute, minute.Add(time.Minute)))(t)
	equal(t, "SeriesPrune(web-1 and web-2 empty)", must(s.SeriesPrune(ctx))(t), int64(2))
	// A series pruned comes back with new samples.
	ok(t, s.SampleInsert(ctx, []store.Sample{{Cluster: "web", Counter: "cpu", Node: "web-1", At: minute.Add(2 * time.Hour), Value: 4}}))
	got := must(s.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu"}))(t)
	if len(got) != 2 || got[0].Node != "web-3" || got[1].Node != "web-1" || got[1].Value != 4 {
		t.Fatalf("samples after SeriesPrune and insert: %+v", got)
	}
}

func testAgentReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	equal(t, "AgentReportList(empty)", len(must(s.AgentReportList(ctx, time.Time{}))(t)), 0)
	r1 := store.AgentReport{Node: "web-1", Cluster: "web", ReceivedAt: minute,
		Counters: map[string]store.AgentReading{"load": {Value: 0.5}, "disk": {Err: "df: not found"}}}
	r2 := store.AgentReport{Node: "web-2", Cluster: "web", ReceivedAt: minute.Add(time.Second), Counters: map[string]store.AgentReading{}}
	ok(t, s.AgentReportPut(ctx, []store.AgentReport{r1, r2}))
	ok(t, s.AgentReportPut(ctx, nil))
	equal(t, "AgentReportList", must(s.AgentReportList(ctx, time.Time{}))(t), []store.AgentReport{r1, r2})
	equal(t, "AgentReportList(since)", must(s.AgentReportList(ctx, minute.Add(time.Second)))(t), []store.AgentReport{r2})

	// A newer report replaces the node's previous one; within one call the
	// last report of a node wins.
	r1b := store.AgentReport{Node: "web-1", Cluster: "web", ReceivedAt: minute.Add(5 * time.Second),
		Counters: map[string]store.AgentReading{"load": {Value: 1.25}}}
	r1c := r1b
	r1c.ReceivedAt = minute.Add(6 * time.Second)
	ok(t, s.AgentReportPut(ctx, []store.AgentReport{r1b, r1c}))
	equal(t, "AgentReportList after replace", must(s.AgentReportList(ctx, time.Time{}))(t), []store.AgentReport{r1c, r2})

	equal(t, "AgentReportPrune", must(s.AgentReportPrune(ctx, minute.Add(2*time.Second)))(t), int64(1))
	equal(t, "AgentReportList after prune", must(s.AgentReportList(ctx, time.Time{}))(t), []store.AgentReport{r1c})
	if err := s.AgentReportPut(ctx, []store.AgentReport{{Cluster: "web"}}); err == nil {
		t.Fatal("AgentReportPut without a node: no error")
	}
}
