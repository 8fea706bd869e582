package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/starlark/builtins"
)

// testRegistry holds steps that need no network: test.echo(x) returns x,
// test.count() counts executions, test.big(n) returns n bytes, test.flaky()
// fails retryably twice then succeeds.
func testRegistry(execs *atomic.Int64) *builtins.Registry {
	r := builtins.NewRegistry()
	r.MustRegister(&builtins.Step{
		Name: "test.echo",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var x starlark.Value
			if err := starlark.UnpackArgs(b.Name(), args, kwargs, "x", &x); err != nil {
				return nil, err
			}
			return builtins.ToJSON(x)
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) {
			execs.Add(1)
			return args, nil
		},
	})
	r.MustRegister(&builtins.Step{
		Name: "test.big",
		Args: func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
			var n int
			err := starlark.UnpackArgs(b.Name(), args, kwargs, "n", &n)
			return n, err
		},
		Exec: func(_ context.Context, _ builtins.Env, args json.RawMessage) (any, error) {
			var n int
			json.Unmarshal(args, &n)
			return strings.Repeat("x", n), nil
		},
	})
	var flaky atomic.Int64
	r.MustRegister(&builtins.Step{
		Name:  "test.flaky",
		Retry: builtins.RetryPolicy{MaxAttempts: 3, Initial: time.Millisecond},
		Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) {
			if flaky.Add(1)%3 != 0 {
				return nil, builtins.Retryable(builtins.CodeTransport, "test.flaky: connection refused")
			}
			return "ok", nil
		},
	})
	r.MustRegister(&builtins.Step{
		Name:  "test.down",
		Retry: builtins.RetryPolicy{MaxAttempts: 2, Initial: time.Millisecond},
		Exec: func(context.Context, builtins.Env, json.RawMessage) (any, error) {
			return nil, builtins.Retryable(builtins.CodeTransport, "test.down: dial tcp 127.0.0.1:1: connection refused")
		},
	})
	return r
}

func newTestNode(t testing.TB, opts Options) *Node {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Name == "" {
		opts.Name = "n1"
	}
	if os.Getenv("DROVER_TEST_RUNLOG") != "" {
		opts.RunLog = true // run logs for clustered test nodes too (standalone ones have them)
	}
	n, err := NewNode(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		grace, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		n.Close(grace)
	})
	return n
}

func testScript(src string) api.Script {
	return api.Script{Name: "t", Main: "t.star", Files: map[string]string{"t.star": src}}
}

func runScript(t *testing.T, n *Node, src, input string) *api.Run {
	t.Helper()
	return runRequest(t, n, api.StartRequest{Script: testScript(src), Input: json.RawMessage(input)})
}

// runRequest starts req on n and waits for the run's end.
func runRequest(t *testing.T, n *Node, req api.StartRequest) *api.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := n.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	end, err := n.Wait(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return end
}

func TestRunStepsColocatedAndDispatched(t *testing.T) {
	for _, dispatch := range []bool{false, true} {
		t.Run(map[bool]string{false: "colocated", true: "dispatched"}[dispatch], func(t *testing.T) {
			var execs atomic.Int64
			n := newTestNode(t, Options{Registry: testRegistry(&execs), AlwaysDispatch: dispatch})
			end := runScript(t, n, `
def main(input):
    a = test.echo({"b": 2, "a": [1, "x"]})
    b = test.echo(input["n"] + 1)
    return {"a": a, "b": b, "flaky": test.flaky()}
`, `{"n": 41}`)
			if end.Status != api.StatusCompleted || string(end.Result) != `{"a":{"a":[1,"x"],"b":2},"b":42,"flaky":"ok"}` {
				t.Fatalf("run = %+v, result %s, err %+v", end, end.Result, end.Error)
			}
			if execs.Load() != 2 || end.Steps != 3 {
				t.Fatalf("execs = %d, steps = %d", execs.Load(), end.Steps)
			}
			d, err := n.Get(context.Background(), end.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.Steps) != 3 || d.Steps[0].ID != "1" || d.Steps[2].Builtin != "test.flaky" || d.Steps[2].Attempts != 3 || d.Steps[1].Outcome != "ok" || d.Steps[0].Node != "n1" {
				t.Fatalf("steps = %+v", d.Steps)
			}
			if !strings.HasSuffix(d.Steps[1].Pos, "t.star:4:18") || string(d.Input) != `{"n":41}` || d.Expires == nil || d.Expires.Sub(d.Started) != 30*24*time.Hour {
				t.Fatalf("pos %q input %s", d.Steps[1].Pos, d.Input)
			}
		})
	}
}

// TestStartRefusesScriptWithoutMain: a script whose main file defines no main
// is refused before anything is journaled, in-process and over HTTP, as a
// deploy refuses it.
func TestStartRefusesScriptWithoutMain(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	_, err := n.Start(ctx, api.StartRequest{Script: testScript("x = test.echo(1)\n")})
	var ce *api.CompileError
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || !strings.Contains(ce.Errors[0], "t.star: no main function") {
		t.Fatalf("Start: %v, want a compile error saying there is no main", err)
	}
	srv := httptest.NewServer(n.Handler())
	defer srv.Close()
	body := `{"script": {"name": "t", "main": "t.star", "files": {"t.star": "x = 1\n"}}}`
	resp, err := http.Post(srv.URL+"/v1/runs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var eb api.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || eb.Error.Code != api.CodeCompileError || len(eb.Error.Errors) != 1 {
		t.Fatalf("POST /v1/runs: %d %+v", resp.StatusCode, eb)
	}
	if runs, err := n.List(ctx, api.ListFilter{}); err != nil || len(runs) != 0 || execs.Load() != 0 {
		t.Fatalf("runs started: %v %v, executions %d", runs, err, execs.Load())
	}
}

func TestRunErrors(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), MaxExecSteps: 100000, PayloadLimit: 1000})
	tests := []struct {
		name, src string
		code      string
		want      []string
	}{
		{"fail", "def main(input):\n    fail('card declined')\n", "", []string{"card declined", "t.star:2:9: in main"}},
		{"main not a function", "main = 1\n", "no_main", []string{"t.star has no main function"}},
		{"not json", "def main(input):\n    return {'f': main}\n", "result_not_json", []string{`the return value["f"] is a function`}},
		{"runaway", "def main(input):\n    while True:\n        pass\n", "exec_limit", []string{"ran more than 100000 Starlark steps"}},
		{"payload", "def main(input):\n    return test.big(5000)\n", builtins.CodePayloadTooLarge, []string{"payload too large: test.big returned 5002 bytes", "step 1"}},
		{"wrong arg", "def main(input):\n    test.echo(1, 2)\n", "", []string{"test.echo: got 2 arguments, want at most 1", "t.star:2:14: in main"}},
		{"unknown member", "def main(input):\n    test.nope(1)\n", "", []string{"has no .nope field or method"}},
		{"retries exhausted", "def main(input):\n    test.down()\n", builtins.CodeTransport, []string{"test.down (step 1) failed after 2 attempts: test.down: dial tcp 127.0.0.1:1: connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end := runScript(t, n, tt.src, "")
			if end.Status != api.StatusFailed || end.Error == nil {
				t.Fatalf("status %s error %+v", end.Status, end.Error)
			}
			for _, w := range tt.want {
				if !strings.Contains(end.Error.Message+"\n"+end.Error.Backtrace, w) {
					t.Errorf("error %q\nbacktrace %s\nwant %q", end.Error.Message, end.Error.Backtrace, w)
				}
			}
			if end.Error.Code != tt.code {
				t.Errorf("code = %q, want %q", end.Error.Code, tt.code)
			}
		})
	}
	t.Run("payload keeps journal", func(t *testing.T) {
		end := runScript(t, n, "def main(input):\n    test.echo('kept')\n    return test.big(5000)\n", "")
		d, err := n.Get(context.Background(), end.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Steps) != 2 || string(d.Steps[0].Value) != `"kept"` || d.Steps[1].Error == nil || d.Steps[1].Error.Code != builtins.CodePayloadTooLarge {
			t.Fatalf("steps %+v", d.Steps)
		}
	})
}

func TestStartRefusals(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs)})
	ctx := context.Background()
	_, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    x = \n"), Input: nil})
	var ce *api.CompileError
	if !errors.As(err, &ce) || !strings.Contains(ce.Errors[0], "t.star:2:9") {
		t.Fatalf("syntax error: %v", err)
	}
	_, err = n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    return http.get('x')\n")})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "t.star:2:12: undefined: http") {
		t.Fatalf("unknown module: %v", err)
	}
	_, err = n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    pass\n"), Input: json.RawMessage(`{"a":`)})
	if !errors.Is(err, api.ErrBadInput) || !strings.Contains(err.Error(), "input is not JSON") {
		t.Fatalf("bad input: %v", err)
	}
	if _, err := n.Get(ctx, "01ZZZZZZZZZZZZZZZZZZZZZZZZ"); !errors.Is(err, api.ErrUnknownRun) {
		t.Fatalf("unknown run: %v", err)
	}
	if _, err := n.Wait(ctx, "no.such"); !errors.Is(err, api.ErrUnknownRun) {
		t.Fatalf("unknown run: %v", err)
	}
}

func TestListFilters(t *testing.T) {
	var execs atomic.Int64
	n := newTestNode(t, Options{Registry: testRegistry(&execs), Placement: placement.Local{}})
	ctx := context.Background()
	for _, c := range []string{"acme", "globex", "acme"} {
		r, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    return 1\n"), Attrs: map[string]string{"customer": c}})
		if err != nil {
			t.Fatal(err)
		}
		n.Wait(ctx, r.ID)
	}
	failed := runScript(t, n, "def main(input):\n    fail('x')\n", "")
	runs, err := n.List(ctx, api.ListFilter{Attrs: map[string]string{"customer": "acme"}})
	if err != nil || len(runs) != 2 {
		t.Fatalf("attr filter: %d %v", len(runs), err)
	}
	runs, _ = n.List(ctx, api.ListFilter{Status: api.StatusFailed})
	if len(runs) != 1 || runs[0].ID != failed.ID {
		t.Fatalf("status filter: %+v", runs)
	}
	runs, _ = n.List(ctx, api.ListFilter{Since: time.Hour})
	if len(runs) != 4 || runs[0].ID != failed.ID {
		t.Fatalf("since: %d", len(runs))
	}
	runs, _ = n.List(ctx, api.ListFilter{Script: "other"})
	if len(runs) != 0 {
		t.Fatalf("script filter: %d", len(runs))
	}
}

// sharedNodes starts three nodes on one embedded NATS server, each declaring
// resources, with the test steps and a durable sleep.
func sharedNodes(t *testing.T, resources ...string) []*Node {
	t.Helper()
	var execs atomic.Int64
	reg := testRegistry(&execs)
	reg.MustRegister(sleepStep())
	first := newTestNode(t, Options{Name: "n1", Listen: "127.0.0.1:-1", Registry: reg, Resources: resources, NoRecovery: true})
	nodes := []*Node{first}
	for _, name := range []string{"n2", "n3"} {
		nodes = append(nodes, newTestNode(t, Options{Name: name, NATSURL: first.NATSURL(), Registry: reg, Resources: resources, NoRecovery: true}))
	}
	return nodes
}
