// Package json provides the inline json module of Script API v0, which is
// go.starlark.net/lib/json:
//
//	json.encode(x) -> string
//	json.encode_indent(x, *, prefix="", indent="\t") -> string
//	json.decode(s[, default]) -> value
//	json.indent(s, *, prefix="", indent="\t") -> string
//
// Its encode already writes dict keys and struct fields in sorted order, as the
// canonical JSON of the Script API requires, so it is registered unwrapped; a
// value that knows its own JSON form (an http.response) encodes as that,
// through its MarshalJSON.
//
// The package is named after the script module; code that also needs
// encoding/json imports one of them under another name.
//
// Its init registers the module into builtins.Default; Register adds it to
// another registry.
package json

import (
	"github.com/droverhq/drover/starlark/builtins"
	libjson "go.starlark.net/lib/json"
)

func init() { Register(builtins.Default) }

// Register adds the inline module json to r. Like Registry.MustRegisterInline
// it panics if the name is taken.
func Register(r *builtins.Registry) {
	r.MustRegisterInline("json", libjson.Module)
}
