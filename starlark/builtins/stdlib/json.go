package stdlib

import (
	"github.com/droverhq/drover/starlark/builtins"
	libjson "go.starlark.net/lib/json"
)

// registerJSON adds go.starlark.net/lib/json as the inline module json
// (encode, encode_indent, decode, indent). Its encode already writes dict keys
// and struct fields in sorted order, as the canonical JSON of the Script API
// requires, so it is registered unwrapped; a Response encodes as its journaled
// result through its MarshalJSON.
func registerJSON(r *builtins.Registry) {
	r.MustRegisterInline("json", libjson.Module)
}
