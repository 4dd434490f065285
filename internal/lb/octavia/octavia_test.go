package octavia

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider/openstack/openstacktest"
)

type fixture struct {
	cloud  *openstacktest.Cloud
	pool   openstacktest.PoolInfo
	subnet openstacktest.SubnetInfo
	clouds string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := openstacktest.New()
	t.Cleanup(c.Close)
	f := &fixture{cloud: c, pool: c.AddLoadBalancer("web-lb", "web-pool")}
	f.subnet = c.Subnet(c.AddNetwork("private", "10.0.0.0/24").ID)
	f.clouds = filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(f.clouds, []byte(c.CloudsYAML("fake")), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) balancer(t *testing.T, mods ...func(*Config)) *Balancer {
	t.Helper()
	cfg := &Config{
		Auth: osapi.Auth{Cloud: "fake", CloudsFile: f.clouds, RetryDelay: plugin.Duration(time.Millisecond),
			MaxRetryDelay: plugin.Duration(20 * time.Millisecond), RequestTimeout: plugin.Duration(2 * time.Second)},
		Pool: "web-pool", Subnet: "private-subnet", DrainDelay: plugin.Duration(100 * time.Millisecond),
		PollInterval: plugin.Duration(5 * time.Millisecond), WaitTimeout: plugin.Duration(5 * time.Second),
	}
	for _, m := range mods {
		m(cfg)
	}
	b, err := cfg.New(lb.Env{Cluster: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*Balancer)
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The lb contract: Register is idempotent, Deregister drains then removes
// and ignores unknown backends, Backends lists what this cluster registered.
func TestRegisterDeregister(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := f.balancer(t)
	ctx := ctxT(t)
	be := lb.Backend{NodeID: "web-1", Address: "10.0.0.21:8080"}
	if err := b.Register(ctx, be); err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx, be); err != nil {
		t.Fatalf("Register again: %v", err)
	}
	ms := f.cloud.Members(f.pool.ID)
	if len(ms) != 1 {
		t.Fatalf("members %+v, want one", ms)
	}
	m := ms[0]
	if m.Name != "goscaler/web/web-1" || m.Address != "10.0.0.21" || m.ProtocolPort != 8080 || m.Weight != 1 ||
		m.SubnetID != f.subnet.ID || m.Status != "ACTIVE" {
		t.Errorf("member %+v", m)
	}
	if n := f.cloud.Count("load-balancer", "POST", "/members$"); n != 1 {
		t.Errorf("%d member creations, want 1", n)
	}
	f.cloud.AddMember(f.pool.ID, "hand-made", "10.0.0.99", 80)
	f.cloud.AddMember(f.pool.ID, "goscaler/api/api-1", "10.0.0.98", 80)
	got, err := b.Backends(ctx)
	if err != nil || len(got) != 1 || got[0] != be {
		t.Fatalf("Backends = %+v, %v; want only %+v", got, err, be)
	}

	start := time.Now()
	if err := b.Deregister(ctx, be); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("Deregister took %s, less than the drain delay", took)
	}
	var put, del *openstacktest.Request
	for _, r := range f.cloud.Requests() {
		switch {
		case r.Method == "PUT" && strings.Contains(r.Path, m.ID):
			put = &r
		case r.Method == "DELETE" && strings.Contains(r.Path, m.ID):
			del = &r
		}
	}
	if put == nil || del == nil || del.At.Sub(put.At) < 100*time.Millisecond {
		t.Errorf("drain: PUT %v then DELETE %v; want the weight set to 0, then the member deleted after the 100ms delay", put, del)
	}
	if got, _ := b.Backends(ctx); len(got) != 0 {
		t.Errorf("Backends after Deregister: %+v", got)
	}
	if len(f.cloud.Members(f.pool.ID)) != 2 {
		t.Errorf("members %+v: want only the two foreign ones left", f.cloud.Members(f.pool.ID))
	}
	if err := b.Deregister(ctx, be); err != nil {
		t.Errorf("Deregister of an unknown backend: %v", err)
	}
}

// The weight was 0 when drained: Octavia received exactly that.
func TestDrainSetsWeightZero(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := f.balancer(t, func(c *Config) { c.DrainDelay = plugin.Duration(time.Hour) })
	ctx := ctxT(t)
	be := lb.Backend{NodeID: "web-1", Address: "10.0.0.21:8080"}
	if err := b.Register(ctx, be); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Deregister(short, be) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := f.cloud.Members(f.pool.ID)
		if len(ms) == 1 && ms[0].Weight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member never drained: %+v", ms)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Deregister cut off during its drain: %v", err)
	}
	// Registering again (the node is back in service) restores the weight
	// of the same member.
	if err := b.Register(ctx, be); err != nil {
		t.Fatal(err)
	}
	ms := f.cloud.Members(f.pool.ID)
	if len(ms) != 1 || ms[0].Weight != 1 {
		t.Errorf("members %+v; want the one member back at weight 1", ms)
	}
}

// Octavia refuses changes while the load balancer is busy (409) and after a
// change it is PENDING_UPDATE for a while: concurrent registrations wait
// their turn and all succeed.
func TestBusyLoadBalancer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cloud.SetPendingTime(30 * time.Millisecond)
	b := f.balancer(t)
	other := f.balancer(t) // another goscaler process sharing the pool
	ctx := ctxT(t)
	f.cloud.Inject(openstacktest.Fault{Service: "load-balancer", Method: "POST", Path: "/members$", Times: 2, Status: 409,
		Body: `{"faultcode": "Client", "faultstring": "Load Balancer x is immutable and cannot be updated.", "debuginfo": null}`})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i, addr := range []string{"10.0.0.31:80", "10.0.0.32:80", "10.0.0.33:80", "10.0.0.34:80", "10.0.0.35:80", "10.0.0.36:80"} {
		wg.Go(func() {
			bal := b
			if i%2 == 1 {
				bal = other
			}
			errs <- bal.Register(ctx, lb.Backend{NodeID: "web-" + addr[7:9], Address: addr})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if ms := f.cloud.Members(f.pool.ID); len(ms) != 6 {
		t.Errorf("%d members, want 6", len(ms))
	}
	// The two balancers race for the load balancer: besides the 2 refusals
	// injected, Octavia refuses whichever comes second.
	posts, refused := 0, 0
	for _, r := range f.cloud.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/members") {
			posts++
			if r.Status == 409 {
				refused++
			}
		}
	}
	if posts != 6+refused || refused < 2 {
		t.Errorf("%d member creations, %d refused; want 6 accepted and at least the 2 injected refusals", posts, refused)
	}
}

// A member creation whose answer was lost is not made twice.
func TestLostAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b := f.balancer(t)
	f.cloud.Inject(openstacktest.Fault{Service: "load-balancer", Method: "POST", Path: "/members$", Times: 1, After: true, Status: 503})
	f.cloud.Inject(openstacktest.Fault{Service: "load-balancer", Method: "GET", Path: "/loadbalancers/", Times: 2, Status: 500})
	if err := b.Register(ctxT(t), lb.Backend{NodeID: "web-1", Address: "10.0.0.21:8080"}); err != nil {
		t.Fatal(err)
	}
	if ms := f.cloud.Members(f.pool.ID); len(ms) != 1 {
		t.Errorf("members %+v, want one", ms)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxT(t)
	be := lb.Backend{NodeID: "web-1", Address: "10.0.0.21:8080"}

	err := f.balancer(t, func(c *Config) { c.Pool = "nope" }).Register(ctx, be)
	if !errors.Is(err, osapi.ErrConfig) || !strings.Contains(err.Error(), `no Octavia pool has the ID or name "nope"`) {
		t.Errorf("unknown pool: %v", err)
	}
	err = f.balancer(t, func(c *Config) { c.Subnet = "nope" }).Register(ctx, be)
	if !errors.Is(err, osapi.ErrConfig) || !strings.Contains(err.Error(), `no subnet has the ID or name "nope"`) {
		t.Errorf("unknown subnet: %v", err)
	}
	b := f.balancer(t, func(c *Config) { c.Pool, c.Subnet = f.pool.ID, f.subnet.ID })
	for _, addr := range []string{"web-1", "db.internal:80", "10.0.0.1:http"} {
		if err := b.Register(ctx, lb.Backend{NodeID: "x", Address: addr}); err == nil {
			t.Errorf("Register of %q succeeded", addr)
		}
	}
	f.cloud.SetLoadBalancerStatus(f.pool.LoadBalancerID, "ERROR")
	if err := b.Register(ctx, be); err == nil || !strings.Contains(err.Error(), "is ERROR") {
		t.Errorf("a load balancer in ERROR: %v", err)
	}
	f.cloud.SetLoadBalancerStatus(f.pool.LoadBalancerID, "PENDING_UPDATE")
	stuck := f.balancer(t, func(c *Config) { c.WaitTimeout = plugin.Duration(50 * time.Millisecond) })
	if err := stuck.Register(ctx, be); err == nil || !strings.Contains(err.Error(), "still PENDING_UPDATE after 50ms") {
		t.Errorf("a load balancer stuck in PENDING_UPDATE: %v", err)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	decode := func(src string) error {
		var node yaml.Node
		if err := yaml.Unmarshal([]byte(src), &node); err != nil {
			return err
		}
		_, err := lb.Registry.Decode(TypeName, &node)
		return err
	}
	if err := decode(`{cloud: prod, pool: web, subnet: private, weight: 10, drain_delay: 30s, wait_timeout: 2m, poll_interval: 1s}`); err != nil {
		t.Errorf("a good config: %v", err)
	}
	for src, want := range map[string]string{
		`{subnet: x}`:                 "pool: required",
		`{pool: p, weight: 300}`:      "weight: 300: use 1 to 256",
		`{pool: p, drain_delay: -1s}`: "drain_delay",
		`{pool: p, members: 3}`:       `unknown key "members"`,
		`{pool: p, interface: x}`:     `interface: "x"`,
	} {
		if err := decode(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}
