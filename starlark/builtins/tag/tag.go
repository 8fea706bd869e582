// Package tag implements the inline tag builtin of Script API v0:
//
//	tag(**attrs) -> None
//
// It records search attributes of the run (builtins.Runtime.Tag), such as
// tag(customer="acme", attempt=3). Names are plain identifiers of at most
// MaxNameLen bytes; values are strings, ints or bools, stored as strings
// ("3", "true") of at most MaxValueLen bytes. It runs in the script's thread
// and is not journaled (the engine records a tag as a run event).
//
// Its init registers the builtin into builtins.Default; Register adds it to
// another registry.
package tag

import (
	"fmt"
	"regexp"

	"github.com/droverhq/drover/starlark/builtins"
	"go.starlark.net/starlark"
)

// Limits of tag attributes.
const (
	MaxNameLen  = 64  // longest attribute name, in bytes
	MaxValueLen = 256 // longest attribute value, in bytes
)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func init() { Register(builtins.Default) }

// Register adds tag to r. Like Registry.MustRegisterInline it panics if the
// name is taken.
func Register(r *builtins.Registry) {
	r.MustRegisterInline("tag", starlark.NewBuiltin("tag", tag))
}

// tag implements tag(**attrs): it records search attributes of the run.
// Values may be strings, ints or bools and are stored as strings ("42", "true").
func tag(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf(`%s: got %d positional arguments, want keyword arguments only, e.g. tag(customer="acme")`, b.Name(), len(args))
	}
	if len(kwargs) == 0 {
		return nil, fmt.Errorf(`%s: want at least one attribute, e.g. tag(customer="acme")`, b.Name())
	}
	attrs := make(map[string]string, len(kwargs))
	for _, kv := range kwargs {
		name := string(kv[0].(starlark.String))
		if len(name) > MaxNameLen {
			return nil, fmt.Errorf("%s: attribute name %s is %d bytes long, over the limit of %d", b.Name(), name, len(name), MaxNameLen)
		}
		if !identifier.MatchString(name) {
			return nil, fmt.Errorf("%s: attribute name %s is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)", b.Name(), name)
		}
		var s string
		switch v := kv[1].(type) {
		case starlark.String:
			s = string(v)
		case starlark.Int:
			s = v.String()
		case starlark.Bool:
			s = "false"
			if v {
				s = "true"
			}
		default:
			return nil, fmt.Errorf("%s: for attribute %s: got %s, want string, int or bool", b.Name(), name, v.Type())
		}
		if len(s) > MaxValueLen {
			return nil, fmt.Errorf("%s: for attribute %s: the value is %d bytes long, over the limit of %d", b.Name(), name, len(s), MaxValueLen)
		}
		attrs[name] = s
	}
	rt, err := builtins.RuntimeOf(thread)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if err := rt.Tag(thread, attrs); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}
