// Package telemetry sets up Drover's OpenTelemetry tracing and zerolog logging.
//
// Span ids are not random: a run's trace id derives from its run id (unless the
// run has an incoming parent) and each span id from the run and step ids, so a
// replay or a recovered run refers to the original spans instead of exporting
// duplicates. Exporters follow the standard OTEL_* environment variables;
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES describe the service.
//
// Integrations make a client span of each request a step sends out
// (StartClient), a child of the step's exec span, and carry its W3C trace
// context (Propagator) to the service; package telemetrytest records spans
// in tests.
package telemetry

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
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
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
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

// NewSpanID implements sdktrace.IDGenerator. The ids WithIDs put in ctx are
// those of ctx's own span once it started: a child of it (a client span a
// step's Exec starts) gets a random id instead.
func (IDGenerator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if v, ok := ctx.Value(idsKey{}).(ids); ok && v.span.IsValid() && v.span != trace.SpanContextFromContext(ctx).SpanID() {
		return v.span
	}
	var s trace.SpanID
	rand.Read(s[:])
	return s
}

// Setup installs a global tracer provider with IDGenerator and the W3C trace
// context propagator. Spans are exported when OTEL_TRACES_EXPORTER says so
// ("otlp" or "console"), or when an OTEL_EXPORTER_OTLP_*ENDPOINT is set;
// otherwise they carry their ids (context propagation) and record nothing
// (Light). The exported spans' resource is service.name service (unless
// OTEL_SERVICE_NAME, or service.name in OTEL_RESOURCE_ATTRIBUTES, says
// otherwise), service.instance.id node, the attributes of
// OTEL_RESOURCE_ATTRIBUTES and the SDK's; a malformed
// OTEL_RESOURCE_ATTRIBUTES is an error. The returned function flushes and
// stops the provider.
func Setup(ctx context.Context, service, node string) (shutdown func(context.Context) error, err error) {
	exporter := strings.ToLower(os.Getenv("OTEL_TRACES_EXPORTER"))
	if exporter == "" && (os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "") {
		exporter = "otlp"
	}
	otel.SetTextMapPropagator(Propagator)
	var exp sdktrace.SpanExporter
	switch exporter {
	case "otlp":
		if exp, err = otlptracehttp.New(ctx); err != nil {
			return nil, err
		}
	case "console":
		if exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr)); err != nil {
			return nil, err
		}
	default:
		// Nothing would read recorded spans: carry their ids only.
		otel.SetTracerProvider(idOnly{})
		return func(context.Context) error { return nil }, nil
	}
	res, err := newResource(ctx, service, node)
	if err != nil {
		exp.Shutdown(ctx)
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(IDGenerator{}), sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// newResource is the resource of a node's spans: service.name service and
// service.instance.id node, under what the OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES variables say, with the SDK's attributes.
func newResource(ctx context.Context, service, node string) (*resource.Resource, error) {
	// Read now, not through resource.Default, which reads the environment
	// once per process.
	env, err := resource.New(ctx, resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	res, err := resource.Merge(resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service), semconv.ServiceInstanceID(node)), env)
	if errors.Is(err, resource.ErrSchemaURLConflict) {
		err = nil // the SDK's semantic conventions are another version: res is merged, without a schema URL
	}
	return res, err
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
