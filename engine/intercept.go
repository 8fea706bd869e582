package engine

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/placement"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// The node's own interceptors (builtins.Interceptor). Around a step call,
// on the run's coordinator: tracing (the call span), then the users'
// (Options.Interceptors), then placement learning. Around each attempt, on
// the executing node: tracing (the exec span), metrics (package metrics),
// the users', circuit breakers, resource units, metering.

// chains builds the node's call and attempt chains, ending in call (the
// coordinator's work: run.call) and attempt (the builtin under its
// deadline: worker.run).
func (n *Node) chains(call builtins.CallFunc, attempt builtins.AttemptFunc) (builtins.CallFunc, builtins.AttemptFunc) {
	t := tracing{tracer: n.tracer}
	calls := slices.Concat([]builtins.Interceptor{t}, n.opts.Interceptors, []builtins.Interceptor{learning{n: n}})
	attempts := slices.Concat([]builtins.Interceptor{t, n.metrics.Interceptor()}, n.opts.Interceptors,
		[]builtins.Interceptor{n.breakers.Interceptor(), resources{n: n}, metering{n: n}})
	return builtins.ChainCalls(call, calls...), builtins.Chain(attempt, attempts...)
}

// tracing starts a step's spans: its call span on the coordinator (a
// client span, the parent of the spans of its attempts, wherever they run)
// and an exec span per attempt on the executing node. Their ids derive
// from run, step and attempt (telemetry.SpanID), so that a run's trace is
// the same however often it is recovered.
type tracing struct {
	tracer trace.Tracer
}

func (t tracing) InterceptCall(ctx context.Context, c *builtins.StepCall, next builtins.CallFunc) (builtins.StepResult, error) {
	ctx, span := telemetry.StartStep(ctx, t.tracer, c.Context.Run, c.Context.Step, "call", c.Step.Name, trace.SpanKindClient, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("drover.step", c.Context.Step)}
	})
	defer span.End()
	res, err := next(ctx, c)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("drover.node", res.Node))
		if r, ok := ctx.Value(runKey{}).(*run); ok {
			span.SetAttributes(r.spanAttrs()...)
		}
	}
	switch {
	case err != nil:
		span.SetStatus(codes.Error, builtins.Redact(err.Error()))
	case res.Err != nil:
		span.SetStatus(codes.Error, res.Err.Message)
	}
	return res, err
}

func (t tracing) InterceptAttempt(ctx context.Context, a *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	ctx, span := telemetry.StartStep(ctx, t.tracer, a.Context.Run, a.Context.Step, execKind(a.Context.Attempt), "exec "+a.Step.Name, trace.SpanKindInternal, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("drover.step", a.Context.Step), attribute.Int("drover.attempt", a.Context.Attempt)}
	})
	defer span.End()
	v, serr := next(ctx, a)
	if serr != nil {
		span.SetStatus(codes.Error, serr.Message)
	}
	return v, serr
}

// execKind is the span kind (telemetry.SpanID) of a step's exec span on
// its attempt: "exec" for the first, the one a result entry names.
func execKind(attempt int) string {
	if attempt <= 1 {
		return "exec"
	}
	return "exec@" + strconv.Itoa(attempt)
}

// learning is the coordinator's interceptor that teaches the placement
// policy how long each builtin takes, from the steps' results; when the
// policy does not learn, the node keeps the profiles itself (they say
// which steps are short: foldable).
type learning struct {
	builtins.InterceptorBase
	n *Node
}

func (l learning) InterceptCall(ctx context.Context, c *builtins.StepCall, next builtins.CallFunc) (builtins.StepResult, error) {
	res, err := next(ctx, c)
	switch obs, ok := l.n.opts.Placement.(placement.Learner); {
	case err != nil || res.Start.IsZero():
		// No node executed it (no answer by the deadline): nothing learned.
	case ok:
		obs.Observe(c.Step.Name, res.Duration, -1, -1)
	default:
		l.n.profiles.Observe(c.Step.Name, res.Duration, -1, -1)
	}
	return res, err
}

// resources is the node's interceptor that takes an attempt's resource
// units before it runs (waiting, bounded by ctx, rather than overrunning a
// limit) and gives pool units back after it, with a heartbeat at once so
// that coordinators waiting for them place their steps without waiting for
// the next one.
type resources struct {
	builtins.InterceptorBase
	n *Node
}

func (r resources) InterceptAttempt(ctx context.Context, a *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	demands := toMeter(a.Demands)
	if err := r.n.meter.Resources.Wait(ctx, demands); err != nil {
		return nil, builtins.Errorf(builtins.CodeResource, "%s: %v", a.Step.Name, err)
	}
	v, serr := next(ctx, a)
	if r.n.meter.Resources.Release(demands) {
		r.n.cluster.Beat()
	}
	return v, serr
}

// metering is the node's interceptor that counts the attempts executing
// here, by builtin, for its meter readings.
type metering struct {
	builtins.InterceptorBase
	n *Node
}

func (m metering) InterceptAttempt(ctx context.Context, a *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	end := m.n.meter.Begin(a.Step.Name)
	defer end()
	return next(ctx, a)
}

// toBuiltins and toMeter convert resource demands between the two
// packages' types.
func toBuiltins(d []meter.Demand) []builtins.Demand {
	if len(d) == 0 {
		return nil // most steps: nothing allocated on their path
	}
	out := make([]builtins.Demand, len(d))
	for i, x := range d {
		out[i] = builtins.Demand(x)
	}
	return out
}

func toMeter(d []builtins.Demand) []meter.Demand {
	if len(d) == 0 {
		return nil
	}
	out := make([]meter.Demand, len(d))
	for i, x := range d {
		out[i] = meter.Demand(x)
	}
	return out
}
