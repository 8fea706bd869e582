package builtins_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/droverhq/drover/starlark/builtins"
)

// recorder is an interceptor that notes its name around each attempt.
type recorder struct {
	builtins.InterceptorBase
	name string
	log  *[]string
}

func (r recorder) InterceptAttempt(ctx context.Context, a *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	*r.log = append(*r.log, r.name+">")
	v, err := next(ctx, a)
	*r.log = append(*r.log, "<"+r.name)
	return v, err
}

// refuser refuses every attempt.
type refuser struct{ builtins.InterceptorBase }

func (refuser) InterceptAttempt(context.Context, *builtins.StepAttempt, builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	return nil, builtins.Errorf("policy", "refused")
}

func TestChain(t *testing.T) {
	var log []string
	final := func(_ context.Context, a *builtins.StepAttempt) (json.RawMessage, *builtins.StepError) {
		log = append(log, "exec "+a.Step.Name)
		return json.RawMessage(`1`), nil
	}
	a := &builtins.StepAttempt{Step: &builtins.Step{Name: "x.y"}}
	v, err := builtins.Chain(final, recorder{name: "outer", log: &log}, builtins.InterceptorBase{}, recorder{name: "inner", log: &log})(context.Background(), a)
	if err != nil || string(v) != "1" || strings.Join(log, " ") != "outer> inner> exec x.y <inner <outer" {
		t.Fatalf("chain: %s %v %v", v, err, log)
	}
	log = nil
	if _, err := builtins.Chain(final, refuser{})(context.Background(), a); err == nil || err.Code != "policy" || len(log) != 0 {
		t.Fatalf("a refusing interceptor: %v, %v", err, log)
	}
	if v, err := builtins.Chain(final)(context.Background(), a); err != nil || string(v) != "1" {
		t.Fatalf("no interceptors: %s %v", v, err)
	}
}

// callRecorder notes its name around each step call.
type callRecorder struct {
	builtins.InterceptorBase
	name string
	log  *[]string
}

func (r callRecorder) InterceptCall(ctx context.Context, c *builtins.StepCall, next builtins.CallFunc) (builtins.StepResult, error) {
	*r.log = append(*r.log, r.name+">")
	res, err := next(ctx, c)
	*r.log = append(*r.log, "<"+r.name)
	return res, err
}

func TestChainCalls(t *testing.T) {
	var log []string
	final := func(_ context.Context, c *builtins.StepCall) (builtins.StepResult, error) {
		log = append(log, "call "+c.Step.Name)
		return builtins.StepResult{Value: json.RawMessage(`1`), Node: "n1"}, nil
	}
	c := &builtins.StepCall{Step: &builtins.Step{Name: "x.y"}}
	// An interceptor that overrides only InterceptAttempt passes calls on.
	res, err := builtins.ChainCalls(final, callRecorder{name: "outer", log: &log}, recorder{name: "attempts", log: &log}, callRecorder{name: "inner", log: &log})(context.Background(), c)
	if err != nil || string(res.Value) != "1" || res.Node != "n1" || strings.Join(log, " ") != "outer> inner> call x.y <inner <outer" {
		t.Fatalf("chain: %+v %v %v", res, err, log)
	}
	if res, err := builtins.ChainCalls(final)(context.Background(), c); err != nil || string(res.Value) != "1" {
		t.Fatalf("no interceptors: %+v %v", res, err)
	}
}
