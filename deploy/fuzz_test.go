package deploy

import (
	"errors"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
)

// FuzzBundle: any bundle uploaded to deploy (POST /v1/scripts/NAME: a main
// file and its files' sources) is compiled and linted to a program or to an
// *api.CompileError listing each problem, never a panic or another error.
func FuzzBundle(f *testing.F) {
	f.Add("main.star", "main.star", "def main(input):\n    return test.echo(input)\n", "lib.star", "X = 1\n")
	f.Add("main.star", "main.star", "load(\"lib.star\", \"X\")\ndef main(input):\n    return X\n", "lib.star", "load(\"main.star\", \"Y\")\nX = 1\n")
	f.Add("main.star", "main.star", "def main(input):\n    return http.nope()\n", "", "")
	f.Add("", "a.star", "def main(:\n", "b.star", "\x00\xff")
	f.Add("main.star", "other.star", "x = 1\n", "main.star", "load(\"\", \"a\")\n")
	f.Add("main.star", "main.star", "def main(input):\n    for i in range(10):\n        load = 1\n", "main.star", "")
	reg := builtins.NewRegistry()
	reg.MustRegister(builtinstest.Echo("test.echo"))
	globals := script.Globals(reg)
	f.Fuzz(func(t *testing.T, main, name1, src1, name2, src2 string) {
		s := api.Script{Name: "fuzz", Main: main, Files: map[string]string{name1: src1, name2: src2}}
		_, err := script.Compile(s, globals)
		var ce *api.CompileError
		if err != nil && (!errors.As(err, &ce) || len(ce.Errors) == 0) {
			t.Fatalf("Compile(%+v): %T %v, want a program or a CompileError listing its problems", s, err, err)
		}
		lint(s, globals)
	})
}
