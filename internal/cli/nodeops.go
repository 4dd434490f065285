package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/store"
)

// nodeOpsCmds are the node commands that act on a live node.
func nodeOpsCmds(g *globals) []*cobra.Command {
	var timeout time.Duration
	execCmd := &cobra.Command{
		Use:   "exec CLUSTER NODE -- COMMAND…",
		Short: "Run a command on a node over SSH (from the server) and print its output",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			return g.exec(c.Context(), args[0], []string{args[1]}, strings.Join(args[2:], " "), timeout)
		},
	}
	execCmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "time limit of the command")
	ssh := &cobra.Command{
		Use:   "ssh CLUSTER NODE [-- COMMAND…]",
		Short: "Open an SSH shell on a node with the system ssh client and the cluster's SSH settings",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			info, err := g.sshInfo(c.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			argv := append(sshOptions(info, "-p"), "-t", info.target())
			return runClient(c, "ssh", append(argv, args[2:]...))
		},
	}
	scp := &cobra.Command{
		Use:   "scp CLUSTER SOURCE… TARGET",
		Short: "Copy files to or from nodes with the system scp client (write a node's path as NODE:PATH)",
		Args:  cobra.MinimumNArgs(3),
		RunE: func(c *cobra.Command, args []string) error {
			argv := []string{"-r"}
			var opts []string
			for _, a := range args[1:] {
				node, path, remote := strings.Cut(a, ":")
				if !remote || strings.Contains(node, "/") {
					argv = append(argv, a)
					continue
				}
				info, err := g.sshInfo(c.Context(), args[0], node)
				if err != nil {
					return err
				}
				if opts == nil {
					opts = sshOptions(info, "-P")
				}
				argv = append(argv, info.target()+":"+path)
			}
			if opts == nil {
				return fmt.Errorf("neither source nor target names a node: write a node's path as NODE:PATH")
			}
			return runClient(c, "scp", append(opts, argv...))
		},
	}
	reconfigure := &cobra.Command{
		Use:   "reconfigure CLUSTER NODE",
		Short: "Run the cluster's on_launch steps (but lb_register) again on a node in service",
		Args:  cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			var a store.Activity
			path := "/clusters/" + url.PathEscape(args[0]) + "/nodes/" + url.PathEscape(args[1]) + "/reconfigure"
			if err := g.callWithin(c.Context(), time.Hour, http.MethodPost, path, nil, &a); err != nil {
				return err
			}
			if err := g.show(a, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "reconfigure of %s: %s (activity %d)\n", args[1], a.Status, a.ID)
				if a.Error != "" {
					fmt.Fprintf(w, "error: %s\n", a.Error)
				}
			}); err != nil {
				return err
			}
			if a.Status != store.ActivitySucceeded {
				return exitError{code: 1, err: fmt.Errorf("reconfigure of %s %s (goscaler activity list --cluster %s)", args[1], a.Status, args[0])}
			}
			return nil
		},
	}
	return []*cobra.Command{execCmd, ssh, scp, reconfigure}
}

// clusterExecCmd is `cluster exec`.
func clusterExecCmd(g *globals) *cobra.Command {
	var timeout time.Duration
	var nodes []string
	cmd := &cobra.Command{
		Use:   "exec CLUSTER -- COMMAND…",
		Short: "Run a command on every in-service node of a cluster over SSH (from the server); output per node",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return g.exec(c.Context(), args[0], nodes, strings.Join(args[1:], " "), timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "time limit of the command on each node")
	cmd.Flags().StringSliceVar(&nodes, "node", nil, "only these nodes (repeat or comma-separate)")
	return cmd
}

// exec runs a command on nodes through the API, prints each node's output
// and fails (exit 1) when it failed anywhere.
func (g *globals) exec(ctx context.Context, clusterName string, nodes []string, command string, timeout time.Duration) error {
	var rep controller.ExecReport
	req := api.ExecRequest{Command: command, Nodes: nodes, Timeout: timeout.String()}
	if err := g.callWithin(ctx, timeout+30*time.Second, http.MethodPost, "/clusters/"+url.PathEscape(clusterName)+"/exec", req, &rep); err != nil {
		return err
	}
	failed := 0
	for _, r := range rep.Results {
		if r.ExitCode != 0 {
			failed++
		}
	}
	err := g.show(rep, func(w *tabwriter.Writer) {
		single := len(rep.Results) == 1
		for _, r := range rep.Results {
			if single {
				_, _ = io.WriteString(g.out, r.Stdout)
				_, _ = io.WriteString(g.errOut, r.Stderr)
				if r.Error != "" {
					fmt.Fprintf(g.errOut, "%s: %s\n", r.Node, r.Error)
				}
				continue
			}
			fmt.Fprintf(w, "=== %s (%s): exit %d in %s", r.Node, r.Endpoint, r.ExitCode, time.Duration(r.DurationMS)*time.Millisecond)
			if r.Error != "" {
				fmt.Fprintf(w, " — %s", r.Error)
			}
			fmt.Fprintln(w)
			for _, s := range []string{r.Stdout, r.Stderr} {
				if s != "" {
					fmt.Fprint(w, s)
					if !strings.HasSuffix(s, "\n") {
						fmt.Fprintln(w)
					}
				}
			}
		}
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		if len(rep.Results) == 1 {
			return exitError{code: max(1, rep.Results[0].ExitCode), err: fmt.Errorf("exit status %d on %s", rep.Results[0].ExitCode, rep.Results[0].Node)}
		}
		return exitError{code: 1, err: fmt.Errorf("the command failed on %d of %d node(s) (activity %d)", failed, len(rep.Results), rep.Activity)}
	}
	return nil
}

type sshTarget struct{ controller.SSHInfo }

func (t sshTarget) target() string {
	if t.User != "" {
		return t.User + "@" + t.Host
	}
	return t.Host
}

func (g *globals) sshInfo(ctx context.Context, clusterName, node string) (sshTarget, error) {
	var info controller.SSHInfo
	err := g.call(ctx, http.MethodGet, "/clusters/"+url.PathEscape(clusterName)+"/nodes/"+url.PathEscape(node)+"/ssh", nil, &info)
	return sshTarget{info}, err
}

// sshOptions are the ssh/scp options for a node: its port (portFlag: -p for
// ssh, -P for scp), the cluster's keys and known_hosts.
func sshOptions(t sshTarget, portFlag string) []string {
	var argv []string
	if t.Port != 0 {
		argv = append(argv, portFlag, strconv.Itoa(t.Port))
	}
	for _, f := range t.IdentityFiles {
		argv = append(argv, "-i", expandTilde(f))
	}
	if len(t.IdentityFiles) > 0 {
		argv = append(argv, "-o", "IdentitiesOnly=yes")
	}
	if t.KnownHosts != "" {
		argv = append(argv, "-o", "UserKnownHostsFile="+expandTilde(t.KnownHosts))
	}
	if t.TrustOnFirstUse {
		argv = append(argv, "-o", "StrictHostKeyChecking=accept-new")
	} else {
		argv = append(argv, "-o", "StrictHostKeyChecking=yes")
	}
	return argv
}

func expandTilde(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return home + "/" + rest
		}
	}
	return p
}

// runClient runs the system ssh or scp with the terminal of this process
// and exits with its status.
func runClient(c *cobra.Command, name string, argv []string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		return fmt.Errorf("the %s client is not installed (apt install openssh-client): %w", name, err)
	}
	x := exec.CommandContext(c.Context(), path, argv...)
	x.Stdin, x.Stdout, x.Stderr = os.Stdin, c.OutOrStdout(), c.ErrOrStderr()
	err = x.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitError{code: ee.ExitCode(), err: fmt.Errorf("%s exited with status %d", name, ee.ExitCode())}
	}
	return err
}
