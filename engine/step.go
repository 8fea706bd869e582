package engine

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// Header names on step envelopes.
const (
	hdrReply = "Drover-Reply"
)

// CallStep implements builtins.Runtime: it assigns the step id, checks it
// against the journal when the run is being recovered, journals the call,
// places and executes the step, and returns the result once the journal holds it.
func (r *run) CallStep(thread *starlark.Thread, step *builtins.Step, a any) (json.RawMessage, error) {
	sc := thread.Local(scopeKey).(*scope)
	id := sc.nextID()
	args, err := builtins.Canonical(a)
	if err != nil {
		return nil, fmt.Errorf("%s: arguments are not JSON: %w", step.Name, err)
	}
	pos := callerPos(thread)
	// Recovery: a step the journal already holds is answered from it.
	var journaled *CallEntry
	if r.j != nil {
		call, res, err := r.j.match(id, step.Name, args, func() string { return pos })
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.visited[id] = true
		if res != nil {
			r.record.Steps++
			r.replayed++
		}
		r.mu.Unlock()
		if res != nil {
			return resultValue(step, id, res)
		}
		journaled = call // a call without a result: executed again, same idempotency key
	}
	if err := r.ctx.Err(); err != nil {
		return nil, &StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
	}
	if len(args) > r.n.opts.PayloadLimit {
		return nil, &StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodePayloadTooLarge,
			Message: fmt.Sprintf("payload too large: arguments are %d bytes, over the payload limit of %d bytes", len(args), r.n.opts.PayloadLimit)}
	}
	if step.Timer != nil {
		return r.timer(step, id, args, pos, journaled)
	}
	demands := r.n.demands(step, args)
	dec := placement.Decision{Node: r.n.opts.Name, Reason: "co-located: side value"}
	if !step.Local {
		if dec, err = r.n.place(r.ctx, placement.Request{Run: r.id, Step: id, Builtin: step.Name, Coordinator: r.n.opts.Name, Demands: demands}); err != nil {
			return nil, &StepFailure{Builtin: step.Name, Step: id, Code: "placement", Message: err.Error()}
		}
	}
	ctx, span := r.n.tracer.Start(telemetry.WithIDs(r.ctx, telemetry.TraceID(r.id), telemetry.SpanID(r.id, id, "call")),
		step.Name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("drover.step", id), attribute.String("drover.node", dec.Node)))
	defer span.End()

	attempt := 1
	if journaled == nil {
		if err := r.appendCall(CallEntry{Step: id, Builtin: step.Name, Args: args, Pos: pos, Node: dec.Node, Reason: dec.Reason, Time: time.Now().UTC()}); err != nil {
			return nil, r.journalFailed(err)
		}
	} else {
		attempt = 2
	}
	var res ResultEntry
	if dec.Node == r.n.opts.Name && (step.Local || !r.n.opts.AlwaysDispatch) {
		res = r.n.execute(ctx, step, r.id, id, args, demands)
		if res.Error != nil && errors.Is(context.Cause(r.ctx), errShutdown) {
			// Interrupted by shutdown: leave the call without a result so that
			// recovery executes it again with the same idempotency key.
			return nil, &StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
		}
		if res, err = r.n.appendResult(ctx, r.id, id, res); err != nil {
			return nil, r.journalFailed(err)
		}
	} else {
		env := Envelope{Run: r.id, Step: id, Attempt: attempt, Builtin: step.Name, Args: args, Key: r.id + "/" + id,
			Deadline: time.Now().Add(r.n.attemptsBudget(step, args)), Demand: demands}
		if res, err = r.dispatchUntilDone(ctx, step, dec, env); err != nil {
			if errors.Is(err, bus.ErrClosed) || !errors.As(err, new(*StepFailure)) {
				return nil, r.journalFailed(err)
			}
			return nil, err
		}
	}
	if err := r.waitPending(ctx); err != nil {
		return nil, r.journalFailed(err)
	}
	r.mu.Lock()
	r.record.Steps++
	r.mu.Unlock()
	if obs, ok := r.n.opts.Placement.(observer); ok {
		obs.Observe(step.Name, res.Duration, -1, -1)
	}
	if e := r.log.Debug(); e.Enabled() {
		e.Str("step", id).Str("builtin", step.Name).Str("exec_node", res.Node).Dur("took", res.Duration).Bool("ok", res.Error == nil).Msg("step")
	}
	if res.Error != nil {
		span.SetStatus(codes.Error, res.Error.Message)
	}
	return resultValue(step, id, &res)
}

// dispatchUntilDone dispatches a step and, if the executing node is lost
// before answering, places it again (attempt + 1, same idempotency key) unless
// the lost node had journaled its result already.
func (r *run) dispatchUntilDone(ctx context.Context, step *builtins.Step, dec placement.Decision, env Envelope) (ResultEntry, error) {
	for {
		res, err := r.n.dispatch(ctx, dec.Node, env)
		if !errors.Is(err, errNodeLost) {
			return res, err
		}
		if m, err := r.n.bus.Entry(ctx, bus.JournalSubject(r.id, "result", env.Step)); err == nil {
			var prev ResultEntry
			if json.Unmarshal(m.Data, &prev) == nil {
				return prev, nil
			}
		}
		lost := dec.Node
		if dec, err = r.n.place(ctx, placement.Request{Run: r.id, Step: env.Step, Builtin: step.Name, Coordinator: r.n.opts.Name, Demands: env.Demand}); err != nil {
			return ResultEntry{}, &StepFailure{Builtin: step.Name, Step: env.Step, Code: "placement", Message: err.Error()}
		}
		env.Attempt++
		r.log.Warn().Str("step", env.Step).Str("lost", lost).Str("node", dec.Node).Int("attempt", env.Attempt).Msg("executing node lost; step placed again")
		if dec.Node == r.n.opts.Name && !r.n.opts.AlwaysDispatch {
			return r.n.appendResult(ctx, r.id, env.Step, r.n.execute(ctx, step, r.id, env.Step, env.Args, env.Demand))
		}
	}
}

// observer is a placement policy that learns from completed steps.
type observer interface {
	Observe(builtin string, wall, cpu time.Duration, mem int64)
}

// place asks the placement policy for a node and counts the decision in this
// node's meter (coordinators compare their placement rates).
func (n *Node) place(ctx context.Context, req placement.Request) (placement.Decision, error) {
	n.meter.Placed()
	return n.opts.Placement.Place(ctx, req)
}

// demands are the resource units one call of step consumes: what the
// integration declares in code, plus units bound in this node's configuration
// (e.g. github_api for http.* calls to api.github.com) and in its peers'.
func (n *Node) demands(step *builtins.Step, args json.RawMessage) []meter.Demand {
	var declared []meter.Demand
	if step.Resources != nil {
		for _, d := range step.Resources(args) {
			declared = append(declared, meter.Demand(d))
		}
	}
	out := n.meter.Resources.Demands(step.Name, args, declared)
	if peers := n.peerBindings.Load(); peers != nil {
		out = meter.Bind(*peers, step.Name, args, out)
	}
	return out
}

// errNodeLost reports that the node executing a dispatched step stopped
// heartbeating before it answered.
var errNodeLost = errors.New("engine: executing node lost")

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

// resultValue turns a result entry into what CallStep returns.
func resultValue(step *builtins.Step, id string, res *ResultEntry) (json.RawMessage, error) {
	if res.Error != nil {
		return nil, &StepFailure{Builtin: step.Name, Step: id, Code: res.Error.Code, Message: res.Error.Message, Attempts: res.Attempts}
	}
	return res.Value, nil
}

// appendCall journals a call entry without waiting; waitPending waits for it.
func (r *run) appendCall(c CallEntry) error {
	data, _ := encodeJSON(c)
	pend, err := r.n.bus.AppendAsync(bus.JournalSubject(r.id, "call", c.Step), r.id+"/"+c.Step+"/call", nil, data)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.pending = append(r.pending, pend)
	r.mu.Unlock()
	return nil
}

// appendResult journals a step's result. If another writer got there first
// (a step dispatched before a crash finished late), its result stands and is
// returned instead.
func (n *Node) appendResult(ctx context.Context, run, step string, res ResultEntry) (ResultEntry, error) {
	data, _ := encodeJSON(res)
	subj := bus.JournalSubject(run, "result", step)
	_, err := n.bus.Append(ctx, subj, run+"/"+step+"/result", nil, data)
	if errors.Is(err, bus.ErrExists) {
		m, err := n.bus.Entry(ctx, subj)
		if err != nil {
			return res, err
		}
		var prev ResultEntry
		return prev, json.Unmarshal(m.Data, &prev)
	}
	return res, err
}

// deadline is how long one attempt of step may take.
func (n *Node) deadline(step *builtins.Step, args json.RawMessage) time.Duration {
	if step.Deadline != nil {
		if d := step.Deadline(args); d > 0 {
			return d
		}
	}
	if step.Timeout > 0 {
		return step.Timeout
	}
	return n.opts.StepTimeout
}

// attemptsBudget bounds all attempts of a step including backoff.
func (n *Node) attemptsBudget(step *builtins.Step, args json.RawMessage) time.Duration {
	p := step.Policy()
	total := time.Duration(p.MaxAttempts) * n.deadline(step, args)
	for a := 2; a <= p.MaxAttempts; a++ {
		total += p.Delay(a)
	}
	return total
}

// execute performs a step on this node, retrying retryable failures per the
// step's policy, and returns its result entry (not yet journaled).
// Demanded resource units are taken before each attempt (waiting, bounded by
// ctx, rather than overrunning a limit) and pool units given back after it.
func (n *Node) execute(ctx context.Context, step *builtins.Step, runID, stepID string, args json.RawMessage, demands []meter.Demand) ResultEntry {
	ctx, span := n.tracer.Start(telemetry.WithIDs(ctx, telemetry.TraceID(runID), telemetry.SpanID(runID, stepID, "exec")),
		"exec "+step.Name, trace.WithAttributes(attribute.String("drover.step", stepID)))
	defer span.End()
	policy := step.Policy()
	start := time.Now()
	sc := builtins.StepContext{Run: runID, Step: stepID, Key: runID + "/" + stepID}
	res := ResultEntry{Step: stepID, Node: n.opts.Name, Start: start.UTC(), SpanID: span.SpanContext().SpanID().String()}
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		sc.Attempt = attempt
		if err := n.meter.Resources.Wait(ctx, demands); err != nil {
			res.Error = builtins.Errorf("resource", "%s: %v", step.Name, err)
			break
		}
		value, serr := n.attempt(builtins.WithStep(ctx, sc), step, args)
		n.meter.Resources.Release(demands)
		if serr == nil {
			res.Value = value
			break
		}
		if !serr.Retryable || attempt >= policy.MaxAttempts || ctx.Err() != nil {
			res.Error = serr
			span.SetStatus(codes.Error, serr.Message)
			break
		}
		n.log.Debug().Str("run", runID).Str("step", stepID).Str("builtin", step.Name).Int("attempt", attempt).Str("error", serr.Message).Msg("step attempt failed; retrying")
		t := time.NewTimer(policy.Delay(attempt + 1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	res.Duration = time.Since(start)
	return res
}

// attempt runs step.Exec once under the attempt deadline.
func (n *Node) attempt(ctx context.Context, step *builtins.Step, args json.RawMessage) (json.RawMessage, *builtins.StepError) {
	actx, cancel := context.WithTimeout(ctx, n.deadline(step, args))
	defer cancel()
	end := n.meter.Begin(step.Name)
	v, err := safeExec(actx, step, n.env, args)
	end()
	if err != nil {
		serr := builtins.AsStepError(err)
		switch {
		case ctx.Err() != nil:
			return nil, &builtins.StepError{Code: builtins.CodeCancelled, Message: fmt.Sprintf("%s: %s", step.Name, cancelReason(ctx))}
		case actx.Err() != nil && serr.Code != builtins.CodeTimeout:
			return nil, &builtins.StepError{Code: builtins.CodeTimeout, Retryable: true, Message: fmt.Sprintf("%s: no answer within %s", step.Name, n.deadline(step, args))}
		}
		return nil, serr
	}
	raw, err := builtins.Canonical(v)
	if err != nil {
		return nil, builtins.Errorf(builtins.CodeInternal, "%s: result is not JSON: %v", step.Name, err)
	}
	if len(raw) > n.opts.PayloadLimit {
		return nil, builtins.Errorf(builtins.CodePayloadTooLarge, "payload too large: %s returned %d bytes, over the payload limit of %d bytes", step.Name, len(raw), n.opts.PayloadLimit)
	}
	return raw, nil
}

// safeExec calls Exec, turning a panic into an internal error so one bad
// builtin cannot take the node down.
func safeExec(ctx context.Context, step *builtins.Step, env builtins.Env, args json.RawMessage) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = builtins.Errorf(builtins.CodeInternal, "%s panicked: %v", step.Name, p)
		}
	}()
	return step.Exec(ctx, env, args)
}

// dispatch sends a step to node's worker through the STEPS stream and waits for
// the worker's notification that the result is journaled.
func (n *Node) dispatch(ctx context.Context, node string, env Envelope) (ResultEntry, error) {
	token := strconv.FormatUint(n.replyNext.Add(1), 36)
	ch := make(chan ResultEntry, 1)
	n.replies.Store(token, ch)
	defer n.replies.Delete(token)
	data, _ := encodeJSON(env)
	hdr := bus.Header{hdrReply: {n.replyPrefix + token}}
	telemetry.Propagator.Inject(ctx, hdr)
	pend, err := n.bus.PublishStepAsync(node, env.Key+"/a"+strconv.Itoa(env.Attempt), hdr, data)
	if err != nil {
		return ResultEntry{}, err
	}
	wait := time.NewTimer(time.Until(env.Deadline) + 5*time.Second)
	defer wait.Stop()
	var lost <-chan struct{}
	if node != n.opts.Name {
		lost = n.lostSignal(node)
	}
	// The worker's notification is a core message and can be lost (a route
	// reconnecting): look in the journal now and then as well.
	look := time.NewTicker(2 * time.Second)
	defer look.Stop()
	for {
		select {
		case res := <-ch:
			return res, nil
		case <-look.C:
			if m, err := n.bus.Entry(ctx, bus.JournalSubject(env.Run, "result", env.Step)); err == nil {
				var res ResultEntry
				if json.Unmarshal(m.Data, &res) == nil {
					return res, nil
				}
			}
			continue
		case <-lost:
			return ResultEntry{}, errNodeLost
		case err := <-pend.Err():
			if err := pend.Resend(ctx, err); err != nil {
				return ResultEntry{}, err
			}
		case <-wait.C:
			// The notification may be lost while the result is journaled: look.
			if m, err := n.bus.Entry(ctx, bus.JournalSubject(env.Run, "result", env.Step)); err == nil {
				var res ResultEntry
				if json.Unmarshal(m.Data, &res) == nil {
					return res, nil
				}
			}
			return ResultEntry{Step: env.Step, Node: node, Attempts: env.Attempt,
				Error: builtins.Errorf(builtins.CodeTimeout, "%s: node %s returned no result by the step's deadline", env.Builtin, node)}, nil
		case <-ctx.Done():
			return ResultEntry{}, &StepFailure{Builtin: env.Builtin, Step: env.Step, Code: builtins.CodeCancelled, Message: cancelReason(ctx)}
		}
	}
}

func (n *Node) onReply(m bus.Msg) {
	token := m.Subject[len(n.replyPrefix):]
	if ch, ok := n.replies.Load(token); ok {
		var res ResultEntry
		if err := json.Unmarshal(m.Data, &res); err == nil {
			select {
			case ch.(chan ResultEntry) <- res:
			default:
			}
		}
	}
}

// handleStep is the worker: it executes a dispatched step, journals the result
// (write-once: if another attempt already wrote it, that result stands) and
// notifies the coordinator.
func (n *Node) handleStep(m bus.StepMsg) {
	n.stepsWG.Add(1)
	defer n.stepsWG.Done()
	var env Envelope
	if err := json.Unmarshal(m.Data, &env); err != nil {
		n.log.Error().Err(err).Msg("dropping malformed step envelope")
		m.Ack()
		return
	}
	ctx := telemetry.Propagator.Extract(n.baseCtx, m.Header)
	ctx, cancel := context.WithDeadline(ctx, env.Deadline)
	defer cancel()
	defer n.trackStep(env.Run, cancel)()
	var res ResultEntry
	if step, err := n.opts.Registry.Lookup(env.Builtin); err != nil {
		res = ResultEntry{Step: env.Step, Node: n.opts.Name, Attempts: env.Attempt, Start: time.Now().UTC(),
			Error: builtins.Errorf(builtins.CodeInternal, "node %s has no builtin %s (is it running an older build?)", n.opts.Name, env.Builtin)}
	} else {
		res = n.execute(ctx, step, env.Run, env.Step, env.Args, env.Demand)
	}
	if res.Error != nil && errors.Is(context.Cause(n.baseCtx), errShutdown) {
		m.Nak() // interrupted by shutdown: hand the step back, journal nothing
		return
	}
	data, _ := encodeJSON(res)
	jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer jcancel()
	if _, err := n.bus.Append(jctx, bus.JournalSubject(env.Run, "result", env.Step), env.Key+"/result", nil, data); err != nil {
		if !errors.Is(err, bus.ErrExists) {
			n.log.Error().Err(err).Str("run", env.Run).Str("step", env.Step).Msg("journal step result; handing the step back")
			m.Nak()
			return
		}
		if prev, err := n.bus.Entry(jctx, bus.JournalSubject(env.Run, "result", env.Step)); err == nil {
			data = prev.Data
		}
	}
	if reply := m.Header.Get(hdrReply); reply != "" {
		n.bus.Publish(reply, nil, data) // first: the coordinator waits for it
	}
	m.Ack()
}

func newNonce() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
