package awstest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/plugin"
)

// The static credentials tests sign with: fake, accepted by the fake and by
// emulators such as moto.
const (
	AccessKeyID     = "AKIDGOSCALERTEST0001"
	SecretAccessKey = "goscaler-test-secret" //nolint:gosec // a fake key for the fake endpoint
)

// LoadOptions isolate an SDK configuration from the machine it runs on:
// static fake credentials, the test region (if not ""), no shared config or credentials
// files, no instance metadata service. Nothing can reach a real account.
func LoadOptions(region string) []func(*config.LoadOptions) error {
	opts := []func(*config.LoadOptions) error{
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
	}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	return opts
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

// EC2 is an SDK client for e, for tests that set up or inspect what the
// code under test made (a launch template, volume tags, …).
func (e Env) EC2(t testing.TB) *ec2.Client {
	t.Helper()
	s := e.Settings()
	cfg, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = s.BaseEndpoint() })
}

// ELB is a classic Elastic Load Balancing client for e.
func (e Env) ELB(t testing.TB) *elb.Client {
	t.Helper()
	s := e.Settings()
	cfg, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return elb.NewFromConfig(cfg, func(o *elb.Options) { o.BaseEndpoint = s.BaseEndpoint() })
}

// ELBv2 is an Elastic Load Balancing v2 client for e.
func (e Env) ELBv2(t testing.TB) *elbv2.Client {
	t.Helper()
	s := e.Settings()
	cfg, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return elbv2.NewFromConfig(cfg, func(o *elbv2.Options) { o.BaseEndpoint = s.BaseEndpoint() })
}
