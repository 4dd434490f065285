package prometheus

import (
	"errors"
	"strings"
	"testing"

	"github.com/goscaler/goscaler/internal/counter"
)

const page = `# HELP app_inflight Requests in flight.
# TYPE app_inflight gauge
app_inflight 3
# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total{code="200",method="GET"} 120
app_requests_total{code="500",method="GET"} 4
app_requests_total{code="200",method="POST"} 30
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} 50
app_latency_seconds_bucket{le="0.5"} 90
app_latency_seconds_bucket{le="+Inf"} 100
app_latency_seconds_sum 17.5
app_latency_seconds_count 100
# TYPE app_rpc_seconds summary
app_rpc_seconds{quantile="0.5"} 0.02
app_rpc_seconds{quantile="0.99"} 0.4
app_rpc_seconds_sum 12
app_rpc_seconds_count 300
# TYPE app_ratio gauge
app_ratio NaN
app_untyped{a="x"} 1.5e3
app_utf8{"le ciel"="bleu"} 8
`

func TestPageValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		metric  string
		labels  map[string]string
		want    float64
		wantErr string
		is      error
	}{
		{name: "gauge", metric: "app_inflight", want: 3},
		{name: "counter with labels", metric: "app_requests_total", labels: map[string]string{"code": "500"}, want: 4},
		{name: "two labels", metric: "app_requests_total", labels: map[string]string{"code": "200", "method": "POST"}, want: 30},
		{name: "untyped", metric: "app_untyped", want: 1500},
		{name: "UTF-8 label name", metric: "app_utf8", labels: map[string]string{"le ciel": "bleu"}, want: 8},
		{name: "histogram count", metric: "app_latency_seconds_count", want: 100},
		{name: "histogram sum", metric: "app_latency_seconds_sum", want: 17.5},
		{name: "histogram bucket", metric: "app_latency_seconds_bucket", labels: map[string]string{"le": "0.5"}, want: 90},
		{name: "histogram +Inf bucket", metric: "app_latency_seconds_bucket", labels: map[string]string{"le": "+Inf"}, want: 100},
		{name: "summary quantile", metric: "app_rpc_seconds", labels: map[string]string{"quantile": "0.99"}, want: 0.4},
		{name: "summary count", metric: "app_rpc_seconds_count", want: 300},
		{name: "absent label", metric: "app_inflight", labels: map[string]string{"code": ""}, want: 3},
		{name: "several series", metric: "app_requests_total", labels: map[string]string{"code": "200"},
			wantErr: `2 series of "app_requests_total" have the labels {code="200"}: {code="200",method="GET"}, {code="200",method="POST"}; add labels to pick one`, is: ErrManySeries},
		{name: "no labels, several series", metric: "app_requests_total", wantErr: `3 series of "app_requests_total" have the labels {}`, is: ErrManySeries},
		{name: "no matching series", metric: "app_requests_total", labels: map[string]string{"code": "404"},
			wantErr: `no series of "app_requests_total" has the labels {code="404"}; it has 3, such as {code="200",method="GET"}`, is: ErrNoSeries},
		{name: "missing metric", metric: "app_nope", wantErr: `the page has no metric "app_nope"`, is: ErrNoSeries},
		{name: "NaN", metric: "app_ratio", wantErr: "the value is NaN, not a finite number", is: counter.ErrNotANumber},
		{name: "whole histogram", metric: "app_latency_seconds", wantErr: `"app_latency_seconds" is a histogram: read app_latency_seconds_count, app_latency_seconds_sum or app_latency_seconds_bucket with an le label`},
		{name: "bucket without le", metric: "app_latency_seconds_bucket", wantErr: "app_latency_seconds_bucket needs an le label"},
		{name: "unknown bucket", metric: "app_latency_seconds_bucket", labels: map[string]string{"le": "0.3"},
			wantErr: "the histogram has no bucket le=0.3 (it has 0.1, 0.5, +Inf)", is: ErrNoSeries},
		{name: "summary without quantile", metric: "app_rpc_seconds", wantErr: `"app_rpc_seconds" is a summary: add a quantile label`},
		{name: "unknown quantile", metric: "app_rpc_seconds", labels: map[string]string{"quantile": "0.9"},
			wantErr: "the summary has no quantile 0.9 (it has 0.5, 0.99)", is: ErrNoSeries},
		{name: "summary has no buckets", metric: "app_rpc_seconds_bucket", labels: map[string]string{"le": "1"}, wantErr: `"app_rpc_seconds" is a summary, it has no buckets`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := PageValue([]byte(page), tt.metric, tt.labels)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("PageValue = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("PageValue = %v, %v; want an error with %q", got, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
	for _, bad := range []string{"<html>hello</html>\n", "app_x{a=\"1\" 3\n", "# TYPE a gauge\n# TYPE a counter\na 1\n"} {
		if _, err := PageValue([]byte(bad), "app_x", nil); err == nil || !strings.Contains(err.Error(), "the page is not in Prometheus's text format") {
			t.Errorf("PageValue(%q) = %v; want a format error", bad, err)
		}
	}
}
