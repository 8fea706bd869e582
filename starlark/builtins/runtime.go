package builtins

import (
	"encoding/json"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Runtime is what the engine provides to builtins running in a script thread.
type Runtime interface {
	// CallStep journals, places and executes one call of step with the given
	// arguments (the value returned by step.Args) and returns the journaled
	// result. The error, if any, is one the script cannot handle (retries
	// exhausted, payload too large, cancelled, replay divergence).
	CallStep(thread *starlark.Thread, step *Step, args any) (json.RawMessage, error)
	// Tag records search attributes of the run.
	Tag(thread *starlark.Thread, attrs map[string]string) error
	// Logger returns the logger for script log lines, carrying run fields.
	Logger(thread *starlark.Thread) *zerolog.Logger
}

const runtimeKey = "drover.runtime"

// SetRuntime attaches rt to thread.
func SetRuntime(thread *starlark.Thread, rt Runtime) { thread.SetLocal(runtimeKey, rt) }

// RuntimeOf returns the Runtime attached to thread, or ErrNoRuntime.
func RuntimeOf(thread *starlark.Thread) (Runtime, error) {
	if rt, ok := thread.Local(runtimeKey).(Runtime); ok {
		return rt, nil
	}
	return nil, ErrNoRuntime
}

// Builtin returns the Starlark builtin that calls step through the thread's Runtime.
func (s *Step) Builtin() *starlark.Builtin {
	return starlark.NewBuiltin(s.Name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		rt, err := RuntimeOf(thread)
		if err != nil {
			return nil, err
		}
		argsOf := s.Args
		if argsOf == nil {
			argsOf = NoArgs
		}
		a, err := argsOf(b, args, kwargs)
		if err != nil {
			return nil, err
		}
		res, err := rt.CallStep(thread, s, a)
		if err != nil {
			return nil, err
		}
		if s.Value != nil {
			return s.Value(res)
		}
		return DecodeValue(res)
	})
}

// Dialect is the Starlark dialect of Drover scripts: while loops, sets,
// recursion and top-level control flow are allowed; the execution-step limit
// guards against runaway loops. Package script compiles with it, and
// builtinstest runs snippets with it.
var Dialect = &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
