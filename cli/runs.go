package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func (a *app) runsLsCommand() *cobra.Command {
	var (
		status, script, since string
		attrs                 []string
		limit                 int
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List runs, newest first",
		Long: `List runs, newest first, as a table or (--json) as a JSON array.

Filters combine: a run is listed when it matches all of them.`,
		Example: `  ctl runs ls
  ctl runs ls --attr customer=acme --status failed --since 2h
  ctl runs ls --script checkout --limit 10 --json`,
		Args: wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}, "attr": attrs}
			for k, v := range map[string]string{"status": status, "script": script, "since": since} {
				if v != "" {
					q.Set(k, v)
				}
			}
			f, err := api.ParseListQuery(q)
			if err != nil {
				// The engine's messages start with the parameter's name, which is the flag's.
				return usageErrorf("--%s", strings.TrimPrefix(err.Error(), api.ErrBadInput.Error()+": "))
			}
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			runs, err := c.List(cmd.Context(), f)
			if err != nil {
				return failure(err)
			}
			if asJSON {
				if runs == nil {
					runs = []api.Run{}
				}
				return writeValue(a.stdout, runs)
			}
			if len(runs) == 0 {
				fmt.Fprintln(a.stderr, "no runs")
				return nil
			}
			return writeRunsTable(a.stdout, runs, time.Local)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "only runs with this `STATUS`: running, completed, failed, cancelled or blocked")
	fl.StringVar(&script, "script", "", "only runs of the script named `NAME`")
	fl.StringArrayVar(&attrs, "attr", nil, "only runs with this attribute, `name=value` (repeatable; all must match)")
	fl.StringVar(&since, "since", "", "only runs started within this `DURATION`, such as 30m or 2h")
	fl.IntVar(&limit, "limit", 100, "list at most `N` runs")
	fl.BoolVar(&asJSON, "json", false, "print the runs as a JSON array")
	return cmd
}

func (a *app) runsShowCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show RUN",
		Short: "Show a run and its steps",
		Long: `Show a run: its script version, status, input, attributes and result or
error with the Starlark backtrace, then its steps in call order with the node
that executed each, when it started (from the run's start), how long it took,
its outcome and the script position that called it; then its log lines, from
every node, each with the step it is about or came after (ctl logs RUN has
them alone). Trace is the trace id of the run's spans.`,
		Example: `  ctl runs show 01JD4W6Q3Z8X5M2N7P9R0S1T2V
  ctl runs show 01JD4W6Q3Z8X5M2N7P9R0S1T2V --json | jq '.steps[].builtin'`,
		Args: wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			d, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return failure(err)
			}
			if asJSON {
				return writeValue(a.stdout, d)
			}
			if err := writeRunDetail(a.stdout, d, time.Local); err != nil {
				return err
			}
			var lines []json.RawMessage
			err = c.Logs(cmd.Context(), api.LogQuery{Run: d.ID}, func(l api.LogLine) bool {
				if l.Line != nil {
					lines = append(lines, l.Line)
				}
				return true
			})
			if err != nil {
				fmt.Fprintf(a.stderr, "ctl: the run's log lines: %v\n", err)
				return nil
			}
			return writeRunLog(a.stdout, lines, d.Started)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run and its steps as JSON")
	return cmd
}

func (a *app) runsWaitCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "wait RUN",
		Short: "Wait for a run to end",
		Long: `Wait until the run ends, then print "run <RUN> <status>". A failed run's
error and backtrace go to stderr. A run that is blocked (its recovery found
that the script no longer matches its journal) is reported as such: it does
not end until it is resumed. With --json, the run's record is printed on
stdout instead (the exit code is the same).

An embedded node continues the unfinished runs of its data dir (runs that an
earlier ctl left behind), so that the run can end while ctl waits.

Exit code: 0 completed, 1 failed or blocked, 4 cancelled.`,
		Example: `  ctl runs wait 01JD4W6Q3Z8X5M2N7P9R0S1T2V && echo done
  ctl runs wait 01JD4W6Q3Z8X5M2N7P9R0S1T2V --json | jq .result`,
		Args: wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.connect(ctx, withRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			end, err := a.waitSettled(ctx, c, args[0])
			if err != nil {
				if ctx.Err() != nil {
					fmt.Fprintln(a.stderr, "ctl: interrupted")
					return silent(ExitInterrupted)
				}
				return failure(err)
			}
			if end == nil {
				return failure(errors.New("the node returned no record"))
			}
			if asJSON {
				return a.reportRun(end, true)
			}
			fmt.Fprintf(a.stdout, "run %s %s\n", end.ID, end.Status)
			return a.reportEnd(end)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run's record as JSON (the exit code is the same)")
	return cmd
}

func (a *app) runsExportCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export RUN",
		Short: "Write a run as a portable file, for ctl replay --from",
		Long: `Write a run as a self-contained JSON file: its record, the exact script
version it ran, and every journal entry (one per line). ctl replay --from FILE
replays it anywhere, without a node; the file is checked when it is read (its
format version, and that the script matches the run's version hash).

The file goes to stdout, or to FILE with -o. It holds the run's input and every
step's arguments and results: treat it like the data it contains.`,
		Example: `  ctl runs export 01JD4W6Q3Z8X5M2N7P9R0S1T2V > run.json
  ctl runs export 01JD4W6Q3Z8X5M2N7P9R0S1T2V -o run.json && ctl replay --from run.json`,
		Args: wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			exp, err := c.Export(cmd.Context(), args[0])
			if err != nil {
				return failure(err)
			}
			if out == "" || out == "-" {
				return writeExport(a.stdout, exp)
			}
			var buf bytes.Buffer
			if err := writeExport(&buf, exp); err != nil {
				return failure(err)
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
				return failure(err)
			}
			fmt.Fprintf(a.stderr, "run %s exported to %s (%d journal entries)\n", exp.Run.ID, out, len(exp.Journal))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to `FILE` instead of stdout")
	return cmd
}
