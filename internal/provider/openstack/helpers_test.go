package openstack

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/openstack/openstacktest"
)

// fixture is a fake cloud with a flavor, an image, a tenant network, a
// floating IP pool and a key pair, and a clouds.yaml that names it "fake".
type fixture struct {
	cloud   *openstacktest.Cloud
	flavor  openstacktest.Flavor
	image   openstacktest.ImageInfo
	private openstacktest.NetworkInfo
	public  openstacktest.NetworkInfo
	clouds  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := openstacktest.New()
	t.Cleanup(c.Close)
	f := &fixture{cloud: c, flavor: c.AddFlavor("m1.small"), image: c.AddImage("debian-12"),
		private: c.AddNetwork("private", "10.0.0.0/24"), public: c.AddExternalNetwork("public", "192.0.2.0/24")}
	c.AddKeyPair("ops")
	f.clouds = writeClouds(t, c)
	return f
}

// writeClouds writes a clouds.yaml naming c "fake" and returns its path.
func writeClouds(t testing.TB, c *openstacktest.Cloud) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clouds.yaml")
	if err := os.WriteFile(p, []byte(c.CloudsYAML("fake")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// config is a valid configuration for the fixture's cloud with fast polls
// and retries; mods change it.
func (f *fixture) config(mods ...func(*Config)) *Config {
	c := &Config{
		Auth: osapi.Auth{Cloud: "fake", CloudsFile: f.clouds, RetryDelay: plugin.Duration(time.Millisecond),
			MaxRetryDelay: plugin.Duration(20 * time.Millisecond), RequestTimeout: plugin.Duration(3 * time.Second)},
		Flavor: "m1.small", Image: "debian-12", Network: "private", Port: 8080,
		PollInterval: plugin.Duration(5 * time.Millisecond), BuildTimeout: plugin.Duration(5 * time.Second),
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func build(t testing.TB, cfg *Config, owner string) *Provider {
	t.Helper()
	p, err := cfg.New(provider.Env{Owner: owner})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p.(*Provider)
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ofNode returns the servers of the fake tagged for node.
func ofNode(c *openstacktest.Cloud, node string) []openstacktest.Server {
	var out []openstacktest.Server
	for _, s := range c.Servers() {
		if s.Metadata[MetaNode] == node {
			out = append(out, s)
		}
	}
	return out
}

func spec(node string) provider.NodeSpec {
	return provider.NodeSpec{Cluster: "web", NodeID: node, Vars: map[string]string{"Cluster": "web", "NodeID": node}}
}
