package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/dispatch"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// worker executes steps on this node: those dispatched to its inbox, and the
// coordinator's co-located ones. It retries failed attempts per the step's
// policy, takes the resource units each attempt demands (waiting rather than
// overrunning a limit), bounds attempts by their deadlines, and can cancel
// the steps of a cancelled run wherever they came from.
type worker struct {
	n     *Node
	env   builtins.Env
	chain builtins.AttemptFunc // an attempt through the interceptors
	wg    sync.WaitGroup       // steps being executed from the inbox
	halt  func()               // stops consuming the inbox

	mu      sync.Mutex
	stopped bool                                   // no step is taken from the inbox any more
	cancels map[string]map[*int]context.CancelFunc // by run: its steps executing here
}

func newWorker(n *Node) *worker {
	env := &builtins.NodeEnv{Name: n.opts.Name, Client: n.opts.HTTPClient, Store: n.bus.DataStore(), Opened: n.integrations,
		Publisher: func(_ context.Context, subject string, payload []byte) error {
			return n.bus.Publish(subject, nil, payload)
		}}
	w := &worker{n: n, env: env, cancels: map[string]map[*int]context.CancelFunc{}}
	n.calls, w.chain = n.chains(n.call, w.run)
	return w
}

// start consumes this node's step inbox and answers the steps sent to it
// directly.
func (w *worker) start(ctx context.Context) error {
	n := w.n
	halt, err := n.bus.ConsumeSteps(ctx, n.opts.Name, w.handle)
	if err != nil {
		return err
	}
	stopDirect, err := dispatch.Serve(n.bus, n.journal, n.opts.Name, n.baseCtx, w.direct, func(err error, env dispatch.Envelope) {
		n.log.Error().Err(err).Str("run", env.Run).Str("step", env.Step).Msg("direct step")
	})
	if err != nil {
		halt()
		return err
	}
	w.halt = func() { stopDirect(); halt() }
	return nil
}

// stop stops consuming and waits for the steps being executed, which are
// journaled (or answered) before it returns.
func (w *worker) stop() {
	w.halt()
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.wg.Wait()
}

// take counts a step about to be executed from the inbox or sent directly;
// false once the worker stopped.
func (w *worker) take() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.wg.Add(1)
	}
	return !w.stopped
}

// handle executes a step from the inbox, journals the result (write-once: if
// another attempt already wrote it, that result stands) and notifies the
// coordinator.
func (w *worker) handle(m bus.StepMsg) {
	if !w.take() {
		m.Nak()
		return
	}
	defer w.wg.Done()
	n := w.n
	var env dispatch.Envelope
	if err := json.Unmarshal(m.Data, &env); err != nil {
		n.log.Error().Err(err).Msg("dropping malformed step envelope")
		m.Ack()
		return
	}
	res, ok := w.executeEnvelope(telemetry.Propagator.Extract(n.baseCtx, m.Header), env)
	if !ok {
		m.Nak() // interrupted by shutdown: hand the step back, journal nothing
		return
	}
	jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer jcancel()
	res, err := n.journal.AppendResult(jctx, env.Run, res)
	switch {
	case errors.Is(err, journal.ErrExists):
		// Another attempt's result stands but could not be read back: it is
		// journaled, so the step is done; the coordinator reads it there.
		n.log.Warn().Err(err).Str("run", env.Run).Str("step", env.Step).Msg("step result already journaled")
		m.Ack()
		return
	case err != nil:
		n.log.Error().Err(err).Str("run", env.Run).Str("step", env.Step).Msg("journal step result; handing the step back")
		m.Nak()
		return
	}
	dispatch.Notify(n.bus, n.journal, m.Header, res) // first: the coordinator waits for it
	m.Ack()
}

// direct executes a step sent directly (dispatch.Serve): the coordinator
// journals its result.
func (w *worker) direct(ctx context.Context, env dispatch.Envelope) (api.ResultEntry, bool) {
	if !w.take() {
		return api.ResultEntry{}, false
	}
	defer w.wg.Done()
	return w.executeEnvelope(ctx, env)
}

// executeEnvelope executes a step sent by a coordinator, this node or
// another. It returns false if shutdown interrupted the step: nothing is to
// be journaled or answered.
func (w *worker) executeEnvelope(ctx context.Context, env dispatch.Envelope) (api.ResultEntry, bool) {
	n := w.n
	ctx, cancel := context.WithDeadline(ctx, env.Deadline)
	defer cancel()
	defer w.track(env.Run, cancel)()
	var res api.ResultEntry
	step, err := n.opts.Registry.Lookup(env.Builtin)
	if err != nil {
		err = fmt.Errorf("node %s has no builtin %s (is it running an older build?)", n.opts.Name, env.Builtin)
	} else if env.ArgsRef != "" {
		env.Args, err = n.journal.Value(ctx, env.ArgsRef)
	}
	if err != nil {
		res = api.ResultEntry{Step: env.Step, Node: n.opts.Name, Attempts: env.Attempt, Start: time.Now().UTC(), Error: builtins.Errorf(builtins.CodeInternal, "%v", err)}
	} else {
		res = w.execute(ctx, step, env.Run, env.Step, env.Args, env.Demand)
	}
	return res, res.Error == nil || !errors.Is(context.Cause(n.baseCtx), errShutdown)
}

// execute performs a step on this node, retrying retryable failures per the
// step's policy, each attempt through the interceptors (w.chain), and
// returns its result entry (not yet journaled).
// Demanded resource units are taken before each attempt (waiting, bounded by
// ctx, rather than overrunning a limit) and pool units given back after it;
// giving units back sends a heartbeat at once, so that coordinators waiting
// for them place their steps without waiting for the next one.
func (w *worker) execute(ctx context.Context, step *builtins.Step, runID, stepID string, args json.RawMessage, demands []meter.Demand) api.ResultEntry {
	n := w.n
	policy := step.Policy()
	start := time.Now()
	sc := builtins.StepContext{Run: runID, Step: stepID, Key: runID + "/" + stepID}
	res := api.ResultEntry{Step: stepID, Node: n.opts.Name, Start: start.UTC(), SpanID: telemetry.SpanID(runID, stepID, execKind(1)).String()}
	a := &builtins.StepAttempt{Step: step, Args: args, Context: sc, Demands: toBuiltins(demands), Env: w.env}
	if step.Target != nil {
		a.Target = step.Target(w.env, args)
	}
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		at := *a // each attempt its own: an interceptor may keep it
		at.Context.Attempt = attempt
		value, serr := w.chain(ctx, &at)
		if serr == nil {
			res.Value = value
			break
		}
		if !serr.Retryable || attempt >= policy.MaxAttempts || ctx.Err() != nil {
			res.Error = serr
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

// run is the end of the attempts' interceptor chain: the builtin, under its
// deadline.
func (w *worker) run(ctx context.Context, a *builtins.StepAttempt) (json.RawMessage, *builtins.StepError) {
	return w.attempt(builtins.WithStep(ctx, a.Context), a.Step, a.Args)
}

// attempt runs step.Exec once under the attempt deadline.
func (w *worker) attempt(ctx context.Context, step *builtins.Step, args json.RawMessage) (json.RawMessage, *builtins.StepError) {
	n := w.n
	limit := step.AttemptTimeout(args, n.opts.StepTimeout)
	actx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	v, err := step.SafeExec(actx, w.env, args)
	if err != nil {
		serr := builtins.AsStepError(err)
		if msg := builtins.Redact(serr.Message); msg != serr.Message { // a secret never reaches the journal
			serr = &builtins.StepError{Code: serr.Code, Message: msg, Retryable: serr.Retryable}
		}
		switch {
		case ctx.Err() != nil:
			return nil, &builtins.StepError{Code: builtins.CodeCancelled, Message: fmt.Sprintf("%s: %s", step.Name, cancelReason(ctx))}
		case actx.Err() != nil && serr.Code != builtins.CodeTimeout:
			return nil, &builtins.StepError{Code: builtins.CodeTimeout, Retryable: true, Message: fmt.Sprintf("%s: no answer within %s", step.Name, limit)}
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

// track registers the cancel function of a step this node executes for run,
// until the returned function is called.
func (w *worker) track(run string, cancel context.CancelFunc) (untrack func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := new(int)
	if w.cancels[run] == nil {
		w.cancels[run] = map[*int]context.CancelFunc{}
	}
	w.cancels[run][key] = cancel
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.cancels[run], key)
		if len(w.cancels[run]) == 0 {
			delete(w.cancels, run)
		}
	}
}

// cancelRun cancels every step this node executes for run.
func (w *worker) cancelRun(run string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, cancel := range w.cancels[run] {
		cancel()
	}
}
