// Package aws is the "aws" provider: each node is an EC2 instance, launched
// with RunInstances from a launch template or from an AMI, found with
// DescribeInstances and removed with TerminateInstances (aws-sdk-go-v2).
//
// Every instance and its volumes are tagged goscaler:owner (the installation),
// goscaler:cluster and goscaler:node, so that List finds them after a
// restart. Create is idempotent twice over: it first looks for an instance
// tagged with the node, and RunInstances carries a ClientToken derived from
// the owner, the cluster and the node ID, so a retry after a crash or a lost
// answer returns the instance the first call made instead of a second one.
//
// Instance states map to machine states: pending and running are running,
// stopping and stopped are stopped, shutting-down and terminated are gone
// (Get and Delete return provider.ErrNotFound; List leaves them out). EC2
// errors map to the provider's sentinels: InsufficientInstanceCapacity and
// its kin to ErrCapacity, InstanceLimitExceeded and VcpuLimitExceeded to
// ErrQuota, throttling, 5xx and lost connections (after the SDK's own
// retries) to ErrTransient, and bad AMI, subnet, security group, key pair,
// launch template, parameters or permissions to ErrConfig.
//
// Credentials and the default region come from the AWS default chain; see
// internal/awsclient and docs/aws.md.
package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
)

// TypeName is the `provider.type` of this provider.
const TypeName = "aws"

// Tags every instance and volume carries.
const (
	TagOwner   = "goscaler:owner"
	TagCluster = "goscaler:cluster"
	TagNode    = "goscaler:node"
)

// Defaults of the zero-valued Config fields.
const (
	DefaultPort           = 80
	DefaultPollInterval   = 2 * time.Second
	DefaultAddressTimeout = 3 * time.Minute
	// MaxUserData is EC2's limit on user data, before base64.
	MaxUserData = 16384
)

// Address kinds.
const (
	AddressPrivate = "private"
	AddressPublic  = "public"
)

func init() {
	provider.Registry.Register(TypeName, func() provider.Config { return &Config{} })
}

// LaunchTemplate names an EC2 launch template by ID or name.
type LaunchTemplate struct {
	ID   string `yaml:"id" json:"id,omitempty"`
	Name string `yaml:"name" json:"name,omitempty"`
	// Version is a version number, $Latest or $Default (default: the
	// template's default version).
	Version string `yaml:"version" json:"version,omitempty"`
}

// Config is the configuration of the "aws" provider.
type Config struct {
	// Settings are the region, endpoint_url and retry settings.
	awsclient.Settings `yaml:",inline"`

	// LaunchTemplate launches from a template; the fields below override it.
	LaunchTemplate *LaunchTemplate `yaml:"launch_template" json:"launch_template,omitempty"`
	// ImageID is the AMI (required without a launch template).
	ImageID string `yaml:"image_id" json:"image_id,omitempty"`
	// InstanceType such as t3.micro (required without a launch template).
	InstanceType string `yaml:"instance_type" json:"instance_type,omitempty"`
	// SubnetID places the instances (default: the default VPC's subnet).
	SubnetID string `yaml:"subnet_id" json:"subnet_id,omitempty"`
	// SecurityGroupIDs of the instances.
	SecurityGroupIDs []string `yaml:"security_group_ids" json:"security_group_ids,omitempty"`
	// KeyName is the EC2 key pair for SSH.
	KeyName string `yaml:"key_name" json:"key_name,omitempty"`
	// IAMInstanceProfile is an instance profile name or ARN.
	IAMInstanceProfile string `yaml:"iam_instance_profile" json:"iam_instance_profile,omitempty"`
	// UserData is a template over the node's variables ({{.NodeID}},
	// {{.Cluster}}, {{.Port}}, the cluster's vars), typically a cloud-init
	// document; it is sent base64-encoded.
	UserData string `yaml:"user_data" json:"user_data,omitempty"`
	// Tags are extra tags of the instances and volumes; values are templates.
	Tags map[string]string `yaml:"tags" json:"tags,omitempty"`
	// Address is which IP forms a node's address: private (default) or public.
	Address string `yaml:"address" json:"address,omitempty"`
	// Port is where nodes serve (default 80); a node's address is IP:port.
	Port int `yaml:"port" json:"port,omitempty"`
	// PollInterval is how often Create and Delete look at an instance they
	// wait for (default 2s).
	PollInterval plugin.Duration `yaml:"poll_interval" json:"poll_interval,omitempty"`
	// AddressTimeout bounds how long Create waits for a new instance's
	// address (default 3m).
	AddressTimeout plugin.Duration `yaml:"address_timeout" json:"address_timeout,omitempty"`
}

var (
	amiRe      = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	subnetRe   = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	groupRe    = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	templateRe = regexp.MustCompile(`^lt-[0-9a-f]{17}$`)
	instTypeRe = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	profileRe  = regexp.MustCompile(`^(arn:aws[a-z-]*:iam::\d{12}:instance-profile/)?[\w+=,.@/-]{1,128}$`)
)

// compiled is a Config with its templates parsed and defaults applied.
type compiled struct {
	Config
	userData *plugin.Template
	tags     map[string]*plugin.Template
	port     int
	poll     time.Duration
	addrWait time.Duration
}

var _ plugin.Validator = (*Config)(nil)

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c *Config) compile() (compiled, error) {
	out := compiled{Config: *c, port: DefaultPort, poll: DefaultPollInterval, addrWait: DefaultAddressTimeout}
	errs := c.Settings.Validate()
	if lt := c.LaunchTemplate; lt != nil {
		switch {
		case lt.ID == "" && lt.Name == "":
			errs = append(errs, errors.New("launch_template: give its id: or its name: (one of them)"))
		case lt.ID != "" && lt.Name != "":
			errs = append(errs, errors.New("launch_template: give its id: or its name:, not both"))
		case lt.ID != "" && !templateRe.MatchString(lt.ID):
			errs = append(errs, fmt.Errorf("launch_template.id: %q is not a launch template ID (lt- and 17 hex digits)", lt.ID))
		}
		if v := lt.Version; v != "" && v != "$Latest" && v != "$Default" {
			if n, err := strconv.Atoi(v); err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("launch_template.version: %q is not a version number, $Latest or $Default", v))
			}
		}
	} else {
		if c.ImageID == "" {
			errs = append(errs, errors.New("image_id: required without a launch_template: the AMI to launch, such as ami-0123456789abcdef0"))
		}
		if c.InstanceType == "" {
			errs = append(errs, errors.New("instance_type: required without a launch_template, such as t3.micro"))
		}
	}
	if c.ImageID != "" && !amiRe.MatchString(c.ImageID) {
		errs = append(errs, fmt.Errorf("image_id: %q is not an AMI ID (ami- and 8 or 17 hex digits)", c.ImageID))
	}
	if c.InstanceType != "" && !instTypeRe.MatchString(c.InstanceType) {
		errs = append(errs, fmt.Errorf("instance_type: %q is not an instance type such as t3.micro", c.InstanceType))
	}
	if c.SubnetID != "" && !subnetRe.MatchString(c.SubnetID) {
		errs = append(errs, fmt.Errorf("subnet_id: %q is not a subnet ID (subnet- and 8 or 17 hex digits)", c.SubnetID))
	}
	for i, g := range c.SecurityGroupIDs {
		if !groupRe.MatchString(g) {
			errs = append(errs, fmt.Errorf("security_group_ids[%d]: %q is not a security group ID (sg- and 8 or 17 hex digits)", i, g))
		}
	}
	if c.IAMInstanceProfile != "" && !profileRe.MatchString(c.IAMInstanceProfile) {
		errs = append(errs, fmt.Errorf("iam_instance_profile: %q is not an instance profile name or ARN", c.IAMInstanceProfile))
	}
	if c.UserData != "" {
		t, err := plugin.ParseTemplate(c.UserData)
		if err != nil {
			errs = append(errs, fmt.Errorf("user_data: %w", err))
		}
		out.userData = t
	}
	out.tags = map[string]*plugin.Template{}
	if len(c.Tags) > 47 {
		errs = append(errs, fmt.Errorf("tags: %d tags: EC2 allows 50 per resource and goscaler sets 3", len(c.Tags)))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Tags)) {
		switch {
		case k == "" || len(k) > 128:
			errs = append(errs, fmt.Errorf("tags: key %q must be 1 to 128 characters", k))
			continue
		case strings.HasPrefix(k, "goscaler:"):
			errs = append(errs, fmt.Errorf("tags.%s: the goscaler: prefix is reserved for goscaler's own tags", k))
			continue
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			errs = append(errs, fmt.Errorf("tags.%s: the aws: prefix is reserved by AWS", k))
			continue
		}
		t, err := plugin.ParseTemplate(c.Tags[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("tags.%s: %w", k, err))
			continue
		}
		out.tags[k] = t
	}
	switch c.Address {
	case "", AddressPrivate, AddressPublic:
	default:
		errs = append(errs, fmt.Errorf("address: %q is not private or public", c.Address))
	}
	switch {
	case c.Port < 0 || c.Port > 65535:
		errs = append(errs, fmt.Errorf("port: %d is not a port number (1 to 65535)", c.Port))
	case c.Port > 0:
		out.port = c.Port
	}
	for _, d := range []struct {
		key string
		v   plugin.Duration
		to  *time.Duration
	}{{"poll_interval", c.PollInterval, &out.poll}, {"address_timeout", c.AddressTimeout, &out.addrWait}} {
		switch {
		case d.v < 0:
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.key, d.v))
		case d.v > 0:
			*d.to = d.v.D()
		}
	}
	return out, errors.Join(errs...)
}

// New builds the provider: it loads the AWS configuration from the default
// chain (no call is made yet). env.Owner is required.
func (c *Config) New(env provider.Env) (provider.Provider, error) {
	cfg, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("%w: aws provider: %w", provider.ErrConfig, err)
	}
	if env.Owner == "" {
		return nil, fmt.Errorf("%w: aws provider: the owner tag must not be empty", provider.ErrConfig)
	}
	awsCfg, err := c.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%w: aws provider: %w", provider.ErrConfig, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if ep := c.BaseEndpoint(); ep != nil {
			o.BaseEndpoint = ep
		}
	})
	return &Provider{cfg: cfg, owner: env.Owner, ec2: client, region: awsCfg.Region,
		log: log.With("provider", TypeName, "region", awsCfg.Region)}, nil
}

// address joins an IP and the configured port.
func (c *compiled) address(ip string) string {
	if ip == "" {
		return ""
	}
	return net.JoinHostPort(ip, strconv.Itoa(c.port))
}
