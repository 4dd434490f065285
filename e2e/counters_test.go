package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/goscaler/goscaler/internal/testsvc"
)

// sample and reading mirror the API's counter readings.
type sample struct {
	Node      string  `json:"node"`
	Value     float64 `json:"value"`
	Err       string  `json:"error"`
	Reporting int     `json:"reporting"`
}

type reading struct {
	Aggregate sample   `json:"aggregate"`
	Nodes     []sample `json:"nodes"`
}

func (s sample) String() string {
	if s.Err != "" {
		return "error: " + s.Err
	}
	return fmt.Sprint(s.Value)
}

// counters returns GET /api/v1/clusters/NAME/counters.
func (a *apiClient) counters(clusterName string) (map[string]reading, []byte) {
	var out map[string]reading
	code, data, err := a.do("GET", "/api/v1/clusters/"+clusterName+"/counters", nil, &out)
	if err != nil || code != http.StatusOK {
		return nil, data
	}
	return out, data
}

// waitCounter waits until the latest aggregate of a counter satisfies ok.
func waitCounter(t *testing.T, a *apiClient, clusterName, counterName string, timeout time.Duration, ok func(sample) bool) sample {
	t.Helper()
	var last sample
	waitFor(t, timeout, 200*time.Millisecond, fmt.Sprintf("counter %s of %s", counterName, clusterName), func() (bool, string) {
		all, data := a.counters(clusterName)
		r, found := all[counterName]
		if !found {
			return false, "no reading yet: " + string(data)
		}
		last = r.Aggregate
		return ok(last), last.String()
	})
	return last
}

func valueIs(want float64) func(sample) bool {
	return func(s sample) bool { return s.Err == "" && s.Value == want }
}

func errorHas(sub string) func(sample) bool {
	return func(s sample) bool { return s.Err != "" && strings.Contains(s.Err, sub) }
}

// noSecret fails the test if secret shows in the server's log or API.
func noSecret(t *testing.T, srv *server, clusterName, secret string) {
	t.Helper()
	log, err := os.ReadFile(srv.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), secret) {
		t.Errorf("the server log shows a password")
	}
	for _, path := range []string{"/api/v1/clusters/" + clusterName, "/api/v1/clusters/" + clusterName + "/counters"} {
		_, data, err := srv.api.do("GET", path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), secret) {
			t.Errorf("GET %s shows a password", path)
		}
	}
}

func writeSecret(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTomcatJMXCounter reads JVM attributes of a real Tomcat 10 through its
// manager's JMX proxy, drives a trigger with one of them, and shows an
// unknown MBean and a wrong password as counter errors, never as zeros.
func TestTomcatJMXCounter(t *testing.T) {
	t.Parallel()
	tc := testsvc.StartTomcat(t)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("jmx")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	pw := writeSecret(t, dir, "tomcat.pw", tc.Password)
	wrong := writeSecret(t, dir, "wrong.pw", "not-"+tc.Password)
	marks := filepath.Join(dir, "marks.txt")
	jmx := func(counterName, mbean, attribute, path, pwFile string) string {
		return fmt.Sprintf(`      - name: %s
        type: jmx
        protocol: jmxproxy
        url: %s
        mbean: %q
        attribute: %s
        path: %q
        user: %s
        password_file: %s
        interval: 500ms
`, counterName, tc.JMXProxyURL(), mbean, attribute, path, tc.User, pwFile)
	}
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{
		Name: name, Min: 0, Max: 1, Desired: 0,
		Counters: jmx("threads", "java.lang:type=Threading", "ThreadCount", "", pw) +
			jmx("heap-used", "java.lang:type=Memory", "HeapMemoryUsage", "used", pw) +
			jmx("missing", "java.lang:type=Nope", "ThreadCount", "", pw) +
			jmx("wrong-password", "java.lang:type=Threading", "ThreadCount", "", wrong),
		Triggers: fmt.Sprintf(`      - name: busy-jvm
        counter: threads
        above: 1
        for: 1s
        cooldown: 1h
        actions:
          - type: local_script
            shell: 'echo "threads={{.Counter_threads}}" >> %s'
`, marks),
	})
	srv := startServer(t, cfg, addr, dataDir, "")

	threads := waitCounter(t, srv.api, name, "threads", 60*time.Second, func(s sample) bool { return s.Err == "" && s.Value >= 5 })
	heap := waitCounter(t, srv.api, name, "heap-used", 30*time.Second, func(s sample) bool { return s.Err == "" && s.Value > 1<<20 })
	t.Logf("Tomcat: %v threads, %v bytes of heap used", threads.Value, heap.Value)
	missing := waitCounter(t, srv.api, name, "missing", 30*time.Second, errorHas(`no MBean "java.lang:type=Nope"`))
	wrongPW := waitCounter(t, srv.api, name, "wrong-password", 30*time.Second, errorHas("HTTP 401"))
	t.Logf("missing MBean: %s; wrong password: %s", missing, wrongPW)

	// The trigger saw the JVM's thread count and ran its script with it.
	waitFor(t, 30*time.Second, 200*time.Millisecond, "the busy-jvm trigger's script", func() (bool, string) {
		b, _ := os.ReadFile(marks)
		return strings.HasPrefix(string(b), "threads="), string(b)
	})
	noSecret(t, srv, name, tc.Password)
}

// TestPrometheusCounters has a real Prometheus (Debian's) scrape the goscaler
// server's own /metrics, reads the cluster's size back through a PromQL
// query and straight from /metrics, follows a resize, and shows a query
// with several series as an error.
func TestPrometheusCounters(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("prom")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	prom := testsvc.StartPrometheus(t, testsvc.PrometheusOptions{Targets: []string{addr}})
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{
		Name: name, Min: 1, Max: 3, Desired: 1,
		Counters: fmt.Sprintf(`      - name: desired
        type: prometheus
        server: %[1]s
        query: 'goscaler_cluster_size{cluster="{{.Cluster}}",bound="desired"}'
        interval: 500ms
      - name: max
        type: prometheus
        url: http://%[2]s/metrics
        metric: goscaler_cluster_size
        labels: {cluster: "{{.Cluster}}", bound: max}
        interval: 500ms
      - name: every-bound
        type: prometheus
        server: %[1]s
        query: 'goscaler_cluster_size{cluster="{{.Cluster}}"}'
        interval: 500ms
      - name: nothing
        type: prometheus
        server: %[1]s
        query: 'goscaler_cluster_size{cluster="no-such-cluster"}'
        interval: 500ms
`, prom.URL, addr),
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	waitInService(t, srv.api, name, 1, 45*time.Second)

	waitCounter(t, srv.api, name, "max", 30*time.Second, valueIs(3))
	waitCounter(t, srv.api, name, "desired", 60*time.Second, valueIs(1))
	several := waitCounter(t, srv.api, name, "every-bound", 30*time.Second, errorHas("the result has 3 series"))
	none := waitCounter(t, srv.api, name, "nothing", 30*time.Second, errorHas("the result has no series"))
	t.Logf("several series: %s; none: %s", several, none)

	// A resize reaches /metrics, Prometheus, and the counter.
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 2}, nil, 200)
	waitCounter(t, srv.api, name, "desired", 30*time.Second, valueIs(2))
}

// TestRabbitMQQueueDepth publishes N messages to a queue of the machine's
// RabbitMQ: the counter reads N over AMQP and the management API, a "messages
// per worker" policy scales the worker cluster out until each has at most 10,
// and unacknowledged messages and consumers are read too.
func TestRabbitMQQueueDepth(t *testing.T) {
	t.Parallel()
	r := testsvc.StartRabbitMQ(t)
	vhost := r.NewVHost(t)
	conn, err := amqp.Dial(r.AMQPURL(vhost))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	if _, err := ch.QueueDeclare("jobs", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := ch.PublishWithContext(t.Context(), "", "jobs", false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}

	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("rabbit")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	pw := writeSecret(t, dir, "rabbit.pw", r.Password)
	queue := func(counterName, url, measure string, perNode bool, queueName string) string {
		return fmt.Sprintf(`      - name: %s
        type: rabbitmq
        url: %s
        vhost: %s
        queue: %s
        measure: %s
        per_node: %t
        user: %s
        password_file: %s
        interval: 500ms
`, counterName, url, vhost, queueName, measure, perNode, r.User, pw)
	}
	amqpURL, apiURL := r.AMQP.String(), r.API.String()
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{
		Name: name, Min: 1, Max: 4, Desired: 1,
		Counters: queue("depth", amqpURL, "messages_ready", false, "jobs") +
			queue("per-worker", amqpURL, "messages_ready", true, "jobs") +
			queue("api-depth", apiURL, "messages", false, "jobs") +
			queue("unacked", apiURL, "messages_unacknowledged", false, "jobs") +
			queue("consumers", amqpURL, "consumers", false, "jobs") +
			queue("missing", amqpURL, "messages_ready", false, "absent"),
		Triggers: `      - name: per-worker-out
        counter: per-worker
        above: 10
        for: 1s
        cooldown: 1s
        actions:
          - type: deploy_node
            count: 1
`,
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	waitCounter(t, srv.api, name, "depth", 30*time.Second, valueIs(n))
	waitCounter(t, srv.api, name, "api-depth", 30*time.Second, valueIs(n))
	missing := waitCounter(t, srv.api, name, "missing", 30*time.Second, errorHas(`queue "absent": no such queue`))
	t.Logf("missing queue: %s", missing)

	// 40 messages: 1 worker reads 40 per worker, 2 read 20, 3 read 13.3, 4
	// read 10 — not above 10: the cluster stops at 4.
	waitInService(t, srv.api, name, 4, 120*time.Second)
	waitCounter(t, srv.api, name, "per-worker", 30*time.Second, valueIs(n/4))
	if c, ok := srv.api.cluster(name); !ok || c.Desired != 4 {
		t.Fatalf("desired = %d, want 4", c.Desired)
	}

	// A consumer takes 5 messages and holds them unacknowledged.
	cch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := cch.Qos(5, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := cch.Consume("jobs", "held", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		select {
		case <-deliveries:
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery")
		}
	}
	waitCounter(t, srv.api, name, "depth", 30*time.Second, valueIs(n-5))
	waitCounter(t, srv.api, name, "per-worker", 30*time.Second, valueIs(float64(n-5)/4))
	waitCounter(t, srv.api, name, "consumers", 30*time.Second, valueIs(1))
	waitCounter(t, srv.api, name, "unacked", 30*time.Second, valueIs(5))
	waitCounter(t, srv.api, name, "api-depth", 30*time.Second, valueIs(n))
}
