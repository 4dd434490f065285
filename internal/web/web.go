// Package web serves goscaler's web UI at /: server-rendered pages
// (html/template) whose live parts htmx refreshes in place, counter graphs
// that uPlot draws from JSON this package serves, and forms that scale a
// cluster, fire a trigger or put a node in maintenance.
//
// Every asset is embedded in the binary (static/, with htmx and uPlot
// vendored under static/vendor/): the UI fetches nothing from elsewhere, and
// its Content-Security-Policy allows nothing but this server.
//
// Access: with API tokens configured, people log in with one; the session
// cookie is HttpOnly and SameSite=Strict, every form carries a CSRF token,
// and a viewer's session may look but not act. With no tokens (the server
// then listens on loopback only) the UI is open, as an operator.
package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configures the UI.
type Options struct {
	Store      store.Store
	Controller *controller.Controller
	// Tokens are the API tokens people log in with; empty leaves the UI open
	// to anyone who reaches it, as an operator (the configuration allows that
	// on loopback only).
	Tokens []config.APIToken
	// DataDir is the server's data directory: a node's log is shown only if
	// it lies under it.
	DataDir string
	Logger  *slog.Logger
}

// UI is the web UI's handler.
type UI struct {
	opts     Options
	data     api.Data
	ctl      *controller.Controller
	st       store.Store
	log      *slog.Logger
	sessions *sessions
	sparks   *sparkCache
	pages    map[string]*template.Template
	static   http.Handler
	mux      *http.ServeMux
}

// New builds the UI. It panics if an embedded template does not parse (a
// bug caught by every test).
func New(opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	u := &UI{opts: opts, data: api.Data{Store: opts.Store, Controller: opts.Controller}, ctl: opts.Controller,
		st: opts.Store, log: opts.Logger, sessions: newSessions(len(opts.Tokens) == 0), sparks: newSparkCache(),
		pages: map[string]*template.Template{}}
	for _, name := range []string{"dashboard", "cluster", "node", "activities", "activity", "login", "error"} {
		u.pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html"))
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	u.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	u.routes()
	return u
}

func (u *UI) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /static/", u.serveStatic)
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, asset("favicon.svg"), http.StatusMovedPermanently)
	})
	m.Handle("GET /login", u.public(u.loginPage))
	m.Handle("POST /login", u.public(u.login))
	m.Handle("POST /logout", u.public(u.logout))

	m.Handle("GET /{$}", u.page(u.dashboard))
	m.Handle("GET /clusters/{name}", u.page(u.clusterPage))
	m.Handle("GET /clusters/{name}/nodes/{node}", u.page(u.nodePage))
	m.Handle("GET /activities", u.page(u.activitiesPage))
	m.Handle("GET /activities/{id}", u.page(u.activityPage))

	// Live parts, refreshed by htmx.
	m.Handle("GET /ui/dashboard", u.page(u.dashboardLive))
	m.Handle("GET /ui/clusters/{name}", u.page(u.clusterLive))
	m.Handle("GET /ui/clusters/{name}/nodes/{node}", u.page(u.nodeLive))
	m.Handle("GET /ui/activities", u.page(u.activitiesLive))
	m.Handle("GET /ui/activities/{id}", u.page(u.activityLive))
	// Graph data.
	m.Handle("GET /ui/data/clusters/{name}/counters/{counter}", u.page(u.chartData))

	// Actions: operators only, CSRF-checked.
	m.Handle("POST /clusters/{name}/scale", u.action(u.scale))
	m.Handle("POST /clusters/{name}/triggers/{trigger}/fire", u.action(u.fire))
	m.Handle("POST /clusters/{name}/nodes/{node}/maintenance", u.action(u.maintenance))
	m.Handle("POST /clusters/{name}/exec", u.action(u.exec))

	m.Handle("/", u.page(func(_ http.ResponseWriter, r *http.Request, _ *session) error {
		return fmt.Errorf("no page at %s: %w", r.URL.Path, store.ErrNotFound)
	}))
	u.mux = m
}

// ServeHTTP serves the UI with its security headers.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	u.mux.ServeHTTP(w, r)
}

// serveStatic serves the embedded assets; their URLs carry a hash of the
// build (see asset), so they may be cached for long.
func (u *UI) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") != "" {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	u.static.ServeHTTP(w, r)
}

// handlerFunc handles a request for a known session.
type handlerFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// page serves something to look at: it needs a logged-in session (any role).
func (u *UI) page(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(w, r)
		if s.role == "" {
			u.needLogin(w, r)
			return
		}
		if err := h(w, r, s); err != nil {
			u.fail(w, r, s, err)
		}
	})
}

// public serves the login and logout forms: no role needed, but a POST must
// carry the session's CSRF token.
func (u *UI) public(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(w, r)
		if r.Method == http.MethodPost && !u.checkPost(w, r, s) {
			return
		}
		if err := h(w, r, s); err != nil {
			u.fail(w, r, s, err)
		}
	})
}

// action serves a form that changes something: it needs an operator's
// session and the session's CSRF token.
func (u *UI) action(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := u.sessions.get(w, r)
		if s.role == "" {
			u.needLogin(w, r)
			return
		}
		if !u.checkPost(w, r, s) {
			return
		}
		if !s.role.CanAct() {
			u.log.Warn("web UI: a viewer tried to act", "method", r.Method, "path", r.URL.Path)
			u.errorPage(w, r, s, http.StatusForbidden, "Not allowed",
				fmt.Sprintf("You are logged in as a %s: viewers can look at everything but change nothing. Log in with an operator's token to do this.", s.role))
			return
		}
		if err := h(w, r, s); err != nil {
			u.fail(w, r, s, err)
		}
	})
}

// checkPost refuses a POST that does not come from one of this UI's forms:
// a cross-site request, or one without the session's CSRF token.
func (u *UI) checkPost(w http.ResponseWriter, r *http.Request, s *session) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		u.errorPage(w, r, s, http.StatusForbidden, "Refused", "This request came from another site. Use goscaler's own pages.")
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue(csrfField)
	}
	if !s.checkCSRF(got) {
		u.log.Warn("web UI: form refused without a valid CSRF token", "method", r.Method, "path", r.URL.Path)
		u.errorPage(w, r, s, http.StatusForbidden, "Form expired",
			"This form has no valid CSRF token: it is older than your session, or it did not come from goscaler. Go back, reload the page and try again.")
		return false
	}
	return true
}

// needLogin sends a page request to the login form, and tells htmx and the
// graphs (which cannot follow a redirect to a form) to do the same.
func (u *UI) needLogin(w http.ResponseWriter, r *http.Request) {
	to := "/login"
	if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/ui/") {
		to += "?next=" + urlQueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") != "" || strings.HasPrefix(r.URL.Path, "/ui/") {
		w.Header().Set("HX-Redirect", to)
		http.Error(w, "log in first: "+to, http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther) //nolint:gosec // always /login with a query
}

// fail turns a handler's error into an error page (or, for a fragment, a
// short error the page shows).
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status, title := http.StatusInternalServerError, "Something went wrong"
	switch {
	case errors.Is(err, store.ErrNotFound):
		status, title = http.StatusNotFound, "Not found"
	case errors.Is(err, controller.ErrInvalid), errors.Is(err, errBadInput):
		status, title = http.StatusBadRequest, "Cannot do that"
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		return // the browser left
	default:
		u.log.Error("web UI request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	u.errorPage(w, r, s, status, title, err.Error())
}

// errBadInput is wrapped by errors about a request's parameters.
var errBadInput = errors.New("bad input")

// errorPage writes a whole page for a browser, or a line of text for htmx
// and the graphs.
func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, title, msg string) {
	if r.Header.Get("HX-Request") != "" || strings.HasPrefix(r.URL.Path, "/ui/") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(msg + "\n"))
		return
	}
	u.render(w, r, status, "error", "layout", &errorView{Page: u.base(r, s, title, ""), Status: status, Message: msg})
}

type errorView struct {
	Page
	Status  int
	Message string
}

// render executes a page's template into a buffer first, so that a template
// error is a clean 500 and never half a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, page, name string, data any) {
	var b strings.Builder
	if err := u.pages[page].ExecuteTemplate(&b, name, data); err != nil {
		u.log.Error("web UI template failed", "page", page, "template", name, "path", r.URL.Path, "err", err)
		http.Error(w, "rendering this page failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// Page is what every page's template gets: the title, which navigation entry
// is current, the session's role, its CSRF token and a message from the last
// action.
type Page struct {
	Title string
	Nav   string
	Role  config.Role
	// Open is set when no tokens are configured (no login, no logout).
	Open  bool
	CSRF  string
	Flash *flash
	Now   time.Time
}

// CanAct reports whether the page shows its action forms.
func (p Page) CanAct() bool { return p.Role.CanAct() }

func (u *UI) base(r *http.Request, s *session, title, nav string) Page {
	p := Page{Title: title, Nav: nav, Role: s.role, Open: u.sessions.open, CSRF: s.csrf, Now: time.Now()}
	if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
		p.Flash = u.sessions.takeFlash(s)
	}
	return p
}
