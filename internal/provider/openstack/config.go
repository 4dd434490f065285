// Package openstack is the "openstack" provider: each node is a Nova server,
// made with gophercloud from a flavor, an image and a network (each by name
// or ID), with an optional key pair, security groups, user data rendered from
// a template with the node's variables, and an optional floating IP.
//
// Credentials come from clouds.yaml (`cloud: NAME`) or the OS_* variables of
// the server's environment, never from goscaler's configuration; `auth_url`
// and `endpoints` point it at any compatible endpoint (see package osapi).
//
// # No second server, no orphan
//
// Nova has no client token that would make a create request idempotent.
// goscaler gets the same guarantee from what it stores before the call: the
// node ID. Every server is created with a deterministic name
// (<owner>-<node ID>) and the metadata goscaler_owner, goscaler_cluster and
// goscaler_node, and Create first lists the servers of the project and looks
// for one with the node's metadata: a retry after a timeout, a crash or a lost
// answer finds the server the first attempt made and adopts it instead of
// making another. List finds every server of a cluster by the same metadata,
// so a controller that restarts adopts the servers it had not recorded.
//
// The window that remains is a create request still in flight inside Nova
// (accepted, not yet in Nova's database) when the retry lists: Nova writes
// the server to its database before it answers, so this needs an answer lost
// after a client-side timeout and a retry within that instant. The retry
// waits (backoff) before it lists again, which makes it narrower, and if a
// second server is made all the same, the next Create or List of the node sees
// two servers with its metadata: Create keeps the oldest and deletes the
// others, and List returns both, so that the controller's reconciliation
// removes the one it does not know.
//
// # States
//
// ACTIVE is running; BUILD is running without an address yet (Create waits for
// ACTIVE, so only a server adopted while it builds is seen so); SHUTOFF,
// SUSPENDED, PAUSED, SHELVED and ERROR are stopped, ERROR with the server's
// fault message as the reason; DELETED and SOFT_DELETED are not found. Other
// transitional states (REBOOT, RESIZE, MIGRATING, …) count as running: the
// health check decides whether the node serves.
//
// # Errors
//
// 400 and unknown flavors, images or networks are provider.ErrConfig; a 403
// or 413 "Quota exceeded" (and Neutron's 409 for floating IPs) is
// provider.ErrQuota; Nova's 409 and a server that ends in ERROR with "No valid
// host was found" are provider.ErrCapacity (the server in ERROR is deleted);
// 429, 5xx and timeouts are retried with backoff and jitter, honouring
// Retry-After, and are provider.ErrTransient when the retries run out.
package openstack

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
)

// TypeName is the `provider.type` under which this provider is registered.
const TypeName = "openstack"

// Metadata keys of every server goscaler makes.
const (
	MetaOwner   = "goscaler_owner"
	MetaCluster = "goscaler_cluster"
	MetaNode    = "goscaler_node"
)

// Defaults applied to zero-valued Config fields.
const (
	DefaultBuildTimeout = 10 * time.Minute
	DefaultPollInterval = 2 * time.Second
)

// Nova's limits on metadata.
const (
	maxMetaLen   = 255
	maxMetaItems = 128
)

func init() {
	provider.Registry.Register(TypeName, func() provider.Config { return &Config{} })
}

// Config is the configuration of the "openstack" provider.
type Config struct {
	// Auth says which cloud (clouds.yaml entry or OS_* variables) and how
	// to reach it; its keys are at the level of the provider's own.
	osapi.Auth `yaml:",inline"`

	// Flavor is the flavor's name or ID (required).
	Flavor string `yaml:"flavor" json:"flavor"`
	// Image is the image's name or ID (required).
	Image string `yaml:"image" json:"image"`
	// Network is the name or ID of the network the server is attached to
	// and whose address is the node's. Empty: Nova's choice (the project's
	// only network), and the first IPv4 address of the server.
	Network string `yaml:"network" json:"network,omitempty"`
	// KeyName is the Nova key pair to inject.
	KeyName string `yaml:"key_name" json:"key_name,omitempty"`
	// SecurityGroups are security group names (default: Nova's "default").
	SecurityGroups []string `yaml:"security_groups" json:"security_groups,omitempty"`
	// AvailabilityZone places the servers.
	AvailabilityZone string `yaml:"availability_zone" json:"availability_zone,omitempty"`
	// UserData is a template over the node's variables (cloud-init, a
	// script…), rendered for each server.
	UserData string `yaml:"user_data" json:"user_data,omitempty"`
	// Metadata are extra server metadata; goscaler_* keys are reserved.
	Metadata map[string]string `yaml:"metadata" json:"metadata,omitempty"`
	// FloatingIPPool is the external network (name or ID) to allocate a
	// floating IP from for each server; the node's address is then the
	// floating IP. Empty: no floating IP.
	FloatingIPPool string `yaml:"floating_ip_pool" json:"floating_ip_pool,omitempty"`
	// Port is the TCP port the node serves on (required): the node's
	// address is IP:Port.
	Port int `yaml:"port" json:"port"`
	// BuildTimeout bounds how long Create waits for a server to leave BUILD
	// (default 10m).
	BuildTimeout plugin.Duration `yaml:"build_timeout" json:"build_timeout,omitempty"`
	// PollInterval is how often a building or deleted server is looked at
	// (default 2s).
	PollInterval plugin.Duration `yaml:"poll_interval" json:"poll_interval,omitempty"`
}

var _ plugin.Validator = (*Config)(nil)

// compiled is a Config with its template parsed and its defaults applied.
type compiled struct {
	Config
	userData *plugin.Template // nil: no user data
	build    time.Duration
	poll     time.Duration
}

// Validate reports every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c *Config) compile() (compiled, error) {
	out := compiled{Config: *c, build: DefaultBuildTimeout, poll: DefaultPollInterval}
	errs := c.Auth.Validate()
	if strings.TrimSpace(c.Flavor) == "" {
		errs = append(errs, errors.New("flavor: required: the name or ID of a Nova flavor, such as m1.small"))
	}
	if strings.TrimSpace(c.Image) == "" {
		errs = append(errs, errors.New("image: required: the name or ID of a Glance image"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: required: the TCP port the nodes serve on, from 1 to 65535 (got %d)", c.Port))
	}
	for i, g := range c.SecurityGroups {
		if strings.TrimSpace(g) == "" {
			errs = append(errs, fmt.Errorf("security_groups[%d]: must not be empty", i))
		}
	}
	if c.UserData != "" {
		t, err := plugin.ParseTemplate(c.UserData)
		if err != nil {
			errs = append(errs, fmt.Errorf("user_data: %w", err))
		}
		out.userData = t
	}
	if len(c.Metadata)+3 > maxMetaItems {
		errs = append(errs, fmt.Errorf("metadata: %d items: Nova takes at most %d, goscaler uses 3", len(c.Metadata), maxMetaItems))
	}
	for _, k := range slices.Sorted(maps.Keys(c.Metadata)) {
		v := c.Metadata[k]
		switch {
		case k == "" || len(k) > maxMetaLen:
			errs = append(errs, fmt.Errorf("metadata: key %q: must be 1 to %d characters", k, maxMetaLen))
		case strings.HasPrefix(k, "goscaler_"):
			errs = append(errs, fmt.Errorf("metadata.%s: goscaler_* keys are reserved: goscaler sets them itself", k))
		case len(v) > maxMetaLen:
			errs = append(errs, fmt.Errorf("metadata.%s: the value is %d characters; Nova takes at most %d", k, len(v), maxMetaLen))
		}
	}
	switch {
	case c.BuildTimeout < 0:
		errs = append(errs, fmt.Errorf("build_timeout: must not be negative, got %s", c.BuildTimeout))
	case c.BuildTimeout > 0:
		out.build = c.BuildTimeout.D()
	}
	switch {
	case c.PollInterval < 0:
		errs = append(errs, fmt.Errorf("poll_interval: must not be negative, got %s", c.PollInterval))
	case c.PollInterval > 0:
		out.poll = c.PollInterval.D()
	}
	return out, errors.Join(errs...)
}

// New builds the provider; it does not contact the cloud (the first call
// authenticates and resolves names). env.Owner is required.
func (c *Config) New(env provider.Env) (provider.Provider, error) {
	cfg, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("%w: openstack provider: %w", provider.ErrConfig, err)
	}
	if env.Owner == "" || len(env.Owner) > maxMetaLen {
		return nil, fmt.Errorf("%w: openstack provider: the owner tag must be 1 to %d characters", provider.ErrConfig, maxMetaLen)
	}
	return newProvider(cfg, env), nil
}
