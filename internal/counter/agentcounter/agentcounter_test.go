package agentcounter

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
)

// values is a counter.AgentValues for tests.
type values map[string]map[string]counter.AgentValue

func (v values) AgentValue(node, name string) (counter.AgentValue, bool, bool, []string) {
	m, reported := v[node]
	if !reported {
		return counter.AgentValue{}, false, false, nil
	}
	val, ok := m[name]
	if !ok {
		var known []string
		for k := range m {
			known = append(known, k)
		}
		return counter.AgentValue{}, false, true, known
	}
	return val, true, true, nil
}

func TestRead(t *testing.T) {
	t.Parallel()
	agents := values{
		"web-1": {"load": {Value: 0.75, Age: 2 * time.Second}, "disk": {Err: "df: not found", Age: time.Second}},
		"web-2": {"load": {Value: 3, Age: 20 * time.Second}},
		"web-3": {"cpu": {Value: 1}},
	}
	tests := []struct {
		name    string
		cfg     Config
		counter string
		node    string
		want    float64
		wantErr string
	}{
		{"fresh value", Config{}, "load", "web-1", 0.75, ""},
		{"metric name", Config{Metric: "load"}, "avg_load", "web-1", 0.75, ""},
		{"stale", Config{}, "load", "web-2", 0, "no value pushed for 15s: node web-2's agent last reported 20s ago (max_age 15s)"},
		{"longer max_age", Config{MaxAge: plugin.Duration(30 * time.Second)}, "load", "web-2", 3, ""},
		{"agent error", Config{}, "disk", "web-1", 0, `node web-1's agent could not measure "disk": df: not found`},
		{"not pushed", Config{}, "load", "web-3", 0, `no value pushed for "load": node web-3's agent reports other counters (cpu); start it with --counter load=COMMAND`},
		{"no agent", Config{}, "load", "web-9", 0, "no value pushed: node web-9's agent has not reported"},
		{"cluster scope", Config{}, "load", "", 0, "a cluster-scoped reading has no node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, err := tc.cfg.New(counter.Env{Cluster: "web", Counter: tc.counter, Agents: agents})
			if err != nil {
				t.Fatal(err)
			}
			v, err := src.Read(t.Context(), counter.Target{Cluster: "web", NodeID: tc.node})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Read: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Read = %v, %v; want an error containing %q", v, err, tc.wantErr)
			case tc.wantErr != "" && v != 0:
				t.Fatalf("a failed reading returned %v", v)
			case v != tc.want:
				t.Fatalf("Read = %v, want %v", v, tc.want)
			}
		})
	}
}

func TestReadHonoursContext(t *testing.T) {
	t.Parallel()
	src, err := (&Config{}).New(counter.Env{Counter: "load", Agents: values{"web-1": {"load": {Value: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := src.Read(ctx, counter.Target{NodeID: "web-1"}); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("Read with a done context: %v", err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	if err := (&Config{MaxAge: plugin.Duration(500 * time.Millisecond), Metric: " x"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "max_age: 500ms is too short") || !strings.Contains(err.Error(), "metric: \" x\"") {
		t.Fatalf("Validate = %v", err)
	}
	if _, err := (&Config{}).New(counter.Env{Counter: "load"}); err == nil {
		t.Fatal("New without agent reports: no error")
	}
	if s := (&Config{}).DefaultScope(); s != counter.ScopeNode {
		t.Fatalf("DefaultScope = %s", s)
	}
	cfg, err := counter.Registry.Decode("agent", nil)
	if err != nil || cfg.(*Config).MaxAge != 0 {
		t.Fatalf("registered: %v, %v", cfg, err)
	}
}
