package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	scriptmetrics "github.com/droverhq/drover/starlark/builtins/metrics"
)

// ErrJournalEnd stops a replay without Live where the journal runs out: the
// run was still going when it was read.
var ErrJournalEnd = errors.New("replay: the journal ends here (the run was still going)")

// Live is where a run goes on once its journal runs out: the engine's run
// coordinator.
type Live interface {
	// Step executes step id live and returns what the script gets. call is
	// the journaled call when the journal holds it without a result (the step
	// was under way when the run stopped): it executes again under the same
	// idempotency key, and a timer keeps its journaled start.
	Step(thread *starlark.Thread, step *builtins.Step, id string, args json.RawMessage, pos string, call *api.CallEntry) (json.RawMessage, error)
	// Tag journals the attributes of the run's tag() call number seq.
	Tag(thread *starlark.Thread, seq int, attrs map[string]string) error
	// Patch journals the decision value of patched(id) and returns the
	// decision that stands (another coordinator's, if it journaled first).
	Patch(thread *starlark.Thread, id string, value bool) (bool, error)
	// Logger returns the logger of the script's log lines.
	Logger(thread *starlark.Thread) *zerolog.Logger
}

// Runtime is the builtins.Runtime of a run replayed against its journal. A
// nil journal is an empty one (a new run); a nil Live ends the replay where
// the journal does. It is safe for concurrent use by a run's threads.
type Runtime struct {
	j    *journal.Journal
	live Live

	mu         sync.Mutex
	visited    map[string]bool // step ids the script reached
	replayed   int             // steps answered from the journal
	tags       int             // tag() calls made
	partial    bool            // the journal ran out (no Live)
	divergence error
}

var (
	_ builtins.Runtime = (*Runtime)(nil)
	_ script.Patcher   = (*Runtime)(nil)
)

// New returns the runtime of a run with journal j (nil for a new run) going
// on live through live (nil for a replay that executes nothing).
func New(j *journal.Journal, live Live) *Runtime {
	return &Runtime{j: j, live: live, visited: map[string]bool{}}
}

// CallStep implements builtins.Runtime.
func (rt *Runtime) CallStep(thread *starlark.Thread, step *builtins.Step, a any) (json.RawMessage, error) {
	id := script.NextStepID(thread)
	args, err := builtins.Canonical(a)
	if err != nil {
		return nil, fmt.Errorf("%s: arguments are not JSON: %w", step.Name, err)
	}
	var call *api.CallEntry
	if rt.j != nil {
		c, res, err := rt.j.Match(id, step.Name, args, func() string { return script.CallerPos(thread) })
		rt.mu.Lock()
		if err != nil {
			rt.divergence = err
			rt.mu.Unlock()
			return nil, err
		}
		rt.visited[id] = true
		if res != nil {
			rt.replayed++
			rt.mu.Unlock()
			return script.Outcome(step.Name, res)
		}
		rt.mu.Unlock()
		call = c
	}
	if rt.live == nil {
		rt.mu.Lock()
		rt.partial = true
		rt.mu.Unlock()
		return nil, ErrJournalEnd
	}
	return rt.live.Step(thread, step, id, args, script.CallerPos(thread), call)
}

// Tag implements builtins.Runtime: a tag() call the journal holds (by its
// sequence) was journaled and indexed by the original run; a later one is
// journaled live.
func (rt *Runtime) Tag(thread *starlark.Thread, attrs map[string]string) error {
	rt.mu.Lock()
	rt.tags++
	seq := rt.tags
	journaled := rt.j != nil && seq <= len(rt.j.Tags)
	rt.mu.Unlock()
	if journaled || rt.live == nil {
		return nil
	}
	return rt.live.Tag(thread, seq, attrs)
}

// Logger implements builtins.Runtime: Live's logger, or none.
func (rt *Runtime) Logger(thread *starlark.Thread) *zerolog.Logger {
	if rt.live != nil && rt.pastJournal() {
		return rt.live.Logger(thread)
	}
	l := zerolog.Nop() // a replay, or a recovered run not past its journal yet: those lines were written
	return &l
}

// pastJournal reports whether the run has gone past what its journal holds
// (a new run always has): what it does now, it does for the first time.
func (rt *Runtime) pastJournal() bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.j == nil || len(rt.visited) >= len(rt.j.Calls)
}

// RecordMetric implements the script module metrics' Recorder: a run going
// on live, past its journal, records the metric through its Live (when
// that is a Recorder); a replay records nothing (metrics describe the live
// system: replaying last week's run must not count again).
func (rt *Runtime) RecordMetric(thread *starlark.Thread, kind, name string, value float64, tags map[string]string) {
	if rec, ok := rt.live.(scriptmetrics.Recorder); ok && rt.pastJournal() {
		rec.RecordMetric(thread, kind, name, value, tags)
	}
}

// Patched implements script.Patcher: the journaled decision if there is one;
// else the old code path for a run replayed past this point (its journal
// holds calls the script has not reached yet: the original run took that
// path), the new one for a run going on live, journaled.
func (rt *Runtime) Patched(thread *starlark.Thread, id string) (bool, error) {
	if rt.j != nil {
		if p, ok := rt.j.Patches[id]; ok {
			return p.Value, nil
		}
	}
	if rt.live == nil {
		return false, nil
	}
	return rt.live.Patch(thread, id, rt.pastJournal())
}

// Replayed returns how many steps were answered from the journal.
func (rt *Runtime) Replayed() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.replayed
}

// Unvisited returns a *api.DivergenceError if the journal holds calls the
// script did not make; call it once the script has ended.
func (rt *Runtime) Unvisited() error {
	if rt.j == nil {
		return nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.j.Unvisited(rt.visited)
}
