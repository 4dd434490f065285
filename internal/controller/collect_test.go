package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// Every reading, node- or cluster-scoped, carries the number of nodes in
// service and out of maintenance (for "per node" counters).
func TestReadingsCarryInService(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 3\n    max: 5", "100ms", `      - {name: queue, type: fake, instance: "{{I}}", scope: cluster, interval: 100ms}
`))
	e.src.SetAll(1)
	e.src.SetCluster(10)
	e.start()
	nodes := e.waitInService("web", 3)
	e.waitCollections("web", "queue", 3)
	e.waitCollections("web", "inflight", 3)

	check := func(want int) {
		t.Helper()
		reads := e.src.Reads()
		var cluster, node int
		for _, r := range reads[len(reads)/2:] {
			if r.InService != want {
				continue
			}
			if r.NodeID == "" {
				cluster++
			} else {
				node++
			}
		}
		if cluster == 0 || node == 0 {
			t.Fatalf("no recent cluster (%d) and node (%d) readings with InService %d in %+v", cluster, node, want, reads[len(reads)-3:])
		}
	}
	check(3)

	// A node in maintenance is not read and not counted.
	n := nodes[0]
	n.Maintenance = true
	if _, err := e.st.NodeUpdate(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	before := len(e.src.Reads())
	e.waitCollections("web", "queue", 3)
	e.waitCollections("web", "inflight", 3)
	for _, r := range e.src.Reads()[before:] {
		if r.NodeID == n.ID {
			t.Fatalf("node %s in maintenance was read", n.ID)
		}
	}
	check(2)
}

// TestCollectBoundsConcurrency reads 20 nodes with collect_concurrency 3:
// never more than 3 readings at once, every node read, the aggregate
// expecting all 20, the samples in memory for graphs.
func TestCollectBoundsConcurrency(t *testing.T) {
	t.Parallel()
	var inFlight, peak, served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		served.Add(1)
		fmt.Fprint(w, strings.TrimPrefix(r.URL.Query().Get("node"), "web-"))
	}))
	defer srv.Close()
	e := newEnv(t, `
server:
  tick: 1h
  collect_concurrency: 3
clusters:
  - name: web
    min: 0
    max: 20
    provider: {type: fake, instance: "{{I}}"}
    health_check: {type: none}
    counters:
      - {name: id, type: http, url: "http://{{.Address}}/?node={{.NodeID}}", aggregate: sum, interval: 1h}
`)
	ctx := t.Context()
	addr := strings.TrimPrefix(srv.URL, "http://")
	e.prov.SetAddress(func(provider.NodeSpec) string { return addr })
	for i := 1; i <= 21; i++ {
		id := fmt.Sprintf("web-%d", i)
		m, err := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{NodeID: id, Cluster: "web"})
		if err != nil {
			t.Fatal(err)
		}
		// web-21 is in maintenance: not read, not expected.
		if _, err := e.st.NodeCreate(ctx, store.Node{ID: id, Cluster: "web", State: store.NodeInService, MachineID: m.ID,
			Address: m.Address, Maintenance: i == 21}); err != nil {
			t.Fatal(err)
		}
	}
	cl := e.ctl.clusters["web"]
	e.ctl.collectOnce(ctx, cl, cl.cfg.Counter("id"))
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("%d readings at once, want at most collect_concurrency (3) and more than one", p)
	}
	r, ok := e.ctl.Latest("web", "id")
	if !ok || served.Load() != 20 || len(r.Nodes) != 20 {
		t.Fatalf("%d requests, %d node samples; want 20", served.Load(), len(r.Nodes))
	}
	if a := r.Aggregate; !a.OK() || a.Value != 210 || a.Reporting != 20 || a.Expected != 20 {
		t.Errorf("aggregate %+v, want the sum 1+…+20 = 210 from 20 of 20 nodes", a)
	}
	// In the store's node order (oldest first, then by ID: nodes created in
	// the same millisecond sort as strings, web-10 before web-2).
	order, err := e.st.NodeList(ctx, store.NodeFilter{Cluster: "web", States: []store.NodeState{store.NodeInService}})
	if err != nil {
		t.Fatal(err)
	}
	order = slices.DeleteFunc(order, func(n store.Node) bool { return n.Maintenance })
	for i, s := range r.Nodes {
		want := order[i].ID
		var n int
		_, _ = fmt.Sscanf(want, "web-%d", &n)
		if s.Node != want || s.Value != float64(n) {
			t.Fatalf("node sample %d = %+v, want %s reading %d (in node order)", i, s, want, n)
		}
	}
	// The samples are in the store and in memory.
	stored, err := e.st.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "id"})
	if err != nil || len(stored) != 21 {
		t.Fatalf("%d stored samples, %v; want 21", len(stored), err)
	}
	if n := e.ctl.memory.Len(); n != 21 {
		t.Errorf("%d series in memory, want 21", n)
	}

	// A node that leaves service is no longer read at the next collection,
	// without waiting for a reconcile tick (tick is 1h here).
	n := e.node("web-20")
	if _, err := e.ctl.setState(ctx, n, store.NodeDraining, "test"); err != nil {
		t.Fatal(err)
	}
	e.ctl.collectOnce(ctx, cl, cl.cfg.Counter("id"))
	r, _ = e.ctl.Latest("web", "id")
	if len(r.Nodes) != 19 || r.Aggregate.Expected != 19 || r.Aggregate.Value != 190 {
		t.Errorf("after web-20 left: %d node samples, aggregate %+v", len(r.Nodes), r.Aggregate)
	}
}

// TestCollectUsesTheNodeView checks that collections within a tick do not
// list the nodes again: a node added behind the controller's back (not
// through setState) is read only once the view is invalidated or older than
// a tick.
func TestCollectUsesTheNodeView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, `
server:
  tick: 1h
clusters:
  - name: web
    min: 0
    max: 5
    provider: {type: fake, instance: "{{I}}"}
    health_check: {type: none}
    counters:
      - {name: inflight, type: fake, instance: "{{I}}", interval: 1h}
`)
	e.src.SetAll(1)
	ctx := t.Context()
	cl := e.ctl.clusters["web"]
	k := cl.cfg.Counter("inflight")
	add := func(id string) {
		if _, err := e.st.NodeCreate(ctx, store.Node{ID: id, Cluster: "web", State: store.NodeInService, Address: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() int {
		e.ctl.collectOnce(ctx, cl, k)
		r, _ := e.ctl.Latest("web", "inflight")
		return len(r.Nodes)
	}
	add("web-1")
	if n := read(); n != 1 {
		t.Fatalf("first collection read %d nodes, want 1", n)
	}
	add("web-2")
	if n := read(); n != 1 {
		t.Fatalf("a collection within the tick read %d nodes: it listed them again", n)
	}
	e.ctl.invalidateView("web")
	if n := read(); n != 2 {
		t.Fatalf("after the view was invalidated: %d nodes, want 2", n)
	}
}
