// Package controller keeps every cluster at its desired size and runs what its
// triggers decide. It owns the clusters' runtime: provider, load balancer,
// counter sources and trigger trackers.
//
// Work is split so that nothing is lost and nothing runs twice:
//   - The leader (one server, elected through the store) collects counters,
//     evaluates triggers, checks health, adopts node machines after a restart
//     and reconciles sizes. A decision is written to the store in one
//     transaction (activities, desired size, node rows) before any job runs.
//   - Effects (launching, terminating, action steps) run as durable jobs on
//     any server. Each is idempotent: it resumes from the state in the store.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/agent"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/perfdata"
	"github.com/goscaler/goscaler/internal/policy"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/store"
)

// Clock tells the time; tests inject their own.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options configures a Controller.
type Options struct {
	Config   *config.Config
	Store    store.Store
	ServerID string
	// Owner tags the machines of this installation.
	Owner   string
	DataDir string
	Logger  *slog.Logger
	Clock   Clock
	Metrics *Metrics
	// DryRun, when set, records decisions and the provider and load
	// balancer calls they would make as activities (kind dry_run), but makes
	// none of them: no machine is created or deleted, no load balancer
	// server registered or deregistered, no script run, and no node row
	// created for a launch.
	DryRun bool
}

// Controller runs the clusters.
type Controller struct {
	opts     Options
	st       store.Store
	log      *slog.Logger
	clock    Clock
	metrics  *Metrics
	queue    jobs.Queue
	clusters map[string]*cluster
	order    []string

	// readSem bounds the counter readings in flight (collect_concurrency).
	readSem chan struct{}
	// memory holds the recent window of every series; perf answers graph
	// queries from it, the raw samples and the rollups.
	memory *perfdata.Memory
	perf   *perfdata.Engine
	// agents holds the reports of the node agents.
	agents *agent.Hub
	// leadingSince is when Run last started (heartbeats missed before it,
	// while no server led, do not count).
	leadingMu    sync.RWMutex
	leadingSince time.Time

	// readHook and collectHook, when set (benchmarks), get how long after its
	// tick each reading completed and each collection was stored.
	readHook    func(lag time.Duration)
	collectHook func(took time.Duration)
}

// cluster is one cluster's runtime.
type cluster struct {
	cfg      *config.Cluster
	prov     provider.Provider
	bal      lb.Balancer
	sources  map[string]counter.Source
	triggers map[string]*policy.Threshold
	health   *healthChecker
	pol      *policies // nil without policies
	// ssh is the cluster's SSH pool: one connection per node, shared by
	// the provider, the counters and the actions.
	ssh *sshx.Pool

	// mu serialises this server's changes to the cluster's size.
	mu sync.Mutex

	// viewMu guards view, the in-service nodes (see nodeView), and targets,
	// the counter targets of those nodes by ID.
	viewMu  sync.Mutex
	view    nodeView
	targets map[string]counter.Target

	latestMu sync.RWMutex
	// latest holds the newest aggregate and per-node samples of each counter.
	latest map[string]CounterReading
	// lastFiring is the decision activity of each trigger's latest firing.
	lastFiring map[string]int64
	// launchFailures counts launches that failed in a row, for backoff.
	launchFailures int
	nextLaunchAt   time.Time
	// noted remembers the dry-run plans and orphan reports already
	// recorded, so that the same one is not recorded on every tick.
	noted map[string]notedEntry
}

// notedEntry is a recorded plan or report: its text and when.
type notedEntry struct {
	text string
	at   time.Time
}

// CounterReading is the newest reading of a counter.
type CounterReading struct {
	Aggregate store.Sample   `json:"aggregate"`
	Nodes     []store.Sample `json:"nodes,omitempty"`
	// serving counts the nodes in service when it was read (0: a cluster counter).
	serving int
}

// New builds the runtime of every configured cluster: providers, balancers
// (which start listening) and counter sources. Call SetQueue before Run.
func New(ctx context.Context, opts Options) (*Controller, error) {
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	c := &Controller{opts: opts, st: opts.Store, log: opts.Logger, clock: opts.Clock,
		metrics: opts.Metrics, clusters: map[string]*cluster{}}
	srv := opts.Config.Server
	c.readSem = make(chan struct{}, max(srv.CollectConcurrency, 1))
	c.memory = perfdata.NewMemory(srv.Retention.Memory.D())
	c.perf = &perfdata.Engine{Store: opts.Store, Memory: c.memory, Retention: perfdata.RetentionOf(srv.Retention), Now: c.clock.Now}
	c.agents = agent.NewHub(opts.Store, c.clock.Now, opts.Store.Dialect() == "postgres", opts.Logger)
	for _, cc := range opts.Config.Clusters {
		cl, err := c.buildCluster(ctx, cc)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.clusters[cc.Name] = cl
		c.order = append(c.order, cc.Name)
	}
	return c, nil
}

func (c *Controller) buildCluster(ctx context.Context, cc *config.Cluster) (*cluster, error) {
	log := c.log.With("cluster", cc.Name)
	var sshCfg sshx.Config
	if cc.SSH != nil {
		sshCfg = *cc.SSH
	}
	pool, err := sshx.NewPool(sshCfg, sshx.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", cc.Name, err)
	}
	cl := &cluster{cfg: cc, ssh: pool, sources: map[string]counter.Source{}, targets: map[string]counter.Target{},
		triggers: map[string]*policy.Threshold{}, latest: map[string]CounterReading{}, lastFiring: map[string]int64{},
		noted: map[string]notedEntry{}}
	// Registered before anything can fail, so that Close closes the pool.
	c.clusters[cc.Name] = cl
	prov, err := cc.ProviderConfig.New(provider.Env{Cluster: cc.Name, Owner: c.opts.Owner, DataDir: c.opts.DataDir, Logger: log, SSH: pool})
	if err != nil {
		return nil, fmt.Errorf("cluster %q: provider %s: %w", cc.Name, cc.Provider.Type, err)
	}
	cl.prov = prov
	if cc.BalancerConfig != nil {
		path := ""
		if cc.HealthCheck.Type == "http" {
			path = cc.HealthCheck.Path
		}
		bal, err := cc.BalancerConfig.New(lb.Env{Cluster: cc.Name, HealthPath: path, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("cluster %q: load balancer %s: %w", cc.Name, cc.LoadBalancer.Type, err)
		}
		cl.bal = bal
	}
	for _, k := range cc.Counters {
		src, err := k.Source.New(counter.Env{Cluster: cc.Name, Counter: k.Name, Logger: log, Agents: c.agents, SSH: pool})
		if err != nil {
			return nil, fmt.Errorf("cluster %q: counter %q: %w", cc.Name, k.Name, err)
		}
		cl.sources[k.Name] = src
	}
	aggs := map[string]string{}
	for _, k := range cc.Counters {
		aggs[k.Name] = k.Aggregate
		if k.Scope == counter.ScopeCluster {
			aggs[k.Name] = ""
		}
	}
	for _, t := range cc.Triggers {
		st, err := c.st.TriggerStateGet(ctx, cc.Name, t.Name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("cluster %q: loading trigger %q: %w", cc.Name, t.Name, err)
		}
		cl.triggers[t.Name] = policy.NewThreshold(cc.Name, t, aggs, st)
	}
	cl.health = newHealthChecker(cc.HealthCheck)
	if cl.pol, err = c.buildPolicies(ctx, cc); err != nil {
		return nil, err
	}
	if cc.HealthCheck.Type == config.HealthLoadBalancer {
		rep, ok := cl.bal.(lb.HealthReporter)
		if !ok {
			if closer, ok := cl.bal.(interface{ Close() error }); ok {
				_ = closer.Close()
			}
			return nil, fmt.Errorf("cluster %q: health_check.type %s: load balancer %s does not check its backends: use a balancer that does (elb, elbv2) or another health check type",
				cc.Name, config.HealthLoadBalancer, typeOf(cc.LoadBalancer))
		}
		cl.health.reporter = rep
	}
	return cl, nil
}

// Agents is the hub of the node agents' reports: the API hands it what agents
// send, and the server runs it (on every server, leading or not).
func (c *Controller) Agents() *agent.Hub { return c.agents }

// typeOf is a plugin section's type, "(none)" without one.
func typeOf(p *config.PluginSpec) string {
	if p == nil {
		return "(none)"
	}
	return p.Type
}

// SetQueue gives the controller the job queue its work is enqueued on.
func (c *Controller) SetQueue(q jobs.Queue) { c.queue = q }

// Handlers are the job handlers to run this controller's durable work.
func (c *Controller) Handlers() jobs.Handlers {
	return jobs.Handlers{RunAction: c.runAction, LaunchNode: c.launchNode, TerminateNode: c.terminateNode}
}

// Sync writes every configured cluster's bounds to the store (keeping a
// desired size from before a restart, clamped into the new bounds).
func (c *Controller) Sync(ctx context.Context) error {
	for _, name := range c.order {
		cc := c.clusters[name].cfg
		if _, err := c.st.ClusterUpsert(ctx, store.Cluster{Name: cc.Name, Min: cc.Min, Max: cc.Max, Desired: cc.DesiredOrMin()}); err != nil {
			return fmt.Errorf("storing cluster %q: %w", cc.Name, err)
		}
	}
	return nil
}

// Run does the leader's work until ctx is done: adopt machines, then collect
// counters, evaluate triggers, check health and reconcile sizes every tick,
// and machines and load balancers every server.reconcile_interval.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.recover(ctx); err != nil {
		return err
	}
	now := c.clock.Now()
	c.leadingMu.Lock()
	c.leadingSince = now
	c.leadingMu.Unlock()
	c.memory.Reset(now)
	var wg sync.WaitGroup
	for _, name := range c.order {
		cl := c.clusters[name]
		for _, k := range cl.cfg.Counters {
			wg.Go(func() { c.collectLoop(ctx, cl, k) })
		}
		wg.Go(func() { c.healthLoop(ctx, cl) })
		wg.Go(func() { c.policyLoop(ctx, cl) })
		if cl.cfg.Heartbeat.Timeout > 0 {
			wg.Go(func() { c.heartbeatLoop(ctx, cl) })
		}
	}
	wg.Go(func() { c.housekeeping(ctx) })
	wg.Go(func() { c.sweepLoop(ctx) })
	tick := time.NewTicker(c.opts.Config.Server.Tick.D())
	defer tick.Stop()
	for {
		for _, name := range c.order {
			if err := c.reconcile(ctx, c.clusters[name]); err != nil && ctx.Err() == nil {
				c.log.Error("reconcile failed", "cluster", name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick.C:
		}
	}
}

// Close stops the load balancers, closes the counter sources that hold
// connections of their own (an AMQP connection, an HTTP client) and the SSH
// pools.
func (c *Controller) Close() {
	for _, cl := range c.clusters {
		if closer, ok := cl.bal.(interface{ Close() error }); ok {
			_ = closer.Close()
		}
		for _, src := range cl.sources {
			if closer, ok := src.(interface{ Close() error }); ok {
				_ = closer.Close()
			}
		}
		if cl.ssh != nil {
			_ = cl.ssh.Close()
		}
	}
}

// cluster returns a cluster's runtime or a not-found error.
func (c *Controller) cluster(name string) (*cluster, error) {
	cl, ok := c.clusters[name]
	if !ok {
		return nil, fmt.Errorf("cluster %q: %w", name, store.ErrNotFound)
	}
	return cl, nil
}

// activity records a finished decision.
func (c *Controller) activity(ctx context.Context, st store.Store, a store.Activity) store.Activity {
	now := c.clock.Now()
	if a.Status == "" {
		a.Status = store.ActivitySucceeded
	}
	if a.StartedAt.IsZero() {
		a.StartedAt = now
	}
	if a.Status.Done() && a.FinishedAt.IsZero() {
		a.FinishedAt = now
	}
	out, err := st.ActivityCreate(ctx, a)
	if err != nil {
		c.log.Error("recording activity failed", "kind", a.Kind, "cluster", a.Cluster, "err", err)
	}
	return out
}

// fleet is the action.Fleet of this controller.
func (c *Controller) fleet() action.Fleet { return fleet{c} }

// Clusters lists the configured clusters in configuration order.
func (c *Controller) Clusters() []*config.Cluster {
	out := make([]*config.Cluster, 0, len(c.order))
	for _, n := range c.order {
		out = append(out, c.clusters[n].cfg)
	}
	return out
}

// Latest returns the newest reading of a counter.
func (c *Controller) Latest(clusterName, counterName string) (CounterReading, bool) {
	cl, ok := c.clusters[clusterName]
	if !ok {
		return CounterReading{}, false
	}
	cl.latestMu.RLock()
	defer cl.latestMu.RUnlock()
	r, ok := cl.latest[counterName]
	return r, ok
}

// TriggerStatus is a trigger's live state for the API.
type TriggerStatus struct {
	Cluster    string             `json:"cluster"`
	Name       string             `json:"name"`
	Conditions []string           `json:"conditions"`
	For        string             `json:"for"`
	Cooldown   string             `json:"cooldown"`
	Actions    []string           `json:"actions"`
	State      store.TriggerState `json:"state"`
}

// Triggers returns the live state of every trigger ("" for all clusters).
func (c *Controller) Triggers(clusterName string) []TriggerStatus {
	var out []TriggerStatus
	for _, n := range c.order {
		if clusterName != "" && n != clusterName {
			continue
		}
		cl := c.clusters[n]
		cl.latestMu.RLock()
		for _, t := range cl.cfg.Triggers {
			ts := TriggerStatus{Cluster: n, Name: t.Name, For: t.For.String(), Cooldown: t.Cooldown.String(),
				State: cl.triggers[t.Name].State()}
			for _, cond := range t.Conditions() {
				ts.Conditions = append(ts.Conditions, cond.String())
			}
			for _, a := range t.Actions {
				ts.Actions = append(ts.Actions, a.Type)
			}
			out = append(out, ts)
		}
		cl.latestMu.RUnlock()
	}
	return out
}
