package script

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

// maxBranches bounds the branches of one parallel() call.
const maxBranches = 10000

// builtinParallel implements parallel(fns, max=0): it calls every function of
// fns (taking no arguments) in its own Starlark thread and returns their
// results in order. Values the functions can reach are frozen first, so
// branches cannot race on shared state. The call takes the next step number n;
// the steps of branch i are numbered n.i.1, n.i.2, …, whatever order branches
// run or finish in. Every branch runs to its end; if any failed, the error of
// the lowest-numbered failed branch is returned, so errors too are the same in
// every run and every replay.
func builtinParallel(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var iter starlark.Iterable
	max := 0
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "fns", &iter, "max?", &max); err != nil {
		return nil, err
	}
	if max < 0 {
		return nil, fmt.Errorf("parallel: for parameter max: %d is negative (0 means no bound)", max)
	}
	var fns []starlark.Callable
	it := iter.Iterate()
	defer it.Done()
	var x starlark.Value
	for i := 0; it.Next(&x); i++ {
		fn, ok := x.(starlark.Callable)
		if !ok {
			return nil, fmt.Errorf("parallel: fns[%d] is a %s, want a function taking no arguments (e.g. lambda: http.get(url))", i, x.Type())
		}
		if len(fns) == maxBranches {
			return nil, fmt.Errorf("parallel: more than %d functions", maxBranches)
		}
		fns = append(fns, fn)
	}
	in, _ := thread.Local(interpKey).(*interp)
	ctx, _ := thread.Local(ctxKey).(context.Context)
	rt, err := builtins.RuntimeOf(thread)
	if in == nil || ctx == nil || err != nil {
		return nil, fmt.Errorf("parallel: not available in this runtime")
	}
	prefix := NextStepID(thread) + "."
	for _, fn := range fns {
		fn.Freeze()
	}
	if max == 0 || max > len(fns) {
		max = len(fns)
	}
	results := make([]starlark.Value, len(fns))
	errs := make([]error, len(fns))
	sem := make(chan struct{}, max)
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			branch := prefix + strconv.Itoa(i+1)
			th, done := in.newThread(ctx, thread.Name+"/"+branch, rt, branch+".")
			defer done()
			results[i], errs[i] = starlark.Call(th, fn, nil, nil)
		}()
	}
	wg.Wait()
	var failed []int
	for i, err := range errs {
		if err != nil {
			failed = append(failed, i+1)
		}
	}
	if len(failed) == 0 {
		return starlark.NewList(results), nil
	}
	return nil, branchError(prefix, len(fns), failed, errs[failed[0]-1])
}

// branchError reports the lowest-numbered failed branch: its root cause, where
// it happened, and which other branches failed.
func branchError(prefix string, n int, failed []int, err error) error {
	msg, where := err.Error(), ""
	var ee *starlark.EvalError
	if errors.As(err, &ee) {
		msg = ee.Msg
		for i := len(ee.CallStack) - 1; i >= 0; i-- {
			if fr := ee.CallStack[i]; fr.Pos.IsValid() && fr.Pos.Line > 0 {
				where = " at " + fr.Pos.String()
				break
			}
		}
	}
	hint := ""
	// Only a hint for the reader: starlark-go's mutation errors have no type
	// of their own, and nothing classifies the run by this text.
	if strings.Contains(msg, "frozen") {
		hint = " (values shared with parallel branches are frozen: return results from the branch instead of mutating shared state)"
	}
	also := ""
	if len(failed) > 1 {
		also = fmt.Sprintf("; branches %v also failed", failed[1:])
	}
	return &branchFailure{
		msg:   fmt.Sprintf("parallel: branch %d of %d (steps %s%d.*) failed%s: %s%s%s", failed[0], n, prefix, failed[0], where, msg, hint, also),
		cause: err,
	}
}

// branchFailure keeps the branch's error as its cause, so step failures,
// divergences and parking propagate through parallel.
type branchFailure struct {
	msg   string
	cause error
}

// Error names the branch, where it failed and why.
func (e *branchFailure) Error() string { return e.msg }

// Unwrap returns the branch's own error.
func (e *branchFailure) Unwrap() error { return e.cause }

// A Patcher is a runtime that can answer patched(): the engine's live runs
// and package replay's runtime.
type Patcher interface {
	// Patched returns the decision of patched(id) for the thread's run.
	Patched(thread *starlark.Thread, id string) (bool, error)
}

// builtinPatched implements patched(change_id): True for runs that reach this
// point with the new code, False for runs that passed it before the change
// (their journal holds no marker). The decision is journaled, so a run sees the
// same answer for its whole life.
func builtinPatched(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var id string
	if err := builtins.UnpackArgs(b.Name(), args, kwargs, "change_id", &id); err != nil {
		return nil, err
	}
	if !validChangeID(id) {
		return nil, fmt.Errorf("patched: change_id %q must be 1 to 128 characters with no dots, spaces or wildcards (e.g. \"use-v2-prices\")", id)
	}
	rt, err := builtins.RuntimeOf(thread)
	if err != nil {
		return nil, err
	}
	p, ok := rt.(Patcher)
	if !ok {
		return nil, fmt.Errorf("patched: not available in this runtime")
	}
	v, err := p.Patched(thread, id)
	return starlark.Bool(v), err
}

// validChangeID reports whether id can key a journal entry: 1 to 128
// characters, none of them a dot, a wildcard or white space.
func validChangeID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c == '.', c == '*', c == '>', c <= ' ', c == 0x7f:
			return false
		}
	}
	return true
}
