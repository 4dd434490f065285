package controller

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/goscaler/goscaler/internal/store"
)

// Plan is what bringing a cluster to a size would do: the nodes launched or
// removed and the provider and load balancer calls, in order.
type Plan struct {
	// Active counts the nodes that are active (pending to in service).
	Active int `json:"active"`
	// Target is the size planned for.
	Target int `json:"target"`
	// Launch names the nodes that would be launched (the names the next
	// launches get, unless other launches come first).
	Launch []string `json:"launch"`
	// Remove names the nodes that would be drained and terminated.
	Remove []string `json:"remove"`
	// Calls are the provider and load balancer calls, in order.
	Calls []string `json:"calls"`
}

// surplus picks n of the active nodes to remove: nodes not yet in service
// first, then the oldest in service (nodes in maintenance are kept, unless
// the cluster is stopped, when every node goes).
func surplus(active []store.Node, n int, stopped bool) []store.Node {
	var pick []store.Node
	for _, node := range active {
		if node.State != store.NodeInService && len(pick) < n {
			pick = append(pick, node)
		}
	}
	for _, node := range removable(active, "oldest") {
		if node.State == store.NodeInService && len(pick) < n {
			pick = append(pick, node)
		}
	}
	if stopped {
		for _, node := range active {
			if node.State == store.NodeInService && node.Maintenance && len(pick) < n {
				pick = append(pick, node)
			}
		}
	}
	return pick
}

// nextNames predicts the names of the next k nodes of a cluster from the
// highest number its nodes (terminated ones included) have.
func nextNames(cluster string, nodes []store.Node, k int) []string {
	var top int64
	for _, n := range nodes {
		if rest, ok := strings.CutPrefix(n.ID, cluster+"-"); ok {
			if v, err := strconv.ParseInt(rest, 10, 64); err == nil && v > top {
				top = v
			}
		}
	}
	out := make([]string, 0, k)
	for i := range k {
		out = append(out, fmt.Sprintf("%s-%d", cluster, top+int64(i)+1))
	}
	return out
}

// plan computes what bringing the cluster from its nodes (all of them,
// terminated ones included) to target would do.
func (c *Controller) plan(cl *cluster, rec store.Cluster, nodes []store.Node, target int) Plan {
	var active []store.Node
	for _, n := range nodes {
		if n.State.Active() {
			active = append(active, n)
		}
	}
	p := Plan{Active: len(active), Target: target, Launch: []string{}, Remove: []string{}, Calls: []string{}}
	switch {
	case target > len(active):
		p.Launch = nextNames(rec.Name, nodes, target-len(active))
		for _, id := range p.Launch {
			p.Calls = append(p.Calls, c.launchCalls(cl, id)...)
		}
	case target < len(active):
		for _, n := range surplus(active, len(active)-target, rec.Stopped) {
			p.Remove = append(p.Remove, n.ID)
			p.Calls = append(p.Calls, c.removeCalls(cl, n)...)
		}
	}
	return p
}

// launchCalls are the calls launching node id makes.
func (c *Controller) launchCalls(cl *cluster, id string) []string {
	calls := []string{fmt.Sprintf("create a machine for node %s (provider %s)", id, cl.cfg.Provider.Type)}
	if cl.bal != nil {
		calls = append(calls, fmt.Sprintf("register %s in the load balancer (%s) once its %s health check passes",
			id, cl.cfg.LoadBalancer.Type, cl.cfg.HealthCheck.Type))
	}
	return calls
}

// removeCalls are the calls removing node n makes.
func (c *Controller) removeCalls(cl *cluster, n store.Node) []string {
	var calls []string
	if cl.bal != nil && n.State == store.NodeInService {
		calls = append(calls, fmt.Sprintf("deregister %s (%s) from the load balancer (%s), draining its requests",
			n.ID, n.Address, cl.cfg.LoadBalancer.Type))
	}
	if n.MachineID != "" {
		calls = append(calls, fmt.Sprintf("delete machine %s of node %s (provider %s)", n.MachineID, n.ID, cl.cfg.Provider.Type))
	} else {
		calls = append(calls, fmt.Sprintf("cancel the launch of node %s (no machine yet)", n.ID))
	}
	return calls
}

// ScalePlan is the answer to a dry-run scale: what setting the desired size
// would do, without doing it.
type ScalePlan struct {
	Plan
	Cluster string `json:"cluster"`
	DryRun  bool   `json:"dry_run"`
	// Desired is the desired size now, NewDesired the one asked for.
	Desired    int  `json:"desired"`
	NewDesired int  `json:"new_desired"`
	Stopped    bool `json:"stopped"`
	// Activity is the dry_run activity that records the plan.
	Activity int64 `json:"activity"`
}

// PlanScale answers what Scale(desired) would do, records it as a dry_run
// activity, and changes nothing.
func (c *Controller) PlanScale(ctx context.Context, clusterName string, desired int, cause string) (ScalePlan, error) {
	cl, err := c.cluster(clusterName)
	if err != nil {
		return ScalePlan{}, err
	}
	rec, err := c.st.ClusterGet(ctx, clusterName)
	if err != nil {
		return ScalePlan{}, err
	}
	if desired < rec.Min || desired > rec.Max {
		return ScalePlan{}, fmt.Errorf("%w: desired %d is outside min..max (%d..%d) of cluster %q", ErrInvalid, desired, rec.Min, rec.Max, clusterName)
	}
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: clusterName})
	if err != nil {
		return ScalePlan{}, err
	}
	next := rec
	next.Desired = desired
	out := ScalePlan{Plan: c.plan(cl, rec, nodes, next.Target()), Cluster: clusterName, DryRun: true,
		Desired: rec.Desired, NewDesired: desired, Stopped: rec.Stopped}
	what := fmt.Sprintf("%s: desired %d → %d would ", cause, rec.Desired, desired)
	switch {
	case rec.Stopped:
		what += "change nothing until the cluster is started (it is stopped)"
	case len(out.Calls) == 0:
		what += fmt.Sprintf("change nothing (%d node(s) active)", out.Active)
	default:
		what += strings.Join(out.Calls, "; ")
	}
	a := c.activity(ctx, c.st, store.Activity{Cluster: clusterName, Kind: KindDryRun, Cause: what,
		Output: "dry run: nothing was done"})
	out.Activity = a.ID
	return out, nil
}

// planDeploy is DeployNodes in a dry run: it records the launches a
// deploy_node step would make and changes nothing.
func (c *Controller) planDeploy(ctx context.Context, cl *cluster, a store.Activity, count int) (string, error) {
	rec, err := c.st.ClusterGet(ctx, cl.cfg.Name)
	if err != nil {
		return "", err
	}
	n := min(count, rec.Max-rec.Desired)
	switch {
	case rec.Stopped:
		return fmt.Sprintf("dry run: cluster %s is stopped: no node would be launched", rec.Name), nil
	case n <= 0:
		return fmt.Sprintf("dry run: already at max (%d): no node would be launched", rec.Max), nil
	}
	nodes, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: rec.Name})
	if err != nil {
		return "", err
	}
	var calls []string
	names := nextNames(rec.Name, nodes, n)
	for _, id := range names {
		calls = append(calls, c.launchCalls(cl, id)...)
	}
	what := fmt.Sprintf("desired %d → %d: would %s", rec.Desired, rec.Desired+n, strings.Join(calls, "; "))
	c.activity(ctx, c.st, store.Activity{Cluster: rec.Name, Trigger: a.Trigger, Kind: KindDryRun,
		Cause: fmt.Sprintf("step %d (deploy_node) of trigger %s: %s", a.Step+1, a.Trigger, what), Output: "dry run: nothing was done"})
	return "dry run: " + what, nil
}

// planRemove is RemoveNodes in a dry run.
func (c *Controller) planRemove(ctx context.Context, cl *cluster, a store.Activity, count int, order string) (string, error) {
	rec, err := c.st.ClusterGet(ctx, cl.cfg.Name)
	if err != nil {
		return "", err
	}
	n := min(count, rec.Desired-rec.Min)
	if n <= 0 {
		return fmt.Sprintf("dry run: already at min (%d): no node would be removed", rec.Min), nil
	}
	in, err := c.st.NodeList(ctx, store.NodeFilter{Cluster: rec.Name, States: []store.NodeState{store.NodeInService}})
	if err != nil {
		return "", err
	}
	candidates := removable(in, order)
	n = min(n, len(candidates))
	if n == 0 {
		return "dry run: no node in service to remove", nil
	}
	var calls []string
	for _, node := range candidates[:n] {
		calls = append(calls, c.removeCalls(cl, node)...)
	}
	what := fmt.Sprintf("desired %d → %d: would %s", rec.Desired, rec.Desired-n, strings.Join(calls, "; "))
	c.activity(ctx, c.st, store.Activity{Cluster: rec.Name, Trigger: a.Trigger, Kind: KindDryRun,
		Cause: fmt.Sprintf("step %d (remove_node) of trigger %s: %s", a.Step+1, a.Trigger, what), Output: "dry run: nothing was done"})
	return "dry run: " + what, nil
}
