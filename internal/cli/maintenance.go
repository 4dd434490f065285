package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/goscaler/goscaler/internal/api"
)

// maintenanceCmd is `goscaler node maintenance CLUSTER NODE on|off`: a node in
// maintenance is out of the load balancer (drained) and out of healing.
func maintenanceCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "maintenance CLUSTER NODE on|off",
		Short: "Take a node out of the load balancer and out of healing (on), or put it back (off)",
		Example: `  goscaler node maintenance web web-3 on    # drain it; it is not replaced while you work on it
  goscaler node maintenance web web-3 off   # back into rotation`,
		Args:      cobra.ExactArgs(3),
		ValidArgs: []string{"on", "off"},
		RunE: func(c *cobra.Command, args []string) error {
			var on bool
			switch args[2] {
			case "on":
				on = true
			case "off":
			default:
				return fmt.Errorf("maintenance takes on or off, not %q", args[2])
			}
			var out api.MaintenanceResult
			path := "/clusters/" + url.PathEscape(args[0]) + "/nodes/" + url.PathEscape(args[1]) + "/maintenance"
			if err := g.call(c.Context(), http.MethodPost, path, map[string]bool{"on": on}, &out); err != nil {
				return err
			}
			return g.show(out, func(w *tabwriter.Writer) {
				switch {
				case out.Activity == nil:
					fmt.Fprintf(w, "node %s: maintenance already %s (%s)\n", out.Node.ID, args[2], state(out.Node))
				case on:
					fmt.Fprintf(w, "node %s is in maintenance: out of the load balancer and out of healing (activity %d)\n", out.Node.ID, out.Activity.ID)
				default:
					fmt.Fprintf(w, "node %s is out of maintenance: back in the load balancer (activity %d)\n", out.Node.ID, out.Activity.ID)
				}
			})
		},
	}
}
