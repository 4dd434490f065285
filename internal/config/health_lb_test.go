package config

import (
	"testing"
	"time"
)

// A load_balancer health check asks a cloud API once per node and interval:
// its defaults are gentler than an HTTP check's.
func TestHealthLoadBalancerDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("lb.yaml", []byte(`clusters:
  - name: web
    max: 2
    provider: {type: process, command: ["sleep", "1000"]}
    load_balancer: {type: builtin, listen: "127.0.0.1:18081"}
    health_check: {type: load_balancer}
  - name: api
    max: 2
    provider: {type: process, command: ["sleep", "1000"]}
    load_balancer: {type: builtin, listen: "127.0.0.1:18082"}
    health_check: {type: load_balancer, interval: 30s, timeout: 3s}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][2]time.Duration{{10 * time.Second, 5 * time.Second}, {30 * time.Second, 3 * time.Second}} {
		h := cfg.Clusters[i].HealthCheck
		if h.Interval.D() != want[0] || h.Timeout.D() != want[1] || h.Path != "" {
			t.Errorf("cluster %s: interval %s, timeout %s, path %q; want %s, %s and no path", cfg.Clusters[i].Name, h.Interval, h.Timeout, h.Path, want[0], want[1])
		}
	}
}
