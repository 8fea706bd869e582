package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/dispatch"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
)

// Step implements replay.Live: it executes step id live. A durable timer
// is the run's own (timer); any other step goes through the node's call
// interceptors (Node.chains) to call, which places, journals and executes
// it.
func (r *run) Step(thread *starlark.Thread, step *builtins.Step, id string, args json.RawMessage, pos string, call *api.CallEntry) (json.RawMessage, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, &script.StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
	}
	if len(args) > r.n.opts.PayloadLimit {
		return nil, &script.StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodePayloadTooLarge,
			Message: fmt.Sprintf("payload too large: arguments are %d bytes, over the payload limit of %d bytes", len(args), r.n.opts.PayloadLimit)}
	}
	if step.Timer != nil {
		return r.timer(step, id, args, pos, call)
	}
	c := &builtins.StepCall{Step: step, Args: args, Pos: pos, Resumed: call != nil,
		Context: builtins.StepContext{Run: r.id, Step: id, Key: r.id + "/" + id}}
	res, err := r.n.calls(r.ctx, c)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, &script.StepFailure{Builtin: step.Name, Step: id, Code: res.Err.Code, Message: res.Err.Message, Attempts: res.Attempts}
	}
	return res.Value, nil
}

// call is the end of the node's call interceptor chain: it places step c,
// journals its call (unless it was under way when the run stopped:
// c.Resumed), executes it in-process when placement picks this node or
// dispatches it to the chosen node's worker, and returns its result once
// the journal holds it. ctx is a run's (runOf).
func (n *Node) call(ctx context.Context, c *builtins.StepCall) (builtins.StepResult, error) {
	r, step, id, args := runOf(ctx), c.Step, c.Context.Step, c.Args
	demands := n.demands(step, args)
	dec := placement.Decision{Node: n.opts.Name, Reason: "co-located: side value"}
	if !step.Local {
		var err error
		asked := time.Now()
		if dec, err = n.place(ctx, placement.Request{Run: r.id, Step: id, Builtin: step.Name, Coordinator: n.opts.Name, Demands: demands}); err != nil {
			r.logger().Warn().Str("step", id).Str("builtin", step.Name).Err(err).Msg("step could not be placed")
			return builtins.StepResult{}, &script.StepFailure{Builtin: step.Name, Step: id, Code: api.CodePlacement, Message: err.Error()}
		}
		n.cluster.NotePlacement(api.PlacementDecision{Time: asked.UTC(), Run: r.id, Step: id, Builtin: step.Name, Node: dec.Node, Reason: dec.Reason})
		if waited := time.Since(asked); waited >= placementWaitLogged {
			r.logger().Info().Str("step", id).Str("builtin", step.Name).Dur("waited", waited).Str("exec_node", dec.Node).Str("reason", dec.Reason).Msg("step waited for a node")
		}
		if err := n.journal.Commit(ctx, r.id); err != nil { // a run is journaled before its first output
			return builtins.StepResult{}, r.journalFailed(err)
		}
	}
	attempt := 1
	colocated := dec.Node == n.opts.Name && (step.Local || !n.opts.AlwaysDispatch)
	var folded *api.CallEntry
	switch {
	case !c.Resumed && n.foldable(step) && (colocated || n.direct(args)):
		// Short, and executed here or sent directly: the call is journaled
		// with its result, in one entry. Should the run stop before, nothing
		// is journaled and recovery executes the step again under the same
		// idempotency key.
		folded = &api.CallEntry{Step: id, Builtin: step.Name, Args: args, Pos: c.Pos, Node: dec.Node, Reason: dec.Reason, Time: time.Now().UTC()}
	case !c.Resumed:
		if err := r.unacked.Append(api.EntryCall, id, api.CallEntry{Step: id, Builtin: step.Name, Args: args, Pos: c.Pos, Node: dec.Node, Reason: dec.Reason, Time: time.Now().UTC()}); err != nil {
			return builtins.StepResult{}, r.journalFailed(err)
		}
	default:
		// The step was under way when the run stopped: placed again, as
		// the next attempt, under the same idempotency key.
		attempt = len(r.j.Places[id]) + 2
		why := "run adopted by " + n.opts.Name + " while the step was under way"
		if err := r.placedAgain(id, attempt, dec, why); err != nil {
			return builtins.StepResult{}, r.journalFailed(err)
		}
	}
	var res api.ResultEntry
	var err error
	if colocated {
		res = n.worker.execute(ctx, step, r.id, id, args, demands)
		if res.Error != nil && errors.Is(context.Cause(r.ctx), errShutdown) {
			// Interrupted by shutdown: leave the call without a result so that
			// recovery executes it again with the same idempotency key.
			return builtins.StepResult{}, &script.StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
		}
	} else {
		env := dispatch.Envelope{Run: r.id, Step: id, Attempt: attempt, Builtin: step.Name, Args: args, Key: c.Context.Key,
			Deadline: time.Now().Add(step.Budget(args, n.opts.StepTimeout)), Demand: demands}
		if res, err = r.dispatchUntilDone(ctx, step, dec, env, folded); err != nil {
			if errors.Is(err, bus.ErrClosed) || !errors.As(err, new(*script.StepFailure)) {
				return builtins.StepResult{}, r.journalFailed(err)
			}
			return builtins.StepResult{}, err
		}
	}
	if colocated || folded != nil { // the result is the coordinator's to journal
		res.Call = folded
		appended := timed(n.metrics.JournalAppend)
		if res, err = n.journal.AppendResult(ctx, r.id, res); err != nil {
			return builtins.StepResult{}, r.journalFailed(err)
		}
		appended()
	}
	if err := r.unacked.Wait(ctx); err != nil {
		return builtins.StepResult{}, r.journalFailed(err)
	}
	r.mu.Lock()
	r.record.Steps++
	r.mu.Unlock()
	switch {
	case res.Error != nil:
		r.logger().Warn().Str("step", id).Str("builtin", step.Name).Str("exec_node", res.Node).Int("attempts", res.Attempts).
			Str("code", res.Error.Code).Str("error", res.Error.Message).Msg("step failed")
	case res.Attempts > 1:
		r.logger().Info().Str("step", id).Str("builtin", step.Name).Str("exec_node", res.Node).Int("attempts", res.Attempts).Msg("step succeeded after retries")
	default:
		if e := r.logger().Debug(); e.Enabled() {
			e.Str("step", id).Str("builtin", step.Name).Str("exec_node", res.Node).Dur("took", res.Duration).Msg("step")
		}
	}
	return builtins.StepResult{Value: res.Value, Err: res.Error, Node: res.Node, Attempts: res.Attempts, Start: res.Start, Duration: res.Duration}, nil
}

// placementWaitLogged is how long a step waits for a node before its run
// logs it.
const placementWaitLogged = 100 * time.Millisecond

// dispatchUntilDone dispatches a step and, if the executing node is lost
// before answering, places it again (attempt + 1, same idempotency key)
// unless the lost node had journaled its result already. A step whose call
// is folded into its result (folded) is sent directly and its result, not
// journaled, is returned; its call records the node that executed it.
// Another is sent through the node's inbox, its result journaled by the
// worker, and placed again with a place entry.
func (r *run) dispatchUntilDone(ctx context.Context, step *builtins.Step, dec placement.Decision, env dispatch.Envelope, folded *api.CallEntry) (api.ResultEntry, error) {
	backoff := 50 * time.Millisecond
	var whys []string
	for {
		var res api.ResultEntry
		var err error
		if folded != nil {
			res, err = r.n.dispatch.Call(ctx, dec.Node, env)
		} else {
			res, err = r.n.dispatch.Send(ctx, dec.Node, env)
		}
		switch {
		case err != nil && ctx.Err() != nil:
			return api.ResultEntry{}, &script.StepFailure{Builtin: step.Name, Step: env.Step, Code: builtins.CodeCancelled, Message: cancelReason(ctx)}
		case !errors.Is(err, errNodeLost):
			return res, err
		}
		if folded == nil {
			if prev, err := r.n.journal.LookupResult(ctx, r.id, env.Step); err != nil {
				return api.ResultEntry{}, err
			} else if prev != nil {
				return *prev, nil
			}
		}
		// A policy may pick the lost node again until it hears of the loss:
		// wait a little more each time rather than spin.
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return api.ResultEntry{}, &script.StepFailure{Builtin: step.Name, Step: env.Step, Code: builtins.CodeCancelled, Message: cancelReason(ctx)}
		}
		backoff = min(2*backoff, 2*time.Second)
		lost := dec.Node
		if dec, err = r.n.place(ctx, placement.Request{Run: r.id, Step: env.Step, Builtin: step.Name, Coordinator: r.n.opts.Name, Demands: env.Demand}); err != nil {
			return api.ResultEntry{}, &script.StepFailure{Builtin: step.Name, Step: env.Step, Code: api.CodePlacement, Message: err.Error()}
		}
		env.Attempt++
		r.logger().Warn().Str("step", env.Step).Str("lost", lost).Str("node", dec.Node).Int("attempt", env.Attempt).Msg("executing node lost; step placed again")
		why := "node " + lost + " was lost before it answered"
		if folded != nil {
			whys = append(whys, why)
			folded.Node, folded.Reason = dec.Node, dec.Reason+"; attempt "+strconv.Itoa(env.Attempt)+", as "+strings.Join(whys, ", then ")
		} else if err := r.placedAgain(env.Step, env.Attempt, dec, why); err != nil {
			return api.ResultEntry{}, err
		}
		if dec.Node == r.n.opts.Name && !r.n.opts.AlwaysDispatch {
			res := r.n.worker.execute(ctx, step, r.id, env.Step, env.Args, env.Demand)
			if res.Error != nil && errors.Is(context.Cause(r.ctx), errShutdown) {
				return api.ResultEntry{}, &script.StepFailure{Builtin: step.Name, Step: env.Step, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
			}
			if folded != nil {
				return res, nil
			}
			return r.n.journal.AppendResult(ctx, r.id, res)
		}
	}
}

// placedAgain journals that step id was placed again as attempt, and why.
func (r *run) placedAgain(id string, attempt int, dec placement.Decision, why string) error {
	key := fmt.Sprintf("%s@%d", id, attempt)
	entry := api.PlaceEntry{Step: id, Attempt: attempt, Node: dec.Node, Reason: dec.Reason, Why: why, Time: time.Now().UTC()}
	var stored api.PlaceEntry
	_, err := r.n.journal.Create(r.ctx, r.id, api.EntryPlace, key, entry, &stored)
	return err
}

// foldable reports whether a step's call can wait for its result: a side
// value, or a builtin this node has measured as short (whatever its
// placement policy: one that does not learn has the node measure for it).
func (n *Node) foldable(step *builtins.Step) bool {
	return n.cluster.AllHave(journal.FeatureFoldedCall) &&
		(step.Local || n.profiles.Short(step.Name, n.opts.FoldBelow))
}

// direct reports whether a short step placed on another node can be sent
// there directly (package dispatch): every node answers direct calls, and
// its arguments travel in the request.
func (n *Node) direct(args json.RawMessage) bool {
	return n.cluster.AllHave(dispatch.Feature) && !n.journal.IsLarge(args)
}

// place asks the placement policy for a node and counts the decision in this
// node's meter (coordinators compare their placement rates).
func (n *Node) place(ctx context.Context, req placement.Request) (placement.Decision, error) {
	n.meter.Placed()
	n.placing.Add(1) // the queue depth: reported on each heartbeat
	start := time.Now()
	dec, err := n.opts.Placement.Place(ctx, req)
	n.placing.Add(-1)
	n.metrics.PlacementWait(req.Builtin, time.Since(start))
	return dec, err
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
	return n.peers.Bind(step.Name, args, n.meter.Resources.Demands(step.Name, args, declared))
}
