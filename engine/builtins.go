package engine

import (
	"fmt"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// engineBuiltins are globals the engine itself provides, because they need
// more than a step: patched (a journaled marker) and parallel (branches).
var engineBuiltins = map[string]*starlark.Builtin{
	"patched": starlark.NewBuiltin("patched", builtinPatched),
}

// patcher is implemented by runtimes that can answer patched().
type patcher interface {
	patched(thread *starlark.Thread, id string) (bool, error)
}

// builtinPatched implements patched(change_id): True for runs that reach this
// point with the new code, False for runs that passed it before the change
// (their journal holds no marker). The decision is journaled, so a run sees the
// same answer for its whole life.
func builtinPatched(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var id string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "change_id", &id); err != nil {
		return nil, err
	}
	if !bus.ValidToken(id) || len(id) > 128 {
		return nil, fmt.Errorf("patched: change_id %q must be 1 to 128 characters with no dots, spaces or wildcards (e.g. \"use-v2-prices\")", id)
	}
	rt, err := builtins.RuntimeOf(thread)
	if err != nil {
		return nil, err
	}
	p, ok := rt.(patcher)
	if !ok {
		return nil, fmt.Errorf("patched: not available in this runtime")
	}
	v, err := p.patched(thread, id)
	return starlark.Bool(v), err
}
