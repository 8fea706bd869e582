package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// suspendAfter is the shortest timer that parks a run instead of waiting in
// place: shorter ones are not worth a replay.
const suspendAfter = time.Second

// errSuspended unwinds the script when a durable timer parks the run.
var errSuspended = errors.New("engine: run parked until its timer fires")

// suspension is where a parked run waits.
type suspension struct {
	step  string
	until time.Time
}

// timer completes a durable timer step (sleep). The wake time is fixed by the
// journaled call time, so it survives restarts. A long wait parks the run: no
// goroutine or Starlark thread is held, a runtime timer wakes it, and it
// continues by replay.
func (r *run) timer(step *builtins.Step, id string, args json.RawMessage, pos string, journaled *CallEntry) (json.RawMessage, error) {
	d, err := step.Timer(args)
	if err != nil {
		return nil, &StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeBadArgs, Message: err.Error()}
	}
	called := time.Now().UTC()
	if journaled != nil {
		called = journaled.Time
	} else if err := r.appendCall(CallEntry{Step: id, Builtin: step.Name, Args: args, Pos: pos, Node: r.n.opts.Name, Reason: "durable timer", Time: called}); err != nil {
		return nil, err
	}
	until := called.Add(d)
	if wait := time.Until(until); wait > suspendAfter {
		if err := r.waitPending(r.ctx); err != nil {
			return nil, err
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
			return nil, &StepFailure{Builtin: step.Name, Step: id, Code: builtins.CodeCancelled, Message: cancelReason(r.ctx)}
		}
	}
	res, err := r.n.appendResult(r.ctx, r.id, id, timerResult(r.n.opts.Name, id, called, until))
	if err != nil {
		return nil, err
	}
	if err := r.waitPending(r.ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.record.Steps++
	r.mu.Unlock()
	return resultValue(step, id, &res)
}

func timerResult(node, id string, called, until time.Time) ResultEntry {
	return ResultEntry{Step: id, Value: json.RawMessage("null"), Node: node, Attempts: 1, Start: called, Duration: until.Sub(called)}
}

// park leaves a run waiting for its timer: the index shows when it wakes, and a
// runtime timer (no goroutine) adopts it again then.
func (r *run) park() {
	s := r.suspended
	r.mu.Lock()
	r.record.WakeAt = &s.until
	rec := r.record
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.n.indexRun(ctx, rec, StatusRunning, nil); err != nil {
		r.log.Error().Err(err).Msg("index parked run")
	}
	r.n.schedule(r.id, s.step, s.until)
	r.log.Info().Str("step", s.step).Time("wake_at", s.until).Msg("run parked until its timer fires")
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
		if _, err := n.appendResult(ctx, id, step, timerResult(n.opts.Name, step, until.Add(-time.Nanosecond), until)); err != nil {
			n.log.Error().Err(err).Str("run", id).Msg("journal timer")
			return
		}
		if err := n.adopt(ctx, id); err != nil {
			n.log.Error().Err(err).Str("run", id).Msg("wake run")
		}
	})
}

// readoptLater adopts run id again after a pause, when the journal may be
// writable again (a JetStream leader election ends within seconds).
func (n *Node) readoptLater(id string) {
	time.AfterFunc(2*time.Second, func() {
		ctx, cancel := context.WithTimeout(n.baseCtx, time.Minute)
		defer cancel()
		if err := n.adopt(ctx, id); err != nil && !errors.Is(err, ErrClosed) {
			n.log.Error().Err(err).Str("run", id).Msg("re-adopt interrupted run")
			n.readoptLater(id)
		}
	})
}

// block stops a recovered run whose script no longer matches its journal: it
// is neither failed nor continued, and can be resumed after a fix.
func (r *run) block(runErr *RunError) {
	r.mu.Lock()
	prev := r.record.Status
	r.record.Status, r.record.Error = StatusBlocked, runErr
	rec := r.record
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.n.indexRun(ctx, rec, prev, nil); err != nil {
		r.log.Error().Err(err).Msg("index blocked run")
	}
	r.log.Error().Str("error", runErr.Message).Msg("run blocked: its journal no longer matches the script (resume it after a fix)")
	r.finishLocal()
}

// adopt continues an unfinished run on this node: its journal is replayed (no
// completed step runs again) and it goes on live where the journal ends.
func (n *Node) adopt(ctx context.Context, id string) error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		return ErrClosed
	}
	if _, ok := n.active[id]; ok {
		n.mu.Unlock()
		return nil
	}
	n.mu.Unlock()
	entries, err := n.readJournal(ctx, id)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		return fmt.Errorf("%w %q: no journal", ErrUnknownRun, id)
	}
	j, err := parseJournal(entries)
	if err != nil {
		return fmt.Errorf("engine: run %s: %w", id, err)
	}
	rec, err := n.record(ctx, id)
	if err != nil {
		return err
	}
	if j.end != nil {
		return nil // ended; nothing to adopt
	}
	script, err := n.LoadScript(ctx, j.hash())
	if err != nil {
		return err
	}
	prog, err := n.compile(*script)
	if err != nil {
		return fmt.Errorf("engine: run %s: its script version no longer compiles: %w", id, err)
	}
	prev, prevHash, prevCoord := rec.Status, rec.Hash, rec.Coordinator
	rec.Status, rec.Error, rec.WakeAt, rec.Steps = StatusRunning, nil, nil, 0
	rec.Coordinator, rec.Hash = n.opts.Name, prog.hash
	r := &run{
		n: n, id: id, prog: prog, input: j.start.Input, done: make(chan struct{}),
		record: *rec, j: j, visited: map[string]bool{},
		log: n.log.With().Str("run", id).Str("script", rec.Script).Str("version", prog.hash[:12]).Logger(),
	}
	if r.record.Attrs == nil {
		r.record.Attrs = map[string]string{}
	}
	r.tags = len(j.tags)
	base, cancel := context.WithCancelCause(n.baseCtx)
	r.cancel = cancel
	r.ctx = runTraceContext(base, id, j.start.TraceParent)
	n.mu.Lock()
	if _, ok := n.active[id]; ok || n.closing {
		n.mu.Unlock()
		cancel(nil)
		return nil
	}
	n.active[id] = r
	n.runsWG.Add(1)
	n.mu.Unlock()
	if prev != StatusRunning || prevCoord != rec.Coordinator || prevHash != rec.Hash {
		n.indexRun(ctx, r.snapshot(), prev, nil)
	}
	r.log.Info().Int("journaled_steps", len(j.calls)).Msg("run adopted: replaying its journal")
	go r.execute()
	return nil
}

// recoverRuns adopts the unfinished runs this node coordinated.
func (n *Node) recoverRuns(ctx context.Context) {
	runs, err := n.List(ctx, ListFilter{Status: StatusRunning, Limit: 1 << 30})
	if err != nil {
		n.log.Error().Err(err).Msg("recovery: list running runs")
		return
	}
	for _, rec := range runs {
		if rec.Coordinator != n.opts.Name {
			continue
		}
		if err := n.adopt(ctx, rec.ID); err != nil {
			n.log.Error().Err(err).Str("run", rec.ID).Msg("recovery: adopt run")
		}
	}
}

// Resume adopts an unfinished run again: a blocked run after a fix, or any
// unfinished run moved to another script version. With script non-nil the run
// continues on that version (journaled as a version entry): its journal is
// replayed against it, so the new version must make the same calls for the
// steps already taken (patched() lets it branch for new runs only).
func (n *Node) Resume(ctx context.Context, id string, script *Script, by string) (*Run, error) {
	rec, err := n.record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Done() {
		return rec, fmt.Errorf("%w: run %s has already %s", ErrBadInput, id, rec.Status)
	}
	if script != nil {
		prog, err := n.compile(*script)
		if err != nil {
			return nil, err
		}
		if err := n.storeScript(ctx, prog.script, prog.hash); err != nil {
			return nil, err
		}
		n.mu.Lock()
		r := n.active[id]
		n.mu.Unlock()
		if r != nil {
			return nil, fmt.Errorf("%w: run %s is running on this node; move it to another version while it is parked, blocked or stopped", ErrBadInput, id)
		}
		entries, err := n.readJournal(ctx, id)
		if err != nil {
			return nil, err
		}
		seq := 1
		for _, e := range entries {
			if e.Kind == "version" {
				seq++
			}
		}
		key := fmt.Sprint(seq)
		data, _ := encodeJSON(VersionEntry{Hash: prog.hash, Script: script.Name, By: by, Time: time.Now().UTC()})
		if _, err := n.bus.Append(ctx, bus.JournalSubject(id, "version", key), id+"/version/"+key, nil, data); err != nil {
			return nil, err
		}
		n.mu.Lock()
		if t := n.sleeping[id]; t != nil {
			t.Stop()
			delete(n.sleeping, id)
		}
		n.mu.Unlock()
	}
	if err := n.adopt(ctx, id); err != nil {
		return nil, err
	}
	return n.record(ctx, id)
}

// patched implements patcher for live and recovered runs.
func (r *run) patched(thread *starlark.Thread, id string) (bool, error) {
	r.mu.Lock()
	if r.j != nil {
		if p, ok := r.j.patches[id]; ok {
			r.mu.Unlock()
			return p.Value, nil
		}
	}
	// A run being replayed past this point took the old code path.
	value := !(r.j != nil && len(r.visited) < len(r.j.calls))
	r.mu.Unlock()
	data, _ := encodeJSON(PatchEntry{Value: value, Pos: callerPos(thread), Time: time.Now().UTC()})
	subj := bus.JournalSubject(r.id, "patch", id)
	if _, err := r.n.bus.Append(r.ctx, subj, r.id+"/patch/"+id, nil, data); err != nil {
		if !errors.Is(err, bus.ErrExists) {
			return false, err
		}
		m, err := r.n.bus.Entry(r.ctx, subj)
		if err != nil {
			return false, err
		}
		var p PatchEntry
		if err := json.Unmarshal(m.Data, &p); err != nil {
			return false, err
		}
		return p.Value, nil
	}
	return value, nil
}
