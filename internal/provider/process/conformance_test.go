package process

import (
	"testing"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/providertest"
)

// TestConformance runs the provider contract's suite against real node
// processes (this test binary in helper mode, serving HTTP).
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, func(t *testing.T, owner string) provider.Provider {
		t.Cleanup(func() { killOwner(t, owner) })
		cfg := serveConfig("serve")
		cfg.StopTimeout = 5e9
		p, err := cfg.New(provider.Env{Owner: owner, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}
