// Package telemetry sets up Drover's OpenTelemetry tracing and zerolog logging.
//
// Span ids are not random: a run's trace id derives from its run id (unless the
// run has an incoming parent) and each span id from the run and step ids, so a
// replay or a recovered run refers to the original spans instead of exporting
// duplicates. Exporters follow the standard OTEL_* environment variables.
package telemetry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TraceID returns the trace id of a run that has no incoming parent.
func TraceID(run string) trace.TraceID {
	sum := sha256.Sum256([]byte("drover/trace/" + run))
	var id trace.TraceID
	copy(id[:], sum[:16])
	return id
}

// SpanID returns the span id of a run's span (step "") or of one of its steps;
// kind separates several spans of one step (e.g. "dispatch", "exec").
func SpanID(run, step, kind string) trace.SpanID {
	sum := sha256.Sum256([]byte("drover/span/" + run + "/" + step + "/" + kind))
	var id trace.SpanID
	copy(id[:], sum[:8])
	return id
}

type idsKey struct{}

type ids struct {
	trace trace.TraceID
	span  trace.SpanID
}

// WithIDs returns a context in which the next span started gets these ids
// (traceID is used only for a root span).
func WithIDs(ctx context.Context, traceID trace.TraceID, spanID trace.SpanID) context.Context {
	return context.WithValue(ctx, idsKey{}, ids{traceID, spanID})
}

// RunContext returns the context of a run's span: its ids derived from the
// run id, and its parent the incoming W3C traceParent when it is a valid one
// (the run then joins the caller's trace).
func RunContext(ctx context.Context, run, traceParent string) context.Context {
	if traceParent != "" {
		carrier := propagation.MapCarrier{"traceparent": traceParent}
		if sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(ctx, carrier)); sc.IsValid() {
			return WithIDs(trace.ContextWithRemoteSpanContext(ctx, sc), sc.TraceID(), SpanID(run, "", "run"))
		}
	}
	return WithIDs(ctx, TraceID(run), SpanID(run, "", "run"))
}

// IDGenerator gives spans the ids put in their context by WithIDs, and random
// ids otherwise. It implements go.opentelemetry.io/otel/sdk/trace.IDGenerator.
type IDGenerator struct{}

var _ sdktrace.IDGenerator = IDGenerator{}

// NewIDs implements sdktrace.IDGenerator.
func (IDGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if v, ok := ctx.Value(idsKey{}).(ids); ok && v.trace.IsValid() && v.span.IsValid() {
		return v.trace, v.span
	}
	var t trace.TraceID
	var s trace.SpanID
	rand.Read(t[:])
	rand.Read(s[:])
	return t, s
}

// NewSpanID implements sdktrace.IDGenerator.
func (IDGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if v, ok := ctx.Value(idsKey{}).(ids); ok && v.span.IsValid() {
		return v.span
	}
	var s trace.SpanID
	rand.Read(s[:])
	return s
}

// Setup installs a global tracer provider with IDGenerator and the W3C trace
// context propagator. Spans are exported when OTEL_TRACES_EXPORTER says so
// ("otlp" or "console"), or when an OTEL_EXPORTER_OTLP_*ENDPOINT is set;
// otherwise they are recorded (ids, context propagation) but not exported.
// The returned function flushes and stops the provider.
func Setup(ctx context.Context, service, node string) (shutdown func(context.Context) error, err error) {
	opts := []sdktrace.TracerProviderOption{sdktrace.WithIDGenerator(IDGenerator{})}
	res, _ := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(service), semconv.ServiceInstanceID(node)))
	opts = append(opts, sdktrace.WithResource(res))
	exporter := strings.ToLower(os.Getenv("OTEL_TRACES_EXPORTER"))
	if exporter == "" && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		exporter = "otlp"
	}
	switch exporter {
	case "otlp":
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	case "console":
		exp, err := stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	default:
		// Nothing would read recorded spans: carry their ids only.
		otel.SetTracerProvider(idOnly{})
		otel.SetTextMapPropagator(propagation.TraceContext{})
		return func(context.Context) error { return nil }, nil
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// Propagator is the W3C trace context propagator used on every NATS message.
// bus.Header is its carrier: it keeps header names exactly as written, so
// "traceparent" stays lower case.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// NewLogger returns a zerolog JSON logger writing to w with timestamps. level
// is a zerolog level name ("debug", "info", ...); empty or unknown means info.
// The engine adds node, run and step fields to the lines it writes.
func NewLogger(w io.Writer, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
