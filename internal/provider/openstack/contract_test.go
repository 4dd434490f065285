package openstack

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
)

// The contract tests run against the in-process fake cloud, or against any
// OpenStack-compatible endpoint when GOSCALER_TEST_OPENSTACK_CLOUD names an
// entry of clouds.yaml (found as the openstack command finds it, or through
// OS_CLIENT_CONFIG_FILE). GOSCALER_TEST_OPENSTACK_FLAVOR, _IMAGE and _NETWORK
// then name what to boot; the test makes and deletes two servers tagged with a
// throw-away owner.
const (
	envCloud   = "GOSCALER_TEST_OPENSTACK_CLOUD"
	envFlavor  = "GOSCALER_TEST_OPENSTACK_FLAVOR"
	envImage   = "GOSCALER_TEST_OPENSTACK_IMAGE"
	envNetwork = "GOSCALER_TEST_OPENSTACK_NETWORK"
)

// contractConfig returns the configuration of the contract tests and, for
// the fake, a function that counts the create requests (nil otherwise).
func contractConfig(t *testing.T) (*Config, func() int) {
	t.Helper()
	if cloud := os.Getenv(envCloud); cloud != "" {
		cfg := &Config{Auth: osapi.Auth{Cloud: cloud}, Flavor: os.Getenv(envFlavor), Image: os.Getenv(envImage),
			Network: os.Getenv(envNetwork), Port: 22, PollInterval: plugin.Duration(2 * time.Second)}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s is set, but: %v (set %s, %s and %s)", envCloud, err, envFlavor, envImage, envNetwork)
		}
		t.Logf("running against the cloud %q of clouds.yaml", cloud)
		return cfg, nil
	}
	f := newFixture(t)
	return f.config(), func() int { return f.cloud.Count("compute", "POST", "^/servers$") }
}

// TestProviderContract holds the provider contract (see package provider):
// create is idempotent per node, every machine is tagged and listed by owner
// and cluster, a gone machine is ErrNotFound for Get and Delete.
func TestProviderContract(t *testing.T) {
	t.Parallel()
	cfg, creates := contractConfig(t)
	owner := "gs-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	p := build(t, cfg, owner)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cluster := "contract"
	spec := func(node string) provider.NodeSpec { return provider.NodeSpec{Cluster: cluster, NodeID: node} }
	t.Cleanup(func() {
		// Against a real cloud, leave nothing behind whatever happened.
		ms, _ := p.List(context.Background(), cluster)
		for _, m := range ms {
			_ = p.Delete(context.Background(), m.ID)
		}
	})

	m1, err := p.Create(ctx, spec(cluster+"-1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if m1.ID == "" || m1.Cluster != cluster || m1.NodeID != cluster+"-1" || m1.State != provider.MachineRunning || m1.Address == "" {
		t.Fatalf("Create returned %+v, want a running, tagged machine with an address", m1)
	}
	again, err := p.Create(ctx, spec(cluster+"-1"))
	if err != nil || again.ID != m1.ID {
		t.Fatalf("Create again for the same node = %+v, %v; want the same machine %s", again, err, m1.ID)
	}
	got, err := p.Get(ctx, m1.ID)
	if err != nil || got.ID != m1.ID || got.Address != m1.Address || got.NodeID != m1.NodeID || got.State != provider.MachineRunning {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, m1)
	}
	m2, err := p.Create(ctx, spec(cluster+"-2"))
	if err != nil || m2.ID == m1.ID {
		t.Fatalf("Create of a second node = %+v, %v", m2, err)
	}
	list, err := p.List(ctx, cluster)
	if err != nil || len(list) != 2 || list[0].ID != m1.ID || list[1].ID != m2.ID {
		t.Fatalf("List = %+v, %v; want %s and %s, by node", list, err, m1.ID, m2.ID)
	}
	if creates != nil && creates() != 2 {
		t.Errorf("%d create requests for two nodes", creates())
	}
	if other, err := p.List(ctx, "another-cluster"); err != nil || len(other) != 0 {
		t.Errorf("List of another cluster = %+v, %v; want nothing", other, err)
	}
	stranger := build(t, cfg, owner+"-other")
	if theirs, err := stranger.List(ctx, cluster); err != nil || len(theirs) != 0 {
		t.Errorf("another owner lists %+v, %v; want nothing", theirs, err)
	}
	if _, err := stranger.Get(ctx, m1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("another owner's Get = %v, want ErrNotFound", err)
	}
	if err := stranger.Delete(ctx, m1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("another owner's Delete = %v, want ErrNotFound", err)
	}

	if err := p.Delete(ctx, m1.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := p.Get(ctx, m1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := p.Delete(ctx, m1.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Delete of a deleted machine = %v, want ErrNotFound", err)
	}
	if _, err := p.Get(ctx, "00000000-0000-4000-8000-000000000000"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get of an unknown ID = %v, want ErrNotFound", err)
	}
	list, err = p.List(ctx, cluster)
	if err != nil || len(list) != 1 || list[0].ID != m2.ID {
		t.Fatalf("List after deleting %s = %+v, %v", m1.ID, list, err)
	}
	if err := p.Delete(ctx, m2.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if list, err := p.List(ctx, cluster); err != nil || len(list) != 0 {
		t.Fatalf("List after deleting everything = %+v, %v", list, err)
	}
}
