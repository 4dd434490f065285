package fleet_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/fleet"
	"github.com/goscaler/goscaler/internal/store"
)

func decode(t *testing.T, kind, src string) (action.Config, error) {
	t.Helper()
	var n *yaml.Node
	if src != "" {
		n = &yaml.Node{}
		if err := yaml.Unmarshal([]byte(src), n); err != nil {
			t.Fatal(err)
		}
	}
	return action.Registry.Decode(kind, n)
}

func TestDeployValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src       string
		wantCount int
		wantErr   string
	}{
		{"", 1, ""},
		{"{count: 0}", 1, ""},
		{"{count: 3}", 3, ""},
		{"{count: -1}", 0, "count is -1"},
		{"{count: two}", 0, "expected a whole number"},
		{"{count: 1, order: oldest}", 0, "unknown key \"order\""},
	}
	for _, tt := range tests {
		cfg, err := decode(t, "deploy_node", tt.src)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		if got := cfg.(*fleet.DeployConfig).Count; got != tt.wantCount {
			t.Errorf("%q: count %d, want %d", tt.src, got, tt.wantCount)
		}
	}
}

func TestRemoveValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src       string
		wantCount int
		wantOrder string
		wantErr   string
	}{
		{"", 1, fleet.OrderOldest, ""},
		{"{count: 2}", 2, fleet.OrderOldest, ""},
		{"{order: newest}", 1, fleet.OrderNewest, ""},
		{"{order: oldest}", 1, fleet.OrderOldest, ""},
		{"{order: random}", 0, "", `order "random" is not oldest or newest`},
		{"{count: -2}", 0, "", "count is -2"},
	}
	for _, tt := range tests {
		cfg, err := decode(t, "remove_node", tt.src)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one containing %q", tt.src, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tt.src, err)
			continue
		}
		rc := cfg.(*fleet.RemoveConfig)
		if rc.Count != tt.wantCount || rc.Order != tt.wantOrder {
			t.Errorf("%q: count %d order %q, want %d %q", tt.src, rc.Count, rc.Order, tt.wantCount, tt.wantOrder)
		}
	}
}

// The defaults survive the JSON round trip through an activity's params.
func TestStoredDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := action.Registry.DecodeJSON("remove_node", []byte(`{"count":0,"order":""}`))
	if err != nil {
		t.Fatal(err)
	}
	if rc := cfg.(*fleet.RemoveConfig); rc.Count != 1 || rc.Order != fleet.OrderOldest {
		t.Fatalf("stored remove_node = %+v", rc)
	}
	cfg, err = action.Registry.DecodeJSON("deploy_node", nil)
	if err != nil {
		t.Fatal(err)
	}
	if dc := cfg.(*fleet.DeployConfig); dc.Count != 1 {
		t.Fatalf("stored deploy_node = %+v", dc)
	}
}

type recordingFleet struct{ calls []string }

func (f *recordingFleet) DeployNodes(_ context.Context, cluster string, a store.Activity, count int) (string, error) {
	f.calls = append(f.calls, "deploy "+cluster+" "+strconv.FormatInt(a.ID, 10)+" "+strconv.Itoa(count))
	return "deployed", nil
}

func (f *recordingFleet) RemoveNodes(_ context.Context, cluster string, a store.Activity, count int, order string) (string, error) {
	f.calls = append(f.calls, "remove "+cluster+" "+strconv.FormatInt(a.ID, 10)+" "+strconv.Itoa(count)+" "+order)
	return "removed", nil
}

func (f *recordingFleet) Nodes(context.Context, string) ([]store.Node, error) {
	f.calls = append(f.calls, "nodes")
	return nil, nil
}

func TestRunGoesThroughFleet(t *testing.T) {
	t.Parallel()
	f := &recordingFleet{}
	run := action.Run{Activity: store.Activity{ID: 42}, Cluster: "web", Fleet: f}
	for _, c := range []struct{ kind, src, want string }{
		{"deploy_node", "{count: 2}", "deploy web 42 2"},
		{"remove_node", "{count: 3, order: newest}", "remove web 42 3 newest"},
	} {
		cfg, err := decode(t, c.kind, c.src)
		if err != nil {
			t.Fatal(err)
		}
		act, err := cfg.New(action.Env{Cluster: "web"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := act.Run(t.Context(), run); err != nil {
			t.Fatal(err)
		}
		if got := f.calls[len(f.calls)-1]; got != c.want {
			t.Errorf("%s ran %q, want %q", c.kind, got, c.want)
		}
	}
}
