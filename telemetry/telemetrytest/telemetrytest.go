// Package telemetrytest records the spans a test makes, as an exporter
// would receive them, as net/http/httptest serves handlers without a
// network.
//
//	rec := telemetrytest.Record(t)
//	// ... run the code under test ...
//	s := telemetrytest.Find(t, rec, "GET")
//	telemetrytest.Attrs(s)["http.request.method"] == "GET"
package telemetrytest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/droverhq/drover/telemetry"
)

// Record installs a global tracer provider that records every span, with
// Drover's ids (telemetry.IDGenerator), as telemetry.Setup does with an
// exporter, until the test ends; the previous provider comes back then.
// Tests that call it must not run in parallel with others that trace.
func Record(t testing.TB) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(telemetry.IDGenerator{}), sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		tp.Shutdown(context.Background())
	})
	return rec
}

// Find returns the one ended span named name, failing the test if there is
// none or several.
func Find(t testing.TB, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans named %q; the spans: %q", len(found), name, names)
	}
	return found[0]
}

// Attrs returns a span's attributes, their values as text.
func Attrs(s sdktrace.ReadOnlySpan) map[string]string {
	out := map[string]string{}
	for _, kv := range s.Attributes() {
		out[string(kv.Key)] = kv.Value.Emit()
	}
	return out
}
