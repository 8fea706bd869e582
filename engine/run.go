package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// run is a run this node coordinates.
type run struct {
	n      *Node
	id     string
	prog   *program
	input  json.RawMessage
	ctx    context.Context // the run span's context; cancelled with the run
	cancel context.CancelCauseFunc
	log    zerolog.Logger
	done   chan struct{}

	mu      sync.Mutex
	record  Run
	tags    int
	pending []*bus.Pending // call entries not yet acknowledged

	// Recovery: the journal the run is replayed against (nil for a new run),
	// the step ids the script has reached, and how many came from the journal.
	j        *journal
	visited  map[string]bool
	replayed int
	// suspended is set when a durable timer parks the run.
	suspended *suspension
	// journalErr is set when the journal could not be written.
	journalErr error
}

// scope assigns step ids in one Starlark thread: "1", "2", … at the top level.
type scope struct {
	prefix string
	next   int
}

const scopeKey = "drover.scope"

func (s *scope) nextID() string {
	s.next++
	return s.prefix + strconv.Itoa(s.next)
}

// Start begins a run of req.Script and returns its record; the run continues in
// the background (use Wait for its end). A script that does not compile, or
// input that is not JSON, is refused before anything is journaled.
func (n *Node) Start(ctx context.Context, req StartRequest) (*Run, error) {
	var prog *program
	version := 0
	if len(req.Script.Files) == 0 && req.Script.Main == "" && req.Script.Name != "" {
		ls, err := n.deployed(ctx, req.Script.Name)
		if err != nil {
			return nil, err
		}
		prog, version = ls.prog, ls.dep.Version
	} else {
		var err error
		if prog, err = n.compile(req.Script); err != nil {
			return nil, err
		}
	}
	return n.startProgram(ctx, prog, version, req)
}

// startProgram starts a run of prog, a compiled version of req.Script (the
// deployed version when version > 0).
func (n *Node) startProgram(ctx context.Context, prog *program, version int, req StartRequest) (*Run, error) {
	input := req.Input
	if len(strings.TrimSpace(string(input))) == 0 {
		input = json.RawMessage("null")
	}
	if len(input) > n.opts.PayloadLimit {
		return nil, fmt.Errorf("%w: input is %d bytes, over the payload limit of %d bytes", ErrBadInput, len(input), n.opts.PayloadLimit)
	}
	x, err := builtins.Decode(input)
	if err != nil {
		return nil, fmt.Errorf("%w: input is not JSON: %v", ErrBadInput, err)
	}
	if input, err = builtins.Canonical(x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	for k := range req.Attrs {
		if err := checkAttrKey(k); err != nil {
			return nil, err
		}
	}
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	n.runsWG.Add(1)
	n.mu.Unlock()
	r, err := n.begin(ctx, prog, req.Script.Name, input, req.Attrs, version, req.TraceParent)
	if err != nil {
		n.runsWG.Done()
		return nil, err
	}
	go r.execute()
	rec := r.snapshot()
	return &rec, nil
}

// begin journals the start of a new run and indexes it.
func (n *Node) begin(ctx context.Context, prog *program, name string, input json.RawMessage, attrs map[string]string, version int, traceParent string) (*run, error) {
	if err := n.storeScript(ctx, prog.script, prog.hash); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	id := ulid.MustNew(ulid.Timestamp(now), ulid.DefaultEntropy()).String()
	if attrs == nil {
		attrs = map[string]string{}
	}
	start := StartEntry{Run: id, Script: name, Hash: prog.hash, Input: input, Attrs: attrs, Coordinator: n.opts.Name, Time: now, TraceParent: traceParent, Version: version}
	data, _ := encodeJSON(start)
	if _, err := n.bus.Append(ctx, bus.JournalSubject(id, "start", ""), id+"/start", nil, data); err != nil {
		return nil, err
	}
	r := &run{
		n: n, id: id, prog: prog, input: input, done: make(chan struct{}),
		record: Run{ID: id, Script: name, Hash: prog.hash, Status: StatusRunning, Attrs: attrs, Coordinator: n.opts.Name, Started: now},
		log:    n.log.With().Str("run", id).Str("script", name).Str("version", prog.hash[:12]).Logger(),
	}
	base, cancel := context.WithCancelCause(n.baseCtx)
	r.cancel = cancel
	r.ctx = runTraceContext(base, id, traceParent)
	if err := n.indexRun(ctx, r.snapshot(), "", attrs); err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.active[id] = r
	n.mu.Unlock()
	r.log.Info().Interface("attrs", attrs).Msg("run started")
	return r, nil
}

func (r *run) snapshot() Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.record
	rec.Attrs = make(map[string]string, len(r.record.Attrs))
	for k, v := range r.record.Attrs {
		rec.Attrs[k] = v
	}
	return rec
}

// execute interprets the script and journals how the run ended, or parks it
// (durable timer), blocks it (divergence during recovery) or leaves it
// unfinished (shutdown).
func (r *run) execute() {
	defer r.n.runsWG.Done()
	ctx, span := r.n.tracer.Start(r.ctx, "run "+r.record.Script, trace.WithAttributes(
		attribute.String("drover.run", r.id), attribute.String("drover.script", r.record.Script)))
	r.ctx = ctx
	in := r.n.interp(r.prog)
	in.print = func(msg string) { r.log.Info().Str("source", "print").Msg(msg) }
	var result json.RawMessage
	var runErr *RunError
	if r.j != nil && r.j.cancel != nil {
		r.cancel(errCancelled) // cancelled while no node was running it
	} else {
		result, runErr = in.run(r.ctx, r.id, r, r.input)
	}
	if runErr == nil && r.j != nil {
		if err := r.j.unvisited(r.visited); err != nil {
			runErr = &RunError{Code: CodeNonDeterminism, Message: err.Error()}
		}
	}
	if runErr != nil {
		span.SetStatus(codes.Error, runErr.Message)
	}
	span.End()
	switch {
	case errors.Is(context.Cause(r.ctx), errShutdown):
		r.log.Warn().Msg("run interrupted by shutdown; its journal is kept for recovery")
		r.finishLocal()
	case errors.Is(context.Cause(r.ctx), errJournal):
		r.log.Error().Err(r.journalErr).Msg("journal unavailable: run interrupted; it will be adopted again")
		r.finishLocal()
		r.n.readoptLater(r.id)
	case errors.Is(context.Cause(r.ctx), errCancelled):
		r.end(nil, r.cancelError())
	case r.suspended != nil:
		r.park()
	case runErr != nil && runErr.Code == CodeNonDeterminism && r.j != nil:
		r.block(runErr)
	default:
		r.end(result, runErr)
	}
}

func cancelReason(ctx context.Context) string {
	if errors.Is(context.Cause(ctx), errShutdown) {
		return "node shutting down"
	}
	return "run cancelled"
}

// end journals the end of the run and updates the index.
func (r *run) end(result json.RawMessage, runErr *RunError) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.waitPending(ctx)
	now := time.Now().UTC()
	r.mu.Lock()
	r.record.Ended = &now
	if runErr != nil {
		r.record.Status, r.record.Error = StatusFailed, runErr
		if runErr.Code == builtins.CodeCancelled {
			r.record.Status = StatusCancelled
		}
	} else {
		r.record.Status, r.record.Result = StatusCompleted, result
	}
	end := EndEntry{Status: r.record.Status, Result: result, Error: runErr, Steps: r.record.Steps, Time: now}
	r.mu.Unlock()
	data, _ := encodeJSON(end)
	if _, err := r.n.bus.Append(ctx, bus.JournalSubject(r.id, "end", ""), r.id+"/end", nil, data); err != nil {
		r.log.Error().Err(err).Msg("journal end of run")
	}
	rec := r.snapshot()
	if err := r.n.indexRun(ctx, rec, StatusRunning, nil); err != nil {
		r.log.Error().Err(err).Msg("index end of run")
	}
	ev := r.log.Info()
	if runErr != nil {
		ev = r.log.Warn().Str("error", runErr.Message)
	}
	ev.Str("status", rec.Status).Int("steps", rec.Steps).Dur("took", now.Sub(rec.Started)).Msg("run ended")
	r.finishLocal()
}

func (r *run) finishLocal() {
	r.n.mu.Lock()
	if r.n.active[r.id] == r {
		delete(r.n.active, r.id)
	}
	r.n.mu.Unlock()
	r.cancel(nil)
	close(r.done)
}

func (r *run) waitPending(ctx context.Context) error {
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	for _, p := range pending {
		if err := p.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// errCancelled is the cancellation cause of a run cancelled by a user.
var errCancelled = errors.New("engine: run cancelled")

// Tag implements builtins.Runtime: it journals the attributes and indexes them.
func (r *run) Tag(thread *starlark.Thread, attrs map[string]string) error {
	for k := range attrs {
		if err := checkAttrKey(k); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.tags++
	seq := strconv.Itoa(r.tags)
	for k, v := range attrs {
		r.record.Attrs[k] = v
	}
	r.mu.Unlock()
	data, _ := encodeJSON(TagEntry{Attrs: attrs, Pos: callerPos(thread), Time: time.Now().UTC()})
	if _, err := r.n.bus.Append(r.ctx, bus.JournalSubject(r.id, "tag", seq), r.id+"/tag/"+seq, nil, data); err != nil {
		return err
	}
	return r.n.indexRun(r.ctx, r.snapshot(), StatusRunning, attrs)
}

// Logger implements builtins.Runtime.
func (r *run) Logger(thread *starlark.Thread) *zerolog.Logger {
	l := r.log.With().Str("pos", callerPos(thread)).Logger()
	return &l
}

// callerPos is the script position of the call being made by a builtin.
func callerPos(thread *starlark.Thread) string {
	for d := 0; d < thread.CallStackDepth(); d++ {
		fr := thread.CallFrame(d)
		if fr.Pos.IsValid() && fr.Pos.Line > 0 {
			return fr.Pos.String()
		}
	}
	return ""
}

func checkAttrKey(k string) error {
	if k == "" || len(k) > 64 {
		return fmt.Errorf("%w: attribute name %q must be 1 to 64 characters", ErrBadInput, k)
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: attribute name %q may hold only letters, digits and _", ErrBadInput, k)
		}
	}
	return nil
}

// runTraceContext returns the context of a run's span: its ids derived from
// the run id, and its parent the incoming W3C traceparent when there is a
// valid one (the run then joins the caller's trace).
func runTraceContext(ctx context.Context, run, traceParent string) context.Context {
	if traceParent != "" {
		carrier := propagation.MapCarrier{"traceparent": traceParent}
		if sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, carrier)); sc.IsValid() {
			return telemetry.WithIDs(trace.ContextWithRemoteSpanContext(ctx, sc), sc.TraceID(), telemetry.SpanID(run, "", "run"))
		}
	}
	return telemetry.WithIDs(ctx, telemetry.TraceID(run), telemetry.SpanID(run, "", "run"))
}
