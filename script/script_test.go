package script

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// idRuntime answers every step with its own id, recording the ids.
type idRuntime struct {
	mu  sync.Mutex
	ids []string
}

func (rt *idRuntime) CallStep(thread *starlark.Thread, step *builtins.Step, _ any) (json.RawMessage, error) {
	id := NextStepID(thread)
	rt.mu.Lock()
	rt.ids = append(rt.ids, id)
	rt.mu.Unlock()
	return json.Marshal(id)
}
func (rt *idRuntime) Tag(*starlark.Thread, map[string]string) error { return nil }
func (rt *idRuntime) Logger(*starlark.Thread) *zerolog.Logger {
	l := zerolog.Nop()
	return &l
}

func registry() *builtins.Registry {
	r := builtins.NewRegistry()
	r.MustRegister(&builtins.Step{Name: "t.step", Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) { return nil, nil }})
	return r
}

func bundle(files map[string]string) api.Script {
	return api.Script{Name: "t", Main: "t.star", Files: files}
}

func TestCompileReportsEveryProblem(t *testing.T) {
	g := Globals(registry())
	tests := []struct {
		name  string
		s     api.Script
		wants []string
	}{
		{"no main file", api.Script{Name: "t", Main: "x.star", Files: map[string]string{"t.star": "def main(input):\n    pass\n"}}, []string{`the script has no main file "x.star"`}},
		{"no main", bundle(map[string]string{"t.star": "x = 1\n"}), []string{"t.star: no main function"}},
		{"no main and an undefined name", bundle(map[string]string{"t.star": "x = nope\n"}), []string{"t.star: no main function", "t.star:1:5: undefined: nope"}},
		{"every file", bundle(map[string]string{"t.star": "def main(input):\n    return u\n", "lib.star": "def f(:\n"}), []string{"lib.star:1:8: got ':', want ')'", "t.star:2:12: undefined: u"}},
		{"main assigned", bundle(map[string]string{"t.star": "def f(input):\n    pass\nmain = f\n"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.s, g)
			var ce *api.CompileError
			if tt.wants == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.As(err, &ce) || len(ce.Errors) != len(tt.wants) {
				t.Fatalf("err = %v, want %d problems", err, len(tt.wants))
			}
			for i, w := range tt.wants {
				if !strings.Contains(ce.Errors[i], w) {
					t.Errorf("problem %d = %q, want %q", i, ce.Errors[i], w)
				}
			}
		})
	}
}

// TestRunawayLoopPointsAtTheLoop: whatever instruction of the loop the step
// limit falls on, the error says exec_limit (from the limit, not its text)
// and the backtrace points into the loop, never at the def line.
func TestRunawayLoopPointsAtTheLoop(t *testing.T) {
	prog, err := Compile(bundle(map[string]string{"t.star": "def main(input):\n    n = 0\n    while True:\n        n += 1\n"}), Globals(registry()))
	if err != nil {
		t.Fatal(err)
	}
	for limit := uint64(1000); limit < 1016; limit++ {
		_, re := Run(context.Background(), prog, &idRuntime{}, json.RawMessage("null"), Options{MaxSteps: limit, LimitHint: "raise it with --max-exec-steps"})
		if re == nil || re.Code != api.CodeExecLimit {
			t.Fatalf("limit %d: %+v, want exec_limit", limit, re)
		}
		if !strings.Contains(re.Message, fmt.Sprintf("more than %d Starlark steps", limit)) || !strings.Contains(re.Message, "raise it with --max-exec-steps") {
			t.Errorf("limit %d: message %q", limit, re.Message)
		}
		if strings.Contains(re.Backtrace, "t.star:1:1") || !(strings.Contains(re.Backtrace, "t.star:3:") || strings.Contains(re.Backtrace, "t.star:4:")) {
			t.Errorf("limit %d: backtrace does not point into the loop:\n%s", limit, re.Backtrace)
		}
	}
	// A script that says the same words is not a runaway loop.
	prog, _ = Compile(bundle(map[string]string{"t.star": "def main(input):\n    fail('ran more than 5 Starlark steps (a runaway loop?)')\n"}), Globals(registry()))
	if _, re := Run(context.Background(), prog, &idRuntime{}, nil, Options{}); re == nil || re.Code != "" {
		t.Fatalf("fail() with the limit's words: %+v, want no code", re)
	}
}

func TestStepIDs(t *testing.T) {
	prog, err := Compile(bundle(map[string]string{"t.star": `
def branch(k):
    t.step()
    return [t.step() for _ in range(k)]

def main(input):
    a = t.step()
    b = parallel([lambda: branch(1), lambda: branch(2)])
    return [a, b, t.step()]
`}), Globals(registry()))
	if err != nil {
		t.Fatal(err)
	}
	rt := &idRuntime{}
	out, re := Run(context.Background(), prog, rt, nil, Options{})
	if re != nil {
		t.Fatal(re)
	}
	if string(out) != `["1",[["2.1.2"],["2.2.2","2.2.3"]],"3"]` {
		t.Errorf("result %s", out)
	}
	slices.Sort(rt.ids)
	if want := []string{"1", "2.1.1", "2.1.2", "2.2.1", "2.2.2", "2.2.3", "3"}; !slices.Equal(rt.ids, want) {
		t.Errorf("ids %v, want %v", rt.ids, want)
	}
}

func TestCompilerCaches(t *testing.T) {
	c := NewCompiler(registry())
	s := bundle(map[string]string{"t.star": "def main(input):\n    return t.step()\n"})
	p1, err := c.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	if p2, _ := c.Compile(s); p2 != p1 || c.Cached(s.Hash()) != p1 {
		t.Fatal("the same version compiled twice")
	}
	if c.Cached("nope") != nil {
		t.Fatal("a version never compiled is cached")
	}
}
