package http_test

import (
	"context"
	"encoding/json"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
	"github.com/droverhq/drover/starlark/builtins/http"
	"github.com/droverhq/drover/telemetry"
	"github.com/droverhq/drover/telemetry/telemetrytest"
)

// TestSpan: a request is a client span, a child of the step's span, with
// the HTTP client conventions' attributes and without the URL's
// credentials or the node's secrets; the request carries its trace context
// (traceparent, and the parent's tracestate); a 5xx or a failed round trip
// fails the span, a 4xx does not.
func TestSpan(t *testing.T) {
	rec := telemetrytest.Record(t)
	const secret = "pw-http-5e1c"
	builtins.Secret(secret)
	var mu sync.Mutex
	var got nethttp.Header
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(nethttp.StatusBadGateway)
		case "/missing":
			w.WriteHeader(nethttp.StatusNotFound)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	r := builtinstest.NewRegistry(http.Register)
	get, err := r.Lookup("http.get")
	if err != nil {
		t.Fatal(err)
	}
	// The exec span of a step, as the engine gives Exec its context: a
	// span of the caller's trace, with a trace state.
	state, _ := trace.ParseTraceState("vendor=v1")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true})
	exec := func(url string) error {
		raw, _ := json.Marshal(map[string]any{"method": "GET", "url": url, "timeout": "5s"})
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
		_, err := get.Exec(ctx, builtinstest.NewEnv(), raw)
		return err
	}

	if err := exec("http://alice:" + secret + "@" + host + "/ok/" + secret + "?token=" + secret + "&sig=abc&x=1"); err != nil {
		t.Fatal(err)
	}
	s := telemetrytest.Find(t, rec, "GET")
	attrs := telemetrytest.Attrs(s)
	for k, want := range map[string]string{
		"http.request.method":       "GET",
		"url.full":                  srv.URL + "/ok/[redacted]?token=[redacted]&sig=REDACTED&x=1",
		"server.address":            "127.0.0.1",
		"server.port":               host[strings.LastIndexByte(host, ':')+1:],
		"http.response.status_code": "200",
	} {
		if attrs[k] != want {
			t.Errorf("%s = %q, want %q", k, attrs[k], want)
		}
	}
	for k, v := range attrs {
		if strings.Contains(v, secret) || strings.Contains(v, "alice") {
			t.Errorf("%s = %q: a credential", k, v)
		}
	}
	if s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanID() || s.SpanContext().TraceID() != parent.TraceID() || s.Status().Code == codes.Error {
		t.Errorf("span: kind %s, parent %s, trace %s, status %v", s.SpanKind(), s.Parent().SpanID(), s.SpanContext().TraceID(), s.Status())
	}
	mu.Lock()
	tp, ts := got.Get("traceparent"), got.Get("tracestate")
	mu.Unlock()
	if want := "00-" + parent.TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"; tp != want || ts != "vendor=v1" {
		t.Errorf("the server got traceparent %q and tracestate %q, want %q and vendor=v1", tp, ts, want)
	}

	for _, c := range []struct {
		path, errorType string
		fails           bool
	}{
		{"/missing", "", false},
		{"/fail", "502", true},
	} {
		rec.Reset()
		if err := exec(srv.URL + c.path); err != nil {
			t.Fatal(err)
		}
		s := telemetrytest.Find(t, rec, "GET")
		if fails := s.Status().Code == codes.Error; fails != c.fails || telemetrytest.Attrs(s)["error.type"] != c.errorType {
			t.Errorf("%s: status %v, attributes %v", c.path, s.Status(), s.Attributes())
		}
	}

	rec.Reset()
	ln := httptest.NewServer(nil)
	down := ln.URL
	ln.Close()
	if err := exec(down + "/x"); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	if s := telemetrytest.Find(t, rec, "GET"); s.Status().Code != codes.Error || telemetrytest.Attrs(s)["error.type"] != builtins.CodeTransport {
		t.Errorf("transport failure: status %v, attributes %v", s.Status(), s.Attributes())
	}
}

// TestSpanLight: with no exporter (telemetry.Setup without OTEL_*
// variables) a request still carries a trace context: that of a span of
// its own, a child of the step's.
func TestSpanLight(t *testing.T) {
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	telemetrytest.Record(t) // restores the provider Setup replaces
	if _, err := telemetry.Setup(context.Background(), "test", "n1"); err != nil || !telemetry.Light() {
		t.Fatalf("Setup: %v, light %v", err, telemetry.Light())
	}
	var tp string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) { tp = r.Header.Get("traceparent") }))
	defer srv.Close()
	r := builtinstest.NewRegistry(http.Register)
	get, _ := r.Lookup("http.get")
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := telemetry.WithIDs(trace.ContextWithSpanContext(context.Background(), parent), parent.TraceID(), parent.SpanID())
	raw, _ := json.Marshal(map[string]any{"method": "GET", "url": srv.URL, "timeout": "5s"})
	if _, err := get.Exec(ctx, builtinstest.NewEnv(), raw); err != nil {
		t.Fatal(err)
	}
	prefix := "00-" + parent.TraceID().String() + "-"
	if !strings.HasPrefix(tp, prefix) || strings.Contains(tp, parent.SpanID().String()) {
		t.Errorf("traceparent %q: want the trace %s and a span id of the request's own", tp, parent.TraceID())
	}
}
