package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/logs"
	"github.com/droverhq/drover/replay"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// run is a run this node coordinates: a new one, or one adopted from its
// journal. Its script's steps go to rt, the replay runtime, which answers
// those the journal holds and hands the others to the run's live side (Step,
// Tag, Patch: replay.Live).
type run struct {
	n      *Node
	id     string
	prog   *script.Program
	input  json.RawMessage
	j      *journal.Journal // the journal it was adopted with; nil for a new run
	rt     *replay.Runtime
	ctx    context.Context // the run span's context; cancelled with the run
	cancel context.CancelCauseFunc
	done   chan struct{}
	// traceID and spanID are those of the run's span, for its log lines.
	traceID, spanID string
	logp            atomic.Pointer[zerolog.Logger]       // logger
	logw            *logs.Writer                         // its lines' way out, made with the first
	attrsKV         atomic.Pointer[[]attribute.KeyValue] // spanAttrs, once made

	mu      sync.Mutex
	record  api.Run          // Steps counts live steps only: see snapshot
	unacked *journal.Unacked // call entries not yet acknowledged
	// suspended is set when a durable timer parks the run.
	suspended *suspension
	// journalErr is set when the journal could not be written.
	journalErr error
}

var _ replay.Live = (*run)(nil)

// newRun returns the run of prog with record rec, adopted with journal j
// (nil for a new run), its span's parent the W3C traceParent if valid.
func (n *Node) newRun(prog *script.Program, rec api.Run, input json.RawMessage, j *journal.Journal, traceParent string) *run {
	if rec.Attrs == nil {
		rec.Attrs = map[string]string{}
	}
	r := &run{
		n: n, id: rec.ID, prog: prog, input: input, j: j, done: make(chan struct{}), record: rec, unacked: n.journal.Unacked(rec.ID),
	}
	r.traceID, r.spanID = runIDs(rec.ID, traceParent)
	l := n.runLogger(r, rec.Attrs)
	r.logp.Store(&l)
	r.rt = replay.New(j, r)
	base, cancel := context.WithCancelCause(n.baseCtx)
	r.cancel = cancel
	r.ctx = telemetry.RunContext(context.WithValue(base, runKey{}, r), rec.ID, traceParent)
	return r
}

// RecordMetric implements the script module metrics' Recorder (through
// replay.Runtime, which calls it only for a run going on live): the
// script's metric, tagged with its script.
func (r *run) RecordMetric(thread *starlark.Thread, kind, name string, value float64, tags map[string]string) {
	if tags == nil {
		tags = map[string]string{}
	}
	tags["script"] = r.record.Script
	r.n.metrics.Script(kind, name, value, tags)
}

// spanAttrs are the attributes of the run's spans: run, script, version,
// and its attributes so far (drover.attr.<name>). They are made once, and
// again after each tag().
func (r *run) spanAttrs() []attribute.KeyValue {
	if kv := r.attrsKV.Load(); kv != nil {
		return *kv
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	kv := make([]attribute.KeyValue, 0, 3+len(r.record.Attrs))
	kv = append(kv, attribute.String("drover.run", r.id), attribute.String("drover.script", r.record.Script), attribute.String("drover.version", r.prog.Hash[:12]))
	for k, v := range r.record.Attrs {
		kv = append(kv, attribute.String("drover.attr."+k, v))
	}
	r.attrsKV.Store(&kv)
	return kv
}

// logger returns the run's logger: its lines are part of the run (package
// logs), with every attribute it has so far.
func (r *run) logger() *zerolog.Logger { return r.logp.Load() }

type runKey struct{}

// runOf returns the run whose context (run.ctx, or one derived from it)
// ctx is.
func runOf(ctx context.Context) *run {
	return ctx.Value(runKey{}).(*run)
}

// Start implements api.API: it begins a run of req.Script and returns its
// record; the run continues in the background (use Wait for its end). A
// script that does not compile, input that is not JSON or a bad attribute is
// refused before anything is journaled.
func (n *Node) Start(ctx context.Context, req api.StartRequest) (*api.Run, error) {
	return n.start(ctx, req, "")
}

// start is Start, under run id id when it is not "" (a triggered run's,
// reserved before it starts).
func (n *Node) start(ctx context.Context, req api.StartRequest, id string) (*api.Run, error) {
	var prog *script.Program
	version := 0
	if req.Deployed() {
		live, err := n.deployer.Live(ctx, req.Script.Name)
		if err != nil {
			return nil, err
		}
		prog, version = live.Program, live.Deployment.Version
	} else {
		var err error
		if prog, err = n.compiler.Compile(req.Script); err != nil {
			return nil, err
		}
	}
	input, err := req.Check(n.opts.PayloadLimit)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil, api.ErrClosed
	}
	n.runsWG.Add(1)
	n.mu.Unlock()
	if id == "" {
		id = n.newRunID(time.Now())
	}
	n.mu.Lock()
	n.starting[id] = true // a triggered run's message delivered again meanwhile leaves it be
	n.mu.Unlock()
	r, err := n.begin(ctx, prog, id, req.Script.Name, version, input, req.Attrs, req.TraceParent, req.Awaited)
	n.mu.Lock()
	delete(n.starting, id)
	n.mu.Unlock()
	if err != nil {
		n.runsWG.Done()
		return nil, err
	}
	go r.execute()
	rec := r.snapshot()
	return &rec, nil
}

// newRunID returns the id of a new run started at t: a ULID, in one of the
// node's partitions.
func (n *Node) newRunID(t time.Time) string {
	return bus.RunID(ulid.MustNew(ulid.Timestamp(t), ulid.DefaultEntropy()).String(), rand.IntN(max(n.opts.Partitions, 1)))
}

// begin journals the start of a new run and indexes it, or, for an awaited
// run, defers both to its first output (journal.Store.Defer).
func (n *Node) begin(ctx context.Context, prog *script.Program, id, name string, version int, input json.RawMessage, attrs map[string]string, traceParent string, awaited bool) (*run, error) {
	if err := n.scripts.Save(ctx, prog.Script, prog.Hash); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	if attrs == nil {
		attrs = map[string]string{}
	}
	start := api.StartEntry{Run: id, Script: name, Hash: prog.Hash, Input: input, Attrs: attrs, Coordinator: n.opts.Name, Time: now, TraceParent: traceParent, Version: version}
	rec := api.Run{ID: id, Script: name, Hash: prog.Hash, Version: version, Status: api.StatusRunning, Attrs: attrs, Coordinator: n.opts.Name, Started: now}
	r := n.newRun(prog, rec, input, nil, traceParent)
	index := func(ctx context.Context) error { return n.runs.Put(ctx, r.snapshot(), "", attrs) }
	failed := func(err error) { n.runs.NotStarted(context.WithoutCancel(ctx), rec, err) } // indexed, never started
	if err := n.journal.Begin(ctx, id, start, awaited, index, failed); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.active[id] = r
	active := len(n.active)
	n.mu.Unlock()
	n.metrics.RunsInFlight(active)
	r.logger().Info().Msg("run started")
	return r, nil
}

// snapshot returns a copy of the run's record, its step count including the
// steps answered from its journal.
func (r *run) snapshot() api.Run {
	replayed := r.rt.Replayed()
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.record
	rec.Steps += replayed
	rec.Attrs = make(map[string]string, len(r.record.Attrs))
	for k, v := range r.record.Attrs {
		rec.Attrs[k] = v
	}
	return rec
}

// execute interprets the script and journals how the run ended, or parks it
// (durable timer), blocks it (divergence during recovery) or leaves it
// unfinished (shutdown, journal unavailable).
func (r *run) execute() {
	defer r.n.runsWG.Done()
	ctx, span := r.n.tracer.Start(r.ctx, "run "+r.record.Script, trace.WithAttributes(r.spanAttrs()...))
	r.ctx = ctx
	var result json.RawMessage
	var runErr *api.RunError
	if r.j != nil && r.j.Cancel != nil {
		r.mu.Lock()
		r.record.Steps = len(r.j.Calls) // not replayed: the steps it journaled
		r.mu.Unlock()
		r.cancel(errCancelled) // cancelled while no node was running it
	} else {
		result, runErr = script.Run(r.ctx, r.prog, r.rt, r.input, script.Options{
			MaxSteps: r.n.opts.MaxExecSteps, PayloadLimit: r.n.opts.PayloadLimit, CancelReason: cancelReason,
			LimitHint: "raise the limit with --max-exec-steps (of engine, or of ctl for its embedded node) if this is expected",
			Print:     func(msg string) { r.logger().Info().Str("source", "print").Msg(msg) },
		})
	}
	if runErr == nil {
		if err := r.rt.Unvisited(); err != nil {
			runErr = &api.RunError{Code: api.CodeNonDeterminism, Message: err.Error()}
		}
	}
	if runErr != nil {
		span.SetStatus(codes.Error, runErr.Message)
	}
	if span.IsRecording() {
		span.SetAttributes(r.spanAttrs()...) // with the attributes tag() added
	}
	span.End()
	switch {
	case errors.Is(context.Cause(r.ctx), errShutdown):
		r.logger().Warn().Msg("run interrupted by shutdown; its journal is kept for recovery")
		r.finishLocal()
	case errors.Is(context.Cause(r.ctx), errJournal):
		r.logger().Error().Err(r.journalErr).Msg("journal unavailable: run interrupted; it will be adopted again")
		r.finishLocal()
		r.n.readoptLater(r.id)
	case errors.Is(context.Cause(r.ctx), errCancelled):
		r.end(nil, r.cancelError())
	case r.suspended != nil:
		r.park()
	case runErr != nil && runErr.Code == api.CodeNonDeterminism && r.j != nil:
		r.block(runErr)
	default:
		r.end(result, runErr)
	}
}

// end journals the end of the run and updates the index.
func (r *run) end(result json.RawMessage, runErr *api.RunError) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.unacked.Wait(ctx)
	now := time.Now().UTC()
	r.mu.Lock()
	r.record.Ended = &now
	if runErr != nil {
		r.record.Status, r.record.Error = api.StatusFailed, runErr
		if runErr.Code == builtins.CodeCancelled {
			r.record.Status = api.StatusCancelled
		}
	} else {
		r.record.Status, r.record.Result = api.StatusCompleted, result
	}
	r.mu.Unlock()
	rec := r.snapshot()
	end := api.EndEntry{Status: rec.Status, Result: result, Error: runErr, Steps: rec.Steps, Time: now}
	// The end entry and the index records are written at once (one round
	// trip); the old status key is removed once waiters have the end. A run
	// that ends before its first output is written sealed, and indexed once.
	pend, sealed, err := r.n.journal.AppendEnd(r.id, end)
	if err != nil {
		r.logger().Error().Err(err).Msg("journal end of run")
	}
	removeOld, err := r.n.runs.PutKeepOld(ctx, rec, map[bool]string{false: api.StatusRunning}[sealed], nil) // never indexed if sealed
	if err != nil {
		r.logger().Error().Err(err).Msg("index end of run")
	}
	if pend != nil {
		if err := pend.Wait(ctx); err != nil {
			r.logger().Error().Err(err).Msg("journal end of run")
		}
	}
	defer func() {
		if err := removeOld(ctx); err != nil {
			r.logger().Error().Err(err).Msg("index end of run: remove the running key")
		}
	}()
	ev := r.logger().Info()
	if runErr != nil {
		ev = r.logger().Warn().Str("error", runErr.Message)
	}
	ev.Str("status", rec.Status).Int("steps", rec.Steps).Dur("took", now.Sub(rec.Started)).Msg("run ended")
	r.n.metrics.RunEnded(rec.Script, rec.Status)
	if runErr != nil {
		r.n.alerts.RunEnded(rec.Script, r.id, rec.Status, runErr.Message)
	} else {
		r.n.alerts.RunEnded(rec.Script, r.id, rec.Status, "")
	}
	r.finishLocal()
	r.n.sealer.Add(r.id)
}

// block stops a recovered run whose script no longer matches its journal: it
// is neither failed nor continued, and can be resumed after a fix.
func (r *run) block(runErr *api.RunError) {
	r.mu.Lock()
	prev := r.record.Status
	r.record.Status, r.record.Error = api.StatusBlocked, runErr
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.n.runs.Put(ctx, r.snapshot(), prev, nil); err != nil {
		r.logger().Error().Err(err).Msg("index blocked run")
	}
	r.logger().Error().Str("error", runErr.Message).Msg("run blocked: its journal no longer matches the script (resume it after a fix)")
	r.n.metrics.RunEnded(r.record.Script, api.StatusBlocked)
	r.finishLocal()
}

// finishLocal forgets the run on this node, whatever became of it.
func (r *run) finishLocal() {
	r.n.journal.Drop(r.id) // a run that stops before its first output leaves nothing
	r.n.mu.Lock()
	if r.n.active[r.id] == r {
		delete(r.n.active, r.id)
	}
	active := len(r.n.active)
	r.n.mu.Unlock()
	r.n.metrics.RunsInFlight(active)
	r.cancel(nil)
	close(r.done)
}

// journalFailed records that the run could not write its journal: the run is
// then interrupted, not failed, and adopted again (see execute).
func (r *run) journalFailed(err error) error {
	r.mu.Lock()
	if r.journalErr == nil {
		r.journalErr = err
	}
	r.mu.Unlock()
	r.cancel(errJournal)
	return fmt.Errorf("%w: %v", errJournal, err)
}

// Tag implements replay.Live: it journals the attributes of tag() call
// number seq and indexes them.
func (r *run) Tag(thread *starlark.Thread, seq int, attrs map[string]string) error {
	for k := range attrs {
		if err := api.CheckAttrName(k); err != nil {
			return err
		}
	}
	r.mu.Lock()
	for k, v := range attrs {
		r.record.Attrs[k] = v
	}
	l := r.n.runLogger(r, maps.Clone(r.record.Attrs))
	r.logp.Store(&l)
	r.attrsKV.Store(nil) // made again with the new attributes
	r.mu.Unlock()
	entry := api.TagEntry{Attrs: attrs, Pos: script.CallerPos(thread), Time: time.Now().UTC()}
	if err := r.n.journal.Append(r.ctx, r.id, api.EntryTag, strconv.Itoa(seq), entry); err != nil {
		return err
	}
	return r.n.runs.Put(r.ctx, r.snapshot(), api.StatusRunning, attrs)
}

// Patch implements replay.Live: it journals the decision of patched(id),
// unless another coordinator of the run did first.
func (r *run) Patch(thread *starlark.Thread, id string, value bool) (bool, error) {
	var stored api.PatchEntry
	created, err := r.n.journal.Create(r.ctx, r.id, api.EntryPatch, id,
		api.PatchEntry{Value: value, Pos: script.CallerPos(thread), Time: time.Now().UTC()}, &stored)
	if err != nil || created {
		return value, err
	}
	return stored.Value, nil
}

// Logger implements replay.Live.
func (r *run) Logger(thread *starlark.Thread) *zerolog.Logger {
	c := r.logger().With().Str("pos", script.CallerPos(thread))
	if step := script.LastStepID(thread); step != "" {
		c = c.Str("after_step", step) // ctl runs show lists the line under it
	}
	l := c.Logger()
	return &l
}
