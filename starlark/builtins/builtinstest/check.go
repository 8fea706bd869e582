package builtinstest

import (
	"errors"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// SplitError splits an error of Run, RunFile or Eval into the message of the
// builtin that failed (without the backtrace) and the position of the script
// line that called it. ok is false if err did not come from running a script
// (for example a syntax error).
func SplitError(err error) (msg string, pos syntax.Position, ok bool) {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return "", syntax.Position{}, false
	}
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		if p := ee.CallStack[i].Pos; p.Filename() != "<builtin>" {
			pos = p
			break
		}
	}
	return ee.Msg, pos, true
}

// CheckBadCall runs src, a snippet with one bad call of a builtin of r, on a
// fresh Runtime and fails t unless the script fails at a line of the snippet
// with exactly the message wantErr (e.g. `http.get: for parameter timeout: got
// int, want string`), and before any step ran, any line was logged or any tag
// was set: bad arguments must fail first.
func CheckBadCall(t testing.TB, r *builtins.Registry, src, wantErr string) {
	t.Helper()
	rt := NewRuntime()
	_, err := rt.Run(r, src, nil)
	if err == nil {
		t.Fatalf("%s succeeded, want error %q", src, wantErr)
	}
	msg, pos, ok := SplitError(err)
	if !ok {
		t.Fatalf("%s failed with %v (%T), not a script error", src, err, err)
	}
	if msg != wantErr {
		t.Errorf("%s\n got error: %s\nwant error: %s", src, msg, wantErr)
	}
	if pos.Filename() != Snippet {
		t.Errorf("%s: error raised at %s, want a position in %s", src, pos, Snippet)
	}
	if calls := rt.Calls(); len(calls) > 0 {
		t.Errorf("%s ran %d steps before failing; bad arguments must fail first", src, len(calls))
	}
	if len(rt.Logs()) > 0 || len(rt.Tags()) > 0 {
		t.Errorf("%s logged or tagged before failing", src)
	}
}
