package builtins

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"
)

// nullRuntime answers every step at once with null: what remains is the
// Starlark-side cost of a builtin call (argument parsing, canonical JSON,
// result decoding).
type nullRuntime struct{}

func (nullRuntime) CallStep(_ *starlark.Thread, s *Step, a any) (json.RawMessage, error) {
	if _, err := Canonical(a); err != nil {
		return nil, err
	}
	return json.RawMessage(`{"status":200}`), nil
}
func (nullRuntime) Tag(*starlark.Thread, map[string]string) error { return nil }
func (nullRuntime) Logger(*starlark.Thread) *zerolog.Logger       { l := zerolog.Nop(); return &l }

// BenchmarkBuiltinCallOverhead is the Starlark-only cost of one step builtin
// call with two arguments, without journaling or execution.
func BenchmarkBuiltinCallOverhead(b *testing.B) {
	r := NewRegistry()
	r.MustRegister(&Step{
		Name: "b.call",
		Args: func(bi *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var url string
			var timeout Duration
			if err := UnpackArgs(bi.Name(), args, kwargs, "url", &url, "timeout?", &timeout); err != nil {
				return nil, err
			}
			return map[string]any{"url": url, "timeout": timeout.String()}, nil
		},
		Exec: func(context.Context, Env, json.RawMessage) (any, error) { return nil, nil },
	})
	thread := &starlark.Thread{}
	SetRuntime(thread, nullRuntime{})
	_, prog, err := starlark.SourceProgram("b.star", "def f(n):\n    for i in range(n):\n        b.call('https://x/y', timeout = '2s')\n", r.Predeclared().Has)
	if err != nil {
		b.Fatal(err)
	}
	g, err := prog.Init(thread, r.Predeclared())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := starlark.Call(thread, g["f"], starlark.Tuple{starlark.MakeInt(b.N)}, nil); err != nil {
		b.Fatal(err)
	}
}
