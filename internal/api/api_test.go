package api_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/api"
	_ "github.com/goscaler/goscaler/internal/builtins"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

// testConfig has two clusters: web with counters and triggers, api behind the
// built-in load balancer. Nothing is ever started.
const testConfig = `
clusters:
  - name: web
    min: 1
    max: 5
    desired: 2
    provider: {type: process, command: ["sleep", "1000"]}
    health_check: {type: none}
    counters:
      - {name: load, type: exec, command: ["echo", "1"]}
      - {name: queue, type: exec, command: ["echo", "2"], aggregate: sum}
    triggers:
      - name: up
        counter: load
        above: 5
        for: 30s
        cooldown: 1m
        actions:
          - {type: deploy_node, count: 2}
          - {type: local_script, command: ["true"]}
      - name: down
        when:
          - {counter: load, below: 1}
          - {counter: queue, below: 1}
        actions: [{type: remove_node}]
  - name: api
    max: 2
    provider: {type: process, command: ["sleep", "1000"]}
    health_check: {type: none}
    load_balancer: {type: builtin, listen: "127.0.0.1:0"}
`

const token = "0123456789abcdef0123456789abcdef"

var discard = slog.New(slog.DiscardHandler)

type env struct {
	t       *testing.T
	st      *sqlstore.Store
	ctl     *controller.Controller
	handler http.Handler
	// base is the time the seeded samples are relative to.
	base time.Time
}

// newEnv builds an API whose tokens are operators' tokens.
func newEnv(t *testing.T, tokens ...string) *env {
	t.Helper()
	var toks []config.APIToken
	for _, tok := range tokens {
		toks = append(toks, config.APIToken{Token: tok, Role: config.RoleOperator})
	}
	return newEnvTokens(t, toks)
}

// newEnvTokens builds an API with tokens of any role.
func newEnvTokens(t *testing.T, tokens []config.APIToken) *env {
	t.Helper()
	return newEnvWith(t, testConfig, tokens, nil)
}

// newEnvWith is newEnv on another configuration, with agent tokens.
func newEnvWith(t *testing.T, cfgYAML string, tokens []config.APIToken, agentTokens []string) *env {
	t.Helper()
	ctx := t.Context()
	cfg, err := config.Parse("api.yaml", []byte(cfgYAML))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.Open(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	metrics := controller.NewMetrics()
	ctl, err := controller.New(ctx, controller.Options{Config: cfg, Store: st, Owner: "test-" + randomID(t),
		DataDir: t.TempDir(), Logger: discard, Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctl.Close)
	if err := ctl.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	q, err := jobs.OpenSQLite(ctx, st.DB(), jobs.Options{ClientID: "t", Handlers: ctl.Handlers(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	ctl.SetQueue(q)
	return &env{t: t, st: st, ctl: ctl, base: time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond),
		handler: api.New(api.Options{Store: st, Controller: ctl, Tokens: tokens, AgentTokens: agentTokens,
			Registry: metrics.Registry, Logger: discard})}
}

func randomID(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// seeded is what seed stored.
type seeded struct {
	trigger, deploy, script, scale, failed store.Activity
}

// seed stores nodes, samples and activities.
func (e *env) seed() seeded {
	t, ctx := e.t, e.t.Context()
	t.Helper()
	for _, n := range []store.Node{
		{ID: "web-1", Cluster: "web", State: store.NodeInService, Address: "127.0.0.1:10001", Reason: "healthy"},
		{ID: "web-2", Cluster: "web", State: store.NodeProvisioning},
		{ID: "web-3", Cluster: "web", State: store.NodeInService, Address: "127.0.0.1:10003"},
		{ID: "api-1", Cluster: "api", State: store.NodeInService, Address: "127.0.0.1:10004"},
	} {
		if _, err := e.st.NodeCreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.st.NodeGet(ctx, "web-3")
	if err != nil {
		t.Fatal(err)
	}
	n.State, n.Reason = store.NodeTerminated, "scaled in"
	if _, err := e.st.NodeUpdate(ctx, n); err != nil {
		t.Fatal(err)
	}
	b := e.base
	if err := e.st.SampleInsert(ctx, []store.Sample{
		{Cluster: "web", Counter: "load", At: b, Value: 1, Reporting: 1},
		{Cluster: "web", Counter: "load", Node: "web-1", At: b, Value: 2},
		{Cluster: "web", Counter: "load", At: b.Add(5 * time.Minute), Value: 3, Reporting: 1},
		{Cluster: "web", Counter: "load", At: b.Add(8 * time.Minute), Err: "exec: timed out after 5s"},
		{Cluster: "web", Counter: "load", Node: "web-1", At: b.Add(8 * time.Minute), Err: "exec: timed out after 5s"},
		{Cluster: "web", Counter: "queue", At: b, Value: 7},
	}); err != nil {
		t.Fatal(err)
	}
	var s seeded
	create := func(a store.Activity) store.Activity {
		out, err := e.st.ActivityCreate(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	s.scale = create(store.Activity{Cluster: "web", Kind: "scale", Cause: "by hand", Status: store.ActivitySucceeded})
	s.failed = create(store.Activity{Cluster: "api", Node: "api-1", Kind: "node_failed", Cause: "health check", Status: store.ActivityFailed, Error: "refused"})
	s.trigger = create(store.Activity{Cluster: "web", Trigger: "up", Kind: "trigger", Cause: "load > 5", Status: store.ActivitySucceeded})
	s.deploy = create(store.Activity{ParentID: s.trigger.ID, Cluster: "web", Trigger: "up", Kind: "deploy_node", Status: store.ActivitySucceeded,
		Step: 0, Params: json.RawMessage(`{"count":2}`), Output: "2 nodes in service"})
	s.script = create(store.Activity{ParentID: s.trigger.ID, Cluster: "web", Trigger: "up", Kind: "local_script", Status: store.ActivityRunning, Step: 1})
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequestWithContext(e.t.Context(), method, path, r)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, req)
	return response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
}

// decode decodes the body strictly: every field must be known to v.
func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %T from %s: %v", v, r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return v
}

// apiError is the body of every error.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// wantError checks an error response: its status, JSON shape, code and message.
func wantError(t *testing.T, r response, status int, code, message string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	e := decode[apiError](t, r)
	if e.Error.Code != code || !strings.Contains(e.Error.Message, message) {
		t.Errorf("error = %+v, want code %q and a message containing %q", e.Error, code, message)
	}
}

func wantOK(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	e := newEnv(t, token)
	r := e.do("GET", "/healthz", "")
	if r.status != http.StatusOK || string(r.body) != "ok\n" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /healthz = %d %q %q", r.status, r.body, r.header.Get("Content-Type"))
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, token)
	// A firing shows in the metrics.
	wantOK(t, e.do("POST", "/api/v1/clusters/web/triggers/up/fire", "", "Authorization", "Bearer "+token), http.StatusAccepted)
	r := e.do("GET", "/metrics", "") // no token needed
	wantOK(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want Prometheus text", ct)
	}
	for _, want := range []string{
		"# TYPE goscaler_trigger_firings_total counter",
		`goscaler_trigger_firings_total{cluster="web",trigger="up"} 1`,
		"# TYPE go_goroutines gauge",
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

func TestNoMetricsWithoutRegistry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.handler = api.New(api.Options{Store: e.st, Controller: e.ctl, Logger: discard})
	if r := e.do("GET", "/metrics", ""); r.status != http.StatusNotFound {
		t.Errorf("GET /metrics without a registry = %d", r.status)
	}
	wantOK(t, e.do("GET", "/api/v1/clusters", ""), http.StatusOK)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	other := strings.Repeat("x", 32)
	e := newEnv(t, token, other)
	tests := []struct {
		name, path, auth string
		status           int
	}{
		{"no token", "/api/v1/clusters", "", http.StatusUnauthorized},
		{"wrong token", "/api/v1/clusters", "Bearer nope", http.StatusUnauthorized},
		{"token prefix", "/api/v1/clusters", "Bearer " + token[:16], http.StatusUnauthorized},
		{"not bearer", "/api/v1/clusters", "Basic " + token, http.StatusUnauthorized},
		{"bare token", "/api/v1/clusters", token, http.StatusUnauthorized},
		{"unknown route without token", "/api/v1/nope", "", http.StatusUnauthorized},
		{"good token", "/api/v1/clusters", "Bearer " + token, http.StatusOK},
		{"second token", "/api/v1/clusters", "Bearer " + other, http.StatusOK},
		{"good token, unknown route", "/api/v1/nope", "Bearer " + token, http.StatusNotFound},
		{"healthz needs none", "/healthz", "", http.StatusOK},
		{"healthz with a wrong one", "/healthz", "Bearer nope", http.StatusOK},
		{"metrics needs none", "/metrics", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r response
			if tt.auth == "" {
				r = e.do("GET", tt.path, "")
			} else {
				r = e.do("GET", tt.path, "", "Authorization", tt.auth)
			}
			if tt.status == http.StatusUnauthorized {
				wantError(t, r, http.StatusUnauthorized, "unauthorized", "Authorization: Bearer TOKEN")
				if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="goscaler"` {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				return
			}
			if r.status != tt.status {
				t.Errorf("status = %d, want %d (%s)", r.status, tt.status, r.body)
			}
		})
	}
}

// TestRoles: a viewer's token reads everything and changes nothing; an
// operator's token does both.
func TestRoles(t *testing.T) {
	t.Parallel()
	viewer, operator := strings.Repeat("v", 32), strings.Repeat("o", 32)
	e := newEnvTokens(t, []config.APIToken{{Token: viewer, Role: config.RoleViewer}, {Token: operator, Role: config.RoleOperator}})
	e.seed()
	tests := []struct {
		method, path, body, token string
		status                    int
	}{
		{"GET", "/api/v1/clusters", "", viewer, http.StatusOK},
		{"GET", "/api/v1/clusters/web", "", viewer, http.StatusOK},
		{"GET", "/api/v1/activities", "", viewer, http.StatusOK},
		{"POST", "/api/v1/clusters/web/scale", `{"desired": 3}`, viewer, http.StatusForbidden},
		{"POST", "/api/v1/clusters/web/triggers/up/fire", "", viewer, http.StatusForbidden},
		{"POST", "/api/v1/clusters/web/nodes/web-1/maintenance", `{"on": true}`, viewer, http.StatusForbidden},
		{"POST", "/api/v1/clusters/web/scale", `{"desired": 3}`, operator, http.StatusOK},
		{"POST", "/api/v1/clusters/web/nodes/web-1/maintenance", `{"on": true}`, operator, http.StatusOK},
	}
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, tt.body, "Authorization", "Bearer "+tt.token)
		role := "viewer"
		if tt.token == operator {
			role = "operator"
		}
		if tt.status == http.StatusForbidden {
			wantError(t, r, http.StatusForbidden, "forbidden", "role (viewer) may only read")
			continue
		}
		if r.status != tt.status {
			t.Errorf("%s %s as %s = %d, want %d (%s)", tt.method, tt.path, role, r.status, tt.status, r.body)
		}
	}
	// The viewer changed nothing.
	c, err := e.st.ClusterGet(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if c.Desired != 3 {
		t.Errorf("desired = %d after the operator's scale to 3", c.Desired)
	}
	if acts, _ := e.st.ActivityList(t.Context(), store.ActivityFilter{Cluster: "web", Kind: "trigger"}); len(acts) != 1 {
		t.Errorf("%d trigger activities after the viewer's refused fire, want the 1 seeded", len(acts))
	}
}

// clusterView is api.ClusterView as JSON.
type clusterView struct {
	Name         string         `json:"name"`
	Min          int            `json:"min"`
	Max          int            `json:"max"`
	Desired      int            `json:"desired"`
	Stopped      bool           `json:"stopped"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	InService    int            `json:"in_service"`
	Nodes        map[string]int `json:"nodes"`
	Provider     string         `json:"provider"`
	LoadBalancer string         `json:"load_balancer"`
	Counters     []string       `json:"counters"`
	Triggers     []string       `json:"triggers"`
}

type clusterDetail struct {
	clusterView
	NodeList     []store.Node                         `json:"node_list"`
	Readings     map[string]controller.CounterReading `json:"readings"`
	TriggerState []controller.TriggerStatus           `json:"trigger_states"`
	Recent       []store.Activity                     `json:"recent_activities"`
}

type counterSeries struct {
	Cluster   string         `json:"cluster"`
	Counter   string         `json:"counter"`
	Type      string         `json:"type"`
	Scope     string         `json:"scope"`
	Aggregate string         `json:"aggregate"`
	Interval  string         `json:"interval"`
	Samples   []store.Sample `json:"samples"`
	Errors    []store.Sample `json:"errors"`
}

type activityDetail struct {
	store.Activity
	Steps []store.Activity `json:"steps"`
}

type nodeDetail struct {
	store.Node
	Events   []store.NodeEvent        `json:"events"`
	Counters []controller.NodeReading `json:"counters"`
	Agent    *api.AgentView           `json:"agent"`
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("params %s: %v", raw, err)
	}
	return b.String()
}

func ids(acts []store.Activity) []int64 {
	out := make([]int64, 0, len(acts))
	for _, a := range acts {
		out = append(out, a.ID)
	}
	return out
}

// TestReadRoutes checks every GET route's happy path on one seeded store.
func TestReadRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.seed()
	tests := []struct {
		name  string
		path  string
		check func(t *testing.T, r response)
	}{
		{"clusters", "/api/v1/clusters", func(t *testing.T, r response) {
			// The keys clients rely on are there.
			var raw []map[string]any
			if err := json.Unmarshal(r.body, &raw); err != nil || len(raw) != 2 {
				t.Fatalf("body %s: %v", r.body, err)
			}
			for _, key := range []string{"name", "min", "max", "desired", "in_service", "nodes", "provider", "counters", "triggers"} {
				if _, ok := raw[0][key]; !ok {
					t.Errorf("cluster item has no %q: %s", key, r.body)
				}
			}
			got := decode[[]clusterView](t, r)
			web, apiC := got[0], got[1]
			if web.Name != "web" || web.Min != 1 || web.Max != 5 || web.Desired != 2 || web.InService != 1 ||
				web.Provider != "process" || web.LoadBalancer != "" ||
				!slices.Equal(web.Counters, []string{"load", "queue"}) || !slices.Equal(web.Triggers, []string{"up", "down"}) {
				t.Errorf("web = %+v", web)
			}
			// Terminated nodes are not counted.
			if len(web.Nodes) != 2 || web.Nodes["in_service"] != 1 || web.Nodes["provisioning"] != 1 {
				t.Errorf("web nodes = %v", web.Nodes)
			}
			if apiC.Name != "api" || apiC.Min != 0 || apiC.Max != 2 || apiC.Desired != 0 || apiC.InService != 1 ||
				apiC.LoadBalancer != "builtin 127.0.0.1:0" || len(apiC.Counters) != 0 || apiC.Triggers == nil {
				t.Errorf("api = %+v", apiC)
			}
		}},
		{"cluster", "/api/v1/clusters/web", func(t *testing.T, r response) {
			d := decode[clusterDetail](t, r)
			if d.Name != "web" || d.InService != 1 || len(d.NodeList) != 2 || d.NodeList[0].ID != "web-1" || d.NodeList[1].ID != "web-2" {
				t.Errorf("detail = %+v", d)
			}
			if d.Readings == nil || len(d.Readings) != 0 {
				t.Errorf("readings = %v, want {} (nothing collected)", d.Readings)
			}
			if len(d.TriggerState) != 2 || d.TriggerState[0].Name != "up" {
				t.Errorf("trigger_states = %+v", d.TriggerState)
			}
			// Newest first, this cluster's only.
			if got := ids(d.Recent); !slices.Equal(got, []int64{s.script.ID, s.deploy.ID, s.trigger.ID, s.scale.ID}) {
				t.Errorf("recent_activities = %v", got)
			}
		}},
		{"cluster without nodes", "/api/v1/clusters/api", func(t *testing.T, r response) {
			d := decode[clusterDetail](t, r)
			if d.Name != "api" || len(d.NodeList) != 1 || len(d.TriggerState) != 0 {
				t.Errorf("detail = %+v", d)
			}
			if !bytes.Contains(r.body, []byte(`"trigger_states": null`)) && !bytes.Contains(r.body, []byte(`"trigger_states": []`)) {
				t.Errorf("body %s", r.body)
			}
		}},
		{"nodes", "/api/v1/clusters/web/nodes", func(t *testing.T, r response) {
			got := decode[[]store.Node](t, r)
			if len(got) != 2 || got[0].ID != "web-1" || got[0].Address != "127.0.0.1:10001" || got[0].State != store.NodeInService {
				t.Errorf("nodes = %+v", got)
			}
		}},
		{"all nodes", "/api/v1/clusters/web/nodes?all=true", func(t *testing.T, r response) {
			got := decode[[]store.Node](t, r)
			if len(got) != 3 || got[2].ID != "web-3" || got[2].State != store.NodeTerminated {
				t.Errorf("nodes = %+v", got)
			}
		}},
		{"no nodes", "/api/v1/clusters/api/nodes?all=false", func(t *testing.T, r response) {
			if got := decode[[]store.Node](t, r); len(got) != 1 {
				t.Errorf("nodes = %+v", got)
			}
		}},
		{"node", "/api/v1/clusters/web/nodes/web-3", func(t *testing.T, r response) {
			d := decode[nodeDetail](t, r)
			if d.ID != "web-3" || d.State != store.NodeTerminated || len(d.Events) != 2 ||
				d.Events[0].To != store.NodeInService || d.Events[1].From != store.NodeInService ||
				d.Events[1].To != store.NodeTerminated || d.Events[1].Reason != "scaled in" {
				t.Errorf("node = %+v", d)
			}
		}},
		{"readings", "/api/v1/clusters/web/counters", func(t *testing.T, r response) {
			if got := decode[map[string]controller.CounterReading](t, r); got == nil || len(got) != 0 {
				t.Errorf("readings = %v", got)
			}
		}},
		{"counter", "/api/v1/clusters/web/counters/load", func(t *testing.T, r response) {
			c := decode[counterSeries](t, r)
			if c.Cluster != "web" || c.Counter != "load" || c.Type != "exec" || c.Scope != "cluster" || c.Aggregate != "avg" || c.Interval != "5s" {
				t.Errorf("series = %+v", c)
			}
			// Oldest first, node samples too, not the other counter's.
			if len(c.Samples) != 5 || c.Samples[0].Value+c.Samples[1].Value != 3 || !c.Samples[0].At.Equal(e.base) {
				t.Fatalf("samples = %+v", c.Samples)
			}
			if len(c.Errors) != 2 || c.Errors[0].Err != "exec: timed out after 5s" || c.Errors[0].Value != 0 {
				t.Errorf("errors = %+v", c.Errors)
			}
			if !bytes.Contains(r.body, []byte(`"error": "exec: timed out after 5s"`)) {
				t.Errorf("a failed sample has no \"error\": %s", r.body)
			}
		}},
		{"counter aggregate", "/api/v1/clusters/web/counters/load?aggregate=true", func(t *testing.T, r response) {
			c := decode[counterSeries](t, r)
			if len(c.Samples) != 3 || len(c.Errors) != 1 || slices.ContainsFunc(c.Samples, func(s store.Sample) bool { return s.Node != "" }) {
				t.Errorf("samples %+v errors %+v", c.Samples, c.Errors)
			}
		}},
		{"counter limit", "/api/v1/clusters/web/counters/load?aggregate=true&limit=2", func(t *testing.T, r response) {
			c := decode[counterSeries](t, r)
			// The newest two, oldest first.
			if len(c.Samples) != 2 || c.Samples[0].Value != 3 || c.Samples[1].Err == "" {
				t.Errorf("samples = %+v", c.Samples)
			}
		}},
		{"counter since duration", "/api/v1/clusters/web/counters/load?since=4m", func(t *testing.T, r response) {
			c := decode[counterSeries](t, r)
			if len(c.Samples) != 2 || len(c.Errors) != 2 {
				t.Errorf("samples = %+v", c.Samples)
			}
		}},
		{"counter since time", "/api/v1/clusters/web/counters/load?aggregate=true&since=" + e.base.Add(time.Minute).UTC().Format(time.RFC3339), func(t *testing.T, r response) {
			c := decode[counterSeries](t, r)
			if len(c.Samples) != 2 || c.Samples[0].Value != 3 {
				t.Errorf("samples = %+v", c.Samples)
			}
		}},
		{"counter without samples", "/api/v1/clusters/web/counters/queue?since=1s", func(t *testing.T, r response) {
			c := decode[counterSeries](t, r)
			if c.Samples == nil || c.Errors == nil || len(c.Samples) != 0 || c.Aggregate != "sum" {
				t.Errorf("series = %+v", c)
			}
			if !bytes.Contains(r.body, []byte(`"samples": []`)) || !bytes.Contains(r.body, []byte(`"errors": []`)) {
				t.Errorf("empty lists are not [] in %s", r.body)
			}
		}},
		{"cluster triggers", "/api/v1/clusters/web/triggers", func(t *testing.T, r response) {
			got := decode[[]controller.TriggerStatus](t, r)
			if len(got) != 2 {
				t.Fatalf("triggers = %+v", got)
			}
			up, down := got[0], got[1]
			if up.Cluster != "web" || up.Name != "up" || !slices.Equal(up.Conditions, []string{"load > 5"}) || up.For != "30s" ||
				up.Cooldown != "1m0s" || !slices.Equal(up.Actions, []string{"deploy_node", "local_script"}) || up.State.Trigger != "up" {
				t.Errorf("up = %+v", up)
			}
			if !slices.Equal(down.Conditions, []string{"load < 1", "queue < 1"}) || !slices.Equal(down.Actions, []string{"remove_node"}) {
				t.Errorf("down = %+v", down)
			}
		}},
		{"cluster without triggers", "/api/v1/clusters/api/triggers", func(t *testing.T, r response) {
			if got := decode[[]controller.TriggerStatus](t, r); got == nil || len(got) != 0 {
				t.Errorf("triggers = %+v, want []", got)
			}
		}},
		{"all triggers", "/api/v1/triggers", func(t *testing.T, r response) {
			if got := decode[[]controller.TriggerStatus](t, r); len(got) != 2 {
				t.Errorf("triggers = %+v", got)
			}
		}},
		{"triggers of a cluster", "/api/v1/triggers?cluster=api", func(t *testing.T, r response) {
			if got := decode[[]controller.TriggerStatus](t, r); got == nil || len(got) != 0 {
				t.Errorf("triggers = %+v", got)
			}
		}},
		{"activities", "/api/v1/activities", func(t *testing.T, r response) {
			got := decode[[]store.Activity](t, r)
			if !slices.Equal(ids(got), []int64{s.script.ID, s.deploy.ID, s.trigger.ID, s.failed.ID, s.scale.ID}) {
				t.Errorf("activities = %v, want newest first", ids(got))
			}
		}},
		{"activities of a cluster", "/api/v1/activities?cluster=api", func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); !slices.Equal(ids(got), []int64{s.failed.ID}) || got[0].Error != "refused" || got[0].Node != "api-1" {
				t.Errorf("activities = %+v", got)
			}
		}},
		{"activities of a kind", "/api/v1/activities?kind=trigger", func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); !slices.Equal(ids(got), []int64{s.trigger.ID}) {
				t.Errorf("activities = %v", ids(got))
			}
		}},
		{"activities of a status", "/api/v1/activities?status=succeeded&cluster=web", func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); !slices.Equal(ids(got), []int64{s.deploy.ID, s.trigger.ID, s.scale.ID}) {
				t.Errorf("activities = %v", ids(got))
			}
		}},
		{"activities after", fmt.Sprintf("/api/v1/activities?after=%d", s.trigger.ID), func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); !slices.Equal(ids(got), []int64{s.script.ID, s.deploy.ID}) {
				t.Errorf("activities = %v", ids(got))
			}
		}},
		{"activities limit", "/api/v1/activities?limit=2", func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); !slices.Equal(ids(got), []int64{s.script.ID, s.deploy.ID}) {
				t.Errorf("activities = %v", ids(got))
			}
		}},
		{"activities of a parent", fmt.Sprintf("/api/v1/activities?parent=%d", s.trigger.ID), func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); !slices.Equal(ids(got), []int64{s.script.ID, s.deploy.ID}) {
				t.Errorf("activities = %v", ids(got))
			}
		}},
		{"no activities", "/api/v1/activities?kind=nothing", func(t *testing.T, r response) {
			if got := decode[[]store.Activity](t, r); got == nil || len(got) != 0 || !bytes.HasPrefix(r.body, []byte("[]")) {
				t.Errorf("activities = %s, want []", r.body)
			}
		}},
		{"activity with steps", fmt.Sprintf("/api/v1/activities/%d", s.trigger.ID), func(t *testing.T, r response) {
			d := decode[activityDetail](t, r)
			if d.ID != s.trigger.ID || d.Kind != "trigger" || d.Cause != "load > 5" || d.Trigger != "up" {
				t.Errorf("activity = %+v", d.Activity)
			}
			// Steps in the order they run.
			if len(d.Steps) != 2 || d.Steps[0].ID != s.deploy.ID || d.Steps[0].Step != 0 || d.Steps[1].ID != s.script.ID || d.Steps[1].Step != 1 {
				t.Fatalf("steps = %+v", d.Steps)
			}
			if compact(t, d.Steps[0].Params) != `{"count":2}` || d.Steps[0].Output != "2 nodes in service" || d.Steps[1].Status != store.ActivityRunning {
				t.Errorf("step 0 = %+v", d.Steps[0])
			}
		}},
		{"activity without steps", fmt.Sprintf("/api/v1/activities/%d", s.scale.ID), func(t *testing.T, r response) {
			d := decode[activityDetail](t, r)
			if d.ID != s.scale.ID || d.Steps == nil || len(d.Steps) != 0 {
				t.Errorf("activity = %+v", d)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.do("GET", tt.path, "")
			wantOK(t, r, http.StatusOK)
			tt.check(t, r)
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.seed()
	tests := []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"unknown cluster", "GET", "/api/v1/clusters/nope", "", 404, "not_found", `cluster "nope": not found`},
		{"nodes of an unknown cluster", "GET", "/api/v1/clusters/nope/nodes", "", 404, "not_found", `cluster "nope"`},
		{"unknown node", "GET", "/api/v1/clusters/web/nodes/web-9", "", 404, "not_found", "not found"},
		{"node of another cluster", "GET", "/api/v1/clusters/api/nodes/web-1", "", 404, "not_found", `node "web-1" of cluster "api"`},
		{"readings of an unknown cluster", "GET", "/api/v1/clusters/nope/counters", "", 404, "not_found", `cluster "nope"`},
		{"counter of an unknown cluster", "GET", "/api/v1/clusters/nope/counters/load", "", 404, "not_found", `cluster "nope"`},
		{"unknown counter", "GET", "/api/v1/clusters/web/counters/nope", "", 404, "not_found", `cluster "web" has no counter "nope"`},
		{"triggers of an unknown cluster", "GET", "/api/v1/clusters/nope/triggers", "", 404, "not_found", `cluster "nope"`},
		{"triggers filtered by an unknown cluster", "GET", "/api/v1/triggers?cluster=nope", "", 404, "not_found", `cluster "nope"`},
		{"fire an unknown trigger", "POST", "/api/v1/clusters/web/triggers/nope/fire", "", 404, "not_found", `cluster "web" has no trigger "nope"`},
		{"fire in an unknown cluster", "POST", "/api/v1/clusters/nope/triggers/up/fire", "", 404, "not_found", `cluster "nope"`},
		{"scale an unknown cluster", "POST", "/api/v1/clusters/nope/scale", `{"desired": 1}`, 404, "not_found", `cluster "nope"`},
		{"unknown activity", "GET", "/api/v1/activities/999999", "", 404, "not_found", "not found"},
		{"unknown route", "GET", "/api/v1/nope", "", 404, "not_found", "no API route GET /api/v1/nope"},
		{"unknown version", "GET", "/api/v2/clusters", "", 404, "not_found", "no API route GET /api/v2/clusters"},
		{"wrong method", "DELETE", "/api/v1/clusters/web", "", 404, "not_found", "no API route DELETE /api/v1/clusters/web"},
		{"GET an action", "GET", "/api/v1/clusters/web/scale", "", 404, "not_found", "no API route GET"},
		{"activity id not a number", "GET", "/api/v1/activities/first", "", 400, "bad_request", `activity id "first" is not a number`},
		{"limit zero", "GET", "/api/v1/activities?limit=0", "", 400, "bad_request", `limit "0" must be a number from 1 to 1000`},
		{"limit too big", "GET", "/api/v1/activities?limit=1001", "", 400, "bad_request", "from 1 to 1000"},
		{"limit not a number", "GET", "/api/v1/activities?limit=ten", "", 400, "bad_request", `limit "ten"`},
		{"after not a number", "GET", "/api/v1/activities?after=x", "", 400, "bad_request", `after "x" is not a number`},
		{"parent not a number", "GET", "/api/v1/activities?parent=1.5", "", 400, "bad_request", `parent "1.5" is not a number`},
		{"sample limit", "GET", "/api/v1/clusters/web/counters/load?limit=0", "", 400, "bad_request", `limit "0" must be a number from 1 to 10000`},
		{"sample limit too big", "GET", "/api/v1/clusters/web/counters/load?limit=10001", "", 400, "bad_request", "from 1 to 10000"},
		{"bad since", "GET", "/api/v1/clusters/web/counters/load?since=yesterday", "", 400, "bad_request", `since "yesterday" is neither an RFC 3339 time nor a duration`},
		{"bad JSON", "POST", "/api/v1/clusters/web/scale", `{"desired":`, 400, "bad_request", "invalid JSON body"},
		{"empty body", "POST", "/api/v1/clusters/web/scale", "", 400, "bad_request", "invalid JSON body"},
		{"unknown field", "POST", "/api/v1/clusters/web/scale", `{"desired": 2, "force": true}`, 400, "bad_request", `unknown field "force"`},
		{"desired not a number", "POST", "/api/v1/clusters/web/scale", `{"desired": "3"}`, 400, "bad_request", "invalid JSON body"},
		{"missing desired", "POST", "/api/v1/clusters/web/scale", `{}`, 400, "bad_request", `body must be {"desired": N}`},
		{"null desired", "POST", "/api/v1/clusters/web/scale", `{"desired": null}`, 400, "bad_request", `body must be {"desired": N}`},
		{"trailing data", "POST", "/api/v1/clusters/web/scale", `{"desired": 2} {"desired": 3}`, 400, "bad_request", "invalid JSON body"},
		{"desired above max", "POST", "/api/v1/clusters/web/scale", `{"desired": 6}`, 422, "invalid", "desired 6 is outside min..max (1..5)"},
		{"desired below min", "POST", "/api/v1/clusters/web/scale", `{"desired": 0}`, 422, "invalid", "desired 0 is outside min..max (1..5)"},
		{"dry-run scale out of bounds", "POST", "/api/v1/clusters/web/scale?dry_run=true", `{"desired": 6}`, 422, "invalid", "desired 6 is outside min..max (1..5)"},
		{"bad dry_run", "POST", "/api/v1/clusters/web/scale?dry_run=maybe", `{"desired": 2}`, 400, "bad_request", `dry_run "maybe" must be true or false`},
		{"bad dry_run of destroy", "POST", "/api/v1/clusters/web/destroy?dry_run=yes", "", 400, "bad_request", `dry_run "yes"`},
		{"stop an unknown cluster", "POST", "/api/v1/clusters/nope/stop", "", 404, "not_found", `cluster "nope"`},
		{"start an unknown cluster", "POST", "/api/v1/clusters/nope/start", "", 404, "not_found", `cluster "nope"`},
		{"destroy an unknown cluster", "POST", "/api/v1/clusters/nope/destroy", "", 404, "not_found", `cluster "nope"`},
		{"GET destroy", "GET", "/api/v1/clusters/web/destroy", "", 404, "not_found", "no API route GET"},
		{"maintenance of a terminated node", "POST", "/api/v1/clusters/web/nodes/web-3/maintenance", `{"on": true}`, 422, "invalid", "node web-3 is terminated: only a live node"},
		{"maintenance in another cluster", "POST", "/api/v1/clusters/api/nodes/web-1/maintenance", `{"on": true}`, 404, "not_found", `node "web-1" of cluster "api"`},
		{"maintenance of an unknown node", "POST", "/api/v1/clusters/web/nodes/nope/maintenance", `{"on": true}`, 404, "not_found", "not found"},
		{"maintenance without on", "POST", "/api/v1/clusters/web/nodes/web-1/maintenance", `{}`, 400, "bad_request", `body must be {"on": true} or {"on": false}`},
		{"maintenance with a string", "POST", "/api/v1/clusters/web/nodes/web-1/maintenance", `{"on": "yes"}`, 400, "bad_request", "invalid JSON body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, e.do(tt.method, tt.path, tt.body), tt.status, tt.code, tt.message)
		})
	}
	// None of the refused requests changed anything.
	c, err := e.st.ClusterGet(t.Context(), "web")
	if err != nil || c.Desired != 2 {
		t.Errorf("web after refused requests = %+v, %v", c, err)
	}
	acts, err := e.st.ActivityList(t.Context(), store.ActivityFilter{AfterID: s.script.ID})
	if err != nil || len(acts) != 0 {
		t.Errorf("refused requests recorded activities: %+v, %v", acts, err)
	}
}

// maintenanceResult is api.MaintenanceResult as JSON.
type maintenanceResult struct {
	Node     store.Node      `json:"node"`
	Activity *store.Activity `json:"activity"`
}

func TestMaintenance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.seed()
	tests := []struct {
		name, node, body string
		want             bool
		output           string // of the activity; "" for none
	}{
		{"on, no load balancer", "web/nodes/web-1", `{"on": true}`, true, "the node is not in a load balancer: nothing to do there"},
		{"on again", "web/nodes/web-1", `{"on": true}`, true, ""},
		{"off", "web/nodes/web-1", `{"on": false}`, false, "the node is not in a load balancer: nothing to do there"},
		{"on, behind the load balancer", "api/nodes/api-1", `{"on": true}`, true, "out of the load balancer; in-flight requests drained in"},
		{"off, behind the load balancer", "api/nodes/api-1", `{"on": false}`, false, "back in the load balancer"},
	}
	for _, tt := range tests {
		r := e.do("POST", "/api/v1/clusters/"+tt.node+"/maintenance", tt.body)
		wantOK(t, r, http.StatusOK)
		got := decode[maintenanceResult](t, r)
		if got.Node.Maintenance != tt.want {
			t.Errorf("%s: maintenance = %v", tt.name, got.Node.Maintenance)
		}
		if (got.Activity != nil) != (tt.output != "") {
			t.Fatalf("%s: activity %+v, want one: %v", tt.name, got.Activity, tt.output != "")
		}
		if got.Activity == nil {
			continue
		}
		// Leaving the load balancer drains in the background.
		var act store.Activity
		deadline := time.Now().Add(5 * time.Second)
		for {
			act = decode[activityDetail](t, e.do("GET", fmt.Sprintf("/api/v1/activities/%d", got.Activity.ID), "")).Activity
			if act.Status.Done() || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if act.Kind != "maintenance" || act.Status != store.ActivitySucceeded || !strings.HasPrefix(act.Output, tt.output) {
			t.Errorf("%s: activity %s %s %q, want maintenance succeeded %q", tt.name, act.Kind, act.Status, act.Output, tt.output)
		}
		if n := decode[nodeDetail](t, e.do("GET", "/api/v1/clusters/"+tt.node, "")); n.Maintenance != tt.want {
			t.Errorf("%s: GET node maintenance = %v", tt.name, n.Maintenance)
		}
	}
}

func TestScale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/api/v1/clusters/web/scale", `{"desired": 4}`)
	wantOK(t, r, http.StatusOK)
	got := decode[store.Cluster](t, r)
	if got.Name != "web" || got.Desired != 4 || got.Min != 1 || got.Max != 5 {
		t.Errorf("scale = %+v", got)
	}
	if v := decode[clusterDetail](t, e.do("GET", "/api/v1/clusters/web", "")); v.Desired != 4 {
		t.Errorf("cluster after scale = %+v", v.clusterView)
	}
	acts := decode[[]store.Activity](t, e.do("GET", "/api/v1/activities?kind=scale", ""))
	if len(acts) != 1 || acts[0].Cluster != "web" || acts[0].Status != store.ActivitySucceeded || !strings.Contains(acts[0].Cause, "desired 2 → 4") {
		t.Errorf("scale activity = %+v", acts)
	}
	// The bounds are inclusive.
	for _, d := range []int{1, 5} {
		wantOK(t, e.do("POST", "/api/v1/clusters/web/scale", fmt.Sprintf(`{"desired": %d}`, d)), http.StatusOK)
	}
}

func TestScaleDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/api/v1/clusters/web/scale?dry_run=true", `{"desired": 4}`)
	wantOK(t, r, http.StatusOK)
	p := decode[controller.ScalePlan](t, r)
	if !p.DryRun || p.Cluster != "web" || p.Desired != 2 || p.NewDesired != 4 || p.Active != 0 ||
		!slices.Equal(p.Launch, []string{"web-1", "web-2", "web-3", "web-4"}) || len(p.Remove) != 0 {
		t.Errorf("dry-run scale = %+v", p)
	}
	if len(p.Calls) != 4 || p.Calls[0] != "create a machine for node web-1 (provider process)" {
		t.Errorf("planned calls = %q", p.Calls)
	}
	if c, _ := e.st.ClusterGet(t.Context(), "web"); c.Desired != 2 {
		t.Errorf("a dry-run scale changed desired to %d", c.Desired)
	}
	acts := decode[[]store.Activity](t, e.do("GET", "/api/v1/activities?kind=dry_run", ""))
	if len(acts) != 1 || acts[0].ID != p.Activity || !strings.Contains(acts[0].Cause, "desired 2 → 4 would create a machine for node web-1") {
		t.Errorf("dry_run activities = %+v", acts)
	}
	if got := decode[[]store.Activity](t, e.do("GET", "/api/v1/activities?kind=scale", "")); len(got) != 0 {
		t.Errorf("a dry-run scale recorded a scale: %+v", got)
	}
}

func TestStopStartDestroy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/api/v1/clusters/web/stop", "")
	wantOK(t, r, http.StatusOK)
	if c := decode[store.Cluster](t, r); !c.Stopped || c.Desired != 2 {
		t.Errorf("stop = %+v", c)
	}
	if v := decode[clusterDetail](t, e.do("GET", "/api/v1/clusters/web", "")); !v.Stopped {
		t.Errorf("cluster after stop = %+v", v.clusterView)
	}
	r = e.do("POST", "/api/v1/clusters/web/start", "")
	wantOK(t, r, http.StatusOK)
	if c := decode[store.Cluster](t, r); c.Stopped {
		t.Errorf("start = %+v", c)
	}
	// A dry-run destroy changes nothing.
	r = e.do("POST", "/api/v1/clusters/web/destroy?dry_run=true", "")
	wantOK(t, r, http.StatusOK)
	if d := decode[controller.DestroyResult](t, r); !d.DryRun || d.Cluster != "web" || len(d.Removed) != 0 || d.Activity == 0 {
		t.Errorf("dry-run destroy = %+v", d)
	}
	if c, _ := e.st.ClusterGet(t.Context(), "web"); c.Stopped {
		t.Errorf("a dry-run destroy stopped the cluster")
	}
	// A node left from before: destroy terminates it and stops the cluster.
	if _, err := e.st.NodeCreate(t.Context(), store.Node{ID: "web-1", Cluster: "web", State: store.NodePending}); err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", "/api/v1/clusters/web/destroy", "")
	wantOK(t, r, http.StatusOK)
	d := decode[controller.DestroyResult](t, r)
	if d.DryRun || len(d.Errors) != 0 || len(d.Removed) != 1 || d.Removed[0] != (controller.Removal{What: "node", ID: "web-1", Node: "web-1", Detail: "was pending"}) {
		t.Errorf("destroy = %+v", d)
	}
	if c, _ := e.st.ClusterGet(t.Context(), "web"); !c.Stopped {
		t.Errorf("destroy left the cluster started")
	}
	r = e.do("POST", "/api/v1/clusters/destroy", "")
	wantOK(t, r, http.StatusOK)
	all := decode[[]controller.DestroyResult](t, r)
	if len(all) != 2 || all[0].Cluster != "web" || all[1].Cluster != "api" {
		t.Errorf("destroy all = %+v", all)
	}
	kinds := map[string]int{}
	for _, a := range decode[[]store.Activity](t, e.do("GET", "/api/v1/activities", "")) {
		kinds[a.Kind]++
	}
	if kinds["stop"] != 1 || kinds["start"] != 1 || kinds["destroy"] != 3 || kinds["dry_run"] != 1 {
		t.Errorf("activities by kind = %v", kinds)
	}
}

func TestFire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/api/v1/clusters/web/triggers/up/fire", "")
	wantOK(t, r, http.StatusAccepted)
	parent := decode[store.Activity](t, r)
	if parent.ID == 0 || parent.Kind != "trigger" || parent.Cluster != "web" || parent.Trigger != "up" ||
		parent.Status != store.ActivitySucceeded || !strings.Contains(parent.Cause, "fired by hand through the API") {
		t.Errorf("fire = %+v", parent)
	}
	d := decode[activityDetail](t, e.do("GET", fmt.Sprintf("/api/v1/activities/%d", parent.ID), ""))
	if d.ID != parent.ID || len(d.Steps) != 2 {
		t.Fatalf("activity = %+v", d)
	}
	for i, kind := range []string{"deploy_node", "local_script"} {
		st := d.Steps[i]
		if st.Kind != kind || st.Step != i || st.ParentID != parent.ID || st.Status != store.ActivityPending || st.Trigger != "up" {
			t.Errorf("step %d = %+v", i, st)
		}
	}
	if compact(t, d.Steps[0].Params) != `{"count":2}` {
		t.Errorf("deploy_node params = %s", d.Steps[0].Params)
	}
	// The steps are listed too, and filter by kind and status.
	if got := decode[[]store.Activity](t, e.do("GET", "/api/v1/activities?status=pending&cluster=web", "")); len(got) != 2 {
		t.Errorf("pending activities = %+v", got)
	}
	if got := decode[[]store.Activity](t, e.do("GET", "/api/v1/activities?kind=local_script", "")); len(got) != 1 || got[0].Step != 1 {
		t.Errorf("local_script activities = %+v", got)
	}
	// A trigger with one action.
	r = e.do("POST", "/api/v1/clusters/web/triggers/down/fire", "")
	wantOK(t, r, http.StatusAccepted)
	down := decode[store.Activity](t, r)
	if d := decode[activityDetail](t, e.do("GET", fmt.Sprintf("/api/v1/activities/%d", down.ID), "")); len(d.Steps) != 1 || d.Steps[0].Kind != "remove_node" {
		t.Errorf("down = %+v", d)
	}
}

// A value JSON cannot encode is a JSON error, not a 200 with an empty body.
func TestUnencodableValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A reading stored without a value and without an error comes back NaN.
	if err := e.st.SampleInsert(t.Context(), []store.Sample{{Cluster: "web", Counter: "load", At: time.Now(), Value: math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	wantError(t, e.do("GET", "/api/v1/clusters/web/counters/load", ""), http.StatusInternalServerError, "internal", "NaN")
}
