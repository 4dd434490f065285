// Package osapi is the OpenStack access shared by the openstack provider and
// the octavia load balancer: which cloud to use (a clouds.yaml entry or the
// OS_* variables, never credentials in goscaler's own configuration), a
// Keystone session made on first use and renewed when its token expires,
// service clients for Nova, Neutron, Glance and Octavia whose URLs come from
// the service catalog or from explicit overrides, the classification of API
// errors, and retries with backoff and jitter.
package osapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/goscaler/goscaler/internal/plugin"
)

// Defaults applied to zero-valued Auth fields.
const (
	DefaultRequestTimeout = 30 * time.Second
	DefaultRetries        = 4
	DefaultRetryDelay     = time.Second
	DefaultMaxRetryDelay  = 30 * time.Second
)

// Service types of the endpoints overrides.
const (
	ServiceCompute      = "compute"
	ServiceNetwork      = "network"
	ServiceImage        = "image"
	ServiceLoadBalancer = "load-balancer"
)

var services = []string{ServiceCompute, ServiceImage, ServiceLoadBalancer, ServiceNetwork}

// Auth says which OpenStack cloud to talk to and how. It holds no secret:
// credentials come from clouds.yaml (and its secure.yaml) or from the OS_*
// variables of the server's environment. It is meant to be inlined in a
// plugin's config (yaml ",inline").
type Auth struct {
	// Cloud is the entry of clouds.yaml to use. Empty: $OS_CLOUD, else the
	// OS_* variables (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, …).
	Cloud string `yaml:"cloud" json:"cloud,omitempty"`
	// CloudsFile is the clouds.yaml to read; empty: $OS_CLIENT_CONFIG_FILE,
	// ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml.
	CloudsFile string `yaml:"clouds_file" json:"clouds_file,omitempty"`
	// Region selects the catalog's endpoints of that region.
	Region string `yaml:"region" json:"region,omitempty"`
	// Interface selects the catalog's public (default), internal or admin endpoints.
	Interface string `yaml:"interface" json:"interface,omitempty"`
	// AuthURL overrides the Keystone URL of the credentials.
	AuthURL string `yaml:"auth_url" json:"auth_url,omitempty"`
	// Endpoints override the service catalog, by service type: compute,
	// network, image, load-balancer. Each is the URL the catalog would list.
	Endpoints map[string]string `yaml:"endpoints" json:"endpoints,omitempty"`
	// RequestTimeout bounds one HTTP request (default 30s).
	RequestTimeout plugin.Duration `yaml:"request_timeout" json:"request_timeout,omitempty"`
	// Retries is how often a call that failed for a transient reason
	// (throttling, 5xx, a timeout) is tried again (default 4; 0 is the default,
	// -1 never retries).
	Retries int `yaml:"retries" json:"retries,omitempty"`
	// RetryDelay is the first backoff delay, doubled at each retry (default 1s).
	RetryDelay plugin.Duration `yaml:"retry_delay" json:"retry_delay,omitempty"`
	// MaxRetryDelay caps one backoff delay, Retry-After included (default 30s).
	MaxRetryDelay plugin.Duration `yaml:"max_retry_delay" json:"max_retry_delay,omitempty"`
}

// Validate returns every problem of a, each naming its key.
func (a *Auth) Validate() []error {
	var errs []error
	if a.AuthURL != "" {
		if err := checkURL(a.AuthURL); err != nil {
			errs = append(errs, fmt.Errorf("auth_url: %w", err))
		}
	}
	switch a.Interface {
	case "", "public", "internal", "admin":
	default:
		errs = append(errs, fmt.Errorf("interface: %q: use public, internal or admin", a.Interface))
	}
	for _, k := range slices.Sorted(maps.Keys(a.Endpoints)) {
		if !slices.Contains(services, k) {
			errs = append(errs, fmt.Errorf("endpoints.%s: unknown service type; known: %s", k, strings.Join(services, ", ")))
			continue
		}
		if err := checkURL(a.Endpoints[k]); err != nil {
			errs = append(errs, fmt.Errorf("endpoints.%s: %w", k, err))
		}
	}
	if a.Retries < -1 {
		errs = append(errs, fmt.Errorf("retries: %d: use -1 (never), 0 (the default, %d) or more", a.Retries, DefaultRetries))
	}
	for _, d := range []struct {
		key string
		v   plugin.Duration
	}{{"request_timeout", a.RequestTimeout}, {"retry_delay", a.RetryDelay}, {"max_retry_delay", a.MaxRetryDelay}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.key, d.v))
		}
	}
	return errs
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	return nil
}

// Retrier returns the retry policy of a, defaults applied.
func (a Auth) Retrier() Retrier {
	r := Retrier{Retries: DefaultRetries, Base: DefaultRetryDelay, Max: DefaultMaxRetryDelay}
	switch {
	case a.Retries < 0:
		r.Retries = 0
	case a.Retries > 0:
		r.Retries = a.Retries
	}
	if a.RetryDelay > 0 {
		r.Base = a.RetryDelay.D()
	}
	if a.MaxRetryDelay > 0 {
		r.Max = a.MaxRetryDelay.D()
	}
	r.Max = max(r.Max, r.Base)
	return r
}

// Session is an authenticated connection to one cloud, made on first use.
// It is safe for concurrent use.
type Session struct {
	auth  Auth
	log   *slog.Logger
	retry Retrier

	mu      sync.Mutex
	pc      *gophercloud.ProviderClient
	creds   credentials
	clients map[string]*gophercloud.ServiceClient
}

// NewSession returns a session for a; nothing is read or sent before the
// first call that needs the cloud.
func NewSession(a Auth, log *slog.Logger) *Session {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{auth: a, log: log, retry: a.Retrier(), clients: map[string]*gophercloud.ServiceClient{}}
}

// Retrier is the session's retry policy.
func (s *Session) Retrier() Retrier { return s.retry }

// Where names the cloud for messages: the clouds.yaml entry or the OS_*
// variables, and the region.
func (s *Session) Where() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	where := s.creds.source
	if where == "" {
		where = "cloud " + s.auth.Cloud
		if s.auth.Cloud == "" {
			where = "the OpenStack cloud"
		}
	}
	if s.creds.region != "" {
		where += ", region " + s.creds.region
	}
	return where
}

// connect authenticates with Keystone (once; later calls reuse the session,
// whose token gophercloud renews). A refused login or a missing setting is
// ErrConfig; an unreachable Keystone is a transient error.
func (s *Session) connect(ctx context.Context) (*gophercloud.ProviderClient, error) {
	if s.pc != nil {
		return s.pc, nil
	}
	c, err := s.auth.loadCredentials()
	if err != nil {
		return nil, err
	}
	pc, err := openstack.NewClient(c.opts.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: Keystone URL %q: %w", ErrConfig, c.source, c.opts.IdentityEndpoint, err)
	}
	timeout := DefaultRequestTimeout
	if s.auth.RequestTimeout > 0 {
		timeout = s.auth.RequestTimeout.D()
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if c.tls != nil {
		transport.TLSClientConfig = c.tls
	}
	pc.HTTPClient = http.Client{Timeout: timeout, Transport: transport}
	pc.UserAgent.Prepend("goscaler")
	err = s.retry.Do(ctx, nil, func(ctx context.Context) error {
		return openstack.Authenticate(ctx, pc, c.opts)
	})
	if err != nil {
		err = Clean(err)
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("authenticating with Keystone at %s: %w", c.opts.IdentityEndpoint, ctx.Err())
		case IsTransient(err):
			return nil, fmt.Errorf("authenticating with Keystone at %s (%s): %w", c.opts.IdentityEndpoint, c.source, err)
		case IsAuthFailure(err):
			return nil, fmt.Errorf("%w: Keystone at %s refused the credentials of %s: check them: %w", ErrConfig, c.opts.IdentityEndpoint, c.source, err)
		default:
			return nil, fmt.Errorf("%w: authenticating with Keystone at %s (%s): %w", ErrConfig, c.opts.IdentityEndpoint, c.source, err)
		}
	}
	if len(s.auth.Endpoints) > 0 {
		catalog := pc.EndpointLocator
		overrides := maps.Clone(s.auth.Endpoints)
		pc.EndpointLocator = func(eo gophercloud.EndpointOpts) (string, error) {
			if u, ok := overrides[eo.Type]; ok {
				return gophercloud.NormalizeURL(u), nil
			}
			return catalog(eo)
		}
	}
	s.pc, s.creds = pc, c
	s.log.Info("authenticated with OpenStack", "cloud", c.source, "keystone", c.opts.IdentityEndpoint, "region", c.region)
	return pc, nil
}

// client returns the service client of a service type, made on first use.
func (s *Session) client(ctx context.Context, service string) (*gophercloud.ServiceClient, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc, ok := s.clients[service]; ok {
		return sc, nil
	}
	pc, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	eo := gophercloud.EndpointOpts{Region: s.creds.region, Availability: s.creds.availability}
	var sc *gophercloud.ServiceClient
	err = s.retry.Do(ctx, nil, func(ctx context.Context) error {
		var err error
		switch service {
		case ServiceCompute:
			sc, err = openstack.NewComputeV2(pc, eo)
		case ServiceNetwork:
			sc, err = openstack.NewNetworkV2(pc, eo)
		case ServiceImage:
			sc, err = openstack.NewImageV2(pc, eo)
		case ServiceLoadBalancer:
			sc, err = openstack.NewLoadBalancerV2(pc, eo)
		default:
			err = fmt.Errorf("unknown service type %q", service)
		}
		return err
	})
	if err != nil {
		err = Clean(err)
		var nf *gophercloud.ErrEndpointNotFound
		if errors.As(err, &nf) {
			where := s.creds.source
			if s.creds.region != "" {
				where += ", region " + s.creds.region
			}
			return nil, fmt.Errorf("%w: the service catalog of %s has no %s endpoint (%s interface) that serves its API v2: set endpoints.%s or check region and interface",
				ErrConfig, where, service, s.creds.availability, service)
		}
		if IsTransient(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("finding the %s endpoint: %w", service, err)
		}
		return nil, fmt.Errorf("%w: finding the %s endpoint: %w", ErrConfig, service, err)
	}
	s.clients[service] = sc
	return sc, nil
}

// Compute returns the Nova client.
func (s *Session) Compute(ctx context.Context) (*gophercloud.ServiceClient, error) {
	return s.client(ctx, ServiceCompute)
}

// Network returns the Neutron client.
func (s *Session) Network(ctx context.Context) (*gophercloud.ServiceClient, error) {
	return s.client(ctx, ServiceNetwork)
}

// Image returns the Glance client.
func (s *Session) Image(ctx context.Context) (*gophercloud.ServiceClient, error) {
	return s.client(ctx, ServiceImage)
}

// LoadBalancer returns the Octavia client.
func (s *Session) LoadBalancer(ctx context.Context) (*gophercloud.ServiceClient, error) {
	return s.client(ctx, ServiceLoadBalancer)
}
