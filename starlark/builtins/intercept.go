package builtins

import (
	"context"
	"encoding/json"
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

// An Interceptor wraps every step attempt a node executes, as Temporal's
// interceptors wrap activities: it may look at the attempt, refuse it
// (return an error without calling next), or act on its outcome. Embed
// InterceptorBase and override what you need, so that methods added to
// this interface later find a default. The node's circuit breakers are one
// (breaker.Set.Interceptor); engine.Options.Interceptors adds others
// (metrics, audit), outermost first.
type Interceptor interface {
	InterceptAttempt(ctx context.Context, a *StepAttempt, next AttemptFunc) (json.RawMessage, *StepError)
}

// InterceptorBase is an Interceptor that passes every attempt on.
type InterceptorBase struct{}

// InterceptAttempt implements Interceptor: it calls next.
func (InterceptorBase) InterceptAttempt(ctx context.Context, a *StepAttempt, next AttemptFunc) (json.RawMessage, *StepError) {
	return next(ctx, a)
}

// Chain returns final wrapped in interceptors, the first outermost.
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
