package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/provider/aws/awstest"
)

// awsEnv is the environment of a goscaler process that talks to the fake
// EC2: the test's clean environment without any AWS setting of the machine,
// plus the fake's credentials and region.
func awsEnv(e awstest.Env) []string {
	var out []string
	for _, kv := range cleanEnv() {
		if !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return append(out, e.Environ()...)
}

// TestAWSNoOrphanAfterCrash runs the real server with a cluster of EC2
// instances on the fake EC2 of this test process, and kills it (SIGKILL)
// the moment its RunInstances has launched the instance, before the answer
// reaches it, so that the machine ID is never stored. The restarted server
// adopts that instance: the node goes in service on it, no second instance
// is launched, nothing is orphaned.
func TestAWSNoOrphanAfterCrash(t *testing.T) {
	t.Parallel()
	fake := awstest.Start(t, awstest.Options{})
	env := awstest.Env{Endpoint: fake.URL(), Region: awstest.Region, Fake: fake}
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	addr := freeAddr(t)
	name := uniqueName("aws")
	cfg := filepath.Join(dir, "goscaler.yaml")
	src := fmt.Sprintf(`server:
  listen: %q
  data_dir: %q
  tick: 200ms
  log_level: debug
clusters:
  - name: %s
    min: 1
    max: 2
    provider:
      type: aws
      endpoint_url: %s
      region: %s
      image_id: %s
      instance_type: t3.micro
      subnet_id: %s
      port: 8080
      max_attempts: 1
      poll_interval: 50ms
    health_check: {type: none}
`, addr, dataDir, name, fake.URL(), awstest.Region, awstest.DefaultImageID, awstest.DefaultSubnetID)
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "check", "config", cfg); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d): %s%s", code, out, errOut)
	}

	reached, killed := make(chan struct{}), make(chan struct{})
	fake.FailNext("RunInstances", 1, awstest.Fault{Apply: true, Drop: true, Then: func() {
		close(reached)
		<-killed
	}})
	srv := startServerEnv(t, cfg, addr, dataDir, "", awsEnv(env))
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		close(killed)
		t.Fatal("RunInstances never reached the fake EC2")
	}
	srv.kill9()
	close(killed)
	launched := fake.Live()
	if len(launched) != 1 {
		t.Fatalf("EC2 has %d instances at the crash, want the 1 just launched", len(launched))
	}
	t.Logf("killed the server (kill -9) right after RunInstances launched %s", launched[0].ID)

	srv = startServerEnv(t, cfg, addr, dataDir, "", awsEnv(env))
	in := waitInService(t, srv.api, name, 1, 30*time.Second)
	if in[0].MachineID != launched[0].ID || in[0].Address != launched[0].PrivateIP+":8080" {
		t.Errorf("in service: %+v; want the node on instance %s at %s:8080", in[0], launched[0].ID, launched[0].PrivateIP)
	}
	time.Sleep(time.Second) // several reconcile ticks
	if n := len(fake.CallsOf("RunInstances")); n != 1 {
		t.Errorf("%d RunInstances calls, want 1", n)
	}
	if live := fake.Live(); len(live) != 1 || live[0].ID != launched[0].ID {
		t.Errorf("live instances %+v, want only %s", live, launched[0].ID)
	}
	acts, err := srv.api.activities("cluster=" + name)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.Kind == "remove_orphan" || a.Kind == "node_failed" {
			t.Errorf("unexpected activity %s", a)
		}
	}
	for _, c := range fake.Calls() {
		if c.AccessKey != awstest.AccessKeyID {
			t.Errorf("%s signed with %q, want the test's key", c.Action, c.AccessKey)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "server.log")); err == nil && strings.Contains(string(b), awstest.SecretAccessKey) {
		t.Error("the server log holds the secret access key")
	}
}
