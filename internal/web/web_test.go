package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/goscaler/goscaler/internal/builtins"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
	"github.com/goscaler/goscaler/internal/web"
)

// testConfig has a cluster with counters and triggers (web) and a bare one
// (api). Nothing is ever started: the tests seed the store.
const testConfig = `
clusters:
  - name: web
    min: 1
    max: 5
    desired: 2
    provider: {type: process, command: ["sleep", "1000"]}
    health_check: {type: none}
    counters:
      - {name: load, type: exec, command: ["echo", "1"], scope: node}
      - {name: queue, type: exec, command: ["echo", "2"], scope: cluster}
    triggers:
      - name: up
        counter: load
        above: 5
        for: 30s
        cooldown: 1m
        actions:
          - {type: deploy_node, count: 2}
          - {type: local_script, command: ["true"], env: {API_TOKEN: "s3cr3t-env-value"}}
      - name: down
        counter: load
        below: 1
        for: 1m
        actions: [{type: remove_node}]
  - name: api
    max: 2
    provider: {type: process, command: ["sleep", "1000"]}
    health_check: {type: none}
    ssh: {user: root, connect_timeout: 1s}
`

var (
	viewerToken   = strings.Repeat("v", 32)
	operatorToken = strings.Repeat("o", 32)
	discard       = slog.New(slog.DiscardHandler)
)

type env struct {
	t   testing.TB
	ui  http.Handler
	st  *sqlstore.Store
	ctl *controller.Controller
	srv *httptest.Server
	dir string
}

// newEnv builds the UI on a real SQLite store and controller (not running),
// served by an httptest server. Without tokens the UI is open.
func newEnv(t testing.TB, cfgSrc string, tokens ...config.APIToken) *env {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Parse("web.yaml", []byte(cfgSrc))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ctl, err := controller.New(ctx, controller.Options{Config: cfg, Store: st, Owner: "web-test", DataDir: dir, Logger: discard})
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
	ui := web.New(web.Options{Store: st, Controller: ctl, Tokens: tokens, DataDir: dir, Logger: discard})
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	return &env{t: t, ui: ui, st: st, ctl: ctl, srv: srv, dir: dir}
}

// seeded is what seed stored.
type seeded struct {
	fired, deploy, script store.Activity
}

// seed stores nodes (one with a log), samples over the last five minutes and
// a trigger firing with its steps.
func (e *env) seed() seeded {
	t, ctx := e.t, context.Background()
	t.Helper()
	logPath := filepath.Join(e.dir, "nodes", "web", "web-1.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logPath, []byte("booting web-1\nlistening on 127.0.0.1:10001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var s seeded
	mk := func(a store.Activity) store.Activity {
		t.Helper()
		out, err := e.st.ActivityCreate(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	now := time.Now()
	s.fired = mk(store.Activity{Cluster: "web", Trigger: "up", Kind: "trigger", Cause: "trigger up: avg load 7 > 5 for 30s",
		Status: store.ActivitySucceeded, StartedAt: now, FinishedAt: now})
	s.deploy = mk(store.Activity{ParentID: s.fired.ID, Cluster: "web", Trigger: "up", Kind: "deploy_node", Cause: s.fired.Cause,
		Status: store.ActivitySucceeded, Output: "launched web-1 (127.0.0.1:10001) in 1.2s", Params: json.RawMessage(`{"count":2}`),
		StartedAt: now, FinishedAt: now.Add(1200 * time.Millisecond)})
	s.script = mk(store.Activity{ParentID: s.fired.ID, Cluster: "web", Trigger: "up", Kind: "local_script", Step: 1, Cause: s.fired.Cause,
		Status: store.ActivityFailed, Error: "exit status 3: disk full",
		Params:    json.RawMessage(`{"command":["true"],"env":{"API_TOKEN":"s3cr3t-env-value"},"password":"hunter2-secret"}`),
		StartedAt: now, FinishedAt: now})
	for _, n := range []store.Node{
		{ID: "web-1", Cluster: "web", State: store.NodeInService, Address: "127.0.0.1:10001", Reason: "passed its health check",
			LaunchActivity: s.deploy.ID, Meta: map[string]string{"log": logPath}},
		{ID: "web-2", Cluster: "web", State: store.NodeProvisioning, Reason: "creating its machine"},
		{ID: "api-1", Cluster: "api", State: store.NodeInService, Address: "127.0.0.1:10004"},
	} {
		if _, err := e.st.NodeCreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	var samples []store.Sample
	for i := range 60 {
		at := now.Add(-5 * time.Minute).Add(time.Duration(i) * 5 * time.Second).Truncate(time.Millisecond)
		samples = append(samples,
			store.Sample{Cluster: "web", Counter: "load", Node: "web-1", At: at, Value: float64(i % 7)},
			store.Sample{Cluster: "web", Counter: "load", At: at, Value: float64(i%7) + 0.5, Reporting: 1})
	}
	samples = append(samples, store.Sample{Cluster: "web", Counter: "load", At: now, Err: "no node reported"})
	if err := e.st.SampleInsert(ctx, samples); err != nil {
		t.Fatal(err)
	}
	return s
}

// client is a browser: a cookie jar, redirects not followed.
type client struct {
	t   testing.TB
	e   *env
	hc  *http.Client
	jar *cookiejar.Jar
}

func (e *env) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &client{t: e.t, e: e, jar: jar, hc: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (c *client) do(method, path string, form url.Values, headers ...string) page {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.e.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return page{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (c *client) get(path string, headers ...string) page { return c.do("GET", path, nil, headers...) }

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([0-9a-f]{64})"`)

// csrf loads path and returns the CSRF token of its forms.
func (c *client) csrf(path string) string {
	c.t.Helper()
	p := c.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		c.t.Fatalf("GET %s (%d): no csrf_token field in\n%s", path, p.status, p.body)
	}
	return m[1]
}

// login logs in with token.
func (c *client) login(token string) {
	c.t.Helper()
	tok := c.csrf("/login")
	p := c.do("POST", "/login", url.Values{"csrf_token": {tok}, "token": {token}, "next": {"/"}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/" {
		c.t.Fatalf("login: %d to %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
}

func wantPage(t *testing.T, p page, status int, contains ...string) {
	t.Helper()
	if p.status != status {
		t.Errorf("status %d, want %d; body:\n%s", p.status, status, short(p.body))
		return
	}
	for _, s := range contains {
		if !strings.Contains(p.body, s) {
			t.Errorf("page has no %q; body:\n%s", s, short(p.body))
		}
	}
}

func short(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

func TestPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	s := e.seed()
	c := e.client()
	tests := []struct {
		name, path string
		status     int
		contains   []string
	}{
		{"dashboard", "/", 200, []string{"2 clusters, 3 live nodes", `href="/clusters/web"`, `<span class="big">1</span> / 2`, "1 – 5",
			"scaling out: 1 starting", `<svg class="sparkline"`, "<polyline points=", `<line class="th"`, "up: above 5",
			"local script", "operator · open, no login", `hx-get="/ui/dashboard"`}},
		{"dashboard live rows", "/ui/dashboard", 200, []string{`<tbody id="cluster-rows"`, `data-cluster="api"`}},
		{"cluster", "/clusters/web", 200, []string{"<h1>web</h1>", `data-src="/ui/data/clusters/web/counters/load?since=15m"`,
			`data-src="/ui/data/clusters/web/counters/queue?since=15m"`, `<code>load &gt; 5</code>`, "for 30 s, cooldown 1 min",
			"not past its threshold", "deploy node → local script", `action="/clusters/web/triggers/up/fire"`,
			`action="/clusters/web/scale"`, `min="1" max="5" value="2"`, `action="/clusters/web/nodes/web-1/maintenance"`,
			"Running a command on every node goes over SSH: give the cluster an ssh: section", "creating its machine", `hx-get="/ui/clusters/web"`}},
		{"cluster live parts", "/ui/clusters/web", 200, []string{`id="summary" class="cards" hx-swap-oob="true"`,
			`id="triggers" class="panel" hx-swap-oob="true"`, `id="nodes" class="panel" hx-swap-oob="true"`, `id="recent" class="panel" hx-swap-oob="true"`}},
		{"node", "/clusters/web/nodes/web-1", 200, []string{"<h1>web-1</h1>", "passed its health check", "listening on 127.0.0.1:10001",
			fmt.Sprintf(`Launched by <a href="/activities/%d">activity #%d</a>`, s.deploy.ID, s.deploy.ID), "launched web-1 (127.0.0.1:10001) in 1.2s",
			fmt.Sprintf(`a step of <a href="/activities/%d">#%d</a>`, s.fired.ID, s.fired.ID), "?since=15m&amp;node=web-1", "no health check"}},
		{"node live parts", "/ui/clusters/web/nodes/web-1", 200, []string{`id="node-summary" class="cards" hx-swap-oob="true"`, `id="node-life"`}},
		{"activities", "/activities", 200, []string{fmt.Sprintf(`<a href="/activities/%d">#%d</a>`, s.script.ID, s.script.ID),
			"exit status 3: disk full", "step 2 of", `hx-get="/ui/activities"`}},
		{"activities filtered", "/activities?cluster=web&kind=trigger&status=succeeded", 200, []string{"<option selected>web</option>",
			`<option value="trigger" selected>trigger</option>`, "<option selected>succeeded</option>",
			`hx-get="/ui/activities?cluster=web&amp;kind=trigger&amp;status=succeeded"`}},
		{"activity with steps", fmt.Sprintf("/activities/%d", s.fired.ID), 200, []string{"trigger up: avg load 7 &gt; 5 for 30s",
			"1. deploy node", "2. local script", "exit status 3: disk full", "launched web-1", "1.2 s", "•••••• (hidden)"}},
		{"a step links its decision", fmt.Sprintf("/activities/%d", s.script.ID), 200, []string{
			fmt.Sprintf(`<a href="/activities/%d">#%d trigger</a>`, s.fired.ID, s.fired.ID)}},
		{"activity live", fmt.Sprintf("/ui/activities/%d", s.fired.ID), 200, []string{`id="activity-body" hx-swap-oob="true"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := c.get(tt.path)
			wantPage(t, p, tt.status, tt.contains...)
			if ct := p.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			// No secret from the activity parameters, anywhere.
			for _, secret := range []string{"s3cr3t-env-value", "hunter2-secret"} {
				if strings.Contains(p.body, secret) {
					t.Errorf("%s shows the secret %q", tt.path, secret)
				}
			}
		})
	}
	// The activities filter selects the cluster only when asked.
	if strings.Contains(c.get("/activities").body, "<option selected>web</option>") {
		t.Errorf("unfiltered activities page selects a cluster")
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	e.seed()
	c := e.client()
	tests := []struct {
		name, path string
		status     int
		contains   string
	}{
		{"unknown cluster", "/clusters/nope", 404, `cluster &#34;nope&#34;: not found`},
		{"unknown node", "/clusters/web/nodes/nope", 404, "not found"},
		{"node of another cluster", "/clusters/api/nodes/web-1", 404, `node &#34;web-1&#34; of cluster &#34;api&#34;`},
		{"unknown activity", "/activities/99999", 404, "not found"},
		{"activity id not a number", "/activities/first", 400, `activity &#34;first&#34; is not a number`},
		{"unknown page", "/nope", 404, "no page at /nope"},
		{"unknown cluster filter", "/activities?cluster=nope", 404, "not found"},
		{"unknown status filter", "/activities?status=great", 400, "status &#34;great&#34; is not one of"},
		{"fragment of an unknown cluster", "/ui/clusters/nope", 404, `cluster "nope": not found`},
		{"graph of an unknown counter", "/ui/data/clusters/web/counters/nope", 404, `cluster "web" has no counter "nope"`},
		{"graph with a bad window", "/ui/data/clusters/web/counters/load?since=1y", 400, `since "1y" must be a duration up to 6h0m0s`},
		{"graph with a negative window", "/ui/data/clusters/web/counters/load?since=-5m", 400, "must be a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPage(t, c.get(tt.path), tt.status, tt.contains)
		})
	}
}

func TestSecurityHeadersAndAssets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	c := e.client()
	p := c.get("/")
	for k, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "same-origin",
		"Cache-Control":          "no-store",
	} {
		if got := p.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self';") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	cookie := p.header.Get("Set-Cookie")
	if !strings.Contains(cookie, "goscaler_session=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Errorf("Set-Cookie %q: want an HttpOnly, SameSite=Strict session cookie", cookie)
	}
	// Every asset the page names is served, from the binary, cacheable.
	assets := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(p.body, -1)
	if len(assets) != 6 {
		t.Fatalf("%d assets in the page, want 6 (favicon, uPlot css+js, htmx, app css+js)", len(assets))
	}
	for _, m := range assets {
		path := strings.ReplaceAll(m[1], "&amp;", "&")
		a := c.get(path)
		if a.status != 200 || len(a.body) < 300 || !strings.Contains(a.header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: %d, %d bytes, Cache-Control %q", path, a.status, len(a.body), a.header.Get("Cache-Control"))
		}
		for _, host := range []string{"http://", "https://"} {
			if strings.HasSuffix(path, "app.js") && strings.Contains(a.body, host) {
				t.Errorf("%s names %s: the UI must fetch nothing from elsewhere", path, host)
			}
		}
	}
	if got := c.get("/static/nope.js"); got.status != 404 {
		t.Errorf("GET /static/nope.js = %d", got.status)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig, config.APIToken{Token: operatorToken, Role: config.RoleOperator})
	c := e.client()

	// Pages send to the login form; live parts and graphs answer 401.
	p := c.get("/clusters/web?x=1")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/login?next=%2Fclusters%2Fweb%3Fx%3D1" {
		t.Fatalf("GET a page logged out: %d to %q", p.status, p.header.Get("Location"))
	}
	for _, path := range []string{"/ui/dashboard", "/ui/data/clusters/web/counters/load"} {
		p := c.get(path, "HX-Request", "true")
		if p.status != http.StatusUnauthorized || p.header.Get("HX-Redirect") != "/login" {
			t.Errorf("GET %s logged out: %d, HX-Redirect %q", path, p.status, p.header.Get("HX-Redirect"))
		}
	}
	wantPage(t, c.get("/login?next=/clusters/web"), 200, `type="password" name="token"`, `name="next" value="/clusters/web"`)

	// Without the CSRF token, a login is refused before the token is looked at.
	wantPage(t, c.do("POST", "/login", url.Values{"token": {operatorToken}}), http.StatusForbidden, "no valid CSRF token")
	// A wrong token.
	tok := c.csrf("/login")
	p = c.do("POST", "/login", url.Values{"csrf_token": {tok}, "token": {"not-the-token-at-all"}})
	wantPage(t, p, http.StatusUnauthorized, "That token is not one of the server&#39;s api_tokens.")
	if strings.Contains(p.body, "not-the-token-at-all") {
		t.Errorf("the login page shows the token that was tried")
	}
	before := sessionCookie(t, c)
	// The right one: a new session (the old id is worth nothing), back to next.
	p = c.do("POST", "/login", url.Values{"csrf_token": {tok}, "token": {" " + operatorToken + " "}, "next": {"/clusters/web"}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/clusters/web" {
		t.Fatalf("login: %d to %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
	after := sessionCookie(t, c)
	if after == before {
		t.Errorf("the session id did not change at login")
	}
	p = c.get("/clusters/web")
	wantPage(t, p, 200, `<span class="role operator"`, `action="/logout"`, `action="/clusters/web/scale"`)
	if strings.Contains(p.body, operatorToken) {
		t.Errorf("a page shows the API token")
	}
	// The old session id no longer logs anyone in.
	stale := e.client()
	stale.jar.SetCookies(mustURL(t, e.srv.URL), []*http.Cookie{{Name: "goscaler_session", Value: before}})
	if p := stale.get("/"); p.status != http.StatusSeeOther {
		t.Errorf("the session id from before login still works: %d", p.status)
	}
	// next never leaves the server.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"} {
		c2 := e.client()
		tok := c2.csrf("/login")
		p := c2.do("POST", "/login", url.Values{"csrf_token": {tok}, "token": {operatorToken}, "next": {next}})
		if p.header.Get("Location") != "/" {
			t.Errorf("login with next %q redirects to %q, want /", next, p.header.Get("Location"))
		}
	}
	// Log out: the session ends.
	tok = c.csrf("/")
	p = c.do("POST", "/logout", url.Values{"csrf_token": {tok}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/login" {
		t.Fatalf("logout: %d to %q", p.status, p.header.Get("Location"))
	}
	if p := c.get("/"); p.status != http.StatusSeeOther {
		t.Errorf("GET / after logout = %d, want a redirect to the login form", p.status)
	}
}

func sessionCookie(t *testing.T, c *client) string {
	t.Helper()
	for _, ck := range c.jar.Cookies(mustURL(t, c.e.srv.URL)) {
		if ck.Name == "goscaler_session" {
			return ck.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCSRF: a form without its session's CSRF token changes nothing.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	e.seed()
	c := e.client()
	tok := c.csrf("/clusters/web")
	other := e.client().csrf("/clusters/web") // another browser's token
	tests := []struct {
		name    string
		form    url.Values
		headers []string
		status  int
		want    string
	}{
		{"no token", url.Values{"desired": {"4"}}, nil, 403, "no valid CSRF token"},
		{"empty token", url.Values{"desired": {"4"}, "csrf_token": {""}}, nil, 403, "no valid CSRF token"},
		{"another session's token", url.Values{"desired": {"4"}, "csrf_token": {other}}, nil, 403, "no valid CSRF token"},
		{"cross-site", url.Values{"desired": {"4"}, "csrf_token": {tok}}, []string{"Sec-Fetch-Site", "cross-site"}, 403, "came from another site"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantPage(t, c.do("POST", "/clusters/web/scale", tt.form, tt.headers...), tt.status, tt.want)
		})
	}
	for _, path := range []string{"/clusters/web/triggers/up/fire", "/clusters/web/nodes/web-1/maintenance"} {
		wantPage(t, c.do("POST", path, url.Values{"on": {"true"}}), 403, "no valid CSRF token")
	}
	if d := e.desired("web"); d != 2 {
		t.Fatalf("desired %d after refused forms, want 2", d)
	}
	if n := len(e.activities(store.ActivityFilter{Kind: "scale"})); n != 0 {
		t.Fatalf("%d scale activities after refused forms", n)
	}
	if n, _ := e.st.NodeGet(context.Background(), "web-1"); n.Maintenance {
		t.Fatalf("web-1 in maintenance after a refused form")
	}
	// With the token (in the form, or in the header htmx would send): done.
	p := c.do("POST", "/clusters/web/scale", url.Values{"desired": {"4"}, "csrf_token": {tok}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/clusters/web" {
		t.Fatalf("scale with the token: %d to %q\n%s", p.status, p.header.Get("Location"), p.body)
	}
	p = c.do("POST", "/clusters/web/scale", url.Values{"desired": {"3"}}, "X-CSRF-Token", tok)
	if p.status != http.StatusSeeOther {
		t.Fatalf("scale with the token in X-CSRF-Token: %d\n%s", p.status, p.body)
	}
	if d := e.desired("web"); d != 3 {
		t.Errorf("desired %d, want 3", d)
	}
}

// TestViewerCannotAct: a viewer sees no action forms, and the actions refuse
// a viewer's session even with its CSRF token.
func TestViewerCannotAct(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig, config.APIToken{Token: viewerToken, Role: config.RoleViewer},
		config.APIToken{Token: operatorToken, Role: config.RoleOperator})
	e.seed()
	c := e.client()
	c.login(viewerToken)
	p := c.get("/clusters/web")
	wantPage(t, p, 200, `<span class="role viewer"`, "You are logged in as a viewer")
	for _, form := range []string{`action="/clusters/web/scale"`, `action="/clusters/web/triggers/up/fire"`, "/maintenance"} {
		if strings.Contains(p.body, form) {
			t.Errorf("a viewer's cluster page has the form %s", form)
		}
	}
	if strings.Contains(c.get("/clusters/web/nodes/web-1").body, "/maintenance") {
		t.Errorf("a viewer's node page has the maintenance form")
	}
	tok := c.csrf("/clusters/web")
	for _, tt := range []struct {
		path string
		form url.Values
	}{
		{"/clusters/web/scale", url.Values{"desired": {"4"}}},
		{"/clusters/web/triggers/up/fire", url.Values{}},
		{"/clusters/web/nodes/web-1/maintenance", url.Values{"on": {"true"}}},
	} {
		tt.form.Set("csrf_token", tok)
		wantPage(t, c.do("POST", tt.path, tt.form), http.StatusForbidden, "You are logged in as a viewer")
	}
	if d := e.desired("web"); d != 2 {
		t.Errorf("desired %d after a viewer's scale, want 2", d)
	}
	if n := len(e.activities(store.ActivityFilter{Kind: "trigger"})); n != 1 {
		t.Errorf("%d trigger activities after a viewer's fire, want the 1 seeded", n)
	}
	// An operator can.
	op := e.client()
	op.login(operatorToken)
	tok = op.csrf("/clusters/web")
	if p := op.do("POST", "/clusters/web/scale", url.Values{"desired": {"4"}, "csrf_token": {tok}}); p.status != http.StatusSeeOther {
		t.Fatalf("operator's scale: %d\n%s", p.status, p.body)
	}
	if d := e.desired("web"); d != 4 {
		t.Errorf("desired %d after the operator's scale, want 4", d)
	}
}

// TestActions: each action does its work and says so on the next page.
func TestActions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	e.seed()
	c := e.client()
	tok := c.csrf("/clusters/web")
	post := func(path string, form url.Values) page {
		t.Helper()
		form.Set("csrf_token", tok)
		p := c.do("POST", path, form)
		if p.status != http.StatusSeeOther {
			t.Fatalf("POST %s: %d\n%s", path, p.status, p.body)
		}
		return c.get(p.header.Get("Location"))
	}

	p := post("/clusters/web/triggers/down/fire", url.Values{})
	fired := e.activities(store.ActivityFilter{Kind: "trigger", Cluster: "web"})[0]
	if fired.Trigger != "down" || fired.Cause != "trigger down fired by hand in the web UI" {
		t.Fatalf("fired activity %+v", fired)
	}
	wantPage(t, p, 200, `<div class="flash" role="status">Trigger down fired: its actions run now.`,
		fmt.Sprintf(`<a href="/activities/%d">activity #%d</a>`, fired.ID, fired.ID))
	// The message shows once.
	if strings.Contains(c.get("/clusters/web").body, `class="flash"`) {
		t.Errorf("the flash message shows twice")
	}

	p = post("/clusters/web/scale", url.Values{"desired": {"9"}})
	wantPage(t, p, 200, `<div class="flash error" role="status">desired 9 is outside min..max (1..5) of cluster &#34;web&#34;`)
	p = post("/clusters/web/scale", url.Values{"desired": {"many"}})
	wantPage(t, p, 200, `the desired size &#34;many&#34; is not a whole number`)
	p = post("/clusters/web/scale", url.Values{"desired": {"3"}})
	wantPage(t, p, 200, "The desired size of web is now 3", `<div class="value" id="in-service" data-desired="3">1 / 3</div>`)

	p = post("/clusters/web/nodes/web-1/maintenance", url.Values{"on": {"true"}, "back": {"/clusters/web/nodes/web-1"}})
	wantPage(t, p, 200, "<h1>web-1</h1>", "Node web-1 is in maintenance", `<span class="state s-maintenance"`, "End maintenance")
	if n, _ := e.st.NodeGet(context.Background(), "web-1"); !n.Maintenance {
		t.Errorf("web-1 is not in maintenance")
	}
	p = post("/clusters/web/nodes/web-1/maintenance", url.Values{"on": {"false"}})
	wantPage(t, p, 200, "<h1>web</h1>", "Node web-1 is out of maintenance")
	p = post("/clusters/web/nodes/web-1/maintenance", url.Values{"on": {"maybe"}})
	wantPage(t, p, 200, "on must be true or false")
	p = post("/clusters/web/triggers/nope/fire", url.Values{})
	wantPage(t, p, 200, `cluster &#34;web&#34; has no trigger &#34;nope&#34;`)
	// Run on every node: offered where the nodes are reached over SSH.
	wantPage(t, c.get("/clusters/api"), 200, `action="/clusters/api/exec"`, `name="command"`)
	p = post("/clusters/api/exec", url.Values{"command": {"uptime"}})
	wantPage(t, p, 200, `<div class="flash error" role="status">`, "<h1>api</h1>")
	p = post("/clusters/api/exec", url.Values{"command": {"  "}})
	wantPage(t, p, 200, "give a command to run")
	// A back field pointing elsewhere is ignored.
	p = c.do("POST", "/clusters/web/scale", url.Values{"desired": {"2"}, "csrf_token": {tok}, "back": {"https://evil.example/"}})
	if p.header.Get("Location") != "/clusters/web" {
		t.Errorf("back to another site: Location %q", p.header.Get("Location"))
	}
}

func (e *env) desired(name string) int {
	e.t.Helper()
	c, err := e.st.ClusterGet(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Desired
}

func (e *env) activities(f store.ActivityFilter) []store.Activity {
	e.t.Helper()
	as, err := e.st.ActivityList(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return as
}

// chart is the graph JSON.
type chart struct {
	Counter    string    `json:"counter"`
	Aggregate  string    `json:"aggregate"`
	IntervalMS int64     `json:"interval_ms"`
	X          []float64 `json:"x"`
	Series     []struct {
		Label     string     `json:"label"`
		Aggregate bool       `json:"aggregate"`
		Values    []*float64 `json:"values"`
	} `json:"series"`
	Thresholds []struct {
		Trigger string  `json:"trigger"`
		Label   string  `json:"label"`
		Value   float64 `json:"value"`
	} `json:"thresholds"`
	Points    int    `json:"points"`
	Errors    int    `json:"errors"`
	LastError string `json:"last_error"`
	Note      string `json:"note"`
}

func TestChartData(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	e.seed()
	c := e.client()
	get := func(path string) chart {
		t.Helper()
		p := c.get(path)
		if p.status != 200 || p.header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %q\n%s", path, p.status, p.header.Get("Content-Type"), p.body)
		}
		var ch chart
		dec := json.NewDecoder(strings.NewReader(p.body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ch); err != nil {
			t.Fatal(err)
		}
		return ch
	}
	ch := get("/ui/data/clusters/web/counters/load?since=15m")
	// 60 collections and one failed aggregate: 61 times; web-1 then the aggregate.
	if ch.Counter != "load" || ch.Aggregate != "avg" || ch.IntervalMS != 5000 || len(ch.X) != 61 || len(ch.Series) != 2 {
		t.Fatalf("chart: counter %s agg %s interval %d, %d x, %d series", ch.Counter, ch.Aggregate, ch.IntervalMS, len(ch.X), len(ch.Series))
	}
	for i := 1; i < len(ch.X); i++ {
		if ch.X[i] <= ch.X[i-1] {
			t.Fatalf("x not increasing at %d: %v", i, ch.X[i-1:i+1])
		}
	}
	if s := ch.Series[0]; s.Label != "web-1" || s.Aggregate || len(s.Values) != 61 || *s.Values[3] != 3 || s.Values[60] != nil {
		t.Errorf("web-1 series %+v", s)
	}
	if s := ch.Series[1]; !s.Aggregate || *s.Values[3] != 3.5 || s.Values[60] != nil {
		t.Errorf("aggregate series: aggregate %v, values[3] %v, values[60] %v (the failed reading must be a gap)", s.Aggregate, s.Values[3], s.Values[60])
	}
	if ch.Points != 120 || ch.Errors != 1 || ch.LastError != "no node reported" {
		t.Errorf("points %d errors %d last %q", ch.Points, ch.Errors, ch.LastError)
	}
	if len(ch.Thresholds) != 2 || ch.Thresholds[0].Label != "up: above 5" || ch.Thresholds[0].Value != 5 || ch.Thresholds[1].Label != "down: below 1" {
		t.Errorf("thresholds %+v", ch.Thresholds)
	}
	// One node's graph; a short window; a counter without samples.
	if ch := get("/ui/data/clusters/web/counters/load?node=web-9"); len(ch.Series) != 1 || !ch.Series[0].Aggregate {
		t.Errorf("graph of a node without samples: %d series", len(ch.Series))
	}
	if ch := get("/ui/data/clusters/web/counters/load?since=1m"); len(ch.X) > 13 || len(ch.X) < 11 {
		t.Errorf("1 minute of 5 s collections: %d x", len(ch.X))
	}
	if ch := get("/ui/data/clusters/web/counters/queue"); ch.Aggregate != "cluster" || len(ch.X) != 0 || ch.Points != 0 || len(ch.Series) != 1 {
		t.Errorf("empty cluster-scoped counter: %+v", ch)
	}
}

// TestChartManyNodes: past a dozen nodes a graph draws the aggregate only.
func TestChartManyNodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testConfig)
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var samples []store.Sample
	for i := range 13 {
		samples = append(samples, store.Sample{Cluster: "web", Counter: "load", Node: fmt.Sprintf("web-%d", i+1), At: at, Value: 1})
	}
	samples = append(samples, store.Sample{Cluster: "web", Counter: "load", At: at, Value: 1, Reporting: 13})
	if err := e.st.SampleInsert(context.Background(), samples); err != nil {
		t.Fatal(err)
	}
	p := e.client().get("/ui/data/clusters/web/counters/load")
	var ch chart
	if err := json.Unmarshal([]byte(p.body), &ch); err != nil {
		t.Fatal(err)
	}
	if len(ch.Series) != 1 || !ch.Series[0].Aggregate || ch.Points != 1 || !strings.HasPrefix(ch.Note, "13 nodes: only the aggregate is drawn") {
		t.Errorf("13 nodes: %d series, %d points, note %q", len(ch.Series), ch.Points, ch.Note)
	}
}
