package aws

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
)

var ownerSeq struct {
	sync.Mutex
	n int
}

// testOwner is an owner tag unique to one test, so that tests sharing an
// external endpoint do not see each other's instances.
func testOwner(t *testing.T) string {
	ownerSeq.Lock()
	defer ownerSeq.Unlock()
	ownerSeq.n++
	return fmt.Sprintf("gs-test-%d-%d", time.Now().UnixNano()%1e9, ownerSeq.n)
}

// testConfig is a provider configuration for e with quick polling.
func testConfig(e awstest.Env) *Config {
	c := &Config{
		Settings:       e.Settings(),
		ImageID:        e.ImageID,
		InstanceType:   e.InstType,
		SubnetID:       e.SubnetID,
		Port:           8080,
		PollInterval:   plugin.Duration(10 * time.Millisecond),
		AddressTimeout: plugin.Duration(5 * time.Second),
	}
	if e.SecurityGroup != "" {
		c.SecurityGroupIDs = []string{e.SecurityGroup}
	}
	return c
}

func newProvider(t *testing.T, c *Config, owner string) *Provider {
	t.Helper()
	p, err := c.New(provider.Env{Owner: owner, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p.(*Provider)
}

func spec(cluster, node string) provider.NodeSpec {
	return provider.NodeSpec{Cluster: cluster, NodeID: node, Vars: map[string]string{"Cluster": cluster, "NodeID": node}}
}

func tagsOf(tags []types.Tag) map[string]string {
	out := map[string]string{}
	for _, t := range tags {
		out[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	return out
}

// TestContract holds the provider contract against the endpoint (the fake,
// or GOSCALER_TEST_AWS_ENDPOINT): idempotent Create, tags on the instance and
// its volumes, Get, List per owner and cluster, Delete and the typed
// not-found of a gone machine.
func TestContract(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	owner := testOwner(t)
	p := newProvider(t, testConfig(e), owner)

	m, err := p.Create(ctx, spec("web", "web-1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !strings.HasPrefix(m.ID, "i-") || m.Cluster != "web" || m.NodeID != "web-1" || m.State != provider.MachineRunning {
		t.Fatalf("Create returned %+v", m)
	}
	if !strings.HasSuffix(m.Address, ":8080") || m.Meta["private_ip"] == "" || m.Address != m.Meta["private_ip"]+":8080" {
		t.Errorf("address %q, want the private IP %q with port 8080", m.Address, m.Meta["private_ip"])
	}

	// Idempotent: the same node gets the same instance.
	again, err := p.Create(ctx, spec("web", "web-1"))
	if err != nil || again.ID != m.ID {
		t.Fatalf("second Create = %s, %v; want %s", again.ID, err, m.ID)
	}

	// Tags on the instance and on its volumes.
	client := e.EC2(t)
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{m.ID}})
	if err != nil {
		t.Fatal(err)
	}
	in := out.Reservations[0].Instances[0]
	want := map[string]string{TagOwner: owner, TagCluster: "web", TagNode: "web-1", "Name": "web-1"}
	for k, v := range want {
		if got := tagsOf(in.Tags)[k]; got != v {
			t.Errorf("instance tag %s = %q, want %q", k, got, v)
		}
	}
	vols, err := client.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: awssdk.String("attachment.instance-id"), Values: []string{m.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Volumes) == 0 {
		t.Fatalf("instance %s has no volume", m.ID)
	}
	for _, v := range vols.Volumes {
		for k, val := range want {
			if got := tagsOf(v.Tags)[k]; got != val {
				t.Errorf("volume %s tag %s = %q, want %q", awssdk.ToString(v.VolumeId), k, got, val)
			}
		}
	}

	got, err := p.Get(ctx, m.ID)
	if err != nil || got.ID != m.ID || got.State != provider.MachineRunning || got.Address != m.Address {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	m2, err := p.Create(ctx, spec("web", "web-2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create(ctx, spec("api", "api-1")); err != nil {
		t.Fatal(err)
	}
	list, err := p.List(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != m.ID || list[1].ID != m2.ID {
		t.Fatalf("List(web) = %+v, want %s and %s", list, m.ID, m2.ID)
	}

	// Another installation sees none of it and cannot touch it.
	other := newProvider(t, testConfig(e), owner+"-other")
	if l, err := other.List(ctx, "web"); err != nil || len(l) != 0 {
		t.Errorf("another owner's List(web) = %+v, %v; want nothing", l, err)
	}
	if _, err := other.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("another owner's Get = %v, want ErrNotFound", err)
	}
	if err := other.Delete(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("another owner's Delete = %v, want ErrNotFound", err)
	}
	if _, err := p.Get(ctx, m.ID); err != nil {
		t.Fatalf("the instance must survive another owner's Delete: %v", err)
	}

	if err := p.Delete(ctx, m.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := p.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := p.Delete(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := p.Get(ctx, "i-0123456789abcdef9"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get of an unknown instance = %v, want ErrNotFound", err)
	}
	if err := p.Delete(ctx, "not-an-id"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Delete of a malformed ID = %v, want ErrNotFound", err)
	}
	list, err = p.List(ctx, "web")
	if err != nil || len(list) != 1 || list[0].ID != m2.ID {
		t.Fatalf("List(web) after Delete = %+v, %v; want only %s", list, err, m2.ID)
	}
}

// TestCreateOneInstancePerNode: the fake's view — however Create is retried,
// a node has one instance, and every RunInstances carries the node's token.
func TestCreateOneInstancePerNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	owner := testOwner(t)
	p := newProvider(t, testConfig(e), owner)

	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			m, err := p.Create(ctx, spec("web", "web-1"))
			if err != nil {
				t.Errorf("Create %d: %v", i, err)
			}
			ids[i] = m.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent Creates of one node returned %v", ids)
		}
	}
	if live := fake.Live(); len(live) != 1 {
		t.Fatalf("%d instances for one node: %+v", len(live), live)
	}
	token := ClientToken(owner, "web", "web-1")
	for _, c := range fake.CallsOf("RunInstances") {
		if got := c.Params.Get("ClientToken"); got != token {
			t.Errorf("RunInstances with ClientToken %q, want %q", got, token)
		}
	}
	if in := fake.Live()[0]; in.ClientToken != token || len(token) > 64 {
		t.Errorf("instance token %q (want %q, at most 64 characters)", in.ClientToken, token)
	}
	if ClientToken(owner, "web", "web-2") == token || ClientToken(owner+"x", "web", "web-1") == token {
		t.Error("client tokens of different nodes or owners must differ")
	}
}

// TestCreateAfterLostAnswer: RunInstances takes effect but its answer is
// lost (the connection drops, or the attempt times out); the retry with the
// same ClientToken gets the same instance. When every attempt is lost, the
// next Create finds the instance by its tags.
func TestCreateAfterLostAnswer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fault awstest.Fault
		n     int
	}{
		{"dropped connection", awstest.Fault{Apply: true, Drop: true}, 1},
		{"timeout", awstest.Fault{Apply: true, Delay: 3 * time.Second}, 1},
		{"500 after launch", awstest.Fault{Apply: true, Code: "InternalError"}, 2},
		{"every attempt lost", awstest.Fault{Apply: true, Drop: true}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := awstest.Setup(t, awstest.Options{})
			fake := e.RequireFake(t)
			c := testConfig(e)
			c.RequestTimeout = plugin.Duration(300 * time.Millisecond)
			p := newProvider(t, c, testOwner(t))
			fake.FailNext("RunInstances", tc.n, tc.fault)

			m, err := p.Create(ctx, spec("web", "web-1"))
			runs := fake.CallsOf("RunInstances")
			if tc.n >= c.MaxAttempts {
				if !errors.Is(err, provider.ErrTransient) {
					t.Fatalf("Create with every answer lost = %v, want ErrTransient", err)
				}
				if len(runs) != c.MaxAttempts {
					t.Errorf("%d RunInstances attempts, want %d", len(runs), c.MaxAttempts)
				}
				m, err = p.Create(ctx, spec("web", "web-1"))
				if err != nil {
					t.Fatalf("Create after the lost answers: %v", err)
				}
				if n := len(fake.CallsOf("RunInstances")); n != len(runs) {
					t.Errorf("the retried Create called RunInstances again (%d calls, was %d): it must find the tagged instance", n, len(runs))
				}
			} else {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if len(runs) != tc.n+1 {
					t.Errorf("%d RunInstances attempts, want %d", len(runs), tc.n+1)
				}
			}
			live := fake.Live()
			if len(live) != 1 || live[0].ID != m.ID {
				t.Fatalf("instances %+v, want only %s", live, m.ID)
			}
		})
	}
}

// TestErrorsAreTyped: EC2's error codes become the provider's sentinels,
// capacity errors are not retried by the SDK (the controller backs off), and
// throttling and 5xx are retried until the attempts run out.
func TestErrorsAreTyped(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		mod      func(*Config)
		fault    *awstest.Fault
		limit    int
		want     error
		code     string
		attempts int // RunInstances calls; 0: not checked
	}{
		{name: "capacity", fault: &awstest.Fault{Code: "InsufficientInstanceCapacity"}, want: provider.ErrCapacity,
			code: "InsufficientInstanceCapacity", attempts: 1},
		{name: "instance limit", limit: -1, want: provider.ErrQuota, code: "InstanceLimitExceeded", attempts: 1},
		{name: "vcpu limit", fault: &awstest.Fault{Code: "VcpuLimitExceeded"}, want: provider.ErrQuota, code: "VcpuLimitExceeded", attempts: 1},
		{name: "throttled", fault: &awstest.Fault{Code: "RequestLimitExceeded"}, want: provider.ErrTransient,
			code: "RequestLimitExceeded", attempts: 4},
		{name: "throttling", fault: &awstest.Fault{Code: "Throttling", Status: 400}, want: provider.ErrTransient,
			code: "Throttling", attempts: 4},
		{name: "server error", fault: &awstest.Fault{Code: "InternalError"}, want: provider.ErrTransient, code: "InternalError", attempts: 4},
		{name: "unavailable", fault: &awstest.Fault{Code: "Unavailable"}, want: provider.ErrTransient, code: "Unavailable", attempts: 4},
		{name: "unknown AMI", mod: func(c *Config) { c.ImageID = "ami-0000000000000dead" }, want: provider.ErrConfig,
			code: "InvalidAMIID.NotFound", attempts: 1},
		{name: "unknown subnet", mod: func(c *Config) { c.SubnetID = "subnet-0000000000000dead" }, want: provider.ErrConfig,
			code: "InvalidSubnetID.NotFound", attempts: 1},
		{name: "unknown security group", mod: func(c *Config) { c.SecurityGroupIDs = []string{"sg-0000000000000dead"} },
			want: provider.ErrConfig, code: "InvalidGroup.NotFound", attempts: 1},
		{name: "unknown key pair", mod: func(c *Config) { c.KeyName = "nobody" }, want: provider.ErrConfig,
			code: "InvalidKeyPair.NotFound", attempts: 1},
		{name: "unknown instance profile", mod: func(c *Config) { c.IAMInstanceProfile = "nobody" }, want: provider.ErrConfig,
			code: "InvalidParameterValue", attempts: 1},
		{name: "unknown launch template", mod: func(c *Config) {
			c.LaunchTemplate, c.ImageID, c.InstanceType = &LaunchTemplate{Name: "nope"}, "", ""
		}, want: provider.ErrConfig, code: "InvalidLaunchTemplateName.NotFoundException", attempts: 1},
		{name: "unauthorized", fault: &awstest.Fault{Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."},
			want: provider.ErrConfig, code: "UnauthorizedOperation", attempts: 1},
		{name: "user data variable", mod: func(c *Config) { c.UserData = "#!/bin/sh\necho {{.Nope}}\n" }, want: provider.ErrConfig,
			code: "user_data", attempts: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := awstest.Setup(t, awstest.Options{})
			fake := e.RequireFake(t)
			c := testConfig(e)
			if tc.mod != nil {
				tc.mod(c)
			}
			if tc.limit != 0 {
				fake.SetInstanceLimit(1)
				if _, err := newProvider(t, testConfig(e), "someone-else").Create(context.Background(), spec("x", "x-1")); err != nil {
					t.Fatal(err)
				}
			}
			if tc.fault != nil {
				fake.FailNext("RunInstances", 10, *tc.fault)
			}
			before := len(fake.CallsOf("RunInstances"))
			_, err := newProvider(t, c, testOwner(t)).Create(context.Background(), spec("web", "web-1"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Create = %v, want %v", err, tc.want)
			}
			for _, other := range []error{provider.ErrCapacity, provider.ErrQuota, provider.ErrTransient, provider.ErrConfig, provider.ErrNotFound} {
				if !errors.Is(tc.want, other) && errors.Is(err, other) {
					t.Errorf("error %v is also %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tc.code) || !strings.Contains(err.Error(), "web-1") {
				t.Errorf("error %q does not name %s and the node", err, tc.code)
			}
			if n := len(fake.CallsOf("RunInstances")) - before; tc.attempts > 0 && n != tc.attempts || tc.attempts == 0 && n != 0 {
				t.Errorf("%d RunInstances attempts, want %d", n, tc.attempts)
			}
			if len(fake.Live()) > map[bool]int{true: 1, false: 0}[tc.limit != 0] {
				t.Errorf("a failed Create left instances: %+v", fake.Live())
			}
		})
	}
}

// TestRetriedThenSucceeds: throttling and 5xx are retried (same token, the
// SDK's attempt header counting up) and the call succeeds; other calls too.
func TestRetriedThenSucceeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	owner := testOwner(t)
	p := newProvider(t, testConfig(e), owner)
	fake.FailNext("RunInstances", 1, awstest.Fault{Code: "RequestLimitExceeded"})
	fake.FailNext("RunInstances", 1, awstest.Fault{Code: "InternalError"})
	m, err := p.Create(ctx, spec("web", "web-1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	runs := fake.CallsOf("RunInstances")
	if len(runs) != 3 {
		t.Fatalf("%d RunInstances calls, want 3", len(runs))
	}
	for i, c := range runs {
		if c.Attempt != i+1 || c.Params.Get("ClientToken") != runs[0].Params.Get("ClientToken") {
			t.Errorf("call %d: attempt %d, token %q", i, c.Attempt, c.Params.Get("ClientToken"))
		}
		if c.AccessKey != awstest.AccessKeyID || c.Region != awstest.Region {
			t.Errorf("call %d signed by %q in %q, want the test credentials in %s", i, c.AccessKey, c.Region, awstest.Region)
		}
	}
	fake.FailNext("DescribeInstances", 2, awstest.Fault{Code: "ServiceUnavailable", Status: 503})
	if l, err := p.List(ctx, "web"); err != nil || len(l) != 1 || l[0].ID != m.ID {
		t.Fatalf("List through two 503s = %+v, %v", l, err)
	}
	fake.FailNext("TerminateInstances", 1, awstest.Fault{Drop: true})
	if err := p.Delete(ctx, m.ID); err != nil {
		t.Fatalf("Delete through a dropped connection: %v", err)
	}
	if len(fake.Live()) != 0 {
		t.Fatalf("instances left: %+v", fake.Live())
	}
}

// TestSlowEndpoint: a call that hangs is bounded by the caller's context and
// reported as transient.
func TestSlowEndpoint(t *testing.T) {
	t.Parallel()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	p := newProvider(t, testConfig(e), testOwner(t))
	fake.Inject(func(c awstest.Call) *awstest.Fault { return &awstest.Fault{Delay: time.Minute} })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.List(ctx, "web")
	if !errors.Is(err, provider.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("List against a hanging endpoint = %v, want ErrTransient and the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("List took %s after its deadline of 300ms", d)
	}
}

// TestMachineStates: stopped instances are listed as stopped with their
// reason; shutting-down and terminated ones are gone.
func TestMachineStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{ShuttingDownFor: time.Hour})
	fake := e.RequireFake(t)
	p := newProvider(t, testConfig(e), testOwner(t))
	a, _ := p.Create(ctx, spec("web", "web-1"))
	b, _ := p.Create(ctx, spec("web", "web-2"))
	if a.ID == "" || b.ID == "" {
		t.Fatal("Create failed")
	}
	fake.SetState(a.ID, "stopped", "Client.InstanceInitiatedShutdown: Instance initiated shutdown")
	fake.SetState(b.ID, "shutting-down", "")
	m, err := p.Get(ctx, a.ID)
	if err != nil || m.State != provider.MachineStopped || !strings.Contains(m.Reason, "Instance initiated shutdown") {
		t.Errorf("Get of a stopped instance = %+v, %v", m, err)
	}
	if _, err := p.Get(ctx, b.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Get of a shutting-down instance = %v, want ErrNotFound", err)
	}
	if err := p.Delete(ctx, b.ID); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("Delete of a shutting-down instance = %v, want ErrNotFound", err)
	}
	l, err := p.List(ctx, "web")
	if err != nil || len(l) != 1 || l[0].ID != a.ID || l[0].State != provider.MachineStopped {
		t.Errorf("List = %+v, %v; want only the stopped %s", l, err, a.ID)
	}
	// The stopped node's instance goes with Delete.
	if err := p.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if in, _ := fake.Instance(a.ID); in.State != "shutting-down" {
		t.Errorf("after Delete the instance is %s", in.State)
	}
}

// TestCreateAfterItsInstanceIsGone: the token of a node whose instance was
// terminated cannot launch another one: Create says the machine is gone, so
// the controller replaces the node.
func TestCreateAfterItsInstanceIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	p := newProvider(t, testConfig(e), testOwner(t))
	m, err := p.Create(ctx, spec("web", "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	fake.SetState(m.ID, "terminated", "Server.SpotInstanceTermination")
	_, err = p.Create(ctx, spec("web", "web-1"))
	if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), m.ID) {
		t.Fatalf("Create of a node whose instance is gone = %v, want ErrNotFound naming %s", err, m.ID)
	}
	if len(fake.Live()) != 0 {
		t.Errorf("instances %+v", fake.Live())
	}
}

// TestPublicAddress waits for the public IP of a pending instance; without
// one (a private subnet) the instance is terminated and the error is a
// configuration error.
func TestPublicAddress(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("assigned", func(t *testing.T) {
		t.Parallel()
		e := awstest.Setup(t, awstest.Options{PendingFor: 100 * time.Millisecond})
		e.RequireFake(t)
		c := testConfig(e)
		c.Address = AddressPublic
		m, err := newProvider(t, c, testOwner(t)).Create(ctx, spec("web", "web-1"))
		if err != nil {
			t.Fatal(err)
		}
		if m.Meta["public_ip"] == "" || m.Address != m.Meta["public_ip"]+":8080" {
			t.Errorf("machine %+v: want the public IP with port 8080", m)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		e := awstest.Setup(t, awstest.Options{NoPublicIP: true})
		fake := e.RequireFake(t)
		c := testConfig(e)
		c.Address = AddressPublic
		_, err := newProvider(t, c, testOwner(t)).Create(ctx, spec("web", "web-1"))
		if !errors.Is(err, provider.ErrConfig) || !strings.Contains(err.Error(), "public IP") {
			t.Fatalf("Create without a public IP = %v, want ErrConfig", err)
		}
		if len(fake.Live()) != 0 {
			t.Errorf("the useless instance was left running: %+v", fake.Live())
		}
	})
}

// TestLaunchTemplateAndUserData launches from a template made through the
// API, with every RunInstances parameter and the user data rendered with the
// node's variables.
func TestLaunchTemplateAndUserData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	lt, err := e.EC2(t).CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: awssdk.String("web-template"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{ImageId: awssdk.String(awstest.DefaultImageID), InstanceType: types.InstanceTypeT3Small},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ltc := range []LaunchTemplate{{Name: "web-template"}, {ID: awssdk.ToString(lt.LaunchTemplate.LaunchTemplateId), Version: "$Latest"}} {
		c := testConfig(e)
		c.LaunchTemplate, c.ImageID, c.InstanceType = &ltc, "", ""
		c.KeyName = awstest.DefaultKeyName
		c.IAMInstanceProfile = "arn:aws:iam::" + awstest.AccountID + ":instance-profile/" + awstest.DefaultProfile
		c.UserData = "#cloud-config\nruncmd:\n  - [/opt/app, --node, '{{.NodeID}}', --cluster, '{{.Cluster}}', --port, '{{.Port}}', --zone, '{{.Zone}}']\n"
		c.Tags = map[string]string{"team": "platform", "node-copy": "{{.NodeID}}"}
		owner := testOwner(t)
		p := newProvider(t, c, owner)
		s := spec("web", "web-7")
		s.Vars["Zone"] = "a"
		m, err := p.Create(ctx, s)
		if err != nil {
			t.Fatalf("Create from %+v: %v", ltc, err)
		}
		in, _ := fake.Instance(m.ID)
		if in.ImageID != awstest.DefaultImageID || in.InstanceType != "t3.small" || in.LaunchTemplateID == "" ||
			in.KeyName != awstest.DefaultKeyName || in.Profile != awstest.DefaultProfile {
			t.Errorf("instance %+v: want the template's image and type, the key and the profile", in)
		}
		ud, _ := base64.StdEncoding.DecodeString(in.UserData)
		want := "#cloud-config\nruncmd:\n  - [/opt/app, --node, 'web-7', --cluster, 'web', --port, '8080', --zone, 'a']\n"
		if string(ud) != want {
			t.Errorf("user data %q, want %q", ud, want)
		}
		if in.Tags["team"] != "platform" || in.Tags["node-copy"] != "web-7" || in.Tags[TagOwner] != owner {
			t.Errorf("tags %v", in.Tags)
		}
	}
}

// TestListPaginates follows NextToken.
func TestListPaginates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{PageSize: 2})
	fake := e.RequireFake(t)
	p := newProvider(t, testConfig(e), testOwner(t))
	for i := range 5 {
		if _, err := p.Create(ctx, spec("web", fmt.Sprintf("web-%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	l, err := p.List(ctx, "web")
	if err != nil || len(l) != 5 {
		t.Fatalf("List = %d machines, %v; want 5", len(l), err)
	}
	pages := 0
	for _, c := range fake.CallsOf("DescribeInstances") {
		if c.Params.Get("NextToken") != "" {
			pages++
		}
	}
	if pages == 0 {
		t.Error("List never asked for a second page")
	}
}

// TestCredentials: no credentials is a configuration error sent nowhere,
// and secrets appear in no error or log line.
func TestCredentials(t *testing.T) {
	t.Parallel()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	c := testConfig(e)
	c.LoadOptions = append(c.LoadOptions, config.WithCredentialsProvider(awssdk.CredentialsProviderFunc(
		func(context.Context) (awssdk.Credentials, error) {
			return awssdk.Credentials{}, errors.New("no credentials in this test")
		})))
	var logs bytes.Buffer
	pr, err := c.New(provider.Env{Owner: testOwner(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pr.Create(context.Background(), spec("web", "web-1"))
	if !errors.Is(err, provider.ErrConfig) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("Create without credentials = %v, want ErrConfig with a hint", err)
	}
	if n := len(fake.Calls()); n != 0 {
		t.Errorf("%d calls reached the endpoint without credentials", n)
	}

	// With credentials, a failure's error and the logs hold no secret.
	good := newProvider(t, testConfig(e), testOwner(t))
	good.log = slog.New(slog.NewTextHandler(&logs, nil))
	fake.FailNext("RunInstances", 1, awstest.Fault{Code: "UnauthorizedOperation"})
	_, err = good.Create(context.Background(), spec("web", "web-1"))
	if err == nil {
		t.Fatal("want an error")
	}
	m, err := good.Create(context.Background(), spec("web", "web-2"))
	if err != nil {
		t.Fatal(err)
	}
	text := err2s(err) + logs.String() + fmt.Sprint(m)
	if strings.Contains(text, awstest.SecretAccessKey) {
		t.Errorf("the secret key leaked: %s", text)
	}
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestConfigValidate reports every problem with its key.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		c    Config
		want []string
	}{
		{"ok ami", Config{ImageID: "ami-0123456789abcdef0", InstanceType: "t3.micro"}, nil},
		{"ok template", Config{LaunchTemplate: &LaunchTemplate{Name: "web", Version: "3"}, Address: "public", Port: 443}, nil},
		{"nothing", Config{}, []string{"image_id: required", "instance_type: required"}},
		{"bad ids", Config{ImageID: "image-1", InstanceType: "big", SubnetID: "net-1", SecurityGroupIDs: []string{"sg-0123456789abcdef0", "web"},
			IAMInstanceProfile: "has space"}, []string{
			`image_id: "image-1" is not an AMI ID`, `instance_type: "big" is not an instance type`, `subnet_id: "net-1" is not a subnet ID`,
			`security_group_ids[1]: "web" is not a security group ID`, `iam_instance_profile: "has space"`}},
		{"template", Config{LaunchTemplate: &LaunchTemplate{ID: "lt-1", Name: "x", Version: "latest"}}, []string{
			"launch_template: give its id: or its name:, not both", "launch_template.version: \"latest\""}},
		{"template empty", Config{LaunchTemplate: &LaunchTemplate{}}, []string{"launch_template: give its id: or its name:"}},
		{"template id", Config{LaunchTemplate: &LaunchTemplate{ID: "lt-1"}}, []string{`launch_template.id: "lt-1"`}},
		{"misc", Config{ImageID: "ami-0123456789abcdef0", InstanceType: "t3.micro", Address: "elastic", Port: 70000,
			UserData: "{{.NodeID", Tags: map[string]string{"goscaler:node": "x", "aws:x": "y", "ok": "{{"},
			PollInterval: -1},
			[]string{`address: "elastic"`, "port: 70000", "user_data: template", "tags.goscaler:node: the goscaler: prefix",
				"tags.aws:x: the aws: prefix", "tags.ok: template", "poll_interval: must not be negative"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestDecodeFromYAML decodes the provider from YAML through the registry,
// with file lines on errors and the settings' keys inline.
func TestDecodeFromYAML(t *testing.T) {
	t.Parallel()
	var doc = `region: eu-west-1
endpoint_url: http://127.0.0.1:1
max_attempts: 3
image_id: ami-0123456789abcdef0
instance_type: t3.micro
address: public
port: 8080
`
	c := decode(t, doc)
	cfg := c.(*Config)
	if cfg.Region != "eu-west-1" || cfg.EndpointURL != "http://127.0.0.1:1" || cfg.MaxAttempts != 3 || cfg.Port != 8080 {
		t.Errorf("decoded %+v", cfg)
	}
	_, err := provider.Registry.Decode(TypeName, yamlNode(t, "image_id: ami-0123456789abcdef0\ninstance_type: t3.micro\nendpoint_url: ftp://x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3: endpoint_url") {
		t.Errorf("Decode = %v; want the bad endpoint_url at line 3", err)
	}
	_, err = provider.Registry.Decode(TypeName, yamlNode(t, "image_id: ami-0123456789abcdef0\naccess_key: AKIA\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "access_key") {
		t.Errorf("Decode = %v; want the unknown access_key at line 2", err)
	}
}

// TestNoRegion: a provider without a region anywhere fails at New with a
// configuration error. (Not parallel: it clears the region variables.)
func TestNoRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	c := &Config{ImageID: "ami-0123456789abcdef0", InstanceType: "t3.micro"}
	c.LoadOptions = awstest.LoadOptions("")
	_, err := c.New(provider.Env{Owner: "x"})
	if !errors.Is(err, provider.ErrConfig) || !strings.Contains(err.Error(), "region") {
		t.Fatalf("New without a region = %v", err)
	}
}

func yamlNode(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

func decode(t *testing.T, doc string) provider.Config {
	t.Helper()
	c, err := provider.Registry.Decode(TypeName, yamlNode(t, doc))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return c
}

// TestCreateFindsStoppedInstance: a node whose tagged instance is stopped
// gets it back as a stopped machine at once (no wait for an address), so the
// controller fails and replaces the node.
func TestCreateFindsStoppedInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := awstest.Setup(t, awstest.Options{})
	fake := e.RequireFake(t)
	c := testConfig(e)
	c.Address = AddressPublic
	p := newProvider(t, c, testOwner(t))
	m, err := p.Create(ctx, spec("web", "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	fake.SetState(m.ID, "stopped", "Client.UserInitiatedShutdown: User initiated shutdown")
	start := time.Now()
	again, err := p.Create(ctx, spec("web", "web-1"))
	if err != nil || again.ID != m.ID || again.State != provider.MachineStopped || again.Address != "" {
		t.Fatalf("Create of a node with a stopped instance = %+v, %v", again, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Create waited %s for the address of a stopped instance", d)
	}
	if n := len(fake.CallsOf("RunInstances")); n != 1 {
		t.Errorf("%d RunInstances calls, want 1", n)
	}
}
