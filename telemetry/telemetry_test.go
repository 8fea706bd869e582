package telemetry

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestDeterministicSpanIDs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(IDGenerator{}), sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("test")
	ctx := WithIDs(context.Background(), TraceID("R1"), SpanID("R1", "", "run"))
	ctx, run := tr.Start(ctx, "run")
	_, step := tr.Start(WithIDs(ctx, TraceID("R1"), SpanID("R1", "3.2", "exec")), "step")
	step.End()
	run.End()
	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("got %d spans", len(spans))
	}
	if spans[1].SpanContext().TraceID() != TraceID("R1") || spans[1].SpanContext().SpanID() != SpanID("R1", "", "run") {
		t.Errorf("run span ids %v", spans[1].SpanContext())
	}
	if spans[0].SpanContext().SpanID() != SpanID("R1", "3.2", "exec") || spans[0].Parent().SpanID() != SpanID("R1", "", "run") {
		t.Errorf("step span %v parent %v", spans[0].SpanContext(), spans[0].Parent())
	}
	if SpanID("R1", "1", "exec") == SpanID("R2", "1", "exec") {
		t.Error("span ids of different runs collide")
	}
}

func TestCarrierKeepsCase(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, span := tp.Tracer("t").Start(context.Background(), "x")
	defer span.End()
	h := propagation.MapCarrier{}
	Propagator.Inject(ctx, h)
	if !strings.HasPrefix(h.Get("traceparent"), "00-"+span.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent = %q (keys %v)", h.Get("traceparent"), h.Keys())
	}
	got := Propagator.Extract(context.Background(), h)
	_ = got
}

func TestLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, "warn")
	l.Info().Msg("dropped")
	l.Warn().Str("run", "R").Msg("kept")
	if strings.Contains(buf.String(), "dropped") || !strings.Contains(buf.String(), `"run":"R"`) {
		t.Fatal(buf.String())
	}
}
