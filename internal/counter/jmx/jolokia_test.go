package jmx

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
)

const (
	jolokiaUser     = "monitor"
	jolokiaPassword = "jolokia-S3cret!"
)

// mbeans are the MBeans of the Jolokia stand-in: attribute values as Jolokia
// serializes them.
var mbeans = map[string]map[string]any{
	"java.lang:type=Memory": {
		"HeapMemoryUsage": map[string]any{"used": 123456, "max": 1e9, "committed": 2e8, "init": 1e8},
	},
	"java.lang:type=Threading":                      {"ThreadCount": 17},
	`Catalina:type=ThreadPool,name="http-nio-8080"`: {"currentThreadsBusy": 3},
	"test:type=Odd/Name!,path=a/b":                  {"Value": 5},
	"test:type=Values": {
		"Num": "42.5", "Text": "abc", "Flag": true, "Nothing": nil, "List": []any{1, 2},
		"Deep": map[string]any{"a": map[string]any{"b": 7.5}}, "NaN": "NaN",
	},
}

// jolokiaSplit splits a Jolokia GET path into its parts, undoing the "!"
// escapes, as the agent does.
func jolokiaSplit(p string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '!' && i+1 < len(p):
			i++
			cur.WriteByte(p[i])
		case p[i] == '/':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(p[i])
		}
	}
	return append(parts, cur.String())
}

// jolokiaStandIn speaks Jolokia's read protocol (GET /jolokia/read/<mbean>/
// <attribute>[/<path>…], answered with {"value", "status"} or
// {"error_type", "error", "status"}, HTTP 200 either way) behind basic auth.
func jolokiaStandIn(t *testing.T) *httptest.Server {
	t.Helper()
	reply := func(w http.ResponseWriter, v map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, status int, typ, msg string) {
		reply(w, map[string]any{"status": status, "error_type": typ, "error": typ + " : " + msg})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/jolokia/read/", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != jolokiaUser || p != jolokiaPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="jolokia"`)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
		parts := jolokiaSplit(strings.TrimPrefix(r.URL.Path, "/jolokia/read/"))
		if len(parts) < 2 {
			fail(w, 400, "java.lang.IllegalArgumentException", "no attribute")
			return
		}
		name := parts[0]
		if !strings.Contains(name, ":") {
			fail(w, 400, "javax.management.MalformedObjectNameException", "Key properties cannot be empty")
			return
		}
		bean, ok := mbeans[name]
		if !ok {
			fail(w, 404, "javax.management.InstanceNotFoundException", name)
			return
		}
		v, ok := bean[parts[1]]
		if !ok {
			fail(w, 404, "javax.management.AttributeNotFoundException", "No such attribute: "+parts[1])
			return
		}
		for _, key := range parts[2:] {
			m, ok := v.(map[string]any)
			if !ok {
				fail(w, 400, "java.lang.IllegalArgumentException", "Cannot navigate into "+key)
				return
			}
			if v, ok = m[key]; !ok {
				fail(w, 404, "javax.management.AttributeNotFoundException", "No key "+key)
				return
			}
		}
		reply(w, map[string]any{"status": 200, "value": v, "timestamp": time.Now().Unix(),
			"request": map[string]any{"type": "read", "mbean": name, "attribute": parts[1]}})
	})
	mux.HandleFunc("/broken/read/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>proxy error</html>")) })
	mux.HandleFunc("/nostatus/read/", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"value": 1}`)) })
	mux.HandleFunc("/http500/read/", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"status": 500, "error_type": "java.lang.OutOfMemoryError", "error": "java.lang.OutOfMemoryError : heap"}`))
	})
	mux.HandleFunc("/slow/read/", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func newSource(t *testing.T, cfg *Config) *Source {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := cfg.New(counter.Env{Cluster: "web", Counter: "jvm"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.(*Source).Close() })
	return s.(*Source)
}

// passwordFile writes the password to a file of the test and returns its path.
func passwordFile(t *testing.T, pw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJolokia(t *testing.T) {
	t.Parallel()
	srv := jolokiaStandIn(t)
	pwFile := passwordFile(t, jolokiaPassword)
	wrongFile := passwordFile(t, "wrong-"+jolokiaPassword)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cfg := func(mbean, attr, path string) Config {
		return Config{Protocol: Jolokia, URL: "http://{{.Address}}/jolokia", MBean: mbean, Attribute: attr, Path: path,
			User: jolokiaUser, PasswordFile: pwFile}
	}
	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	tests := []struct {
		name    string
		cfg     Config
		want    float64
		wantErr string
		is      error
	}{
		{name: "number", cfg: cfg("java.lang:type=Threading", "ThreadCount", ""), want: 17},
		{name: "item of a composite", cfg: cfg("java.lang:type=Memory", "HeapMemoryUsage", "used"), want: 123456},
		{name: "two levels", cfg: cfg("test:type=Values", "Deep", "a.b"), want: 7.5},
		{name: "quoted name with a node var", cfg: cfg(`Catalina:type=ThreadPool,name="http-nio-{{.Port}}"`, "currentThreadsBusy", ""), want: 3},
		{name: "slash and bang escaped", cfg: cfg("test:type=Odd/Name!,path=a/b", "Value", ""), want: 5},
		{name: "numeric string", cfg: cfg("test:type=Values", "Num", ""), want: 42.5},
		{name: "base URL with a trailing slash", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = srv.URL + "/jolokia/" }), want: 17},
		{name: "composite without path", cfg: cfg("java.lang:type=Memory", "HeapMemoryUsage", ""),
			wantErr: "the value is a composite with the items committed, init, max, used, not a number; set path to one of them", is: counter.ErrNotANumber},
		{name: "string", cfg: cfg("test:type=Values", "Text", ""), wantErr: `the value is a string: "abc" is not a number`},
		{name: "NaN string", cfg: cfg("test:type=Values", "NaN", ""), wantErr: `the value is a string: "NaN" is not a finite number`, is: counter.ErrNotANumber},
		{name: "boolean", cfg: cfg("test:type=Values", "Flag", ""), wantErr: "the value is a boolean (true), not a number"},
		{name: "null", cfg: cfg("test:type=Values", "Nothing", ""), wantErr: "the value is null, not a number"},
		{name: "list", cfg: cfg("test:type=Values", "List", ""), wantErr: "the value is a list of 2 items"},
		{name: "unknown MBean", cfg: cfg("java.lang:type=Nope", "ThreadCount", ""),
			wantErr: `jolokia java.lang:type=Nope ThreadCount: no MBean "java.lang:type=Nope" on ` + addr, is: ErrNotFound},
		{name: "unknown attribute", cfg: cfg("java.lang:type=Threading", "Nope", ""),
			wantErr: `MBean "java.lang:type=Threading" has no attribute "Nope"`, is: ErrNotFound},
		{name: "unknown item", cfg: cfg("java.lang:type=Memory", "HeapMemoryUsage", "nope"),
			wantErr: `MBean "java.lang:type=Memory" has no attribute "HeapMemoryUsage" with the item "nope" (javax.management.AttributeNotFoundException : No key nope)`, is: ErrNotFound},
		{name: "other agent error", cfg: cfg("java.lang:type=Threading", "ThreadCount", "x"),
			wantErr: "error 400 from " + addr + ": java.lang.IllegalArgumentException : Cannot navigate into x"},
		{name: "malformed name", cfg: cfg("{{.NodeID}}", "ThreadCount", ""), wantErr: `"n1" is not a valid MBean name`},
		{name: "wrong password", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.PasswordFile = wrongFile }),
			wantErr: "HTTP 401 from " + srv.URL + "/jolokia/read/java.lang:type=Threading/ThreadCount: authentication failed", is: httpget.ErrAuth},
		{name: "no credentials", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.User, c.PasswordFile = "", "" }),
			wantErr: "HTTP 401", is: httpget.ErrAuth},
		{name: "not JSON", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = srv.URL + "/broken" }),
			wantErr: `the answer is not Jolokia's JSON: "<html>proxy error</html>"`},
		{name: "no status", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = srv.URL + "/nostatus" }),
			wantErr: "the answer has no status"},
		{name: "HTTP error with a Jolokia body", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = srv.URL + "/http500" }),
			wantErr: "error 500 from " + addr + ": java.lang.OutOfMemoryError : heap"},
		{name: "HTTP 404", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = srv.URL + "/nowhere" }),
			wantErr: "HTTP 404 from " + srv.URL + "/nowhere/read/"},
	}
	target := counter.Target{Cluster: "web", NodeID: "n1", Address: addr,
		Vars: map[string]string{"Cluster": "web", "NodeID": "n1", "Address": addr, "Port": "8080"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			got, err := newSource(t, &tt.cfg).Read(ctx, target)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Read = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Read = %v, %v; want an error with %q", got, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if strings.Contains(err.Error(), jolokiaPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestJolokiaReadURL(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("http://h:8778/jolokia/")
	tests := []struct {
		mbean, attr string
		path        []string
		want        string
	}{
		{"java.lang:type=Memory", "HeapMemoryUsage", []string{"used"}, "http://h:8778/jolokia/read/java.lang:type=Memory/HeapMemoryUsage/used"},
		{`Catalina:type=ThreadPool,name="http-nio-8080"`, "maxThreads", nil, `http://h:8778/jolokia/read/Catalina:type=ThreadPool%2Cname=%21%22http-nio-8080%21%22/maxThreads`},
		{"a:b=c/d!e", "x y", nil, "http://h:8778/jolokia/read/a:b=c%21%2Fd%21%21e/x%20y"},
	}
	for _, tt := range tests {
		got := JolokiaReadURL(base, tt.mbean, tt.attr, tt.path).String()
		if got != tt.want {
			t.Errorf("JolokiaReadURL(%q, %q, %q) = %s, want %s", tt.mbean, tt.attr, tt.path, got, tt.want)
		}
		u, _ := url.Parse(got)
		parts := jolokiaSplit(strings.TrimPrefix(u.Path, "/jolokia/read/"))
		if parts[0] != tt.mbean || parts[1] != tt.attr {
			t.Errorf("%s splits back into %q", got, parts)
		}
	}
}

func TestJolokiaTimeoutAndRefused(t *testing.T) {
	t.Parallel()
	srv := jolokiaStandIn(t)
	src := newSource(t, &Config{Protocol: Jolokia, URL: srv.URL + "/slow", MBean: "a:b=c", Attribute: "X"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.Read(ctx, counter.Target{Cluster: "web"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after") {
		t.Errorf("Read = %v; want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Read took %s after its deadline", d)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	src = newSource(t, &Config{Protocol: Jolokia, URL: closed.URL + "/jolokia", MBean: "a:b=c", Attribute: "X"})
	_, err = src.Read(t.Context(), counter.Target{Cluster: "web"})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), closed.URL+"/jolokia/read/a:b=c/X") {
		t.Errorf("Read = %v; want connection refused naming the URL", err)
	}
}

// The password from the environment reaches the agent and nowhere else.
func TestJolokiaPasswordFromEnv(t *testing.T) {
	srv := jolokiaStandIn(t)
	t.Setenv("GOSCALER_TEST_JOLOKIA_PW", jolokiaPassword)
	src := newSource(t, &Config{Protocol: Jolokia, URL: srv.URL + "/jolokia", MBean: "java.lang:type=Threading",
		Attribute: "ThreadCount", User: jolokiaUser, PasswordEnv: "GOSCALER_TEST_JOLOKIA_PW"})
	if v, err := src.Read(t.Context(), counter.Target{Cluster: "web"}); err != nil || v != 17 {
		t.Fatalf("Read = %v, %v", v, err)
	}
	_, err := (&Config{Protocol: Jolokia, URL: srv.URL, MBean: "a:b=c", Attribute: "X", User: "u",
		PasswordEnv: "GOSCALER_TEST_JOLOKIA_UNSET"}).New(counter.Env{})
	if err == nil || !strings.Contains(err.Error(), "password_env: environment variable GOSCALER_TEST_JOLOKIA_UNSET is not set") {
		t.Errorf("New with an unset variable = %v", err)
	}
}
