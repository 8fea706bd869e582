package builtinstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"go.starlark.net/starlark"
)

// observed is what a probe step saw of its context.
type observed struct {
	deadline time.Duration // time left when Exec started
	step     builtins.StepContext
}

// probeRegistry holds t.probe(x), which reports what Exec saw in seen and
// returns {"x": x}; t.fail(), which fails with a retryable transport error;
// and t.crash(), which fails with a plain error.
func probeRegistry(step builtins.Step, seen chan<- observed) *builtins.Registry {
	r := builtins.NewRegistry()
	step.Name = "t.probe"
	step.Args = func(b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (any, error) {
		var x starlark.Value
		if err := builtins.UnpackArgs(b.Name(), args, kwargs, "x", &x); err != nil {
			return nil, err
		}
		v, err := builtins.ToJSON(x)
		return map[string]any{"x": v}, err
	}
	step.Exec = func(ctx context.Context, env builtins.Env, args json.RawMessage) (any, error) {
		dl, _ := ctx.Deadline()
		seen <- observed{deadline: time.Until(dl), step: builtins.StepFrom(ctx)}
		return args, nil
	}
	r.MustRegister(&step)
	r.MustRegister(&builtins.Step{
		Name: "t.fail",
		Exec: func(ctx context.Context, env builtins.Env, args json.RawMessage) (any, error) {
			return nil, builtins.Retryable(builtins.CodeTransport, "t.fail: down")
		},
	})
	r.MustRegister(&builtins.Step{
		Name: "t.crash",
		Exec: func(ctx context.Context, env builtins.Env, args json.RawMessage) (any, error) {
			return nil, errors.New("t.crash: nil map")
		},
	})
	return r
}

func TestCallStep(t *testing.T) {
	tests := []struct {
		name         string
		step         builtins.Step
		wantDeadline time.Duration
	}{
		{"default", builtins.Step{}, builtinstest.StepTimeout},
		{"timeout", builtins.Step{Timeout: time.Minute}, time.Minute},
		{"deadline wins", builtins.Step{Timeout: time.Minute, Deadline: func(json.RawMessage) time.Duration { return time.Hour }}, time.Hour},
		{"no deadline of its own", builtins.Step{Timeout: time.Minute, Deadline: func(json.RawMessage) time.Duration { return 0 }}, time.Minute},
		{"local", builtins.Step{Local: true}, builtinstest.StepTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan observed, 2)
			r := probeRegistry(tt.step, seen)
			rt := builtinstest.NewRuntime()
			v, err := rt.Eval(r, `[t.probe({"b": [1, None], "a": "<&>"}), t.probe(x=2.5)]`, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := `[{"x": {"a": "<&>", "b": [1, None]}}, {"x": 2.5}]`; v.String() != want {
				t.Errorf("script got %s, want %s", v, want)
			}
			want := []builtinstest.Call{
				{Name: "t.probe", Step: "1", Local: tt.step.Local, Args: `{"x":{"a":"<&>","b":[1,null]}}`, Result: `{"x":{"a":"<&>","b":[1,null]}}`},
				{Name: "t.probe", Step: "2", Local: tt.step.Local, Args: `{"x":2.5}`, Result: `{"x":2.5}`},
			}
			if got := rt.Calls(); !reflect.DeepEqual(got, want) {
				t.Errorf("Calls()\n got %+v\nwant %+v", got, want)
			}
			for i := range want {
				o := <-seen
				if o.deadline > tt.wantDeadline || o.deadline < tt.wantDeadline-10*time.Second {
					t.Errorf("step %d had %s left, want about %s", i+1, o.deadline, tt.wantDeadline)
				}
				id := fmt.Sprint(i + 1)
				if wantSC := (builtins.StepContext{Run: "test", Step: id, Attempt: 1, Key: "test/" + id}); o.step != wantSC {
					t.Errorf("StepFrom = %+v, want %+v", o.step, wantSC)
				}
			}
		})
	}
}

func TestCallStepFails(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr *builtins.StepError
	}{
		{"step error is kept", `t.fail()`, &builtins.StepError{Code: builtins.CodeTransport, Message: "t.fail: down", Retryable: true}},
		{"other error is internal", `t.crash()`, &builtins.StepError{Code: builtins.CodeInternal, Message: "t.crash: nil map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := builtinstest.NewRuntime()
			_, err := rt.Run(probeRegistry(builtins.Step{}, nil), tt.src, nil)
			var se *builtins.StepError
			if !errors.As(err, &se) || *se != *tt.wantErr {
				t.Fatalf("error %v, want %+v", err, tt.wantErr)
			}
			calls := rt.Calls()
			if len(calls) != 1 || calls[0].Result != "" || calls[0].Err == nil || *calls[0].Err != *tt.wantErr {
				t.Errorf("Calls() = %+v, want one with Err %+v", calls, tt.wantErr)
			}
		})
	}
}

func TestLogsAndTags(t *testing.T) {
	rt := builtinstest.NewRuntime()
	if got := rt.Logs(); got != nil {
		t.Errorf("Logs() of a new runtime = %q, want none", got)
	}
	rt.Logger(nil).Debug().Int("n", 1).Msg("first")
	rt.Logger(nil).Error().Msg("second")
	want := []string{`{"level":"debug","n":1,"message":"first"}`, `{"level":"error","message":"second"}`}
	if got := rt.Logs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Logs() = %q, want %q", got, want)
	}

	if err := rt.Tag(nil, map[string]string{"a": "1", "b": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := rt.Tag(nil, map[string]string{"a": "3"}); err != nil {
		t.Fatal(err)
	}
	tags := rt.Tags()
	if want := map[string]string{"a": "3", "b": "2"}; !reflect.DeepEqual(tags, want) {
		t.Errorf("Tags() = %v, want %v", tags, want)
	}
	tags["c"] = "x"
	if _, ok := rt.Tags()["c"]; ok {
		t.Error("Tags() returned the runtime's own map")
	}
}

func TestEnv(t *testing.T) {
	ctx := context.Background()
	e := builtinstest.NewEnv()
	if e.Node() != builtinstest.Node || e.HTTPClient() == nil || e.HTTPClient() != e.Client {
		t.Errorf("Node %q, HTTPClient %p (Client %p)", e.Node(), e.HTTPClient(), e.Client)
	}

	if err := e.Publish(ctx, "a.b", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	down := errors.New("nats: connection closed")
	e.FailPublish(down)
	if err := e.Publish(ctx, "a.c", []byte("2")); !errors.Is(err, down) {
		t.Errorf("Publish after FailPublish: %v, want %v", err, down)
	}
	e.FailPublish(nil)
	if err := e.Publish(ctx, "a.d", []byte("3")); err != nil {
		t.Fatal(err)
	}
	want := []builtinstest.Message{{Subject: "a.b", Payload: `{"x":1}`}, {Subject: "a.d", Payload: "3"}}
	if got := e.Published(); !reflect.DeepEqual(got, want) {
		t.Errorf("Published() = %+v, want %+v", got, want)
	}

	s := e.KV()
	if err := s.Put(ctx, "k2", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "k1", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	if v, found, err := s.Get(ctx, "k2"); string(v) != "not json" || !found || err != nil {
		t.Errorf("Get(k2) = %q, %v, %v", v, found, err)
	}
	if err := s.Delete(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if v, found, err := s.Get(ctx, "k2"); v != nil || found || err != nil {
		t.Errorf("Get(k2) after Delete = %q, %v, %v", v, found, err)
	}
	if got := e.Store.Keys(); !reflect.DeepEqual(got, []string{"k1"}) {
		t.Errorf("Keys() = %v, want [k1]", got)
	}
	e.Store.Fail(down)
	if _, _, err := s.Get(ctx, "k1"); !errors.Is(err, down) {
		t.Errorf("Get on a failed store: %v", err)
	}
	if err := s.Put(ctx, "k1", nil); !errors.Is(err, down) {
		t.Errorf("Put on a failed store: %v", err)
	}
	if err := s.Delete(ctx, "k1"); !errors.Is(err, down) {
		t.Errorf("Delete on a failed store: %v", err)
	}

	e.Store = nil
	if e.KV() != nil {
		t.Error("KV() with no Store is not nil")
	}
}

func TestRunFileAndSplitError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "order.star")
	src := "def main():\n    return t.probe(1)\n\nok = t.probe(0)\nmain()\nt.fail()\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	seen := make(chan observed, 2)
	rt := builtinstest.NewRuntime()
	globals, err := rt.RunFile(probeRegistry(builtins.Step{}, seen), path, starlark.StringDict{"extra": starlark.True})
	msg, pos, ok := builtinstest.SplitError(err)
	if !ok || msg != "t.fail: down" || pos.String() != path+":6:7" {
		t.Errorf("SplitError = %q, %s, %v; want t.fail: down at %s:6:7", msg, pos, ok, path)
	}
	if got := globals["ok"]; got == nil || got.String() != `{"x": 0}` || len(rt.Calls()) != 3 {
		t.Errorf("ok = %v after %d calls; want {\"x\": 0} after 3", got, len(rt.Calls()))
	}

	_, err = rt.Run(builtins.NewRegistry(), "x = (", nil)
	if _, _, ok := builtinstest.SplitError(err); ok || err == nil {
		t.Errorf("SplitError(%v) ok, want not ok for a syntax error", err)
	}
	globals, err = rt.Run(builtins.NewRegistry(), "while False:\n    pass\ngot = extra\n", starlark.StringDict{"extra": starlark.True})
	if err != nil || globals["got"] != starlark.True {
		t.Errorf("Run in the engine's dialect: %v, %v", globals, err)
	}
}

// recorder is a testing.TB that records failures; Fatalf ends the goroutine
// as testing's does.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func TestCheckBadCall(t *testing.T) {
	r := probeRegistry(builtins.Step{}, make(chan observed, 10))
	r.MustRegisterInline("say", starlark.NewBuiltin("say", func(th *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		rt, _ := builtins.RuntimeOf(th)
		rt.Logger(th).Info().Msg("said")
		return starlark.None, nil
	}))
	tests := []struct {
		name    string
		src     string
		wantErr string
		// wantFailure is part of what CheckBadCall reports, "" if it passes.
		wantFailure string
	}{
		{name: "bad call", src: `t.probe()`, wantErr: `t.probe: missing argument for x`},
		{name: "succeeds", src: `t.probe(1)`, wantErr: `t.probe: missing argument for x`, wantFailure: "succeeded, want error"},
		{name: "other message", src: `t.probe(y=1)`, wantErr: `t.probe: missing argument for x`, wantFailure: `got error: t.probe: unexpected keyword argument "y"`},
		{name: "not a script error", src: `t.probe(`, wantErr: `x`, wantFailure: "not a script error"},
		{name: "a step ran first", src: "t.probe(1)\nt.probe()", wantErr: `t.probe: missing argument for x`, wantFailure: "ran 1 steps before failing"},
		{name: "logged first", src: "say()\nt.probe()", wantErr: `t.probe: missing argument for x`, wantFailure: "logged or tagged before failing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				builtinstest.CheckBadCall(rec, r, tt.src, tt.wantErr)
			}()
			<-done
			report := strings.Join(rec.failures, "\n")
			if tt.wantFailure == "" && report != "" || !strings.Contains(report, tt.wantFailure) {
				t.Errorf("CheckBadCall reported %q, want %q", report, tt.wantFailure)
			}
		})
	}
}

func TestNewRegistry(t *testing.T) {
	add := func(name string) func(*builtins.Registry) {
		return func(r *builtins.Registry) { r.MustRegisterInline(name, starlark.None) }
	}
	tests := []struct {
		name     string
		register []func(*builtins.Registry)
		want     []string
	}{
		{"empty", nil, nil},
		{"each function adds", []func(*builtins.Registry){add("a"), add("b")}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := builtinstest.NewRegistry(tt.register...).Predeclared()
			if got := slices.Sorted(maps.Keys(pre)); !slices.Equal(got, tt.want) {
				t.Errorf("predeclared %v, want %v", got, tt.want)
			}
		})
	}
}
