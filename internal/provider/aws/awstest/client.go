package awstest

import (
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/plugin"
)

// The static credentials tests sign with: fake, accepted by the fake and by
// emulators such as moto.
const (
	AccessKeyID     = "AKIDGOSCALERTEST0001"
	SecretAccessKey = "goscaler-test-secret"
)

// LoadOptions isolate an SDK configuration from the machine it runs on:
// static fake credentials, the test region, no shared config or credentials
// files, no instance metadata service. Nothing can reach a real account.
func LoadOptions(region string) []func(*config.LoadOptions) error {
	return []func(*config.LoadOptions) error{
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		config.WithRegion(region),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithSharedConfigProfile("default"),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
	}
}

// Settings are connection settings for e: its endpoint and region, the
// isolating LoadOptions, and quick retries (20 ms at most between attempts).
func (e Env) Settings() awsclient.Settings {
	return awsclient.Settings{
		Region:      e.Region,
		EndpointURL: e.Endpoint,
		MaxAttempts: 4,
		MaxBackoff:  plugin.Duration(20e6),
		LoadOptions: LoadOptions(e.Region),
	}
}

// Environ is the environment a goscaler process needs to reach e through
// the AWS default chain (for tests that run the real binary): the fake
// credentials and region, and no shared files or instance metadata.
func (e Env) Environ() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + e.Region,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
