package aws

import (
	"testing"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
	"github.com/goscaler/goscaler/internal/provider/providertest"
)

// TestConformance runs the shared provider contract suite against the fake
// EC2 (or GOSCALER_TEST_AWS_ENDPOINT).
func TestConformance(t *testing.T) {
	t.Parallel()
	e := awstest.Setup(t, awstest.Options{})
	providertest.Run(t, func(t *testing.T, owner string) provider.Provider {
		return newProvider(t, testConfig(e), owner)
	})
}
