package telemetry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestClientSpanOfStep: a client span an Exec starts under its step's exec
// span (whose ids WithIDs put in the context) is a child with an id of its
// own, recording or Light.
func TestClientSpanOfStep(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	rec := tracetest.NewSpanRecorder()
	for _, light := range []bool{false, true} {
		var tp trace.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(IDGenerator{}), sdktrace.WithSpanProcessor(rec))
		if light {
			tp = idOnly{}
		}
		otel.SetTracerProvider(tp)
		ctx, exec := StartStep(context.Background(), tp.Tracer("t"), "R1", "2", "exec", "exec", trace.SpanKindInternal, func() []attribute.KeyValue { return nil })
		called := false
		cctx, client := StartClient(ctx, "t", func() (string, []attribute.KeyValue) {
			called = true
			return "GET", []attribute.KeyValue{attribute.String("k", "v")}
		})
		parent, child := exec.SpanContext(), trace.SpanContextFromContext(cctx)
		if !child.IsValid() || child.TraceID() != parent.TraceID() || child.SpanID() == parent.SpanID() || called == light {
			t.Errorf("light %v: exec span %s/%s, client span %s/%s, described %v", light, parent.TraceID(), parent.SpanID(), child.TraceID(), child.SpanID(), called)
		}
		client.End()
		exec.End()
	}
	s := rec.Ended()[0]
	if s.Name() != "GET" || s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != SpanID("R1", "2", "exec") || len(s.Attributes()) != 1 {
		t.Errorf("client span %s, kind %s, parent %s, attributes %v", s.Name(), s.SpanKind(), s.Parent().SpanID(), s.Attributes())
	}
}

// TestResourceFromEnv: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES reach
// the exported spans' resource, over the node's own service.name; the node
// is service.instance.id.
func TestResourceFromEnv(t *testing.T) {
	var mu sync.Mutex
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		body = append(body, b...)
		mu.Unlock()
	}))
	defer srv.Close()
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "orders-engine")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging-7,service.name=overridden")
	shutdown, err := Setup(context.Background(), "drover-engine", "node-42")
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("t").Start(context.Background(), "a span")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The OTLP request is protobuf: its strings are there as written.
	for _, want := range []string{"orders-engine", "service.instance.id", "node-42", "deployment.environment.name", "staging-7", "a span"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("the exported request has no %q", want)
		}
	}
	for _, not := range []string{"drover-engine", "overridden"} {
		if bytes.Contains(body, []byte(not)) {
			t.Errorf("the exported request has %q", not)
		}
	}

	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "no-equals-sign")
	if _, err := Setup(context.Background(), "drover-engine", "n"); err == nil {
		t.Error("Setup accepted a malformed OTEL_RESOURCE_ATTRIBUTES")
	}
}

// BenchmarkStartClient is the cost a client span adds to a request, Light
// (no exporter: ids only) and recording.
func BenchmarkStartClient(b *testing.B) {
	prev := otel.GetTracerProvider()
	b.Cleanup(func() { otel.SetTracerProvider(prev) })
	describe := func() (string, []attribute.KeyValue) {
		return "GET", []attribute.KeyValue{attribute.String("http.request.method", "GET"), attribute.String("url.full", "http://example.com/x")}
	}
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
	}{
		{"light", idOnly{}},
		{"recording", sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(IDGenerator{}))}, // no exporter: the spans' own cost
	} {
		b.Run(c.name, func(b *testing.B) {
			otel.SetTracerProvider(c.tp)
			ctx, exec := StartStep(context.Background(), c.tp.Tracer("t"), "R1", "2", "exec", "exec", trace.SpanKindInternal, func() []attribute.KeyValue { return nil })
			defer exec.End()
			b.ReportAllocs()
			for b.Loop() {
				_, span := StartClient(ctx, "t", describe)
				span.End()
			}
		})
	}
}
