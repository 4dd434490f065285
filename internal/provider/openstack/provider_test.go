package openstack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/openstack/openstacktest"
)

// The create request carries the deterministic name, the tags, the resolved
// IDs and the rendered user data; names and IDs are both accepted.
func TestCreateRequest(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cloud.AddSecurityGroup("web")
	userData := "#cloud-config\nhostname: {{.NodeID}}\nwrite_files:\n  - path: /etc/role\n    content: \"{{.role}} of {{.Cluster}} on port {{.Port}} ({{.ServerName}})\"\n"
	for _, byID := range []bool{false, true} {
		t.Run(fmt.Sprintf("by ID %v", byID), func(t *testing.T) {
			t.Parallel()
			cfg := f.config(func(c *Config) {
				c.KeyName, c.SecurityGroups, c.AvailabilityZone = "ops", []string{"web", "default"}, "nova"
				c.UserData, c.Metadata = userData, map[string]string{"team": "payments"}
				if byID {
					c.Flavor, c.Image, c.Network = f.flavor.ID, f.image.ID, f.private.ID
				}
			})
			owner := fmt.Sprintf("gs-req-%v", byID)
			p := build(t, cfg, owner)
			sp := spec("web-7")
			sp.Vars["role"] = "frontend"
			m, err := p.Create(ctxT(t), sp)
			if err != nil {
				t.Fatal(err)
			}
			s, ok := f.cloud.Server(m.ID)
			if !ok {
				t.Fatalf("no server %s in the cloud", m.ID)
			}
			if s.Name != owner+"-web-7" {
				t.Errorf("name %q, want %q", s.Name, owner+"-web-7")
			}
			wantMeta := map[string]string{MetaOwner: owner, MetaCluster: "web", MetaNode: "web-7", "team": "payments"}
			for k, v := range wantMeta {
				if s.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q (all: %v)", k, s.Metadata[k], v, s.Metadata)
				}
			}
			if s.FlavorID != f.flavor.ID || s.ImageID != f.image.ID || !slices.Equal(s.Networks, []string{f.private.ID}) ||
				s.KeyName != "ops" || s.AvailabilityZone != "nova" || !slices.Equal(s.SecurityGroups, []string{"web", "default"}) {
				t.Errorf("server %+v", s)
			}
			wantUD := "#cloud-config\nhostname: web-7\nwrite_files:\n  - path: /etc/role\n    content: \"frontend of web on port 8080 (" + owner + "-web-7)\"\n"
			if s.UserData != wantUD {
				t.Errorf("user data:\n%s\nwant:\n%s", s.UserData, wantUD)
			}
			if m.Address != s.FixedIPs["private"]+":8080" || m.Meta["fixed_ip"] != s.FixedIPs["private"] || m.Meta["server_name"] != s.Name {
				t.Errorf("machine %+v for server %+v", m, s)
			}
		})
	}
	t.Run("user data that is valid base64 text is sent as text", func(t *testing.T) {
		t.Parallel()
		p := build(t, f.config(func(c *Config) { c.UserData = "abcd" }), "gs-b64")
		m, err := p.Create(ctxT(t), spec("web-1"))
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := f.cloud.Server(m.ID); s.UserData != "abcd" {
			t.Errorf("user data %q, want abcd", s.UserData)
		}
	})
	t.Run("a variable the template needs is missing", func(t *testing.T) {
		t.Parallel()
		p := build(t, f.config(func(c *Config) { c.UserData = "{{.nope}}" }), "gs-tmpl")
		_, err := p.Create(ctxT(t), spec("web-1"))
		if !errors.Is(err, provider.ErrConfig) || !strings.Contains(err.Error(), "user_data") {
			t.Errorf("err = %v, want ErrConfig about user_data", err)
		}
	})
}

// Nova's statuses map to machine states: BUILD is running without an
// address, ERROR is stopped with its fault, DELETED and SOFT_DELETED are gone.
func TestStates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := build(t, f.config(), "gs-states")
	ctx := ctxT(t)
	tests := []struct {
		status, fault string
		state         provider.MachineState
		reason        string
		gone          bool
	}{
		{status: "ACTIVE", state: provider.MachineRunning},
		{status: "REBOOT", state: provider.MachineRunning},
		{status: "SHUTOFF", state: provider.MachineStopped, reason: "the server is SHUTOFF"},
		{status: "SUSPENDED", state: provider.MachineStopped, reason: "the server is SUSPENDED"},
		{status: "ERROR", fault: "Host is unreachable", state: provider.MachineStopped, reason: "the server is in ERROR: Host is unreachable"},
		{status: "SOFT_DELETED", gone: true},
		{status: "DELETED", gone: true},
	}
	for i, tt := range tests {
		node := fmt.Sprintf("web-%d", i+1)
		m, err := p.Create(ctx, spec(node))
		if err != nil {
			t.Fatal(err)
		}
		f.cloud.SetServerStatus(m.ID, tt.status, tt.fault)
		got, err := p.Get(ctx, m.ID)
		list, lerr := p.List(ctx, "web")
		if lerr != nil {
			t.Fatal(lerr)
		}
		listed := slices.ContainsFunc(list, func(x provider.Machine) bool { return x.ID == m.ID })
		if tt.gone {
			if !errors.Is(err, provider.ErrNotFound) || listed {
				t.Errorf("%s: Get = %+v, %v; listed %v; want ErrNotFound and not listed", tt.status, got, err, listed)
			}
			if err := p.Delete(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
				t.Errorf("%s: Delete = %v, want ErrNotFound", tt.status, err)
			}
			continue
		}
		if err != nil || got.State != tt.state || got.Reason != tt.reason || got.Meta["status"] != tt.status || !listed {
			t.Errorf("%s: Get = %+v, %v; listed %v; want state %s reason %q", tt.status, got, err, listed, tt.state, tt.reason)
		}
	}

	// A server adopted while it builds: running, no address yet.
	f.cloud.SetBuildTime(time.Hour)
	slow := build(t, f.config(func(c *Config) { c.BuildTimeout = plugin.Duration(20 * time.Millisecond) }), "gs-states")
	if _, err := slow.Create(ctx, spec("web-build")); !errors.Is(err, provider.ErrTransient) {
		t.Fatalf("Create while the server builds for an hour, with a 20ms build timeout: %v", err)
	}
	building := ofNode(f.cloud, "web-build")
	if len(building) != 1 {
		t.Fatalf("servers of web-build: %+v", building)
	}
	got, err := p.Get(ctx, building[0].ID)
	if err != nil || got.State != provider.MachineRunning || got.Address != "" || got.Meta["status"] != "BUILD" {
		t.Errorf("a building server: %+v, %v; want running without an address", got, err)
	}
}

func TestCreateWaitsForTheBuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cloud.SetBuildTime(150 * time.Millisecond)
	p := build(t, f.config(), "gs-wait")
	start := time.Now()
	m, err := p.Create(ctxT(t), spec("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond || m.State != provider.MachineRunning || m.Address == "" || m.Meta["status"] != "ACTIVE" {
		t.Errorf("Create returned %+v after %s; want an ACTIVE server with an address after its 150ms build", m, took)
	}

	// A build longer than build_timeout: the server is kept, and the next
	// Create waits for the same one.
	f.cloud.SetBuildTime(time.Hour)
	slow := build(t, f.config(func(c *Config) { c.BuildTimeout = plugin.Duration(50 * time.Millisecond) }), "gs-wait")
	_, err = slow.Create(ctxT(t), spec("web-2"))
	if !errors.Is(err, provider.ErrTransient) || !strings.Contains(err.Error(), "still building after 50ms") {
		t.Fatalf("err = %v, want ErrTransient: still building", err)
	}
	f.cloud.SetBuildTime(0)
	m2, err := slow.Create(ctxT(t), spec("web-2"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ofNode(f.cloud, "web-2")); n != 1 || f.cloud.Count("compute", "POST", "^/servers$") != 2 {
		t.Errorf("%d servers for web-2, %d create requests in all; want 1 and 2", n, f.cloud.Count("compute", "POST", "^/servers$"))
	}
	if s := ofNode(f.cloud, "web-2"); len(s) == 1 && s[0].ID != m2.ID {
		t.Errorf("Create returned %s, the cloud has %s", m2.ID, s[0].ID)
	}
}

// Failures are typed: capacity, quota, bad configuration, transient. A server
// that failed is deleted: nothing is left behind.
func TestCreateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(f *fixture, p *Provider)
		mod      func(c *Config)
		want     error
		contains string
	}{
		{name: "no valid host", want: provider.ErrCapacity, contains: "No valid host was found",
			setup: func(f *fixture, _ *Provider) {
				f.cloud.FailNextBuilds(1, "No valid host was found. There are not enough hosts available.")
			}},
		{name: "retries exhausted in the scheduler", want: provider.ErrCapacity, contains: "Exceeded maximum number of retries",
			setup: func(f *fixture, _ *Provider) {
				f.cloud.FailNextBuilds(1, "Exceeded maximum number of retries. Exhausted all hosts available for retrying build failures for instance x.")
			}},
		{name: "Nova 409", want: provider.ErrCapacity, contains: "HTTP 409",
			setup: func(f *fixture, _ *Provider) {
				f.cloud.Inject(openstacktest.Fault{Service: "compute", Method: "POST", Path: "^/servers$", Status: 409,
					Body: `{"conflictingRequest": {"code": 409, "message": "No more available fixed IPs in network"}}`})
			}},
		{name: "instance quota", want: provider.ErrQuota, contains: "Quota exceeded for instances",
			setup: func(f *fixture, p *Provider) {
				f.cloud.SetQuota(1)
				if _, err := p.Create(context.Background(), spec("web-0")); err != nil {
					panic(err)
				}
			}},
		{name: "quota as 413", want: provider.ErrQuota, contains: "Quota exceeded for cores",
			setup: func(f *fixture, _ *Provider) {
				f.cloud.Inject(openstacktest.Fault{Service: "compute", Method: "POST", Path: "^/servers$", Status: 413,
					Body: `{"overLimit": {"code": 413, "message": "Quota exceeded for cores: Requested 2, but already used 8 of 8 cores"}}`})
			}},
		{name: "quota in the build fault", want: provider.ErrQuota,
			setup: func(f *fixture, _ *Provider) { f.cloud.FailNextBuilds(1, "Quota exceeded for ports") }},
		{name: "floating IP quota", want: provider.ErrQuota, contains: "Quota exceeded for resources: ['floatingip']",
			mod: func(c *Config) { c.FloatingIPPool = "public" },
			setup: func(f *fixture, _ *Provider) {
				f.cloud.SetFloatingIPQuota(1)
				f.cloud.Inject(openstacktest.Fault{Service: "network", Method: "POST", Path: "^/floatingips$", Status: 409,
					Body: `{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for resources: ['floatingip'].", "detail": ""}}`})
			}},
		{name: "unknown flavor", want: provider.ErrConfig, contains: `flavor: no flavor has the ID or name "m9.huge"`,
			mod: func(c *Config) { c.Flavor = "m9.huge" }},
		{name: "unknown image", want: provider.ErrConfig, contains: `image: no image has the ID or name "nope"`,
			mod: func(c *Config) { c.Image = "nope" }},
		{name: "unknown network", want: provider.ErrConfig, contains: `network: no network has the ID or name "dmz"`,
			mod: func(c *Config) { c.Network = "dmz" }},
		{name: "unknown floating IP pool", want: provider.ErrConfig, contains: `floating_ip_pool: no network`,
			mod: func(c *Config) { c.FloatingIPPool = "internet" }},
		{name: "ambiguous flavor name", want: provider.ErrConfig, contains: `2 flavors are named "m1.small"`,
			setup: func(f *fixture, _ *Provider) { f.cloud.AddFlavor("m1.small") }},
		{name: "unknown key pair", want: provider.ErrConfig, contains: "Invalid key_name provided",
			mod: func(c *Config) { c.KeyName = "nobody" }},
		{name: "unknown security group", want: provider.ErrConfig, contains: "Security group db not found",
			mod: func(c *Config) { c.SecurityGroups = []string{"db"} }},
		{name: "no network set and several to choose from", want: provider.ErrConfig, contains: "Multiple possible networks found",
			mod:   func(c *Config) { c.Network = "" },
			setup: func(f *fixture, _ *Provider) { f.cloud.AddNetwork("backend", "10.1.0.0/24") }},
		{name: "image too big for the flavor", want: provider.ErrConfig, contains: "too small",
			setup: func(f *fixture, _ *Provider) {
				f.cloud.FailNextBuilds(1, "Build of instance x aborted: Flavor's disk is too small for requested image.")
			}},
		{name: "a policy refusal", want: provider.ErrConfig, contains: "HTTP 403",
			setup: func(f *fixture, _ *Provider) {
				f.cloud.Inject(openstacktest.Fault{Service: "compute", Method: "POST", Path: "^/servers$", Status: 403,
					Body: `{"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:create to be performed."}}`})
			}},
		{name: "an unknown build fault", want: provider.ErrTransient, contains: "libvirtError",
			setup: func(f *fixture, _ *Provider) { f.cloud.FailNextBuilds(1, "libvirtError: internal error") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cfg := f.config()
			if tt.mod != nil {
				tt.mod(cfg)
			}
			p := build(t, cfg, "gs-err")
			if tt.setup != nil {
				tt.setup(f, p)
			}
			m, err := p.Create(ctxT(t), spec("web-1"))
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("Create = %+v, %v; want %v with %q", m, err, tt.want, tt.contains)
			}
			for _, other := range []error{provider.ErrCapacity, provider.ErrQuota, provider.ErrConfig, provider.ErrTransient} {
				if !errors.Is(other, tt.want) && errors.Is(err, other) {
					t.Errorf("the error is also %v: %v", other, err)
				}
			}
			if left := ofNode(f.cloud, "web-1"); len(left) != 0 {
				t.Errorf("a failed create left servers behind: %+v", left)
			}
			if fips := f.cloud.FloatingIPs(); len(fips) != 0 {
				t.Errorf("a failed create left floating IPs behind: %+v", fips)
			}
		})
	}
}

// Throttling and 5xx are retried with backoff, honouring Retry-After; when the
// retries run out the error is ErrTransient.
func TestRetries(t *testing.T) {
	t.Parallel()
	t.Run("429 with Retry-After", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := build(t, f.config(func(c *Config) { c.MaxRetryDelay = plugin.Duration(5 * time.Second) }), "gs-429")
		inj := f.cloud.Inject(openstacktest.Fault{Service: "compute", Method: "GET", Path: "^/servers/detail$", Times: 1,
			Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": []string{"1"}}})
		start := time.Now()
		m, err := p.Create(ctxT(t), spec("web-1"))
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); inj.Hits() != 1 || took < time.Second {
			t.Errorf("throttled once, Create took %s; want at least the 1s of Retry-After", took)
		}
		if n := len(ofNode(f.cloud, "web-1")); n != 1 || m.ID == "" {
			t.Errorf("%d servers", n)
		}
	})
	t.Run("503 and 500 on every kind of call", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := build(t, f.config(), "gs-5xx")
		for _, fault := range []openstacktest.Fault{
			{Service: "identity", Method: "POST", Times: 1, Status: 503},
			{Service: "network", Method: "GET", Path: "^/networks", Times: 2, Status: 500},
			{Service: "compute", Method: "GET", Path: "^/flavors", Times: 1, Status: 502},
			{Service: "image", Method: "GET", Times: 1, Status: 503},
			{Service: "compute", Method: "POST", Path: "^/servers$", Times: 2, Status: 503},
			{Service: "compute", Method: "GET", Path: "^/servers/[^/]+$", Times: 2, Status: 500},
			{Service: "compute", Method: "DELETE", Times: 1, Status: 503},
		} {
			f.cloud.Inject(fault)
		}
		ctx := ctxT(t)
		m, err := p.Create(ctx, spec("web-1"))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(ofNode(f.cloud, "web-1")); n != 1 {
			t.Errorf("%d servers for web-1", n)
		}
		if err := p.Delete(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		if n := len(f.cloud.Servers()); n != 0 {
			t.Errorf("%d servers left", n)
		}
	})
	t.Run("retries run out", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := build(t, f.config(func(c *Config) { c.Retries = 2 }), "gs-out")
		inj := f.cloud.Inject(openstacktest.Fault{Service: "compute", Method: "GET", Path: "^/servers/detail$", Status: 503})
		_, err := p.List(ctxT(t), "web")
		if !errors.Is(err, provider.ErrTransient) || !strings.Contains(err.Error(), "gave up after 3 attempts") || inj.Hits() != 3 {
			t.Errorf("List = %v after %d requests; want ErrTransient after 3", err, inj.Hits())
		}
	})
	t.Run("an expired token is renewed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := build(t, f.config(), "gs-token")
		ctx := ctxT(t)
		if _, err := p.Create(ctx, spec("web-1")); err != nil {
			t.Fatal(err)
		}
		f.cloud.ExpireTokens()
		if _, err := p.Create(ctx, spec("web-2")); err != nil {
			t.Fatalf("Create after the token expired: %v", err)
		}
		if n := f.cloud.Count("identity", "POST", "^/auth/tokens$"); n != 2 {
			t.Errorf("%d token requests, want 2", n)
		}
	})
}

// A create request that reached Nova but whose answer was lost (an error after
// the fact, a timeout, a broken connection) never makes a second server: the
// retry lists first and adopts the server the lost request made.
func TestNoSecondServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault openstacktest.Fault
	}{
		{"500 after the server was made", openstacktest.Fault{Status: 500}},
		{"503 with Retry-After after the server was made", openstacktest.Fault{Status: 503, Header: http.Header{"Retry-After": []string{"0"}}}},
		{"the answer comes after the client's timeout", openstacktest.Fault{Delay: 2 * time.Second}},
		{"the connection breaks", openstacktest.Fault{Drop: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := build(t, f.config(func(c *Config) { c.RequestTimeout = plugin.Duration(300 * time.Millisecond) }), "gs-lost")
			fault := tt.fault
			fault.Service, fault.Method, fault.Path, fault.After, fault.Times = "compute", "POST", "^/servers$", true, 1
			inj := f.cloud.Inject(fault)
			m, err := p.Create(ctxT(t), spec("web-1"))
			if err != nil {
				t.Fatal(err)
			}
			servers := ofNode(f.cloud, "web-1")
			if inj.Hits() != 1 || len(servers) != 1 || servers[0].ID != m.ID {
				t.Fatalf("fault hit %d times; servers %+v; Create returned %s; want one server, the one returned", inj.Hits(), servers, m.ID)
			}
			if n := f.cloud.Count("compute", "POST", "^/servers$"); n != 1 {
				t.Errorf("%d create requests, want 1: the retry must find the server", n)
			}
		})
	}
}

// TestCreateAfterCrashAdoptsTheServer: the create request reached Nova, then
// goscaler died before it learnt the server's ID. After the restart (a new
// provider), List finds the server by its metadata and Create adopts it.
func TestCreateAfterCrashAdoptsTheServer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cfg := f.config()
	reached := make(chan struct{})
	inj := f.cloud.Inject(openstacktest.Fault{Service: "compute", Method: "POST", Path: "^/servers$", After: true, Hang: true, Times: 1,
		OnMatch: func(openstacktest.Request) { close(reached) }})
	defer inj.Release()

	ctx, crash := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := build(t, cfg, "gs-crash").Create(ctx, spec("web-1"))
		done <- err
	}()
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the create request never reached Nova")
	}
	crash()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the crashed Create returned %v", err)
	}
	servers := ofNode(f.cloud, "web-1")
	if len(servers) != 1 {
		t.Fatalf("after the crash the cloud has %+v; want the one server the request made", servers)
	}

	restarted := build(t, cfg, "gs-crash")
	ctx2 := ctxT(t)
	list, err := restarted.List(ctx2, "web")
	if err != nil || len(list) != 1 || list[0].ID != servers[0].ID || list[0].NodeID != "web-1" {
		t.Fatalf("List after the restart = %+v, %v; want server %s of web-1", list, err, servers[0].ID)
	}
	m, err := restarted.Create(ctx2, spec("web-1"))
	if err != nil || m.ID != servers[0].ID || m.Address == "" {
		t.Fatalf("Create after the restart = %+v, %v; want the adopted server %s", m, err, servers[0].ID)
	}
	if n := f.cloud.Count("compute", "POST", "^/servers$"); n != 1 || len(f.cloud.Servers()) != 1 {
		t.Errorf("%d create requests, %d servers; want 1 and 1", n, len(f.cloud.Servers()))
	}
}

// Two servers tagged for one node (the window of the package doc): Create
// keeps the oldest and deletes the other; foreign servers are never touched.
func TestDuplicatesAndForeignServers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := build(t, f.config(), "gs-dup")
	ctx := ctxT(t)
	tags := map[string]string{MetaOwner: "gs-dup", MetaCluster: "web", MetaNode: "web-1"}
	first := f.cloud.AddServer("gs-dup-web-1", tags, f.private.ID)
	second := f.cloud.AddServer("gs-dup-web-1", tags, f.private.ID)
	foreign := f.cloud.AddServer("hand-made", nil, f.private.ID)
	otherOwner := f.cloud.AddServer("gs-else-web-1", map[string]string{MetaOwner: "gs-else", MetaCluster: "web", MetaNode: "web-1"}, f.private.ID)

	list, err := p.List(ctx, "web")
	if err != nil || len(list) != 2 || list[0].NodeID != "web-1" || list[1].NodeID != "web-1" {
		t.Fatalf("List = %+v, %v; want both servers of web-1 and no foreign one", list, err)
	}
	m, err := p.Create(ctx, spec("web-1"))
	if err != nil || (m.ID != first && m.ID != second) {
		t.Fatalf("Create = %+v, %v; want one of the node's servers %s, %s", m, err, first, second)
	}
	// Nova's creation times have a resolution of a second: the oldest,
	// then the smallest ID, is kept.
	dropped := first
	if m.ID == first {
		dropped = second
	}
	if _, ok := f.cloud.Server(dropped); ok {
		t.Errorf("the duplicate %s was not deleted", dropped)
	}
	if again, err := p.Create(ctx, spec("web-1")); err != nil || again.ID != m.ID {
		t.Errorf("Create again = %+v, %v; want %s", again, err, m.ID)
	}
	for _, id := range []string{foreign, otherOwner} {
		if _, err := p.Get(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("Get of the foreign server %s = %v, want ErrNotFound", id, err)
		}
		if err := p.Delete(ctx, id); !errors.Is(err, provider.ErrNotFound) {
			t.Errorf("Delete of the foreign server %s = %v, want ErrNotFound", id, err)
		}
		if _, ok := f.cloud.Server(id); !ok {
			t.Errorf("the foreign server %s was deleted", id)
		}
	}
	if n := f.cloud.Count("compute", "POST", "^/servers$"); n != 0 {
		t.Errorf("%d create requests; the node had a server", n)
	}
}

// A node whose earlier server failed its build gets a new one.
func TestCreateReplacesAServerInError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := build(t, f.config(), "gs-err2")
	tags := map[string]string{MetaOwner: "gs-err2", MetaCluster: "web", MetaNode: "web-1"}
	failed := f.cloud.AddServer("gs-err2-web-1", tags, f.private.ID)
	f.cloud.SetServerStatus(failed, "ERROR", "No valid host was found.")
	_, err := p.Create(ctxT(t), spec("web-1"))
	if !errors.Is(err, provider.ErrCapacity) {
		t.Fatalf("Create with the node's server in ERROR = %v, want ErrCapacity (from its fault)", err)
	}
	if _, ok := f.cloud.Server(failed); ok {
		t.Fatal("the server in ERROR was kept")
	}
	m, err := p.Create(ctxT(t), spec("web-1"))
	if err != nil || m.ID == failed {
		t.Fatalf("the retry = %+v, %v; want a new server", m, err)
	}
}

func TestFloatingIP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := build(t, f.config(func(c *Config) { c.FloatingIPPool = "public" }), "gs-fip")
	ctx := ctxT(t)
	m, err := p.Create(ctx, spec("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	fips := f.cloud.FloatingIPs()
	s, _ := f.cloud.Server(m.ID)
	if len(fips) != 1 || m.Address != fips[0].Address+":8080" || m.Meta["floating_ip"] != fips[0].Address ||
		m.Meta["fixed_ip"] != s.FixedIPs["private"] || fips[0].FixedIP != s.FixedIPs["private"] {
		t.Fatalf("machine %+v, floating IPs %+v, server %+v", m, fips, s)
	}
	if !strings.Contains(fips[0].Description, "goscaler_node=web-1") {
		t.Errorf("the floating IP is not tagged: %q", fips[0].Description)
	}
	if again, err := p.Create(ctx, spec("web-1")); err != nil || again.Address != m.Address || len(f.cloud.FloatingIPs()) != 1 {
		t.Errorf("Create again = %+v, %v, %d floating IPs; want the same address and one IP", again, err, len(f.cloud.FloatingIPs()))
	}

	// Nova's addresses lag behind Neutron: the address comes from Neutron.
	f.cloud.HideFloatingIPs(true)
	got, err := p.Get(ctx, m.ID)
	list, lerr := p.List(ctx, "web")
	if err != nil || got.Address != m.Address || lerr != nil || len(list) != 1 || list[0].Address != m.Address {
		t.Errorf("with Nova not showing the floating IP: Get = %+v, %v; List = %+v, %v", got, err, list, lerr)
	}
	f.cloud.HideFloatingIPs(false)

	// Its server deleted behind goscaler's back, the node's floating IP
	// stays allocated: the next server of the node reuses it.
	f.cloud.RemoveServer(m.ID)
	m2, err := p.Create(ctx, spec("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	if fips := f.cloud.FloatingIPs(); len(fips) != 1 || m2.Address != m.Address {
		t.Errorf("after the server was replaced: %+v and floating IPs %+v; want the same IP reused", m2, fips)
	}
	if err := p.Delete(ctx, m2.ID); err != nil {
		t.Fatal(err)
	}
	if fips := f.cloud.FloatingIPs(); len(fips) != 0 {
		t.Errorf("Delete left floating IPs: %+v", fips)
	}
}

// List reads every page of servers.
func TestListPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cloud.SetPageSize(2)
	p := build(t, f.config(), "gs-pages")
	ctx := ctxT(t)
	for i := range 5 {
		f.cloud.AddServer(fmt.Sprintf("other-%d", i), nil, f.private.ID)
		if _, err := p.Create(ctx, spec(fmt.Sprintf("web-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	list, err := p.List(ctx, "web")
	if err != nil || len(list) != 5 {
		t.Fatalf("List = %d machines, %v; want 5", len(list), err)
	}
	if n := f.cloud.Count("compute", "GET", "^/servers/detail$"); n < 5+5*5/2 {
		t.Errorf("only %d list requests: paging not followed?", n)
	}
}

// Delete waits until Nova no longer has the server, or ctx is done.
func TestDeleteWaits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.cloud.SetDeleteTime(150 * time.Millisecond)
	p := build(t, f.config(), "gs-del")
	ctx := ctxT(t)
	m1, err := p.Create(ctx, spec("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Delete(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("Delete returned after %s, before the server was gone", took)
	}
	if _, ok := f.cloud.Server(m1.ID); ok {
		t.Error("the server still exists")
	}

	f.cloud.SetDeleteTime(time.Hour)
	m2, err := p.Create(ctx, spec("web-2"))
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := p.Delete(short, m2.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Delete with a 50ms context of a server that takes an hour = %v", err)
	}
	if s, ok := f.cloud.Server(m2.ID); !ok || !s.Deleting {
		t.Errorf("server %+v: want it deleting", s)
	}
}

// Concurrent creates of one node make one server; of different nodes, one each.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := build(t, f.config(), "gs-conc")
	ctx := ctxT(t)
	var wg sync.WaitGroup
	ids := make([]string, 12)
	errs := make([]error, 12)
	for i := range 12 {
		wg.Go(func() {
			node := "web-same"
			if i%2 == 1 {
				node = fmt.Sprintf("web-%d", i)
			}
			m, err := p.Create(ctx, spec(node))
			ids[i], errs[i] = m.ID, err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
	}
	if same := ofNode(f.cloud, "web-same"); len(same) != 1 {
		t.Errorf("%d servers for web-same", len(same))
	}
	if n := len(f.cloud.Servers()); n != 7 {
		t.Errorf("%d servers, want 7", n)
	}
	for i := 0; i < 12; i += 2 {
		if ids[i] != ids[0] {
			t.Errorf("Create %d returned %s, Create 0 %s", i, ids[i], ids[0])
		}
	}
}

// Credentials from the OS_* variables of an openrc file, and a Keystone
// that refuses them.
func TestCredentials(t *testing.T) {
	f := newFixture(t)
	for k, v := range f.cloud.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("OS_CLOUD", "")
	cfg := f.config(func(c *Config) { c.Cloud, c.CloudsFile = "", "" })
	p := build(t, cfg, "gs-env")
	if _, err := p.Create(ctxT(t), spec("web-1")); err != nil {
		t.Fatalf("with OS_* variables: %v", err)
	}
	t.Setenv("OS_PASSWORD", "wrong-password")
	_, err := build(t, cfg, "gs-env").List(ctxT(t), "web")
	if !errors.Is(err, provider.ErrConfig) || !strings.Contains(err.Error(), "refused the credentials of the OS_* environment variables") {
		t.Fatalf("with a wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), f.cloud.Password) {
		t.Errorf("the error quotes a password: %v", err)
	}
}

// The configuration is decoded strictly, with its Auth keys at the same level,
// and every problem is reported with its key.
func TestConfig(t *testing.T) {
	t.Parallel()
	good := `{cloud: prod, flavor: m1.small, image: debian, network: private, port: 80,
  key_name: ops, security_groups: [web], user_data: "#!/bin/sh\necho {{.NodeID}}",
  metadata: {team: a}, floating_ip_pool: public, build_timeout: 15m, poll_interval: 5s,
  region: R, auth_url: "https://k:5000/v3", endpoints: {compute: "https://nova/v2.1"}, retries: 2}`
	if _, err := decode(good); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	tests := []struct{ yaml, want string }{
		{`{flavor: a, image: b, port: 80, flavour: x}`, `unknown key "flavour"; valid keys here: auth_url, availability_zone, build_timeout, cloud, clouds_file`},
		{`{image: b, port: 80}`, "flavor: required"},
		{`{flavor: a, port: 80}`, "image: required"},
		{`{flavor: a, image: b}`, "port: required"},
		{`{flavor: a, image: b, port: 70000}`, "port: required: the TCP port the nodes serve on, from 1 to 65535 (got 70000)"},
		{`{flavor: a, image: b, port: 80, user_data: "{{.x"}`, "user_data: template"},
		{`{flavor: a, image: b, port: 80, metadata: {goscaler_node: x}}`, "metadata.goscaler_node: goscaler_* keys are reserved"},
		{`{flavor: a, image: b, port: 80, security_groups: [""]}`, "security_groups[0]: must not be empty"},
		{`{flavor: a, image: b, port: 80, build_timeout: -1s}`, "build_timeout"},
		{`{flavor: a, image: b, port: 80, endpoints: {nova: "http://x"}}`, "endpoints.nova: unknown service type"},
		{`{flavor: a, image: b, port: 80, auth_url: keystone}`, `auth_url: "keystone" is not an http:// or https:// URL`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			_, err := decode(tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := (&Config{Flavor: "a", Image: "b", Port: 80}).New(provider.Env{}); !errors.Is(err, provider.ErrConfig) {
		t.Errorf("New without an owner: %v", err)
	}
}

func decode(src string) (provider.Config, error) {
	var node yaml.Node
	if err := yaml.Unmarshal([]byte(src), &node); err != nil {
		return nil, err
	}
	return provider.Registry.Decode(TypeName, &node)
}

// A configuration changed since the servers were made (the network renamed,
// the floating IP pool removed) does not stop their deletion, floating IPs
// included.
func TestDeleteAfterAConfigChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := ctxT(t)
	m, err := build(t, f.config(func(c *Config) { c.FloatingIPPool = "public" }), "gs-change").Create(ctx, spec("web-1"))
	if err != nil {
		t.Fatal(err)
	}
	changed := build(t, f.config(func(c *Config) { c.Network = "renamed" }), "gs-change")
	if err := changed.Delete(ctx, m.ID); err != nil {
		t.Fatalf("Delete with the network setting changed: %v", err)
	}
	if n, fips := len(f.cloud.Servers()), f.cloud.FloatingIPs(); n != 0 || len(fips) != 0 {
		t.Errorf("%d servers and floating IPs %+v left", n, fips)
	}
}
