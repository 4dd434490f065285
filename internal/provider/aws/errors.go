package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/provider"
)

// EC2 error codes by the provider sentinel they map to. A code ending in "."
// is a prefix ("InvalidAMIID." covers InvalidAMIID.NotFound and .Malformed).
var (
	capacityCodes = []string{
		"InsufficientInstanceCapacity", "InsufficientHostCapacity", "InsufficientReservedInstanceCapacity",
		"InsufficientCapacity", "InsufficientAddressCapacity", "InsufficientCapacityOnHost",
		"InsufficientFreeAddressesInSubnet",
	}
	quotaCodes = []string{
		"InstanceLimitExceeded", "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "ResourceLimitExceeded",
		"VolumeLimitExceeded", "AddressLimitExceeded", "PendingVerification",
	}
	configCodes = []string{
		"InvalidAMIID.", "InvalidSubnetID.", "InvalidSubnet", "InvalidGroup.", "InvalidGroupId.", "InvalidKeyPair.",
		"InvalidLaunchTemplateId.", "InvalidLaunchTemplateName.", "InvalidParameter", "InvalidParameterValue",
		"InvalidParameterCombination", "InvalidUserData.", "InvalidBlockDeviceMapping", "InvalidInstanceType",
		"InvalidIamInstanceProfile.", "MissingParameter", "UnknownParameter", "Unsupported", "UnsupportedOperation",
		"UnauthorizedOperation", "AuthFailure", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"OptInRequired", "Blocked", "IdempotentParameterMismatch", "InvalidAction",
	}
)

func matches(code string, list []string) bool {
	for _, c := range list {
		if code == c || strings.HasSuffix(c, ".") && strings.HasPrefix(code, c) {
			return true
		}
	}
	return false
}

// Classify maps an error of the SDK to a provider sentinel (nil when none
// fits) and a hint for the operator ("" when the error says it all).
func Classify(err error) (sentinel error, hint string) { //nolint:staticcheck // the sentinel is the result, not a failure
	if err == nil {
		return nil, ""
	}
	if errors.Is(err, provider.ErrNotFound) {
		return provider.ErrNotFound, ""
	}
	if awsclient.NoCredentials(err) {
		return provider.ErrConfig, "no usable AWS credentials in the server's environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or give the machine an instance role"
	}
	code, ok := awsclient.Code(err)
	switch {
	case ok && matches(code, capacityCodes):
		return provider.ErrCapacity, "AWS has no capacity for this instance type in this zone now; another instance type or subnet may have some"
	case ok && matches(code, quotaCodes):
		return provider.ErrQuota, "an account limit is reached: ask AWS for a higher quota or lower the cluster's max"
	case ok && code == "IdempotentParameterMismatch":
		return provider.ErrConfig, "the provider configuration changed since this node's first launch attempt: the node fails and its replacement uses the new configuration"
	case ok && (code == "UnauthorizedOperation" || code == "AuthFailure"):
		return provider.ErrConfig, "the credentials lack a permission this provider needs (see docs/aws.md for the IAM policy)"
	case ok && matches(code, configCodes):
		return provider.ErrConfig, "fix the provider configuration"
	case awsclient.Transient(err) || errors.Is(err, context.DeadlineExceeded):
		return provider.ErrTransient, ""
	}
	return nil, ""
}

// fail wraps an SDK error with what was being done and its sentinel.
func (p *Provider) fail(what string, err error) error {
	kind, hint := Classify(err)
	if hint != "" {
		hint = " (" + hint + ")"
	}
	switch {
	case kind == nil:
		return fmt.Errorf("aws: %s: %w%s", what, err, hint)
	case errors.Is(err, kind):
		return fmt.Errorf("aws: %s: %w%s", what, err, hint)
	default:
		return fmt.Errorf("%w: aws: %s: %w%s", kind, what, err, hint)
	}
}
