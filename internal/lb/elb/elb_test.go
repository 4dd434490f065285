package elb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	elb "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancing/types"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
)

func launch(t *testing.T, e awstest.Env, n int) []lb.Backend {
	t.Helper()
	out, err := e.EC2(t).RunInstances(context.Background(), &ec2.RunInstancesInput{
		ImageId: awssdk.String(e.ImageID), InstanceType: ec2types.InstanceType(e.InstType),
		MinCount: awssdk.Int32(int32(n)), MaxCount: awssdk.Int32(int32(n))})
	if err != nil {
		t.Fatal(err)
	}
	var bes []lb.Backend
	for i, in := range out.Instances {
		bes = append(bes, lb.Backend{NodeID: fmt.Sprintf("web-%d", i+1), MachineID: awssdk.ToString(in.InstanceId),
			Address: awssdk.ToString(in.PrivateIpAddress) + ":80"})
	}
	return bes
}

// loadBalancer makes a classic load balancer with connection draining.
func loadBalancer(t *testing.T, e awstest.Env, drain time.Duration) string {
	t.Helper()
	ctx := context.Background()
	c := e.ELB(t)
	name := fmt.Sprintf("gs-%d", time.Now().UnixNano()%1e9)
	_, err := c.CreateLoadBalancer(ctx, &elb.CreateLoadBalancerInput{LoadBalancerName: awssdk.String(name),
		Listeners:         []types.Listener{{Protocol: awssdk.String("HTTP"), LoadBalancerPort: 80, InstancePort: awssdk.Int32(80)}},
		AvailabilityZones: []string{awstest.DefaultAZ}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ModifyLoadBalancerAttributes(ctx, &elb.ModifyLoadBalancerAttributesInput{LoadBalancerName: awssdk.String(name),
		LoadBalancerAttributes: &types.LoadBalancerAttributes{ConnectionDraining: &types.ConnectionDraining{
			Enabled: drain > 0, Timeout: awssdk.Int32(int32(drain / time.Second))}}})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func newBalancer(t *testing.T, e awstest.Env, name string, mod func(*Config)) *Balancer {
	t.Helper()
	c := &Config{Settings: e.Settings(), LoadBalancerName: name, PollInterval: plugin.Duration(20 * time.Millisecond)}
	if mod != nil {
		mod(c)
	}
	b, err := c.New(lb.Env{Cluster: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*Balancer)
}

// TestRegisterDeregister holds the lb contract on a classic load balancer:
// registering twice is once, Deregister waits for connection draining,
// unknown backends deregister quietly, health follows the balancer.
func TestRegisterDeregister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	name := loadBalancer(t, e, time.Second)
	b := newBalancer(t, e, name, nil)
	bes := launch(t, e, 2)
	for _, be := range []lb.Backend{bes[0], bes[0], bes[1]} {
		if err := b.Register(ctx, be); err != nil {
			t.Fatalf("Register %s: %v", be.NodeID, err)
		}
	}
	got, err := b.Backends(ctx)
	if err != nil || len(got) != 2 || got[0] != bes[0] || got[1] != bes[1] {
		t.Fatalf("Backends = %+v, %v; want %+v", got, err, bes)
	}
	if err := b.BackendHealth(ctx, bes[0]); err != nil {
		t.Errorf("BackendHealth: %v", err)
	}
	start := time.Now()
	if err := b.Deregister(ctx, bes[0]); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("Deregister returned after %s, before the 1s connection draining", d)
	}
	if err := b.BackendHealth(ctx, bes[0]); !errors.Is(err, lb.ErrUnhealthy) {
		t.Errorf("BackendHealth after Deregister = %v", err)
	}
	if got, err := b.Backends(ctx); err != nil || len(got) != 1 || got[0] != bes[1] {
		t.Errorf("Backends after Deregister = %+v, %v", got, err)
	}
	if err := b.Deregister(ctx, bes[0]); err != nil {
		t.Errorf("Deregister of a deregistered instance: %v", err)
	}
	if err := b.Deregister(ctx, lb.Backend{NodeID: "web-9"}); err != nil {
		t.Errorf("Deregister without a machine: %v", err)
	}
	if err := b.Register(ctx, lb.Backend{NodeID: "web-9", Address: "10.0.0.9:80"}); err == nil {
		t.Error("Register without a machine ID must fail")
	}
}

// TestDrainingBoundedAndHealth: a long connection draining is cut by
// drain_timeout; health states and API errors are told apart.
func TestDrainingBoundedAndHealth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{HealthyAfter: 200 * time.Millisecond})
	fake := e.RequireFake(t)
	name := loadBalancer(t, e, 300*time.Second)
	b := newBalancer(t, e, name, func(c *Config) { c.DrainTimeout = plugin.Duration(150 * time.Millisecond) })
	bes := launch(t, e, 2)
	for _, be := range bes {
		if err := b.Register(ctx, be); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.BackendHealth(ctx, bes[0]); !errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "OutOfService") {
		t.Errorf("BackendHealth while registering = %v", err)
	}
	time.Sleep(250 * time.Millisecond)
	if err := b.BackendHealth(ctx, bes[0]); err != nil {
		t.Errorf("BackendHealth once registered: %v", err)
	}
	fake.SetInstanceHealth(name, bes[1].MachineID, "OutOfService", "Instance has failed at least the UnhealthyThreshold number of health checks consecutively.")
	if err := b.BackendHealth(ctx, bes[1]); !errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "UnhealthyThreshold") {
		t.Errorf("BackendHealth of a failing instance = %v", err)
	}
	err := b.Deregister(ctx, bes[0])
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still draining") {
		t.Errorf("Deregister past drain_timeout = %v", err)
	}
	if err := b.BackendHealth(ctx, bes[0]); !errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "draining") {
		t.Errorf("BackendHealth while draining = %v", err)
	}
	if got, _ := b.Backends(ctx); len(got) != 1 || got[0].MachineID != bes[1].MachineID {
		t.Errorf("Backends leave draining instances out: %+v", got)
	}

	fake.FailNext("RegisterInstancesWithLoadBalancer", 2, awstest.Fault{Code: "Throttling", Status: 400})
	if err := b.Register(ctx, bes[0]); err != nil {
		t.Errorf("Register through throttling: %v", err)
	}
	wrong := newBalancer(t, e, "no-such-lb", nil)
	if err := wrong.Register(ctx, bes[0]); err == nil || !strings.Contains(err.Error(), "LoadBalancerNotFound") ||
		!strings.Contains(err.Error(), "check load_balancer_name") {
		t.Errorf("Register with an unknown load balancer = %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := (&Config{LoadBalancerName: "web-lb"}).Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	err := (&Config{PollInterval: -1}).Validate()
	if err == nil || !strings.Contains(err.Error(), "load_balancer_name: required") || !strings.Contains(err.Error(), "poll_interval") {
		t.Errorf("Validate = %v", err)
	}
	err = (&Config{LoadBalancerName: "-web_lb", Settings: awsSettings("http://user:pw@x")}).Validate()
	if err == nil || !strings.Contains(err.Error(), `load_balancer_name: "-web_lb"`) || !strings.Contains(err.Error(), "endpoint_url: must not hold credentials") {
		t.Errorf("Validate = %v", err)
	}
}

func awsSettings(endpoint string) awsclient.Settings {
	return awsclient.Settings{EndpointURL: endpoint}
}
