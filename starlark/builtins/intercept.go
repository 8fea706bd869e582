package builtins

import (
	"context"
	"encoding/json"
	"time"
)

// StepAttempt is one attempt of a step on the node that executes it, as
// interceptors see it.
type StepAttempt struct {
	Step *Step
	Args json.RawMessage
	// Context is the attempt's run, step, attempt number and idempotency key.
	Context StepContext
	// Target is what the call reaches (Step.Target), or "".
	Target string
	// Demands are the resource units the attempt takes before it executes.
	Demands []Demand
	// Env is what the builtin's Exec gets.
	Env Env
}

// AttemptFunc executes an attempt: the next interceptor, or, at the end of
// the chain, the node's own execution (resource units, the builtin's Exec
// under its deadline, its result's checks). It returns the attempt's
// canonical JSON value or its error.
type AttemptFunc func(ctx context.Context, a *StepAttempt) (json.RawMessage, *StepError)

// StepCall is one step of a run as its coordinator makes it: placed,
// journaled, executed here or on another node, its result journaled.
type StepCall struct {
	Step *Step
	Args json.RawMessage
	// Context is the step's run, step id and idempotency key (Attempt 0:
	// the attempts are the executing node's).
	Context StepContext
	// Pos is the script position of the call ("order.star:12:5").
	Pos string
	// Resumed reports that the step was under way when its run stopped
	// (a node was lost, or restarted): this call places it again, under
	// the same idempotency key.
	Resumed bool
}

// StepResult is a step's outcome as its coordinator receives it. Exactly
// one of Value and Err is set.
type StepResult struct {
	Value json.RawMessage
	Err   *StepError
	// Node is the node that executed the step; Attempts how many attempts
	// it made.
	Node     string
	Attempts int
	// Start and Duration time the execution on that node; Start is zero
	// when no node executed the step (no answer by its deadline).
	Start    time.Time
	Duration time.Duration
}

// CallFunc makes a step call: the next interceptor, or, at the end of the
// chain, the coordinator's own work. The error is the coordinator's (the
// run was cancelled, no node could be placed, the journal is unavailable):
// the step then has no outcome. A step that ran and failed is a StepResult
// with Err set and a nil error.
type CallFunc func(ctx context.Context, c *StepCall) (StepResult, error)

// An Interceptor wraps the steps of a node, as Temporal's interceptors wrap
// activities, at two levels:
//   - InterceptCall, on the run's coordinator, once per step (Temporal's
//     outbound ExecuteActivity): tracing's call span and placement learning
//     are the node's own.
//   - InterceptAttempt, on the node that executes the step, once per attempt
//     (Temporal's inbound ExecuteActivity): tracing's exec span, circuit
//     breakers, resource units and metering are the node's own.
//
// Either may look at the step, refuse it (return an error without calling
// next) or act on its outcome. Embed InterceptorBase and override what you
// need, so that methods added to this interface later find a default.
// engine.Options.Interceptors adds interceptors to the node's (metrics,
// audit), inside its tracing and outside the rest, outermost first.
type Interceptor interface {
	InterceptCall(ctx context.Context, c *StepCall, next CallFunc) (StepResult, error)
	InterceptAttempt(ctx context.Context, a *StepAttempt, next AttemptFunc) (json.RawMessage, *StepError)
}

// InterceptorBase is an Interceptor that passes every call and attempt on.
type InterceptorBase struct{}

// InterceptCall implements Interceptor: it calls next.
func (InterceptorBase) InterceptCall(ctx context.Context, c *StepCall, next CallFunc) (StepResult, error) {
	return next(ctx, c)
}

// InterceptAttempt implements Interceptor: it calls next.
func (InterceptorBase) InterceptAttempt(ctx context.Context, a *StepAttempt, next AttemptFunc) (json.RawMessage, *StepError) {
	return next(ctx, a)
}

// Chain returns final wrapped in the interceptors' InterceptAttempt, the
// first outermost.
func Chain(final AttemptFunc, interceptors ...Interceptor) AttemptFunc {
	f := final
	for i := len(interceptors) - 1; i >= 0; i-- {
		ic, next := interceptors[i], f
		f = func(ctx context.Context, a *StepAttempt) (json.RawMessage, *StepError) {
			return ic.InterceptAttempt(ctx, a, next)
		}
	}
	return f
}

// ChainCalls returns final wrapped in the interceptors' InterceptCall, the
// first outermost.
func ChainCalls(final CallFunc, interceptors ...Interceptor) CallFunc {
	f := final
	for i := len(interceptors) - 1; i >= 0; i-- {
		ic, next := interceptors[i], f
		f = func(ctx context.Context, c *StepCall) (StepResult, error) {
			return ic.InterceptCall(ctx, c, next)
		}
	}
	return f
}
