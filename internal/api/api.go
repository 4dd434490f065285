// Package api serves goscaler's REST API under /api/v1/, /healthz and
// /metrics. Handlers return a value or an error; one wrapper writes JSON and
// maps errors to status codes, so every error is JSON with a code and a
// message.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/goscaler/goscaler/internal/agent"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/perfdata"
	"github.com/goscaler/goscaler/internal/store"
)

// Options configures the API.
type Options struct {
	Store      store.Store
	Controller *controller.Controller
	// Tokens, when not empty, are required as bearer tokens on /api/; a
	// viewer's token may only read (GET), an operator's may also act (POST).
	Tokens []config.APIToken
	// AgentTokens are accepted, besides operators' Tokens, on the agent
	// endpoint only (POST /api/v1/agent/heartbeat).
	AgentTokens []string
	Registry    *prometheus.Registry
	Logger      *slog.Logger
}

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type apiError struct {
	status int
	code   string
	err    error
}

func (e *apiError) Error() string { return e.err.Error() }
func (e *apiError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", err: fmt.Errorf(format, args...)}
}

type handler func(r *http.Request) (any, int, error)

// New returns the HTTP handler of the API, health check and metrics.
func New(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	a := &api{opts: opts, st: opts.Store, ctl: opts.Controller, data: Data{Store: opts.Store, Controller: opts.Controller}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if opts.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{}))
	}
	routes := []struct {
		pattern string
		h       handler
	}{
		{"GET /api/v1/clusters", a.listClusters},
		{"GET /api/v1/clusters/{name}", a.getCluster},
		{"GET /api/v1/clusters/{name}/nodes", a.listNodes},
		{"GET /api/v1/clusters/{name}/nodes/{node}", a.getNode},
		{"POST /api/v1/clusters/{name}/nodes/{node}/maintenance", a.maintenance},
		{"GET /api/v1/clusters/{name}/counters", a.listCounters},
		{"GET /api/v1/clusters/{name}/counters/{counter}", a.getCounter},
		{"POST /api/v1/clusters/{name}/scale", a.scale},
		{"POST /api/v1/clusters/{name}/stop", a.stop},
		{"POST /api/v1/clusters/{name}/start", a.start},
		{"POST /api/v1/clusters/{name}/destroy", a.destroy},
		{"POST /api/v1/clusters/destroy", a.destroyAll},
		{"GET /api/v1/clusters/{name}/triggers", a.listTriggers},
		{"POST /api/v1/clusters/{name}/triggers/{trigger}/fire", a.fire},
		{"POST /api/v1/clusters/{name}/exec", a.exec},
		{"GET /api/v1/clusters/{name}/nodes/{node}/ssh", a.nodeSSH},
		{"POST /api/v1/clusters/{name}/nodes/{node}/reconfigure", a.reconfigure},
		{"GET /api/v1/triggers", a.listTriggers},
		{"GET /api/v1/activities", a.listActivities},
		{"GET /api/v1/activities/{id}", a.getActivity},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, a.auth(a.wrap(rt.h)))
	}
	// Agents may use an agent token, which opens nothing else.
	mux.Handle("POST "+agent.HeartbeatPath, a.agentAuth(a.wrap(a.agentHeartbeat)))
	mux.Handle("/api/", a.auth(a.wrap(func(r *http.Request) (any, int, error) {
		return nil, 0, &apiError{status: http.StatusNotFound, code: "not_found",
			err: fmt.Errorf("no API route %s %s; see the README's API reference", r.Method, r.URL.Path)}
	})))
	return mux
}

type api struct {
	opts Options
	st   store.Store
	ctl  *controller.Controller
	data Data
}

// auth requires a bearer token on /api/ when tokens are configured, and an
// operator's token for anything but reading.
func (a *api) auth(next http.Handler) http.Handler {
	if len(a.opts.Tokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The scheme name is case-insensitive (RFC 7235).
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		role, known := config.Role(""), false
		if ok && strings.EqualFold(scheme, "Bearer") {
			role, known = TokenRole(a.opts.Tokens, got)
		}
		switch {
		case !known:
			w.Header().Set("WWW-Authenticate", `Bearer realm="goscaler"`)
			_ = writeJSON(w, http.StatusUnauthorized, map[string]Error{"error": {Code: "unauthorized",
				Message: "this API needs a valid token: send Authorization: Bearer TOKEN (goscaler --token or GOSCALER_TOKEN)"}})
		case !role.CanAct() && r.Method != http.MethodGet && r.Method != http.MethodHead:
			_ = writeJSON(w, http.StatusForbidden, map[string]Error{"error": {Code: "forbidden",
				Message: fmt.Sprintf("this token's role (%s) may only read: %s %s needs an operator's token", role, r.Method, r.URL.Path)}})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// agentAuth guards the agent endpoint: an agent token or an operator's API
// token, when there are tokens of either kind.
func (a *api) agentAuth(next http.Handler) http.Handler {
	if len(a.opts.Tokens) == 0 && len(a.opts.AgentTokens) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		allowed := false
		if ok && strings.EqualFold(scheme, "Bearer") && got != "" {
			for _, t := range a.opts.AgentTokens {
				if subtle.ConstantTimeCompare([]byte(got), []byte(t)) == 1 {
					allowed = true
				}
			}
			if role, known := TokenRole(a.opts.Tokens, got); known && role.CanAct() {
				allowed = true
			}
		}
		if !allowed {
			w.Header().Set("WWW-Authenticate", `Bearer realm="goscaler"`)
			_ = writeJSON(w, http.StatusUnauthorized, map[string]Error{"error": {Code: "unauthorized",
				Message: "the agent endpoint needs a valid token: send Authorization: Bearer TOKEN, one of the server's agent_tokens (goscaler agent --token, or GOSCALER_AGENT_TOKEN)"}})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TokenRole returns the role of token among tokens, comparing in constant
// time; ok is false if the token is not one of them.
func TokenRole(tokens []config.APIToken, token string) (role config.Role, ok bool) {
	for _, t := range tokens {
		if subtle.ConstantTimeCompare([]byte(token), []byte(t.Token)) == 1 && token != "" {
			role, ok = t.Role, true
		}
	}
	return role, ok
}

func (a *api) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, status, err := h(r)
		if err != nil {
			var ae *apiError
			switch {
			case errors.As(err, &ae):
			case errors.Is(err, store.ErrNotFound):
				ae = &apiError{status: http.StatusNotFound, code: "not_found", err: err}
			case errors.Is(err, controller.ErrInvalid):
				ae = &apiError{status: http.StatusUnprocessableEntity, code: "invalid", err: err}
			case errors.Is(err, controller.ErrGone):
				ae = &apiError{status: http.StatusConflict, code: "gone", err: err}
			case errors.Is(err, perfdata.ErrBadQuery):
				ae = &apiError{status: http.StatusBadRequest, code: "bad_request", err: err}
			case errors.Is(err, context.Canceled):
				ae = &apiError{status: 499, code: "canceled", err: err}
			default:
				a.opts.Logger.Error("API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
				ae = &apiError{status: http.StatusInternalServerError, code: "internal", err: err}
			}
			_ = writeJSON(w, ae.status, map[string]Error{"error": {Code: ae.code, Message: ae.err.Error()}})
			return
		}
		if status == 0 {
			status = http.StatusOK
		}
		if err := writeJSON(w, status, v); err != nil {
			a.opts.Logger.Error("API response cannot be encoded", "method", r.Method, "path", r.URL.Path, "err", err)
			_ = writeJSON(w, http.StatusInternalServerError, map[string]Error{"error": {Code: "internal",
				Message: fmt.Sprintf("encoding the response: %v", err)}})
		}
	})
}

// writeJSON writes v with status. It encodes v before writing anything, so
// that a value JSON cannot hold (NaN) leaves the response unwritten and the
// error can still be reported.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	var b []byte
	var err error
	if _, ok := v.(compact); ok {
		b, err = json.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// compact is implemented by answers written as compact JSON (graphs: one
// point per line would triple their size).
type compact interface{ compactJSON() }

func (a *api) clusterConfig(name string) (*config.Cluster, error) { return a.data.ClusterConfig(name) }

func (a *api) listClusters(r *http.Request) (any, int, error) {
	out, err := a.data.Clusters(r.Context())
	return out, 0, err
}

func (a *api) getCluster(r *http.Request) (any, int, error) {
	d, err := a.data.Cluster(r.Context(), r.PathValue("name"), 10)
	return d, 0, err
}

func (a *api) listNodes(r *http.Request) (any, int, error) {
	cc, err := a.clusterConfig(r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	f := store.NodeFilter{Cluster: cc.Name}
	all := r.URL.Query().Get("all") == "true"
	nodes, err := a.st.NodeList(r.Context(), f)
	if err != nil {
		return nil, 0, err
	}
	out := []store.Node{}
	for _, n := range nodes {
		if all || n.State != store.NodeTerminated {
			out = append(out, n)
		}
	}
	return out, 0, nil
}

func (a *api) getNode(r *http.Request) (any, int, error) {
	d, err := a.data.Node(r.Context(), r.PathValue("name"), r.PathValue("node"))
	return d, 0, err
}

// HeartbeatAnswer is the answer to an agent's heartbeat.
type HeartbeatAnswer struct {
	Node       string    `json:"node"`
	Cluster    string    `json:"cluster"`
	ReceivedAt time.Time `json:"received_at"`
	Counters   int       `json:"counters"`
}

func (a *api) agentHeartbeat(r *http.Request) (any, int, error) {
	var hb agent.Heartbeat
	if err := decode(r, &hb); err != nil {
		return nil, 0, err
	}
	rep, err := a.ctl.AgentHeartbeat(r.Context(), hb)
	if err != nil {
		return nil, 0, err
	}
	return HeartbeatAnswer{Node: rep.Node, Cluster: rep.Cluster, ReceivedAt: rep.ReceivedAt, Counters: len(rep.Counters)}, 0, nil
}

func (a *api) listCounters(r *http.Request) (any, int, error) {
	cc, err := a.clusterConfig(r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	out := map[string]controller.CounterReading{}
	for _, k := range cc.Counters {
		if rd, ok := a.ctl.Latest(cc.Name, k.Name); ok {
			out[k.Name] = rd
		}
	}
	return out, 0, nil
}

// CounterGraph is a counter's history as series for graphs: one point per
// step (the average of the step's readings), per node and for the aggregate.
// A step without a reading is null, never 0.
type CounterGraph struct {
	Cluster string `json:"cluster"`
	Counter string `json:"counter"`
	Type    string `json:"type"`
	Scope   string `json:"scope"`
	// Aggregation is how node readings combine: avg, min, max or sum.
	Aggregation string `json:"aggregation"`
	Interval    string `json:"interval"`
	// Step is the width of a point (raised to the resolution the range
	// needs); StepMS the same in milliseconds.
	Step   string    `json:"step"`
	StepMS int64     `json:"step_ms"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Resolutions name what answered, oldest first: rollup steps, "raw" or
	// "memory".
	Resolutions []string `json:"resolutions"`
	// Aggregate and each of Nodes are [unix ms, value or null] pairs.
	Aggregate []perfdata.Point            `json:"aggregate"`
	Nodes     map[string][]perfdata.Point `json:"nodes"`
	// Errors are the newest failed readings of the range.
	Errors []perfdata.Error `json:"errors"`
}

func (CounterGraph) compactJSON() {}

func (a *api) counterGraph(r *http.Request, cc *config.Cluster, k *config.Counter) (any, int, error) {
	qs := r.URL.Query()
	q := perfdata.Query{Nodes: qs["node"], AggregateOnly: qs.Get("aggregate") == "true"}
	for key, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := qs.Get(key); s != "" {
			t, err := parseTime(key, s)
			if err != nil {
				return nil, 0, err
			}
			*dst = t
		}
	}
	if s := qs.Get("step"); s != "auto" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, 0, badRequest("step %q is not a positive duration such as 10s or 5m (or auto)", s)
		}
		q.Step = d
	}
	res, err := a.ctl.CounterGraph(r.Context(), cc.Name, k.Name, q)
	if err != nil {
		return nil, 0, err
	}
	return CounterGraph{Cluster: cc.Name, Counter: k.Name, Type: k.Type, Scope: string(k.Scope), Aggregation: k.Aggregate,
		Interval: k.Interval.String(), Step: res.Step.String(), StepMS: res.Step.Milliseconds(), Since: res.Since, Until: res.Until,
		Resolutions: res.Resolutions, Aggregate: res.Aggregate, Nodes: res.Nodes, Errors: res.Errors}, 0, nil
}

func (a *api) getCounter(r *http.Request) (any, int, error) {
	cc, err := a.clusterConfig(r.PathValue("name"))
	if err != nil {
		return nil, 0, err
	}
	k := cc.Counter(r.PathValue("counter"))
	if k == nil {
		return nil, 0, fmt.Errorf("cluster %q has no counter %q: %w", cc.Name, r.PathValue("counter"), store.ErrNotFound)
	}
	q := r.URL.Query()
	if q.Has("step") {
		return a.counterGraph(r, cc, k)
	}
	f := store.SampleFilter{Cluster: cc.Name, Counter: k.Name, Limit: 500, AggregateOnly: q.Get("aggregate") == "true"}
	if s := q.Get("since"); s != "" {
		since, err := parseSince(s)
		if err != nil {
			return nil, 0, err
		}
		f.Since = since
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return nil, 0, badRequest("limit %q must be a number from 1 to 10000", s)
		}
		f.Limit = n
	}
	out, err := a.data.Series(r.Context(), f)
	return out, 0, err
}

// parseSince accepts RFC 3339 or a duration back from now ("10m").
func parseSince(s string) (time.Time, error) { return parseTime("since", s) }

// parseTime reads the time parameter key: RFC 3339, unix milliseconds, or a
// duration back from now ("10m").
func parseTime(key, s string) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil && ms > 0 {
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badRequest("%s %q is neither an RFC 3339 time nor a duration such as 10m (nor unix milliseconds)", key, s)
	}
	return t, nil
}

// ScaleRequest is the body of POST /clusters/{name}/scale.
type ScaleRequest struct {
	Desired *int `json:"desired"`
}

func (a *api) scale(r *http.Request) (any, int, error) {
	var req ScaleRequest
	if err := decode(r, &req); err != nil {
		return nil, 0, err
	}
	if req.Desired == nil {
		return nil, 0, badRequest(`body must be {"desired": N}`)
	}
	dry, err := dryRun(r)
	if err != nil {
		return nil, 0, err
	}
	if dry {
		p, err := a.ctl.PlanScale(r.Context(), r.PathValue("name"), *req.Desired, "scale by hand through the API (dry run)")
		return p, 0, err
	}
	c, err := a.ctl.Scale(r.Context(), r.PathValue("name"), *req.Desired, "scaled by hand through the API")
	return c, 0, err
}

// dryRun reads the dry_run query parameter.
func dryRun(r *http.Request) (bool, error) {
	switch v := r.URL.Query().Get("dry_run"); v {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	default:
		return false, badRequest("dry_run %q must be true or false", v)
	}
}

func (a *api) stop(r *http.Request) (any, int, error) {
	c, err := a.ctl.SetStopped(r.Context(), r.PathValue("name"), true, "stopped by hand through the API")
	return c, 0, err
}

func (a *api) start(r *http.Request) (any, int, error) {
	c, err := a.ctl.SetStopped(r.Context(), r.PathValue("name"), false, "started by hand through the API")
	return c, 0, err
}

// destroy answers with what was removed. Removals that failed are listed
// under errors (200 still: the answer says what happened; the cluster stays
// stopped, and destroy may be run again).
func (a *api) destroy(r *http.Request) (any, int, error) {
	dry, err := dryRun(r)
	if err != nil {
		return nil, 0, err
	}
	res, err := a.ctl.Destroy(r.Context(), r.PathValue("name"), "destroyed by hand through the API", dry)
	if err != nil && res.Activity == 0 {
		return nil, 0, err // it did not start: unknown cluster, …
	}
	return res, 0, nil
}

func (a *api) destroyAll(r *http.Request) (any, int, error) {
	dry, err := dryRun(r)
	if err != nil {
		return nil, 0, err
	}
	res, err := a.ctl.DestroyAll(r.Context(), "every cluster destroyed by hand through the API", dry)
	for _, x := range res {
		if x.Activity == 0 && err != nil {
			return nil, 0, err
		}
	}
	if res == nil {
		res = []controller.DestroyResult{}
	}
	return res, 0, nil
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON body: data after the object")
	}
	return nil
}

// MaintenanceRequest is the body of POST /clusters/{name}/nodes/{node}/maintenance.
type MaintenanceRequest struct {
	On *bool `json:"on"`
}

// MaintenanceResult is the node after the change and the activity recording
// it (absent when the node already was in the asked state).
type MaintenanceResult struct {
	Node     store.Node      `json:"node"`
	Activity *store.Activity `json:"activity,omitempty"`
}

func (a *api) maintenance(r *http.Request) (any, int, error) {
	var req MaintenanceRequest
	if err := decode(r, &req); err != nil {
		return nil, 0, err
	}
	if req.On == nil {
		return nil, 0, badRequest(`body must be {"on": true} or {"on": false}`)
	}
	n, act, err := a.ctl.SetMaintenance(r.Context(), r.PathValue("name"), r.PathValue("node"), *req.On, "set through the API")
	if err != nil {
		return nil, 0, err
	}
	out := MaintenanceResult{Node: n}
	if act.ID != 0 {
		out.Activity = &act
	}
	return out, 0, nil
}

func (a *api) listTriggers(r *http.Request) (any, int, error) {
	name := r.PathValue("name")
	if name == "" {
		name = r.URL.Query().Get("cluster")
	}
	if name != "" {
		if _, err := a.clusterConfig(name); err != nil {
			return nil, 0, err
		}
	}
	out := a.ctl.Triggers(name)
	if out == nil {
		out = []controller.TriggerStatus{}
	}
	return out, 0, nil
}

func (a *api) fire(r *http.Request) (any, int, error) {
	act, err := a.ctl.Fire(r.Context(), r.PathValue("name"), r.PathValue("trigger"),
		fmt.Sprintf("trigger %s fired by hand through the API", r.PathValue("trigger")))
	return act, http.StatusAccepted, err
}

func (a *api) listActivities(r *http.Request) (any, int, error) {
	q := r.URL.Query()
	f := store.ActivityFilter{Cluster: q.Get("cluster"), Kind: q.Get("kind"), Status: store.ActivityStatus(q.Get("status"))}
	for key, dst := range map[string]*int64{"after": &f.AfterID, "parent": &f.ParentID} {
		if s := q.Get(key); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, 0, badRequest("%s %q is not a number", key, s)
			}
			*dst = n
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return nil, 0, badRequest("limit %q must be a number from 1 to 1000", s)
		}
		f.Limit = n
	}
	acts, err := a.st.ActivityList(r.Context(), f)
	if acts == nil {
		acts = []store.Activity{}
	}
	return acts, 0, err
}

func (a *api) getActivity(r *http.Request) (any, int, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, 0, badRequest("activity id %q is not a number", r.PathValue("id"))
	}
	d, err := a.data.Activity(r.Context(), id)
	return d, 0, err
}
