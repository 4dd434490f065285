package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Prometheus is a Prometheus server started for a test.
type Prometheus struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	// Dir holds its config, data and log.
	Dir string
}

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Targets are scraped (host:port, path /metrics) every second.
	Targets []string
	// User and Password, if set, protect the web API with basic
	// authentication (--web.config.file, with a bcrypt hash).
	User, Password string
}

// StartPrometheus starts Debian's /usr/bin/prometheus with its own config
// scraping the targets every second, its TSDB in a temporary directory and
// its web API on a free loopback port, and waits until it is ready. It is
// stopped in t.Cleanup. Skipped under -short.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Prometheus: not in -short")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		Unavailable(t, "Prometheus", "no prometheus in PATH: apt-get install prometheus")
	}
	p := &Prometheus{Dir: t.TempDir()}
	quoted := make([]string, len(opts.Targets))
	for i, tg := range opts.Targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: goscaler-test
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(p.Dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config.file=" + cfgPath, "--storage.tsdb.path=" + filepath.Join(p.Dir, "data"),
		"--storage.tsdb.retention.time=1h"}
	if opts.User != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		web := filepath.Join(p.Dir, "web.yml")
		if err := os.WriteFile(web, []byte(fmt.Sprintf("basic_auth_users:\n  %q: %q\n", opts.User, hash)), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--web.config.file="+web)
	}
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		p.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		logPath := filepath.Join(p.Dir, fmt.Sprintf("prometheus-%d.log", attempt))
		argv := append([]string{bin, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)}, args...)
		proc := startProcess(t, "prometheus", logPath, 10*time.Second, nil, argv...)
		bindFailed := func() bool {
			b, _ := os.ReadFile(logPath)
			return strings.Contains(string(b), "address already in use")
		}
		if attempt < 3 {
			deadline := time.Now().Add(60 * time.Second)
			for proc.running() && httpStatus(p.URL+"/-/ready", opts.User, opts.Password, 200) != nil && time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
			}
			if !proc.running() && bindFailed() {
				continue
			}
		}
		proc.waitReady(t, 60*time.Second, func() error { return httpStatus(p.URL+"/-/ready", opts.User, opts.Password, 200) })
		return p
	}
}
