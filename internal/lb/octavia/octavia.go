// Package octavia is the "octavia" load balancer: a cluster's in-service
// nodes are the members of a pool of an OpenStack Octavia load balancer,
// managed with gophercloud.
//
//   - Register adds the node's address and port as a member of the pool
//     (named goscaler/<cluster>/<node>), unless a member with that address
//     and port is there already: then it only restores its weight.
//   - Deregister drains: it sets the member's weight to 0 (Octavia sends it
//     no new connections), waits drain_delay — Octavia's API has no count of
//     a member's connections to wait for —, then deletes the member.
//   - Backends lists the pool's members named for the cluster.
//
// Octavia refuses changes while the load balancer is not ACTIVE (409,
// PENDING_UPDATE after every change): each change waits for ACTIVE before and
// after it, and a 409 is retried until wait_timeout. Throttling, 5xx and
// timeouts are retried with backoff and jitter.
//
// Credentials and endpoints are those of the openstack provider (package
// osapi): a clouds.yaml entry or the OS_* variables, never goscaler's
// configuration.
package octavia

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/loadbalancers"
	"github.com/gophercloud/gophercloud/v2/openstack/loadbalancer/v2/pools"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/plugin"
)

// TypeName is the `load_balancer.type` under which this balancer is registered.
const TypeName = "octavia"

// Defaults applied to zero-valued Config fields.
const (
	DefaultWeight       = 1
	DefaultDrainDelay   = 10 * time.Second
	DefaultWaitTimeout  = 5 * time.Minute
	DefaultPollInterval = 2 * time.Second
)

func init() {
	lb.Registry.Register(TypeName, func() lb.Config { return &Config{} })
}

// Config is the configuration of the "octavia" load balancer.
type Config struct {
	// Auth says which cloud and how to reach it (see the openstack provider).
	osapi.Auth `yaml:",inline"`
	// Pool is the name or ID of the Octavia pool (required).
	Pool string `yaml:"pool" json:"pool"`
	// Subnet is the name or ID of the subnet the members are reached on
	// (default: the load balancer's VIP subnet, Octavia's choice).
	Subnet string `yaml:"subnet" json:"subnet,omitempty"`
	// Weight is the members' weight, 1 to 256 (default 1).
	Weight int `yaml:"weight" json:"weight,omitempty"`
	// DrainDelay is how long a deregistered member keeps its connections
	// with weight 0 before it is deleted (default 10s).
	DrainDelay plugin.Duration `yaml:"drain_delay" json:"drain_delay,omitempty"`
	// WaitTimeout bounds how long a change waits for the load balancer to
	// be ACTIVE (default 5m).
	WaitTimeout plugin.Duration `yaml:"wait_timeout" json:"wait_timeout,omitempty"`
	// PollInterval is how often the load balancer's status is read while
	// waiting (default 2s).
	PollInterval plugin.Duration `yaml:"poll_interval" json:"poll_interval,omitempty"`
}

var _ plugin.Validator = (*Config)(nil)

// Validate reports every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	errs := c.Auth.Validate()
	if strings.TrimSpace(c.Pool) == "" {
		errs = append(errs, errors.New("pool: required: the name or ID of the Octavia pool the nodes join"))
	}
	if c.Weight < 0 || c.Weight > 256 {
		errs = append(errs, fmt.Errorf("weight: %d: use 1 to 256 (0 means the default, %d)", c.Weight, DefaultWeight))
	}
	for _, d := range []struct {
		key string
		v   plugin.Duration
	}{{"drain_delay", c.DrainDelay}, {"wait_timeout", c.WaitTimeout}, {"poll_interval", c.PollInterval}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.key, d.v))
		}
	}
	return errors.Join(errs...)
}

// New builds the balancer; it does not contact the cloud (the first call
// authenticates and resolves the pool).
func (c *Config) New(env lb.Env) (lb.Balancer, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("octavia load balancer: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("load_balancer", TypeName, "cluster", env.Cluster, "pool", c.Pool)
	b := &Balancer{cfg: *c, cluster: env.Cluster, log: log, weight: DefaultWeight, drain: DefaultDrainDelay,
		wait: DefaultWaitTimeout, poll: DefaultPollInterval}
	if c.Weight > 0 {
		b.weight = c.Weight
	}
	if c.DrainDelay > 0 {
		b.drain = c.DrainDelay.D()
	}
	if c.WaitTimeout > 0 {
		b.wait = c.WaitTimeout.D()
	}
	if c.PollInterval > 0 {
		b.poll = c.PollInterval.D()
	}
	b.sess = osapi.NewSession(c.Auth, log)
	b.retry = b.sess.Retrier()
	return b, nil
}

// Balancer manages the members of one Octavia pool for one cluster. It is
// safe for concurrent use; changes are made one at a time, as Octavia takes
// them.
type Balancer struct {
	cfg     Config
	cluster string
	log     *slog.Logger
	sess    *osapi.Session
	retry   osapi.Retrier
	weight  int
	drain   time.Duration
	wait    time.Duration
	poll    time.Duration

	resMu    sync.Mutex
	poolID   string
	lbID     string
	subnetID string

	// mu serialises changes.
	mu sync.Mutex
}

var _ lb.Balancer = (*Balancer)(nil)

// MemberName is the name of a node's member.
func (b *Balancer) MemberName(nodeID string) string { return "goscaler/" + b.cluster + "/" + nodeID }

func (b *Balancer) client(ctx context.Context) (*gophercloud.ServiceClient, error) {
	c, err := b.sess.LoadBalancer(ctx)
	if err != nil {
		return nil, fmt.Errorf("octavia: %w", err)
	}
	return c, nil
}

// resolve finds the pool, its load balancer and the subnet, once.
func (b *Balancer) resolve(ctx context.Context) (string, string, string, error) {
	b.resMu.Lock()
	defer b.resMu.Unlock()
	if b.poolID != "" {
		return b.poolID, b.lbID, b.subnetID, nil
	}
	c, err := b.client(ctx)
	if err != nil {
		return "", "", "", err
	}
	var pool *pools.Pool
	err = b.retry.Do(ctx, nil, func(ctx context.Context) error {
		p, err := pools.Get(ctx, c, b.cfg.Pool).Extract()
		if err == nil {
			pool = p
			return nil
		}
		if !osapi.IsNotFound(err) && osapi.Status(err) != http.StatusBadRequest {
			return err
		}
		pages, err := pools.List(c, pools.ListOpts{Name: b.cfg.Pool}).AllPages(ctx)
		if err != nil {
			return err
		}
		all, err := pools.ExtractPools(pages)
		if err != nil {
			return err
		}
		var match []pools.Pool
		for _, p := range all {
			if p.Name == b.cfg.Pool {
				match = append(match, p)
			}
		}
		switch len(match) {
		case 0:
			return fmt.Errorf("%w: pool: no Octavia pool has the ID or name %q in %s", osapi.ErrConfig, b.cfg.Pool, b.sess.Where())
		case 1:
			pool = &match[0]
			return nil
		default:
			return fmt.Errorf("%w: pool: %d pools are named %q: give the ID", osapi.ErrConfig, len(match), b.cfg.Pool)
		}
	})
	if err != nil {
		return "", "", "", fmt.Errorf("octavia: resolving pool %q: %w", b.cfg.Pool, osapi.Clean(err))
	}
	if len(pool.Loadbalancers) == 0 {
		return "", "", "", fmt.Errorf("%w: pool %q (%s) belongs to no load balancer", osapi.ErrConfig, b.cfg.Pool, pool.ID)
	}
	subnetID := ""
	if b.cfg.Subnet != "" {
		if subnetID, err = b.resolveSubnet(ctx); err != nil {
			return "", "", "", err
		}
	}
	b.poolID, b.lbID, b.subnetID = pool.ID, pool.Loadbalancers[0].ID, subnetID
	return b.poolID, b.lbID, b.subnetID, nil
}

func (b *Balancer) resolveSubnet(ctx context.Context) (string, error) {
	nc, err := b.sess.Network(ctx)
	if err != nil {
		return "", fmt.Errorf("octavia: subnet: %w", err)
	}
	var id string
	err = b.retry.Do(ctx, nil, func(ctx context.Context) error {
		s, err := subnets.Get(ctx, nc, b.cfg.Subnet).Extract()
		if err == nil {
			id = s.ID
			return nil
		}
		if !osapi.IsNotFound(err) && osapi.Status(err) != http.StatusBadRequest {
			return err
		}
		pages, err := subnets.List(nc, subnets.ListOpts{Name: b.cfg.Subnet}).AllPages(ctx)
		if err != nil {
			return err
		}
		all, err := subnets.ExtractSubnets(pages)
		if err != nil {
			return err
		}
		var ids []string
		for _, s := range all {
			if s.Name == b.cfg.Subnet {
				ids = append(ids, s.ID)
			}
		}
		switch len(ids) {
		case 0:
			return fmt.Errorf("%w: subnet: no subnet has the ID or name %q", osapi.ErrConfig, b.cfg.Subnet)
		case 1:
			id = ids[0]
			return nil
		default:
			return fmt.Errorf("%w: subnet: %d subnets are named %q (%s): give the ID", osapi.ErrConfig, len(ids), b.cfg.Subnet, strings.Join(ids, ", "))
		}
	})
	if err != nil {
		return "", fmt.Errorf("octavia: resolving subnet %q: %w", b.cfg.Subnet, osapi.Clean(err))
	}
	return id, nil
}

// splitAddress splits a backend's host:port.
func splitAddress(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("octavia: backend address %q is not host:port: %w", addr, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("octavia: backend address %q: port %q is not a number from 1 to 65535", addr, ps)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("octavia: backend address %q: Octavia members need an IP address, not %q", addr, host)
	}
	return host, port, nil
}

// members lists the pool's members.
func (b *Balancer) members(ctx context.Context, c *gophercloud.ServiceClient, poolID string) ([]pools.Member, error) {
	var out []pools.Member
	err := b.retry.Do(ctx, nil, func(ctx context.Context) error {
		pages, err := pools.ListMembers(c, poolID, pools.ListMembersOpts{}).AllPages(ctx)
		if err != nil {
			return err
		}
		out, err = pools.ExtractMembers(pages)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("octavia: listing the members of pool %s: %w", poolID, osapi.Clean(err))
	}
	return out, nil
}

func findMember(ms []pools.Member, host string, port int) *pools.Member {
	ip := net.ParseIP(host)
	for i := range ms {
		if ms[i].ProtocolPort == port && net.ParseIP(ms[i].Address).Equal(ip) && ms[i].ProvisioningStatus != "PENDING_DELETE" {
			return &ms[i]
		}
	}
	return nil
}

// waitActive waits until the load balancer's provisioning status is ACTIVE.
func (b *Balancer) waitActive(ctx context.Context, c *gophercloud.ServiceClient, lbID string, deadline time.Time) error {
	for {
		var status string
		err := b.retry.Do(ctx, nil, func(ctx context.Context) error {
			l, err := loadbalancers.Get(ctx, c, lbID).Extract()
			if err == nil {
				status = l.ProvisioningStatus
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("octavia: reading the status of load balancer %s: %w", lbID, osapi.Clean(err))
		}
		switch status {
		case "ACTIVE":
			return nil
		case "ERROR", "DELETED":
			return fmt.Errorf("octavia: load balancer %s is %s: it takes no changes; repair it in Octavia", lbID, status)
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("octavia: load balancer %s is still %s after %s (wait_timeout)", lbID, status, b.wait)
		}
		if err := osapi.Sleep(ctx, b.poll); err != nil {
			return fmt.Errorf("octavia: waiting for load balancer %s to be ACTIVE (it is %s): %w", lbID, status, err)
		}
	}
}

// immutable reports Octavia's 409 for a load balancer that is busy.
func immutable(err error) bool {
	return osapi.Status(err) == http.StatusConflict && strings.Contains(strings.ToLower(osapi.Message(err)), "immutable")
}

// change runs one change of the pool when the load balancer is ACTIVE,
// retrying while Octavia answers 409 (busy) until wait_timeout and on
// transient errors, then waits for ACTIVE again.
func (b *Balancer) change(ctx context.Context, what string, c *gophercloud.ServiceClient, lbID string,
	fn func(ctx context.Context) error) error {
	deadline := time.Now().Add(b.wait)
	for attempt := 1; ; attempt++ {
		if err := b.waitActive(ctx, c, lbID, deadline); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		err := fn(ctx)
		if err == nil {
			return b.waitActive(ctx, c, lbID, time.Now().Add(b.wait))
		}
		err = osapi.Clean(err)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("octavia: %s: %w", what, ctx.Err())
		case immutable(err) && time.Now().Before(deadline):
			b.log.Debug("load balancer busy; waiting", "what", what, "err", err)
			continue
		case osapi.IsTransient(err) && attempt <= b.retry.Retries:
			if serr := osapi.Sleep(ctx, b.retry.Delay(attempt, err)); serr != nil {
				return fmt.Errorf("octavia: %s: %w (%w)", what, serr, err)
			}
			continue
		}
		return fmt.Errorf("octavia: %s: %w", what, err)
	}
}

// Register adds the backend to the pool, or restores the weight of its
// member if it is there already.
func (b *Balancer) Register(ctx context.Context, be lb.Backend) error {
	host, port, err := splitAddress(be.Address)
	if err != nil {
		return err
	}
	poolID, lbID, subnetID, err := b.resolve(ctx)
	if err != nil {
		return err
	}
	c, err := b.client(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	name := b.MemberName(be.NodeID)
	for attempt := 1; ; attempt++ {
		ms, err := b.members(ctx, c, poolID)
		if err != nil {
			return err
		}
		if m := findMember(ms, host, port); m != nil {
			if m.Weight == b.weight {
				return nil
			}
			w := b.weight
			err := b.change(ctx, "restoring the weight of member "+m.ID, c, lbID, func(ctx context.Context) error {
				return pools.UpdateMember(ctx, c, poolID, m.ID, pools.UpdateMemberOpts{Weight: &w}).Err
			})
			if err == nil {
				b.log.Info("member back in rotation", "node", be.NodeID, "member", m.ID, "address", be.Address, "weight", w)
			}
			return err
		}
		w := b.weight
		opts := pools.CreateMemberOpts{Address: host, ProtocolPort: port, Name: name, Weight: &w, SubnetID: subnetID}
		var created *pools.Member
		err = b.change(ctx, "adding member "+be.Address, c, lbID, func(ctx context.Context) error {
			m, err := pools.CreateMember(ctx, c, poolID, opts).Extract()
			created = m
			return err
		})
		switch {
		case err == nil:
			b.log.Info("member added", "node", be.NodeID, "member", created.ID, "address", be.Address)
			return nil
		case osapi.Status(err) == http.StatusConflict && attempt < 3:
			// "Another member … is already using ip": a create whose
			// answer was lost, or a concurrent one. Look again.
			continue
		}
		return err
	}
}

// Deregister drains the backend's member (weight 0), waits drain_delay, and
// deletes it. An unknown backend is not an error.
func (b *Balancer) Deregister(ctx context.Context, be lb.Backend) error {
	if be.Address == "" {
		return nil // a node that never had an address was never registered
	}
	host, port, err := splitAddress(be.Address)
	if err != nil {
		return err
	}
	poolID, lbID, _, err := b.resolve(ctx)
	if err != nil {
		return err
	}
	c, err := b.client(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	ms, err := b.members(ctx, c, poolID)
	if err != nil {
		b.mu.Unlock()
		return err
	}
	m := findMember(ms, host, port)
	if m == nil {
		b.mu.Unlock()
		return nil
	}
	if m.Weight != 0 {
		zero := 0
		err := b.change(ctx, "draining member "+m.ID, c, lbID, func(ctx context.Context) error {
			return pools.UpdateMember(ctx, c, poolID, m.ID, pools.UpdateMemberOpts{Weight: &zero}).Err
		})
		if err != nil {
			b.mu.Unlock()
			if osapi.IsNotFound(err) {
				return nil // deleted meanwhile
			}
			return err
		}
		b.log.Info("member draining", "node", be.NodeID, "member", m.ID, "address", be.Address, "delay", b.drain)
	}
	// Other changes may go on while this member drains.
	b.mu.Unlock()
	if err := osapi.Sleep(ctx, b.drain); err != nil {
		return fmt.Errorf("octavia: draining member %s (%s): %w", m.ID, be.Address, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err = b.change(ctx, "deleting member "+m.ID, c, lbID, func(ctx context.Context) error {
		return pools.DeleteMember(ctx, c, poolID, m.ID).ExtractErr()
	})
	if err != nil && !osapi.IsNotFound(err) {
		return err
	}
	b.log.Info("member removed", "node", be.NodeID, "member", m.ID, "address", be.Address)
	return nil
}

// Backends lists the pool's members that this cluster registered.
func (b *Balancer) Backends(ctx context.Context) ([]lb.Backend, error) {
	poolID, _, _, err := b.resolve(ctx)
	if err != nil {
		return nil, err
	}
	c, err := b.client(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := b.members(ctx, c, poolID)
	if err != nil {
		return nil, err
	}
	prefix := b.MemberName("")
	var out []lb.Backend
	for _, m := range ms {
		node, ok := strings.CutPrefix(m.Name, prefix)
		if !ok || node == "" || m.ProvisioningStatus == "PENDING_DELETE" {
			continue
		}
		out = append(out, lb.Backend{NodeID: node, Address: net.JoinHostPort(m.Address, strconv.Itoa(m.ProtocolPort))})
	}
	return out, nil
}
