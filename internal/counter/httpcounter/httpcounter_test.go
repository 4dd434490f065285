package httpcounter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
)

const jsonBody = `{
  "inflight": 7,
  "stats": {"queue": {"depth": 12.5}},
  "items": [{"value": 1}, {"value": " 2.5 "}],
  "flag": true,
  "name": "abc",
  "nothing": null,
  "obj": {},
  "huge": 1e999
}`

// newServer serves the bodies of the tests and counts new connections.
func newServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	mux := http.NewServeMux()
	text := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, s) }
	}
	mux.HandleFunc("/plain", text("42\n"))
	mux.HandleFunc("/float", text(" 3.25 "))
	mux.HandleFunc("/json", text(jsonBody))
	mux.HandleFunc("/text", text("abc"))
	mux.HandleFunc("/empty", text(""))
	mux.HandleFunc("/nan", text("NaN"))
	mux.HandleFunc("/two-values", text(`{"a": 1} {"a": 2}`))
	mux.HandleFunc("/500", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database down\n  since noon", http.StatusInternalServerError)
	})
	mux.HandleFunc("/503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(strings.Repeat("1", MaxBody+10)))
	})
	mux.HandleFunc("/header", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Header.Get("X-Count")) })
	mux.HandleFunc("/method", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			fmt.Fprint(w, 1)
			return
		}
		fmt.Fprint(w, 2)
	})
	mux.HandleFunc("/node/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"id": %q}`, r.PathValue("id"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	srv := httptest.NewUnstartedServer(mux)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func newSource(t *testing.T, cfg *Config) *Source {
	t.Helper()
	s, err := cfg.New(counter.Env{Cluster: "web", Counter: "c"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s.(*Source)
}

func target(srv *httptest.Server) counter.Target {
	return counter.Target{
		Cluster: "web",
		NodeID:  "n7",
		Address: srv.Listener.Addr().String(),
		Vars:    map[string]string{"Cluster": "web", "NodeID": "n7", "Address": srv.Listener.Addr().String(), "Port": "8080"},
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	tests := []struct {
		name    string
		cfg     Config
		want    float64
		wantErr string // substring; empty: no error
	}{
		{name: "plain number", cfg: Config{URL: "http://{{.Address}}/plain"}, want: 42},
		{name: "float with spaces", cfg: Config{URL: "http://{{.Address}}/float"}, want: 3.25},
		{name: "top-level key", cfg: Config{URL: "http://{{.Address}}/json", Path: "inflight"}, want: 7},
		{name: "nested key", cfg: Config{URL: "http://{{.Address}}/json", Path: "stats.queue.depth"}, want: 12.5},
		{name: "array index", cfg: Config{URL: "http://{{.Address}}/json", Path: "items.0.value"}, want: 1},
		{name: "numeric string", cfg: Config{URL: "http://{{.Address}}/json", Path: "items.1.value"}, want: 2.5},
		{name: "node var in the URL", cfg: Config{URL: "http://{{.Address}}/node/{{.NodeID | len}}", Path: "id"}, want: 2},
		{name: "header template", cfg: Config{URL: "http://{{.Address}}/header", Headers: map[string]string{"X-Count": "{{.Port}}"}}, want: 8080},
		{name: "GET", cfg: Config{URL: "http://{{.Address}}/method"}, want: 2},
		{name: "POST", cfg: Config{URL: "http://{{.Address}}/method", Method: "post"}, want: 1},
		{name: "missing key", cfg: Config{URL: "http://{{.Address}}/json", Path: "stats.nope.depth"},
			wantErr: `path "stats.nope.depth" not found: "stats" has no key "nope"`},
		{name: "missing top-level key", cfg: Config{URL: "http://{{.Address}}/json", Path: "x.y"},
			wantErr: `path "x.y" not found: the body has no key "x"`},
		{name: "index out of range", cfg: Config{URL: "http://{{.Address}}/json", Path: "items.5.value"},
			wantErr: `path "items.5.value" not found: "items" is an array of 2 items, no index 5`},
		{name: "key into an array", cfg: Config{URL: "http://{{.Address}}/json", Path: "items.first"},
			wantErr: `path "items.first" not found: "items" is an array and "first" is not an index`},
		{name: "key into a number", cfg: Config{URL: "http://{{.Address}}/json", Path: "inflight.x"},
			wantErr: `path "inflight.x" not found: "inflight" is a number, not an object or an array`},
		{name: "boolean", cfg: Config{URL: "http://{{.Address}}/json", Path: "flag"}, wantErr: `path "flag" is a boolean (true), not a number`},
		{name: "string", cfg: Config{URL: "http://{{.Address}}/json", Path: "name"}, wantErr: `path "name" is the string "abc", not a number`},
		{name: "null", cfg: Config{URL: "http://{{.Address}}/json", Path: "nothing"}, wantErr: `path "nothing" is null, not a number`},
		{name: "object", cfg: Config{URL: "http://{{.Address}}/json", Path: "obj"}, wantErr: `path "obj" is an object, not a number`},
		{name: "array", cfg: Config{URL: "http://{{.Address}}/json", Path: "items"}, wantErr: `path "items" is an array, not a number`},
		{name: "number out of range", cfg: Config{URL: "http://{{.Address}}/json", Path: "huge"}, wantErr: `path "huge": 1e999 is out of range`},
		{name: "not JSON", cfg: Config{URL: "http://{{.Address}}/text", Path: "a"}, wantErr: `body is not valid JSON (needed for path "a")`},
		{name: "two JSON values", cfg: Config{URL: "http://{{.Address}}/two-values", Path: "a"}, wantErr: "data after the first value"},
		{name: "not a number", cfg: Config{URL: "http://{{.Address}}/text"}, wantErr: `body "abc" is not a number`},
		{name: "NaN", cfg: Config{URL: "http://{{.Address}}/nan"}, wantErr: `body "NaN" is not a finite number`},
		{name: "empty body", cfg: Config{URL: "http://{{.Address}}/empty"}, wantErr: "empty body"},
		{name: "whole JSON body", cfg: Config{URL: "http://{{.Address}}/json"}, wantErr: "is not a number"},
		{name: "HTTP 500", cfg: Config{URL: "http://{{.Address}}/500"}, wantErr: "HTTP 500 from " + srv.URL + "/500: database down since noon"},
		{name: "HTTP 503 without body", cfg: Config{URL: "http://{{.Address}}/503"}, wantErr: "HTTP 503 from " + srv.URL + "/503: Service Unavailable"},
		{name: "HTTP 404", cfg: Config{URL: "http://{{.Address}}/nowhere"}, wantErr: "HTTP 404 from "},
		{name: "body too large", cfg: Config{URL: "http://{{.Address}}/big"}, wantErr: "response body larger than 1 MiB"},
		{name: "credentials are not shown", cfg: Config{URL: "http://user:secret@{{.Address}}/500"}, wantErr: "http://user:xxxxx@"},
		{name: "undefined var", cfg: Config{URL: "http://{{.Address}}/{{.Nope}}"}, wantErr: `url: rendering "http://{{.Address}}/{{.Nope}}"`},
		{name: "rendered URL not http", cfg: Config{URL: "{{.NodeID}}/plain"}, wantErr: `url: "n7/plain" is not an http or https URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			got, err := newSource(t, &tt.cfg).Read(ctx, target(srv))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Read = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestReadErrorsNameTheURL(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	tests := []struct {
		name string
		url  string
		path string
	}{
		{"not a number", srv.URL + "/text", ""},
		{"missing path", srv.URL + "/json", "x"},
		{"bad status", srv.URL + "/500", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := newSource(t, &Config{URL: tt.url, Path: tt.path}).Read(t.Context(), target(srv))
			if err == nil || !strings.Contains(err.Error(), tt.url) {
				t.Errorf("Read: %v; want an error naming %s", err, tt.url)
			}
		})
	}
}

func TestReadConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/stats"
	srv.Close()
	_, err := newSource(t, &Config{URL: url}).Read(t.Context(), counter.Target{Cluster: "web"})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "GET "+url+":") {
		t.Errorf("Read: %v; want connection refused, naming %s", err, url)
	}
}

func TestReadContext(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t)
	tests := []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want error
		text string
	}{
		{
			name: "timeout",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 200*time.Millisecond)
			},
			want: context.DeadlineExceeded,
			text: "GET " + srv.URL + "/slow: timed out after ",
		},
		{
			name: "cancel",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: context.Canceled,
			text: "GET " + srv.URL + "/slow: context canceled",
		},
		{
			name: "canceled before",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				cancel()
				return ctx, cancel
			},
			want: context.Canceled,
			text: "context canceled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			start := time.Now()
			_, err := newSource(t, &Config{URL: srv.URL + "/slow"}).Read(ctx, target(srv))
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Read returned after %s", d)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Read: %v; want %v with %q", err, tt.want, tt.text)
			}
		})
	}
}

// All readings share one client and reuse its connections.
func TestReadReusesConnections(t *testing.T) {
	t.Parallel()
	srv, conns := newServer(t)
	src := newSource(t, &Config{URL: "http://{{.Address}}/json", Path: "inflight"})
	for range 10 {
		if v, err := src.Read(t.Context(), target(srv)); err != nil || v != 7 {
			t.Fatalf("Read = %v, %v", v, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 10 sequential readings, want 1", n)
	}

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if v, err := src.Read(t.Context(), target(srv)); err != nil || v != 7 {
				t.Errorf("concurrent Read = %v, %v", v, err)
			}
		})
	}
	wg.Wait()
}

func TestDefaultScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want counter.Scope
	}{
		{"http://{{.Address}}/stats", counter.ScopeNode},
		{"http://{{.Host}}:9100/metrics", counter.ScopeNode},
		{"http://10.0.0.1:{{.Port}}/", counter.ScopeNode},
		{`http://{{index . "Address"}}/`, counter.ScopeNode},
		{"http://{{if .Region}}{{.Host}}{{end}}/", counter.ScopeNode},
		{"http://{{.Address | printf \"%s\"}}/", counter.ScopeNode},
		{"http://lb.example.com/{{.Cluster}}/queue", counter.ScopeCluster},
		{"http://{{.QueueHost}}/depth", counter.ScopeCluster},
		{"http://example.com/.Address", counter.ScopeCluster},
		{"http://{{.Address", counter.ScopeCluster}, // invalid: Validate reports it
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			if got := (&Config{URL: tt.url}).DefaultScope(); got != tt.want {
				t.Errorf("DefaultScope(%q) = %s, want %s", tt.url, got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"template URL", Config{URL: "http://{{.Address}}/stats", Path: "a.0.b", Method: "POST", Headers: map[string]string{"Authorization": "Bearer {{.Token}}"}}, nil},
		{"fixed URL", Config{URL: "https://example.com/depth", Method: "get"}, nil},
		{"no URL", Config{}, []string{"url: required"}},
		{"bad template", Config{URL: "http://{{.Address"}, []string{"url: template"}},
		{"fixed URL without scheme", Config{URL: "example.com/x"}, []string{`url: "example.com/x" is not an http or https URL`}},
		{"fixed URL without host", Config{URL: "http:///x"}, []string{"has no host"}},
		{"method", Config{URL: "http://x/", Method: "DELETE"}, []string{`method: "DELETE" is not supported`}},
		{"empty path segment", Config{URL: "http://x/", Path: "a..b"}, []string{`path: "a..b" has an empty segment`}},
		{"trailing dot", Config{URL: "http://x/", Path: "a."}, []string{"path:"}},
		{"bad header name", Config{URL: "http://x/", Headers: map[string]string{"X Bad": "1"}}, []string{`headers: "X Bad"`}},
		{"bad header template", Config{URL: "http://x/", Headers: map[string]string{"X-A": "{{"}}, []string{"headers.X-A"}},
		{"several", Config{Method: "PUT", Path: "."}, []string{"url:", "method:", "path:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v; want it to mention %q", err, w)
				}
			}
			if _, err := tt.cfg.New(counter.Env{}); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	var node yaml.Node
	src := "url: http://{{.Address}}/stats\npath: stats.inflight\nmethod: POST\nheaders: {X-A: b}\n"
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := counter.Registry.Decode("http", &node)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if cfg.DefaultScope() != counter.ScopeNode {
		t.Errorf("DefaultScope = %s", cfg.DefaultScope())
	}
	if c := cfg.(*Config); c.URL != "http://{{.Address}}/stats" || c.Path != "stats.inflight" || c.Method != "POST" || c.Headers["X-A"] != "b" {
		t.Errorf("decoded %+v", c)
	}
	if err := yaml.Unmarshal([]byte("url: http://x/\njson_path: a\n"), &node); err != nil {
		t.Fatal(err)
	}
	if _, err := counter.Registry.Decode("http", &node); err == nil || !strings.Contains(err.Error(), `unknown key "json_path"`) {
		t.Errorf("Decode with an unknown key: %v", err)
	}
}
