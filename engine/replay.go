package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

// errJournalEnd stops a replay where the journal runs out: the run was still
// going when it was read.
var errJournalEnd = errors.New("engine: the journal ends here (the run was still going)")

// ReplayOptions configures Replay. The zero value replays the pinned script
// version with the default registry and limits.
type ReplayOptions struct {
	// Script replays the run against another script (to test a fix).
	Script *Script
	// Registry supplies the builtins' argument parsing (default builtins.Default).
	Registry     *builtins.Registry
	MaxExecSteps uint64 // default 10,000,000
	PayloadLimit int    // default 1 MiB
}

// ReplayReport says what a replay did.
type ReplayReport struct {
	Run       Run             `json:"run"`       // the original run's record
	Script    string          `json:"script"`    // name of the script replayed
	Hash      string          `json:"hash"`      // its version
	Steps     int             `json:"steps"`     // steps answered from the journal
	Journaled int             `json:"journaled"` // steps the journal holds
	Took      time.Duration   `json:"took_ns"`
	Partial   bool            `json:"partial"` // the run was still going: its prefix was replayed
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *RunError       `json:"error,omitempty"`
	// Matches is true when the replay ended as the original run did (same
	// result, or same error message).
	Matches    bool             `json:"matches"`
	Divergence *DivergenceError `json:"divergence,omitempty"`
}

// Replay re-executes a run from its export: each step call is checked against
// the journal (same builtin, same arguments) and answered with the journaled
// result; nothing is executed. A divergence is returned as a *DivergenceError
// (and recorded in the report).
func Replay(ctx context.Context, exp *Export, opts ReplayOptions) (*ReplayReport, error) {
	if opts.Registry == nil {
		opts.Registry = builtins.Default
	}
	o := Options{MaxExecSteps: opts.MaxExecSteps, PayloadLimit: opts.PayloadLimit}.withDefaults()
	j, err := parseJournal(exp.Journal)
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: %v", ErrBadInput, exp.Run.ID, err)
	}
	script := exp.Script
	if opts.Script != nil {
		script = *opts.Script
	}
	prog, err := compileProgram(script, globalsOf(opts.Registry))
	if err != nil {
		return nil, err
	}
	in := &interp{prog: prog, globals: globalsOf(opts.Registry), maxSteps: o.MaxExecSteps, payloadLimit: o.PayloadLimit, print: func(string) {}}
	rp := &replayer{j: j, visited: map[string]bool{}}
	rep := &ReplayReport{Run: exp.Run, Script: script.Name, Hash: prog.hash, Journaled: len(j.calls)}
	start := time.Now()
	result, runErr := in.run(ctx, exp.Run.ID, rp, j.start.Input)
	rep.Took = time.Since(start)
	rep.Steps = rp.replayed
	var de *DivergenceError
	switch {
	case runErr != nil && runErr.Code == CodeNonDeterminism:
		errors.As(rp.divergence, &de)
	case runErr != nil && rp.partial:
		rep.Partial = true
		return rep, nil
	case j.end == nil:
		rep.Partial = true
	default:
		if err := j.unvisited(rp.visited); err != nil {
			errors.As(err, &de)
		}
	}
	if de != nil {
		rep.Divergence = de
		return rep, de
	}
	rep.Result, rep.Error = result, runErr
	if j.end != nil {
		rep.Matches = sameOutcome(j.end, result, runErr)
	}
	return rep, nil
}

func sameOutcome(end *EndEntry, result json.RawMessage, runErr *RunError) bool {
	if runErr == nil {
		return end.Status == StatusCompleted && sameJSON(end.Result, result)
	}
	return end.Status != StatusCompleted && end.Error != nil && end.Error.Message == runErr.Message
}

// replayer is the Runtime of a replay: it answers steps from the journal.
type replayer struct {
	j          *journal
	mu         sync.Mutex
	visited    map[string]bool
	replayed   int
	partial    bool
	divergence error
}

// CallStep implements builtins.Runtime.
func (p *replayer) CallStep(thread *starlark.Thread, step *builtins.Step, a any) (json.RawMessage, error) {
	id := thread.Local(scopeKey).(*scope).nextID()
	args, err := builtins.Canonical(a)
	if err != nil {
		return nil, fmt.Errorf("%s: arguments are not JSON: %w", step.Name, err)
	}
	call, res, err := p.j.match(id, step.Name, args, func() string { return callerPos(thread) })
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.divergence = err
		return nil, err
	}
	p.visited[id] = true
	if call == nil || res == nil {
		p.partial = true
		return nil, errJournalEnd
	}
	p.replayed++
	if res.Error != nil {
		return nil, &StepFailure{Builtin: step.Name, Step: id, Code: res.Error.Code, Message: res.Error.Message, Attempts: res.Attempts}
	}
	return res.Value, nil
}

// Tag implements builtins.Runtime: tags were journaled by the original run.
func (p *replayer) Tag(*starlark.Thread, map[string]string) error { return nil }

// Logger implements builtins.Runtime: a replay logs nothing.
func (p *replayer) Logger(*starlark.Thread) *zerolog.Logger {
	l := zerolog.Nop()
	return &l
}

// patched implements patcher: a replay takes the journaled decision, and the
// old code path where the original run journaled none.
func (p *replayer) patched(_ *starlark.Thread, id string) (bool, error) {
	return p.j.patches[id].Value, nil
}

// Export returns run id as a self-contained, portable run.
// A pinned run whose journal has expired is exported from its pinned copy.
func (n *Node) Export(ctx context.Context, id string) (*Export, error) {
	rec, err := n.record(ctx, id)
	if errors.Is(err, ErrUnknownRun) {
		return n.pinnedExport(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	entries, err := n.readJournal(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return n.pinnedExport(ctx, id)
	}
	n.expires(rec)
	script, err := n.LoadScript(ctx, rec.Hash)
	if err != nil {
		return nil, err
	}
	return &Export{Format: ExportFormat, Run: *rec, Script: *script, Journal: entries}, nil
}
