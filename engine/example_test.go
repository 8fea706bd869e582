package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/engine"
	"github.com/droverhq/drover/starlark/builtins"
)

// An integration adds greet.hello(name) with a configured greeting, and a
// node runs a script calling it: the whole of it, in Go.
func Example_integration() {
	type greetConfig struct{ Greeting string }
	greet := builtins.Define("greet", "greets people", greetConfig{Greeting: "hello"},
		func(_ context.Context, c greetConfig) (*greetConfig, error) { return &c, nil })
	greet.Steps = []*builtins.Step{{Name: "greet.hello",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kw []starlark.Tuple) (any, error) {
			var name string
			err := builtins.UnpackArgs(b.Name(), args, kw, "name", &name)
			return name, err
		},
		Exec: func(_ context.Context, env builtins.Env, args json.RawMessage) (any, error) {
			c, err := builtins.Use[*greetConfig](env, "greet")
			if err != nil {
				return nil, err
			}
			var name string
			err = json.Unmarshal(args, &name)
			return c.Greeting + ", " + name, err
		}}}
	reg := builtins.Default.Clone()
	reg.MustRegisterIntegration(greet)

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	n, _ := engine.NewNode(context.Background(), engine.Options{Name: "n1", DataDir: dir, Registry: reg,
		Integrations: map[string]any{"greet": &greetConfig{Greeting: "bonjour"}}})
	defer n.Close(context.Background())
	src := `def main(input): return greet.hello(input)`
	r, _ := n.Start(context.Background(), api.StartRequest{Script: api.Script{Name: "g", Main: "g.star", Files: map[string]string{"g.star": src}}, Input: json.RawMessage(`"Ada"`)})
	end, _ := n.Wait(context.Background(), r.ID)
	fmt.Println(string(end.Result))
	// Output: "bonjour, Ada"
}
