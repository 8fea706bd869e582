package metrics

import (
	"context"
	"encoding/json"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// Interceptor returns the step interceptor that counts each attempt on the
// node that executes it: step.started as it starts, then step.completed or
// step.failed (with its error's code) and step.duration as it ends. For
// engine.Options.Interceptors; a nil *Metrics, or one with neither
// DogStatsD nor Prometheus, gives one that passes every attempt on.
//
// An attempt costs two clock readings, a sync.Map lookup of its builtin's
// series (made once per builtin, and per builtin and code for failures)
// and the clients' aggregation; it allocates nothing of its own (the
// DogStatsD client keeps each duration until its next flush, every 2 s:
// about 45 bytes an attempt, amortised). BenchmarkInterceptor measures it.
func (m *Metrics) Interceptor() builtins.Interceptor {
	if m == nil || (m.client == nil && m.prom == nil) {
		return builtins.InterceptorBase{}
	}
	return interceptor{m: m}
}

// interceptor is the Interceptor of Metrics.Interceptor.
type interceptor struct {
	builtins.InterceptorBase
	m *Metrics
}

var _ builtins.Interceptor = interceptor{}

// InterceptAttempt implements builtins.Interceptor: it counts the attempt
// and times it.
func (i interceptor) InterceptAttempt(ctx context.Context, a *builtins.StepAttempt, next builtins.AttemptFunc) (json.RawMessage, *builtins.StepError) {
	s := i.m.builtin(a.Step.Name)
	i.m.started(s)
	start := time.Now()
	v, serr := next(ctx, a)
	code := ""
	if serr != nil {
		code = serr.Code
		if code == "" {
			code = builtins.CodeInternal
		}
	}
	i.m.done(s, time.Since(start), code)
	return v, serr
}
