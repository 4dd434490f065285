package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

// receiver is a stand-in server that records heartbeats; the first fail
// answers are errors.
type receiver struct {
	mu    sync.Mutex
	got   []Heartbeat
	auth  []string
	fail  int
	calls int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.calls++
	if r.Method != http.MethodPost || r.URL.Path != HeartbeatPath {
		http.Error(w, "wrong route", http.StatusNotFound)
		return
	}
	if rc.calls <= rc.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error": {"code": "internal", "message": "database is down"}}`))
		return
	}
	var hb Heartbeat
	if err := json.NewDecoder(r.Body).Decode(&hb); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.got = append(rc.got, hb)
	rc.auth = append(rc.auth, r.Header.Get("Authorization"))
	_, _ = w.Write([]byte(`{}`))
}

func (rc *receiver) heartbeats() []Heartbeat {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Heartbeat(nil), rc.got...)
}

func TestRunReports(t *testing.T) {
	t.Parallel()
	rc := &receiver{fail: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	var outcomes []error
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Server: srv.URL + "/", Token: "tok", Node: "web-1", Cluster: "web", Interval: 50 * time.Millisecond,
			Counters: []Counter{{Name: "load", Shell: "echo 0.25"}, {Name: "text", Shell: "echo hello"}, {Name: "env", Shell: `echo "$GOSCALER_NODE" | tr -dc 0-9`}},
			OnReport: func(_ Heartbeat, err error) {
				mu.Lock()
				outcomes = append(outcomes, err)
				mu.Unlock()
			}})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.heartbeats()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d heartbeats received", len(rc.heartbeats()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	hb := rc.heartbeats()[0]
	if hb.Node != "web-1" || hb.Cluster != "web" || hb.Counters["load"].Value != 0.25 || hb.Counters["env"].Value != 1 {
		t.Errorf("heartbeat %+v", hb)
	}
	if e := hb.Counters["text"].Err; !strings.Contains(e, `"hello"`) || !strings.Contains(e, "not a number") {
		t.Errorf("a command that prints no number: %q, want an error", e)
	}
	if rc.auth[0] != "Bearer tok" {
		t.Errorf("Authorization %q", rc.auth[0])
	}
	// The server's errors were retried, and said why.
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) < 3 || outcomes[0] == nil || !strings.Contains(outcomes[0].Error(), "HTTP 503: database is down") || outcomes[2] != nil {
		t.Errorf("outcomes %v: want two failures, then success", outcomes)
	}
}

func TestRunRetriesAnUnreachableServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	ctx, cancel := context.WithCancel(t.Context())
	failures := make(chan error, 10)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Server: url, Node: "web-1", Interval: 20 * time.Millisecond,
			OnReport: func(_ Heartbeat, err error) {
				select {
				case failures <- err:
				default:
				}
			}})
	}()
	for range 3 {
		select {
		case err := <-failures:
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("report to nowhere: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the agent stopped trying")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestRunOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Server: "http://x", Interval: time.Second}, "no node ID"},
		{Options{Node: "n", Interval: time.Second}, "no server URL"},
		{Options{Node: "n", Server: "http://x"}, "interval 0s must be positive"},
		{Options{Node: "n", Server: "http://x", Interval: time.Second, Counters: []Counter{{"a", "true"}, {"a", "true"}}}, `counter "a" is given twice`},
		{Options{Node: "n", Server: "http://x", Interval: time.Second, Counters: []Counter{{"a", "{{.Nope"}}}, `counter "a"`},
	} {
		if err := Run(t.Context(), tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestParseCounter(t *testing.T) {
	t.Parallel()
	c, err := ParseCounter(" load = cut -d' ' -f1 /proc/loadavg ")
	if err != nil || c.Name != "load" || c.Shell != "cut -d' ' -f1 /proc/loadavg" {
		t.Fatalf("ParseCounter = %+v, %v", c, err)
	}
	if c, err := ParseCounter("x=a=b"); err != nil || c.Shell != "a=b" {
		t.Errorf("a command with = : %+v, %v", c, err)
	}
	for _, bad := range []string{"load", "=echo 1", "load=", "bad name=echo 1", strings.Repeat("n", 101) + "=true"} {
		if _, err := ParseCounter(bad); err == nil {
			t.Errorf("ParseCounter(%q) accepted", bad)
		}
	}
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func stored(t *testing.T, st store.Store) map[string]store.AgentReport {
	t.Helper()
	rs, err := st.AgentReportList(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.AgentReport{}
	for _, r := range rs {
		out[r.Node] = r
	}
	return out
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestHub(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	clk := &clock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	h := NewHub(st, clk.Now, false, nil)
	if _, _, reported, _ := h.AgentValue("web-1", "load"); reported {
		t.Fatal("a node that never reported has values")
	}
	r := h.Receive(store.AgentReport{Node: "web-1", Cluster: "web", Counters: map[string]store.AgentReading{"load": {Value: 2}, "disk": {Err: "x"}}})
	if !r.ReceivedAt.Equal(clk.Now()) {
		t.Fatalf("ReceivedAt %s", r.ReceivedAt)
	}
	clk.add(3 * time.Second)
	v, ok, reported, _ := h.AgentValue("web-1", "load")
	if !ok || !reported || v.Value != 2 || v.Age != 3*time.Second {
		t.Fatalf("AgentValue = %+v %v %v", v, ok, reported)
	}
	if _, ok, reported, known := h.AgentValue("web-1", "cpu"); ok || !reported || strings.Join(known, ",") != "disk,load" {
		t.Fatalf("a counter the agent does not push: ok %v reported %v known %v", ok, reported, known)
	}
	// Nothing is stored before a flush; a failed flush (the context is
	// done) keeps the reports for the next one.
	if len(stored(t, st)) != 0 {
		t.Fatal("a report was stored before a flush")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.Flush(done); err == nil {
		t.Fatal("Flush did not report the store's error")
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, st); len(got) != 1 || got["web-1"].Counters["disk"].Err != "x" {
		t.Fatalf("stored %+v, want web-1's report", got)
	}
	// A new hub (a restart) loads it.
	h2 := NewHub(st, clk.Now, false, nil)
	if err := h2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got, ok := h2.Latest("web-1"); !ok || !got.ReceivedAt.Equal(r.ReceivedAt) || got.Counters["load"].Value != 2 {
		t.Fatalf("after a restart: %+v %v", got, ok)
	}
	// Reports older than Keep are forgotten.
	clk.add(Keep + time.Second)
	h2.prune(clk.Now().Add(-Keep))
	if _, ok := h2.Latest("web-1"); ok {
		t.Fatal("prune kept a report older than Keep")
	}
}

// TestHubShared checks that a report received by one server reaches the
// leading one through the shared store.
func TestHubShared(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	clk := &clock{now: time.Now().UTC()}
	leader, other := NewHub(st, clk.Now, true, nil), NewHub(st, clk.Now, true, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { leader.Run(ctx); close(done) }()
	other.Receive(store.AgentReport{Node: "web-2", Cluster: "web", Counters: map[string]store.AgentReading{"q": {Value: 9}}})
	if err := other.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r, ok := leader.Latest("web-2"); ok && r.Counters["q"].Value == 9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader never saw the report the other server received")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the leader receives itself is stored when it stops.
	leader.Receive(store.AgentReport{Node: "web-3", Cluster: "web"})
	cancel()
	<-done
	if _, ok := stored(t, st)["web-3"]; !ok {
		t.Fatal("the report received last was not stored on stop")
	}
}
