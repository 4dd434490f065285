package fake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/lb/fake"
)

func build(t *testing.T, name string) lb.Balancer {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("{instance: "+name+"}"), &n); err != nil {
		t.Fatal(err)
	}
	cfg, err := lb.Registry.Decode("fake", &n)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	b, err := cfg.New(lb.Env{Cluster: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if _, err := lb.Registry.Decode("fake", nil); err == nil {
		t.Fatal("a fake load balancer without instance was accepted")
	}
}

func TestContract(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	ctx := t.Context()
	b := build(t, name)
	f := fake.Get(name)
	a := lb.Backend{NodeID: "web-1", Address: "127.0.0.1:1"}
	c := lb.Backend{NodeID: "web-2", Address: "127.0.0.1:2"}

	for _, be := range []lb.Backend{a, a, c} { // registering again is a no-op
		if err := b.Register(ctx, be); err != nil {
			t.Fatal(err)
		}
	}
	got, err := b.Backends(ctx)
	if err != nil || len(got) != 2 || got[0] != a || got[1] != c {
		t.Fatalf("Backends = %+v, %v", got, err)
	}
	if err := b.Deregister(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := b.Deregister(ctx, lb.Backend{NodeID: "unknown"}); err != nil {
		t.Fatalf("Deregister of an unknown backend: %v", err)
	}
	if got, _ := b.Backends(ctx); len(got) != 1 || got[0] != c {
		t.Fatalf("Backends after Deregister = %+v", got)
	}
	if !f.Deregistered("web-1") || f.Registered("web-1") || !f.Registered("web-2") {
		t.Fatal("records do not match the calls")
	}
	if n := len(f.Registers()); n != 3 {
		t.Fatalf("%d Register calls recorded, want 3", n)
	}
	calls := f.Calls()
	if len(calls) != 5 || calls[3].Op != "deregister" || calls[3].Seq != 4 {
		t.Fatalf("calls = %+v", calls)
	}
	if envs := f.Envs(); len(envs) != 1 || envs[0].Cluster != "web" {
		t.Fatalf("envs = %+v", envs)
	}
}

func TestDrainHonoursContext(t *testing.T) {
	t.Parallel()
	name := t.Name()
	t.Cleanup(func() { fake.Forget(name) })
	b := build(t, name)
	f := fake.Get(name)
	be := lb.Backend{NodeID: "web-1"}
	_ = b.Register(t.Context(), be)

	drain := make(chan struct{})
	f.SetDrain(drain)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := b.Deregister(ctx, be)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Deregister while draining past ctx: %v, want the deadline", err)
	}
	if f.Registered("web-1") {
		t.Fatal("a draining backend is still in rotation")
	}
	close(drain)
	if err := b.Deregister(t.Context(), be); err != nil {
		t.Fatal(err)
	}

	f.SetNextRegisterErr(errors.New("boom"))
	if err := b.Register(t.Context(), be); err == nil {
		t.Fatal("NextRegisterErr ignored")
	}
	if err := b.Register(t.Context(), be); err != nil {
		t.Fatalf("NextRegisterErr not cleared: %v", err)
	}
}
