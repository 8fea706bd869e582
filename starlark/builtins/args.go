package builtins

import (
	"fmt"
	"strings"
	"unicode"

	"go.starlark.net/starlark"
)

// UnpackArgs unpacks the positional and keyword arguments of a call of the
// builtin fnname into the variables of pairs, an alternating list of parameter
// names and pointers, with the semantics of starlark.UnpackArgs: each value is
// converted by starlark.UnpackArg (so a starlark.Unpacker such as Duration does
// its own checks); "name?" marks an optional parameter and makes every later
// one optional too; "name??" is optional and treats None as if the argument
// were absent; too many arguments, a parameter given twice, a missing required
// one and an unknown keyword (with a did-you-mean suggestion) are errors.
//
// Unlike starlark.UnpackArgs, a bad argument is reported in one form however it
// was passed, as an *ArgError:
//
//	http.get: for parameter timeout: got int, want string
//
// (starlark.UnpackArgs quotes the name when the argument came by keyword), and
// the suggestion for an unknown keyword considers every parameter
// (starlark.UnpackArgs looks only at the first half of them).
func UnpackArgs(fnname string, args starlark.Tuple, kwargs []starlark.Tuple, pairs ...any) error {
	nparams := len(pairs) / 2
	if len(args) > nparams {
		return fmt.Errorf("%s: got %d arguments, want at most %d", fnname, len(args), nparams)
	}
	var small [16]bool // keeps the common case free of allocation
	defined := small[:]
	if nparams > len(small) {
		defined = make([]bool, nparams)
	}

	for i, arg := range args {
		defined[i] = true
		name, skipNone := paramName(pairs[2*i])
		if _, isNone := arg.(starlark.NoneType); isNone && skipNone {
			continue
		}
		if err := starlark.UnpackArg(arg, pairs[2*i+1]); err != nil {
			return &ArgError{Func: fnname, Param: name, Err: err}
		}
	}

kwargs:
	for _, kv := range kwargs {
		name, arg := string(kv[0].(starlark.String)), kv[1]
		for i := range nparams {
			pname, skipNone := paramName(pairs[2*i])
			if pname != name {
				continue
			}
			if defined[i] {
				return fmt.Errorf("%s: got multiple values for keyword argument %s", fnname, kv[0])
			}
			defined[i] = true
			if _, isNone := arg.(starlark.NoneType); isNone && skipNone {
				continue kwargs
			}
			if err := starlark.UnpackArg(arg, pairs[2*i+1]); err != nil {
				return &ArgError{Func: fnname, Param: name, Err: err}
			}
			continue kwargs
		}
		err := fmt.Errorf("%s: unexpected keyword argument %s", fnname, kv[0])
		names := make([]string, nparams)
		for i := range names {
			names[i], _ = paramName(pairs[2*i])
		}
		if n := nearest(name, names); n != "" {
			err = fmt.Errorf("%v (did you mean %s?)", err, n)
		}
		return err
	}

	for i := range nparams {
		name := pairs[2*i].(string)
		if strings.HasSuffix(name, "?") {
			break // this one and all later ones are optional
		}
		if !defined[i] {
			return fmt.Errorf("%s: missing argument for %s", fnname, name)
		}
	}
	return nil
}

// paramName splits a parameter of UnpackArgs ("url", "timeout?", "body??")
// into its name and whether None counts as absent.
func paramName(x any) (name string, skipNone bool) {
	name = x.(string)
	if n, ok := strings.CutSuffix(name, "??"); ok {
		return n, true
	}
	return strings.TrimSuffix(name, "?"), false
}

// An ArgError reports an argument that a builtin cannot use:
// `http.get: for parameter timeout: got int, want string`. UnpackArgs returns
// one for a value that does not unpack; builtins return one for a value they
// refuse after unpacking, so that every such error names the builtin and the
// parameter the same way.
type ArgError struct {
	Func  string // the builtin, e.g. "http.get"
	Param string // the parameter, e.g. "timeout"
	Err   error  // what is wrong with the value
}

// Error implements error.
func (e *ArgError) Error() string {
	return e.Func + ": for parameter " + e.Param + ": " + e.Err.Error()
}

// Unwrap returns what is wrong with the value.
func (e *ArgError) Unwrap() error { return e.Err }

// NoArgs is the Args of a step that takes no arguments: it refuses any and
// journals null.
func NoArgs(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
	return nil, UnpackArgs(b.Name(), args, kwargs)
}

// nearest returns the candidate closest to x by edit distance, ignoring case
// and underscores, or "" if none is within half the length of x. It is the
// suggestion rule of starlark-go (go.starlark.net/internal/spell).
func nearest(x string, candidates []string) string {
	fold := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' {
				return -1
			}
			return unicode.ToLower(r)
		}, s)
	}
	x = fold(x)
	var best string
	bestD := (len(x) + 1) / 2
	for _, c := range candidates {
		if d := levenshtein(x, fold(c), bestD); d < bestD {
			bestD, best = d, c
		}
	}
	return best
}

// levenshtein returns the edit distance between the byte strings x and y, or
// some value above limit once the distance is known to exceed it.
func levenshtein(x, y string, limit int) int {
	if len(x) > len(y) {
		x, y = y, x
	}
	for i := 0; i < len(x); i++ { // drop the common prefix
		if x[i] != y[i] {
			x, y = x[i:], y[i:]
			break
		}
	}
	if x == "" {
		return len(y)
	}
	if d := len(y) - len(x); d > limit {
		return d
	}
	row := make([]int, len(y)+1)
	for i := range row {
		row[i] = i
	}
	for i := 1; i <= len(x); i++ {
		row[0] = i
		best, prev := i, i-1
		for j := 1; j <= len(y); j++ {
			sub := prev
			if x[i-1] != y[j-1] {
				sub++
			}
			k := min(sub, row[j-1]+1, row[j]+1)
			prev, row[j] = row[j], k
			best = min(best, k)
		}
		if best > limit {
			return best
		}
	}
	return row[len(y)]
}
