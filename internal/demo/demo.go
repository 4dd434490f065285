package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/server"
	"github.com/goscaler/goscaler/internal/store"
)

// Config is the demo's built-in configuration. @LISTEN@, @DATA@ and @LB@ are
// filled in at start; {{…}} are the node templates the provider renders.
//
// The numbers fit DefaultProfile: at its peak of 24 concurrent requests, 2
// nodes see 12 each, far above the scale-out threshold of 5; each scale-out
// step takes about cooldown + for ≈ 16 s, so the cluster reaches 5 nodes
// (4.8 each) within the 60 s peak. In the 90 s idle phase each scale-in step
// takes about 22 s, back to 2 nodes before the next cycle.
const Config = `# goscaler demo: local processes behind the built-in load balancer.
server:
  listen: "@LISTEN@"
  data_dir: "@DATA@"
  tick: 1s
clusters:
  - name: demo
    min: 2
    max: 6
    desired: 2
    provider:
      type: process
      command: ["{{.Executable}}", "demo-node", "--listen", "{{.Address}}", "--node-id", "{{.NodeID}}"]
      stop_timeout: 5s
    load_balancer:
      type: builtin
      listen: "@LB@"
      health_interval: 1s
    health_check:
      type: http
      path: /healthz
      interval: 2s
      timeout: 1s
      unhealthy_threshold: 3
    boot_timeout: 30s
    counters:
      - name: inflight
        type: http
        url: "http://{{.Address}}/stats"
        path: inflight_avg
        interval: 2s
        timeout: 1s
        aggregate: avg
    triggers:
      - name: scale-out
        counter: inflight
        above: 5
        for: 6s
        cooldown: 10s
        actions:
          - type: deploy_node
            count: 1
      - name: scale-in
        counter: inflight
        below: 2
        for: 12s
        cooldown: 10s
        actions:
          - type: remove_node
            count: 1
            order: newest
`

// Options configures Run.
type Options struct {
	Listen  string
	DataDir string
	// Out receives the live status line.
	Out io.Writer
	// Live rewrites one status line in place (for a terminal) instead of
	// printing a line per change.
	Live   bool
	Logger *slog.Logger
	// Profile overrides DefaultProfile (tests).
	Profile []Phase
}

// Run starts the server with the demo configuration, the load generator and a
// status line, until ctx is done; then it stops every node it started.
func Run(ctx context.Context, opts Options) error {
	lbAddr, err := freeAddr()
	if err != nil {
		return err
	}
	src := strings.NewReplacer("@LISTEN@", opts.Listen, "@DATA@", opts.DataDir, "@LB@", lbAddr).Replace(Config)
	cfg, err := config.Parse("demo.yaml", []byte(src))
	if err != nil {
		return fmt.Errorf("the demo configuration is invalid (a bug): %w", err)
	}
	srv, err := server.New(ctx, cfg, server.Options{Logger: opts.Logger, StopNodesOnExit: true})
	if err != nil {
		return err
	}
	profile := opts.Profile
	if profile == nil {
		profile = DefaultProfile()
	}
	gen := NewLoadGen("http://"+lbAddr+"/", profile, true)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready
	fmt.Fprintf(opts.Out, "goscaler demo\n  web UI:        http://%s/\n  API:           http://%s/api/v1/clusters\n  metrics:       http://%s/metrics\n  load balancer: http://%s/\n  data:          %s\nPress Ctrl-C to stop (every node stops with it).\n\n", srv.Addr(), srv.Addr(), srv.Addr(), lbAddr, opts.DataDir)
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		// Let the first nodes come up before the load starts.
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
		_ = gen.Run(ctx)
	}()
	status(ctx, srv, gen, opts.Out, opts.Live)
	<-genDone
	return <-done
}

// status prints a line every few seconds until ctx is done.
func status(ctx context.Context, srv *server.Server, gen *LoadGen, out io.Writer, live bool) {
	every := 3 * time.Second
	if live {
		every = time.Second
		defer fmt.Fprintln(out)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := srv.Store()
		c, err := st.ClusterGet(ctx, "demo")
		if err != nil {
			continue
		}
		nodes, err := st.NodeList(ctx, store.NodeFilter{Cluster: "demo"})
		if err != nil {
			continue
		}
		in, starting, draining := 0, 0, 0
		for _, n := range nodes {
			switch {
			case n.State == store.NodeInService:
				in++
			case n.State.Active():
				starting++
			case n.State == store.NodeDraining:
				draining++
			}
		}
		avg := "-"
		if r, ok := srv.Controller().Latest("demo", "inflight"); ok && r.Aggregate.OK() {
			avg = fmt.Sprintf("%.1f", r.Aggregate.Value)
		}
		ls := gen.Stats()
		line := fmt.Sprintf("load %-9s %2d clients | nodes in service %d/%d (starting %d, draining %d; min %d max %d) | avg in-flight per node %s | requests ok %d failed %d",
			ls.Phase, ls.Workers, in, c.Desired, starting, draining, c.Min, c.Max, avg, ls.OK, ls.Failed)
		if acts, err := st.ActivityList(ctx, store.ActivityFilter{Cluster: "demo", Limit: 1}); err == nil && len(acts) > 0 {
			if live {
				line += " | last: " + acts[0].Kind + " " + string(acts[0].Status)
			} else {
				line += "\n  last: " + acts[0].Kind + " " + string(acts[0].Status) + " — " + acts[0].Cause
			}
		}
		if live {
			// Rewrite the line in place: carriage return, then erase to its end.
			fmt.Fprintf(out, "\r\033[K%s %s", time.Now().Format("15:04:05"), line)
			continue
		}
		if line != last {
			fmt.Fprintf(out, "%s %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port for the load balancer: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr, nil
}
