package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	afake "github.com/goscaler/goscaler/internal/action/fake"
	_ "github.com/goscaler/goscaler/internal/action/fleet"
	_ "github.com/goscaler/goscaler/internal/action/script"
	"github.com/goscaler/goscaler/internal/config"
	cfake "github.com/goscaler/goscaler/internal/counter/fake"
	"github.com/goscaler/goscaler/internal/jobs"
	lbfake "github.com/goscaler/goscaler/internal/lb/fake"
	pfake "github.com/goscaler/goscaler/internal/provider/fake"
	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

// testOwner tags the machines of the controllers under test.
const testOwner = "gs-test"

// manualClock is a Clock that moves only when told to.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one controller under test: real SQLite store, real River queue on
// it, fake plugins registered under the test's instance name.
type env struct {
	t        testing.TB
	instance string
	dir      string
	cfg      *config.Config
	st       *sqlstore.Store
	ctl      *Controller
	q        jobs.Queue
	clock    Clock
	poll     time.Duration
	log      *slog.Logger
	dryRun   bool

	prov *pfake.Provider
	bal  *lbfake.Balancer
	src  *cfake.Source
	act  *afake.Action

	stopRun func()
}

type envOption func(*env)

// withClock makes the controller use clock.
func withClock(c Clock) envOption { return func(e *env) { e.clock = c } }

// withDryRun makes the controller a dry run (server --dry-run).
func withDryRun() envOption { return func(e *env) { e.dryRun = true } }

// withPollInterval sets the queue's poll interval (0: the production default).
func withPollInterval(d time.Duration) envOption { return func(e *env) { e.poll = d } }

// instanceName turns a test name into a fake instance name.
func instanceName(t testing.TB) string {
	return strings.NewReplacer("/", ".", " ", "_", `"`, "_").Replace(t.Name())
}

// newEnv parses yamlSrc (where {{I}} stands for the fake instance name), opens
// the store, builds the controller, syncs it and opens the queue, but does not
// start anything: call start.
func newEnv(t testing.TB, yamlSrc string, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, instance: instanceName(t), dir: t.TempDir(), clock: realClock{}, poll: 50 * time.Millisecond}
	for _, o := range opts {
		o(e)
	}
	e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("GOSCALER_TEST_LOG") != "" {
		e.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	e.prov, e.bal, e.src, e.act = pfake.Get(e.instance), lbfake.Get(e.instance), cfake.Get(e.instance), afake.Get(e.instance)
	t.Cleanup(func() {
		pfake.Forget(e.instance)
		lbfake.Forget(e.instance)
		cfake.Forget(e.instance)
		afake.Forget(e.instance)
	})
	cfg, err := config.Parse("test.yaml", []byte(strings.ReplaceAll(yamlSrc, "{{I}}", e.instance)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.cfg = cfg
	e.st, err = sqlstore.Open(context.Background(), "", e.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	e.build()
	return e
}

// build makes a new controller and queue on the env's store (a server start).
func (e *env) build() {
	t := e.t
	t.Helper()
	ctx := context.Background()
	ctl, err := New(ctx, Options{Config: e.cfg, Store: e.st, ServerID: "srv-test", Owner: testOwner,
		DataDir: e.dir, Logger: e.log, Clock: e.clock, DryRun: e.dryRun})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.OpenSQLite(ctx, e.st.DB(), jobs.Options{ClientID: "srv-test", Handlers: ctl.Handlers(),
		Logger: e.log, PollInterval: e.poll})
	if err != nil {
		t.Fatal(err)
	}
	ctl.SetQueue(q)
	e.ctl, e.q = ctl, q
}

// start runs the queue and the controller's leader loop until the test ends
// (or stop is called).
func (e *env) start() *env {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.q.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.ctl.Run(ctx) }()
	var once sync.Once
	e.stopRun = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
			stop, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			if err := e.q.Stop(stop); err != nil {
				t.Errorf("stopping the queue: %v", err)
			}
			e.ctl.Close()
		})
	}
	t.Cleanup(e.stopRun)
	return e
}

// stop ends Run and the queue (a server stop).
func (e *env) stop() { e.stopRun() }

// waitFor polls cond until it holds or timeout passes; cond returns whether it
// holds and what it saw (for the failure message).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last saw: %s", timeout, what, saw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nodes lists the cluster's nodes in the given states (all if none).
func (e *env) nodes(cluster string, states ...store.NodeState) []store.Node {
	e.t.Helper()
	ns, err := e.st.NodeList(context.Background(), store.NodeFilter{Cluster: cluster, States: states})
	if err != nil {
		e.t.Fatal(err)
	}
	return ns
}

func (e *env) node(id string) store.Node {
	e.t.Helper()
	n, err := e.st.NodeGet(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// nodeState is a node's state, "" if it does not exist (yet).
func (e *env) nodeState(id string) store.NodeState {
	e.t.Helper()
	n, err := e.st.NodeGet(context.Background(), id)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return n.State
}

// activities lists the activities of a kind ("" for all), oldest first.
func (e *env) activities(f store.ActivityFilter) []store.Activity {
	e.t.Helper()
	f.Limit = 1000
	as, err := e.st.ActivityList(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	for i, j := 0, len(as)-1; i < j; i, j = i+1, j-1 {
		as[i], as[j] = as[j], as[i]
	}
	return as
}

func (e *env) kind(cluster, kind string) []store.Activity {
	return e.activities(store.ActivityFilter{Cluster: cluster, Kind: kind})
}

func (e *env) clusterRec(name string) store.Cluster {
	e.t.Helper()
	c, err := e.st.ClusterGet(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// waitInService waits until exactly n nodes of cluster are in service and no
// other node is active.
func (e *env) waitInService(cluster string, n int) []store.Node {
	e.t.Helper()
	var in []store.Node
	waitFor(e.t, 20*time.Second, fmt.Sprintf("%d node(s) of %s in service", n, cluster), func() (bool, string) {
		all := e.nodes(cluster)
		in = in[:0]
		active := 0
		var b strings.Builder
		for _, nd := range all {
			fmt.Fprintf(&b, "%s=%s(%s) ", nd.ID, nd.State, nd.Reason)
			if nd.State == store.NodeInService {
				in = append(in, nd)
			}
			if nd.State.Active() {
				active++
			}
		}
		return len(in) == n && active == n, b.String()
	})
	return in
}

// waitSteps waits until every step of a trigger firing is done, and returns
// them by step.
func (e *env) waitSteps(parent int64) []store.Activity {
	e.t.Helper()
	var steps []store.Activity
	waitFor(e.t, 30*time.Second, fmt.Sprintf("the steps of firing %d to finish", parent), func() (bool, string) {
		steps = e.activities(store.ActivityFilter{ParentID: parent})
		var b strings.Builder
		done := len(steps) > 0
		for _, s := range steps {
			fmt.Fprintf(&b, "step %d %s=%s %q; ", s.Step, s.Kind, s.Status, s.Error)
			done = done && s.Status.Done()
		}
		return done, b.String()
	})
	sortSteps(steps)
	return steps
}

func sortSteps(steps []store.Activity) {
	for i := range steps {
		for j := i + 1; j < len(steps); j++ {
			if steps[j].Step < steps[i].Step {
				steps[i], steps[j] = steps[j], steps[i]
			}
		}
	}
}

// aggregates counts the stored aggregate samples of a counter.
func (e *env) aggregates(cluster, counterName string) []store.Sample {
	e.t.Helper()
	s, err := e.st.SampleList(context.Background(), store.SampleFilter{Cluster: cluster, Counter: counterName, AggregateOnly: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// waitCollections waits until n more collections of a counter have been
// stored and evaluated after the call. A collection that had started before
// the call (with an older clock reading) may count as the first, so callers
// that need one collection entirely after a change ask for 3: the third
// stores its samples only after the second (which started after the call)
// has evaluated its triggers.
func (e *env) waitCollections(cluster, counterName string, n int) store.Sample {
	e.t.Helper()
	start := len(e.aggregates(cluster, counterName))
	var last store.Sample
	waitFor(e.t, 20*time.Second, fmt.Sprintf("%d collections of %s", n, counterName), func() (bool, string) {
		all := e.aggregates(cluster, counterName)
		if len(all) > 0 {
			last = all[len(all)-1]
		}
		return len(all) >= start+n, fmt.Sprintf("%d of %d", len(all)-start, n)
	})
	return last
}

// waitAggregate waits until the newest aggregate of a counter satisfies ok.
func (e *env) waitAggregate(cluster, counterName string, ok func(store.Sample) bool) store.Sample {
	e.t.Helper()
	var last store.Sample
	waitFor(e.t, 20*time.Second, "an aggregate of "+counterName, func() (bool, string) {
		r, found := e.ctl.Latest(cluster, counterName)
		last = r.Aggregate
		return found && ok(last), fmt.Sprintf("%+v", last)
	})
	return last
}

var errNotYet = errors.New("not reporting yet")
