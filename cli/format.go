package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/droverhq/drover/api"
)

// Time layouts: whole seconds in tables, milliseconds in a run's header.
const (
	tableTime  = "2006-01-02 15:04:05"
	detailTime = "2006-01-02 15:04:05.000 MST"
)

// writeJSON prints raw JSON indented by two spaces, with <, > and & written
// literally however the node escaped them; empty means null.
func writeJSON(w io.Writer, raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage("null")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return failure(fmt.Errorf("the node returned a result that is not JSON: %w", err))
	}
	buf.WriteByte('\n')
	_, err := w.Write(unescapeHTML(buf.Bytes()))
	return err
}

// writeValue prints v as JSON indented by two spaces, with <, > and &
// written literally, as writeJSON does.
func writeValue(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(w io.Writer, cells ...string) { fmt.Fprintln(w, strings.Join(cells, "\t")) }

// writeRunsTable prints the runs of `ctl runs ls`, times in loc.
func writeRunsTable(w io.Writer, runs []api.Run, loc *time.Location) error {
	tw := newTable(w)
	row(tw, "ID", "SCRIPT", "STATUS", "STARTED", "DURATION", "STEPS", "ATTRS")
	for _, r := range runs {
		dur := "-"
		if r.Ended != nil {
			dur = formatDuration(r.Ended.Sub(r.Started))
		}
		row(tw, r.ID, r.Script, r.Status, r.Started.In(loc).Format(tableTime), dur, fmt.Sprint(r.Steps), orDash(formatAttrs(r.Attrs)))
	}
	return tw.Flush()
}

// writeRunDetail prints the run of `ctl runs show`: a header, then its steps.
func writeRunDetail(w io.Writer, d *api.RunDetail, loc *time.Location) error {
	field := func(k, v string) { fmt.Fprintf(w, "%-14s%s\n", k+":", v) }
	block := func(k, text string) {
		fmt.Fprintf(w, "%s:\n", k)
		for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
			fmt.Fprintf(w, "  %s\n", line)
		}
	}
	field("Run", d.ID)
	field("Script", fmt.Sprintf("%s (version %s)", d.Script, shortHash(d.Hash)))
	field("Status", d.Status)
	field("Coordinator", orDash(d.Coordinator))
	if d.TraceID != "" {
		field("Trace", d.TraceID)
	}
	field("Started", d.Started.In(loc).Format(detailTime))
	switch {
	case d.Ended != nil:
		field("Ended", fmt.Sprintf("%s (took %s)", d.Ended.In(loc).Format(detailTime), formatDuration(d.Ended.Sub(d.Started))))
	case d.Status == api.StatusBlocked:
		field("Ended", "- (blocked)")
	default:
		field("Ended", "- (still running)")
	}
	if d.WakeAt != nil {
		field("Wakes", d.WakeAt.In(loc).Format(detailTime)+" (parked in a durable sleep)")
	}
	switch {
	case d.Pinned:
		field("Expires", "never (pinned)")
	case d.Expires != nil:
		field("Expires", d.Expires.In(loc).Format(detailTime))
	}
	field("Input", orDash(compactJSON(d.Input)))
	field("Attrs", orDash(formatAttrs(d.Attrs)))
	switch {
	case d.Error != nil:
		// Continuation lines (a divergence's calls) line up under the first.
		field("Error", strings.ReplaceAll(strings.TrimRight(d.Error.Message, "\n"), "\n", "\n"+strings.Repeat(" ", 14)))
		if d.Error.Code != "" {
			field("Code", d.Error.Code)
		}
		if d.Status == api.StatusBlocked {
			field("Hint", blockedHint(d.ID))
		}
		if d.Error.Backtrace != "" {
			block("Backtrace", d.Error.Backtrace)
		}
	case d.Status == api.StatusCompleted:
		var buf bytes.Buffer
		if err := writeJSON(&buf, d.Result); err != nil {
			return err
		}
		block("Result", buf.String())
	}
	fmt.Fprintln(w)
	if len(d.Steps) == 0 {
		fmt.Fprintln(w, "No steps.")
		return nil
	}
	tw := newTable(w)
	row(tw, "STEP", "BUILTIN", "NODE", "START", "DURATION", "OUTCOME", "POS", "PLACED BECAUSE")
	for _, s := range d.Steps {
		dur := "-"
		if s.Outcome != "pending" {
			dur = formatDuration(s.Duration)
		}
		// A step placed more than once: a row per placement, the last one
		// where it executed.
		last := len(s.Placements) - 1
		for i, p := range s.Placements[:max(last, 0)] {
			why := fmt.Sprintf("placement %d of %d: placed again: %s", p.Attempt, last+1, s.Placements[i+1].Why)
			row(tw, s.ID, s.Builtin, p.Node, formatOffset(p.Time.Sub(d.Started)), "-", why, orDash(s.Pos), orDash(p.Reason))
		}
		outcome, reason := formatOutcome(s), s.Reason
		if last > 0 {
			outcome = fmt.Sprintf("placement %d of %d: %s", s.Placements[last].Attempt, last+1, outcome)
			reason = s.Placements[last].Reason
		}
		row(tw, s.ID, s.Builtin, orDash(s.Node), formatOffset(s.Start.Sub(d.Started)), dur, outcome, orDash(s.Pos), orDash(reason))
	}
	return tw.Flush()
}

// formatOutcome is ok, error: <message> or pending, with the attempts when
// there were retries.
func formatOutcome(s api.StepView) string {
	out := s.Outcome
	if s.Outcome == "error" && s.Error != nil {
		out = "error: " + strings.Join(strings.Fields(s.Error.Message), " ")
	}
	if s.Attempts > 1 {
		out += fmt.Sprintf(" (%d attempts)", s.Attempts)
	}
	return out
}

// formatDuration rounds d to what a reader can use: µs below a second, ms
// below a minute, seconds above.
func formatDuration(d time.Duration) string {
	switch a := d.Abs(); {
	case a < time.Microsecond:
		return d.String()
	case a < time.Second:
		return d.Round(time.Microsecond).String()
	case a < time.Minute:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// formatOffset is a signed offset from a run's start, like +1.234ms.
func formatOffset(d time.Duration) string {
	if d < 0 {
		return formatDuration(d) // clocks of two nodes can disagree
	}
	return "+" + formatDuration(d)
}

// formatAttrs is k=v pairs sorted by name, comma-separated.
func formatAttrs(attrs map[string]string) string {
	pairs := make([]string, 0, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		pairs = append(pairs, k+"="+attrs[k])
	}
	return strings.Join(pairs, ",")
}

// compactJSON is raw on one line, with <, > and & written literally.
func compactJSON(raw json.RawMessage) string {
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return string(raw)
	}
	return string(unescapeHTML(buf.Bytes()))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeRunLog prints a run's log lines after its steps: the time since the
// run started, level, node, the step a line is about (or, for a script's
// line, the step it came after), the message and the line's other fields.
func writeRunLog(w io.Writer, lines []json.RawMessage, started time.Time) error {
	fmt.Fprintln(w)
	if len(lines) == 0 {
		fmt.Fprintln(w, "No log lines.")
		return nil
	}
	tw := newTable(w)
	row(tw, "LOG", "LEVEL", "NODE", "STEP", "MESSAGE")
	for _, raw := range lines {
		var f map[string]json.RawMessage
		if json.Unmarshal(raw, &f) != nil {
			continue
		}
		str := func(k string) string {
			var s string
			json.Unmarshal(f[k], &s)
			return s
		}
		at := "-"
		if t, err := time.Parse(time.RFC3339Nano, str("time")); err == nil {
			at = formatOffset(t.Sub(started))
		}
		step := str("step")
		if a := str("after_step"); step == "" && a != "" {
			step = "after " + a
		}
		msg := str("message")
		var rest []string
		for k := range f {
			if !slices.Contains(logFieldsShown, k) && k != "step" && k != "after_step" {
				rest = append(rest, k)
			}
		}
		slices.Sort(rest)
		for _, k := range rest {
			msg += fmt.Sprintf(" %s=%s", k, f[k])
		}
		row(tw, at, str("level"), str("node"), orDash(step), msg)
	}
	return tw.Flush()
}
