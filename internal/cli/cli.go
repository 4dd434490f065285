// Package cli is goscaler's command line: the server, the demo, offline checks,
// and commands that talk to a running server's REST API.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/goscaler/goscaler/internal/agent"
	// Every built-in plugin.
	_ "github.com/goscaler/goscaler/internal/builtins"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/demo"
	"github.com/goscaler/goscaler/internal/server"
)

// Version is set at build time with -ldflags "-X …/cli.Version=…".
var Version = "dev"

// globals are the flags every API command shares.
type globals struct {
	server string
	token  string
	output string
	out    io.Writer
	errOut io.Writer
}

// Execute runs the command line with args and returns the exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "error:", err)
		var ex exitError
		if errors.As(err, &ex) {
			return ex.code
		}
		return 1
	}
	return 0
}

type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// NewRoot builds the command tree writing to stdout and stderr.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{out: stdout, errOut: stderr}
	root := &cobra.Command{
		Use:   "goscaler",
		Short: "goscaler keeps clusters of machines at the right size",
		Long: `goscaler watches counters on every node of a cluster, fires triggers when a
counter stays past its threshold, runs ordered actions (launch or remove nodes,
scripts, …) and replaces nodes that die.

Start with:  goscaler demo`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("GOSCALER_SERVER", "http://127.0.0.1:8080"), "API address of the goscaler server (env GOSCALER_SERVER)")
	pf.StringVar(&g.token, "token", os.Getenv("GOSCALER_TOKEN"), "API token (env GOSCALER_TOKEN)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(serverCmd(g), agentCmd(g), demoCmd(g), demoNodeCmd(), checkCmd(g),
		clusterCmd(g), nodeCmd(g), triggerCmd(g), activityCmd(g))
	addPolicyCommands(root, g)
	return root
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func serverCmd(g *globals) *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the goscaler daemon (API, controller, load balancers)",
		Example: `  goscaler server --config goscaler.yaml
  goscaler server --config goscaler.yaml --dry-run`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return exitError{code: 2, err: err}
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			log := newLogger(g.errOut, cfg.Server.Level())
			srv, err := server.New(ctx, cfg, server.Options{Logger: log, DryRun: dryRun})
			if err != nil {
				return err
			}
			return srv.Run(ctx)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "goscaler.yaml", "configuration file")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "record decisions as activities but create and delete nothing")
	return cmd
}

func agentCmd(g *globals) *cobra.Command {
	var o agent.Options
	var counters []string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run on a node: send heartbeats and locally measured counters to the server",
		Long: `agent runs on a node. Every interval it runs each --counter command (its
output must be a number) and sends the values with a heartbeat to the goscaler
server (POST /api/v1/agent/heartbeat). A cluster with heartbeat.timeout replaces
a node whose agent stops reporting; counters of type agent read the values.

The node and cluster default to GOSCALER_NODE and GOSCALER_CLUSTER, which the
process provider sets in every node's environment. The token is --token, or
GOSCALER_TOKEN, or GOSCALER_AGENT_TOKEN: one of the server's agent_tokens (which
open nothing but this endpoint) or api_tokens. The agent keeps retrying while the
server cannot be reached; SIGINT or SIGTERM stops it.`,
		Example: `  goscaler agent --server http://10.0.0.1:8080 --counter 'load=cut -d" " -f1 /proc/loadavg'
  GOSCALER_AGENT_TOKEN=... goscaler agent --node web-3 --interval 2s --counter 'queue=redis-cli llen jobs'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range counters {
				k, err := agent.ParseCounter(c)
				if err != nil {
					return exitError{code: 2, err: err}
				}
				o.Counters = append(o.Counters, k)
			}
			o.Server, o.Token = g.server, g.token
			if o.Token == "" {
				o.Token = os.Getenv("GOSCALER_AGENT_TOKEN")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			o.Logger = newLogger(g.errOut, level)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if err := agent.Run(ctx, o); err != nil {
				return exitError{code: 2, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Node, "node", os.Getenv("GOSCALER_NODE"), "this node's ID (env GOSCALER_NODE)")
	f.StringVar(&o.Cluster, "cluster", os.Getenv("GOSCALER_CLUSTER"), "this node's cluster (env GOSCALER_CLUSTER; checked by the server when set)")
	f.DurationVar(&o.Interval, "interval", 5*time.Second, "how often to measure and report")
	f.StringArrayVar(&counters, "counter", nil, "a counter as name=shell-command (repeatable)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log more")
	return cmd
}

func demoCmd(g *globals) *cobra.Command {
	var listen, dataDir string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local cluster that scales out and back in under a generated load",
		Long: `demo runs the server with a built-in configuration: a cluster of local demo
nodes (this binary in demo-node mode) behind the built-in load balancer, a load
generator that ramps up, holds and ramps down, and triggers that scale the
cluster out and back in. Needs nothing installed. Ctrl-C stops it and every node.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			if dataDir == "" {
				dataDir = filepath.Join(os.TempDir(), "goscaler-demo")
			}
			return demo.Run(ctx, demo.Options{Listen: listen, DataDir: dataDir, Out: g.out, Live: isTerminal(g.out),
				Logger: newLogger(g.errOut, level)})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the API")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (default $TMPDIR/goscaler-demo)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every decision")
	return cmd
}

func demoNodeCmd() *cobra.Command {
	var cfg demo.NodeConfig
	cmd := &cobra.Command{
		Use:    "demo-node",
		Short:  "Serve as a demo node (started by the demo's process provider)",
		Hidden: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return demo.RunNode(ctx, cfg, newLogger(os.Stderr, slog.LevelInfo))
		},
	}
	cmd.Flags().StringVar(&cfg.Listen, "listen", "127.0.0.1:0", "address to serve on")
	cmd.Flags().StringVar(&cfg.NodeID, "node-id", "", "node name shown in responses")
	cmd.Flags().DurationVar(&cfg.BaseLatency, "base-latency", 0, "service time without concurrency (default 40ms)")
	cmd.Flags().IntVar(&cfg.Capacity, "capacity", 0, "concurrent requests served without slowing down (default 4)")
	return cmd
}

func checkCmd(g *globals) *cobra.Command {
	check := &cobra.Command{Use: "check", Short: "Validate files offline"}
	check.AddCommand(&cobra.Command{
		Use:   "config FILE",
		Short: "Validate a configuration file; every problem is reported with its line",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0])
			if err != nil {
				return exitError{code: 2, err: err}
			}
			var names []string
			for _, c := range cfg.Clusters {
				names = append(names, c.Name)
			}
			fmt.Fprintf(g.out, "%s: OK (%d cluster(s): %s)\n", args[0], len(cfg.Clusters), strings.Join(names, ", "))
			return nil
		},
	})
	return check
}
