package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/sim"
)

// addPolicyCommands adds `simulate` and `check policy` to root.
func addPolicyCommands(root *cobra.Command, g *globals) {
	root.AddCommand(simulateCmd(g))
	if check, _, err := root.Find([]string{"check"}); err == nil && check != root {
		check.AddCommand(checkPolicyCmd(g))
	}
}

// simFlags are the flags simulate and check policy share.
type simFlags struct {
	config, cluster, trace, counter string
	step, bootTime, maxGap          time.Duration
	counts                          bool
	rpsPerNode, noise, scale        float64
	peakNodes                       float64
	seed                            uint64
}

func (f *simFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "goscaler.yaml", "configuration file")
	fl.StringVar(&f.cluster, "cluster", "", "cluster whose policies run (default: the only cluster with policies)")
	fl.StringVar(&f.trace, "trace", "", "request-rate trace: CSV timestamp,value lines, or one value per line (required)")
	fl.DurationVar(&f.step, "step", time.Minute, "step of a one-value-per-line trace")
	fl.BoolVar(&f.counts, "counts", false, "the trace's values are request counts per step, not requests per second")
	fl.Float64Var(&f.rpsPerNode, "rps-per-node", 100, "requests per second one node serves")
	fl.DurationVar(&f.bootTime, "boot-time", 2*time.Minute, "time from a node's launch to service")
	fl.Float64Var(&f.noise, "noise", 0, "relative noise of the counter readings (0.05: ±5 % standard deviation)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the noise")
	fl.Float64Var(&f.scale, "scale", 0, "multiply the trace's values by this factor")
	fl.Float64Var(&f.peakNodes, "peak-nodes", 0, "scale the trace so that its peak needs this many nodes")
	fl.StringVar(&f.counter, "counter", "", "counter the trace feeds (default: the counter of the cluster's first policy that reads one)")
	fl.DurationVar(&f.maxGap, "max-gap", time.Hour, "longest gap in the trace simulated as missing data; longer ones are skipped")
}

// badInput marks an error as bad input: exit code 2.
func badInput(err error) error { return exitError{code: 2, err: err} }

// load reads the configuration and the trace and builds the setup.
func (f *simFlags) load() (sim.Setup, error) {
	var s sim.Setup
	if f.trace == "" {
		return s, badInput(errors.New("--trace is required: a CSV of timestamp,value lines or one value per line"))
	}
	if f.rpsPerNode <= 0 {
		return s, badInput(fmt.Errorf("--rps-per-node is %g: it must be above 0", f.rpsPerNode))
	}
	if f.bootTime < 0 || f.noise < 0 || f.scale < 0 || f.peakNodes < 0 {
		return s, badInput(errors.New("--boot-time, --noise, --scale and --peak-nodes cannot be negative"))
	}
	if f.scale > 0 && f.peakNodes > 0 {
		return s, badInput(errors.New("give --scale or --peak-nodes, not both"))
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		return s, badInput(err)
	}
	cl, err := pickCluster(cfg, f.cluster)
	if err != nil {
		return s, badInput(err)
	}
	tr, err := sim.ReadFile(f.trace, sim.ReadOptions{Step: f.step, Counts: f.counts, MaxGap: f.maxGap})
	if err != nil {
		return s, badInput(err)
	}
	switch {
	case f.scale > 0:
		tr.Scale(f.scale)
	case f.peakNodes > 0:
		peak := tr.Peak()
		if peak <= 0 {
			return s, badInput(errors.New("--peak-nodes: the trace's peak is 0"))
		}
		tr.Scale(f.peakNodes * f.rpsPerNode / peak)
	}
	if _, err := sim.FeedOf(cl, f.counter); err != nil {
		return s, badInput(err)
	}
	return sim.Setup{Cluster: cl, Trace: tr, Counter: f.counter,
		Model: sim.Model{RPSPerNode: f.rpsPerNode, BootTime: f.bootTime, Noise: f.noise, Seed: f.seed}}, nil
}

func pickCluster(cfg *config.Config, name string) (*config.Cluster, error) {
	if name != "" {
		for _, cl := range cfg.Clusters {
			if cl.Name == name {
				if !cl.HasPolicies() {
					return nil, fmt.Errorf("cluster %q has no policies: add policies: to it", name)
				}
				return cl, nil
			}
		}
		return nil, fmt.Errorf("%s has no cluster %q", cfg.File, name)
	}
	var with []*config.Cluster
	var names []string
	for _, cl := range cfg.Clusters {
		if cl.HasPolicies() {
			with = append(with, cl)
			names = append(names, cl.Name)
		}
	}
	switch len(with) {
	case 0:
		return nil, fmt.Errorf("%s: no cluster has policies: add policies: to a cluster", cfg.File)
	case 1:
		return with[0], nil
	default:
		return nil, fmt.Errorf("%s: several clusters have policies (%s): choose one with --cluster", cfg.File, strings.Join(names, ", "))
	}
}

func simulateCmd(g *globals) *cobra.Command {
	var f simFlags
	var compare, predictive, match bool
	var baselineTarget float64
	var outCSV, outHTML string
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Replay a request-rate trace through a cluster's scaling policies",
		Long: `simulate replays a request-rate trace through the scaling policies of a cluster
(the same code the server runs, on a simulated clock) with a capacity model:
requests per second one node serves, the time a node takes to boot, and
optional noise on the counter readings. It reports node-hours,
under-provisioned minutes (demand above the serving capacity), scaling actions,
and the oracle: the fewest node-hours with no under-provisioned minute given
the boot time.

With --compare it also runs the reference baselines on the same trace: the
Kubernetes HPA and AWS target tracking at the target of the cluster's
target_tracking policy, the same two with the target that makes them use as
many node-hours as the cluster's policies, and the cluster's policies plus a
predictive policy when they have none.`,
		Example: `  goscaler simulate --config goscaler.yaml --trace rps.csv --rps-per-node 100 --boot-time 2m
  goscaler simulate -c goscaler.yaml --cluster web --trace nasa.csv --counts --peak-nodes 20 --compare --out-html sim.html`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			s, err := f.load()
			if err != nil {
				return err
			}
			s.Compare, s.Predictive, s.BaselineTarget, s.MatchNodeHours = compare, predictive, baselineTarget, match
			s.Options.KeepSteps = outCSV != "" || outHTML != ""
			rep, err := sim.Simulate(s)
			if err != nil {
				return badInput(err)
			}
			if g.output == "json" {
				if err := writeReportJSON(g.out, rep); err != nil {
					return err
				}
			} else if err := rep.WriteTable(g.out); err != nil {
				return err
			}
			if outCSV != "" {
				if err := writeFile(outCSV, rep.WriteCSV); err != nil {
					return err
				}
			}
			if outHTML != "" {
				if err := writeFile(outHTML, rep.WriteHTML); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&compare, "compare", false, "also run the Kubernetes HPA and AWS target tracking baselines")
	fl.BoolVar(&predictive, "predictive", true, "with --compare, also run the cluster's policies plus a predictive policy (when they have none)")
	fl.BoolVar(&match, "match-node-hours", true, "with --compare, also run each baseline at the target that uses the node-hours of the cluster's policies")
	fl.Float64Var(&baselineTarget, "baseline-target", 0, "target per node of the baselines (default: the cluster's target_tracking target)")
	fl.StringVar(&outCSV, "out-csv", "", "write every step of every run to this CSV file")
	fl.StringVar(&outHTML, "out-html", "", "write a self-contained HTML page with the plots to this file")
	return cmd
}

func checkPolicyCmd(g *globals) *cobra.Command {
	var f simFlags
	var maxUnder, maxNodeHours float64
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Fail when a cluster's policies under-provision or cost too much on a trace (for CI)",
		Long: `check policy replays a trace through a cluster's policies like simulate, and
exits with code 1 when the under-provisioned minutes or the node-hours exceed
the limits given, 2 on bad input, 0 otherwise.`,
		Example: `  goscaler check policy --config goscaler.yaml --trace last-month.csv --max-underprovisioned-minutes 300 --max-node-hours 5000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			under, nodeHours := cmd.Flags().Changed("max-underprovisioned-minutes"), cmd.Flags().Changed("max-node-hours")
			if !under && !nodeHours {
				return badInput(errors.New("give --max-underprovisioned-minutes, --max-node-hours or both"))
			}
			if maxUnder < 0 || maxNodeHours < 0 {
				return badInput(errors.New("limits cannot be negative"))
			}
			s, err := f.load()
			if err != nil {
				return err
			}
			rep, err := sim.Simulate(s)
			if err != nil {
				return badInput(err)
			}
			res := rep.Policies()
			var fails []string
			if under && res.UnderMinutes > maxUnder {
				fails = append(fails, fmt.Sprintf("under-provisioned %.0f min > limit %g", res.UnderMinutes, maxUnder))
			}
			if nodeHours && res.NodeHours > maxNodeHours {
				fails = append(fails, fmt.Sprintf("node-hours %.1f > limit %g", res.NodeHours, maxNodeHours))
			}
			fmt.Fprintf(g.out, "cluster %s on %s: %.1f node-hours (oracle %.1f), %.0f under-provisioned min, %d scaling actions\n",
				s.Cluster.Name, f.trace, res.NodeHours, rep.Oracle.NodeHours, res.UnderMinutes, res.ScalingActions())
			if len(fails) > 0 {
				return exitError{code: 1, err: fmt.Errorf("policy check failed: %s", strings.Join(fails, "; "))}
			}
			fmt.Fprintln(g.out, "OK")
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().Float64Var(&maxUnder, "max-underprovisioned-minutes", 0, "fail above this many under-provisioned minutes")
	cmd.Flags().Float64Var(&maxNodeHours, "max-node-hours", 0, "fail above this many node-hours")
	return cmd
}

// reportJSON is the JSON form of a report.
type reportJSON struct {
	Cluster    string       `json:"cluster"`
	Steps      int          `json:"steps"`
	Step       string       `json:"step"`
	Skipped    string       `json:"skipped"`
	PeakRPS    float64      `json:"peak_rps"`
	RPSPerNode float64      `json:"rps_per_node"`
	BootTime   string       `json:"boot_time"`
	Noise      float64      `json:"noise"`
	Counter    string       `json:"counter"`
	Results    []resultJSON `json:"results"`
	Oracle     resultJSON   `json:"oracle"`
	Notes      []string     `json:"notes,omitempty"`
}

type resultJSON struct {
	Name         string  `json:"name"`
	NodeHours    float64 `json:"node_hours"`
	UnderMinutes float64 `json:"underprovisioned_minutes"`
	ScaleOuts    int     `json:"scale_outs"`
	ScaleIns     int     `json:"scale_ins"`
	PeakNodes    int     `json:"peak_nodes"`
}

func toJSON(r *sim.Result) resultJSON {
	return resultJSON{Name: r.Name, NodeHours: r.NodeHours, UnderMinutes: r.UnderMinutes,
		ScaleOuts: r.ScaleOuts, ScaleIns: r.ScaleIns, PeakNodes: r.PeakNodes}
}

func writeReportJSON(w io.Writer, rep *sim.Report) error {
	out := reportJSON{Cluster: rep.Cluster, Steps: len(rep.Trace.Points), Step: rep.Trace.Step.String(),
		Skipped: rep.Trace.Skipped.String(), PeakRPS: rep.Trace.Peak(), RPSPerNode: rep.Model.RPSPerNode,
		BootTime: rep.Model.BootTime.String(), Noise: rep.Model.Noise, Counter: rep.Feed.Counter,
		Oracle: toJSON(rep.Oracle), Notes: rep.Notes}
	for _, r := range rep.Results {
		out.Results = append(out.Results, toJSON(r))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
