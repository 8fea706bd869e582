package engine

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// TestTraceSpans checks that a dispatched step carries W3C trace context in its
// NATS headers (the worker's exec span is a child of the coordinator's call
// span) and that span ids derive from run and step ids.
func TestTraceSpans(t *testing.T) {
	rec := recordSpans(t)

	var execs atomic.Int64
	reg := logRegistry(&execs)
	var traceparent atomic.Value
	reg.MustRegister(&builtins.Step{Name: "test.trace", Exec: func(ctx context.Context, _ builtins.Env, _ json.RawMessage) (any, error) {
		h := propagation.MapCarrier{}
		telemetry.Propagator.Inject(ctx, h)
		traceparent.Store(h.Get("traceparent"))
		return nil, nil
	}})
	n := newTestNode(t, Options{Registry: reg, AlwaysDispatch: true})
	end := runScript(t, n, "def main(input):\n    test.echo(1)\n    test.trace()\n    tag(customer=\"acme\")\n    test.flaky()\n", "")
	if end.Status != api.StatusCompleted {
		t.Fatalf("run: %+v", end.Error)
	}
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		byID[s.SpanContext().SpanID().String()] = s
	}
	trace := telemetry.TraceID(end.ID)
	for _, want := range []struct{ step, kind, parentStep, parentKind string }{
		{"", "run", "", ""},
		{"1", "call", "", "run"},
		{"1", "exec", "1", "call"},
		{"2", "exec", "2", "call"},
		{"3", "exec", "3", "call"}, // each attempt its span
		{"3", "exec@2", "3", "call"},
		{"3", "exec@3", "3", "call"},
	} {
		s, ok := byID[telemetry.SpanID(end.ID, want.step, want.kind).String()]
		if !ok {
			t.Fatalf("no span for step %q %s; have %d spans", want.step, want.kind, len(byID))
		}
		if s.SpanContext().TraceID() != trace {
			t.Errorf("span %s: trace %s, want %s", s.Name(), s.SpanContext().TraceID(), trace)
		}
		if want.parentKind != "" && s.Parent().SpanID() != telemetry.SpanID(end.ID, want.parentStep, want.parentKind) {
			t.Errorf("span %s: parent %s, want the %s span of step %q", s.Name(), s.Parent().SpanID(), want.parentKind, want.parentStep)
		}
	}
	if s := byID[telemetry.SpanID(end.ID, "3", "exec").String()]; s.Status().Code != codes.Error || !hasAttr(s, "drover.attempt", "1") {
		t.Errorf("first attempt of test.flaky: status %v, attributes %v", s.Status(), s.Attributes())
	}
	if s := byID[telemetry.SpanID(end.ID, "3", "call").String()]; s.Status().Code == codes.Error || !hasAttr(s, "drover.node", n.opts.Name) ||
		!hasAttr(s, "drover.script", "t") || !hasAttr(s, "drover.run", end.ID) || !hasAttr(s, "drover.attr.customer", "acme") {
		t.Errorf("call of test.flaky: status %v, attributes %v", s.Status(), s.Attributes())
	}
	if s := byID[telemetry.SpanID(end.ID, "", "run").String()]; !hasAttr(s, "drover.attr.customer", "acme") || !hasAttr(s, "drover.script", "t") {
		t.Errorf("run span: attributes %v", s.Attributes())
	}
	failed := runScript(t, n, "def main(input):\n    test.down()\n", "")
	if s, ok := spanOf(rec, failed.ID, "1", "call"); !ok || s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "connection refused") {
		t.Errorf("call of test.down: %v", s)
	}
	tp2, _ := traceparent.Load().(string)
	if want := "00-" + trace.String() + "-" + telemetry.SpanID(end.ID, "2", "exec").String(); len(tp2) < len(want) || tp2[:len(want)] != want {
		t.Errorf("traceparent inside the step = %q, want prefix %q", tp2, want)
	}
}

// spanOf returns the span kind of step of run, once ended.
func spanOf(rec *tracetest.SpanRecorder, run, step, kind string) (sdktrace.ReadOnlySpan, bool) {
	id := telemetry.SpanID(run, step, kind)
	for _, s := range rec.Ended() {
		if s.SpanContext().SpanID() == id {
			return s, true
		}
	}
	return nil, false
}

// hasAttr reports whether span s has attribute key with value (as text).
func hasAttr(s sdktrace.ReadOnlySpan, key, value string) bool {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key && kv.Value.Emit() == value {
			return true
		}
	}
	return false
}

// TestExternalNATS runs a script on a node that uses an external NATS server
// instead of an embedded one (DROVER_TEST_NATS, default nats://127.0.0.1:4222).
func TestExternalNATS(t *testing.T) {
	url := os.Getenv("DROVER_TEST_NATS")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	var execs atomic.Int64
	name := "ext" + time.Now().Format("150405.000000")[7:]
	n, err := NewNode(context.Background(), Options{Name: "ext" + name, NATSURL: url, Registry: testRegistry(&execs), AlwaysDispatch: true})
	if err != nil {
		t.Fatalf("external NATS at %s: %v (start nats-server -js there, or set DROVER_TEST_NATS)", url, err)
	}
	defer n.Close(context.Background())
	defer n.bus.RemoveInbox(context.Background(), n.Name()) // the shared server outlives the test
	end := runScript(t, n, "def main(input):\n    return test.echo(input)\n", `{"via":"external"}`)
	if end.Status != api.StatusCompleted || string(end.Result) != `{"via":"external"}` {
		t.Fatalf("run %+v %s", end.Error, end.Result)
	}
}

// TestCloseInterruptsWithoutFailing: a run blocked in a step when the node
// shuts down is interrupted through its context once the grace period ends,
// and stays unfinished in the journal (for recovery) instead of failing.
func TestCloseInterruptsWithoutFailing(t *testing.T) {
	var execs atomic.Int64
	reg := testRegistry(&execs)
	started := make(chan struct{})
	reg.MustRegister(&builtins.Step{Name: "test.wait", Exec: func(ctx context.Context, _ builtins.Env, _ json.RawMessage) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	dir := t.TempDir()
	n, err := NewNode(context.Background(), Options{Name: "n1", DataDir: dir, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    test.echo(1)\n    test.wait()\n")})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	grace, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := n.Close(grace); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Start(ctx, api.StartRequest{Script: testScript("def main(input):\n    pass\n")}); err == nil {
		t.Fatal("a closed node accepted a run")
	}
	n2 := newTestNode(t, Options{Name: "n1", DataDir: dir, Registry: reg, NoRecovery: true})
	d, err := n2.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != api.StatusRunning || len(d.Steps) != 2 || d.Steps[0].Outcome != "ok" || d.Steps[1].Outcome != "pending" {
		t.Fatalf("after shutdown: status %s steps %+v", d.Status, d.Steps)
	}
}

// recordSpans installs a tracer provider that records spans, with Drover's
// derived ids, until the test ends.
func recordSpans(t *testing.T) *tracetest.SpanRecorder {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(telemetry.IDGenerator{}), sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	return rec
}
