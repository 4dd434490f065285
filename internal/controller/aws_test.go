package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/lb/elbv2"
	lbfake "github.com/goscaler/goscaler/internal/lb/fake"
	"github.com/goscaler/goscaler/internal/provider"
	paws "github.com/goscaler/goscaler/internal/provider/aws"
	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
	pfake "github.com/goscaler/goscaler/internal/provider/fake"
	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

// The aws provider and the elbv2 balancer as the controller builds them from
// YAML, with the fake's isolated credentials (never the machine's).
type awsTestProvider struct {
	paws.Config `yaml:",inline"`
}

func (c *awsTestProvider) New(env provider.Env) (provider.Provider, error) {
	c.LoadOptions = awstest.LoadOptions(awstest.Region)
	return c.Config.New(env)
}

type elbv2TestBalancer struct {
	elbv2.Config `yaml:",inline"`
}

func (c *elbv2TestBalancer) New(env lb.Env) (lb.Balancer, error) {
	c.LoadOptions = awstest.LoadOptions(awstest.Region)
	return c.Config.New(env)
}

func init() {
	provider.Registry.Register("aws-test", func() provider.Config { return &awsTestProvider{} })
	lb.Registry.Register("elbv2-test", func() lb.Config { return &elbv2TestBalancer{} })
}

// awsYAML is a cluster web of EC2 instances on the fake at url.
func awsYAML(url, bounds, extra string) string {
	return fmt.Sprintf(`
server:
  tick: 50ms
clusters:
  - name: web
%s
    provider:
      type: aws-test
      endpoint_url: %s
      region: %s
      image_id: %s
      instance_type: t3.micro
      subnet_id: %s
      port: 8080
      max_backoff: 20ms
      poll_interval: 10ms
%s`, bounds, url, awstest.Region, awstest.DefaultImageID, awstest.DefaultSubnetID, extra)
}

// instancesOf returns the fake's instances (terminated ones too) tagged
// with a node.
func instancesOf(fake *awstest.Server, nodeID string) []awstest.Instance {
	var out []awstest.Instance
	for _, in := range fake.Instances() {
		if in.Tags[paws.TagNode] == nodeID {
			out = append(out, in)
		}
	}
	return out
}

// TestAWSNoOrphanAfterCrash: RunInstances reaches EC2 and launches the
// instance, but its answer is lost and the server stops before it stores
// the machine ID. The next server adopts the instance: one instance for the
// node, never a second one, never an orphan. Without a restart, the launch
// job's retry finds the instance by its tags.
func TestAWSNoOrphanAfterCrash(t *testing.T) {
	t.Parallel()
	for _, restart := range []bool{true, false} {
		name := map[bool]string{true: "restart", false: "retry"}[restart]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := awstest.Start(t, awstest.Options{})
			e := newEnv(t, awsYAML(fake.URL(), "    min: 1\n    max: 3", "      max_attempts: 1\n    health_check: {type: none}\n"))
			launched := make(chan string, 1)
			var once sync.Once
			fake.FailNext("RunInstances", 1, awstest.Fault{Apply: true, Drop: true, Then: func() {
				once.Do(func() { launched <- "web-1" })
			}})
			e.start()
			select {
			case <-launched:
			case <-time.After(20 * time.Second):
				t.Fatal("RunInstances never reached the fake")
			}
			if restart {
				e.stop() // the "crash": nothing more runs on this server
				n := e.node("web-1")
				if n.MachineID != "" {
					t.Fatalf("web-1 stored machine %s before the crash; the test needs it unknown", n.MachineID)
				}
				if live := fake.Live(); len(live) != 1 {
					t.Fatalf("after the crash EC2 has %d instances, want the 1 launched", len(live))
				}
				e.build()
				e.start()
			}
			in := e.waitInService("web", 1)
			insts := instancesOf(fake, "web-1")
			if in[0].ID != "web-1" || len(insts) != 1 || in[0].MachineID != insts[0].ID {
				t.Fatalf("in service %+v; instances of web-1 %+v: want web-1 on its one instance", in, insts)
			}
			if n := len(fake.CallsOf("RunInstances")); n != 1 {
				t.Errorf("%d RunInstances calls, want 1", n)
			}
			time.Sleep(300 * time.Millisecond) // a few reconcile ticks
			live := fake.Live()
			if len(live) != 1 || live[0].ID != in[0].MachineID {
				t.Errorf("live instances %+v, want only web-1's", live)
			}
			if n := len(e.kind("web", "remove_orphan")) + len(e.kind("web", "node_failed")); n != 0 {
				t.Errorf("%d orphan/failure activities", n)
			}
		})
	}
}

// TestAWSClusterBehindTargetGroup runs a cluster of EC2 instances behind an
// ELBv2 target group whose target health is the nodes' health check: nodes
// go in service once their target is healthy, an unhealthy target's node is
// replaced, and scale-in terminates an instance only after the target
// group's deregistration delay.
func TestAWSClusterBehindTargetGroup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	fake := awstest.Start(t, awstest.Options{HealthyAfter: 200 * time.Millisecond})
	arn := fake.AddTargetGroup("web", "instance", 8080, time.Second)
	e := newEnv(t, awsYAML(fake.URL(), "    min: 2\n    max: 3", fmt.Sprintf(`    load_balancer:
      type: elbv2-test
      endpoint_url: %s
      region: %s
      target_group_arn: %s
      max_backoff: 20ms
      poll_interval: 20ms
    health_check: {type: load_balancer, interval: 100ms, timeout: 100ms, unhealthy_threshold: 2}
`, fake.URL(), awstest.Region, arn))).start()

	in := e.waitInService("web", 2)
	for _, n := range in {
		insts := instancesOf(fake, n.ID)
		if len(insts) != 1 || insts[0].ID != n.MachineID || n.Address != insts[0].PrivateIP+":8080" {
			t.Errorf("node %+v, instances %+v", n, insts)
		}
		evs, err := e.st.NodeEvents(ctx, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		last := evs[len(evs)-1]
		if registered := registeredAt(fake, n.MachineID); registered.IsZero() || last.At.Sub(registered) < 150*time.Millisecond {
			t.Errorf("node %s in service at %s, its target registered at %s: it must wait for the target to be healthy (200ms)",
				n.ID, last.At.Format("15:04:05.000"), registered.Format("15:04:05.000"))
		}
	}
	if tg := fake.Targets(arn); len(tg) != 2 {
		t.Fatalf("targets %+v, want 2", tg)
	}

	// The target group's API refuses for a while: that says nothing about
	// the nodes, which stay in service.
	var refuse atomic.Bool
	refuse.Store(true)
	fake.Inject(func(c awstest.Call) *awstest.Fault {
		if c.Action == "DescribeTargetHealth" && refuse.Load() {
			return &awstest.Fault{Code: "AccessDenied", Status: 403}
		}
		return nil
	})
	waitFor(t, 10*time.Second, "health checks to hit the refusing API", func() (bool, string) {
		n := 0
		for _, c := range fake.CallsOf("DescribeTargetHealth") {
			if time.Since(c.Time) < 2*time.Second {
				n++
			}
		}
		return n >= 10, fmt.Sprint(n)
	})
	refuse.Store(false)
	if got := e.nodes("web", store.NodeInService); len(got) != 2 || len(e.kind("web", "node_failed")) != 0 {
		t.Fatalf("API errors failed nodes: in service %d, node_failed %+v", len(got), e.kind("web", "node_failed"))
	}

	// The target group finds web-1 unhealthy: it is replaced.
	victim := in[0]
	fake.SetTargetHealth(arn, victim.MachineID, 8080, "unhealthy", "Target.Timeout")
	waitFor(t, 20*time.Second, victim.ID+" to be replaced", func() (bool, string) {
		n := e.node(victim.ID)
		inst, _ := fake.Instance(victim.MachineID)
		return n.State == store.NodeTerminated && inst.State == "terminated" && len(e.nodes("web", store.NodeInService)) == 2,
			fmt.Sprintf("%s %s (%s), instance %s", n.ID, n.State, n.Reason, inst.State)
	})
	failed := e.kind("web", "node_failed")
	if len(failed) == 0 || !strings.Contains(failed[0].Error, "Target.Timeout") {
		t.Errorf("node_failed activities %+v: want the target group's reason", failed)
	}

	// Scale in: the instance is terminated only after the deregistration delay.
	if _, err := e.ctl.Scale(ctx, "web", 3, "test"); err != nil {
		t.Fatal(err)
	}
	e.waitInService("web", 3)
	if _, err := e.ctl.Scale(ctx, "web", 2, "test"); err != nil {
		t.Fatal(err)
	}
	var gone store.Node
	waitFor(t, 20*time.Second, "a node to be removed", func() (bool, string) {
		for _, n := range e.nodes("web") {
			if n.State == store.NodeTerminated && n.ID != victim.ID {
				gone = n
				return true, ""
			}
		}
		return false, fmt.Sprint(e.nodes("web"))
	})
	var deregAt, termAt time.Time
	for _, c := range fake.Calls() {
		switch {
		case c.Action == "DeregisterTargets" && c.Params.Get("Targets.member.1.Id") == gone.MachineID && deregAt.IsZero():
			deregAt = c.Time
		case c.Action == "TerminateInstances" && c.Params.Get("InstanceId.1") == gone.MachineID && termAt.IsZero():
			termAt = c.Time
		}
	}
	if deregAt.IsZero() || termAt.IsZero() || termAt.Sub(deregAt) < 900*time.Millisecond {
		t.Errorf("%s deregistered at %s, terminated at %s: want the 1s deregistration delay between",
			gone.ID, deregAt.Format("15:04:05.000"), termAt.Format("15:04:05.000"))
	}
	e.waitInService("web", 2)
	var want []string
	for _, n := range e.nodes("web", store.NodeInService) {
		want = append(want, n.MachineID)
	}
	waitFor(t, 10*time.Second, "only in-service instances to be live and registered", func() (bool, string) {
		var live, targets []string
		for _, in := range fake.Live() {
			live = append(live, in.ID)
		}
		for _, tg := range fake.Targets(arn) {
			targets = append(targets, tg.ID)
		}
		return strings.Join(live, ",") == strings.Join(want, ",") && strings.Join(targets, ",") == strings.Join(want, ","),
			fmt.Sprintf("live %v, targets %v, want %v", live, targets, want)
	})
}

// registeredAt is when a target was first registered (RegisterTargets).
func registeredAt(fake *awstest.Server, id string) time.Time {
	for _, c := range fake.CallsOf("RegisterTargets") {
		if c.Params.Get("Targets.member.1.Id") == id {
			return c.Time
		}
	}
	return time.Time{}
}

// TestCapacityAndQuotaBackOff: a launch that fails for capacity or quota
// fails its node at once with a clear activity (no retry of the same node),
// and the reconciler launches a replacement only after the cluster's
// launch backoff, which grows with every failure.
func TestCapacityAndQuotaBackOff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		why  string
	}{
		{"capacity", provider.ErrCapacity, "no capacity"},
		{"quota", provider.ErrQuota, "quota is reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			e := newEnv(t, clusterYAML("    min: 1\n    max: 3", "1h", ""), withClock(clock))
			cause := fmt.Errorf("fake: InsufficientInstanceCapacity or InstanceLimitExceeded: %w", tc.err)
			e.prov.OnCreate(func(provider.NodeSpec) { e.prov.SetNextCreateErr(cause) })
			e.start()

			failedNode := func(id string) {
				t.Helper()
				waitFor(t, 10*time.Second, id+" to fail", func() (bool, string) {
					n, err := e.st.NodeGet(context.Background(), id)
					if err != nil {
						return false, err.Error()
					}
					return !n.State.Active(), string(n.State)
				})
				n := e.node(id)
				if n.State != store.NodeFailed && n.State != store.NodeTerminated || !strings.Contains(n.Reason, tc.why) {
					t.Errorf("%s is %s (%q), want failed because %s", id, n.State, n.Reason, tc.why)
				}
			}
			failedNode("web-1")
			// Longer than River's first retry (1s): the failed node is not retried.
			time.Sleep(1500 * time.Millisecond)
			if c := e.prov.CreateCallsFor("web-1"); c != 1 {
				t.Errorf("web-1: %d Create calls, want 1", c)
			}
			if got := len(e.nodes("web")); got != 1 {
				t.Fatalf("%d nodes before the backoff passed, want 1", got)
			}
			acts := e.kind("web", "node_failed")
			if len(acts) != 1 || acts[0].Node != "web-1" || acts[0].Status != store.ActivityFailed ||
				!strings.Contains(acts[0].Cause, tc.why) || !strings.Contains(acts[0].Error, "InstanceLimitExceeded") {
				t.Fatalf("node_failed activities %+v", acts)
			}

			clock.Advance(2100 * time.Millisecond) // first backoff: 2s
			failedNode("web-2")
			clock.Advance(3 * time.Second) // second backoff: 4s
			time.Sleep(500 * time.Millisecond)
			if got := len(e.nodes("web")); got != 2 {
				t.Fatalf("%d nodes 3s into a 4s backoff, want 2", got)
			}
			// The cloud has capacity again: the next launch succeeds.
			e.prov.OnCreate(nil)
			clock.Advance(1100 * time.Millisecond)
			in := e.waitInService("web", 1)
			if in[0].ID != "web-3" {
				t.Errorf("in service: %s, want web-3", in[0].ID)
			}
		})
	}
}

// TestHealthByBalancerNeedsAReporter: health_check type load_balancer with a
// balancer that does not check its backends is refused when the controller
// is built, naming the cluster and the balancer.
func TestHealthByBalancerNeedsAReporter(t *testing.T) {
	t.Parallel()
	inst := instanceName(t)
	cfg, err := config.Parse("t.yaml", []byte(strings.ReplaceAll(`
clusters:
  - name: web
    max: 1
    provider: {type: fake, instance: "{{I}}"}
    load_balancer: {type: fake, instance: "{{I}}"}
    health_check: {type: load_balancer}
`, "{{I}}", inst)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pfake.Forget(inst); lbfake.Forget(inst) })
	st, err := sqlstore.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = New(context.Background(), Options{Config: cfg, Store: st, Owner: testOwner, DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), `cluster "web": health_check.type load_balancer: load balancer fake does not check its backends`) {
		t.Fatalf("New = %v", err)
	}
}
