package awsclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		s    awsclient.Settings
		want []string
	}{
		{awsclient.Settings{}, nil},
		{awsclient.Settings{Region: "eu-west-1", EndpointURL: "https://ec2.eu-west-1.amazonaws.com", MaxAttempts: 1}, nil},
		{awsclient.Settings{Region: "eu west", EndpointURL: "ec2.local", MaxAttempts: -1, MaxBackoff: -1, RequestTimeout: -1},
			[]string{"region:", "endpoint_url: \"ec2.local\" must be an http:// or https:// URL", "max_attempts", "max_backoff", "request_timeout"}},
		{awsclient.Settings{EndpointURL: "http://key:secret@127.0.0.1"}, []string{"endpoint_url: must not hold credentials"}},
	}
	for _, tc := range cases {
		errs := errors.Join(tc.s.Validate()...)
		if len(tc.want) == 0 && errs != nil {
			t.Errorf("Validate(%+v) = %v", tc.s, errs)
		}
		for _, w := range tc.want {
			if errs == nil || !strings.Contains(errs.Error(), w) {
				t.Errorf("Validate(%+v) = %v, want %q", tc.s, errs, w)
			}
		}
		if errs != nil && strings.Contains(errs.Error(), "secret") {
			t.Errorf("Validate echoes the endpoint's password: %v", errs)
		}
	}
}

func client(t *testing.T, s awsclient.Settings) *ec2.Client {
	t.Helper()
	cfg, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = s.BaseEndpoint() })
}

// TestRetryer: the settings bound the SDK's retries and each attempt; errors
// are told apart.
func TestRetryer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	s := e.Settings()
	s.MaxAttempts = 3
	s.RequestTimeout = plugin.Duration(200 * time.Millisecond)
	c := client(t, s)
	describe := func() error {
		_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		return err
	}
	cases := []struct {
		name      string
		fault     awstest.Fault
		n         int
		calls     int
		ok        bool
		transient bool
		code      string
	}{
		{"500 then ok", awstest.Fault{Code: "InternalError"}, 2, 3, true, false, ""},
		{"throttled out", awstest.Fault{Code: "RequestLimitExceeded"}, 5, 3, false, true, "RequestLimitExceeded"},
		{"hangs out", awstest.Fault{Delay: 2 * time.Second}, 5, 3, false, true, ""},
		{"dropped once", awstest.Fault{Drop: true}, 1, 2, true, false, ""},
		{"client error", awstest.Fault{Code: "InvalidParameterValue"}, 1, 1, false, false, "InvalidParameterValue"},
		{"capacity not retried", awstest.Fault{Code: "InsufficientInstanceCapacity"}, 5, 1, false, true, "InsufficientInstanceCapacity"},
	}
	for _, tc := range cases { // sequential: they share the fake's call log
		fake.FailNext("DescribeInstances", tc.n, tc.fault)
		before := len(fake.CallsOf("DescribeInstances"))
		err := describe()
		calls := len(fake.CallsOf("DescribeInstances")) - before
		if (err == nil) != tc.ok || calls != tc.calls {
			t.Errorf("%s: err %v after %d calls; want ok=%v after %d", tc.name, err, calls, tc.ok, tc.calls)
		}
		if got := awsclient.Transient(err); err != nil && got != tc.transient {
			t.Errorf("%s: Transient(%v) = %v", tc.name, err, got)
		}
		if code, _ := awsclient.Code(err); code != tc.code {
			t.Errorf("%s: Code = %q, want %q", tc.name, code, tc.code)
		}
		fake.ClearFaults()
	}
	if awsclient.Transient(context.Canceled) || awsclient.Transient(nil) {
		t.Error("cancellation and nil are not transient")
	}
	if awsclient.Status(errors.New("x")) != 0 || awsclient.Message(errors.New("plain")) != "plain" {
		t.Error("Status and Message of a plain error")
	}
}

// TestLoad fails without a region and honours the settings' region.
func TestLoad(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	s := awsclient.Settings{LoadOptions: awstest.LoadOptions("")}
	if _, err := s.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "no AWS region") {
		t.Errorf("Load without a region = %v", err)
	}
	s.Region = "eu-central-1"
	s.LoadOptions = awstest.LoadOptions("")
	cfg, err := s.Load(context.Background())
	if err != nil || cfg.Region != "eu-central-1" {
		t.Errorf("Load = %q, %v", cfg.Region, err)
	}
	if s.BaseEndpoint() != nil || awssdk.ToString((&awsclient.Settings{EndpointURL: "http://x"}).BaseEndpoint()) != "http://x" {
		t.Error("BaseEndpoint")
	}
}
