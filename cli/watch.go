package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

func (a *app) runsWatchCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch RUN",
		Short: "Follow a run's steps live, as they are journaled",
		Long: `Print a run's journal as it is written: first what is already journaled,
then each entry as it comes, until the run ends. One line per entry: the time
since the run started, the entry kind, the step and what it says (builtin,
node and why it was placed there for a call; outcome and duration for a
result; the status for the end). --json prints each event as one JSON
object per line, as GET /v1/runs/{id}/events delivers it.

Exit code: 0 once the run has ended (whatever its status), 1 for an unknown
run, 130 when interrupted.`,
		Example: `  ctl runs watch 01JD4W6Q3Z8X5M2N7P9R0S1T2V
  ctl runs watch 01JD4W6Q3Z8X5M2N7P9R0S1T2V --json | jq .kind`,
		Args: wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.connect(ctx, withRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			var started time.Time
			err = c.Events(ctx, args[0], func(e api.Event) bool {
				if asJSON {
					line, _ := json.Marshal(e)
					fmt.Fprintf(a.stdout, "%s\n", line)
					return true
				}
				fmt.Fprintln(a.stdout, formatEvent(e, &started))
				return true
			})
			switch {
			case err != nil && ctx.Err() != nil:
				fmt.Fprintln(a.stderr, "ctl: interrupted")
				return silent(ExitInterrupted)
			case err != nil:
				return failure(err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as a JSON object, one per line")
	return cmd
}

// eventFields are the fields of the journal entries that watch shows.
type eventFields struct {
	Key      string            `json:"key"`
	Script   string            `json:"script"`
	Builtin  string            `json:"builtin"`
	Node     string            `json:"node"`
	Pos      string            `json:"pos"`
	Outcome  string            `json:"outcome"`
	Attempts int               `json:"attempts"`
	Duration time.Duration     `json:"duration_ns"`
	Status   string            `json:"status"`
	Time     time.Time         `json:"time"`
	Start    time.Time         `json:"start"`
	Attrs    map[string]string `json:"attrs"`
	Error    *struct {
		Message string `json:"message"`
	} `json:"error"`
	By     string `json:"by"`
	Reason string `json:"reason"` // where a call was placed and why; why a run was cancelled
}

// formatEvent is one line of ctl runs watch.
func formatEvent(e api.Event, started *time.Time) string {
	var f eventFields
	json.Unmarshal(e.Data, &f)
	at := f.Time
	if at.IsZero() {
		at = f.Start
	}
	if e.Kind == "start" && started.IsZero() {
		*started = at
	}
	offset := "-"
	if !started.IsZero() && !at.IsZero() {
		offset = formatOffset(at.Sub(*started))
	}
	var what string
	switch e.Kind {
	case "start":
		what = fmt.Sprintf("script %s", f.Script)
		if len(f.Attrs) > 0 {
			what += " " + formatAttrs(f.Attrs)
		}
	case "call":
		what = fmt.Sprintf("%-6s %s on %s at %s", f.Key, f.Builtin, orDash(f.Node), orDash(f.Pos))
		if f.Reason != "" {
			what += " (" + f.Reason + ")"
		}
	case "result":
		what = fmt.Sprintf("%-6s %s %s in %s", f.Key, orDash(f.Builtin), f.Outcome, formatDuration(f.Duration))
		if f.Error != nil && f.Error.Message != "" {
			what += ": " + strings.Join(strings.Fields(f.Error.Message), " ")
		}
		if f.Attempts > 1 {
			what += fmt.Sprintf(" (%d attempts)", f.Attempts)
		}
	case "tag":
		what = formatAttrs(f.Attrs)
	case "end":
		what = f.Status
		if f.Error != nil && f.Error.Message != "" {
			what += ": " + strings.Join(strings.Fields(f.Error.Message), " ")
		}
	case "cancel":
		what = "by " + orDash(f.By)
		if f.Reason != "" {
			what += ": " + f.Reason
		}
	default:
		what = f.Key
	}
	return fmt.Sprintf("%-10s %-7s %s", offset, e.Kind, what)
}
