package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// idOnly is the tracer provider Setup installs when no exporter is
// configured: its spans carry their ids (the same ones IDGenerator gives, so
// context propagation and the span ids in result entries are unchanged) and
// record nothing.
type idOnly struct{ embedded.TracerProvider }

func (idOnly) Tracer(string, ...trace.TracerOption) trace.Tracer { return idOnlyTracer{} }

type idOnlyTracer struct{ embedded.Tracer }

func (idOnlyTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx = startLight(ctx, nil)
	return ctx, trace.SpanFromContext(ctx)
}

// Light reports whether spans only carry ids: Setup found no exporter. The
// engine then starts its spans with StartLight, skipping the span options
// and attributes that nothing would read.
func Light() bool {
	_, ok := otel.GetTracerProvider().(idOnly)
	return ok
}

// StartLight returns ctx with a non-recording span whose ids are those put
// in ctx by WithIDs (the trace id only for a root span: traceID is called
// then, and may be nil), a child of ctx's span if it has one.
func StartLight(ctx context.Context, traceID func() trace.TraceID, spanID trace.SpanID) context.Context {
	return startLight(context.WithValue(ctx, idsKey{}, ids{span: spanID}), traceID)
}

func startLight(ctx context.Context, traceID func() trace.TraceID) context.Context {
	v, _ := ctx.Value(idsKey{}).(ids)
	parent := trace.SpanContextFromContext(ctx)
	if parent.IsValid() && v.span == parent.SpanID() {
		v = ids{} // the ids of ctx's own span: a child of it gets new ones
	}
	cfg := trace.SpanContextConfig{TraceFlags: trace.FlagsSampled, SpanID: v.span}
	switch {
	case parent.IsValid():
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	case v.trace.IsValid():
		cfg.TraceID = v.trace
	case traceID != nil:
		cfg.TraceID = traceID()
	default:
		binary.LittleEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(cfg.TraceID[8:], rand.Uint64())
	}
	for !cfg.SpanID.IsValid() {
		// Runtime-seeded ChaCha8, as random as the ids need and cheaper
		// than crypto/rand (a client span's id, on every request).
		binary.LittleEndian.PutUint64(cfg.SpanID[:], rand.Uint64())
	}
	return trace.ContextWithSpanContext(ctx, trace.NewSpanContext(cfg))
}

// StartStep starts the span kind ("call", "exec") of step of run, its ids
// derived (SpanID), named name and with the attributes attrs returns, or, when
// spans only carry ids (Light), a non-recording span with the same ids,
// without calling attrs. End the span either way.
func StartStep(ctx context.Context, tracer trace.Tracer, run, step, kind, name string, spanKind trace.SpanKind, attrs func() []attribute.KeyValue) (context.Context, trace.Span) {
	if Light() {
		ctx = StartLight(ctx, func() trace.TraceID { return TraceID(run) }, SpanID(run, step, kind))
		return ctx, trace.SpanFromContext(ctx)
	}
	return tracer.Start(WithIDs(ctx, TraceID(run), SpanID(run, step, kind)), name, trace.WithSpanKind(spanKind), trace.WithAttributes(attrs()...))
}
