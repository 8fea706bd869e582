package builtinstest

import (
	"context"
	"encoding/json"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/starlark/builtins"
)

// Echo returns a step called name that takes one argument, x, and returns
// it: the smallest step there is, for tests of what runs steps (the engine,
// replay, deploy checks) rather than of a builtin.
func Echo(name string) *builtins.Step {
	return &builtins.Step{
		Name: name,
		Doc:  "returns its argument",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var x starlark.Value
			if err := builtins.UnpackArgs(b.Name(), args, kwargs, "x", &x); err != nil {
				return nil, err
			}
			return builtins.ToJSON(x)
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) { return args, nil },
	}
}
