package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/replay"
)

func (a *app) replayCommand() *cobra.Command {
	var (
		from, scriptFile, name string
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "replay RUN | --from FILE",
		Short: "Replay a run from its journal, executing nothing",
		Long: `Replay a run: its script runs again, here in ctl, and every step call is
checked against the run's journal (same builtin, same arguments) and answered
with the journaled result. No step is executed: a replay makes no outside
call, whatever the script does.

RUN is fetched from the node, as ctl runs export writes it. With --from FILE
(- for stdin) ctl replays an exported run file without any node: it neither
starts an embedded node nor contacts a server.

--script FILE replays the run against another script, built like ctl run's
(to test a fix): it is named after the original run's script unless --name.

The replayed result goes to stdout and a summary to stderr. A run that was
still going is replayed up to the end of its journal.

Exit code: 0 the replay ended as the run did, or replayed a run still going;
1 the run failed and its replay fails the same way (message and backtrace on
stderr), or the replay could not be done (unknown run, unreadable or corrupted
file, --script that does not compile); 3 the replay diverged: at some step the
script made another call than the journal holds, made more or fewer calls, or
the run ended otherwise than the original.`,
		Example: `  ctl replay 01JD4W6Q3Z8X5M2N7P9R0S1T2V
  ctl runs export 01JD4W6Q3Z8X5M2N7P9R0S1T2V > run.json && ctl replay --from run.json
  ctl replay 01JD4W6Q3Z8X5M2N7P9R0S1T2V --script fixed.star
  ctl replay --from run.json --json | jq .divergence`,
		Args: func(cmd *cobra.Command, args []string) error {
			if from == "" {
				return wantArgs("RUN")(cmd, args)
			}
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q: give RUN or --from FILE, not both", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var exp *api.Export
			var err error
			if from != "" {
				exp, err = readExport(from, a.stdin)
			} else {
				exp, err = a.fetchExport(ctx, args[0])
			}
			if err != nil {
				return err
			}
			var script *api.Script
			if scriptFile != "" {
				s, err := readScript(scriptFile, cmp.Or(name, exp.Run.Script))
				if err != nil {
					return err
				}
				script = &s
			}
			rep, err := replay.Replay(ctx, exp, replay.Options{Script: script, MaxExecSteps: a.maxSteps})
			var ce *api.CompileError
			var de *api.DivergenceError
			switch {
			case errors.As(err, &ce):
				return a.compileFailure(ce)
			case errors.As(err, &de) && rep != nil:
				if asJSON {
					if err := writeValue(a.stdout, rep); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(a.stderr, "%s: diverged\n", replaySummary(rep))
					fmt.Fprintf(a.stderr, "replay diverged: %s\n", de.Error())
					if de.Journaled == nil && rep.Steps == rep.Journaled {
						fmt.Fprintf(a.stderr, "all %d journaled steps matched: the script goes on past the end of the original run, and replay has no results for steps the run never made\n", rep.Journaled)
					}
				}
				return silent(ExitDiverged)
			case err != nil:
				return failure(err)
			}
			if asJSON {
				if err := writeValue(a.stdout, rep); err != nil {
					return err
				}
				return silent(replayExit(rep))
			}
			return a.reportReplay(rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "replay the run exported in `FILE` (- for stdin), without any node")
	f.StringVar(&scriptFile, "script", "", "replay against the script in `FILE.star` instead of the run's own version")
	f.StringVar(&name, "name", "", "`NAME` of the --script script (default: the original run's script name)")
	f.BoolVar(&asJSON, "json", false, "print the replay report as JSON (the exit code is the same)")
	return cmd
}

// fetchExport asks the node for run id's export. An embedded node is started
// without recovery, and stopped before the replay.
func (a *app) fetchExport(ctx context.Context, id string) (*api.Export, error) {
	c, err := a.connect(ctx, noRecovery)
	if err != nil {
		return nil, err
	}
	defer c.close()
	exp, err := c.Export(ctx, id)
	if err != nil {
		return nil, failure(err)
	}
	return exp, nil
}

// readExport reads and checks a run file (- for stdin).
func readExport(file string, stdin io.Reader) (*api.Export, error) {
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, failure(err)
	}
	exp, err := journal.ParseExport(data)
	if err != nil {
		return nil, failure(fmt.Errorf("%s: %s", file, plainMessage(err)))
	}
	return exp, nil
}

// replaySummary is the first part of a replay's summary line: how many steps,
// how fast, which run and version.
func replaySummary(rep *replay.Report) string {
	return fmt.Sprintf("replayed %d of %d steps in %s (run %s, version %s)",
		rep.Steps, rep.Journaled, formatDuration(rep.Took), rep.Run.ID, shortHash(rep.Hash))
}

// replayExit is the exit code of a replay that did not diverge at a step.
func replayExit(rep *replay.Report) int {
	switch {
	case rep.Partial:
		return ExitOK
	case !rep.Matches:
		return ExitDiverged
	case rep.Error != nil:
		return ExitFailure
	}
	return ExitOK
}

// reportReplay prints the outcome of a replay that did not diverge at a step:
// the replayed result on stdout, the summary and any error on stderr.
func (a *app) reportReplay(rep *replay.Report) error {
	head := replaySummary(rep)
	switch {
	case rep.Partial:
		how := "the run was still going"
		if rep.Run.Done() {
			how = fmt.Sprintf("the run was %s before its last step had a result", rep.Run.Status)
		}
		fmt.Fprintf(a.stderr, "%s: %s: replayed its first %d steps\n", head, how, rep.Steps)
		return nil
	case rep.Matches && rep.Error == nil:
		if err := writeJSON(a.stdout, rep.Result); err != nil {
			return err
		}
		fmt.Fprintf(a.stderr, "%s: same result as the original run\n", head)
		return nil
	case rep.Matches:
		fmt.Fprintf(a.stderr, "%s: same error as the original run\n", head)
		return a.reportEnd(&api.Run{ID: rep.Run.ID, Status: api.StatusFailed, Error: rep.Error})
	}
	if rep.Error == nil {
		if err := writeJSON(a.stdout, rep.Result); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.stderr, "%s: the outcome differs from the original run\n", head)
	fmt.Fprintf(a.stderr, "  original: %s\n", outcome(rep.Run.Status, rep.Run.Result, rep.Run.Error))
	replayed := api.StatusCompleted
	if rep.Error != nil {
		replayed = api.StatusFailed
	}
	fmt.Fprintf(a.stderr, "  replayed: %s\n", outcome(replayed, rep.Result, rep.Error))
	return silent(ExitDiverged)
}

// outcome is how a run ended, on one line: completed and its result, or the
// status and the error message.
func outcome(status string, result json.RawMessage, runErr *api.RunError) string {
	if status == api.StatusCompleted {
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		return "completed " + compactJSON(result)
	}
	if runErr == nil {
		return status
	}
	return status + ": " + strings.Join(strings.Fields(runErr.Message), " ")
}

// htmlEscapes are the \uXXXX escapes encoding/json writes for HTML safety.
var htmlEscapes = map[string]byte{"003c": '<', "003e": '>', "0026": '&'}

// unescapeHTML replaces the escapes \u003c, \u003e and \u0026 in JSON text by
// the characters they stand for. In valid JSON a backslash only appears in a
// string, starting a two-character escape or a \uXXXX one.
func unescapeHTML(b []byte) []byte {
	if !bytes.Contains(b, []byte(`\u00`)) {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			if c, ok := htmlEscapes[strings.ToLower(string(b[i+2:i+6]))]; ok {
				out = append(out, c)
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// writeExport writes a run file: indented JSON, with one journal entry per
// line and each entry's data exactly as journaled (compact), so that the file
// diffs well and Replay reads back the journal's own bytes.
func writeExport(w io.Writer, exp *api.Export) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	buf.WriteString("{\n  \"format\": ")
	if err := enc.Encode(exp.Format); err != nil {
		return err
	}
	enc.SetIndent("  ", "  ")
	for _, part := range []struct {
		name string
		v    any
	}{{"run", exp.Run}, {"script", exp.Script}} {
		trimNewline(&buf)
		fmt.Fprintf(&buf, ",\n  %q: ", part.name)
		if err := enc.Encode(part.v); err != nil {
			return err
		}
	}
	trimNewline(&buf)
	buf.WriteString(",\n  \"journal\": [")
	enc.SetIndent("", "")
	for i, e := range exp.Journal {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString("\n    ")
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("journal entry %d (%s %s): %w", i+1, e.Kind, e.Key, err)
		}
		trimNewline(&buf)
	}
	if len(exp.Journal) > 0 {
		buf.WriteString("\n  ")
	}
	buf.WriteString("]\n}\n")
	_, err := w.Write(buf.Bytes())
	return err
}

func trimNewline(buf *bytes.Buffer) {
	if b := buf.Bytes(); len(b) > 0 && b[len(b)-1] == '\n' {
		buf.Truncate(len(b) - 1)
	}
}

// plainMessage is err's text without the engine's "engine: bad input: "
// prefix, for messages about what the user gave.
func plainMessage(err error) string {
	return strings.TrimPrefix(err.Error(), api.ErrBadInput.Error()+": ")
}

// shortHash is the first 12 characters of a script version hash.
func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return orDash(h)
}
