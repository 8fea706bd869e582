package engine

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus/bustest"
	"github.com/droverhq/drover/starlark/builtins"
	amqpbuiltin "github.com/droverhq/drover/starlark/builtins/amqp"
	sqlbuiltin "github.com/droverhq/drover/starlark/builtins/sql"
	"github.com/droverhq/drover/telemetry"
)

// TestTraceAcrossCluster: a run started with an incoming traceparent on n1,
// whose script queries PostgreSQL (a connection only n2 has: placed there)
// and calls an HTTP server, is one trace, the caller's: the run's span, each
// step's call and exec spans, the query's and the request's client spans,
// each the child of the one before; and the HTTP server got the trace
// context of the request's client span.
func TestTraceAcrossCluster(t *testing.T) {
	rec := recordSpans(t)
	var mu sync.Mutex
	var received string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		received = r.Header.Get("traceparent")
		mu.Unlock()
	}))
	defer srv.Close()

	n1 := newTestNode(t, Options{Name: "n1", Listen: "127.0.0.1:-1", Registry: builtins.Default.Clone(), NoRecovery: true})
	newTestNode(t, Options{Name: "n2", NATSURL: n1.NATSURL(), Registry: builtins.Default.Clone(), NoRecovery: true,
		Integrations: map[string]any{"sql": &sqlbuiltin.Config{Connections: map[string]sqlbuiltin.Connection{
			"db": {DSN: envOr("DROVER_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")}}}}})
	bustest.PollUntil(t, func() bool {
		nodes, err := n1.Nodes(context.Background())
		return err == nil && len(nodes) == 2
	})

	incoming := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x0a, 0xf7, 0x65, 0x19}, SpanID: trace.SpanID{0xb7, 0xad}, TraceFlags: trace.FlagsSampled})
	input, _ := json.Marshal(srv.URL)
	end := runRequest(t, n1, api.StartRequest{Script: testScript(`
def main(url):
    rows = sql.query("db", "select $1::int + 1 as n", [41])
    return [rows[0]["n"], http.get(url).status]
`), Input: input, TraceParent: "00-" + incoming.TraceID().String() + "-" + incoming.SpanID().String() + "-01"})
	if end.Status != api.StatusCompleted || string(end.Result) != "[42,200]" {
		t.Fatalf("run: %s %s %+v", end.Status, end.Result, end.Error)
	}

	run := telemetry.SpanID(end.ID, "", "run")
	var spans map[trace.SpanID]sdktrace.ReadOnlySpan
	bustest.PollUntil(t, func() bool { // the run's span ends as the run does
		spans = map[trace.SpanID]sdktrace.ReadOnlySpan{}
		for _, s := range rec.Ended() {
			spans[s.SpanContext().SpanID()] = s
		}
		return spans[run] != nil
	})
	for _, s := range spans {
		if s.SpanContext().TraceID() != incoming.TraceID() {
			t.Errorf("span %s is in trace %s, not the caller's %s", s.Name(), s.SpanContext().TraceID(), incoming.TraceID())
		}
	}
	// clientOf is the client span under step's exec span.
	clientOf := func(step string) sdktrace.ReadOnlySpan {
		for _, s := range spans {
			if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == telemetry.SpanID(end.ID, step, "exec") {
				return s
			}
		}
		t.Fatalf("no client span under the exec span of step %s", step)
		return nil
	}
	query, request := clientOf("1"), clientOf("2")
	for _, want := range []struct {
		name   string
		span   trace.SpanID
		parent trace.SpanID
	}{
		{"run", run, incoming.SpanID()},
		{"call of sql.query", telemetry.SpanID(end.ID, "1", "call"), run},
		{"exec of sql.query", telemetry.SpanID(end.ID, "1", "exec"), telemetry.SpanID(end.ID, "1", "call")},
		{"the query", query.SpanContext().SpanID(), telemetry.SpanID(end.ID, "1", "exec")},
		{"call of http.get", telemetry.SpanID(end.ID, "2", "call"), run},
		{"exec of http.get", telemetry.SpanID(end.ID, "2", "exec"), telemetry.SpanID(end.ID, "2", "call")},
		{"the request", request.SpanContext().SpanID(), telemetry.SpanID(end.ID, "2", "exec")},
	} {
		s := spans[want.span]
		if s == nil {
			t.Errorf("no span for the %s; %d spans", want.name, len(spans))
			continue
		}
		if s.Parent().SpanID() != want.parent {
			t.Errorf("the %s (%s): parent %s, want %s", want.name, s.Name(), s.Parent().SpanID(), want.parent)
		}
	}
	if a := spans[telemetry.SpanID(end.ID, "1", "call")]; a == nil || !hasAttr(a, "drover.node", "n2") {
		t.Errorf("the query was not executed on n2: call span %v", a)
	}
	if !hasAttr(query, "db.system.name", "postgresql") || !hasAttr(query, "db.query.text", "select $1::int + 1 as n") || hasAttr(query, "db.query.text", "41") {
		t.Errorf("query span %s: %v", query.Name(), query.Attributes())
	}
	if !hasAttr(request, "http.request.method", "GET") || !hasAttr(request, "url.full", srv.URL) || !hasAttr(request, "http.response.status_code", "200") {
		t.Errorf("request span %s: %v", request.Name(), request.Attributes())
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "00-" + incoming.TraceID().String() + "-" + request.SpanContext().SpanID().String() + "-01"; received != want {
		t.Errorf("the server got traceparent %q, want %q", received, want)
	}
}

// TestTraceThroughAMQP: a run that publishes to RabbitMQ and the run the
// message triggers are one trace: the triggered run's span is the child of
// the publish's client span, whose trace context the message carried.
func TestTraceThroughAMQP(t *testing.T) {
	rec := recordSpans(t)
	url := envOr("DROVER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("the test RabbitMQ must be up: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("drover-trace-%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(queue, false, false, false)
	n := newTestNode(t, Options{Registry: builtins.Default.Clone(), Integrations: map[string]any{"amqp": &amqpbuiltin.Config{URL: url,
		Triggers: []amqpbuiltin.Trigger{{Queue: queue, Script: "orders"}}}}})
	ctx := context.Background()
	if _, err := n.Deploy(ctx, api.DeployRequest{Script: api.Script{Name: "orders", Main: "main.star", Files: map[string]string{"main.star": "def main(input):\n    return input[\"n\"] * 2\n"}}}); err != nil {
		t.Fatal(err)
	}
	publisher := runScript(t, n, fmt.Sprintf("def main(input):\n    amqp.publish(\"\", %q, {\"n\": 21})\n", queue), "")
	if publisher.Status != api.StatusCompleted {
		t.Fatalf("publishing run: %s %+v", publisher.Status, publisher.Error)
	}
	var triggered api.Run
	bustest.PollUntil(t, func() bool {
		runs, err := n.List(ctx, api.ListFilter{Script: "orders", Status: api.StatusCompleted})
		if err != nil || len(runs) != 1 {
			return false
		}
		triggered = runs[0]
		_, ok := spanOf(rec, triggered.ID, "", "run")
		return ok
	})
	var publish sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient && s.Parent().SpanID() == telemetry.SpanID(publisher.ID, "1", "exec") {
			publish = s
		}
	}
	if publish == nil || publish.SpanContext().TraceID() != telemetry.TraceID(publisher.ID) {
		t.Fatalf("no publish span in the publishing run's trace: %v", publish)
	}
	run, _ := spanOf(rec, triggered.ID, "", "run")
	if run.SpanContext().TraceID() != publish.SpanContext().TraceID() || run.Parent().SpanID() != publish.SpanContext().SpanID() {
		t.Errorf("the triggered run's span: trace %s parent %s; want trace %s parent %s (the publish)",
			run.SpanContext().TraceID(), run.Parent().SpanID(), publish.SpanContext().TraceID(), publish.SpanContext().SpanID())
	}
}
