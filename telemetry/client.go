package telemetry

import (
	"context"
	"net"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// StartClient starts the client span of one request a step's Exec makes to
// an outside service (an HTTP request, a query, a publish), a child of ctx's
// span (the step's exec span), with the tracer of instrumentation scope
// scope. describe gives its name and attributes; with no exporter (Light)
// it is not called: the span carries its ids only, for the trace context
// the request carries, and costs a random span id. Otherwise they are given
// at the span's start, as the conventions ask, for samplers to see. End the
// span either way.
func StartClient(ctx context.Context, scope string, describe func() (name string, attrs []attribute.KeyValue)) (context.Context, trace.Span) {
	if Light() {
		ctx = startLight(ctx, nil)
		return ctx, trace.SpanFromContext(ctx)
	}
	name, attrs := describe()
	return otel.Tracer(scope).Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// ServerAttrs returns the server.address and server.port attributes of a
// host:port address (the port left out when addr has none, or it is not a
// number).
func ServerAttrs(addr string) []attribute.KeyValue {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []attribute.KeyValue{semconv.ServerAddress(addr)}
	}
	out := []attribute.KeyValue{semconv.ServerAddress(host)}
	if p, err := strconv.Atoi(port); err == nil {
		out = append(out, semconv.ServerPort(p))
	}
	return out
}

// Fail marks a client span failed: status Error, described by message (text
// that has had its secrets redacted), and error.type errorType (low
// cardinality: a step error's code, or a status code).
func Fail(span trace.Span, errorType, message string) {
	span.SetAttributes(semconv.ErrorTypeKey.String(errorType))
	span.SetStatus(codes.Error, message)
}
