// Package elb is the "elb" load balancer: a cluster's nodes are the instances
// of a Classic Load Balancer, registered with RegisterInstancesWithLoadBalancer
// and removed with DeregisterInstancesFromLoadBalancer (aws-sdk-go-v2). The
// nodes' machines must be EC2 instances: the cluster's provider is aws.
//
// Deregister respects connection draining: it returns once
// DescribeInstanceHealth no longer lists the instance (while draining, a
// classic load balancer shows it "InService" with "Instance deregistration
// currently in progress."), at most drain_timeout or until ctx is done. The
// balancer implements lb.HealthReporter: with `health_check: {type:
// load_balancer}` a node is in service once its instance is InService.
//
// The load balancer itself (listeners, health check, connection draining) is
// managed outside goscaler. Credentials and the default region come from the
// AWS default chain (internal/awsclient).
package elb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
)

// TypeName is the `load_balancer.type` of this balancer.
const TypeName = "elb"

// Defaults of the zero-valued Config fields.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultDrainTimeout = 10 * time.Minute
)

// drainingDescription is how a classic load balancer describes an instance
// whose connections are draining.
const drainingDescription = "deregistration currently in progress"

func init() {
	lb.Registry.Register(TypeName, func() lb.Config { return &Config{} })
}

// Config is the configuration of the "elb" balancer.
type Config struct {
	// Settings are the region, endpoint_url and retry settings.
	awsclient.Settings `yaml:",inline"`
	// LoadBalancerName is the Classic Load Balancer's name (required).
	LoadBalancerName string `yaml:"load_balancer_name" json:"load_balancer_name"`
	// PollInterval is how often Deregister looks whether the instance is
	// still draining (default 5s).
	PollInterval plugin.Duration `yaml:"poll_interval" json:"poll_interval,omitempty"`
	// DrainTimeout bounds Deregister's wait for connection draining
	// (default 10m).
	DrainTimeout plugin.Duration `yaml:"drain_timeout" json:"drain_timeout,omitempty"`
}

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?$`)

var _ plugin.Validator = (*Config)(nil)

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	errs := c.Settings.Validate()
	switch {
	case c.LoadBalancerName == "":
		errs = append(errs, errors.New("load_balancer_name: required: the name of the Classic Load Balancer the nodes join"))
	case !nameRe.MatchString(c.LoadBalancerName):
		errs = append(errs, fmt.Errorf("load_balancer_name: %q is not a load balancer name (1 to 32 letters, digits and dashes)", c.LoadBalancerName))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll_interval: must not be negative, got %s", c.PollInterval))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout: must not be negative, got %s", c.DrainTimeout))
	}
	return errors.Join(errs...)
}

// New builds the balancer (no call is made yet).
func (c *Config) New(env lb.Env) (lb.Balancer, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("elb: %w", err)
	}
	awsCfg, err := c.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("elb: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Balancer{cfg: *c, known: map[string]lb.Backend{}, poll: DefaultPollInterval, drain: DefaultDrainTimeout,
		log: log.With("load_balancer", TypeName, "name", c.LoadBalancerName),
		client: elb.NewFromConfig(awsCfg, func(o *elb.Options) {
			if ep := c.BaseEndpoint(); ep != nil {
				o.BaseEndpoint = ep
			}
		})}
	if c.PollInterval > 0 {
		b.poll = c.PollInterval.D()
	}
	if c.DrainTimeout > 0 {
		b.drain = c.DrainTimeout.D()
	}
	return b, nil
}

// Balancer registers a cluster's instances with a Classic Load Balancer. It
// is safe for concurrent use.
type Balancer struct {
	cfg    Config
	client *elb.Client
	log    *slog.Logger
	poll   time.Duration
	drain  time.Duration

	mu    sync.Mutex
	known map[string]lb.Backend // registered by this process, by instance ID
}

var (
	_ lb.Balancer       = (*Balancer)(nil)
	_ lb.HealthReporter = (*Balancer)(nil)
)

func instances(id string) []types.Instance {
	return []types.Instance{{InstanceId: awssdk.String(id)}}
}

// Register adds the node's instance (again: a no-op).
func (b *Balancer) Register(ctx context.Context, be lb.Backend) error {
	if be.MachineID == "" {
		return fmt.Errorf("elb: registering node %s: it has no machine ID: a classic load balancer needs the aws provider", be.NodeID)
	}
	_, err := b.client.RegisterInstancesWithLoadBalancer(ctx, &elb.RegisterInstancesWithLoadBalancerInput{
		LoadBalancerName: awssdk.String(b.cfg.LoadBalancerName), Instances: instances(be.MachineID)})
	if err != nil {
		return b.fail("registering node "+be.NodeID+" (instance "+be.MachineID+")", err)
	}
	b.mu.Lock()
	b.known[be.MachineID] = be
	b.mu.Unlock()
	b.log.Info("instance registered", "node", be.NodeID, "instance", be.MachineID)
	return nil
}

// Deregister removes the node's instance and waits while its connections
// drain, at most drain_timeout or until ctx is done. An instance that is not
// registered is not an error.
func (b *Balancer) Deregister(ctx context.Context, be lb.Backend) error {
	if be.MachineID == "" {
		return nil // never registered
	}
	id := be.MachineID
	_, err := b.client.DeregisterInstancesFromLoadBalancer(ctx, &elb.DeregisterInstancesFromLoadBalancerInput{
		LoadBalancerName: awssdk.String(b.cfg.LoadBalancerName), Instances: instances(id)})
	b.mu.Lock()
	delete(b.known, id)
	b.mu.Unlock()
	if err != nil {
		if code, _ := awsclient.Code(err); code == "InvalidInstance" {
			return nil // not registered (any more)
		}
		return b.fail("deregistering node "+be.NodeID+" (instance "+id+")", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.drain)
	defer cancel()
	for {
		st, err := b.state(ctx, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("elb: node %s (instance %s) still draining after %s: %w", be.NodeID, id, time.Since(start).Round(time.Millisecond), ctx.Err())
		case err != nil:
			return err
		case st == nil:
			b.log.Info("instance deregistered", "node", be.NodeID, "instance", id, "drained_in", time.Since(start).Round(time.Millisecond))
			return nil
		}
		t := time.NewTimer(b.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("elb: node %s (instance %s) still draining after %s: %w", be.NodeID, id, time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-t.C:
		}
	}
}

// state returns the instance's state in the load balancer (nil: not
// registered).
func (b *Balancer) state(ctx context.Context, id string) (*types.InstanceState, error) {
	out, err := b.client.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{
		LoadBalancerName: awssdk.String(b.cfg.LoadBalancerName), Instances: instances(id)})
	if err != nil {
		if code, _ := awsclient.Code(err); code == "InvalidInstance" {
			return nil, nil
		}
		return nil, b.fail("describing the health of instance "+id, err)
	}
	for _, s := range out.InstanceStates {
		if awssdk.ToString(s.InstanceId) == id {
			return &s, nil
		}
	}
	return nil, nil
}

func draining(s types.InstanceState) bool {
	return strings.Contains(awssdk.ToString(s.Description), drainingDescription)
}

// BackendHealth is nil when the load balancer has the node's instance
// InService (and not draining).
func (b *Balancer) BackendHealth(ctx context.Context, be lb.Backend) error {
	if be.MachineID == "" {
		return fmt.Errorf("%w: elb: node %s has no machine ID", lb.ErrUnhealthy, be.NodeID)
	}
	st, err := b.state(ctx, be.MachineID)
	switch {
	case err != nil:
		return err
	case st == nil:
		return fmt.Errorf("%w: elb: instance %s is not registered", lb.ErrUnhealthy, be.MachineID)
	case draining(*st):
		return fmt.Errorf("%w: elb: instance %s is draining", lb.ErrUnhealthy, be.MachineID)
	case awssdk.ToString(st.State) == "InService":
		return nil
	}
	return fmt.Errorf("%w: elb: instance %s is %s (%s: %s)", lb.ErrUnhealthy, be.MachineID,
		awssdk.ToString(st.State), awssdk.ToString(st.ReasonCode), awssdk.ToString(st.Description))
}

// Backends lists the registered instances that are not draining; NodeID and
// Address are known for the ones this process registered.
func (b *Balancer) Backends(ctx context.Context) ([]lb.Backend, error) {
	out, err := b.client.DescribeInstanceHealth(ctx, &elb.DescribeInstanceHealthInput{
		LoadBalancerName: awssdk.String(b.cfg.LoadBalancerName)})
	if err != nil {
		return nil, b.fail("listing the instances", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var list []lb.Backend
	for _, s := range out.InstanceStates {
		if draining(s) {
			continue
		}
		id := awssdk.ToString(s.InstanceId)
		be, ok := b.known[id]
		if !ok {
			be = lb.Backend{MachineID: id}
		}
		list = append(list, be)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].MachineID < list[j].MachineID })
	return list, nil
}

func (b *Balancer) fail(what string, err error) error {
	hint := ""
	switch code, _ := awsclient.Code(err); code {
	case "LoadBalancerNotFound":
		hint = " (check load_balancer_name and region)"
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		hint = " (the credentials lack an elasticloadbalancing permission: see docs/aws.md)"
	case "InvalidInstance":
		hint = " (the instance is not running, or not in the load balancer's VPC)"
	}
	if awsclient.NoCredentials(err) {
		hint = " (no usable AWS credentials in the server's environment)"
	}
	return fmt.Errorf("elb: %s in load balancer %s: %w%s", what, b.cfg.LoadBalancerName, err, hint)
}
