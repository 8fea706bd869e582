package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
)

// suspendAfter is the shortest timer that parks a run instead of waiting in
// place: shorter ones are not worth a replay.
const suspendAfter = time.Second

// suspension is where a parked run waits.
type suspension struct {
	step  string
	until time.Time
}

// timer completes a durable timer step (sleep). The wake time is fixed by the
// journaled call time, so it survives restarts. A long wait parks the run: no
// goroutine or Starlark thread is held, a runtime timer wakes it, and it
// continues by replay.
func (r *run) timer(step *builtins.Step, id string, args json.RawMessage, pos string, call *api.CallEntry) (json.RawMessage, error) {
	d, err := step.Timer(args)
	if err != nil {
		return nil, &script.StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeBadArgs, Message: err.Error()}
	}
	called := time.Now().UTC()
	if call != nil {
		called = call.Time
	} else if err := r.unacked.Append(api.EntryCall, id, api.CallEntry{Step: id, Builtin: step.Name, Args: args, Pos: pos, Node: r.n.opts.Name, Reason: "durable timer", Time: called}); err != nil {
		return nil, r.journalFailed(err)
	}
	until := called.Add(d)
	if wait := time.Until(until); wait > suspendAfter {
		if err := r.unacked.Wait(r.ctx); err != nil {
			return nil, r.journalFailed(err)
		}
		r.mu.Lock()
		r.suspended = &suspension{step: id, until: until}
		r.mu.Unlock()
		return nil, errSuspended
	} else if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return nil, &script.StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
		}
	}
	res, err := r.n.journal.AppendResult(r.ctx, r.id, timerResult(r.n.opts.Name, id, called, until))
	if err != nil {
		return nil, r.journalFailed(err)
	}
	if err := r.unacked.Wait(r.ctx); err != nil {
		return nil, r.journalFailed(err)
	}
	r.mu.Lock()
	r.record.Steps++
	r.mu.Unlock()
	return script.Outcome(step.Name, &res)
}

func timerResult(node, id string, called, until time.Time) api.ResultEntry {
	return api.ResultEntry{Step: id, Value: json.RawMessage("null"), Node: node, Attempts: 1, Start: called, Duration: until.Sub(called)}
}

// park leaves a run waiting for its timer: the index shows when it wakes, and a
// runtime timer (no goroutine) adopts it again then.
func (r *run) park() {
	s := r.suspended
	r.mu.Lock()
	r.record.WakeAt = &s.until
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.n.runs.Put(ctx, r.snapshot(), api.StatusRunning, nil); err != nil {
		r.logger().Error().Err(err).Msg("index parked run")
	}
	r.n.schedule(r.id, s.step, s.until)
	r.logger().Info().Str("step", s.step).Time("wake_at", s.until).Msg("run parked until its timer fires")
	r.finishLocal()
}

// schedule wakes run id at until: the timer step's result is journaled and the
// run is adopted again.
func (n *Node) schedule(id, step string, until time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closing {
		return
	}
	if t := n.sleeping[id]; t != nil {
		t.Stop()
	}
	n.sleeping[id] = time.AfterFunc(time.Until(until), func() {
		n.mu.Lock()
		delete(n.sleeping, id)
		n.mu.Unlock()
		ctx, cancel := context.WithTimeout(n.baseCtx, 10*time.Second)
		defer cancel()
		if _, err := n.journal.AppendResult(ctx, id, timerResult(n.opts.Name, step, until.Add(-time.Nanosecond), until)); err != nil {
			n.log.Error().Err(err).Str("run", id).Msg("journal timer")
			return
		}
		if err := n.adopt(ctx, id); err != nil {
			n.log.Error().Err(err).Str("run", id).Msg("wake run")
		}
	})
}

// unschedule stops the timer of parked run id and reports whether it had one.
func (n *Node) unschedule(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.sleeping[id]
	if t != nil {
		t.Stop()
		delete(n.sleeping, id)
	}
	return t != nil
}
