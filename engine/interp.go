package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

// interp interprets one script version. Live runs, recovered runs and replays
// all go through it, with different Runtimes.
type interp struct {
	prog         *program
	globals      starlark.StringDict
	maxSteps     uint64
	payloadLimit int
	print        func(msg string)
}

const (
	interpKey = "drover.interp"
	ctxKey    = "drover.ctx"
)

// newThread returns a thread for one line of execution (the main thread or a
// parallel branch) whose step ids start with prefix, cancelled with ctx.
func (in *interp) newThread(ctx context.Context, name string, rt builtins.Runtime, prefix string) (*starlark.Thread, func()) {
	thread := &starlark.Thread{
		Name:  name,
		Print: func(_ *starlark.Thread, msg string) { in.print(msg) },
	}
	thread.Load = func(th *starlark.Thread, module string) (starlark.StringDict, error) {
		return in.exec(th, strings.TrimPrefix(module, "./"))
	}
	limit := in.maxSteps
	thread.SetMaxExecutionSteps(limit)
	thread.OnMaxSteps = func(th *starlark.Thread) {
		th.Cancel(fmt.Sprintf("the script ran more than %d Starlark steps (a runaway loop?); raise the limit with --max-exec-steps if this is expected", limit))
	}
	thread.SetLocal(scopeKey, &scope{prefix: prefix})
	thread.SetLocal(interpKey, in)
	thread.SetLocal(ctxKey, ctx)
	builtins.SetRuntime(thread, rt)
	stop := context.AfterFunc(ctx, func() { thread.Cancel(cancelReason(ctx)) })
	return thread, func() { stop() }
}

// run executes main(input) and returns its JSON result or the run's error.
func (in *interp) run(ctx context.Context, name string, rt builtins.Runtime, rawInput json.RawMessage) (json.RawMessage, *RunError) {
	thread, done := in.newThread(ctx, name, rt, "")
	defer done()
	globals, err := in.exec(thread, in.prog.script.Main)
	if err != nil {
		return nil, evalError(err)
	}
	main, ok := globals["main"].(starlark.Callable)
	if !ok {
		return nil, &RunError{Code: "no_main", Message: fmt.Sprintf("%s has no main function: define `def main(input):` as the entry point", in.prog.script.Main)}
	}
	input, err := builtins.DecodeValue(rawInput)
	if err != nil {
		return nil, &RunError{Code: "bad_input", Message: err.Error()}
	}
	input.Freeze()
	v, err := starlark.Call(thread, main, starlark.Tuple{input}, nil)
	if err != nil {
		return nil, evalError(err)
	}
	x, err := builtins.ToJSON(v)
	if err != nil {
		return nil, &RunError{Code: "result_not_json", Message: "main returned a value that cannot be JSON: " + strings.Replace(strings.TrimPrefix(err.Error(), builtins.ErrNotJSON.Error()+": "), "value", "the return value", 1)}
	}
	raw, err := builtins.Canonical(x)
	if err != nil {
		return nil, &RunError{Code: "result_not_json", Message: err.Error()}
	}
	if len(raw) > in.payloadLimit {
		return nil, &RunError{Code: builtins.CodePayloadTooLarge, Message: fmt.Sprintf("payload too large: main returned %d bytes, over the payload limit of %d bytes", len(raw), in.payloadLimit)}
	}
	return raw, nil
}

// exec runs the top level of one file of the script version.
func (in *interp) exec(thread *starlark.Thread, file string) (starlark.StringDict, error) {
	prog, ok := in.prog.progs[file]
	if !ok {
		return nil, fmt.Errorf("load: the script has no file %q", file)
	}
	g, err := prog.Init(thread, in.globals)
	if err != nil {
		return nil, err
	}
	g.Freeze()
	return g, nil
}

// evalError turns a Starlark error into the run's error: the root cause first,
// then the backtrace with file:line:col of every frame.
func evalError(err error) *RunError {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return &RunError{Message: err.Error()}
	}
	re := &RunError{Message: ee.Msg, Backtrace: ee.Backtrace()}
	var sf *StepFailure
	var de *DivergenceError
	switch {
	case errors.As(err, &de):
		re.Code, re.Message = CodeNonDeterminism, de.Error()
	case errors.As(err, &sf):
		re.Code = sf.Code
		var bf *branchFailure
		if !errors.As(err, &bf) { // a parallel branch's message already holds the cause
			re.Message = sf.Error()
		}
	case strings.Contains(ee.Msg, "Starlark steps (a runaway loop?)"):
		re.Code = "exec_limit"
	}
	return re
}

// CodeNonDeterminism is the RunError code of a replay divergence.
const CodeNonDeterminism = "non_determinism"
