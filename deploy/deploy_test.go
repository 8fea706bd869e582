package deploy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/script"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
)

// newDeployer returns a deployer on b whose scripts see test.echo(x).
func newDeployer(t *testing.T, b *bus.Bus) *Deployer {
	t.Helper()
	reg := builtins.NewRegistry()
	reg.MustRegister(builtinstest.Echo("test.echo"))
	return NewDeployer(Options{Bus: b, Store: NewStore(b), Compiler: script.NewCompiler(reg), Registry: reg})
}

func bundle(name string, files map[string]string) api.DeployRequest {
	return api.DeployRequest{Script: api.Script{Name: name, Main: "main.star", Files: files}, By: "test"}
}

const greetV1 = "def main(input):\n    return {\"v\": 1, \"x\": test.echo(input)}\n"

// TestDeployRefusesBrokenBundles: every problem of a bundle is listed, and the
// live version stays.
func TestDeployRefusesBrokenBundles(t *testing.T) {
	n := newDeployer(t, bustest.Open(t, bus.Options{}))
	ctx := context.Background()
	if _, err := n.Deploy(ctx, bundle("b", map[string]string{"main.star": greetV1})); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"syntax and unknown name", map[string]string{"main.star": "def main(input):\n    return nope(\n", "lib.star": "x = undefined_thing\n"},
			[]string{"main.star:3:1: got outdent", "lib.star:1:5: undefined: undefined_thing"}},
		{"unknown module", map[string]string{"main.star": "load(\"util.star\", \"f\")\ndef main(input):\n    return f()\n"},
			[]string{`main.star:1:1: load("util.star"): the bundle has no file util.star`}},
		{"load cycle", map[string]string{"main.star": "load(\"a.star\", \"a\")\ndef main(input):\n    return a\n",
			"a.star": "load(\"b.star\", \"b\")\na = b\n", "b.star": "load(\"a.star\", \"a\")\nb = a\n"},
			[]string{"load cycle: a.star → b.star → a.star"}},
		{"no main", map[string]string{"main.star": "def mian(input):\n    return 1\n"},
			[]string{"main.star: no main function"}},
		{"unknown builtin", map[string]string{"main.star": "def main(input):\n    return test.ecko(1)\n"},
			[]string{`main.star:2:17: test has no builtin "ecko"; did you mean test.echo?`}},
		{"missing main file", map[string]string{"other.star": "x = 1\n"},
			[]string{`no main file "main.star"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := n.Deploy(ctx, bundle("b", tt.files))
			var ce *api.CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a api.CompileError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.Join(ce.Errors, "\n"), w) {
					t.Errorf("errors lack %q:\n%s", w, strings.Join(ce.Errors, "\n"))
				}
			}
		})
	}
	if _, err := n.Deploy(ctx, bundle("bad name!", map[string]string{"main.star": greetV1})); !errors.Is(err, api.ErrBadInput) {
		t.Fatalf("bad name: %v", err)
	}
	if hist, _ := n.History(ctx, "b"); len(hist) != 1 {
		t.Fatalf("a refused deploy changed the history: %+v", hist)
	}
	// A bundle whose files load each other deploys.
	d, err := n.Deploy(ctx, bundle("b", map[string]string{
		"main.star":     "load(\"lib/util.star\", \"twice\")\ndef main(input):\n    return twice(test.echo(input))\n",
		"lib/util.star": "def twice(x):\n    return [x, x]\n"}))
	if err != nil || d.Version != 2 {
		t.Fatalf("bundle with load: %+v %v", d, err)
	}
}

// TestDeployCheckKnowsLocalNames: a local name that shadows a module (a loop
// variable, a parameter, a comprehension variable, an assignment) is not
// checked as the module.
func TestDeployCheckKnowsLocalNames(t *testing.T) {
	n := newDeployer(t, bustest.Open(t, bus.Options{}))
	for name, body := range map[string]string{
		"parameter":     "def f(x, test = None):\n    return test.anything\ndef main(input):\n    return f(1)\n",
		"varargs":       "def f(*test):\n    return test.anything\ndef main(input):\n    return f(1)\n",
		"comprehension": "def main(input):\n    return [test.whatever for test in input]\n",
		"loop":          "def main(input):\n    for test in input:\n        return test.other\n",
		"lambda":        "def main(input):\n    return (lambda test: test.again)(input)\n",
		"tuple assign":  "def main(input):\n    test, x = input[0], 1\n    return test.field\n",
	} {
		if _, err := n.Deploy(context.Background(), bundle("locals", map[string]string{"main.star": body})); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestWatchBringsDeploysOfOtherNodes: a deployer watching the pointers sees a
// version deployed through another one, compiled, without a read of its own.
func TestWatchBringsDeploysOfOtherNodes(t *testing.T) {
	b := bustest.Open(t, bus.Options{})
	one, two := newDeployer(t, b), newDeployer(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go two.Watch(ctx)
	for v := 1; v <= 2; v++ {
		if _, err := one.Deploy(ctx, bundle("w", map[string]string{"main.star": strings.Replace(greetV1, "1", string(rune('0'+v)), 1)})); err != nil {
			t.Fatal(err)
		}
		bustest.PollUntil(t, func() bool { ls := two.Current("w"); return ls != nil && ls.Deployment.Version == v })
	}
	src, err := two.ScriptSource(ctx, "w")
	if err != nil || !strings.Contains(src.Sources["main.star"], `"v": 2`) {
		t.Fatalf("source: %+v %v", src, err)
	}
	if _, err := two.Live(ctx, "nope"); !errors.Is(err, api.ErrUnknownScript) {
		t.Fatalf("unknown script: %v", err)
	}
}
