package elbv2

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
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
)

// launch runs n instances and returns them as backends serving on port.
func launch(t *testing.T, e awstest.Env, n, port int) []lb.Backend {
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
			Address: fmt.Sprintf("%s:%d", awssdk.ToString(in.PrivateIpAddress), port)})
	}
	return bes
}

// targetGroup makes a target group with a deregistration delay.
func targetGroup(t *testing.T, e awstest.Env, typ types.TargetTypeEnum, delay time.Duration) string {
	t.Helper()
	ctx := context.Background()
	c := e.ELBv2(t)
	out, err := c.CreateTargetGroup(ctx, &elbv2.CreateTargetGroupInput{
		Name: awssdk.String(fmt.Sprintf("gs-%s-%d", typ, time.Now().UnixNano()%1e9)), Protocol: types.ProtocolEnumHttp,
		Port: awssdk.Int32(80), VpcId: awssdk.String(e.VpcID), TargetType: typ})
	if err != nil {
		t.Fatal(err)
	}
	arn := awssdk.ToString(out.TargetGroups[0].TargetGroupArn)
	_, err = c.ModifyTargetGroupAttributes(ctx, &elbv2.ModifyTargetGroupAttributesInput{TargetGroupArn: awssdk.String(arn),
		Attributes: []types.TargetGroupAttribute{{Key: awssdk.String("deregistration_delay.timeout_seconds"),
			Value: awssdk.String(fmt.Sprint(int(delay / time.Second)))}}})
	if err != nil {
		t.Fatal(err)
	}
	return arn
}

func newBalancer(t *testing.T, e awstest.Env, arn string, mod func(*Config)) *Balancer {
	t.Helper()
	c := &Config{Settings: e.Settings(), TargetGroupARN: arn, PollInterval: plugin.Duration(20 * time.Millisecond)}
	if mod != nil {
		mod(c)
	}
	b, err := c.New(lb.Env{Cluster: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return b.(*Balancer)
}

// TestRegisterDeregister holds the lb contract on an instance target group:
// Register twice is one target, Deregister waits out the deregistration
// delay, unknown backends deregister quietly.
func TestRegisterDeregister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	arn := targetGroup(t, e, types.TargetTypeEnumInstance, time.Second)
	b := newBalancer(t, e, arn, nil)
	bes := launch(t, e, 2, 8080)
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
		t.Errorf("BackendHealth of a registered running instance: %v", err)
	}
	if fake := e.Fake; fake != nil {
		if tg := fake.Targets(arn); len(tg) != 2 || tg[0].Port != 8080 {
			t.Errorf("targets %+v, want two on port 8080", tg)
		}
	}

	start := time.Now()
	if err := b.Deregister(ctx, bes[0]); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("Deregister returned after %s, before the 1s deregistration delay", d)
	}
	if err := b.BackendHealth(ctx, bes[0]); !errors.Is(err, lb.ErrUnhealthy) {
		t.Errorf("BackendHealth after Deregister = %v, want ErrUnhealthy", err)
	}
	got, err = b.Backends(ctx)
	if err != nil || len(got) != 1 || got[0] != bes[1] {
		t.Fatalf("Backends after Deregister = %+v, %v", got, err)
	}
	if err := b.Deregister(ctx, bes[0]); err != nil {
		t.Errorf("Deregister of a deregistered backend: %v", err)
	}
	if err := b.Deregister(ctx, lb.Backend{NodeID: "web-9", Address: "10.9.9.9:8080"}); err != nil {
		t.Errorf("Deregister of a backend without a machine: %v", err)
	}
	if err := b.Register(ctx, lb.Backend{NodeID: "web-9", Address: "10.9.9.9:8080"}); err == nil ||
		!strings.Contains(err.Error(), "machine ID") {
		t.Errorf("Register without a machine ID = %v", err)
	}

	// Another balancer on the same group (a restarted server) sees the
	// target by its instance ID.
	other := newBalancer(t, e, arn, nil)
	got, err = other.Backends(ctx)
	if err != nil || len(got) != 1 || got[0].MachineID != bes[1].MachineID {
		t.Errorf("a new balancer's Backends = %+v, %v", got, err)
	}
}

// TestDeregisterBounded: a long deregistration delay is cut by ctx or by
// drain_timeout, reported as an error.
func TestDeregisterBounded(t *testing.T) {
	t.Parallel()
	e := awstest.Setup(t, awstest.Options{})
	arn := targetGroup(t, e, types.TargetTypeEnumInstance, 300*time.Second)
	bes := launch(t, e, 2, 80)
	b := newBalancer(t, e, arn, func(c *Config) { c.DrainTimeout = plugin.Duration(200 * time.Millisecond) })
	for _, be := range bes {
		if err := b.Register(context.Background(), be); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	err := b.Deregister(context.Background(), bes[0])
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still draining") {
		t.Errorf("Deregister past drain_timeout = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = newBalancer(t, e, arn, nil).Deregister(ctx, bes[1])
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Deregister past ctx = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the bounded Deregisters took %s", d)
	}
}

// TestIPTargets registers the host of the address, with the address's port
// or the configured one.
func TestIPTargets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	arn := targetGroup(t, e, types.TargetTypeEnumIp, 0)
	be := lb.Backend{NodeID: "web-1", Address: "10.1.2.3:9000"}
	b := newBalancer(t, e, arn, func(c *Config) { c.TargetType = TargetIP })
	if err := b.Register(ctx, be); err != nil {
		t.Fatal(err)
	}
	fixed := newBalancer(t, e, arn, func(c *Config) { c.TargetType, c.Port = TargetIP, 80 })
	if err := fixed.Register(ctx, lb.Backend{NodeID: "web-2", Address: "10.1.2.4:9000"}); err != nil {
		t.Fatal(err)
	}
	tg := fake.Targets(arn)
	if len(tg) != 2 || tg[0] != (awstest.Target{ID: "10.1.2.3", Port: 9000}) || tg[1] != (awstest.Target{ID: "10.1.2.4", Port: 80}) {
		t.Errorf("targets %+v", tg)
	}
	if err := b.BackendHealth(ctx, be); err != nil {
		t.Errorf("BackendHealth: %v", err)
	}
	if err := b.Register(ctx, lb.Backend{NodeID: "web-3", Address: "node.example:80"}); err == nil {
		t.Error("Register of a host name in an ip group must fail")
	}
	if err := b.Deregister(ctx, be); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Backends(ctx); len(got) != 1 || got[0].Address != "10.1.2.4:80" {
		t.Errorf("Backends = %+v", got)
	}
}

// TestHealth reports the target group's view: initial, unhealthy with its
// reason, healthy, unregistered.
func TestHealth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{HealthyAfter: 300 * time.Millisecond})
	fake := e.RequireFake(t)
	arn := targetGroup(t, e, types.TargetTypeEnumInstance, 0)
	b := newBalancer(t, e, arn, nil)
	be := launch(t, e, 1, 8080)[0]
	if err := b.BackendHealth(ctx, be); !errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("BackendHealth before Register = %v", err)
	}
	if err := b.Register(ctx, be); err != nil {
		t.Fatal(err)
	}
	if err := b.BackendHealth(ctx, be); !errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "initial") {
		t.Errorf("BackendHealth right after Register = %v, want initial", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.BackendHealth(ctx, be) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.BackendHealth(ctx, be); err != nil {
		t.Fatalf("BackendHealth after the checks passed: %v", err)
	}
	fake.SetTargetHealth(arn, be.MachineID, 8080, "unhealthy", "Target.ResponseCodeMismatch")
	if err := b.BackendHealth(ctx, be); !errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "unhealthy (Target.ResponseCodeMismatch") {
		t.Errorf("BackendHealth of an unhealthy target = %v", err)
	}
	fake.FailNext("DescribeTargetHealth", 10, awstest.Fault{Code: "AccessDenied", Status: 403})
	if err := b.BackendHealth(ctx, be); err == nil || errors.Is(err, lb.ErrUnhealthy) || !strings.Contains(err.Error(), "docs/aws.md") {
		t.Errorf("BackendHealth when the API refuses = %v; want an error that is not ErrUnhealthy, with a hint", err)
	}
}

// TestRetriesAndErrors: throttling and 5xx are retried; a wrong target group
// and an instance that is not running are clear errors.
func TestRetriesAndErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	arn := targetGroup(t, e, types.TargetTypeEnumInstance, 0)
	b := newBalancer(t, e, arn, nil)
	bes := launch(t, e, 2, 8080)
	fake.FailNext("RegisterTargets", 1, awstest.Fault{Code: "Throttling", Status: 400})
	fake.FailNext("RegisterTargets", 1, awstest.Fault{Code: "InternalFailure", Status: 500})
	if err := b.Register(ctx, bes[0]); err != nil {
		t.Fatalf("Register through throttling and a 500: %v", err)
	}
	if n := len(fake.CallsOf("RegisterTargets")); n != 3 {
		t.Errorf("%d RegisterTargets attempts, want 3", n)
	}
	fake.FailNext("DescribeTargetHealth", 1, awstest.Fault{Drop: true})
	if err := b.Deregister(ctx, bes[0]); err != nil {
		t.Fatalf("Deregister through a dropped connection: %v", err)
	}

	wrong := newBalancer(t, e, strings.Replace(arn, "targetgroup/", "targetgroup/x", 1), nil)
	if err := wrong.Register(ctx, bes[1]); err == nil || !strings.Contains(err.Error(), "TargetGroupNotFound") ||
		!strings.Contains(err.Error(), "check target_group_arn") {
		t.Errorf("Register in an unknown group = %v", err)
	}
	fake.SetState(bes[1].MachineID, "stopped", "")
	if err := b.Register(ctx, bes[1]); err == nil || !strings.Contains(err.Error(), "InvalidTarget") {
		t.Errorf("Register of a stopped instance = %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	good := "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/0123456789abcdef"
	cases := []struct {
		c    Config
		want []string
	}{
		{Config{TargetGroupARN: good}, nil},
		{Config{TargetGroupARN: good, TargetType: "ip", Port: 8080}, nil},
		{Config{}, []string{"target_group_arn: required"}},
		{Config{TargetGroupARN: "web", TargetType: "lambda", Port: -1, PollInterval: -1, DrainTimeout: -1},
			[]string{`target_group_arn: "web" is not`, `target_type: "lambda"`, "port: -1", "poll_interval", "drain_timeout"}},
	}
	for _, tc := range cases {
		err := tc.c.Validate()
		if len(tc.want) == 0 && err != nil {
			t.Errorf("Validate(%+v) = %v", tc.c, err)
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Validate(%+v) = %v, want %q", tc.c, err, w)
			}
		}
	}
}
