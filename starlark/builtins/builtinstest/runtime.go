// Package builtinstest runs builtins in tests without an engine, as
// net/http/httptest serves handlers without a network.
//
// A Runtime is a builtins.Runtime that executes every step in-process, the way
// the engine's co-located fast path does minus the journal: the step's Args
// become canonical JSON, Exec runs once under the step's deadline with an Env
// holding an in-memory key/value store, a recorder of emit() publishes and a
// settable *http.Client, and the canonical result goes back through Value.
// It records each call, the tags set and the lines written through log.*.
//
//	r := builtinstest.NewRegistry(kv.Register)
//	rt := builtinstest.NewRuntime()
//	v, err := rt.Eval(r, `kv.get("k")`, nil)
//	// rt.Calls()[0].Args == `{"key":"k"}`
//
// CheckBadCall checks the usual contract of argument errors: the script fails
// at the call, with a message naming the builtin and the argument, before any
// step runs.
//
// The package depends only on package builtins, so that the engine can use it
// too; it runs scripts in the engine's dialect (builtins.Dialect).
package builtinstest

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

const (
	// Snippet is the file name under which Run and Eval execute their source;
	// positions in their errors read "test.star:2:5".
	Snippet = "test.star"

	// RunID is the run a Runtime's steps belong to: an Exec sees the
	// idempotency key "test/1" for the first step, "test/2" for the second...
	RunID = "test"

	// StepTimeout bounds a step that sets neither Deadline nor Timeout, as the
	// engine's default Options.StepTimeout does.
	StepTimeout = 30 * time.Second
)

// A Call records one step a Runtime executed.
type Call struct {
	Name   string              // the builtin, e.g. "kv.get"
	Step   string              // its step id in the run: "1", "2", ...
	Local  bool                // the step's Local flag
	Args   string              // the canonical JSON arguments
	Result string              // the canonical JSON result, "" if Err is set
	Err    *builtins.StepError // the failure, or nil
}

// Runtime is a builtins.Runtime that executes each step in-process, once, and
// records what the script did. Create one with NewRuntime; it is safe for
// concurrent use by several threads.
type Runtime struct {
	// Env is what each Exec gets. Replace its parts (Client, Store) or call
	// its Fail methods before running a script.
	Env *Env

	logs   logSink
	logger zerolog.Logger

	mu    sync.Mutex
	calls []Call
	tags  map[string]string
}

var _ builtins.Runtime = (*Runtime)(nil)

// NewRuntime returns a Runtime with a fresh Env (NewEnv), no calls, no tags,
// and a logger that records every level from debug up.
func NewRuntime() *Runtime {
	rt := &Runtime{Env: NewEnv(), tags: map[string]string{}}
	rt.logger = zerolog.New(&rt.logs).Level(zerolog.DebugLevel)
	return rt
}

// CallStep implements builtins.Runtime: args → canonical JSON → one Exec under
// the step's deadline (Deadline, else Timeout, else StepTimeout) → canonical
// result. A failure comes back as a *builtins.StepError; there are no retries.
func (rt *Runtime) CallStep(thread *starlark.Thread, step *builtins.Step, args any) (json.RawMessage, error) {
	raw, err := builtins.Canonical(args)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	i := len(rt.calls)
	id := strconv.Itoa(i + 1)
	rt.calls = append(rt.calls, Call{Name: step.Name, Step: id, Local: step.Local, Args: string(raw)})
	rt.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), step.AttemptTimeout(raw, StepTimeout))
	defer cancel()
	ctx = builtins.WithStep(ctx, builtins.StepContext{Run: RunID, Step: id, Attempt: 1, Key: RunID + "/" + id})
	res, err := step.Exec(ctx, rt.Env, raw)
	var out json.RawMessage
	if err == nil {
		out, err = builtins.Canonical(res)
	}
	var serr *builtins.StepError
	if err != nil {
		out, serr = nil, builtins.AsStepError(err)
	}

	rt.mu.Lock()
	rt.calls[i].Result, rt.calls[i].Err = string(out), serr
	rt.mu.Unlock()
	if serr != nil {
		return nil, serr
	}
	return out, nil
}

// Tag implements builtins.Runtime: it records attrs (see Tags).
func (rt *Runtime) Tag(thread *starlark.Thread, attrs map[string]string) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	maps.Copy(rt.tags, attrs)
	return nil
}

// Logger implements builtins.Runtime: lines go to Logs.
func (rt *Runtime) Logger(thread *starlark.Thread) *zerolog.Logger { return &rt.logger }

// Calls returns the steps executed so far, in order.
func (rt *Runtime) Calls() []Call {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]Call(nil), rt.calls...)
}

// Tags returns the attributes set so far with tag(); a later value of a name
// replaces an earlier one.
func (rt *Runtime) Tags() map[string]string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return maps.Clone(rt.tags)
}

// Logs returns the lines written so far through the Logger (log.* in a
// script), each a JSON object with "level", "message" and the fields.
func (rt *Runtime) Logs() []string { return rt.logs.lines() }

// NewRegistry returns a new registry holding the builtins that the register
// functions add, such as kv.Register: an isolated set for one test.
func NewRegistry(register ...func(*builtins.Registry)) *builtins.Registry {
	r := builtins.NewRegistry()
	for _, add := range register {
		add(r)
	}
	return r
}

// Run executes src as the file Snippet with the builtins of r and the extra
// predeclared names (which may be nil), on a thread carrying rt, and returns
// the script's globals. A script error is a *starlark.EvalError; see
// SplitError.
func (rt *Runtime) Run(r *builtins.Registry, src string, predeclared starlark.StringDict) (starlark.StringDict, error) {
	thread, env := rt.prepare(r, predeclared)
	return starlark.ExecFileOptions(builtins.Dialect, thread, Snippet, src, env)
}

// RunFile is Run for the script file at path (e.g. "testdata/order.star").
func (rt *Runtime) RunFile(r *builtins.Registry, path string, predeclared starlark.StringDict) (starlark.StringDict, error) {
	thread, env := rt.prepare(r, predeclared)
	return starlark.ExecFileOptions(builtins.Dialect, thread, path, nil, env)
}

// Eval is Run for a single expression, whose value it returns.
func (rt *Runtime) Eval(r *builtins.Registry, expr string, predeclared starlark.StringDict) (starlark.Value, error) {
	thread, env := rt.prepare(r, predeclared)
	return starlark.EvalOptions(builtins.Dialect, thread, Snippet, expr, env)
}

// prepare returns a thread carrying rt and the names a script sees.
func (rt *Runtime) prepare(r *builtins.Registry, predeclared starlark.StringDict) (*starlark.Thread, starlark.StringDict) {
	env := r.Predeclared()
	maps.Copy(env, predeclared)
	thread := &starlark.Thread{Name: RunID}
	builtins.SetRuntime(thread, rt)
	return thread, env
}

// logSink collects log lines; it is safe for concurrent use.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer for the logger.
func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf.Len() == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s.buf.String(), "\n"), "\n")
}
