package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/store"
)

// call does one API request (at most 30s) and decodes the JSON answer into out.
func (g *globals) call(ctx context.Context, method, path string, body, out any) error {
	return g.callWithin(ctx, 30*time.Second, method, path, body, out)
}

// callWithin is call with another time limit.
func (g *globals) callWithin(ctx context.Context, limit time.Duration, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	base := strings.TrimRight(g.server, "/")
	req, err := http.NewRequestWithContext(ctx, method, base+"/api/v1"+path, rd)
	if err != nil {
		return fmt.Errorf("bad --server %q: %w", g.server, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if g.token != "" {
		req.Header.Set("Authorization", "Bearer "+g.token)
	}
	client := &http.Client{Timeout: limit}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the goscaler server at %s (is it running? set --server or GOSCALER_SERVER): %w", g.server, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e struct {
			Error api.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error.Message, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return nil
}

// show prints v as JSON with -o json, or calls table otherwise.
func (g *globals) show(v any, table func(w *tabwriter.Writer)) error {
	switch g.output {
	case "json":
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "table", "":
		w := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	default:
		return fmt.Errorf("unknown output format %q: use table or json", g.output)
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func clusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "List, inspect, scale, stop, start and destroy clusters"}
	cmd.AddCommand(&cobra.Command{
		Use: "list", Short: "List clusters", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var cs []api.ClusterView
			if err := g.call(c.Context(), http.MethodGet, "/clusters", nil, &cs); err != nil {
				return err
			}
			return g.show(cs, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tIN SERVICE\tDESIRED\tMIN\tMAX\tPROVIDER\tLOAD BALANCER")
				for _, c := range cs {
					desired := strconv.Itoa(c.Desired)
					if c.Stopped {
						desired += " (stopped)"
					}
					fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\t%s\n", c.Name, c.InService, desired, c.Min, c.Max, c.Provider, dash(c.LoadBalancer))
				}
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use: "show NAME", Short: "Show a cluster: nodes, counters, triggers, recent activities", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var d api.ClusterDetail
			if err := g.call(c.Context(), http.MethodGet, "/clusters/"+url.PathEscape(args[0]), nil, &d); err != nil {
				return err
			}
			return g.show(d, func(w *tabwriter.Writer) {
				stopped := ""
				if d.Stopped {
					stopped = "; STOPPED: kept at 0 until goscaler cluster start " + d.Name
				}
				fmt.Fprintf(w, "Cluster:\t%s\nSize:\t%d in service, %d desired (min %d, max %d)%s\nProvider:\t%s\nLoad balancer:\t%s\n\n",
					d.Name, d.InService, d.Desired, d.Min, d.Max, stopped, d.Provider, dash(d.LoadBalancer))
				fmt.Fprintln(w, "NODE\tSTATE\tADDRESS\tAGE\tREASON")
				for _, n := range d.NodeList {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", n.ID, state(n), dash(n.Address), ago(n.CreatedAt), n.Reason)
				}
				fmt.Fprintln(w, "\nCOUNTER\tVALUE\tREPORTING\tERROR")
				for _, name := range d.Counters {
					r := d.Readings[name]
					val := "-"
					if r.Aggregate.OK() && !r.Aggregate.At.IsZero() {
						val = strconv.FormatFloat(r.Aggregate.Value, 'f', 2, 64)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", name, val, reporting(r.Aggregate), r.Aggregate.Err)
				}
				fmt.Fprintln(w, "\nTRIGGER\tCONDITION\tFOR\tPAST SINCE\tFIRINGS\tCOOLDOWN UNTIL")
				for _, t := range d.TriggerState {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.Name, strings.Join(t.Conditions, " or "), t.For,
						ago(t.State.PastSince), t.State.Firings, clock(t.State.CooldownUntil))
				}
				fmt.Fprintln(w, "\nACTIVITY\tKIND\tSTATUS\tWHEN\tCAUSE")
				for _, a := range d.Recent {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", a.ID, a.Kind, a.Status, ago(a.CreatedAt), a.Cause)
				}
			})
		},
	})
	cmd.AddCommand(scaleCmd(g), stopCmd(g), startCmd(g), restartCmd(g), destroyCmd(g), clusterExecCmd(g))
	return cmd
}

func scaleCmd(g *globals) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use: "scale NAME DESIRED", Short: "Set a cluster's desired size (within min and max)", Args: cobra.ExactArgs(2),
		Example: `  goscaler cluster scale web 5
  goscaler cluster scale web 2 --dry-run   # what would be launched or removed, changing nothing`,
		RunE: func(c *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil {
				return fmt.Errorf("desired size %q is not a number", args[1])
			}
			path := "/clusters/" + url.PathEscape(args[0]) + "/scale"
			if dry {
				var p controller.ScalePlan
				if err := g.call(c.Context(), http.MethodPost, path+"?dry_run=true", map[string]int{"desired": n}, &p); err != nil {
					return err
				}
				return g.show(p, func(w *tabwriter.Writer) {
					fmt.Fprintf(w, "dry run: cluster %s, desired %d → %d, %d node(s) active", p.Cluster, p.Desired, p.NewDesired, p.Active)
					if p.Stopped {
						fmt.Fprint(w, " (stopped: nothing happens until it is started)")
					}
					fmt.Fprintln(w)
					if len(p.Calls) == 0 {
						fmt.Fprintln(w, "nothing would change")
					} else {
						fmt.Fprintln(w, "\nWOULD")
						for _, call := range p.Calls {
							fmt.Fprintln(w, call)
						}
					}
					fmt.Fprintf(w, "\nnothing was changed (recorded as activity %d)\n", p.Activity)
				})
			}
			var out store.Cluster
			if err := g.call(c.Context(), http.MethodPost, path, map[string]int{"desired": n}, &out); err != nil {
				return err
			}
			return g.show(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "cluster %s: desired size is now %d (min %d, max %d)", out.Name, out.Desired, out.Min, out.Max)
				if out.Stopped {
					fmt.Fprintf(w, "; it is stopped: goscaler cluster start %s", out.Name)
				}
				fmt.Fprintln(w)
			})
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "show what would be launched or removed, and change nothing")
	return cmd
}

func stopCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a cluster: drain and terminate its nodes, and keep it at zero until started",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var out store.Cluster
			if err := g.call(c.Context(), http.MethodPost, "/clusters/"+url.PathEscape(args[0])+"/stop", nil, &out); err != nil {
				return err
			}
			return g.show(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "cluster %s stopped: its nodes are drained and terminated (desired %d is kept for the start)\n", out.Name, out.Desired)
			})
		},
	}
}

func startCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "start NAME",
		Short: "Start a stopped (or destroyed) cluster: back to its desired size",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var out store.Cluster
			if err := g.call(c.Context(), http.MethodPost, "/clusters/"+url.PathEscape(args[0])+"/start", nil, &out); err != nil {
				return err
			}
			return g.show(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "cluster %s started: launching up to %d node(s)\n", out.Name, out.Desired)
			})
		},
	}
}

func restartCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "restart NAME",
		Short: "Stop a cluster, wait until every node is terminated, and start it again",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := url.PathEscape(args[0])
			if err := g.call(c.Context(), http.MethodPost, "/clusters/"+name+"/stop", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.errOut, "cluster %s stopped; waiting for its nodes to terminate…\n", args[0])
			deadline := time.Now().Add(timeout)
			for {
				var nodes []store.Node
				if err := g.call(c.Context(), http.MethodGet, "/clusters/"+name+"/nodes", nil, &nodes); err != nil {
					return err
				}
				if len(nodes) == 0 {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%d node(s) of %s still not terminated after %s; the cluster stays stopped: check goscaler node list %s, then goscaler cluster start %s",
						len(nodes), args[0], timeout, args[0], args[0])
				}
				select {
				case <-c.Context().Done():
					return c.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
			var out store.Cluster
			if err := g.call(c.Context(), http.MethodPost, "/clusters/"+name+"/start", nil, &out); err != nil {
				return err
			}
			return g.show(out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "cluster %s restarted: launching %d node(s)\n", out.Name, out.Desired)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "how long to wait for the nodes to terminate")
	return cmd
}

func destroyCmd(g *globals) *cobra.Command {
	var all, yes, dry bool
	cmd := &cobra.Command{
		Use:   "destroy NAME | --all",
		Short: "Remove every machine and load balancer server of a cluster (or of all), and keep it stopped",
		Long: `destroy tears a cluster down: it stops it, takes every node out of the load
balancer, deletes every machine the provider lists for it (orphans included),
and prints what it removed. The cluster stays stopped until goscaler cluster
start. It asks for confirmation unless --yes; --dry-run lists what it would
remove and changes nothing.`,
		Example: `  goscaler cluster destroy web
  goscaler cluster destroy --all --yes
  goscaler cluster destroy web --dry-run`,
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return errors.New("give a cluster name or --all, not both")
			case !all && len(args) != 1:
				return errors.New("give the name of the cluster to destroy, or --all for every cluster")
			}
			what := "cluster " + strings.Join(args, "")
			path := "/clusters/destroy"
			if !all {
				path = "/clusters/" + url.PathEscape(args[0]) + "/destroy"
			} else {
				what = "EVERY cluster"
			}
			if dry {
				path += "?dry_run=true"
			} else if !yes {
				if err := confirm(c.InOrStdin(), g.errOut, fmt.Sprintf("Destroy %s: delete every machine and load balancer server? [y/N] ", what)); err != nil {
					return err
				}
			}
			var results []controller.DestroyResult
			if all {
				if err := g.callWithin(c.Context(), time.Hour, http.MethodPost, path, nil, &results); err != nil {
					return err
				}
			} else {
				var r controller.DestroyResult
				if err := g.callWithin(c.Context(), time.Hour, http.MethodPost, path, nil, &r); err != nil {
					return err
				}
				results = append(results, r)
			}
			failures := 0
			err := g.show(results, func(w *tabwriter.Writer) {
				verb := "REMOVED"
				if dry {
					verb = "WOULD REMOVE"
				}
				fmt.Fprintf(w, "CLUSTER\t%s\tID\tNODE\tDETAIL\n", verb)
				for _, r := range results {
					for _, x := range r.Removed {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Cluster, strings.ReplaceAll(x.What, "_", " "), x.ID, dash(x.Node), x.Detail)
					}
				}
				for _, r := range results {
					counts := map[string]int{}
					for _, x := range r.Removed {
						counts[x.What]++
					}
					summary := fmt.Sprintf("%d machine(s), %d load balancer server(s), %d node(s)",
						counts[controller.RemovedMachine], counts[controller.RemovedLBServer], counts[controller.RemovedNode])
					if dry {
						fmt.Fprintf(w, "\ndry run: destroying %s would remove %s; nothing was changed\n", r.Cluster, summary)
						continue
					}
					fmt.Fprintf(w, "\ncluster %s destroyed: removed %s; it stays stopped (goscaler cluster start %s)\n", r.Cluster, summary, r.Cluster)
					for _, e := range r.Errors {
						failures++
						fmt.Fprintf(w, "  could not remove: %s\n", e)
					}
				}
			})
			if err != nil {
				return err
			}
			if failures > 0 {
				return fmt.Errorf("%d removal(s) failed (listed above): run destroy again once the cause is fixed", failures)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "destroy every cluster")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "list what would be removed, and change nothing")
	return cmd
}

// confirm asks question on out and reads the answer from in: only y or yes
// goes on.
func confirm(in io.Reader, out io.Writer, question string) error {
	fmt.Fprint(out, question)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("not confirmed (no answer on standard input): pass --yes to destroy without asking")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	default:
		return errors.New("not confirmed: nothing was destroyed")
	}
}

func nodeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "List, inspect and operate nodes (exec, ssh, scp, reconfigure)"}
	cmd.AddCommand(nodeOpsCmds(g)...)
	cmd.AddCommand(maintenanceCmd(g))
	var all bool
	list := &cobra.Command{
		Use: "list CLUSTER", Short: "List a cluster's nodes", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var nodes []store.Node
			path := "/clusters/" + url.PathEscape(args[0]) + "/nodes"
			if all {
				path += "?all=true"
			}
			if err := g.call(c.Context(), http.MethodGet, path, nil, &nodes); err != nil {
				return err
			}
			return g.show(nodes, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NODE\tSTATE\tADDRESS\tMACHINE\tAGE\tREASON")
				for _, n := range nodes {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, state(n), dash(n.Address), dash(n.MachineID), ago(n.CreatedAt), n.Reason)
				}
			})
		},
	}
	list.Flags().BoolVar(&all, "all", false, "include terminated nodes")
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use: "show CLUSTER NODE", Short: "Show a node and its state history", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			var n api.NodeDetail
			if err := g.call(c.Context(), http.MethodGet, "/clusters/"+url.PathEscape(args[0])+"/nodes/"+url.PathEscape(args[1]), nil, &n); err != nil {
				return err
			}
			return g.show(n, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Node:\t%s\nCluster:\t%s\nState:\t%s\nAddress:\t%s\nMachine:\t%s\nReason:\t%s\n", n.ID, n.Cluster, state(n.Node), dash(n.Address), dash(n.MachineID), n.Reason)
				if n.Agent != nil {
					fmt.Fprintf(w, "Agent:\tlast heartbeat %s ago (%s), %d counter(s)\n", ago(n.Agent.LastHeartbeat), clock(n.Agent.LastHeartbeat), len(n.Agent.Counters))
				}
				if len(n.Counters) > 0 {
					fmt.Fprintln(w, "\nCOUNTER\tVALUE\tREAD\tERROR")
					for _, r := range n.Counters {
						val := "-"
						if r.Sample.OK() {
							val = strconv.FormatFloat(r.Sample.Value, 'f', -1, 64)
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Counter, val, clock(r.Sample.At), r.Sample.Err)
					}
				}
				fmt.Fprintln(w, "\nWHEN\tFROM\tTO\tREASON")
				for _, e := range n.Events {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05"), dash(string(e.From)), e.To, e.Reason)
				}
			})
		},
	})
	return cmd
}

func triggerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "trigger", Short: "List triggers and fire them by hand"}
	var clusterName string
	list := &cobra.Command{
		Use: "list", Short: "List triggers with their state", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var ts []controller.TriggerStatus
			path := "/triggers"
			if clusterName != "" {
				path += "?cluster=" + url.QueryEscape(clusterName)
			}
			if err := g.call(c.Context(), http.MethodGet, path, nil, &ts); err != nil {
				return err
			}
			return g.show(ts, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "CLUSTER\tTRIGGER\tCONDITION\tFOR\tCOOLDOWN\tACTIONS\tPAST SINCE\tFIRINGS")
				for _, t := range ts {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.Cluster, t.Name, strings.Join(t.Conditions, " or "),
						t.For, t.Cooldown, strings.Join(t.Actions, ","), ago(t.State.PastSince), t.State.Firings)
				}
			})
		},
	}
	list.Flags().StringVar(&clusterName, "cluster", "", "only this cluster's triggers")
	cmd.AddCommand(list)
	cmd.AddCommand(&cobra.Command{
		Use: "fire CLUSTER TRIGGER", Short: "Fire a trigger now, whatever its counters say", Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			var a store.Activity
			if err := g.call(c.Context(), http.MethodPost, "/clusters/"+url.PathEscape(args[0])+"/triggers/"+url.PathEscape(args[1])+"/fire", nil, &a); err != nil {
				return err
			}
			return g.show(a, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "fired %s/%s: activity %d (follow it with: goscaler activity list --cluster %s --follow)\n", args[0], args[1], a.ID, args[0])
			})
		},
	})
	return cmd
}

func activityCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "activity", Short: "The history of decisions and actions"}
	var f struct {
		cluster, kind, status string
		limit                 int
		follow                bool
	}
	list := &cobra.Command{
		Use: "list", Short: "List activities, newest first (--follow streams new ones)", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"cluster": f.cluster, "kind": f.kind, "status": f.status} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", strconv.Itoa(f.limit))
			var acts []store.Activity
			if err := g.call(c.Context(), http.MethodGet, "/activities?"+q.Encode(), nil, &acts); err != nil {
				return err
			}
			if err := g.show(acts, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "ID\tCLUSTER\tKIND\tSTATUS\tSTARTED\tTOOK\tCAUSE")
				for _, a := range acts {
					activityRow(w, a)
				}
			}); err != nil || !f.follow {
				return err
			}
			return g.follow(c.Context(), q, acts)
		},
	}
	fl := list.Flags()
	fl.StringVar(&f.cluster, "cluster", "", "only this cluster")
	fl.StringVar(&f.kind, "kind", "", "only this kind (trigger, deploy_node, remove_node, …)")
	fl.StringVar(&f.status, "status", "", "only this status (pending, running, succeeded, failed, skipped)")
	fl.IntVar(&f.limit, "limit", 20, "how many")
	fl.BoolVarP(&f.follow, "follow", "f", false, "keep printing new activities until Ctrl-C")
	cmd.AddCommand(list)
	return cmd
}

// follow polls for activities newer than the ones shown.
func (g *globals) follow(ctx context.Context, q url.Values, shown []store.Activity) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	var after int64
	for _, a := range shown {
		after = max(after, a.ID)
	}
	q.Set("limit", "200")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		q.Set("after", strconv.FormatInt(after, 10))
		var acts []store.Activity
		if err := g.call(ctx, http.MethodGet, "/activities?"+q.Encode(), nil, &acts); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for i := len(acts) - 1; i >= 0; i-- {
			a := acts[i]
			after = max(after, a.ID)
			if g.output == "json" {
				b, _ := json.Marshal(a)
				fmt.Fprintln(g.out, string(b))
				continue
			}
			w := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			activityRow(w, a)
			_ = w.Flush()
		}
	}
}

func activityRow(w io.Writer, a store.Activity) {
	took := "-"
	if !a.FinishedAt.IsZero() && !a.StartedAt.IsZero() {
		took = a.FinishedAt.Sub(a.StartedAt).Round(time.Millisecond).String()
	}
	cause := a.Cause
	if a.Error != "" {
		cause += " — error: " + a.Error
	}
	fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Cluster, a.Kind, a.Status, clock(a.StartedAt), took, cause)
}

// reporting says how many nodes an aggregate heard from: "3/4".
func reporting(s store.Sample) string {
	if s.At.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%d/%d", s.Reporting, s.Expected)
}

func state(n store.Node) string {
	if n.Maintenance {
		return string(n.State) + " (maintenance)"
	}
	return string(n.State)
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("15:04:05")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
