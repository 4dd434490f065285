package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/web"
)

// fleetConfig is clusters clusters c1…cN, each with a node counter and two
// triggers.
func fleetConfig(clusters int) string {
	var b strings.Builder
	b.WriteString("clusters:\n")
	for i := 1; i <= clusters; i++ {
		fmt.Fprintf(&b, `  - name: c%d
    min: 1
    max: 2000
    provider: {type: process, command: ["sleep", "1000"]}
    health_check: {type: none}
    counters:
      - {name: load, type: exec, command: ["echo", "1"], scope: node, interval: 5s}
    triggers:
      - {name: up, counter: load, above: 5, for: 30s, actions: [{type: deploy_node}]}
      - {name: down, counter: load, below: 1, for: 1m, actions: [{type: remove_node}]}
`, i)
	}
	return b.String()
}

// seedFleet gives each cluster nodesPer in-service nodes, 10 minutes of
// samples every 5 s (a value per node and the aggregate) and 20 activities.
func seedFleet(b *testing.B, e *env, clusters int, nodesPer []int) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for i := 1; i <= clusters; i++ {
		name := fmt.Sprintf("c%d", i)
		var samples []store.Sample
		for n := 1; n <= nodesPer[i-1]; n++ {
			id := fmt.Sprintf("%s-%d", name, n)
			if _, err := e.st.NodeCreate(ctx, store.Node{ID: id, Cluster: name, State: store.NodeInService,
				Address: fmt.Sprintf("127.0.0.1:%d", 10000+n), Reason: "passed its health check"}); err != nil {
				b.Fatal(err)
			}
		}
		for k := range 120 {
			at := now.Add(-10 * time.Minute).Add(time.Duration(k) * 5 * time.Second)
			for n := 1; n <= min(nodesPer[i-1], 50); n++ {
				samples = append(samples, store.Sample{Cluster: name, Counter: "load", Node: fmt.Sprintf("%s-%d", name, n), At: at, Value: float64((k + n) % 9)})
			}
			samples = append(samples, store.Sample{Cluster: name, Counter: "load", At: at, Value: float64(k % 9), Reporting: nodesPer[i-1]})
		}
		if err := e.st.SampleInsert(ctx, samples); err != nil {
			b.Fatal(err)
		}
		for a := range 20 {
			if _, err := e.st.ActivityCreate(ctx, store.Activity{Cluster: name, Kind: "scale", Status: store.ActivitySucceeded,
				Cause: fmt.Sprintf("scaled by hand (%d)", a)}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchGet serves path from the UI's handler (no network) b.N times.
func benchGet(b *testing.B, e *env, path, mustContain string) {
	b.ReportAllocs()
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		e.ui.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), mustContain) {
			b.Fatalf("GET %s: %d\n%.2000s", path, w.Code, w.Body.String())
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// BenchmarkFleet renders the pages of 100 clusters of 10 nodes each (1,000
// nodes) with 10 minutes of samples.
func BenchmarkFleet(b *testing.B) {
	const clusters = 100
	e := newEnv(b, fleetConfig(clusters))
	per := make([]int, clusters)
	for i := range per {
		per[i] = 10
	}
	seedFleet(b, e, clusters, per)
	b.Run("dashboard", func(b *testing.B) { benchGet(b, e, "/", `data-cluster="c100"`) })
	b.Run("dashboard-first", func(b *testing.B) {
		// A new UI each time: the sparklines read their whole window.
		b.ReportAllocs()
		for b.Loop() {
			ui := web.New(web.Options{Store: e.st, Controller: e.ctl, Logger: discard})
			w := httptest.NewRecorder()
			ui.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `data-cluster="c100"`) {
				b.Fatalf("GET /: %d", w.Code)
			}
		}
	})
	b.Run("dashboard-live", func(b *testing.B) { benchGet(b, e, "/ui/dashboard", `data-cluster="c100"`) })
	b.Run("cluster", func(b *testing.B) { benchGet(b, e, "/clusters/c50", `data-node="c50-10"`) })
	b.Run("cluster-live", func(b *testing.B) { benchGet(b, e, "/ui/clusters/c50", `data-node="c50-10"`) })
	b.Run("graph", func(b *testing.B) {
		benchGet(b, e, "/ui/data/clusters/c50/counters/load?since=15m", `"label":"c50-10"`)
	})
	b.Run("activities", func(b *testing.B) { benchGet(b, e, "/activities", `scaled by hand`) })
}

// BenchmarkBigCluster renders the page of one cluster of 1,000 nodes.
func BenchmarkBigCluster(b *testing.B) {
	e := newEnv(b, fleetConfig(1))
	seedFleet(b, e, 1, []int{1000})
	b.Run("cluster", func(b *testing.B) { benchGet(b, e, "/clusters/c1", `Showing 100 of 1000 nodes`) })
	b.Run("cluster-all-nodes", func(b *testing.B) { benchGet(b, e, "/clusters/c1?nodes=all", `data-node="c1-1000"`) })
	b.Run("graph", func(b *testing.B) {
		benchGet(b, e, "/ui/data/clusters/c1/counters/load?since=15m", `only the aggregate`)
	})
}
