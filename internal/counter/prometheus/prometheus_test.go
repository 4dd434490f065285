package prometheus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/testsvc"
)

// metricsNode is an HTTP server exposing a client_golang registry at
// /metrics, as an application node does.
type metricsNode struct {
	srv      *httptest.Server
	inflight promclient.Gauge
	requests *promclient.CounterVec
	latency  promclient.Histogram
	queue    *promclient.GaugeVec
}

func (n *metricsNode) addr() string { return strings.TrimPrefix(n.srv.URL, "http://") }

func (n *metricsNode) target(id string) counter.Target {
	return counter.Target{Cluster: "web", NodeID: id, Address: n.addr(),
		Vars: map[string]string{"Cluster": "web", "NodeID": id, "Address": n.addr()}}
}

// newMetricsNode serves a registry with the Go collector and the test's
// metrics; with user set, /metrics needs basic authentication.
func newMetricsNode(t *testing.T, user, password string) *metricsNode {
	t.Helper()
	reg := promclient.NewRegistry()
	n := &metricsNode{
		inflight: promclient.NewGauge(promclient.GaugeOpts{Name: "app_inflight", Help: "Requests in flight."}),
		requests: promclient.NewCounterVec(promclient.CounterOpts{Name: "app_requests_total", Help: "Requests."}, []string{"code"}),
		latency: promclient.NewHistogram(promclient.HistogramOpts{Name: "app_latency_seconds", Help: "Latency.",
			Buckets: []float64{0.1, 0.5, 1}}),
		queue: promclient.NewGaugeVec(promclient.GaugeOpts{Name: "app_queue_depth", Help: "Queue depth."}, []string{"queue"}),
	}
	reg.MustRegister(n.inflight, n.requests, n.latency, n.queue, collectors.NewGoCollector())
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); user != "" && (!ok || u != user || p != password) {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "<html><body>hello</body></html>") })
	mux.HandleFunc("/slow/", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	n.srv = httptest.NewServer(mux)
	t.Cleanup(n.srv.Close)
	return n
}

func newSource(t *testing.T, cfg *Config) *Source {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := cfg.New(counter.Env{Cluster: "web", Counter: "c"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.(*Source).Close() })
	return s.(*Source)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each node's /metrics page is read; the labels pick one series.
func TestMetricsPages(t *testing.T) {
	t.Parallel()
	const pw = "metrics-Pa55word"
	a, b := newMetricsNode(t, "", ""), newMetricsNode(t, "scraper", pw)
	a.inflight.Set(3)
	b.inflight.Set(5)
	for i := range 10 {
		a.requests.WithLabelValues("200").Inc()
		a.latency.Observe(float64(i) / 10)
	}
	a.requests.WithLabelValues("500").Add(2)
	a.queue.WithLabelValues("jobs").Set(7)
	a.queue.WithLabelValues("mail").Set(1)
	pwFile, wrongFile := writeFile(t, pw), writeFile(t, "nope")

	cfg := func(metric string, labels map[string]string) Config {
		return Config{URL: "http://{{.Address}}/metrics", Metric: metric, Labels: labels}
	}
	tests := []struct {
		name    string
		cfg     Config
		node    *metricsNode
		want    float64
		wantErr string
		is      error
	}{
		{name: "gauge of node a", cfg: cfg("app_inflight", nil), node: a, want: 3},
		{name: "gauge of node b, with a password", cfg: Config{URL: "http://{{.Address}}/metrics", Metric: "app_inflight", User: "scraper", PasswordFile: pwFile}, node: b, want: 5},
		{name: "counter by label", cfg: cfg("app_requests_total", map[string]string{"code": "500"}), node: a, want: 2},
		{name: "label from a template", cfg: cfg("app_queue_depth", map[string]string{"queue": "{{.Queue}}"}), node: a, want: 7},
		{name: "histogram count", cfg: cfg("app_latency_seconds_count", nil), node: a, want: 10},
		{name: "histogram bucket", cfg: cfg("app_latency_seconds_bucket", map[string]string{"le": "0.5"}), node: a, want: 6},
		{name: "the Go collector's goroutines", cfg: cfg("go_goroutines", nil), node: a},
		{name: "several series", cfg: cfg("app_queue_depth", nil), node: a, wantErr: `2 series of "app_queue_depth" have the labels {}`, is: ErrManySeries},
		{name: "series not there yet", cfg: Config{URL: "http://{{.Address}}/metrics", Metric: "app_requests_total", User: "scraper", PasswordFile: pwFile}, node: b,
			wantErr: `the page has no metric "app_requests_total"`, is: ErrNoSeries},
		{name: "unknown label value", cfg: cfg("app_queue_depth", map[string]string{"queue": "nope"}), node: a,
			wantErr: `app_queue_depth{queue="nope"} from http://`, is: ErrNoSeries},
		{name: "wrong password", cfg: Config{URL: "http://{{.Address}}/metrics", Metric: "app_inflight", User: "scraper", PasswordFile: wrongFile}, node: b,
			wantErr: "HTTP 401 from", is: httpget.ErrAuth},
		{name: "no password", cfg: cfg("app_inflight", nil), node: b, wantErr: "authentication failed", is: httpget.ErrAuth},
		{name: "not a metrics page", cfg: Config{URL: "http://{{.Address}}/html", Metric: "app_inflight"}, node: a,
			wantErr: "the page is not in Prometheus's text format"},
		{name: "404", cfg: Config{URL: "http://{{.Address}}/nope", Metric: "app_inflight"}, node: a, wantErr: "HTTP 404 from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := tt.node.target("n1")
			target.Vars["Queue"] = "jobs"
			got, err := newSource(t, &tt.cfg).Read(t.Context(), target)
			if tt.wantErr == "" {
				if err != nil || (tt.want != 0 && got != tt.want) || (tt.want == 0 && got < 1) {
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
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	// A timed-out or refused reading is an error, not a zero.
	slow := newSource(t, &Config{URL: a.srv.URL + "/slow", Metric: "app_inflight"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := slow.Read(ctx, a.target("n1")); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after") {
		t.Errorf("slow page: %v; want a timeout", err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	refused := newSource(t, &Config{URL: gone.URL + "/metrics", Metric: "app_inflight"})
	if _, err := refused.Read(t.Context(), counter.Target{Cluster: "web"}); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v; want connection refused", err)
	}
}

// TestPrometheusCounters runs PromQL queries against a real Prometheus
// (Debian's) scraping a node's /metrics every second: one series is a
// number; no series, several, NaN, a string, a range vector, a bad query, a
// wrong password or a refused connection is an error with its reason.
func TestPrometheusCounters(t *testing.T) {
	t.Parallel()
	node := newMetricsNode(t, "", "")
	node.queue.WithLabelValues("jobs").Set(7)
	node.queue.WithLabelValues("mail").Set(9)
	node.inflight.Set(4)
	const user, pw = "goscaler", "prom-Pa55word"
	prom := testsvc.StartPrometheus(t, testsvc.PrometheusOptions{Targets: []string{node.addr()}, User: user, Password: pw})
	pwFile, wrongFile := writeFile(t, pw+"\n"), writeFile(t, "wrong")

	query := func(q string) Config {
		return Config{Server: prom.URL, Query: q, User: user, PasswordFile: pwFile}
	}
	// Wait for the first scrapes.
	src := newSource(t, ptr(query(`app_queue_depth{queue="jobs"}`)))
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, err := src.Read(t.Context(), counter.Target{Cluster: "web"})
		if err == nil && v == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus never returned the scraped value 7: last %v, %v", v, err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	tests := []struct {
		name    string
		cfg     Config
		want    float64
		wantErr string
		is      error
	}{
		{name: "one series", cfg: query(`app_queue_depth{queue="mail"}`), want: 9},
		{name: "aggregated", cfg: query(`sum(app_queue_depth)`), want: 16},
		{name: "scalar", cfg: query(`scalar(app_inflight) * 2`), want: 8},
		{name: "node var in the query", cfg: query(`app_inflight{instance="{{.Address}}"}`), want: 4},
		{name: "target up", cfg: query(`up{job="goscaler-test"}`), want: 1},
		{name: "no series", cfg: query(`app_queue_depth{queue="nope"}`), wantErr: "the result has no series", is: ErrNoSeries},
		{name: "several series", cfg: query(`app_queue_depth`),
			wantErr: `the result has 2 series: app_queue_depth{instance="` + node.addr() + `", job="goscaler-test", queue="jobs"}`, is: ErrManySeries},
		{name: "NaN", cfg: query(`app_inflight / 0 - app_inflight / 0`), wantErr: "the result is NaN, not a finite number", is: counter.ErrNotANumber},
		{name: "infinity", cfg: query(`app_inflight / 0`), wantErr: "the result is +Inf, not a finite number", is: counter.ErrNotANumber},
		{name: "string", cfg: query(`"abc"`), wantErr: `the result is the string "abc"`, is: counter.ErrNotANumber},
		{name: "range vector", cfg: query(`app_inflight[1m]`), wantErr: "the result is a range vector (1 series), not a number"},
		{name: "bad query", cfg: query(`sum(app_inflight`), wantErr: `query "sum(app_inflight" on ` + prom.URL + `: bad_data: `},
		{name: "wrong password", cfg: Config{Server: prom.URL, Query: "1", User: user, PasswordFile: wrongFile},
			wantErr: "HTTP 401 from " + prom.URL + "/api/v1/query?query=1", is: httpget.ErrAuth},
		{name: "no password", cfg: Config{Server: prom.URL, Query: "1"}, wantErr: "authentication failed", is: httpget.ErrAuth},
		{name: "not Prometheus", cfg: Config{Server: node.srv.URL + "/html", Query: "1"}, wantErr: "HTTP 404 from " + node.srv.URL + "/html/api/v1/query"},
	}
	target := counter.Target{Cluster: "web", NodeID: "n1", Address: node.addr(), Vars: map[string]string{"Address": node.addr()}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
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
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}

	// A server that does not answer in time, and one that is gone.
	slow := newSource(t, &Config{Server: node.srv.URL + "/slow", Query: "1"})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := slow.Read(ctx, target); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow server: %v; want a timeout", err)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if _, err := newSource(t, &Config{Server: gone.URL, Query: "1"}).Read(t.Context(), target); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("closed port: %v; want connection refused", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "query", yaml: "server: http://127.0.0.1:9090\nquery: sum(rate(x{job=\"{{.Cluster}}\"}[1m]))\n"},
		{name: "metric", yaml: "url: http://{{.Address}}/metrics\nmetric: app_inflight\nlabels: {code: \"200\", le: \"{{.Port}}\"}\nuser: u\npassword_env: PW\n"},
		{name: "nothing", yaml: "{}\n", want: []string{"query: set query (a PromQL expression, with server:) or metric"}},
		{name: "both", yaml: "query: up\nmetric: up\n", want: []string{"query: set either query (with server) or metric (with url), not both"}},
		{name: "query without server, with url and labels", yaml: "query: up\nurl: http://h/metrics\nlabels: {a: b}\n", want: []string{
			"url: not used with query", "labels: not used with query", "server: required with query"}},
		{name: "bad query template", yaml: "server: http://h:9090\nquery: '{{.X'\n", want: []string{`query: template "{{.X"`}},
		{name: "metric without url, with server", yaml: "metric: 'UTF-8 names are fine'\nserver: http://h:9090\nlabels: {'': x, __name__: y, ok: '{{'}\n", want: []string{
			"server: not used with metric", "url: required with metric",
			`labels: "" is not a label name`, `labels: "__name__" is not a label name`, `labels.ok: template "{{"`}},
		{name: "password in the server URL", yaml: "server: http://u:s3cret@h:9090\nquery: up\n", want: []string{
			`server: "http://u:xxxxx@h:9090" holds credentials`}},
		{name: "password without user", yaml: "server: http://h:9090\nquery: up\npassword_file: /x\n", want: []string{"user: required with a password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &node); err != nil {
				t.Fatal(err)
			}
			_, err := counter.Registry.Decode("prometheus", &node)
			got := plugin.Flatten(err)
			if len(got) != len(tt.want) {
				t.Fatalf("Decode = %q; want %d problems %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Error(), w) {
					t.Errorf("problem %d = %q; want %q", i+1, got[i], w)
				}
				if strings.Contains(got[i].Error(), "s3cret") {
					t.Errorf("problem %d shows the password: %v", i+1, got[i])
				}
			}
		})
	}
}

func TestDefaultScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want counter.Scope
	}{
		{Config{URL: "http://{{.Address}}/metrics", Metric: "x"}, counter.ScopeNode},
		{Config{URL: "http://exporter:9100/metrics", Metric: "x", Labels: map[string]string{"instance": "{{.Host}}:9100"}}, counter.ScopeNode},
		{Config{URL: "http://exporter:9100/metrics", Metric: "x"}, counter.ScopeCluster},
		{Config{Server: "http://p:9090", Query: "sum(up)"}, counter.ScopeCluster},
		{Config{Server: "http://p:9090", Query: `up{instance="{{.Address}}"}`}, counter.ScopeNode},
	}
	for _, tt := range tests {
		if got := tt.cfg.DefaultScope(); got != tt.want {
			t.Errorf("DefaultScope(%+v) = %s, want %s", tt.cfg, got, tt.want)
		}
	}
}
