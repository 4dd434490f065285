// Package awsclient holds what goscaler's AWS plugins (the aws provider, the
// elb and elbv2 load balancers) share: their connection settings, how an SDK
// configuration is loaded from them, and how API errors are told apart.
//
// Credentials and, by default, the region come from the SDK's default chain
// (environment variables, the shared config and credentials files, SSO, the
// container or instance role): never from goscaler's configuration, and never
// logged. EndpointURL points a client at any compatible endpoint (a local
// emulator, a VPC endpoint). Throttling, 5xx answers and connection errors are
// retried by the SDK's standard retryer: exponential backoff with full
// jitter, at most MaxAttempts attempts, MaxBackoff between two.
package awsclient

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go"

	"github.com/goscaler/goscaler/internal/plugin"
)

// Defaults of the zero-valued Settings fields.
const (
	DefaultMaxAttempts    = 5
	DefaultMaxBackoff     = 20 * time.Second
	DefaultRequestTimeout = 30 * time.Second
)

// Settings are the connection settings of an AWS plugin; its config embeds
// them inline, so their keys sit next to the plugin's own.
type Settings struct {
	// Region is the AWS region; default the SDK's (AWS_REGION, the profile).
	Region string `yaml:"region" json:"region,omitempty"`
	// EndpointURL replaces the service's endpoint (http or https URL).
	EndpointURL string `yaml:"endpoint_url" json:"endpoint_url,omitempty"`
	// MaxAttempts bounds the attempts of one API call (default 5; 1: no retry).
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts,omitempty"`
	// MaxBackoff bounds the wait between two attempts (default 20s).
	MaxBackoff plugin.Duration `yaml:"max_backoff" json:"max_backoff,omitempty"`
	// RequestTimeout bounds one attempt (default 30s); a timed-out attempt is
	// retried like a connection error.
	RequestTimeout plugin.Duration `yaml:"request_timeout" json:"request_timeout,omitempty"`

	// LoadOptions are extra options for config.LoadDefaultConfig. They are
	// never read from a file: tests set them (static fake credentials, no
	// shared files, no instance metadata).
	LoadOptions []func(*config.LoadOptions) error `yaml:"-" json:"-"`
}

// Validate returns every problem of the settings, each naming its key.
func (s *Settings) Validate() []error {
	var errs []error
	if s.Region != "" && strings.ContainsAny(s.Region, " /\t\n") {
		errs = append(errs, fmt.Errorf("region: %q is not a region name such as eu-west-1", s.Region))
	}
	if s.EndpointURL != "" {
		u, err := url.Parse(s.EndpointURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("endpoint_url: %q is not a URL: %w", s.EndpointURL, err))
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint_url: %q must be an http:// or https:// URL with a host", s.EndpointURL))
		case u.User != nil:
			errs = append(errs, errors.New("endpoint_url: must not hold credentials: they come from the AWS default chain"))
		}
	}
	if s.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("max_attempts: must not be negative, got %d", s.MaxAttempts))
	}
	if s.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("max_backoff: must not be negative, got %s", s.MaxBackoff))
	}
	if s.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request_timeout: must not be negative, got %s", s.RequestTimeout))
	}
	return errs
}

// Load builds the SDK configuration: the default chain plus the settings'
// region, retryer and per-attempt timeout. It fails when no region is known.
// Nothing is sent: credentials are resolved at the first call.
func (s *Settings) Load(ctx context.Context) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(s.retryer),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(s.requestTimeout())),
	}
	if s.Region != "" {
		opts = append(opts, config.WithRegion(s.Region))
	}
	opts = append(opts, s.LoadOptions...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading the AWS configuration (environment, shared files): %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, errors.New("no AWS region: set region: here, or AWS_REGION (or a profile's region) in the server's environment")
	}
	return cfg, nil
}

// BaseEndpoint is the endpoint override for a client's Options (nil: the
// service's regional endpoint).
func (s *Settings) BaseEndpoint() *string {
	if s.EndpointURL == "" {
		return nil
	}
	return aws.String(s.EndpointURL)
}

func (s *Settings) requestTimeout() time.Duration {
	if s.RequestTimeout > 0 {
		return s.RequestTimeout.D()
	}
	return DefaultRequestTimeout
}

// NoRetryCodes are API error codes the SDK must not retry although their
// HTTP status is 5xx (EC2 answers InsufficientInstanceCapacity with a 500):
// retrying at once cannot help; the controller backs off instead.
var NoRetryCodes = []string{
	"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
	"InsufficientCapacity", "InsufficientAddressCapacity", "InsufficientCapacityOnHost",
}

// retryer is the SDK's standard retryer (exponential backoff with jitter,
// throttling and 5xx and connection errors retried) with the settings' bounds.
func (s *Settings) retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = DefaultMaxAttempts
		if s.MaxAttempts > 0 {
			o.MaxAttempts = s.MaxAttempts
		}
		o.MaxBackoff = DefaultMaxBackoff
		if s.MaxBackoff > 0 {
			o.MaxBackoff = s.MaxBackoff.D()
		}
		o.Backoff = retry.NewExponentialJitterBackoff(o.MaxBackoff)
		noRetry := map[string]bool{}
		for _, c := range NoRetryCodes {
			noRetry[c] = true
		}
		o.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if code, ok := Code(err); ok && noRetry[code] {
				return aws.FalseTernary
			}
			return aws.UnknownTernary
		})}, o.Retryables...)
	})
}

// Code returns the API error code of err ("InvalidAMIID.NotFound", …).
func Code(err error) (string, bool) {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() != "" {
		return ae.ErrorCode(), true
	}
	return "", false
}

// Status returns the HTTP status of the answer that made err (0 if none came).
func Status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// Message is err's API message (the part after the code), or err's text.
func Message(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if m := ae.ErrorMessage(); m != "" {
			return ae.ErrorCode() + ": " + m
		}
		return ae.ErrorCode()
	}
	return err.Error()
}

// Transient reports whether err is worth another try later: throttling, a 5xx
// answer, a timeout, a connection error, the retry quota or attempts
// exhausted on such an error. Context cancellation is not transient.
func Transient(err error) bool {
	var invalid *smithy.InvalidParamsError
	if err == nil || errors.Is(err, context.Canceled) || NoCredentials(err) || errors.As(err, &invalid) {
		return false
	}
	if code, ok := Code(err); ok {
		switch code {
		case "RequestLimitExceeded", "Throttling", "ThrottlingException", "ThrottledException",
			"RequestThrottledException", "TooManyRequestsException", "RequestThrottled", "SlowDown",
			"EC2ThrottledException", "InternalError", "InternalFailure", "ServiceUnavailable",
			"Unavailable", "RequestTimeout", "RequestTimeoutException", "ServerInternal":
			return true
		}
		return Status(err) >= 500
	}
	// A 5xx answer, or none: a connection error, a timeout, the deadline of ctx.
	s := Status(err)
	return s == 0 || s >= 500
}

// NoCredentials reports whether err is the SDK failing to find or refresh
// credentials (before any request was sent): a configuration problem of the
// server's environment, not of the cloud.
func NoCredentials(err error) bool {
	// The SDK wraps this failure in plain fmt errors, without a type.
	return err != nil && strings.Contains(err.Error(), "get identity: ")
}
