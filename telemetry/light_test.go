package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestLightSameIDs: a span started by StartLight (no exporter) has the ids a
// recording span of the SDK with IDGenerator gets, as a root and as a child.
func TestLightSameIDs(t *testing.T) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(IDGenerator{}))
	tr := tp.Tracer("t")
	for _, parent := range []string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		base := RunContext(context.Background(), "R1", parent)
		sdkRun, _ := tr.Start(base, "run")
		sdkStep, _ := tr.Start(WithIDs(sdkRun, TraceID("R1"), SpanID("R1", "1", "call")), "step")
		lightRun := startLight(base, nil)
		lightStep := StartLight(lightRun, func() trace.TraceID { return TraceID("R1") }, SpanID("R1", "1", "call"))
		for _, c := range [][2]context.Context{{sdkRun, lightRun}, {sdkStep, lightStep}} {
			a, b := trace.SpanContextFromContext(c[0]), trace.SpanContextFromContext(c[1])
			if a.TraceID() != b.TraceID() || a.SpanID() != b.SpanID() || a.TraceFlags() != b.TraceFlags() {
				t.Errorf("parent %q: sdk %s/%s/%s, light %s/%s/%s", parent, a.TraceID(), a.SpanID(), a.TraceFlags(), b.TraceID(), b.SpanID(), b.TraceFlags())
			}
		}
	}
}
