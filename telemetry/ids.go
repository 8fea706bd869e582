package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/trace"
)

// RunTraceID returns the trace id of run's spans: that of the incoming W3C
// traceParent the run was started with, when valid (the run joined the
// caller's trace: RunContext), else the one derived from the run id
// (TraceID). Log lines and `ctl runs show` name it.
func RunTraceID(run, traceParent string) trace.TraceID {
	ctx := StartLight(RunContext(context.Background(), run, traceParent), func() trace.TraceID { return TraceID(run) }, SpanID(run, "", "run"))
	return trace.SpanContextFromContext(ctx).TraceID()
}
