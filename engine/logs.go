package engine

import (
	"bytes"
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/logs"
	"github.com/droverhq/drover/telemetry"
)

// followBuffer is how many live lines a follower may lag behind before
// lines are dropped (and counted).
const followBuffer = 4096

// Logs implements api.API: the stored lines q selects (one run's: from the
// runs index; several runs': those of the runs the index lists for q's
// attributes and script, started or ended since q.Since), then, with
// q.Follow, live ones through a tap (package logs).
func (n *Node) Logs(ctx context.Context, q api.LogQuery, fn func(api.LogLine) bool) error {
	if err := q.Check(); err != nil {
		return err
	}
	level, err := logs.ParseLevel(q.Level)
	if err != nil {
		return err
	}
	if q.Run != "" {
		if _, err := n.runs.Get(ctx, q.Run); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Live lines are followed from before the stored ones are read, so that
	// none falls between; those read both ways are shown once.
	live := make(chan api.LogLine, followBuffer)
	followed := make(chan error, 1)
	start := time.Now()
	if q.Follow {
		tap := logs.Tap{Run: q.Run, Attrs: q.Attrs, Script: q.Script, Node: q.Node, Level: level}
		ready := make(chan struct{})
		go func() {
			followed <- logs.Follow(ctx, n.bus, tap, followBuffer, func(line []byte, dropped int) {
				if line == nil && dropped == 0 {
					close(ready)
					return
				}
				select {
				case live <- api.LogLine{Line: line, Dropped: dropped}:
				case <-ctx.Done():
				}
			})
		}()
		select { // the tail in place before anything is read back
		case <-ready:
		case err := <-followed:
			return err
		case <-ctx.Done():
			return nil
		}
		start = time.Now()
		if !fn(api.LogLine{}) { // api.LogLine.Ready
			return nil
		}
	}
	var runs []string
	var since time.Time
	switch {
	case q.Run != "":
		runs = []string{q.Run}
		if q.Since > 0 {
			since = start.Add(-q.Since)
		}
	case q.Since > 0:
		since = start.Add(-q.Since)
		list, err := n.List(ctx, api.ListFilter{Script: q.Script, Attrs: q.Attrs, Since: q.Since, Limit: 1000})
		if err != nil {
			return err
		}
		for i := len(list) - 1; i >= 0; i-- {
			runs = append(runs, list[i].ID)
		}
	}
	seen := map[string]bool{} // lines read back that the tap may deliver again
	stopped := false
	err = logs.Read(ctx, n.bus, runs, since, level, q.Node, func(l logs.Line) bool {
		if q.Follow && !l.Time.Before(start.Add(-time.Second)) {
			seen[string(l.Raw)] = true
		}
		stopped = !fn(api.LogLine{Line: l.Raw})
		return !stopped
	})
	if err != nil || stopped || !q.Follow {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-followed:
			return err
		case l := <-live:
			if l.Dropped == 0 {
				if trimmed := bytes.TrimRight(l.Line, "\r\n"); seen[string(trimmed)] {
					delete(seen, string(trimmed))
					continue
				} else {
					l.Line = trimmed
				}
			}
			if !fn(l) {
				return nil
			}
		}
	}
}

// stampNano adds each line's time with nanoseconds (RFC 3339), whatever
// zerolog's global time format: lines from several nodes are read back in
// time order.
var stampNano = zerolog.HookFunc(func(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str(zerolog.TimestampFieldName, time.Now().UTC().Format(time.RFC3339Nano))
})

// runIDs returns the trace and span ids of the span of run: its trace the
// incoming W3C traceParent's when valid (telemetry.RunTraceID).
func runIDs(run, traceParent string) (traceID, spanID string) {
	return telemetry.RunTraceID(run, traceParent).String(), telemetry.SpanID(run, "", "run").String()
}

// runLogger returns the logger of run r: its lines carry the node, run,
// script, version, trace and span ids and the run's attributes, and go to
// the bus (package logs) and to the node's own output.
func (n *Node) runLogger(r *run, attrs map[string]string) zerolog.Logger {
	w := r.logw
	if w == nil {
		w = logs.NewWriter(logs.WriterOptions{Bus: n.bus, Taps: n.taps, Out: n.opts.LogOutput, OutLevel: n.log.GetLevel(),
			Run: r.id, Script: r.record.Script, Node: n.opts.Name, Attrs: attrs, Limit: n.opts.RunLogLines})
		r.logw = w
	} else {
		w.SetAttrs(attrs)
	}
	c := zerolog.New(w).Level(n.runLogLevel).Hook(stampNano).With().Str("node", n.opts.Name).Str("run", r.id).
		Str("script", r.record.Script).Str("version", r.prog.Hash[:12]).
		Str("trace_id", r.traceID).Str("span_id", r.spanID)
	if len(attrs) > 0 {
		c = c.Interface("attrs", attrs)
	}
	return c.Logger()
}
