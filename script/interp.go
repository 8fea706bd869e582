package script

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// DefaultMaxSteps is the default bound on a run's Starlark computation.
const DefaultMaxSteps = 10_000_000

// Options configures Run. The zero value works.
type Options struct {
	// MaxSteps bounds the Starlark computation of the run, against runaway
	// loops (default DefaultMaxSteps).
	MaxSteps uint64
	// PayloadLimit bounds main's result, in bytes (default api.DefaultPayloadLimit).
	PayloadLimit int
	// LimitHint says how to raise MaxSteps, for the error of a run that
	// reaches it (default: "raise the limit with --max-exec-steps if this is
	// expected").
	LimitHint string
	// Print receives the script's print() lines (default: dropped).
	Print func(msg string)
	// CancelReason says why the run's context ended, for the error of a
	// cancelled thread (default: "run cancelled").
	CancelReason func(ctx context.Context) string
}

func (o Options) withDefaults() Options {
	if o.MaxSteps == 0 {
		o.MaxSteps = DefaultMaxSteps
	}
	if o.PayloadLimit <= 0 {
		o.PayloadLimit = api.DefaultPayloadLimit
	}
	if o.LimitHint == "" {
		o.LimitHint = "raise the limit with --max-exec-steps if this is expected"
	}
	if o.Print == nil {
		o.Print = func(string) {}
	}
	if o.CancelReason == nil {
		o.CancelReason = func(context.Context) string { return "run cancelled" }
	}
	return o
}

// interp is one run of a program: its threads share it.
type interp struct {
	prog *Program
	opts Options
	// limitHit is set when a thread reached MaxSteps: the run's error is
	// then CodeExecLimit.
	limitHit atomic.Bool
}

// Thread-local keys.
const (
	interpKey = "drover.interp"
	ctxKey    = "drover.ctx"
	scopeKey  = "drover.scope"
)

// scope assigns step ids in one Starlark thread: "1", "2", … at the top level.
type scope struct {
	prefix string
	next   int
}

// NextStepID assigns the id of the next step called on thread: the thread's
// prefix and the number of its steps so far. A runtime calls it once per step
// call, before anything else, so that ids depend only on the script.
func NextStepID(thread *starlark.Thread) string {
	s := thread.Local(scopeKey).(*scope)
	s.next++
	return s.prefix + strconv.Itoa(s.next)
}

// LastStepID returns the id of the last step the thread called (its
// branch's, in a parallel branch), or "" before its first.
func LastStepID(thread *starlark.Thread) string {
	s, ok := thread.Local(scopeKey).(*scope)
	if !ok || s.next == 0 {
		return ""
	}
	return s.prefix + strconv.Itoa(s.next)
}

// CallerPos is the script position of the call being made by a builtin.
func CallerPos(thread *starlark.Thread) string {
	for d := 0; d < thread.CallStackDepth(); d++ {
		fr := thread.CallFrame(d)
		if fr.Pos.IsValid() && fr.Pos.Line > 0 {
			return fr.Pos.String()
		}
	}
	return ""
}

// Run executes main(input) of p, its steps calling rt, and returns main's
// result as canonical JSON or the run's error. Cancelling ctx cancels every
// thread of the run.
func Run(ctx context.Context, p *Program, rt builtins.Runtime, input json.RawMessage, opts Options) (json.RawMessage, *api.RunError) {
	in := &interp{prog: p, opts: opts.withDefaults()}
	thread, done := in.newThread(ctx, p.Script.Name, rt, "")
	defer done()
	globals, err := in.exec(thread, p.Script.Main)
	if err != nil {
		return nil, in.runError(err)
	}
	main, ok := globals["main"].(starlark.Callable)
	if !ok {
		return nil, &api.RunError{Code: api.CodeNoMain, Message: fmt.Sprintf("%s has no main function: define `def main(input):` as the entry point", p.Script.Main)}
	}
	arg, err := builtins.DecodeValue(input)
	if err != nil {
		return nil, &api.RunError{Code: api.CodeBadInput, Message: err.Error()}
	}
	arg.Freeze()
	v, err := starlark.Call(thread, main, starlark.Tuple{arg}, nil)
	if err != nil {
		return nil, in.runError(err)
	}
	x, err := builtins.ToJSON(v)
	if err != nil {
		return nil, &api.RunError{Code: api.CodeResultNotJSON, Message: "main returned a value that cannot be JSON: " + strings.Replace(strings.TrimPrefix(err.Error(), builtins.ErrNotJSON.Error()+": "), "value", "the return value", 1)}
	}
	raw, err := builtins.Canonical(x)
	if err != nil {
		return nil, &api.RunError{Code: api.CodeResultNotJSON, Message: err.Error()}
	}
	if len(raw) > in.opts.PayloadLimit {
		return nil, &api.RunError{Code: builtins.CodePayloadTooLarge, Message: fmt.Sprintf("payload too large: main returned %d bytes, over the payload limit of %d bytes", len(raw), in.opts.PayloadLimit)}
	}
	return raw, nil
}

// newThread returns a thread for one line of execution (the main thread or a
// parallel branch) whose step ids start with prefix, cancelled with ctx.
func (in *interp) newThread(ctx context.Context, name string, rt builtins.Runtime, prefix string) (*starlark.Thread, func()) {
	thread := &starlark.Thread{
		Name:  name,
		Print: func(_ *starlark.Thread, msg string) { in.opts.Print(msg) },
	}
	thread.Load = func(th *starlark.Thread, module string) (starlark.StringDict, error) {
		return in.exec(th, strings.TrimPrefix(module, "./"))
	}
	thread.SetMaxExecutionSteps(in.opts.MaxSteps)
	thread.OnMaxSteps = in.onMaxSteps
	thread.SetLocal(scopeKey, &scope{prefix: prefix})
	thread.SetLocal(interpKey, in)
	thread.SetLocal(ctxKey, ctx)
	builtins.SetRuntime(thread, rt)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(in.opts.CancelReason(ctx)) })
	return thread, func() { stop() }
}

// onMaxSteps cancels a thread that reached the step limit. Starlark reports
// a cancelled thread at the instruction before the check, and a loop's jump
// back can lie before the first instruction with a position (the error
// would point at the def line): the thread is let run a few more steps, until
// the instruction is one with a position of its own.
func (in *interp) onMaxSteps(th *starlark.Thread) {
	if th.ExecutionSteps() < in.opts.MaxSteps+64 {
		fr := th.DebugFrame(0)
		if fn, ok := fr.Callable().(*starlark.Function); ok && fr.Position() == fn.Position() {
			th.SetMaxExecutionSteps(th.ExecutionSteps() + 1)
			return
		}
	}
	in.limitHit.Store(true)
	th.Cancel(fmt.Sprintf("the script ran more than %d Starlark steps (a runaway loop?); %s", in.opts.MaxSteps, in.opts.LimitHint))
}

// exec runs the top level of one file of the program.
func (in *interp) exec(thread *starlark.Thread, file string) (starlark.StringDict, error) {
	prog, ok := in.prog.files[file]
	if !ok {
		return nil, fmt.Errorf("load: the script has no file %q", file)
	}
	g, err := prog.Init(thread, in.prog.globals)
	if err != nil {
		return nil, err
	}
	g.Freeze()
	return g, nil
}

// runError turns a Starlark error into the run's error: the root cause first,
// then the backtrace with file:line:col of every frame. Its code comes from
// the error's type: a divergence, a step's failure, the step limit.
func (in *interp) runError(err error) *api.RunError {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return &api.RunError{Message: err.Error()}
	}
	re := &api.RunError{Message: ee.Msg, Backtrace: ee.Backtrace()}
	var sf *StepFailure
	var de *api.DivergenceError
	switch {
	case errors.As(err, &de):
		re.Code, re.Message = api.CodeNonDeterminism, de.Error()
	case errors.As(err, &sf):
		re.Code = sf.Code
		if !errors.As(err, new(*branchFailure)) { // a parallel branch's message already holds the cause
			re.Message = sf.Error()
		}
	case in.limitHit.Load():
		re.Code = api.CodeExecLimit
	}
	return re
}
