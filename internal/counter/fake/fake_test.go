package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/fake"
)

func build(t *testing.T, name string) counter.Source {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("{instance: "+name+"}"), &n); err != nil {
		t.Fatal(err)
	}
	cfg, err := counter.Registry.Decode("fake", &n)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if cfg.DefaultScope() != counter.ScopeNode {
		t.Fatalf("default scope %q", cfg.DefaultScope())
	}
	s, err := cfg.New(counter.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	ctx := t.Context()
	src := build(t, name)
	f := fake.Get(name)
	node := func(id string) counter.Target { return counter.Target{Cluster: "c", NodeID: id} }
	cluster := counter.Target{Cluster: "c"}
	boom := errors.New("connection refused")

	// Nothing set: an error, never a zero.
	if v, err := src.Read(ctx, node("c-1")); !errors.Is(err, fake.ErrNoValue) {
		t.Fatalf("unset node read %v, %v; want ErrNoValue", v, err)
	}
	if _, err := src.Read(ctx, cluster); !errors.Is(err, fake.ErrNoValue) {
		t.Fatalf("unset cluster read: %v", err)
	}

	f.Set("c-1", 25)
	f.SetErr("c-2", boom)
	f.SetCluster(7)
	tests := []struct {
		target  counter.Target
		want    float64
		wantErr error
	}{
		{node("c-1"), 25, nil},
		{node("c-2"), 0, boom},
		{node("c-3"), 0, fake.ErrNoValue},
		{cluster, 7, nil},
	}
	for _, tt := range tests {
		v, err := src.Read(ctx, tt.target)
		if !errors.Is(err, tt.wantErr) || err == nil && v != tt.want {
			t.Errorf("Read(%+v) = %v, %v; want %v, %v", tt.target, v, err, tt.want, tt.wantErr)
		}
	}

	f.SetAll(3) // every node, per-node settings dropped; the cluster value stays
	for _, id := range []string{"c-1", "c-2", "c-3"} {
		if v, err := src.Read(ctx, node(id)); err != nil || v != 3 {
			t.Errorf("after SetAll, %s reads %v, %v", id, v, err)
		}
	}
	if v, _ := src.Read(ctx, cluster); v != 7 {
		t.Errorf("SetAll changed the cluster reading to %v", v)
	}
	f.Set("c-1", 9)
	if v, _ := src.Read(ctx, node("c-1")); v != 9 {
		t.Errorf("a node's own value does not win over SetAll: %v", v)
	}
	f.SetAllErr(boom)
	if _, err := src.Read(ctx, node("c-1")); !errors.Is(err, boom) {
		t.Errorf("after SetAllErr: %v", err)
	}
	f.SetClusterErr(boom)
	if _, err := src.Read(ctx, cluster); !errors.Is(err, boom) {
		t.Errorf("after SetClusterErr: %v", err)
	}
	if n := len(f.Reads()); n != 13 {
		t.Errorf("%d reads recorded, want 13", n)
	}
}

func TestReadHonoursContext(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	src := build(t, name)
	f := fake.Get(name)
	f.SetAll(1)
	f.SetBlock(true)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if _, err := src.Read(ctx, counter.Target{Cluster: "c", NodeID: "c-1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked Read: %v, want the context's error", err)
	}
}
