package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
)

// Options configures Replay. The zero value replays the run's own script
// version with the default registry and limits.
type Options struct {
	// Script replays the run against another script (to test a fix).
	Script *api.Script
	// Registry supplies the builtins' argument parsing (default builtins.Default).
	Registry *builtins.Registry
	// MaxExecSteps bounds the Starlark computation (default
	// script.DefaultMaxSteps).
	MaxExecSteps uint64
	// PayloadLimit bounds the result, in bytes (default api.DefaultPayloadLimit).
	PayloadLimit int
}

// Report says what a replay did (api.ReplayReport, which the API answers).
type Report = api.ReplayReport

// Replay re-executes a run from its export: each step call is checked against
// the journal (same builtin, same arguments) and answered with the journaled
// result; nothing is executed. A divergence is returned as a
// *api.DivergenceError, and recorded in the report.
func Replay(ctx context.Context, exp *api.Export, opts Options) (*Report, error) {
	if opts.Registry == nil {
		opts.Registry = builtins.Default
	}
	j, err := journal.Parse(exp.Journal)
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: %v", api.ErrBadInput, exp.Run.ID, err)
	}
	s := exp.Script
	if opts.Script != nil {
		s = *opts.Script
	}
	prog, err := script.Compile(s, script.Globals(opts.Registry))
	if err != nil {
		return nil, err
	}
	rt := New(j, nil)
	rep := &Report{Run: exp.Run, Script: s.Name, Hash: prog.Hash, Journaled: len(j.Calls)}
	start := time.Now()
	result, runErr := script.Run(ctx, prog, rt, j.Start.Input, script.Options{MaxSteps: opts.MaxExecSteps, PayloadLimit: opts.PayloadLimit})
	rep.Took = time.Since(start)
	rep.Steps = rt.Replayed()
	rt.mu.Lock()
	partial, divergence := rt.partial, rt.divergence
	rt.mu.Unlock()
	var de *api.DivergenceError
	switch {
	case runErr != nil && runErr.Code == api.CodeNonDeterminism:
		errors.As(divergence, &de)
	case runErr != nil && partial:
		rep.Partial = true
		return rep, nil
	case j.End == nil:
		rep.Partial = true
	default:
		if err := rt.Unvisited(); err != nil {
			errors.As(err, &de)
		}
	}
	if de != nil {
		rep.Divergence = de
		return rep, de
	}
	rep.Result, rep.Error = result, runErr
	if j.End != nil {
		rep.Matches = sameOutcome(j.End, result, runErr)
	}
	return rep, nil
}

func sameOutcome(end *api.EndEntry, result json.RawMessage, runErr *api.RunError) bool {
	if runErr == nil {
		return end.Status == api.StatusCompleted && journal.SameJSON(end.Result, result)
	}
	return end.Status != api.StatusCompleted && end.Error != nil && end.Error.Message == runErr.Message
}
