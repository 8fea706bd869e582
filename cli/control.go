package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
)

// cancelWait bounds how long ctl cancel waits for the cancelled run to end.
const cancelWait = 10 * time.Second

// settlePoll is how often a wait for a run's end checks whether the run is
// blocked instead (api.API.Wait only returns when a run ends, and a blocked
// run does not end until someone resumes it): often on an embedded node, less
// often over HTTP.
func settlePoll(embedded bool) time.Duration {
	if embedded {
		return time.Second
	}
	return 5 * time.Second
}

func (a *app) cancelCommand() *cobra.Command {
	var (
		reason string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run",
		Long: `Cancel a run. Who cancels ($USER@host) and why (--reason) are journaled,
and every node is told: the run's script and its steps in flight stop wherever
they execute, and the run ends cancelled. A run parked in a durable sleep, or
blocked, ends at once. ctl runs show then says "cancelled by <who>: <reason>".

ctl waits for the run to end, up to 10 seconds, then prints "run <RUN>
cancelled" on stdout; with --json, the run's record instead (as it was
cancelled, if it has not ended within 10 seconds).

Exit code: 0 cancelled; 1 unknown run, the run has already ended, or it
ended otherwise before the cancellation took effect.`,
		Example: `  ctl cancel 01JD4W6Q3Z8X5M2N7P9R0S1T2V --reason "customer asked"`,
		Args:    wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, id := cmd.Context(), args[0]
			c, err := a.connect(ctx, noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			// A run nobody coordinates (parked, blocked, or left interrupted by
			// an earlier ctl, as an embedded node finds it) is adopted by Cancel
			// itself, which ends it as cancelled without running its script.
			rec, err := c.Cancel(ctx, id, a.whoami(), reason)
			if err != nil {
				return failure(errors.New(plainMessage(err)))
			}
			wctx, cancel := context.WithTimeout(ctx, cancelWait)
			defer cancel()
			end, err := c.Wait(wctx, id)
			switch {
			case err != nil && ctx.Err() != nil:
				fmt.Fprintln(a.stderr, "ctl: interrupted")
				return silent(ExitInterrupted)
			case errors.Is(err, context.DeadlineExceeded) && asJSON:
				return writeValue(a.stdout, rec)
			case errors.Is(err, context.DeadlineExceeded):
				fmt.Fprintf(a.stdout, "run %s: cancellation requested; the run has not ended yet (ctl runs wait %s)\n", id, id)
				return nil
			case err != nil:
				return failure(err)
			}
			if asJSON {
				if err := writeValue(a.stdout, end); err != nil {
					return err
				}
			}
			if end.Status != api.StatusCancelled {
				return failure(fmt.Errorf("run %s %s before the cancellation took effect", id, end.Status))
			}
			if !asJSON {
				fmt.Fprintf(a.stdout, "run %s cancelled\n", id)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the run is cancelled, kept in its journal (`TEXT`)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run's record as JSON")
	return cmd
}

func (a *app) runsPinCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "pin RUN",
		Short: "Keep a run past retention",
		Long: `Pin a run: its record, script version and journal are copied to storage
that never expires, so the run can be shown, exported and replayed after the
retention period (30 days by default, engine --retention) has removed its
journal. ctl runs show then says "Expires: never (pinned)".`,
		Example: `  ctl runs pin 01JD4W6Q3Z8X5M2N7P9R0S1T2V`,
		Args:    wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.connect(cmd.Context(), noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			rec, err := c.Pin(cmd.Context(), args[0])
			if err != nil {
				return failure(errors.New(plainMessage(err)))
			}
			if asJSON {
				return writeValue(a.stdout, rec)
			}
			fmt.Fprintf(a.stdout, "run %s pinned: kept past retention\n", rec.ID)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the pinned run's record as JSON")
	return cmd
}

func (a *app) runsResumeCommand() *cobra.Command {
	var (
		scriptFile, name string
		asJSON           bool
	)
	cmd := &cobra.Command{
		Use:   "resume RUN",
		Short: "Continue a blocked or parked run, optionally on a new script version",
		Long: `Resume an unfinished run: a blocked run (its recovery found that the script
no longer matches its journal) after a fix, or a run parked in a durable
sleep, moved to another version with --script. The run's journal is replayed
against the version it continues on, so that version must make the same calls
for the steps already taken; patched("change-id") lets new code branch for
runs that have not reached it yet.

--script FILE.star is built like ctl run's, named after the run's script
unless --name.

With --server, ctl prints the run's new status on stdout and returns. An
embedded node runs the run only while ctl runs, so ctl then waits for the run
to end and reports it like ctl run: the result on stdout, or the error on
stderr. With --json, ctl prints the run's record instead: as resumed (with
--server) or as it ended (embedded).

Exit code: 0 resumed (embedded: the run completed); 1 unknown run, the run has
already ended, --script does not compile, or (embedded) the run failed or was
blocked again; 4 (embedded) the run was cancelled.`,
		Example: `  ctl runs resume 01JD4W6Q3Z8X5M2N7P9R0S1T2V
  ctl runs resume 01JD4W6Q3Z8X5M2N7P9R0S1T2V --script checkout_v2.star`,
		Args: wantArgs("RUN"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, id := cmd.Context(), args[0]
			c, err := a.connect(ctx, noRecovery)
			if err != nil {
				return err
			}
			defer c.close()
			var script *api.Script
			if scriptFile != "" {
				if name == "" {
					d, err := c.Get(ctx, id)
					if err != nil {
						return failure(err)
					}
					name = d.Script
				}
				s, err := readScript(scriptFile, name)
				if err != nil {
					return err
				}
				script = &s
			}
			rec, err := c.Resume(ctx, id, script, a.whoami())
			var ce *api.CompileError
			switch {
			case errors.As(err, &ce):
				return a.compileFailure(ce)
			case err != nil:
				return failure(errors.New(plainMessage(err)))
			}
			version := rec.Hash
			if script != nil {
				version = script.Hash() // the record may still name the old version until the run is indexed again
			}
			line := fmt.Sprintf("run %s resumed on version %s: %s", id, shortHash(version), rec.Status)
			switch {
			case !c.embedded && asJSON:
				return writeValue(a.stdout, rec)
			case !c.embedded:
				fmt.Fprintln(a.stdout, line)
				return nil
			}
			fmt.Fprintln(a.stderr, line)
			end, err := a.waitSettled(ctx, c, id)
			if err != nil {
				return a.waitError(ctx, c, id, err)
			}
			return a.reportRun(end, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&scriptFile, "script", "", "continue the run on the script in `FILE.star`")
	f.StringVar(&name, "name", "", "`NAME` of the --script script (default: the run's script name)")
	f.BoolVar(&asJSON, "json", false, "print the run's record as JSON (the exit code is the same)")
	return cmd
}

// waitSettled waits until run id has ended or is blocked.
func (a *app) waitSettled(ctx context.Context, c *conn, id string) (*api.Run, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, settlePoll(c.embedded))
		end, err := c.Wait(wctx, id)
		cancel()
		if err == nil {
			return end, nil
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		d, err := c.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if d.Status == api.StatusBlocked || d.Done() {
			return &d.Run, nil
		}
	}
}

// whoami names the user for the journal: $USER@host.
func (a *app) whoami() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	name = cmp.Or(name, a.getenv("USER"), "unknown")
	if host, err := os.Hostname(); err == nil && host != "" {
		name += "@" + host
	}
	return name
}
