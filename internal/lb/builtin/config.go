// Package builtin is goscaler's built-in load balancer: an HTTP reverse proxy
// that listens on one address per cluster and spreads requests round robin over
// the cluster's in-service nodes.
//
// Besides the lb.Balancer contract it
//   - checks backends actively when the cluster has an HTTP health check
//     (lb.Env.HealthPath): a backend that fails UnhealthyThreshold checks in a
//     row leaves the rotation (it stays registered), one success brings it back;
//   - drains on Deregister: the backend leaves the rotation at once, and
//     Deregister waits for its requests in flight, at most DrainTimeout;
//   - retries a request once on the next backend when the connection to the
//     first one fails before any response and the request can be sent again;
//   - adds X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto to requests
//     and the X-Goscaler-Node header (the NodeID that served) to responses.
//
// It is registered in lb.Registry as "builtin".
package builtin

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
)

// TypeName is the `load_balancer.type` under which this balancer is registered.
const TypeName = "builtin"

// Defaults applied to zero-valued Config fields.
const (
	DefaultHealthInterval     = 2 * time.Second
	DefaultHealthTimeout      = time.Second
	DefaultUnhealthyThreshold = 2
	DefaultDrainTimeout       = 30 * time.Second
)

func init() {
	lb.Registry.Register(TypeName, func() lb.Config { return &Config{} })
}

// Config is the configuration of the built-in load balancer. Zero values of the
// optional fields mean their defaults.
type Config struct {
	// Listen is the host:port the proxy listens on (required). Port 0 picks a
	// free port; Balancer.Addr reports it.
	Listen string `yaml:"listen" json:"listen"`
	// HealthInterval is the period of the active health checks (default 2s).
	// Checks run only when the cluster has an HTTP health check path.
	HealthInterval plugin.Duration `yaml:"health_interval" json:"health_interval"`
	// HealthTimeout bounds one health check request (default 1s).
	HealthTimeout plugin.Duration `yaml:"health_timeout" json:"health_timeout"`
	// UnhealthyThreshold is how many consecutive failed checks take a backend
	// out of rotation (default 2).
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold"`
	// DrainTimeout is the longest Deregister waits for a backend's requests in
	// flight (default 30s).
	DrainTimeout plugin.Duration `yaml:"drain_timeout" json:"drain_timeout"`
}

var _ plugin.Validator = (*Config)(nil)

// Validate reports every problem of the configuration (errors.Join), each
// naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New(`listen: required: the host:port the proxy listens on, such as ":8080"`))
	} else if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port: %w", c.Listen, err))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		errs = append(errs, fmt.Errorf("listen: port %q of %q is not a number from 0 to 65535", port, c.Listen))
	}
	for _, d := range []struct {
		key string
		v   plugin.Duration
	}{
		{"health_interval", c.HealthInterval},
		{"health_timeout", c.HealthTimeout},
		{"drain_timeout", c.DrainTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.key, d.v))
		}
	}
	if c.UnhealthyThreshold < 0 {
		errs = append(errs, fmt.Errorf("unhealthy_threshold: must not be negative, got %d", c.UnhealthyThreshold))
	}
	return errors.Join(errs...)
}

// withDefaults returns a copy of c with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.HealthInterval == 0 {
		c.HealthInterval = plugin.Duration(DefaultHealthInterval)
	}
	if c.HealthTimeout == 0 {
		c.HealthTimeout = plugin.Duration(DefaultHealthTimeout)
	}
	if c.UnhealthyThreshold == 0 {
		c.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = plugin.Duration(DefaultDrainTimeout)
	}
	return c
}

// New validates the configuration, binds the listener (a port clash is reported
// here, naming the cluster and the address) and starts serving and, when
// env.HealthPath is set, checking backends. The result is a *Balancer; Close it
// to release the listener and its goroutines.
func (c *Config) New(env lb.Env) (lb.Balancer, error) {
	b, err := newBalancer(*c, env)
	if err != nil {
		return nil, err
	}
	return b, nil
}
