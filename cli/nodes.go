package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func (a *app) nodesCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "nodes",
		Short: "Show the cluster's nodes and their live meters",
		Long: `List every live node with what it last published (about once a second):
cores and CPU use, memory, steps in flight, and the free units of each custom
resource (rate limits, pools). A node that stops publishing for 3 s is dropped.`,
		Example: `  ctl nodes
  DROVER_URL=http://127.0.0.1:8080 ctl nodes --json`,
		Args: wantArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return failure(err)
			}
			if asJSON {
				return writeValue(a.stdout, nodes)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tCORES\tCPU\tMEM\tIN FLIGHT\tRESOURCES\tSEEN\tHTTP")
			for _, n := range nodes {
				r := n.Reading
				var res []string
				for name, v := range r.Resources {
					res = append(res, fmt.Sprintf("%s=%g/%g", name, v.Free, v.Capacity))
				}
				sort.Strings(res)
				mem := "-"
				if r.MemTotal > 0 {
					mem = fmt.Sprintf("%.0f%% of %.1fG", 100*float64(r.MemUsed)/float64(r.MemTotal), float64(r.MemTotal)/(1<<30))
				}
				fmt.Fprintf(tw, "%s\t%d\t%.0f%%\t%s\t%d\t%s\t%s ago\t%s\n", n.Name, r.Cores, 100*r.CPU, mem, r.InFlightSum,
					orDash(strings.Join(res, " ")), n.Age.Round(time.Millisecond), orDash(n.HTTP))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the nodes as JSON")
	return cmd
}

func (a *app) integrationsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "integrations",
		Short: "Show each node's integrations and their state",
		Long: `List, for every live node, the integrations of its build (databases, caches,
queues its builtins reach) with their state as the node's last check found it:
ok, failing (with why: which address, what to do) or unconfigured. Nodes check
them as they start and every 30 s. Configuration comes from the node's
--config file (docs/integrations.md); secrets show as [redacted].

Below them, the circuit breakers that are open or counting failures: a
target (an HTTP host, a SQL connection, a Redis or memcached address) whose
calls failed several times in a row fails fast until RETRIES.`,
		Example: `  ctl integrations
  ctl integrations --json`,
		Args: wantArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			nodes, err := c.Nodes(cmd.Context())
			if err != nil {
				return failure(err)
			}
			if asJSON {
				return writeValue(a.stdout, api.IntegrationsOf(nodes))
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tINTEGRATION\tSTATE\tCHECKED\tERROR")
			breakers := 0
			for _, n := range nodes {
				for _, in := range n.Integrations {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", n.Name, in.Name, in.State, time.Since(in.Checked).Round(time.Second), orDash(in.Error))
				}
				breakers += len(n.Breakers)
			}
			if breakers > 0 {
				fmt.Fprintln(tw, "\nNODE\tCIRCUIT BREAKER\tSTATE\tFAILURES\tRETRIES")
				for _, n := range nodes {
					for _, b := range n.Breakers {
						retry := "-"
						if !b.RetryAt.IsZero() {
							retry = b.RetryAt.Local().Format("15:04:05")
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n.Name, b.Target, b.State, b.Failures, retry)
					}
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the integrations as JSON: by node, each with its state and configuration")
	return cmd
}
