// Package all registers every builtin that ships with Drover into
// builtins.Default. Import it for its side effect:
//
//	import _ "github.com/droverhq/drover/starlark/builtins/all"
package all

import (
	_ "github.com/droverhq/drover/starlark/builtins/stdlib" // Script API v0
)
