package amqp_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/amqp"
	"github.com/droverhq/drover/telemetry/telemetrytest"
)

// TestPublishSpan: a publish is a client span with the messaging
// conventions' attributes, whose trace context the message carries in its
// traceparent header; a refused publish fails the span.
func TestPublishSpan(t *testing.T) {
	r, rt, st := open(t, amqp.Config{URL: url})
	if st.State != builtins.StateOK {
		t.Fatalf("the test RabbitMQ must be up: %s", st.Error)
	}
	q, ch := queue(t)
	rec := telemetrytest.Record(t)
	if _, err := rt.Eval(r, fmt.Sprintf(`amqp.publish("", %q, "body", message_id="m-7")`, q), nil); err != nil {
		t.Fatal(err)
	}
	s := telemetrytest.Find(t, rec, "publish amq.default")
	a := telemetrytest.Attrs(s)
	for k, want := range map[string]string{
		"messaging.system": "rabbitmq", "messaging.destination.name": "amq.default", "messaging.rabbitmq.destination.routing_key": q,
		"messaging.operation.type": "send", "messaging.operation.name": "publish", "messaging.message.id": "m-7",
		"messaging.message.body.size": "4", "server.address": "127.0.0.1", "server.port": "5672",
	} {
		if a[k] != want {
			t.Errorf("%s = %q, want %q", k, a[k], want)
		}
	}
	for k, v := range a {
		if strings.Contains(v, "guest") {
			t.Errorf("%s = %q: a credential", k, v)
		}
	}
	if s.SpanKind() != trace.SpanKindClient || s.Status().Code == codes.Error {
		t.Errorf("kind %s, status %v", s.SpanKind(), s.Status())
	}
	d := get(t, ch, q)
	if want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"; d.Headers["traceparent"] != want {
		t.Errorf("the message's traceparent is %v, want %s (headers %v)", d.Headers["traceparent"], want, d.Headers)
	}

	rec.Reset()
	if _, err := rt.Eval(r, `amqp.publish("no-such-exchange-y", "k", "b")`, nil); err == nil {
		t.Fatal("a publish to a missing exchange succeeded")
	}
	if s := telemetrytest.Find(t, rec, "publish no-such-exchange-y"); s.Status().Code != codes.Error || telemetrytest.Attrs(s)["error.type"] != "amqp" {
		t.Errorf("refused publish: status %v, attributes %v", s.Status(), s.Attributes())
	}
}

// TestTriggerTraceParent: the run a message starts has the message's
// traceparent as its parent, if it carries a valid one.
func TestTriggerTraceParent(t *testing.T) {
	q, ch := queue(t)
	cfg := amqp.Config{URL: url, Triggers: []amqp.Trigger{{Queue: q, Script: "s"}}}
	inst, err := amqp.Integration.Open(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := inst.(*amqp.Client)
	defer c.Close()
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for id, h := range map[string]amqp091.Table{"valid": {"traceparent": tp}, "invalid": {"traceparent": "00-xyz"}, "none": nil} {
		if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp091.Publishing{MessageId: id, Body: []byte("1"), Headers: h}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	got := map[string]string{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Triggers(ctx, func(_ context.Context, r builtins.TriggeredRun) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			got[r.Key] = r.TraceParent
			return "run-" + r.Key, nil
		})
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	cancel()
	<-done
	if want := map[string]string{"valid": tp, "invalid": "", "none": ""}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("trace parents by message: %v, want %v", got, want)
	}
}
