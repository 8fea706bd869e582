package builtins

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.starlark.net/starlark"
)

// unpacked holds the variables that a signature unpacks into.
type unpacked struct {
	s       string
	n       int
	v       starlark.Value
	list    *starlark.List
	d       Duration
	many    [70]int
	skipped string
}

// A signature lists the parameters of a builtin for UnpackArgs, with pointers
// into u.
type signature func(u *unpacked) []any

var (
	// f(s, n=0, v=None, list=None, d="30s")
	mixed signature = func(u *unpacked) []any {
		return []any{"s", &u.s, "n?", &u.n, "v?", &u.v, "list?", &u.list, "d?", &u.d}
	}
	// f(s, skipped="dflt" (None means absent), n)  -- n optional: it follows one
	skipNone signature = func(u *unpacked) []any {
		return []any{"s", &u.s, "skipped??", &u.skipped, "n", &u.n}
	}
	// f(s?, n): an optional parameter makes the later ones optional.
	leadingOptional signature = func(u *unpacked) []any { return []any{"s?", &u.s, "n", &u.n} }
	// f(url, headers=None, timeout="30s"), as http.get.
	httpGet signature = func(u *unpacked) []any {
		return []any{"url", &u.s, "headers??", &u.v, "timeout?", &u.d}
	}
	// f() with no parameters.
	none signature = func(*unpacked) []any { return nil }
	// f(p0=0, ..., p69=0): more parameters than fit the small set.
	many signature = func(u *unpacked) []any {
		pairs := make([]any, 0, 2*len(u.many))
		for i := range u.many {
			pairs = append(pairs, fmt.Sprintf("p%d?", i), &u.many[i])
		}
		return pairs
	}
)

func str(s string) starlark.Value { return starlark.String(s) }
func num(n int) starlark.Value    { return starlark.MakeInt(n) }
func kw(name string, v starlark.Value) starlark.Tuple {
	return starlark.Tuple{starlark.String(name), v}
}

// TestUnpackArgsMatchesStarlark checks that UnpackArgs accepts and refuses the
// same calls as starlark.UnpackArgs and unpacks the same values, with one form
// of message for a bad argument. starlarkErr is starlark.UnpackArgs's message
// where it differs from wantErr.
func TestUnpackArgsMatchesStarlark(t *testing.T) {
	list := starlark.NewList([]starlark.Value{num(1)})
	tests := []struct {
		name        string
		sig         signature
		args        starlark.Tuple
		kwargs      []starlark.Tuple
		wantErr     string
		wantParam   string // the Param of the *ArgError, for a bad argument
		starlarkErr string
	}{
		{name: "required only", sig: mixed, args: starlark.Tuple{str("x")}},
		{name: "all positional", sig: mixed, args: starlark.Tuple{str("x"), num(3), starlark.True, list, str("2s")}},
		{name: "all keyword", sig: mixed, kwargs: []starlark.Tuple{kw("d", str("1m")), kw("list", list), kw("v", num(1)), kw("n", num(2)), kw("s", str("y"))}},
		{name: "mixed", sig: mixed, args: starlark.Tuple{str("x"), num(3)}, kwargs: []starlark.Tuple{kw("d", str("5s"))}},
		{name: "none value is kept", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("v", starlark.None)}},
		{
			name: "too many", sig: mixed, args: starlark.Tuple{str("x"), num(1), num(2), list, str("1s"), num(6)},
			wantErr: "f: got 6 arguments, want at most 5",
		},
		{name: "missing required", sig: mixed, kwargs: []starlark.Tuple{kw("n", num(1))}, wantErr: "f: missing argument for s"},
		{name: "missing everything", sig: mixed, wantErr: "f: missing argument for s"},
		{
			name: "positional bad type", sig: mixed, args: starlark.Tuple{num(1)},
			wantErr: "f: for parameter s: got int, want string", wantParam: "s",
		},
		{
			name: "keyword bad type", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("n", str("1"))},
			wantErr: "f: for parameter n: got string, want int", wantParam: "n",
			starlarkErr: `f: for parameter "n": got string, want int`,
		},
		{
			name: "keyword bad list", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("list", starlark.NewDict(0))},
			wantErr: "f: for parameter list: got dict, want list", wantParam: "list",
			starlarkErr: `f: for parameter "list": got dict, want list`,
		},
		{
			name: "unpacker by position", sig: mixed, args: starlark.Tuple{str("x"), num(1), num(2), list, str("2x")},
			wantErr:   `f: for parameter d: "2x" is not a duration (want e.g. "250ms", "2s", "10m")`,
			wantParam: "d",
		},
		{
			name: "unpacker by keyword", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("d", str("-1s"))},
			wantErr:     `f: for parameter d: "-1s" is negative (want a duration ≥ 0, e.g. "2s")`,
			wantParam:   "d",
			starlarkErr: `f: for parameter "d": "-1s" is negative (want a duration ≥ 0, e.g. "2s")`,
		},
		{
			name: "keyword repeats a positional", sig: mixed, args: starlark.Tuple{str("x"), num(1)}, kwargs: []starlark.Tuple{kw("n", num(2))},
			wantErr: `f: got multiple values for keyword argument "n"`,
		},
		{
			name: "keyword repeats a keyword", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("n", num(1)), kw("n", num(2))},
			wantErr: `f: got multiple values for keyword argument "n"`,
		},
		{
			name: "unknown keyword", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("bogus", num(1))},
			wantErr: `f: unexpected keyword argument "bogus"`,
		},
		{
			name: "unknown keyword near a parameter", sig: mixed, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("N_", num(1))},
			wantErr: `f: unexpected keyword argument "N_" (did you mean n?)`,
		},
		{
			name: "suggestion from the second half", sig: httpGet, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("timout", num(1))},
			wantErr:     `f: unexpected keyword argument "timout" (did you mean timeout?)`,
			starlarkErr: `f: unexpected keyword argument "timout"`,
		},
		{
			name: "suggestion from the first half", sig: httpGet, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("header", num(1))},
			wantErr: `f: unexpected keyword argument "header" (did you mean headers?)`,
		},
		{name: "skipped by position", sig: skipNone, args: starlark.Tuple{str("x"), starlark.None, num(2)}},
		{name: "skipped by keyword", sig: skipNone, args: starlark.Tuple{str("x")}, kwargs: []starlark.Tuple{kw("skipped", starlark.None)}},
		{name: "later parameters are optional", sig: skipNone, args: starlark.Tuple{str("x")}},
		{
			name: "skipped counts as given", sig: skipNone, args: starlark.Tuple{str("x"), starlark.None}, kwargs: []starlark.Tuple{kw("skipped", str("y"))},
			wantErr: `f: got multiple values for keyword argument "skipped"`,
		},
		{
			name: "skip-none parameter still checks other values", sig: skipNone, args: starlark.Tuple{str("x"), num(1)},
			wantErr: "f: for parameter skipped: got int, want string", wantParam: "skipped",
		},
		{name: "leading optional makes the rest optional", sig: leadingOptional},
		{name: "leading optional given", sig: leadingOptional, args: starlark.Tuple{str("x")}},
		{name: "no parameters", sig: none},
		{name: "no parameters, one argument", sig: none, args: starlark.Tuple{num(1)}, wantErr: "f: got 1 arguments, want at most 0"},
		{name: "no parameters, a keyword", sig: none, kwargs: []starlark.Tuple{kw("x", num(1))}, wantErr: `f: unexpected keyword argument "x"`},
		{name: "many parameters", sig: many, args: starlark.Tuple{num(1)}, kwargs: []starlark.Tuple{kw("p69", num(69)), kw("p20", num(20))}},
		{
			name: "many parameters, one twice", sig: many, kwargs: []starlark.Tuple{kw("p68", num(1)), kw("p68", num(2))},
			wantErr: `f: got multiple values for keyword argument "p68"`,
		},
		{
			name: "many parameters, suggestion", sig: many, kwargs: []starlark.Tuple{kw("q69", num(1))},
			wantErr:     `f: unexpected keyword argument "q69" (did you mean p69?)`,
			starlarkErr: `f: unexpected keyword argument "q69"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ours, theirs := unpacked{d: Duration(30 * time.Second), skipped: "dflt"}, unpacked{d: Duration(30 * time.Second), skipped: "dflt"}
			err := UnpackArgs("f", tt.args, tt.kwargs, tt.sig(&ours)...)
			starlarkErr := starlark.UnpackArgs("f", tt.args, tt.kwargs, tt.sig(&theirs)...)

			if (err == nil) != (starlarkErr == nil) {
				t.Fatalf("UnpackArgs: %v; starlark.UnpackArgs: %v", err, starlarkErr)
			}
			if fmt.Sprint(ours) != fmt.Sprint(theirs) {
				t.Errorf("unpacked %v, starlark.UnpackArgs unpacked %v", ours, theirs)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("UnpackArgs: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("UnpackArgs error\n got %v\nwant %s", err, tt.wantErr)
			}
			want := tt.starlarkErr
			if want == "" {
				want = tt.wantErr
			}
			if starlarkErr.Error() != want {
				t.Errorf("starlark.UnpackArgs error\n got %v\nwant %s", starlarkErr, want)
			}
			var ae *ArgError
			if isArg := errors.As(err, &ae); isArg != (tt.wantParam != "") || isArg && (ae.Param != tt.wantParam || ae.Func != "f") {
				t.Errorf("error %#v, want an *ArgError for parameter %q (or none if empty)", err, tt.wantParam)
			}
		})
	}
}

func TestArgErrorUnwraps(t *testing.T) {
	_, err := ToJSON(starlark.NewSet(0))
	ae := &ArgError{Func: "emit", Param: "payload", Err: err}
	if !errors.Is(ae, ErrNotJSON) {
		t.Errorf("%v does not wrap ErrNotJSON", ae)
	}
	if want := "emit: for parameter payload: " + err.Error(); ae.Error() != want {
		t.Errorf("Error() = %s, want %s", ae, want)
	}
}

func TestNoArgs(t *testing.T) {
	b := starlark.NewBuiltin("uuid", nil)
	tests := []struct {
		name    string
		args    starlark.Tuple
		kwargs  []starlark.Tuple
		wantErr string
	}{
		{name: "none"},
		{name: "positional", args: starlark.Tuple{num(1)}, wantErr: "uuid: got 1 arguments, want at most 0"},
		{name: "keyword", kwargs: []starlark.Tuple{kw("n", num(1))}, wantErr: `uuid: unexpected keyword argument "n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NoArgs(b, tt.args, tt.kwargs)
			if a != nil {
				t.Errorf("NoArgs journals %v, want nil (null)", a)
			}
			if got := fmt.Sprint(err); (err != nil || tt.wantErr != "") && got != tt.wantErr {
				t.Errorf("error %s, want %s", got, tt.wantErr)
			}
		})
	}
}

func TestTransportError(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	tests := []struct {
		name          string
		ctx           context.Context
		wantErr       *StepError
		wantRetryable bool
	}{
		{"live", context.Background(), &StepError{Code: CodeTransport, Message: `kv.get "k": broken pipe`}, true},
		{"deadline", expired, &StepError{Code: CodeTimeout, Message: `kv.get "k": timed out`}, true},
		{"cancelled", cancelled, &StepError{Code: CodeCancelled, Message: `kv.get "k": cancelled`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := TransportError(tt.ctx, `kv.get "k"`, errors.New("broken pipe"))
			if !errors.Is(err, tt.wantErr) || err.Retryable != tt.wantRetryable {
				t.Errorf("got %+v, want %+v retryable=%v", err, tt.wantErr, tt.wantRetryable)
			}
		})
	}
}
