package controller

import (
	"context"
	"testing"
)

// Every reading, node- or cluster-scoped, carries the number of nodes in
// service and out of maintenance (for "per node" counters).
func TestReadingsCarryInService(t *testing.T) {
	t.Parallel()
	e := newEnv(t, clusterYAML("    min: 3\n    max: 5", "100ms", `      - {name: queue, type: fake, instance: "{{I}}", scope: cluster, interval: 100ms}
`))
	e.src.SetAll(1)
	e.src.SetCluster(10)
	e.start()
	nodes := e.waitInService("web", 3)
	e.waitCollections("web", "queue", 3)
	e.waitCollections("web", "inflight", 3)

	check := func(want int) {
		t.Helper()
		reads := e.src.Reads()
		var cluster, node int
		for _, r := range reads[len(reads)/2:] {
			if r.InService != want {
				continue
			}
			if r.NodeID == "" {
				cluster++
			} else {
				node++
			}
		}
		if cluster == 0 || node == 0 {
			t.Fatalf("no recent cluster (%d) and node (%d) readings with InService %d in %+v", cluster, node, want, reads[len(reads)-3:])
		}
	}
	check(3)

	// A node in maintenance is not read and not counted.
	n := nodes[0]
	n.Maintenance = true
	if _, err := e.st.NodeUpdate(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	before := len(e.src.Reads())
	e.waitCollections("web", "queue", 3)
	e.waitCollections("web", "inflight", 3)
	for _, r := range e.src.Reads()[before:] {
		if r.NodeID == n.ID {
			t.Fatalf("node %s in maintenance was read", n.ID)
		}
	}
	check(2)
}
