// Package openstacktest is an in-memory OpenStack cloud for tests: Keystone v3
// (password and token authentication, a service catalog pointing at the
// fake's own URLs), Nova (servers with metadata, flavors, key pairs, faults,
// quotas, a BUILD → ACTIVE life), Neutron (networks, subnets, ports, floating
// IPs), Glance (images) and Octavia (load balancers, pools, members, and the
// PENDING_UPDATE state that refuses mutations with 409), all speaking the real
// JSON wire formats on a loopback HTTP server, so that gophercloud talks to it
// as it would to a cloud.
//
// Tests inject failures with Inject: an HTTP status (429 with Retry-After, 500,
// 503, …), a delay (a timeout in the client), a connection dropped, or a
// request that is processed and then never answered (the "crash between create
// and store"). Every request is recorded (Requests, Count).
//
//	c := openstacktest.New()
//	defer c.Close()
//	c.AddFlavor("m1.small")
//	c.AddImage("cirros")
//	c.AddNetwork("private", "10.0.0.0/24")
//	// clouds.yaml: c.CloudsYAML("fake"); or c.AuthURL() with c.Username/Password/Project.
//
// A Cloud is safe for concurrent use.
package openstacktest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Default identity of the fake's only user.
const (
	DefaultUsername = "demo"
	DefaultPassword = "secret-demo-password"
	DefaultProject  = "demo"
	DefaultDomain   = "Default"
	DefaultRegion   = "RegionOne"
)

// Service names: the first path element of each service's URL, also the
// catalog's service type.
const (
	Identity     = "identity"
	Compute      = "compute"
	Network      = "network"
	Image        = "image"
	LoadBalancer = "load-balancer"
)

// Cloud is the fake. Its fields of identity are set by New; change them before
// the first request only.
type Cloud struct {
	// Username, Password and Project are the credentials Keystone accepts;
	// Domain is the user's and the project's domain.
	Username, Password, Project, Domain string
	// ProjectID and UserID are the IDs of Project and of the user.
	ProjectID, UserID string
	// Region is the region of every endpoint of the catalog.
	Region string

	srv *httptest.Server

	mu     sync.Mutex
	tokens map[string]time.Time // token → expiry
	ttl    time.Duration

	flavors      map[string]*Flavor
	images       map[string]*ImageInfo
	keypairs     map[string]bool
	secgroup     map[string]bool
	servers      map[string]*server
	quota        int // instances; 0: unlimited
	fipQuota     int // floating IPs; 0: unlimited
	build        time.Duration
	delDelay     time.Duration
	faults       []string // fault messages of the next builds that fail
	hideFloating bool
	pageSize     int

	networks map[string]*NetworkInfo
	subnets  map[string]*SubnetInfo
	ports    map[string]*port
	fips     map[string]*FloatingIP

	lbs     map[string]*lbState
	pools   map[string]*PoolInfo
	members map[string]*member
	pending time.Duration

	latency   time.Duration
	rules     []*Injected
	requests  []Request
	onActive  []func(Server)
	onDeleted []func(Server)
}

// New starts a fake cloud on 127.0.0.1 with one user and project, the
// default security group and no other resource. Close it when done.
func New() *Cloud {
	c := &Cloud{
		Username: DefaultUsername, Password: DefaultPassword, Project: DefaultProject, Domain: DefaultDomain,
		ProjectID: newID(), UserID: newID(), Region: DefaultRegion,
		tokens: map[string]time.Time{}, ttl: time.Hour,
		flavors: map[string]*Flavor{}, images: map[string]*ImageInfo{}, keypairs: map[string]bool{},
		secgroup: map[string]bool{"default": true}, servers: map[string]*server{}, pageSize: 1000,
		networks: map[string]*NetworkInfo{}, subnets: map[string]*SubnetInfo{}, ports: map[string]*port{},
		fips: map[string]*FloatingIP{}, lbs: map[string]*lbState{}, pools: map[string]*PoolInfo{},
		members: map[string]*member{},
	}
	mux := http.NewServeMux()
	c.routeIdentity(mux)
	c.routeCompute(mux)
	c.routeNetwork(mux)
	c.routeImage(mux)
	c.routeLoadBalancer(mux)
	c.srv = httptest.NewServer(c.middleware(mux))
	return c
}

// Close stops the HTTP server; requests still hanging are released.
func (c *Cloud) Close() {
	c.mu.Lock()
	for _, r := range c.rules {
		r.release()
	}
	c.mu.Unlock()
	c.srv.CloseClientConnections()
	c.srv.Close()
}

// URL is the base URL of the fake (http://127.0.0.1:PORT).
func (c *Cloud) URL() string { return c.srv.URL }

// AuthURL is Keystone's v3 URL, what OS_AUTH_URL and auth.auth_url hold.
func (c *Cloud) AuthURL() string { return c.srv.URL + "/identity/v3" }

// ServiceURL is the URL of a service as the catalog lists it (Nova's with
// its version, the others without, as in a real deployment).
func (c *Cloud) ServiceURL(service string) string {
	switch service {
	case Compute:
		return c.srv.URL + "/compute/v2.1"
	case Identity:
		return c.AuthURL()
	default:
		return c.srv.URL + "/" + service
	}
}

// CloudsYAML returns a clouds.yaml that holds the fake as cloud name.
func (c *Cloud) CloudsYAML(name string) string {
	return fmt.Sprintf(`clouds:
  %s:
    auth:
      auth_url: %s
      username: %s
      password: %s
      project_name: %s
      user_domain_name: %s
      project_domain_name: %s
    region_name: %s
    interface: public
    identity_api_version: 3
`, name, c.AuthURL(), c.Username, c.Password, c.Project, c.Domain, c.Domain, c.Region)
}

// Env returns the OS_* variables of an openrc file for the fake.
func (c *Cloud) Env() map[string]string {
	return map[string]string{
		"OS_AUTH_URL": c.AuthURL(), "OS_USERNAME": c.Username, "OS_PASSWORD": c.Password,
		"OS_PROJECT_NAME": c.Project, "OS_USER_DOMAIN_NAME": c.Domain, "OS_PROJECT_DOMAIN_NAME": c.Domain,
		"OS_REGION_NAME": c.Region, "OS_INTERFACE": "public", "OS_IDENTITY_API_VERSION": "3",
	}
}

// SetLatency delays every answer by d.
func (c *Cloud) SetLatency(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latency = d
}

// ExpireTokens makes every token issued so far invalid: the next request with
// one is answered 401 and the client must authenticate again.
func (c *Cloud) ExpireTokens() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.tokens)
}

// ---------------------------------------------------------------------------
// Requests and injected failures

// Request is one request the fake received.
type Request struct {
	Method  string
	Service string
	// Path is the path within the service, without its version prefix
	// ("/servers/detail", "/v2.0/floatingips" is "/floatingips").
	Path   string
	Query  string
	Status int // the status answered; 0 if none was (hung, dropped)
	At     time.Time
}

func (r Request) String() string {
	q := ""
	if r.Query != "" {
		q = "?" + r.Query
	}
	return fmt.Sprintf("%s %s %s%s → %d", r.Method, r.Service, r.Path, q, r.Status)
}

// Fault describes a failure to inject in the requests that match it.
type Fault struct {
	// Service, Method and Path select the requests ("" matches any); Path
	// is a regular expression on the path within the service, such as
	// `^/servers$` or `^/floatingips`.
	Service, Method, Path string
	// Times is how many matching requests fail (0: all of them).
	Times int
	// After processes the request first, then fails its answer: the change
	// is made but the client does not learn it.
	After bool
	// Status is the answer's status (with Body, or the service's usual
	// error body for that status, and Header).
	Status int
	Body   string
	Header http.Header
	// Delay waits before answering (a timeout if longer than the client's).
	Delay time.Duration
	// Hang never answers, until the client gives up or Release is called.
	Hang bool
	// Drop closes the connection without an answer.
	Drop bool
	// OnMatch is called (without any lock held) when a request matches;
	// with After, once it has been processed.
	OnMatch func(Request)
}

// Injected is a fault in force.
type Injected struct {
	f       Fault
	path    *regexp.Regexp
	mu      sync.Mutex
	hits    int
	done    chan struct{} // closed by Release
	relOnce sync.Once
}

// Hits is how many requests the fault has applied to.
func (i *Injected) Hits() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.hits
}

// Release lets hanging requests go (they answer as if nothing was injected,
// or, with After, with their real answer) and stops the fault.
func (i *Injected) Release() { i.release() }

func (i *Injected) release() { i.relOnce.Do(func() { close(i.done) }) }

func (i *Injected) released() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// Inject puts f in force until it has applied Times times or is released.
func (c *Cloud) Inject(f Fault) *Injected {
	inj := &Injected{f: f, done: make(chan struct{})}
	if f.Path != "" {
		inj.path = regexp.MustCompile(f.Path)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rules = append(c.rules, inj)
	return inj
}

// match returns the first fault in force that r matches, counting the hit.
func (c *Cloud) match(r Request) *Injected {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, inj := range c.rules {
		f := inj.f
		if inj.released() || (f.Service != "" && f.Service != r.Service) || (f.Method != "" && f.Method != r.Method) ||
			(inj.path != nil && !inj.path.MatchString(r.Path)) {
			continue
		}
		inj.mu.Lock()
		if f.Times > 0 && inj.hits >= f.Times {
			inj.mu.Unlock()
			continue
		}
		inj.hits++
		inj.mu.Unlock()
		return inj
	}
	return nil
}

// Requests returns the requests received so far, in order.
func (c *Cloud) Requests() []Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

// Count is how many requests of method (any if "") to service whose path
// matches the regular expression path were received.
func (c *Cloud) Count(service, method, path string) int {
	re := regexp.MustCompile(path)
	n := 0
	for _, r := range c.Requests() {
		if (service == "" || r.Service == service) && (method == "" || r.Method == method) && re.MatchString(r.Path) {
			n++
		}
	}
	return n
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

// split returns the service and the path within it of a URL path.
func split(p string) (string, string) {
	p = strings.TrimPrefix(p, "/")
	service, rest, _ := strings.Cut(p, "/")
	rest = "/" + rest
	rest = versionPrefix.ReplaceAllString(rest, "")
	if rest == "" {
		rest = "/"
	}
	return service, rest
}

func (c *Cloud) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		service, path := split(r.URL.Path)
		req := Request{Method: r.Method, Service: service, Path: path, Query: r.URL.RawQuery, At: time.Now()}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			req.Status = sw.status
			c.mu.Lock()
			c.requests = append(c.requests, req)
			c.mu.Unlock()
		}()

		c.mu.Lock()
		latency := c.latency
		c.mu.Unlock()
		if latency > 0 && !wait(r, latency, nil) {
			return
		}
		// Servers and load balancers move on in time; hooks run before
		// the request sees the new state.
		c.advance()

		if service != Identity && !c.validToken(r.Header.Get("X-Auth-Token")) && !isVersionDoc(service, path, r.Method) {
			writeError(sw, service, http.StatusUnauthorized, "The request you have made requires authentication.")
			return
		}

		inj := c.match(req)
		if inj == nil {
			next.ServeHTTP(sw, r)
			return
		}
		f := inj.f
		if f.OnMatch != nil && !f.After {
			f.OnMatch(req)
		}
		// real answers the request as if nothing was injected; with After,
		// it replays the answer recorded before the fault.
		real := func() { next.ServeHTTP(sw, r) }
		if f.After {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			real = func() {
				maps.Copy(sw.Header(), rec.Header())
				sw.WriteHeader(rec.Code)
				_, _ = sw.Write(rec.Body.Bytes())
			}
			if f.OnMatch != nil {
				f.OnMatch(req)
			}
		}
		if f.Delay > 0 && !wait(r, f.Delay, inj.done) {
			return
		}
		switch {
		case inj.released():
			real()
		case f.Hang:
			if wait(r, 0, inj.done) {
				real() // released
			}
		case f.Drop:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case f.Status != 0:
			for k, vs := range f.Header {
				for _, v := range vs {
					sw.Header().Add(k, v)
				}
			}
			if f.Body != "" {
				sw.Header().Set("Content-Type", "application/json")
				sw.WriteHeader(f.Status)
				_, _ = sw.Write([]byte(f.Body))
				return
			}
			writeError(sw, service, f.Status, http.StatusText(f.Status))
		default:
			real()
		}
	})
}

// wait waits d (forever if 0) or until release is closed; false if the
// client went away first.
func wait(r *http.Request, d time.Duration, release <-chan struct{}) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-r.Context().Done():
		return false
	case <-timer:
		return true
	case <-release:
		return true
	}
}

func isVersionDoc(service, path, method string) bool {
	return method == http.MethodGet && path == "/" && service != ""
}

// ---------------------------------------------------------------------------
// JSON helpers

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the error format of the service.
func writeError(w http.ResponseWriter, service string, status int, msg string) {
	switch service {
	case Compute:
		key := map[int]string{400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
			409: "conflictingRequest", 413: "overLimit", 429: "overLimit", 500: "computeFault",
			503: "serviceUnavailable"}[status]
		if key == "" {
			key = "computeFault"
		}
		writeJSON(w, status, map[string]any{key: map[string]any{"code": status, "message": msg}})
	case Network:
		typ := map[int]string{400: "BadRequest", 401: "NotAuthorized", 403: "Forbidden", 404: "NotFound",
			409: "Conflict", 500: "InternalServerError", 503: "ServiceUnavailable"}[status]
		writeJSON(w, status, map[string]any{"NeutronError": map[string]any{"type": typ, "message": msg, "detail": ""}})
	case LoadBalancer:
		code := "Client"
		if status >= 500 {
			code = "Server"
		}
		writeJSON(w, status, map[string]any{"faultcode": code, "faultstring": msg, "debuginfo": nil})
	case Identity:
		writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "title": http.StatusText(status)}})
	default: // Glance answers in text
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "%d %s\n\n%s\n\n", status, http.StatusText(status), msg) //nolint:gosec // text/plain, as Glance answers
	}
}

// readJSON decodes the body into v; false (after answering 400) if it is not
// valid JSON.
func readJSON(w http.ResponseWriter, r *http.Request, service string, v any) bool {
	dec := json.NewDecoder(bufio.NewReader(r.Body))
	if err := dec.Decode(v); err != nil {
		writeError(w, service, http.StatusBadRequest, "Malformed request body: "+err.Error())
		return false
	}
	return true
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func newHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }
