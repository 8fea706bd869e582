package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func (a *app) logsCommand() *cobra.Command {
	var (
		q      api.LogQuery
		attrs  []string
		since  time.Duration
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "logs [RUN]",
		Short: "Read or tail the log lines of runs, from every node",
		Long: `Print run log lines: every line a run wrote (log.* from its script, and the
engine's lines about it: start, end, step failures, nodes lost), from every
node of the cluster, each carrying the run's node, script, version, trace id
and attributes (those set by tag() too).

With RUN: that run's lines, in order (--since cuts older ones).
Without: the lines of the runs matching --attr (repeatable, all must hold),
--script and --node; --since reads them back (runs started within that long),
--follow tails them live across the cluster. A live tail is a subscription:
the nodes send only the matching lines. When ctl reads slower than the lines
come, it says how many it dropped.

--level shows that level and above (debug, info, warn, error). --json prints
each line as the JSON object it was written as.

Exit code: 0; 1 for an unknown run; 2 for a bad query; 130 when interrupted
(the way out of --follow).`,
		Example: `  ctl logs 01JD4W6Q3Z8X5M2N7P9R0S1T2V
  ctl logs --attr customer=acme --since 1h
  ctl logs --attr customer=acme --level warn --follow
  ctl logs --script checkout --since 30m --follow --json | jq .message`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				q.Run = args[0]
			}
			var err error
			if q.Attrs, err = parseAttrs(attrs); err != nil {
				return err
			}
			q.Since = since
			if err := q.Check(); err != nil {
				return usageErrorf("%s", strings.TrimPrefix(err.Error(), api.ErrBadInput.Error()+": "))
			}
			ctx := cmd.Context()
			c, err := a.connect(ctx, withRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			err = c.Logs(ctx, q, func(l api.LogLine) bool {
				switch {
				case l.Ready():
				case l.Dropped > 0:
					fmt.Fprintf(a.stderr, "ctl: %d lines dropped: reading slower than they come (narrow the query, or raise the node's rate)\n", l.Dropped)
				case asJSON:
					fmt.Fprintf(a.stdout, "%s\n", l.Line)
				default:
					fmt.Fprintln(a.stdout, formatLogLine(l.Line))
				}
				return true
			})
			switch {
			case err != nil && ctx.Err() != nil:
				if !q.Follow {
					fmt.Fprintln(a.stderr, "ctl: interrupted")
				}
				return silent(ExitInterrupted)
			case err != nil:
				return failure(err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&attrs, "attr", nil, "only runs with this attribute, `name=value` (repeatable; all must match)")
	fl.StringVar(&q.Script, "script", "", "only runs of this `script`")
	fl.StringVar(&q.Node, "node", "", "only lines written on this `node`")
	fl.StringVar(&q.Level, "level", "", "only lines at this `level` or above: debug, info, warn, error")
	fl.DurationVar(&since, "since", 0, "read back lines of this long ago to now, e.g. 30m, 1h")
	fl.BoolVarP(&q.Follow, "follow", "f", false, "tail live lines until interrupted")
	fl.BoolVar(&asJSON, "json", false, "print each line as its JSON object")
	return cmd
}

// logFieldsShown are the fields of a log line that formatLogLine places
// itself, or leaves out (the ids: --json has them).
var logFieldsShown = []string{"time", "level", "node", "run", "script", "version", "trace_id", "span_id", "attrs", "message"}

// formatLogLine renders a run log line for a terminal: time, level, node,
// run, message, then its attributes and other fields as name=value.
func formatLogLine(raw json.RawMessage) string {
	var f map[string]json.RawMessage
	if json.Unmarshal(raw, &f) != nil {
		return string(raw)
	}
	str := func(k string) string {
		var s string
		json.Unmarshal(f[k], &s)
		return s
	}
	var b strings.Builder
	if t, err := time.Parse(time.RFC3339Nano, str("time")); err == nil {
		b.WriteString(t.Local().Format("15:04:05.000 "))
	}
	level := strings.ToUpper(str("level"))
	if len(level) > 4 {
		level = level[:4]
	}
	fmt.Fprintf(&b, "%-4s %s %s %s", level, str("node"), str("run"), str("message"))
	var attrs map[string]string
	json.Unmarshal(f["attrs"], &attrs)
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		fmt.Fprintf(&b, " %s=%s", k, attrs[k])
	}
	var rest []string
	for k := range f {
		if !slices.Contains(logFieldsShown, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		fmt.Fprintf(&b, " %s=%s", k, f[k])
	}
	return b.String()
}
