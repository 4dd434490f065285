// Package elbv2 is the "elbv2" load balancer: a cluster's nodes are targets
// of an Elastic Load Balancing v2 target group (behind an Application,
// Network or Gateway Load Balancer), registered with RegisterTargets and
// removed with DeregisterTargets (aws-sdk-go-v2).
//
// Targets are instances (target_type instance, the default: the node's
// machine ID, so the cluster's provider must be aws) or IP addresses
// (target_type ip: the host of the node's address, any provider). The port is
// the balancer's port setting, else the port of the node's address.
//
// Deregister respects the target group's deregistration delay: it returns
// once DescribeTargetHealth no longer shows the target draining (or ctx or
// drain_timeout ends it), so the controller terminates a node only after the
// load balancer has let its connections finish. The balancer implements
// lb.HealthReporter: with `health_check: {type: load_balancer}` a node is in
// service once its target is healthy, and is replaced when it is not.
//
// The target group itself (listeners, health check settings, deregistration
// delay) is managed outside goscaler. Credentials and the default region come
// from the AWS default chain (internal/awsclient).
package elbv2

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
)

// TypeName is the `load_balancer.type` of this balancer.
const TypeName = "elbv2"

// Target types.
const (
	TargetInstance = "instance"
	TargetIP       = "ip"
)

// Defaults of the zero-valued Config fields.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultDrainTimeout = 10 * time.Minute
)

func init() {
	lb.Registry.Register(TypeName, func() lb.Config { return &Config{} })
}

// Config is the configuration of the "elbv2" balancer.
type Config struct {
	// Settings are the region, endpoint_url and retry settings.
	awsclient.Settings `yaml:",inline"`
	// TargetGroupARN is the target group the nodes join (required).
	TargetGroupARN string `yaml:"target_group_arn" json:"target_group_arn"`
	// TargetType is the target group's type: instance (default) or ip.
	TargetType string `yaml:"target_type" json:"target_type,omitempty"`
	// Port of the targets; default the port of the node's address.
	Port int `yaml:"port" json:"port,omitempty"`
	// PollInterval is how often Deregister looks whether the target is
	// still draining (default 5s).
	PollInterval plugin.Duration `yaml:"poll_interval" json:"poll_interval,omitempty"`
	// DrainTimeout bounds Deregister's wait for the deregistration delay
	// (default 10m).
	DrainTimeout plugin.Duration `yaml:"drain_timeout" json:"drain_timeout,omitempty"`
}

var arnRe = regexp.MustCompile(`^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[\w-]{1,32}/[0-9a-f]+$`)

var _ plugin.Validator = (*Config)(nil)

// Validate returns every problem of the configuration, each naming its key.
func (c *Config) Validate() error {
	errs := c.Settings.Validate()
	switch {
	case c.TargetGroupARN == "":
		errs = append(errs, errors.New("target_group_arn: required: the ARN of the target group the nodes join"))
	case !arnRe.MatchString(c.TargetGroupARN):
		errs = append(errs, fmt.Errorf("target_group_arn: %q is not a target group ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID)", c.TargetGroupARN))
	}
	switch c.TargetType {
	case "", TargetInstance, TargetIP:
	default:
		errs = append(errs, fmt.Errorf("target_type: %q is not instance or ip", c.TargetType))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a port number (1 to 65535)", c.Port))
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
		return nil, fmt.Errorf("elbv2: %w", err)
	}
	awsCfg, err := c.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("elbv2: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Balancer{cfg: *c, known: map[target]lb.Backend{},
		log: log.With("load_balancer", TypeName, "target_group", c.TargetGroupARN),
		client: elbv2.NewFromConfig(awsCfg, func(o *elbv2.Options) {
			if ep := c.BaseEndpoint(); ep != nil {
				o.BaseEndpoint = ep
			}
		}),
		poll: DefaultPollInterval, drain: DefaultDrainTimeout}
	if b.cfg.TargetType == "" {
		b.cfg.TargetType = TargetInstance
	}
	if c.PollInterval > 0 {
		b.poll = c.PollInterval.D()
	}
	if c.DrainTimeout > 0 {
		b.drain = c.DrainTimeout.D()
	}
	return b, nil
}

// Balancer registers a cluster's nodes in a target group. It is safe for
// concurrent use.
type Balancer struct {
	cfg    Config
	client *elbv2.Client
	log    *slog.Logger
	poll   time.Duration
	drain  time.Duration

	mu sync.Mutex
	// known are the backends this process registered, to name the nodes
	// Backends returns.
	known map[target]lb.Backend
}

var (
	_ lb.Balancer       = (*Balancer)(nil)
	_ lb.HealthReporter = (*Balancer)(nil)
)

// target is a target group member: an instance ID or an IP, and a port (0:
// the group's default).
type target struct {
	id   string
	port int
}

func (t target) String() string {
	if t.port == 0 {
		return t.id
	}
	return t.id + ":" + strconv.Itoa(t.port)
}

func (t target) sdk() types.TargetDescription {
	d := types.TargetDescription{Id: awssdk.String(t.id)}
	if t.port != 0 {
		d.Port = awssdk.Int32(int32(t.port))
	}
	return d
}

// errNoTarget says a backend cannot be a target of this group.
var errNoTarget = errors.New("backend cannot be a target")

func (b *Balancer) target(be lb.Backend) (target, error) {
	host, portStr, err := net.SplitHostPort(be.Address)
	port := b.cfg.Port
	if port == 0 && err == nil {
		port, _ = strconv.Atoi(portStr)
	}
	if b.cfg.TargetType == TargetIP {
		if err != nil || net.ParseIP(host) == nil {
			return target{}, fmt.Errorf("%w: node %s: address %q is not IP:port, which target_type ip needs", errNoTarget, be.NodeID, be.Address)
		}
		return target{host, port}, nil
	}
	if be.MachineID == "" {
		return target{}, fmt.Errorf("%w: node %s has no machine ID: target_type instance needs the aws provider (use target_type ip with others)", errNoTarget, be.NodeID)
	}
	return target{be.MachineID, port}, nil
}

// Register adds the node's target to the group (again: a no-op).
func (b *Balancer) Register(ctx context.Context, be lb.Backend) error {
	t, err := b.target(be)
	if err != nil {
		return fmt.Errorf("elbv2: registering: %w", err)
	}
	_, err = b.client.RegisterTargets(ctx, &elbv2.RegisterTargetsInput{
		TargetGroupArn: awssdk.String(b.cfg.TargetGroupARN), Targets: []types.TargetDescription{t.sdk()}})
	if err != nil {
		return b.fail("registering node "+be.NodeID+" as target "+t.String(), err)
	}
	b.mu.Lock()
	b.known[t] = be
	b.mu.Unlock()
	b.log.Info("target registered", "node", be.NodeID, "target", t.String())
	return nil
}

// Deregister removes the node's target and waits while the group drains it
// (its deregistration delay), at most drain_timeout or until ctx is done.
// A target that is not registered is not an error.
func (b *Balancer) Deregister(ctx context.Context, be lb.Backend) error {
	t, err := b.target(be)
	if err != nil {
		// Never registered: nothing to take out.
		b.log.Debug("nothing to deregister", "node", be.NodeID, "why", err)
		return nil
	}
	_, err = b.client.DeregisterTargets(ctx, &elbv2.DeregisterTargetsInput{
		TargetGroupArn: awssdk.String(b.cfg.TargetGroupARN), Targets: []types.TargetDescription{t.sdk()}})
	if err != nil {
		if code, _ := awsclient.Code(err); code == "InvalidTarget" {
			b.forget(t)
			return nil // the instance is gone: so is its registration
		}
		return b.fail("deregistering node "+be.NodeID+" (target "+t.String()+")", err)
	}
	b.forget(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, b.drain)
	defer cancel()
	for {
		h, err := b.health(ctx, t)
		switch {
		case err != nil && ctx.Err() != nil:
			return fmt.Errorf("elbv2: node %s (target %s) still draining after %s: %w", be.NodeID, t, time.Since(start).Round(time.Millisecond), ctx.Err())
		case err != nil:
			return err
		case h == nil || h.State != types.TargetHealthStateEnumDraining:
			b.log.Info("target deregistered", "node", be.NodeID, "target", t.String(), "drained_in", time.Since(start).Round(time.Millisecond))
			return nil
		}
		tm := time.NewTimer(b.poll)
		select {
		case <-ctx.Done():
			tm.Stop()
			return fmt.Errorf("elbv2: node %s (target %s) still draining after %s: %w", be.NodeID, t, time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-tm.C:
		}
	}
}

func (b *Balancer) forget(t target) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.known, t)
}

// health returns the target's health (nil: not registered).
func (b *Balancer) health(ctx context.Context, t target) (*types.TargetHealth, error) {
	out, err := b.client.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{
		TargetGroupArn: awssdk.String(b.cfg.TargetGroupARN), Targets: []types.TargetDescription{t.sdk()}})
	if err != nil {
		if code, _ := awsclient.Code(err); code == "InvalidTarget" {
			return nil, nil
		}
		return nil, b.fail("describing the health of target "+t.String(), err)
	}
	for _, d := range out.TargetHealthDescriptions {
		if d.Target == nil || awssdk.ToString(d.Target.Id) != t.id {
			continue
		}
		if t.port != 0 && d.Target.Port != nil && int(*d.Target.Port) != t.port {
			continue
		}
		if d.TargetHealth != nil && d.TargetHealth.Reason == types.TargetHealthReasonEnumNotRegistered {
			return nil, nil
		}
		return d.TargetHealth, nil
	}
	return nil, nil
}

// BackendHealth is nil when the group reports the node's target healthy.
func (b *Balancer) BackendHealth(ctx context.Context, be lb.Backend) error {
	t, err := b.target(be)
	if err != nil {
		return fmt.Errorf("%w: %w", lb.ErrUnhealthy, err)
	}
	h, err := b.health(ctx, t)
	switch {
	case err != nil:
		return err
	case h == nil:
		return fmt.Errorf("%w: elbv2: target %s is not registered", lb.ErrUnhealthy, t)
	case h.State == types.TargetHealthStateEnumHealthy:
		return nil
	}
	msg := fmt.Sprintf("elbv2: target %s is %s", t, h.State)
	if h.Reason != "" {
		msg += " (" + string(h.Reason)
		if d := awssdk.ToString(h.Description); d != "" {
			msg += ": " + d
		}
		msg += ")"
	}
	return fmt.Errorf("%w: %s", lb.ErrUnhealthy, msg)
}

// Backends lists the group's targets that are not draining. NodeID and
// Address are known for the targets this process registered; the others
// carry their MachineID (target_type instance) or Address (ip).
func (b *Balancer) Backends(ctx context.Context) ([]lb.Backend, error) {
	out, err := b.client.DescribeTargetHealth(ctx, &elbv2.DescribeTargetHealthInput{TargetGroupArn: awssdk.String(b.cfg.TargetGroupARN)})
	if err != nil {
		return nil, b.fail("listing the targets", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var list []lb.Backend
	for _, d := range out.TargetHealthDescriptions {
		if d.Target == nil || d.TargetHealth != nil && d.TargetHealth.State == types.TargetHealthStateEnumDraining {
			continue
		}
		t := target{id: awssdk.ToString(d.Target.Id), port: int(awssdk.ToInt32(d.Target.Port))}
		be, ok := b.known[t]
		if !ok {
			be, ok = b.known[target{id: t.id}]
		}
		if !ok {
			if b.cfg.TargetType == TargetIP {
				be = lb.Backend{Address: net.JoinHostPort(t.id, strconv.Itoa(t.port))}
			} else {
				be = lb.Backend{MachineID: t.id}
			}
		}
		list = append(list, be)
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].NodeID+list[i].MachineID+list[i].Address < list[j].NodeID+list[j].MachineID+list[j].Address
	})
	return list, nil
}

func (b *Balancer) fail(what string, err error) error {
	hint := ""
	switch code, _ := awsclient.Code(err); code {
	case "TargetGroupNotFound":
		hint = " (check target_group_arn and region)"
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		hint = " (the credentials lack an elasticloadbalancing permission: see docs/aws.md)"
	case "InvalidTarget":
		hint = " (the instance is not running, or not in the target group's VPC)"
	}
	if awsclient.NoCredentials(err) {
		hint = " (no usable AWS credentials in the server's environment)"
	}
	return fmt.Errorf("elbv2: %s in %s: %w%s", what, b.cfg.TargetGroupARN, err, hint)
}
