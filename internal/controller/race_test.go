package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// A node removed while its machine is being created stays removed: the launch
// that was in flight does not bring it back, and its machine does not outlive it.
func TestScaleInDuringLaunch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 0\n    max: 3", "1h", ""))
	inCreate := make(chan struct{}, 1)
	release := make(chan struct{})
	e.prov.OnCreate(func(s provider.NodeSpec) {
		if s.NodeID == "web-1" {
			inCreate <- struct{}{}
			<-release
		}
	})
	e.start()
	ctx := t.Context()
	if _, err := e.ctl.Scale(ctx, "web", 1, "by test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inCreate:
	case <-time.After(10 * time.Second):
		t.Fatal("web-1's machine was never created")
	}
	if _, err := e.ctl.Scale(ctx, "web", 0, "by test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "web-1 to be terminated", func() (bool, string) {
		n := e.node("web-1")
		return n.State == store.NodeTerminated, string(n.State)
	})
	close(release)
	// The launch job returns; give the reconciler a few ticks.
	waitFor(t, 10*time.Second, "no machine left", func() (bool, string) {
		return len(e.prov.Machines()) == 0, fmt.Sprint(e.prov.Machines())
	})
	time.Sleep(300 * time.Millisecond)
	evs, err := e.st.NodeEvents(ctx, "web-1")
	if err != nil {
		t.Fatal(err)
	}
	var path []string
	for _, ev := range evs {
		path = append(path, string(ev.To))
	}
	if got := strings.Join(path, " → "); strings.Count(got, "terminated") != 1 || !strings.HasSuffix(got, "terminated") {
		t.Errorf("web-1 went %s: a terminated node came back", got)
	}
	if n := e.node("web-1"); n.State != store.NodeTerminated {
		t.Errorf("web-1 is %s, want terminated", n.State)
	}
	if got := len(e.kind("web", "remove_node")); got != 1 {
		t.Errorf("%d remove_node activities, want 1", got)
	}
	if got := len(e.prov.Machines()); got != 0 {
		t.Errorf("%d machines left", got)
	}
}

// A machine that dies while its node boots is noticed by both the launch job
// and the reconciler: the node fails once, is terminated, and stays so.
func TestMachineDiesDuringBoot(t *testing.T) {
	t.Parallel()
	y := strings.Replace(clusterYAML("    min: 1\n    max: 2", "1h", ""), "health_check: {type: none}",
		"health_check: {type: tcp, interval: 100ms, timeout: 50ms}\n    boot_timeout: 1m", 1)
	e := newEnv(t, y)
	// web-1 never answers its health check; its replacement does.
	tcpNodes(t, e, "web-1")
	e.start()
	waitFor(t, 10*time.Second, "web-1 to wait for its health check", func() (bool, string) {
		st := e.nodeState("web-1")
		return st == store.NodeConfiguring, string(st)
	})
	e.prov.Stop("web-1", "exit status 1")
	waitFor(t, 10*time.Second, "web-1 to be terminated", func() (bool, string) {
		n := e.node("web-1")
		return n.State == store.NodeTerminated, string(n.State)
	})
	e.waitInService("web", 1)
	time.Sleep(500 * time.Millisecond) // the launch job's next look at the machine
	if n := e.node("web-1"); n.State != store.NodeTerminated {
		t.Errorf("web-1 is %s (%s), want terminated", n.State, n.Reason)
	}
	if got := len(e.kind("web", "node_failed")); got != 1 {
		t.Errorf("%d node_failed activities for one death, want 1", got)
	}
	if _, ok := e.prov.Machine("web-1"); ok {
		t.Error("web-1's machine is left")
	}
}
