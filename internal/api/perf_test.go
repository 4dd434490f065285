package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/perfdata"
	"github.com/goscaler/goscaler/internal/store"
)

// perfConfig has node-scoped counters: one read from the nodes, one pushed
// by their agents.
const perfConfig = `
clusters:
  - name: web
    min: 1
    max: 5
    provider: {type: process, command: ["sleep", "1000"]}
    health_check: {type: none}
    heartbeat: {timeout: 30s}
    counters:
      - {name: inflight, type: http, url: "http://{{.Address}}/stats", path: inflight, interval: 10s}
      - {name: load, type: agent, aggregate: max}
      - {name: queue, type: exec, command: ["echo", "2"], scope: cluster}
`

const (
	agentToken  = "agent-0123456789abcdef0123456789"
	viewerToken = "viewer-0123456789abcdef012345678"
)

// seedNodes stores web-1 and web-2 in service and web-3 terminated.
func (e *env) seedNodes() {
	e.t.Helper()
	ctx := e.t.Context()
	for _, n := range []store.Node{
		{ID: "web-1", Cluster: "web", State: store.NodeInService, Address: "127.0.0.1:10001"},
		{ID: "web-2", Cluster: "web", State: store.NodeInService, Address: "127.0.0.1:10002"},
		{ID: "web-3", Cluster: "web", State: store.NodeTerminated},
	} {
		if _, err := e.st.NodeCreate(ctx, n); err != nil {
			e.t.Fatal(err)
		}
	}
}

func TestAgentHeartbeat(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, perfConfig, []config.APIToken{{Token: token, Role: config.RoleOperator}, {Token: viewerToken, Role: config.RoleViewer}}, []string{agentToken})
	e.seedNodes()
	post := func(body string, auth string) response {
		return e.do("POST", "/api/v1/agent/heartbeat", body, "Authorization", "Bearer "+auth, "Content-Type", "application/json")
	}
	r := post(`{"node": "web-1", "cluster": "web", "counters": {"load": {"value": 0.75}, "disk": {"error": "df: not found"}, "bare": 3}}`, agentToken)
	wantOK(t, r, http.StatusOK)
	ans := decode[api.HeartbeatAnswer](t, r)
	if ans.Node != "web-1" || ans.Cluster != "web" || ans.Counters != 3 || time.Since(ans.ReceivedAt) > time.Minute {
		t.Fatalf("answer %+v", ans)
	}
	// The API token works too, and the cluster may be left out.
	wantOK(t, post(`{"node": "web-2", "counters": {}}`, token), http.StatusOK)

	// The node shows what its agent sent, and an error as an error.
	d := decode[nodeDetail](t, e.do("GET", "/api/v1/clusters/web/nodes/web-1", "", "Authorization", "Bearer "+token))
	if d.Agent == nil || d.Agent.Counters["load"].Value != 0.75 || d.Agent.Counters["disk"].Err != "df: not found" ||
		d.Agent.Counters["bare"].Value != 3 || !d.Agent.LastHeartbeat.Equal(ans.ReceivedAt) {
		t.Fatalf("agent of web-1 = %+v", d.Agent)
	}
	raw := e.do("GET", "/api/v1/clusters/web/nodes/web-1", "", "Authorization", "Bearer "+token)
	if !strings.Contains(string(raw.body), "\"disk\": {\n        \"error\": \"df: not found\"\n      }") {
		t.Errorf("a failed agent reading is shown with a value: %s", raw.body)
	}
	// The agent counter source reads it.
	v, ok, reported, _ := e.ctl.Agents().AgentValue("web-1", "load")
	if !ok || !reported || v.Value != 0.75 {
		t.Errorf("AgentValue = %+v %v %v", v, ok, reported)
	}

	tests := []struct {
		name, body, auth string
		status           int
		code, message    string
	}{
		{"no token", `{"node": "web-1"}`, "", 401, "unauthorized", "Bearer"},
		{"a viewer's token", `{"node": "web-1"}`, viewerToken, 401, "unauthorized", "agent_tokens"},
		{"unknown node", `{"node": "web-9", "counters": {}}`, agentToken, 404, "not_found", `node "web-9"`},
		{"terminated node", `{"node": "web-3", "counters": {}}`, agentToken, 409, "gone", "node web-3 is terminated"},
		{"other cluster", `{"node": "web-1", "cluster": "api", "counters": {}}`, agentToken, 422, "invalid", `node web-1 is of cluster "web", not "api"`},
		{"no node", `{"counters": {}}`, agentToken, 422, "invalid", "the heartbeat names no node"},
		{"bad counter name", `{"node": "web-1", "counters": {"a b": 1}}`, agentToken, 422, "invalid", `counter name "a b"`},
		{"value and error", `{"node": "web-1", "counters": {"x": {"value": 1, "error": "e"}}}`, agentToken, 400, "bad_request", "both a value and an error"},
		{"neither", `{"node": "web-1", "counters": {"x": {}}}`, agentToken, 400, "bad_request", `neither "value" nor "error"`},
		{"not a number", `{"node": "web-1", "counters": {"x": true}}`, agentToken, 400, "bad_request", "must be a number"},
		{"unknown field", `{"node": "web-1", "load": 1}`, agentToken, 400, "bad_request", `unknown field "load"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.auth == "" {
				r = e.do("POST", "/api/v1/agent/heartbeat", tt.body)
			} else {
				r = post(tt.body, tt.auth)
			}
			wantError(t, r, tt.status, tt.code, tt.message)
		})
	}
	// An agent token opens nothing but the heartbeat.
	wantError(t, e.do("GET", "/api/v1/clusters", "", "Authorization", "Bearer "+agentToken), 401, "unauthorized", "Bearer")
	wantError(t, e.do("POST", "/api/v1/clusters/web/scale", `{"desired": 2}`, "Authorization", "Bearer "+agentToken), 401, "unauthorized", "Bearer")
}

func TestAgentHeartbeatWithoutTokens(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, perfConfig, nil, nil)
	e.seedNodes()
	wantOK(t, e.do("POST", "/api/v1/agent/heartbeat", `{"node": "web-1", "counters": {"load": 1}}`), http.StatusOK)
	// With agent tokens only, the heartbeat needs one and the rest stays open.
	e = newEnvWith(t, perfConfig, nil, []string{agentToken})
	e.seedNodes()
	wantError(t, e.do("POST", "/api/v1/agent/heartbeat", `{"node": "web-1", "counters": {}}`), 401, "unauthorized", "Bearer")
	wantOK(t, e.do("POST", "/api/v1/agent/heartbeat", `{"node": "web-1", "counters": {}}`, "Authorization", "Bearer "+agentToken), http.StatusOK)
	wantOK(t, e.do("GET", "/api/v1/clusters", ""), http.StatusOK)
}

// graph is api.CounterGraph as JSON.
type graph struct {
	Cluster     string                      `json:"cluster"`
	Counter     string                      `json:"counter"`
	Type        string                      `json:"type"`
	Scope       string                      `json:"scope"`
	Aggregation string                      `json:"aggregation"`
	Interval    string                      `json:"interval"`
	Step        string                      `json:"step"`
	StepMS      int64                       `json:"step_ms"`
	Since       time.Time                   `json:"since"`
	Until       time.Time                   `json:"until"`
	Resolutions []string                    `json:"resolutions"`
	Aggregate   []perfdata.Point            `json:"aggregate"`
	Nodes       map[string][]perfdata.Point `json:"nodes"`
	Errors      []perfdata.Error            `json:"errors"`
}

func TestCounterGraph(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, perfConfig, nil, nil)
	e.seedNodes()
	ctx := t.Context()
	// Ten minutes of inflight every 10 s: web-1 reads 4, web-2 reads 6 but
	// fails for the whole 7th minute; nothing at all in the 4th minute.
	now := time.Now()
	start := now.Add(-10 * time.Minute).Truncate(time.Minute)
	var in []store.Sample
	for at := start; at.Before(now); at = at.Add(10 * time.Second) {
		minute := at.Sub(start) / time.Minute
		if minute == 3 {
			continue
		}
		w2 := store.Sample{Cluster: "web", Counter: "inflight", Node: "web-2", At: at, Value: 6}
		agg := store.Sample{Cluster: "web", Counter: "inflight", At: at, Value: 5, Reporting: 2, Expected: 2}
		if minute == 6 {
			w2 = store.Sample{Cluster: "web", Counter: "inflight", Node: "web-2", At: at, Err: "connection refused"}
			agg = store.Sample{Cluster: "web", Counter: "inflight", At: at, Value: 4, Reporting: 1, Expected: 2}
		}
		in = append(in, store.Sample{Cluster: "web", Counter: "inflight", Node: "web-1", At: at, Value: 4}, w2, agg)
	}
	if err := e.st.SampleInsert(ctx, in); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/api/v1/clusters/web/counters/inflight?since=10m&step=1m", "")
	wantOK(t, r, http.StatusOK)
	g := decode[graph](t, r)
	if g.Cluster != "web" || g.Counter != "inflight" || g.Type != "http" || g.Scope != "node" || g.Aggregation != "avg" ||
		g.Interval != "10s" || g.Step != "1m0s" || g.StepMS != 60000 || len(g.Resolutions) != 1 || g.Resolutions[0] != "raw" {
		t.Fatalf("graph = %+v", g)
	}
	if len(g.Aggregate) < 10 || len(g.Aggregate) > 11 || len(g.Nodes) != 2 || len(g.Nodes["web-1"]) != len(g.Aggregate) {
		t.Fatalf("%d aggregate points, nodes %d", len(g.Aggregate), len(g.Nodes))
	}
	nulls, web2Nulls := 0, 0
	for i, p := range g.Aggregate {
		if !p.Valid {
			nulls++
			if v := g.Nodes["web-1"][i]; v.Valid {
				t.Errorf("web-1 has a value at %s where the aggregate has none", p.At)
			}
			continue
		}
		if p.Value < 4 || p.Value > 5 {
			t.Errorf("aggregate %+v, want 4 to 5", p)
		}
	}
	for _, p := range g.Nodes["web-2"] {
		if !p.Valid {
			web2Nulls++
		} else if p.Value != 6 {
			t.Errorf("web-2 %+v: its failures must not lower its average", p)
		}
	}
	// The minute without data is null, never 0.
	if nulls != 1 || web2Nulls != 2 {
		t.Errorf("%d null aggregate points and %d for web-2; want the missing minute null, and web-2's failures too", nulls, web2Nulls)
	}
	if !strings.Contains(string(r.body), ",null]") || strings.Contains(string(r.body), "\n  ") {
		t.Errorf("missing data is not null, or the graph is not compact JSON: %s", r.body[:min(len(r.body), 400)])
	}
	if len(g.Errors) != 6 || g.Errors[0].Node != "web-2" || g.Errors[0].Error != "connection refused" || g.Errors[0].Count != 1 {
		t.Errorf("errors = %+v, want web-2's 6 failures", g.Errors)
	}

	// One node, the aggregate only, an automatic step, an explicit range.
	g = decode[graph](t, e.do("GET", "/api/v1/clusters/web/counters/inflight?since=10m&step=auto&node=web-1", ""))
	if len(g.Nodes) != 1 || g.Step != "10s" {
		t.Errorf("node=web-1, step=auto: nodes %d, step %s", len(g.Nodes), g.Step)
	}
	g = decode[graph](t, e.do("GET", "/api/v1/clusters/web/counters/inflight?step=30s&aggregate=true", ""))
	if len(g.Nodes) != 0 || g.Step != "30s" || len(g.Aggregate) < 120 {
		t.Errorf("aggregate=true over the default hour: %d nodes, step %s, %d points", len(g.Nodes), g.Step, len(g.Aggregate))
	}
	from, to := start.Add(time.Minute), start.Add(3*time.Minute)
	g = decode[graph](t, e.do("GET", fmt.Sprintf("/api/v1/clusters/web/counters/inflight?since=%d&until=%s&step=1m",
		from.UnixMilli(), to.UTC().Format(time.RFC3339Nano)), ""))
	if len(g.Aggregate) != 2 || !g.Aggregate[0].At.Equal(from.UTC()) || !g.Aggregate[1].Valid {
		t.Errorf("an explicit range: %+v", g.Aggregate)
	}
	// A cluster-scoped counter has no node series.
	g = decode[graph](t, e.do("GET", "/api/v1/clusters/web/counters/queue?step=1m", ""))
	if len(g.Nodes) != 0 || g.Scope != "cluster" {
		t.Errorf("cluster counter: %+v", g)
	}

	for _, tc := range []struct{ path, message string }{
		{"?step=0s", `step "0s" is not a positive duration`},
		{"?step=soon", `step "soon" is not a positive duration`},
		{"?step=1m&since=tomorrow", `since "tomorrow" is neither`},
		{"?step=1m&until=x", `until "x" is neither`},
		{"?step=1m&since=1m&until=5m", "the range starts at"},
	} {
		wantError(t, e.do("GET", "/api/v1/clusters/web/counters/inflight"+tc.path, ""), 400, "bad_request", tc.message)
	}
}

// TestNodeReadings checks that a node shows the latest reading of each of
// its counters, an error as an error, and "not read yet" before any reading.
func TestNodeReadings(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, perfConfig, nil, nil)
	e.seedNodes()
	now := time.Now().Truncate(time.Millisecond)
	if err := e.st.SampleInsert(t.Context(), []store.Sample{
		{Cluster: "web", Counter: "inflight", Node: "web-1", At: now.Add(-20 * time.Second), Value: 3},
		{Cluster: "web", Counter: "inflight", Node: "web-1", At: now.Add(-10 * time.Second), Value: 7},
		{Cluster: "web", Counter: "load", Node: "web-1", At: now.Add(-10 * time.Second), Err: "no value pushed for 15s: node web-1's agent last reported 40s ago (max_age 15s)"},
	}); err != nil {
		t.Fatal(err)
	}
	d := decode[nodeDetail](t, e.do("GET", "/api/v1/clusters/web/nodes/web-1", ""))
	if len(d.Counters) != 2 || d.Counters[0].Counter != "inflight" || d.Counters[1].Counter != "load" {
		t.Fatalf("counters = %+v, want inflight and load (queue is cluster-scoped)", d.Counters)
	}
	if s := d.Counters[0].Sample; !s.OK() || s.Value != 7 || !s.At.Equal(now.Add(-10*time.Second).UTC()) {
		t.Errorf("inflight = %+v, want the latest reading, 7", s)
	}
	if s := d.Counters[1].Sample; s.OK() || !strings.Contains(s.Err, "no value pushed for 15s") {
		t.Errorf("load = %+v, want its error", s)
	}
	if d.Agent != nil {
		t.Errorf("agent = %+v for a node whose agent never reported", d.Agent)
	}
	d = decode[nodeDetail](t, e.do("GET", "/api/v1/clusters/web/nodes/web-2", ""))
	for _, r := range d.Counters {
		if r.Sample.OK() || r.Sample.Err != "not read yet" || !r.Sample.At.IsZero() {
			t.Errorf("%s of a node never read = %+v, want the error \"not read yet\"", r.Counter, r.Sample)
		}
	}
	var raw struct {
		Counters []struct {
			Sample map[string]any `json:"sample"`
		} `json:"counters"`
	}
	if err := json.Unmarshal(e.do("GET", "/api/v1/clusters/web/nodes/web-2", "").body, &raw); err != nil || len(raw.Counters) != 2 {
		t.Fatalf("node JSON %v, %v", raw, err)
	}
	if v, ok := raw.Counters[0].Sample["value"]; !ok || v != nil {
		t.Errorf("the value of a reading that failed is %v in JSON, want null", v)
	}
}
