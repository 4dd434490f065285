package openstack

import (
	"fmt"
	"testing"

	"github.com/goscaler/goscaler/internal/provider/openstack/openstacktest"
)

// BenchmarkList measures List in a project of 1000 servers, 20 of them the
// cluster's: Nova cannot filter on metadata, so every page of the project's
// servers is read and decoded (against the in-process fake, so this is
// goscaler's and gophercloud's own cost, without the cloud's latency).
func BenchmarkList(b *testing.B) {
	c := openstacktest.New()
	defer c.Close()
	c.AddFlavor("m1.small")
	c.AddImage("debian-12")
	n := c.AddNetwork("private", "10.0.0.0/16")
	for i := range 1000 {
		meta := map[string]string{MetaOwner: "someone-else", MetaCluster: "web", MetaNode: fmt.Sprintf("web-%d", i)}
		if i%50 == 0 {
			meta[MetaOwner] = "gs-bench"
		}
		c.AddServer(fmt.Sprintf("server-%d", i), meta, n.ID)
	}
	f := &fixture{cloud: c}
	f.clouds = writeClouds(b, c)
	p := build(b, f.config(), "gs-bench")
	ctx := b.Context()
	if _, err := p.List(ctx, "web"); err != nil { // authenticate, resolve
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ms, err := p.List(ctx, "web")
		if err != nil || len(ms) != 20 {
			b.Fatalf("List = %d machines, %v", len(ms), err)
		}
	}
}
