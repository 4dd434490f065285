package fake_test

import (
	"testing"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/fake"
	"github.com/goscaler/goscaler/internal/provider/providertest"
)

// TestConformance runs the provider contract's suite against the fake: every
// provider of one subtest shares the subtest's instance, as a cloud is shared.
func TestConformance(t *testing.T) {
	t.Parallel()
	providertest.Run(t, func(t *testing.T, owner string) provider.Provider {
		name := "conformance/" + t.Name()
		t.Cleanup(func() { fake.Forget(name) })
		p, err := (&fake.Config{Instance: name}).New(provider.Env{Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		return p
	})
}
