package builtinstest_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"go.starlark.net/starlark"
)

// Testing a new builtin, greet.hello(name), without an engine: the call goes
// through Args, canonical JSON, Exec and the result's conversion back, as in
// a run, and the Runtime records it.
func Example() {
	r := builtins.NewRegistry()
	r.MustRegister(&builtins.Step{
		Name: "greet.hello",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var name string
			if err := builtins.UnpackArgs(b.Name(), args, kwargs, "name", &name); err != nil {
				return nil, err
			}
			return map[string]any{"name": name}, nil
		},
		Exec: func(ctx context.Context, env builtins.Env, args json.RawMessage) (any, error) {
			var a struct{ Name string }
			err := json.Unmarshal(args, &a)
			return "hello, " + a.Name, err
		},
	})

	rt := builtinstest.NewRuntime()
	v, err := rt.Eval(r, `greet.hello("ada")`, nil)
	fmt.Println(v, err)
	c := rt.Calls()[0]
	fmt.Println(c.Name, c.Args, c.Result)

	_, err = rt.Eval(r, `greet.hello(name=1)`, nil)
	msg, pos, _ := builtinstest.SplitError(err)
	fmt.Println(pos, msg)
	// Output:
	// "hello, ada" <nil>
	// greet.hello {"name":"ada"} "hello, ada"
	// test.star:1:12 greet.hello: for parameter name: got int, want string
}
