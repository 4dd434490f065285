package openstack

import (
	"testing"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/providertest"
)

// TestConformance runs the shared provider contract suite against the fake
// cloud (or the cloud named by GOSCALER_TEST_OPENSTACK_CLOUD).
func TestConformance(t *testing.T) {
	t.Parallel()
	cfg, _ := contractConfig(t)
	providertest.Run(t, func(t *testing.T, owner string) provider.Provider {
		return build(t, cfg, owner)
	})
}
