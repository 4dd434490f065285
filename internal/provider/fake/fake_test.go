package fake_test

import (
	"errors"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/fake"
)

// build decodes a fake provider config the way the configuration loader does
// and builds it for owner.
func build(t *testing.T, src, owner string) provider.Provider {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	cfg, err := provider.Registry.Decode("fake", &n)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	p, err := cfg.New(provider.Env{Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := provider.Registry.Decode("fake", nil); err == nil {
		t.Fatal("a fake provider without instance was accepted")
	}
	var n yaml.Node
	_ = yaml.Unmarshal([]byte("{instance: x, bogus: 1}"), &n)
	if _, err := provider.Registry.Decode("fake", &n); err == nil {
		t.Fatal("an unknown key was accepted")
	}
}

func TestContract(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	ctx := t.Context()
	p := build(t, "{instance: "+name+"}", "owner-a")
	other := build(t, "{instance: "+name+"}", "owner-b")
	f := fake.Get(name)

	m1, err := p.Create(ctx, provider.NodeSpec{Cluster: "web", NodeID: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if m1.ID == "" || m1.Address == "" || m1.State != provider.MachineRunning || m1.Cluster != "web" || m1.NodeID != "web-1" {
		t.Fatalf("machine = %+v", m1)
	}
	// Idempotent per node: a retry finds the same machine.
	again, err := p.Create(ctx, provider.NodeSpec{Cluster: "web", NodeID: "web-1"})
	if err != nil || again.ID != m1.ID {
		t.Fatalf("second Create = %+v, %v; want machine %s", again, err, m1.ID)
	}
	if got := f.CreateCallsFor("web-1"); got != 2 {
		t.Fatalf("CreateCallsFor = %d, want 2 recorded calls", got)
	}
	if got := len(f.Machines()); got != 1 {
		t.Fatalf("%d machines after two Creates of one node, want 1", got)
	}
	if _, err := p.Create(ctx, provider.NodeSpec{Cluster: "api", NodeID: "api-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create(ctx, provider.NodeSpec{Cluster: "web", NodeID: "web-9"}); err != nil {
		t.Fatal(err)
	}

	// List: one owner's machines of one cluster.
	list, err := p.List(ctx, "web")
	if err != nil || len(list) != 1 || list[0].ID != m1.ID {
		t.Fatalf("List(web) = %+v, %v; want only %s", list, err, m1.ID)
	}
	if list, _ := other.List(ctx, "web"); len(list) != 1 || list[0].NodeID != "web-9" {
		t.Fatalf("other owner's List(web) = %+v", list)
	}
	if list, _ := p.List(ctx, "nothing"); len(list) != 0 {
		t.Fatalf("List(nothing) = %+v", list)
	}

	got, err := p.Get(ctx, m1.ID)
	if err != nil || got.NodeID != "web-1" {
		t.Fatalf("Get = %+v, %v", got, err)
	}

	// Delete, then the machine is gone: Get and Delete say ErrNotFound.
	if err := p.Delete(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ctx, m1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := p.Delete(ctx, m1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
	if calls := f.DeleteCalls(); len(calls) != 2 {
		t.Fatalf("DeleteCalls = %v", calls)
	}
	// A new Create after the delete makes a new machine.
	m2, err := p.Create(ctx, provider.NodeSpec{Cluster: "web", NodeID: "web-1"})
	if err != nil || m2.ID == m1.ID {
		t.Fatalf("Create after Delete = %+v, %v", m2, err)
	}
}

func TestKnobs(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	ctx := t.Context()
	p := build(t, "{instance: "+name+"}", "o")
	f := fake.Get(name)

	f.SetNextCreateErr(provider.ErrCapacity)
	if _, err := p.Create(ctx, provider.NodeSpec{Cluster: "c", NodeID: "c-1"}); !errors.Is(err, provider.ErrCapacity) {
		t.Fatalf("Create with NextCreateErr: %v", err)
	}
	if len(f.Machines()) != 0 {
		t.Fatal("a failed Create made a machine")
	}
	m, err := p.Create(ctx, provider.NodeSpec{Cluster: "c", NodeID: "c-1"})
	if err != nil {
		t.Fatalf("NextCreateErr is not cleared after one call: %v", err)
	}

	if !f.Stop("c-1", "exit status 1") {
		t.Fatal("Stop found no machine")
	}
	if got, _ := p.Get(ctx, m.ID); got.State != provider.MachineStopped || got.Reason != "exit status 1" {
		t.Fatalf("stopped machine = %+v", got)
	}
	if !f.KillNode("c-1") {
		t.Fatal("KillNode found no machine")
	}
	if _, err := p.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Fatalf("Get of a killed machine: %v", err)
	}
	if list, _ := p.List(ctx, "c"); len(list) != 0 {
		t.Fatalf("List after kill = %+v", list)
	}

	f.SetAddress(func(s provider.NodeSpec) string { return "10.0.0.1:" + s.NodeID })
	var deleted []string
	f.OnDelete(func(m provider.Machine) { deleted = append(deleted, m.NodeID) })
	m3, _ := p.Create(ctx, provider.NodeSpec{Cluster: "c", NodeID: "c-3"})
	if m3.Address != "10.0.0.1:c-3" {
		t.Fatalf("address = %q", m3.Address)
	}
	if err := p.Delete(ctx, m3.ID); err != nil || len(deleted) != 1 || deleted[0] != "c-3" {
		t.Fatalf("Delete = %v, hook saw %v", err, deleted)
	}
}
