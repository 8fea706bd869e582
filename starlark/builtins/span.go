package builtins

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/telemetry"
)

// FailSpan marks the client span of a request a step made failed with the
// request's error: a *StepError's code and message (redacted of secrets),
// else timed out, cancelled, or internal.
func FailSpan(span trace.Span, err error) {
	var se *StepError
	switch {
	case errors.As(err, &se):
		telemetry.Fail(span, se.Code, Redact(se.Message))
	case errors.Is(err, context.DeadlineExceeded):
		telemetry.Fail(span, CodeTimeout, "timed out")
	case errors.Is(err, context.Canceled):
		telemetry.Fail(span, CodeCancelled, "cancelled")
	default:
		telemetry.Fail(span, CodeInternal, Redact(err.Error()))
	}
}
