package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/config"
)

// Session cookie and form field names.
const (
	cookieName = "goscaler_session"
	csrfField  = "csrf_token"
)

// Session lifetimes and the most sessions kept at once.
const (
	// idleLogin ends a logged-in session unused for this long.
	idleLogin = 12 * time.Hour
	// idleAnonymous ends a session that never logged in.
	idleAnonymous = time.Hour
	maxSessions   = 10000
)

// session is one browser's: its role once logged in ("" before), its CSRF
// token, and a message for the next page. Sessions live in the server's
// memory: a restart logs everyone out. The token a person logged in with is
// never kept.
type session struct {
	id    string
	csrf  string
	role  config.Role
	seen  time.Time
	flash *flash
}

// checkCSRF compares a form's token with the session's in constant time.
func (s *session) checkCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// flash is the outcome of an action, shown once on the next page.
type flash struct {
	Error bool
	Text  string
	// Link, if set, points at what the action made (its activity).
	Link     string
	LinkText string
}

type sessions struct {
	// open: no tokens, every session is an operator's.
	open bool
	mu   sync.Mutex
	m    map[string]*session
	now  func() time.Time
}

func newSessions(open bool) *sessions {
	return &sessions{open: open, m: map[string]*session{}, now: time.Now}
}

// get returns the request's session, or starts one (setting its cookie).
func (ss *sessions) get(w http.ResponseWriter, r *http.Request) *session {
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if c, err := r.Cookie(cookieName); err == nil {
		if s, ok := ss.m[c.Value]; ok && now.Sub(s.seen) < ss.idle(s) {
			s.seen = now
			return s
		}
		delete(ss.m, c.Value)
	}
	s := ss.startLocked(w, r, "")
	return s
}

func (ss *sessions) idle(s *session) time.Duration {
	if s.role == "" {
		return idleAnonymous
	}
	return idleLogin
}

// startLocked makes a new session with role (operator when open) and sets
// its cookie. The caller holds ss.mu.
func (ss *sessions) startLocked(w http.ResponseWriter, r *http.Request, role config.Role) *session {
	now := ss.now()
	if ss.open {
		role = config.RoleOperator
	}
	if len(ss.m) >= maxSessions {
		ss.pruneLocked(now)
	}
	s := &session{id: randomToken(), csrf: randomToken(), role: role, seen: now}
	ss.m[s.id] = s
	// Secure when the request came over TLS: the server itself speaks plain
	// HTTP (on loopback, or behind a TLS proxy that sets the flag).
	cookie := &http.Cookie{Name: cookieName, Value: s.id, Path: "/", HttpOnly: true, //nolint:gosec // Secure: see above
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	http.SetCookie(w, cookie)
	return s
}

// pruneLocked drops expired sessions and, if that is not enough, the
// anonymous ones, then the least recently used.
func (ss *sessions) pruneLocked(now time.Time) {
	for id, s := range ss.m {
		if now.Sub(s.seen) >= ss.idle(s) || s.role == "" {
			delete(ss.m, id)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest *session
		for _, s := range ss.m {
			if oldest == nil || s.seen.Before(oldest.seen) {
				oldest = s
			}
		}
		delete(ss.m, oldest.id)
	}
}

// login replaces s with a new session of role (a new id and CSRF token, so
// that a session fixed before login is worth nothing after).
func (ss *sessions) login(w http.ResponseWriter, r *http.Request, s *session, role config.Role) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, s.id)
	return ss.startLocked(w, r, role)
}

// logout ends s and starts an anonymous session in its place.
func (ss *sessions) logout(w http.ResponseWriter, r *http.Request, s *session) *session {
	return ss.login(w, r, s, "")
}

func (ss *sessions) setFlash(s *session, f flash) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s.flash = &f
}

func (ss *sessions) takeFlash(s *session) *flash {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loginView is the login page's data.
type loginView struct {
	Page
	Next  string
	Error string
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, s *session) error {
	next := localPath(r.URL.Query().Get("next"))
	if s.role != "" {
		http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // localPath keeps next on this server
		return nil
	}
	u.render(w, r, http.StatusOK, "login", "layout", &loginView{Page: u.base(r, s, "Log in", ""), Next: next})
	return nil
}

func (u *UI) login(w http.ResponseWriter, r *http.Request, s *session) error {
	next := localPath(r.PostFormValue("next"))
	role, ok := api.TokenRole(u.opts.Tokens, strings.TrimSpace(r.PostFormValue("token")))
	if !ok {
		u.log.Warn("web UI: login refused: unknown token", "remote", r.RemoteAddr)
		u.render(w, r, http.StatusUnauthorized, "login", "layout", &loginView{Page: u.base(r, s, "Log in", ""), Next: next,
			Error: "That token is not one of the server's api_tokens."})
		return nil
	}
	u.sessions.login(w, r, s, role)
	u.log.Info("web UI: logged in", "role", role, "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther) //nolint:gosec // localPath keeps next on this server
	return nil
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	u.sessions.logout(w, r, s)
	to := "/login"
	if u.sessions.open {
		to = "/"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// localPath keeps a redirect target on this server: a path, never a URL to
// another host ("//evil", "/\evil", "https://…").
func localPath(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	if u, err := url.Parse(p); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return p
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
