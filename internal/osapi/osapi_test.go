package osapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider/openstack/openstacktest"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearOSEnv empties every OS_* variable for the test (t.Setenv restores them).
func clearOSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OS_") {
			t.Setenv(k, "")
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no ~/.config/openstack/clouds.yaml
}

const cloudsYAML = `clouds:
  prod:
    auth:
      auth_url: https://keystone.example.com:5000/v3
      username: alice
      password: s3cr3t-pw
      project_name: web
      user_domain_name: Users
      project_domain_name: Projects
    region_name: RegionTwo
    interface: internal
  appcred:
    auth:
      auth_url: https://keystone.example.com/v3
      application_credential_id: 0123abcd
      application_credential_secret: app-s3cr3t
  byid:
    auth:
      auth_url: https://keystone.example.com/v3
      user_id: u-123
      password: s3cr3t-pw
      project_id: p-456
      user_domain_name: ignored-with-user-id
  nopass:
    auth:
      auth_url: https://keystone.example.com/v3
      username: bob
      project_name: web
  badiface:
    auth:
      auth_url: https://keystone.example.com/v3
      username: bob
      password: x
    interface: sideways
`

// Credentials come from clouds.yaml (merged with secure.yaml) or the OS_*
// variables, with the scope rules of gophercloud's clouds.Parse; problems
// are ErrConfig and never quote a secret.
func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	clouds := writeFile(t, dir, "clouds.yaml", cloudsYAML)
	secureDir := t.TempDir()
	withSecure := writeFile(t, secureDir, "clouds.yaml", strings.ReplaceAll(cloudsYAML, "password: s3cr3t-pw\n      project_name: web", "project_name: web"))
	writeFile(t, secureDir, "secure.yaml", "clouds:\n  prod:\n    auth:\n      password: from-secure\n")
	badYAML := writeFile(t, t.TempDir(), "clouds.yaml", "clouds:\n  prod:\n    auth:\n      password: [unterminated s3cr3t\n")

	tests := []struct {
		name    string
		auth    Auth
		env     map[string]string
		check   func(t *testing.T, c credentials)
		wantErr string
	}{
		{name: "clouds.yaml entry by name", auth: Auth{Cloud: "prod", CloudsFile: clouds},
			check: func(t *testing.T, c credentials) {
				o := c.opts
				if o.IdentityEndpoint != "https://keystone.example.com:5000/v3" || o.Username != "alice" || o.Password != "s3cr3t-pw" ||
					o.DomainName != "Users" || !o.AllowReauth {
					t.Errorf("opts = %+v", o)
				}
				if o.Scope == nil || o.Scope.ProjectName != "web" || o.Scope.DomainName != "Projects" {
					t.Errorf("scope = %+v, want project web in domain Projects", o.Scope)
				}
				if c.region != "RegionTwo" || c.availability != gophercloud.AvailabilityInternal {
					t.Errorf("region %q availability %q", c.region, c.availability)
				}
				if !strings.Contains(c.source, `cloud "prod"`) || !strings.Contains(c.source, clouds) {
					t.Errorf("source = %q", c.source)
				}
			}},
		{name: "OS_CLOUD selects the entry", auth: Auth{CloudsFile: clouds}, env: map[string]string{"OS_CLOUD": "prod"},
			check: func(t *testing.T, c credentials) {
				if c.opts.Username != "alice" {
					t.Errorf("username %q", c.opts.Username)
				}
			}},
		{name: "OS_CLIENT_CONFIG_FILE locates clouds.yaml", auth: Auth{Cloud: "prod"}, env: map[string]string{"OS_CLIENT_CONFIG_FILE": clouds},
			check: func(t *testing.T, c credentials) {
				if c.opts.Username != "alice" {
					t.Errorf("username %q", c.opts.Username)
				}
			}},
		{name: "overrides: auth_url, region, interface", auth: Auth{Cloud: "prod", CloudsFile: clouds,
			AuthURL: "http://127.0.0.1:5000/v3", Region: "Other", Interface: "public"},
			check: func(t *testing.T, c credentials) {
				if c.opts.IdentityEndpoint != "http://127.0.0.1:5000/v3" || c.region != "Other" || c.availability != gophercloud.AvailabilityPublic {
					t.Errorf("endpoint %q region %q availability %q", c.opts.IdentityEndpoint, c.region, c.availability)
				}
			}},
		{name: "OS_REGION_NAME applies to a clouds.yaml entry", auth: Auth{Cloud: "prod", CloudsFile: clouds},
			env: map[string]string{"OS_REGION_NAME": "FromEnv"},
			check: func(t *testing.T, c credentials) {
				if c.region != "FromEnv" {
					t.Errorf("region %q", c.region)
				}
			}},
		{name: "secure.yaml supplies the password", auth: Auth{Cloud: "prod", CloudsFile: withSecure},
			check: func(t *testing.T, c credentials) {
				if c.opts.Password != "from-secure" || c.opts.Username != "alice" {
					t.Errorf("username %q password %q", c.opts.Username, c.opts.Password)
				}
			}},
		{name: "application credential: no scope, no domain", auth: Auth{Cloud: "appcred", CloudsFile: clouds},
			check: func(t *testing.T, c credentials) {
				o := c.opts
				if o.ApplicationCredentialID != "0123abcd" || o.ApplicationCredentialSecret != "app-s3cr3t" || o.Scope != nil || o.DomainName != "" {
					t.Errorf("opts = %+v", o)
				}
			}},
		{name: "user and project by ID", auth: Auth{Cloud: "byid", CloudsFile: clouds},
			check: func(t *testing.T, c credentials) {
				o := c.opts
				if o.UserID != "u-123" || o.DomainName != "" || o.Scope == nil || o.Scope.ProjectID != "p-456" {
					t.Errorf("opts = %+v scope %+v", o, o.Scope)
				}
			}},
		{name: "OS_* variables of a Horizon openrc", env: map[string]string{
			"OS_AUTH_URL": "https://keystone.example.com/v3", "OS_USERNAME": "carol", "OS_PASSWORD": "pw-env",
			"OS_PROJECT_NAME": "web", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_ID": "default",
			"OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "public"},
			check: func(t *testing.T, c credentials) {
				o := c.opts
				if o.Username != "carol" || o.Password != "pw-env" || o.DomainName != "Default" ||
					o.Scope == nil || o.Scope.ProjectName != "web" || o.Scope.DomainID != "default" {
					t.Errorf("opts = %+v scope %+v", o, o.Scope)
				}
				if c.region != "RegionOne" || c.source != "the OS_* environment variables" {
					t.Errorf("region %q source %q", c.region, c.source)
				}
			}},
		{name: "OS_TOKEN: no reauthentication", env: map[string]string{
			"OS_AUTH_URL": "https://keystone.example.com/v3", "OS_TOKEN": "tok", "OS_PROJECT_ID": "p1"},
			check: func(t *testing.T, c credentials) {
				if c.opts.TokenID != "tok" || c.opts.AllowReauth {
					t.Errorf("opts = %+v", c.opts)
				}
			}},
		{name: "nothing at all", wantErr: "no OpenStack credentials: set cloud"},
		{name: "unknown cloud names the known ones", auth: Auth{Cloud: "nope", CloudsFile: clouds},
			wantErr: `cloud "nope" is not in ` + clouds + " (clouds there: appcred, badiface, byid, nopass, prod)"},
		{name: "no clouds.yaml", auth: Auth{Cloud: "prod", CloudsFile: filepath.Join(dir, "missing.yaml")},
			wantErr: "no clouds.yaml found"},
		{name: "missing password", auth: Auth{Cloud: "nopass", CloudsFile: clouds}, wantErr: "lacks a password"},
		{name: "missing OS_AUTH_URL", env: map[string]string{"OS_USERNAME": "x", "OS_PASSWORD": "y"},
			wantErr: "no OpenStack credentials"},
		{name: "bad interface", auth: Auth{Cloud: "badiface", CloudsFile: clouds}, wantErr: `interface "sideways"`},
		{name: "invalid YAML does not quote the file", auth: Auth{Cloud: "prod", CloudsFile: badYAML},
			wantErr: "is not a valid clouds.yaml at line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearOSEnv(t)
			t.Chdir(t.TempDir()) // no ./clouds.yaml
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := tt.auth.loadCredentials()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig with %q", err, tt.wantErr)
				}
				for _, secret := range []string{"s3cr3t", "pw-env", "app-s3cr3t"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("the error quotes a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("loadCredentials: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestAuthValidate(t *testing.T) {
	t.Parallel()
	a := Auth{AuthURL: "keystone:5000", Interface: "outside", Endpoints: map[string]string{"compute": "ftp://x", "dns": "http://x"},
		Retries: -2, RetryDelay: plugin.Duration(-time.Second), RequestTimeout: plugin.Duration(-1), MaxRetryDelay: plugin.Duration(-1)}
	var msgs []string
	for _, e := range a.Validate() {
		msgs = append(msgs, e.Error())
	}
	got := strings.Join(msgs, "\n")
	for _, want := range []string{`auth_url: "keystone:5000" is not an http:// or https:// URL`, `interface: "outside"`,
		`endpoints.compute: "ftp://x" is not`, "endpoints.dns: unknown service type", "retries: -2",
		"request_timeout: must not be negative", "retry_delay: must not be negative", "max_retry_delay: must not be negative"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if errs := (&Auth{Cloud: "x", Endpoints: map[string]string{"load-balancer": "https://lb:9876"}}).Validate(); len(errs) != 0 {
		t.Errorf("a valid Auth: %v", errs)
	}
}

func apiErr(status int, body string, h http.Header) error {
	return gophercloud.ErrUnexpectedResponseCode{URL: "http://x/compute/v2.1/servers", Method: "POST",
		Actual: status, Body: []byte(body), ResponseHeader: h}
}

func TestErrorClassification(t *testing.T) {
	t.Parallel()
	ra := http.Header{"Retry-After": []string{"7"}}
	tests := []struct {
		name            string
		err             error
		msg             string
		transient       bool
		quota, notFound bool
		retryAfter      time.Duration
	}{
		{"nova quota 403", apiErr(403, `{"forbidden": {"code": 403, "message": "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"}}`, nil),
			"Quota exceeded for instances: Requested 1, but already used 10 of 10 instances", false, true, false, 0},
		{"old nova quota 413", apiErr(413, `{"overLimit": {"code": 413, "message": "Quota exceeded for cores"}}`, nil), "Quota exceeded for cores", false, true, false, 0},
		{"413 rate limit with Retry-After", apiErr(413, `{"overLimit": {"message": "This request was rate-limited."}}`, ra), "This request was rate-limited.", true, false, false, 7 * time.Second},
		{"neutron quota 409", apiErr(409, `{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['floatingip'].", "detail": ""}}`, nil),
			"Quota exceeded for resources: ['floatingip'].", false, true, false, 0},
		{"throttled 429", apiErr(429, `{"overLimit": {"code": 429, "message": "Too many requests"}}`, ra), "Too many requests", true, false, false, 7 * time.Second},
		{"unavailable 503 text", apiErr(503, "Service Unavailable\n", nil), "Service Unavailable", true, false, false, 0},
		{"500 HTML", apiErr(500, "<html><head><title>500 Internal Server Error</title></head><body><h1>Internal Server Error</h1></body></html>", nil),
			"Internal Server Error", true, false, false, 0},
		{"octavia 409", apiErr(409, `{"faultcode": "Client", "faultstring": "Load Balancer x is immutable and cannot be updated.", "debuginfo": null}`, nil),
			"Load Balancer x is immutable and cannot be updated.", false, false, false, 0},
		{"keystone 401", apiErr(401, `{"error": {"code": 401, "message": "The request you have made requires authentication.", "title": "Unauthorized"}}`, nil),
			"The request you have made requires authentication.", false, false, false, 0},
		{"nova 404", apiErr(404, `{"itemNotFound": {"code": 404, "message": "Instance x could not be found."}}`, nil), "Instance x could not be found.", false, false, true, 0},
		{"501 is not transient", apiErr(501, "", nil), "", false, false, false, 0},
		{"connection refused", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, "", true, false, false, 0},
		{"unexpected EOF", fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "", true, false, false, 0},
		{"caller cancelled", fmt.Errorf("x: %w", context.Canceled), "", false, false, false, 0},
		{"plain error", errors.New("boom"), "", false, false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Message(tt.err); got != tt.msg {
				t.Errorf("Message = %q, want %q", got, tt.msg)
			}
			if got := IsTransient(tt.err); got != tt.transient {
				t.Errorf("IsTransient = %v", got)
			}
			if got := IsQuota(tt.err); got != tt.quota {
				t.Errorf("IsQuota = %v", got)
			}
			if got := IsNotFound(tt.err); got != tt.notFound {
				t.Errorf("IsNotFound = %v", got)
			}
			if ae, ok := AsAPIError(tt.err); ok && ae.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %s, want %s", ae.RetryAfter, tt.retryAfter)
			}
		})
	}
	// Clean keeps the status and message, not gophercloud's long text.
	e := Clean(apiErr(403, `{"forbidden": {"message": "Quota exceeded for instances"}}`, nil))
	if e.Error() != "POST /compute/v2.1/servers: HTTP 403: Quota exceeded for instances" {
		t.Errorf("Clean = %q", e)
	}
	if Status(fmt.Errorf("wrapped: %w", e)) != 403 {
		t.Error("Status does not see through wrapping")
	}
	when := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	if d := retryAfter(http.Header{"Retry-After": []string{when}}); d <= 0 || d > 3*time.Second {
		t.Errorf("Retry-After as a date: %s", d)
	}
}

func TestRetrier(t *testing.T) {
	t.Parallel()
	r := Retrier{Retries: 3, Base: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		for range 50 {
			d := r.Delay(n, errors.New("x"))
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s] (equal jitter)", n, d, want/2, want)
			}
		}
	}
	if d := r.Delay(1, apiErr(429, "", http.Header{"Retry-After": []string{"1"}})); d != time.Second {
		t.Errorf("Delay with Retry-After: 1 = %s, want 1s", d)
	}
	if d := r.Delay(1, apiErr(429, "", http.Header{"Retry-After": []string{"120"}})); d != time.Second {
		t.Errorf("Delay with Retry-After: 120 = %s, want the cap, 1s", d)
	}

	fast := Retrier{Retries: 2, Base: time.Millisecond, Max: time.Millisecond}
	calls := 0
	err := fast.Do(context.Background(), nil, func(context.Context) error { calls++; return apiErr(503, "", nil) })
	if calls != 3 || !strings.Contains(fmt.Sprint(err), "gave up after 3 attempts") || Status(err) != 503 {
		t.Errorf("a transient error: %d calls, err %v; want 3 calls and the last error", calls, err)
	}
	calls = 0
	err = fast.Do(context.Background(), nil, func(context.Context) error { calls++; return apiErr(400, "", nil) })
	if calls != 1 || Status(err) != 400 {
		t.Errorf("a permanent error: %d calls, err %v", calls, err)
	}
	calls = 0
	err = fast.Do(context.Background(), nil, func(context.Context) error {
		if calls++; calls < 3 {
			return apiErr(429, "", nil)
		}
		return nil
	})
	if calls != 3 || err != nil {
		t.Errorf("success on the third try: %d calls, err %v", calls, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	slow := Retrier{Retries: 5, Base: time.Hour, Max: time.Hour}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	err = slow.Do(ctx, nil, func(context.Context) error { return apiErr(503, "", nil) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled wait: %v", err)
	}
}

// fakeAuth is an Auth for the fake cloud through a clouds.yaml file.
func fakeAuth(t *testing.T, c *openstacktest.Cloud) Auth {
	t.Helper()
	p := writeFile(t, t.TempDir(), "clouds.yaml", c.CloudsYAML("fake"))
	return Auth{Cloud: "fake", CloudsFile: p, RetryDelay: plugin.Duration(time.Millisecond),
		MaxRetryDelay: plugin.Duration(20 * time.Millisecond), RequestTimeout: plugin.Duration(2 * time.Second)}
}

func TestSession(t *testing.T) {
	t.Parallel()
	c := openstacktest.New()
	t.Cleanup(c.Close)
	ctx := context.Background()

	t.Run("catalog", func(t *testing.T) {
		t.Parallel()
		s := NewSession(fakeAuth(t, c), nil)
		for svc, get := range map[string]func(context.Context) (*gophercloud.ServiceClient, error){
			ServiceCompute: s.Compute, ServiceNetwork: s.Network, ServiceImage: s.Image, ServiceLoadBalancer: s.LoadBalancer} {
			sc, err := get(ctx)
			if err != nil {
				t.Fatalf("%s: %v", svc, err)
			}
			if !strings.HasPrefix(sc.Endpoint, c.ServiceURL(svc)) {
				t.Errorf("%s endpoint %q, want the catalog's %q", svc, sc.Endpoint, c.ServiceURL(svc))
			}
		}
		if !strings.Contains(s.Where(), `cloud "fake"`) || !strings.Contains(s.Where(), "region RegionOne") {
			t.Errorf("Where = %q", s.Where())
		}
	})
	t.Run("an unversioned auth_url is discovered", func(t *testing.T) {
		t.Parallel()
		a := fakeAuth(t, c)
		a.AuthURL = c.URL() + "/identity"
		if _, err := NewSession(a, nil).Compute(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("endpoints override the catalog", func(t *testing.T) {
		t.Parallel()
		other := openstacktest.New()
		t.Cleanup(other.Close)
		a := fakeAuth(t, c)
		a.Endpoints = map[string]string{"compute": other.ServiceURL(openstacktest.Compute)}
		sc, err := NewSession(a, nil).Compute(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sc.Endpoint, other.URL()) {
			t.Errorf("compute endpoint %q, want the override %q", sc.Endpoint, other.URL())
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, t.TempDir(), "clouds.yaml", strings.Replace(c.CloudsYAML("fake"), c.Password, "not-the-password", 1))
		_, err := NewSession(Auth{Cloud: "fake", CloudsFile: p, RetryDelay: plugin.Duration(time.Millisecond)}, nil).Compute(ctx)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "refused the credentials") {
			t.Fatalf("err = %v, want ErrConfig saying the credentials were refused", err)
		}
		if strings.Contains(err.Error(), "not-the-password") {
			t.Errorf("the error quotes the password: %v", err)
		}
	})
	t.Run("Keystone down is transient", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		a := fakeAuth(t, c)
		a.AuthURL, a.Retries = "http://"+addr+"/v3", 1
		_, err = NewSession(a, nil).Compute(ctx)
		if err == nil || errors.Is(err, ErrConfig) || !IsTransient(err) {
			t.Fatalf("err = %v, want a transient error", err)
		}
	})
	t.Run("no endpoint in the region", func(t *testing.T) {
		t.Parallel()
		a := fakeAuth(t, c)
		a.Region = "Elsewhere"
		_, err := NewSession(a, nil).Network(ctx)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "has no network endpoint") || !strings.Contains(err.Error(), "region Elsewhere") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("an expired token is renewed", func(t *testing.T) {
		t.Parallel()
		s := NewSession(fakeAuth(t, c), nil)
		sc, err := s.Compute(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c.ExpireTokens()
		if _, err := sc.Get(ctx, sc.ServiceURL("flavors", "detail"), nil, nil); err != nil {
			t.Fatalf("a request after the token expired: %v", err)
		}
	})
}
