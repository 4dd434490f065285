// Package storetest is the conformance suite of store.Store: every
// implementation runs it against a real database.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// Run runs the conformance suite. Each subtest runs in parallel on a fresh,
// empty store returned by open, which must arrange (with t.Cleanup) to close
// and discard it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ActivityCreateGet", testActivityCreateGet},
		{"AgentReports", testAgentReports},
		{"ActivityList", testActivityList},
		{"ActivityListDefaultLimit", testActivityListDefaultLimit},
		{"ActivityUpdate", testActivityUpdate},
		{"ClusterCRUD", testClusterCRUD},
		{"ClusterUpsertClamp", testClusterUpsertClamp},
		{"ClusterStopped", testClusterStopped},
		{"Dialect", testDialect},
		{"Leader", testLeader},
		{"Meta", testMeta},
		{"MetaSet", testMetaSet},
		{"NodeCreateGet", testNodeCreateGet},
		{"NodeCreateConflict", testNodeCreateConflict},
		{"NodeList", testNodeList},
		{"NodeNextSeq", testNodeNextSeq},
		{"NodeNextSeqConcurrent", testNodeNextSeqConcurrent},
		{"NodeUpdate", testNodeUpdate},
		{"RollupCompute", testRollupCompute},
		{"RollupPrune", testRollupPrune},
		{"SampleFilters", testSampleFilters},
		{"SampleInsertTx", testSampleInsertTx},
		{"SampleList", testSampleList},
		{"SamplePrune", testSamplePrune},
		{"SeriesPrune", testSeriesPrune},
		{"Server", testServer},
		{"Times", testTimes},
		{"TriggerState", testTriggerState},
		{"TxCommit", testTxCommit},
		{"TxRollback", testTxRollback},
		{"TxNested", testTxNested},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// base is a time in a non-UTC zone with sub-millisecond digits: stored, it must
// come back as base.Truncate(time.Millisecond) in UTC.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535_897_932, time.FixedZone("CET", 3600))

// ms is what a stored t reads back as.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

// must returns v, failing the test if err is set: must(s.NodeGet(ctx, id))(t).
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr fails unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// equal fails unless got and want are deeply equal.
func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// sameTime fails unless got is want (at millisecond precision) and in UTC.
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	want = ms(want)
	if !got.Equal(want) || got.IsZero() != want.IsZero() {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Fatalf("%s: got %v in %v, want UTC", what, got, got.Location())
	}
}

// recent fails unless got is within a minute of now, in UTC, at millisecond precision.
func recent(t *testing.T, what string, got time.Time) {
	t.Helper()
	if d := time.Since(got); d < -time.Minute || d > time.Minute {
		t.Fatalf("%s: got %v, want about now", what, got)
	}
	if got.Location() != time.UTC || got.Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("%s: got %v, want UTC at millisecond precision", what, got)
	}
}

// --- activities ---

func testActivityCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := store.Activity{
		Cluster: "web", Node: "web-1", Trigger: "cpu-high", Kind: "scale", Cause: "cpu > 80% for 5m",
		Status: store.ActivityRunning, Step: 2, Params: json.RawMessage(`{"count":2,"order":"oldest"}`),
		Output: "out", Error: "err", CreatedAt: base, StartedAt: base.Add(time.Second), FinishedAt: base.Add(2 * time.Second),
	}
	got := must(s.ActivityCreate(ctx, a))(t)
	if got.ID <= 0 {
		t.Fatalf("ActivityCreate: ID %d, want > 0", got.ID)
	}
	want := a
	want.ID = got.ID
	want.CreatedAt, want.StartedAt, want.FinishedAt = ms(a.CreatedAt), ms(a.StartedAt), ms(a.FinishedAt)
	equal(t, "ActivityCreate", got, want)
	equal(t, "ActivityGet", must(s.ActivityGet(ctx, got.ID))(t), want)

	// CreatedAt is set when zero; IDs grow; a child links to its parent.
	child := must(s.ActivityCreate(ctx, store.Activity{ParentID: got.ID, Cluster: "web", Kind: "deploy_node", Status: store.ActivityPending}))(t)
	if child.ID <= got.ID {
		t.Fatalf("second ActivityCreate: ID %d, want > %d", child.ID, got.ID)
	}
	recent(t, "CreatedAt", child.CreatedAt)
	if child.Params != nil || !child.StartedAt.IsZero() || !child.FinishedAt.IsZero() {
		t.Fatalf("zero fields did not round-trip: %+v", child)
	}
	equal(t, "ActivityGet(child)", must(s.ActivityGet(ctx, child.ID))(t), child)

	_, err := s.ActivityGet(ctx, child.ID+1000)
	wantErr(t, "ActivityGet(missing)", err, store.ErrNotFound)
}

func testActivityList(t *testing.T, s store.Store) {
	ctx := t.Context()
	create := func(a store.Activity) int64 {
		t.Helper()
		return must(s.ActivityCreate(ctx, a))(t).ID
	}
	d1 := create(store.Activity{Cluster: "web", Kind: "scale", Status: store.ActivitySucceeded})
	d1s0 := create(store.Activity{ParentID: d1, Cluster: "web", Kind: "deploy_node", Status: store.ActivitySucceeded})
	d1s1 := create(store.Activity{ParentID: d1, Cluster: "web", Step: 1, Kind: "local_script", Status: store.ActivityFailed})
	d2 := create(store.Activity{Cluster: "db", Kind: "scale", Status: store.ActivityRunning})
	d2s0 := create(store.Activity{ParentID: d2, Cluster: "db", Kind: "remove_node", Status: store.ActivityPending})
	d3 := create(store.Activity{Cluster: "web", Node: "web-1", Kind: "node_failed", Status: store.ActivitySucceeded})

	tests := []struct {
		name string
		f    store.ActivityFilter
		want []int64
	}{
		{"all", store.ActivityFilter{}, []int64{d3, d2s0, d2, d1s1, d1s0, d1}},
		{"cluster", store.ActivityFilter{Cluster: "web"}, []int64{d3, d1s1, d1s0, d1}},
		{"kind", store.ActivityFilter{Kind: "scale"}, []int64{d2, d1}},
		{"status", store.ActivityFilter{Status: store.ActivitySucceeded}, []int64{d3, d1s0, d1}},
		{"parent", store.ActivityFilter{ParentID: d1}, []int64{d1s1, d1s0}},
		{"after", store.ActivityFilter{AfterID: d1s1}, []int64{d3, d2s0, d2}},
		{"after last", store.ActivityFilter{AfterID: d3}, []int64{}},
		{"limit", store.ActivityFilter{Limit: 2}, []int64{d3, d2s0}},
		{"cluster+kind", store.ActivityFilter{Cluster: "web", Kind: "scale"}, []int64{d1}},
		{"cluster+status+limit", store.ActivityFilter{Cluster: "web", Status: store.ActivitySucceeded, Limit: 2}, []int64{d3, d1s0}},
		{"parent+after", store.ActivityFilter{ParentID: d1, AfterID: d1s0}, []int64{d1s1}},
		{"no match", store.ActivityFilter{Cluster: "nope"}, []int64{}},
		{"node", store.ActivityFilter{Node: "web-1"}, []int64{d3}},
		{"cluster+node", store.ActivityFilter{Cluster: "web", Node: "web-1"}, []int64{d3}},
		{"unknown node", store.ActivityFilter{Node: "web-2"}, []int64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := []int64{}
			for _, a := range must(s.ActivityList(ctx, tc.f))(t) {
				got = append(got, a.ID)
			}
			equal(t, fmt.Sprintf("ActivityList(%+v) IDs", tc.f), got, tc.want)
		})
	}
}

func testActivityListDefaultLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	var last int64
	ok(t, s.Tx(ctx, func(tx store.Store) error {
		for i := range 105 {
			a, err := tx.ActivityCreate(ctx, store.Activity{Cluster: "web", Kind: "scale", Step: i})
			if err != nil {
				return err
			}
			last = a.ID
		}
		return nil
	}))
	got := must(s.ActivityList(ctx, store.ActivityFilter{}))(t)
	if len(got) != 100 {
		t.Fatalf("ActivityList with Limit 0: %d activities, want 100", len(got))
	}
	if got[0].ID != last || got[0].Step != 104 {
		t.Fatalf("ActivityList: first is %d (step %d), want the newest %d", got[0].ID, got[0].Step, last)
	}
	for i := 1; i < len(got); i++ {
		if got[i].ID >= got[i-1].ID {
			t.Fatalf("ActivityList: not newest first at %d: %d after %d", i, got[i].ID, got[i-1].ID)
		}
	}
}

func testActivityUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := must(s.ActivityCreate(ctx, store.Activity{
		Cluster: "web", Kind: "deploy_node", Cause: "scale out", Status: store.ActivityPending,
		Params: json.RawMessage(`{"count":1}`), Output: "queued",
	}))(t)

	// Zero update: nothing changes.
	equal(t, "ActivityUpdate(zero)", must(s.ActivityUpdate(ctx, a.ID, store.ActivityUpdate{}))(t), a)

	started := base
	want := a
	want.Status, want.StartedAt = store.ActivityRunning, ms(started)
	got := must(s.ActivityUpdate(ctx, a.ID, store.ActivityUpdate{Status: store.ActivityRunning, StartedAt: started}))(t)
	equal(t, "ActivityUpdate(start)", got, want)

	finished := base.Add(90 * time.Second)
	want.Status, want.Error, want.FinishedAt = store.ActivityFailed, "exit 1", ms(finished)
	got = must(s.ActivityUpdate(ctx, a.ID, store.ActivityUpdate{Status: store.ActivityFailed, Error: "exit 1", FinishedAt: finished}))(t)
	equal(t, "ActivityUpdate(finish)", got, want) // Output and StartedAt left alone
	want.Output = "all output"
	got = must(s.ActivityUpdate(ctx, a.ID, store.ActivityUpdate{Output: "all output"}))(t)
	equal(t, "ActivityUpdate(output)", got, want)
	equal(t, "ActivityGet", must(s.ActivityGet(ctx, a.ID))(t), want)

	_, err := s.ActivityUpdate(ctx, a.ID+1000, store.ActivityUpdate{Status: store.ActivitySucceeded})
	wantErr(t, "ActivityUpdate(missing)", err, store.ErrNotFound)
	_, err = s.ActivityUpdate(ctx, a.ID+1000, store.ActivityUpdate{})
	wantErr(t, "ActivityUpdate(missing, zero)", err, store.ErrNotFound)
}

// --- clusters ---

func testClusterCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.ClusterGet(ctx, "web")
	wantErr(t, "ClusterGet(missing)", err, store.ErrNotFound)
	equal(t, "ClusterList(empty)", len(must(s.ClusterList(ctx))(t)), 0)

	web := must(s.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 1, Max: 10, Desired: 3}))(t)
	if web.Name != "web" || web.Min != 1 || web.Max != 10 || web.Desired != 3 {
		t.Fatalf("ClusterUpsert(create) = %+v", web)
	}
	recent(t, "CreatedAt", web.CreatedAt)
	recent(t, "UpdatedAt", web.UpdatedAt)
	equal(t, "ClusterGet", must(s.ClusterGet(ctx, "web"))(t), web)
	must(s.ClusterUpsert(ctx, store.Cluster{Name: "api", Min: 0, Max: 2, Desired: 0}))(t)
	must(s.ClusterUpsert(ctx, store.Cluster{Name: "batch", Min: 0, Max: 5, Desired: 5}))(t)

	var names []string
	for _, c := range must(s.ClusterList(ctx))(t) {
		names = append(names, c.Name)
	}
	equal(t, "ClusterList names", names, []string{"api", "batch", "web"})

	c := must(s.ClusterSetDesired(ctx, "web", 7))(t)
	if c.Desired != 7 || c.Min != 1 || c.Max != 10 || !c.CreatedAt.Equal(web.CreatedAt) {
		t.Fatalf("ClusterSetDesired = %+v", c)
	}
	if c.UpdatedAt.Before(web.UpdatedAt) {
		t.Fatalf("ClusterSetDesired: UpdatedAt went back from %v to %v", web.UpdatedAt, c.UpdatedAt)
	}
	equal(t, "ClusterGet after SetDesired", must(s.ClusterGet(ctx, "web"))(t), c)
	_, err = s.ClusterSetDesired(ctx, "nope", 1)
	wantErr(t, "ClusterSetDesired(missing)", err, store.ErrNotFound)

	// Delete removes the row, not the nodes.
	must(s.NodeCreate(ctx, store.Node{ID: "web-1", Cluster: "web", State: store.NodePending}))(t)
	ok(t, s.ClusterDelete(ctx, "web"))
	_, err = s.ClusterGet(ctx, "web")
	wantErr(t, "ClusterGet(deleted)", err, store.ErrNotFound)
	equal(t, "ClusterList after delete", len(must(s.ClusterList(ctx))(t)), 2)
	must(s.NodeGet(ctx, "web-1"))(t)
	equal(t, "NodeEvents after ClusterDelete", len(must(s.NodeEvents(ctx, "web-1"))(t)), 1)
}

func testClusterUpsertClamp(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name             string
		min, max, upsert int // new bounds and the Desired passed to the update
		want             int
	}{
		{"kept", 1, 10, 9, 5},
		{"kept at wider bounds", 0, 100, 0, 5},
		{"kept at min", 5, 8, 1, 5},
		{"kept at max", 2, 5, 1, 5},
		{"raised to min", 6, 10, 5, 6},
		{"lowered to max", 1, 3, 5, 3},
		{"pinned", 4, 4, 5, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "c-" + tc.name
			created := must(s.ClusterUpsert(ctx, store.Cluster{Name: name, Min: 1, Max: 10, Desired: 5}))(t)
			got := must(s.ClusterUpsert(ctx, store.Cluster{Name: name, Min: tc.min, Max: tc.max, Desired: tc.upsert}))(t)
			want := store.Cluster{Name: name, Min: tc.min, Max: tc.max, Desired: tc.want, CreatedAt: created.CreatedAt, UpdatedAt: got.UpdatedAt}
			equal(t, "ClusterUpsert(update)", got, want)
			if got.UpdatedAt.Before(created.UpdatedAt) {
				t.Fatalf("UpdatedAt went back from %v to %v", created.UpdatedAt, got.UpdatedAt)
			}
			equal(t, "ClusterGet", must(s.ClusterGet(ctx, name))(t), want)
		})
	}
	// A scale-out survives a restart's upsert of the same bounds.
	must(s.ClusterUpsert(ctx, store.Cluster{Name: "restart", Min: 1, Max: 10, Desired: 1}))(t)
	must(s.ClusterSetDesired(ctx, "restart", 8))(t)
	c := must(s.ClusterUpsert(ctx, store.Cluster{Name: "restart", Min: 1, Max: 10, Desired: 1}))(t)
	equal(t, "Desired after restart", c.Desired, 8)
}

func testClusterStopped(t *testing.T, s store.Store) {
	ctx := t.Context()
	web := must(s.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 1, Max: 10, Desired: 3}))(t)
	if web.Stopped || web.Target() != 3 {
		t.Fatalf("a new cluster: %+v (target %d), want started with target 3", web, web.Target())
	}
	c := must(s.ClusterSetStopped(ctx, "web", true))(t)
	if !c.Stopped || c.Desired != 3 || c.Target() != 0 || c.UpdatedAt.Before(web.UpdatedAt) {
		t.Fatalf("ClusterSetStopped(true) = %+v (target %d), want stopped, desired 3 kept, target 0", c, c.Target())
	}
	equal(t, "ClusterGet after stop", must(s.ClusterGet(ctx, "web"))(t), c)
	// A server restart (upsert of the configured bounds) keeps it stopped,
	// and a scale while stopped is kept for the start.
	c = must(s.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 1, Max: 10, Desired: 1}))(t)
	if !c.Stopped || c.Desired != 3 {
		t.Fatalf("ClusterUpsert of a stopped cluster = %+v, want it still stopped with desired 3", c)
	}
	must(s.ClusterSetDesired(ctx, "web", 5))(t)
	equal(t, "ClusterList stopped", must(s.ClusterList(ctx))(t)[0].Stopped, true)
	c = must(s.ClusterSetStopped(ctx, "web", false))(t)
	if c.Stopped || c.Desired != 5 || c.Target() != 5 {
		t.Fatalf("ClusterSetStopped(false) = %+v, want started with desired 5", c)
	}
	_, err := s.ClusterSetStopped(ctx, "nope", true)
	wantErr(t, "ClusterSetStopped(missing)", err, store.ErrNotFound)
	// Created stopped.
	c = must(s.ClusterUpsert(ctx, store.Cluster{Name: "api", Min: 0, Max: 2, Stopped: true}))(t)
	equal(t, "created stopped", c.Stopped, true)
	// In a transaction that rolls back, the flag does not change.
	_ = s.Tx(ctx, func(tx store.Store) error {
		must(tx.ClusterSetStopped(ctx, "web", true))(t)
		return errors.New("roll back")
	})
	equal(t, "stopped after a rollback", must(s.ClusterGet(ctx, "web"))(t).Stopped, false)
}

func testDialect(t *testing.T, s store.Store) {
	if d := s.Dialect(); d != "sqlite" && d != "postgres" {
		t.Fatalf("Dialect() = %q, want sqlite or postgres", d)
	}
}

// --- leader ---

func testLeader(t *testing.T, s store.Store) {
	ctx := t.Context()
	const ttl = 10 * time.Second
	at := func(d time.Duration) time.Time { return base.Add(d) }
	steps := []struct {
		name   string
		holder string
		now    time.Duration
		want   bool
	}{
		{"a elected", "a", 0, true},
		{"b refused while a holds", "b", 5 * time.Second, false},
		{"a renews", "a", 5 * time.Second, true}, // until 15s
		{"b refused before expiry", "b", 14 * time.Second, false},
		{"b elected at expiry", "b", 15 * time.Second, true}, // until 25s
		{"a refused", "a", 16 * time.Second, false},
		{"b renews", "b", 20 * time.Second, true}, // until 30s
		{"a refused after b renewed", "a", 26 * time.Second, false},
	}
	for _, st := range steps {
		got := must(s.LeaderAttemptElect(ctx, "leader", st.holder, at(st.now), ttl))(t)
		if got != st.want {
			t.Fatalf("%s: LeaderAttemptElect(%s, +%v) = %v, want %v", st.name, st.holder, st.now, got, st.want)
		}
	}
	// Another lease name is independent.
	if !must(s.LeaderAttemptElect(ctx, "other", "a", at(26*time.Second), ttl))(t) {
		t.Fatal("LeaderAttemptElect(other lease) = false, want true")
	}
	// Resigning a lease one does not hold changes nothing.
	ok(t, s.LeaderResign(ctx, "leader", "a"))
	if must(s.LeaderAttemptElect(ctx, "leader", "a", at(27*time.Second), ttl))(t) {
		t.Fatal("a elected after resigning a lease held by b")
	}
	// The holder resigns: another is elected at once.
	ok(t, s.LeaderResign(ctx, "leader", "b"))
	if !must(s.LeaderAttemptElect(ctx, "leader", "a", at(27*time.Second), ttl))(t) {
		t.Fatal("a not elected after b resigned")
	}
	ok(t, s.LeaderResign(ctx, "nope", "a")) // no lease: no error
}

// --- meta ---

func testMeta(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.MetaGet(ctx, "cluster_id")
	wantErr(t, "MetaGet(missing)", err, store.ErrNotFound)
	equal(t, "MetaSetIfAbsent(new)", must(s.MetaSetIfAbsent(ctx, "cluster_id", "abc"))(t), "abc")
	equal(t, "MetaSetIfAbsent(existing)", must(s.MetaSetIfAbsent(ctx, "cluster_id", "def"))(t), "abc")
	equal(t, "MetaGet", must(s.MetaGet(ctx, "cluster_id"))(t), "abc")
	equal(t, "MetaSetIfAbsent(other)", must(s.MetaSetIfAbsent(ctx, "other", ""))(t), "")
	equal(t, "MetaGet(other)", must(s.MetaGet(ctx, "other"))(t), "")
}

// --- nodes ---

func testNodeCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	n := store.Node{
		ID: "web-1", Cluster: "web", State: store.NodeProvisioning, MachineID: "m-123", Address: "10.0.0.1:8080",
		LaunchActivity: 42, LaunchIndex: 3, Maintenance: true, Reason: "scale out",
		Meta:      map[string]string{"pid": "1234", "started": "2025-03-14T15:09:26Z"},
		CreatedAt: base, InServiceAt: base.Add(time.Minute), TerminatedAt: base.Add(time.Hour),
	}
	got := must(s.NodeCreate(ctx, n))(t)
	recent(t, "UpdatedAt", got.UpdatedAt)
	want := n
	want.CreatedAt, want.UpdatedAt = ms(n.CreatedAt), got.UpdatedAt
	want.InServiceAt, want.TerminatedAt = ms(n.InServiceAt), ms(n.TerminatedAt)
	equal(t, "NodeCreate", got, want)
	equal(t, "NodeGet", must(s.NodeGet(ctx, "web-1"))(t), want)

	evs := must(s.NodeEvents(ctx, "web-1"))(t)
	if len(evs) != 1 || evs[0].NodeID != "web-1" || evs[0].From != "" || evs[0].To != store.NodeProvisioning || evs[0].Reason != "scale out" {
		t.Fatalf("NodeEvents after create = %+v", evs)
	}
	recent(t, "event At", evs[0].At)

	// Zero values round-trip; CreatedAt is set when zero.
	z := must(s.NodeCreate(ctx, store.Node{ID: "web-2", Cluster: "web", State: store.NodePending}))(t)
	recent(t, "CreatedAt", z.CreatedAt)
	if z.Meta != nil || z.Maintenance || !z.InServiceAt.IsZero() || !z.TerminatedAt.IsZero() || z.MachineID != "" {
		t.Fatalf("NodeCreate(zero fields) = %+v", z)
	}
	equal(t, "NodeGet(zero fields)", must(s.NodeGet(ctx, "web-2"))(t), z)

	_, err := s.NodeGet(ctx, "nope")
	wantErr(t, "NodeGet(missing)", err, store.ErrNotFound)
	equal(t, "NodeEvents(missing)", len(must(s.NodeEvents(ctx, "nope"))(t)), 0)
}

func testNodeCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	first := must(s.NodeCreate(ctx, store.Node{ID: "web-1", Cluster: "web", State: store.NodePending, LaunchActivity: 7, LaunchIndex: 0}))(t)

	tests := []struct {
		name     string
		n        store.Node
		conflict bool
	}{
		{"same ID", store.Node{ID: "web-1", Cluster: "web", State: store.NodePending, LaunchActivity: 8}, true},
		{"same launch", store.Node{ID: "web-9", Cluster: "web", State: store.NodePending, LaunchActivity: 7, LaunchIndex: 0}, true},
		{"same launch, other index", store.Node{ID: "web-2", Cluster: "web", State: store.NodePending, LaunchActivity: 7, LaunchIndex: 1}, false},
		{"other launch, same index", store.Node{ID: "web-3", Cluster: "web", State: store.NodePending, LaunchActivity: 8, LaunchIndex: 0}, false},
		{"no launch", store.Node{ID: "web-4", Cluster: "web", State: store.NodePending}, false},
		{"no launch again", store.Node{ID: "web-5", Cluster: "web", State: store.NodePending}, false},
	}
	for _, tc := range tests {
		_, err := s.NodeCreate(ctx, tc.n)
		if tc.conflict {
			wantErr(t, "NodeCreate("+tc.name+")", err, store.ErrConflict)
		} else if err != nil {
			t.Fatalf("NodeCreate(%s): %v", tc.name, err)
		}
	}
	// The failed creates left nothing behind.
	equal(t, "NodeGet(first)", must(s.NodeGet(ctx, "web-1"))(t), first)
	equal(t, "events of first", len(must(s.NodeEvents(ctx, "web-1"))(t)), 1)
	_, err := s.NodeGet(ctx, "web-9")
	wantErr(t, "NodeGet(conflicting launch)", err, store.ErrNotFound)
	equal(t, "events of web-9", len(must(s.NodeEvents(ctx, "web-9"))(t)), 0)
	equal(t, "NodeList", len(must(s.NodeList(ctx, store.NodeFilter{}))(t)), 5)
}

func testNodeList(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, n := range []store.Node{
		// Inserted out of order: the list is by CreatedAt, then ID.
		{ID: "web-c", Cluster: "web", State: store.NodeInService, CreatedAt: base.Add(2 * time.Second)},
		{ID: "web-b", Cluster: "web", State: store.NodeDraining, CreatedAt: base.Add(time.Second)},
		{ID: "web-a", Cluster: "web", State: store.NodeInService, CreatedAt: base.Add(time.Second)},
		{ID: "db-1", Cluster: "db", State: store.NodePending, CreatedAt: base.Add(3 * time.Second)},
		{ID: "db-0", Cluster: "db", State: store.NodeTerminated, CreatedAt: base},
	} {
		must(s.NodeCreate(ctx, n))(t)
	}
	tests := []struct {
		name string
		f    store.NodeFilter
		want []string
	}{
		{"all", store.NodeFilter{}, []string{"db-0", "web-a", "web-b", "web-c", "db-1"}},
		{"cluster", store.NodeFilter{Cluster: "web"}, []string{"web-a", "web-b", "web-c"}},
		{"state", store.NodeFilter{States: []store.NodeState{store.NodeInService}}, []string{"web-a", "web-c"}},
		{"states", store.NodeFilter{States: []store.NodeState{store.NodePending, store.NodeDraining}}, []string{"web-b", "db-1"}},
		{"cluster+states", store.NodeFilter{Cluster: "db", States: []store.NodeState{store.NodeTerminated, store.NodeInService}}, []string{"db-0"}},
		{"no match", store.NodeFilter{Cluster: "nope"}, []string{}},
		{"no state match", store.NodeFilter{States: []store.NodeState{store.NodeFailed}}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := []string{}
			for _, n := range must(s.NodeList(ctx, tc.f))(t) {
				got = append(got, n.ID)
			}
			equal(t, fmt.Sprintf("NodeList(%+v) IDs", tc.f), got, tc.want)
		})
	}
}

func testNodeNextSeq(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i := int64(1); i <= 3; i++ {
		equal(t, "NodeNextSeq(web)", must(s.NodeNextSeq(ctx, "web"))(t), i)
	}
	equal(t, "NodeNextSeq(db)", must(s.NodeNextSeq(ctx, "db"))(t), int64(1))
	equal(t, "NodeNextSeq(web)", must(s.NodeNextSeq(ctx, "web"))(t), int64(4))
}

func testNodeNextSeqConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, each = 8, 25
	var (
		mu   sync.Mutex
		seen []int64
		errs []error
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range each {
				n, err := s.NodeNextSeq(ctx, "web")
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					seen = append(seen, n)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent NodeNextSeq: %d errors, first: %v", len(errs), errs[0])
	}
	slices.Sort(seen)
	for i, n := range seen {
		if n != int64(i+1) {
			t.Fatalf("concurrent NodeNextSeq: sorted results %v, want 1..%d each once", seen, workers*each)
		}
	}
}

func testNodeUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.NodeUpdate(ctx, store.Node{ID: "nope", Cluster: "web", State: store.NodePending})
	wantErr(t, "NodeUpdate(missing)", err, store.ErrNotFound)

	n := must(s.NodeCreate(ctx, store.Node{ID: "web-1", Cluster: "web", State: store.NodePending, Reason: "scale out", LaunchActivity: 1}))(t)

	// Same state: fields stored, no event.
	n.MachineID, n.Address, n.Meta = "m-1", "10.0.0.1:80", map[string]string{"pid": "99"}
	got := must(s.NodeUpdate(ctx, n))(t)
	if got.UpdatedAt.Before(n.UpdatedAt) {
		t.Fatalf("UpdatedAt went back from %v to %v", n.UpdatedAt, got.UpdatedAt)
	}
	recent(t, "UpdatedAt", got.UpdatedAt)
	want := n
	want.UpdatedAt = got.UpdatedAt
	equal(t, "NodeUpdate(same state)", got, want)
	equal(t, "NodeGet", must(s.NodeGet(ctx, "web-1"))(t), want)
	equal(t, "events after same-state update", len(must(s.NodeEvents(ctx, "web-1"))(t)), 1)

	// State changes are recorded with their reason, oldest first.
	path := []struct {
		state  store.NodeState
		reason string
	}{
		{store.NodeProvisioning, "machine requested"},
		{store.NodeProvisioning, "still provisioning"}, // no change: no event
		{store.NodeConfiguring, "machine up"},
		{store.NodeInService, "healthy"},
		{store.NodeDraining, "scale in"},
		{store.NodeTerminated, "removed"},
	}
	cur := got
	for _, p := range path {
		cur.State, cur.Reason = p.state, p.reason
		if p.state == store.NodeInService {
			cur.InServiceAt = base
		}
		if p.state == store.NodeTerminated {
			cur.TerminatedAt, cur.Maintenance = base.Add(time.Hour), true
		}
		cur = must(s.NodeUpdate(ctx, cur))(t)
	}
	final := must(s.NodeGet(ctx, "web-1"))(t)
	equal(t, "NodeGet after updates", final, cur)
	if final.State != store.NodeTerminated || final.Reason != "removed" || !final.Maintenance || final.LaunchActivity != 1 {
		t.Fatalf("NodeGet after updates = %+v", final)
	}
	sameTime(t, "InServiceAt", final.InServiceAt, base)
	sameTime(t, "TerminatedAt", final.TerminatedAt, base.Add(time.Hour))
	sameTime(t, "CreatedAt", final.CreatedAt, n.CreatedAt)

	type ev struct {
		From, To store.NodeState
		Reason   string
	}
	var evs []ev
	for _, e := range must(s.NodeEvents(ctx, "web-1"))(t) {
		if e.NodeID != "web-1" {
			t.Fatalf("event of node %q", e.NodeID)
		}
		recent(t, "event At", e.At)
		evs = append(evs, ev{e.From, e.To, e.Reason})
	}
	equal(t, "NodeEvents", evs, []ev{
		{"", store.NodePending, "scale out"},
		{store.NodePending, store.NodeProvisioning, "machine requested"},
		{store.NodeProvisioning, store.NodeConfiguring, "machine up"},
		{store.NodeConfiguring, store.NodeInService, "healthy"},
		{store.NodeInService, store.NodeDraining, "scale in"},
		{store.NodeDraining, store.NodeTerminated, "removed"},
	})
}

// --- samples ---

func testSampleList(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	var in []store.Sample
	for i := range 5 {
		in = append(in,
			store.Sample{Cluster: "web", Counter: "cpu", At: at(i), Value: float64(10 * i), Reporting: 2},
			store.Sample{Cluster: "web", Counter: "cpu", Node: "web-1", At: at(i), Value: float64(i)},
		)
	}
	in = append(in,
		store.Sample{Cluster: "web", Counter: "cpu", Node: "web-2", At: at(4), Value: 123, Err: "timeout"},
		store.Sample{Cluster: "web", Counter: "mem", At: at(1), Value: 0.5},
		store.Sample{Cluster: "db", Counter: "cpu", At: at(1), Value: 99},
	)
	ok(t, s.SampleInsert(ctx, in))
	ok(t, s.SampleInsert(ctx, nil))

	// Stored error samples come back without a value.
	stored := slices.Clone(in)
	stored[10].Value = 0
	for i := range stored {
		stored[i].At = ms(stored[i].At)
	}
	aggr := func(is ...int) []store.Sample {
		var out []store.Sample
		for _, i := range is {
			out = append(out, stored[2*i])
		}
		return out
	}
	tests := []struct {
		name string
		f    store.SampleFilter
		want []store.Sample
	}{
		{"all of counter", store.SampleFilter{Cluster: "web", Counter: "cpu"}, stored[:11]},
		{"aggregate", store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true}, aggr(0, 1, 2, 3, 4)},
		{"since", store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true, Since: at(3)}, aggr(3, 4)},
		{"limit keeps newest", store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true, Limit: 2}, aggr(3, 4)},
		{"limit larger than series", store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true, Limit: 50}, aggr(0, 1, 2, 3, 4)},
		{"since and limit", store.SampleFilter{Cluster: "web", Counter: "cpu", AggregateOnly: true, Since: at(1), Limit: 3}, aggr(2, 3, 4)},
		{"limit with nodes", store.SampleFilter{Cluster: "web", Counter: "cpu", Limit: 3}, stored[8:11]},
		{"other counter", store.SampleFilter{Cluster: "web", Counter: "mem"}, stored[11:12]},
		{"other cluster", store.SampleFilter{Cluster: "db", Counter: "cpu"}, stored[12:13]},
		{"no match", store.SampleFilter{Cluster: "web", Counter: "disk"}, []store.Sample{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := must(s.SampleList(ctx, tc.f))(t)
			// Samples of the same instant may come in any order: compare as sets
			// per instant, and check the order of instants.
			for i := 1; i < len(got); i++ {
				if got[i].At.Before(got[i-1].At) {
					t.Fatalf("SampleList(%+v): not oldest first at %d", tc.f, i)
				}
			}
			key := func(a, b store.Sample) int {
				if c := a.At.Compare(b.At); c != 0 {
					return c
				}
				if a.Node < b.Node {
					return -1
				} else if a.Node > b.Node {
					return 1
				}
				return 0
			}
			want := slices.Clone(tc.want)
			slices.SortStableFunc(got, key)
			slices.SortStableFunc(want, key)
			equal(t, fmt.Sprintf("SampleList(%+v)", tc.f), got, want)
		})
	}
	errSample := must(s.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu", Since: at(4)}))(t)
	for _, sm := range errSample {
		if sm.Node == "web-2" && (sm.OK() || sm.Value != 0 || sm.Err != "timeout") {
			t.Fatalf("error sample = %+v, want Err and no value", sm)
		}
	}

	// Extreme values round-trip.
	for _, v := range []float64{-1.5, math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300} {
		ok(t, s.SampleInsert(ctx, []store.Sample{{Cluster: "x", Counter: "v", At: base, Value: v}}))
		got := must(s.SampleList(ctx, store.SampleFilter{Cluster: "x", Counter: "v", Limit: 1}))(t)
		if len(got) != 1 || got[0].Value != v {
			t.Fatalf("value %v stored, got %+v", v, got)
		}
		_, err := s.SamplePrune(ctx, base.Add(time.Second))
		ok(t, err)
	}
}

func testSamplePrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	var in []store.Sample
	for i := range 10 {
		in = append(in, store.Sample{Cluster: "web", Counter: "cpu", At: base.Add(time.Duration(i) * time.Minute), Value: float64(i)})
	}
	ok(t, s.SampleInsert(ctx, in))
	equal(t, "SamplePrune(before all)", must(s.SamplePrune(ctx, base))(t), int64(0))
	equal(t, "SamplePrune(+4m)", must(s.SamplePrune(ctx, base.Add(4*time.Minute)))(t), int64(4))
	equal(t, "SamplePrune(+4m again)", must(s.SamplePrune(ctx, base.Add(4*time.Minute)))(t), int64(0))
	got := must(s.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu"}))(t)
	if len(got) != 6 || got[0].Value != 4 {
		t.Fatalf("SampleList after prune = %+v, want values 4..9", got)
	}
	equal(t, "SamplePrune(after all)", must(s.SamplePrune(ctx, base.Add(time.Hour)))(t), int64(6))
}

// --- servers ---

func testServer(t *testing.T, s store.Store) {
	ctx := t.Context()
	equal(t, "ServerList(empty)", len(must(s.ServerList(ctx))(t)), 0)
	a := store.Server{ID: "a", Hostname: "host-a", PID: 100, StartedAt: base, HeartbeatAt: base.Add(10 * time.Second)}
	b := store.Server{ID: "b", Hostname: "host-b", PID: 200, StartedAt: base, HeartbeatAt: base.Add(20 * time.Second)}
	ok(t, s.ServerHeartbeat(ctx, a))
	ok(t, s.ServerHeartbeat(ctx, b))
	norm := func(v store.Server) store.Server {
		v.StartedAt, v.HeartbeatAt = ms(v.StartedAt), ms(v.HeartbeatAt)
		return v
	}
	equal(t, "ServerList", must(s.ServerList(ctx))(t), []store.Server{norm(b), norm(a)})

	a.HeartbeatAt, a.PID = base.Add(30*time.Second), 101
	ok(t, s.ServerHeartbeat(ctx, a))
	equal(t, "ServerList after heartbeat", must(s.ServerList(ctx))(t), []store.Server{norm(a), norm(b)})
}

// --- times ---

func testTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	zones := []*time.Location{time.UTC, time.FixedZone("minus", -7*3600-30*60), time.FixedZone("plus", 13*3600)}
	for i, loc := range zones {
		tm := time.Date(2024, 2, 29, 23, 59, 59, 999_999_999, loc)
		id := fmt.Sprintf("n-%d", i)
		n := must(s.NodeCreate(ctx, store.Node{ID: id, Cluster: "web", State: store.NodePending, CreatedAt: tm, InServiceAt: tm.Add(time.Millisecond)}))(t)
		got := must(s.NodeGet(ctx, id))(t)
		equal(t, "NodeGet", got, n)
		sameTime(t, "CreatedAt", got.CreatedAt, tm)
		sameTime(t, "InServiceAt", got.InServiceAt, tm.Add(time.Millisecond))
		sameTime(t, "TerminatedAt", got.TerminatedAt, time.Time{})
		if got.CreatedAt.Nanosecond() != 999_000_000 {
			t.Fatalf("CreatedAt %v: want milliseconds kept, the rest dropped", got.CreatedAt)
		}
	}
	ok(t, s.TriggerStatePut(ctx, store.TriggerState{Cluster: "web", Trigger: "t", PastSince: base}))
	ts := must(s.TriggerStateGet(ctx, "web", "t"))(t)
	sameTime(t, "PastSince", ts.PastSince, base)
	sameTime(t, "LastFiredAt", ts.LastFiredAt, time.Time{})
}

// --- trigger states ---

func testTriggerState(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.TriggerStateGet(ctx, "web", "cpu-high")
	wantErr(t, "TriggerStateGet(missing)", err, store.ErrNotFound)
	equal(t, "TriggerStateList(empty)", len(must(s.TriggerStateList(ctx, ""))(t)), 0)

	st := store.TriggerState{
		Cluster: "web", Trigger: "cpu-high", PastSince: base, LastValue: 87.5,
		LastFiredAt: base.Add(-time.Hour), CooldownUntil: base.Add(5 * time.Minute), Firings: 3,
	}
	norm := func(v store.TriggerState) store.TriggerState {
		v.PastSince, v.LastFiredAt, v.CooldownUntil = ms(v.PastSince), ms(v.LastFiredAt), ms(v.CooldownUntil)
		return v
	}
	ok(t, s.TriggerStatePut(ctx, st))
	equal(t, "TriggerStateGet", must(s.TriggerStateGet(ctx, "web", "cpu-high"))(t), norm(st))

	// Put replaces every field, zeroing the ones now zero.
	st2 := store.TriggerState{Cluster: "web", Trigger: "cpu-high", LastValue: 12, Firings: 4, LastFiredAt: base}
	ok(t, s.TriggerStatePut(ctx, st2))
	equal(t, "TriggerStateGet after replace", must(s.TriggerStateGet(ctx, "web", "cpu-high"))(t), norm(st2))

	other := store.TriggerState{Cluster: "web", Trigger: "cpu-low", LastValue: -1}
	db := store.TriggerState{Cluster: "db", Trigger: "cpu-high", LastValue: 1}
	ok(t, s.TriggerStatePut(ctx, other))
	ok(t, s.TriggerStatePut(ctx, db))
	list := func(cluster string) []string {
		var out []string
		for _, v := range must(s.TriggerStateList(ctx, cluster))(t) {
			out = append(out, v.Cluster+"/"+v.Trigger)
		}
		slices.Sort(out)
		return out
	}
	equal(t, "TriggerStateList(web)", list("web"), []string{"web/cpu-high", "web/cpu-low"})
	equal(t, "TriggerStateList(db)", list("db"), []string{"db/cpu-high"})
	equal(t, "TriggerStateList(all)", list(""), []string{"db/cpu-high", "web/cpu-high", "web/cpu-low"})
	equal(t, "TriggerStateList(none)", len(list("nope")), 0)
}

// --- transactions ---

func testTxCommit(t *testing.T, s store.Store) {
	ctx := t.Context()
	var actID int64
	ok(t, s.Tx(ctx, func(tx store.Store) error {
		if _, err := tx.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 0, Max: 5, Desired: 2}); err != nil {
			return err
		}
		a, err := tx.ActivityCreate(ctx, store.Activity{Cluster: "web", Kind: "scale", Status: store.ActivityPending})
		if err != nil {
			return err
		}
		actID = a.ID
		if _, err := tx.NodeCreate(ctx, store.Node{ID: "web-1", Cluster: "web", State: store.NodePending, LaunchActivity: a.ID}); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if c, err := tx.ClusterGet(ctx, "web"); err != nil || c.Desired != 2 {
			return fmt.Errorf("ClusterGet in tx = %+v, %w", c, err)
		}
		n, err := tx.NodeGet(ctx, "web-1")
		if err != nil {
			return err
		}
		n.State = store.NodeProvisioning
		if _, err := tx.NodeUpdate(ctx, n); err != nil {
			return err
		}
		_, err = tx.NodeNextSeq(ctx, "web")
		return err
	}))
	must(s.ClusterGet(ctx, "web"))(t)
	must(s.ActivityGet(ctx, actID))(t)
	n := must(s.NodeGet(ctx, "web-1"))(t)
	equal(t, "node state", n.State, store.NodeProvisioning)
	equal(t, "events", len(must(s.NodeEvents(ctx, "web-1"))(t)), 2)
	equal(t, "NodeNextSeq after tx", must(s.NodeNextSeq(ctx, "web"))(t), int64(2))
}

func testTxRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(s.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 0, Max: 5, Desired: 1}))(t)
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx store.Store) error {
		if _, err := tx.ClusterSetDesired(ctx, "web", 4); err != nil {
			return err
		}
		if _, err := tx.NodeCreate(ctx, store.Node{ID: "web-1", Cluster: "web", State: store.NodePending}); err != nil {
			return err
		}
		if _, err := tx.ActivityCreate(ctx, store.Activity{Cluster: "web", Kind: "scale"}); err != nil {
			return err
		}
		if _, err := tx.MetaSetIfAbsent(ctx, "k", "v"); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", boom)
	})
	wantErr(t, "Tx", err, boom)
	equal(t, "desired after rollback", must(s.ClusterGet(ctx, "web"))(t).Desired, 1)
	_, err = s.NodeGet(ctx, "web-1")
	wantErr(t, "NodeGet after rollback", err, store.ErrNotFound)
	equal(t, "events after rollback", len(must(s.NodeEvents(ctx, "web-1"))(t)), 0)
	equal(t, "activities after rollback", len(must(s.ActivityList(ctx, store.ActivityFilter{}))(t)), 0)
	_, err = s.MetaGet(ctx, "k")
	wantErr(t, "MetaGet after rollback", err, store.ErrNotFound)

	// A store error inside the transaction propagates and rolls back too.
	err = s.Tx(ctx, func(tx store.Store) error {
		if _, err := tx.ClusterSetDesired(ctx, "web", 3); err != nil {
			return err
		}
		_, err := tx.NodeGet(ctx, "missing")
		return err
	})
	wantErr(t, "Tx(NodeGet missing)", err, store.ErrNotFound)
	equal(t, "desired after second rollback", must(s.ClusterGet(ctx, "web"))(t).Desired, 1)
}

func testTxNested(t *testing.T, s store.Store) {
	ctx := t.Context()
	var nestedErr error
	called := false
	err := s.Tx(ctx, func(tx store.Store) error {
		nestedErr = tx.Tx(ctx, func(store.Store) error {
			called = true
			return nil
		})
		return nil
	})
	ok(t, err)
	if nestedErr == nil || called {
		t.Fatalf("nested Tx: err %v, fn called %v; want an error and no call", nestedErr, called)
	}
	// The store still works.
	must(s.ClusterUpsert(ctx, store.Cluster{Name: "web", Max: 1}))(t)
}
