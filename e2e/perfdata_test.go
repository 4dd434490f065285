package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// graphPoint is [unix ms, value or null].
type graphPoint [2]*float64

// counterGraph is GET /api/v1/clusters/C/counters/K?step=….
type counterGraph struct {
	Step        string                  `json:"step"`
	Resolutions []string                `json:"resolutions"`
	Aggregate   []graphPoint            `json:"aggregate"`
	Nodes       map[string][]graphPoint `json:"nodes"`
	Errors      []struct {
		Node  string `json:"node"`
		Error string `json:"error"`
	} `json:"errors"`
}

// values maps the valid points of a series to their value, by unix ms.
func values(ps []graphPoint) map[int64]float64 {
	out := map[int64]float64{}
	for _, p := range ps {
		if p[0] != nil && p[1] != nil {
			out[int64(*p[0])] = *p[1]
		}
	}
	return out
}

// TestCounterHistorySurvivesRestart reads a counter's graph, kills the server
// (kill -9), starts it again and checks that the history from before the
// restart is still there, point for point, with new points after it; and
// that a node that fails its readings shows as null and errors, not zero.
func TestCounterHistorySurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("history")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{
		Name: name, Min: 2, Max: 2, Desired: 2,
		// requests served by each demo node (health checks), from /stats;
		// and a counter that fails on every node (the demo node answers
		// text there): it must never read as 0.
		Counters: `      - name: requests
        type: http
        url: "http://{{.Address}}/stats"
        path: requests
        interval: 500ms
        aggregate: max
      - name: broken
        type: http
        url: "http://{{.Address}}/nope"
        interval: 500ms
`,
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	nodes := waitInService(t, srv.api, name, 2, 45*time.Second)

	graph := func(counter, query string) counterGraph {
		var g counterGraph
		srv.api.must("GET", "/api/v1/clusters/"+name+"/counters/"+counter+"?"+query, nil, &g, 200)
		return g
	}
	var before counterGraph
	waitFor(t, 20*time.Second, 200*time.Millisecond, "a few seconds of request-count readings", func() (bool, string) {
		before = graph("requests", "since=2m&step=1s")
		return len(values(before.Aggregate)) >= 4 && len(before.Nodes) == 2, fmt.Sprintf("%+v", before)
	})
	if before.Step != "1s" {
		t.Errorf("step %s, want 1s", before.Step)
	}
	// The recent past comes from memory (once the range starts after the
	// server did).
	waitFor(t, 10*time.Second, 200*time.Millisecond, "a recent graph served from memory", func() (bool, string) {
		g := graph("requests", "since=2s&step=1s")
		return len(g.Resolutions) == 1 && g.Resolutions[0] == "memory", fmt.Sprint(g.Resolutions)
	})
	broken := graph("broken", "since=2m&step=1s")
	if len(values(broken.Aggregate)) != 0 || len(broken.Errors) == 0 || !strings.Contains(broken.Errors[0].Error, "is not a number") {
		t.Fatalf("a counter that always fails: %d values, errors %+v; want no value and its errors", len(values(broken.Aggregate)), broken.Errors)
	}
	for node, ps := range broken.Nodes {
		if len(values(ps)) != 0 {
			t.Errorf("node %s of the failing counter has values", node)
		}
	}

	srv.kill9()
	killedAt := time.Now()
	srv = startServer(t, cfg, addr, dataDir, "")
	waitInService(t, srv.api, name, 2, 30*time.Second)
	var after counterGraph
	waitFor(t, 20*time.Second, 200*time.Millisecond, "new readings after the restart", func() (bool, string) {
		after = graph("requests", "since=3m&step=1s")
		newer := 0
		for ms := range values(after.Aggregate) {
			if ms > killedAt.UnixMilli()+1000 {
				newer++
			}
		}
		return newer >= 2, fmt.Sprintf("%d newer points", newer)
	})
	if after.Resolutions[len(after.Resolutions)-1] != "raw" {
		t.Errorf("resolutions after the restart %v: the memory does not reach before the restart, the database must answer", after.Resolutions)
	}
	old, now := values(before.Aggregate), values(after.Aggregate)
	// The newest step of the first graph may have been filling still.
	newest := int64(0)
	for ms := range old {
		newest = max(newest, ms)
	}
	delete(old, newest)
	for ms, v := range old {
		if got, ok := now[ms]; !ok || got != v {
			t.Errorf("point %s before the restart: %v, now %v (present %v)", time.UnixMilli(ms).Format(time.TimeOnly), v, got, ok)
		}
	}
	for _, n := range nodes {
		if len(values(after.Nodes[n.ID])) < len(values(before.Nodes[n.ID])) {
			t.Errorf("node %s lost points over the restart", n.ID)
		}
	}
}
