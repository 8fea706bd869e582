package amqp

import (
	"context"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/droverhq/drover/telemetry"
)

// scope is the instrumentation scope of the publishes' client spans.
const scope = "github.com/droverhq/drover/starlark/builtins/amqp"

// describe is the name and attributes of a publish's client span, by the
// OpenTelemetry messaging conventions: the system, the exchange
// ("amq.default" for the default one, ""), the routing key, the operation
// (type "send": the conventions' name for what they called "publish"
// before 1.28; name "publish"), the message id and body size, and the
// broker.
func (c *Client) describe(a args, msg amqp091.Publishing) (string, []attribute.KeyValue) {
	exchange := a.Exchange
	if exchange == "" {
		exchange = "amq.default"
	}
	return "publish " + exchange, append([]attribute.KeyValue{
		semconv.MessagingSystemRabbitMQ,
		semconv.MessagingDestinationName(exchange),
		semconv.MessagingRabbitMQDestinationRoutingKey(a.RoutingKey),
		semconv.MessagingOperationTypeSend,
		semconv.MessagingOperationName("publish"),
		semconv.MessagingMessageID(msg.MessageId),
		semconv.MessagingMessageBodySize(len(msg.Body)),
	}, telemetry.ServerAttrs(c.addr)...)
}

// headers is a message's header table as a propagation.TextMapCarrier: the
// trace context travels in headers traceparent and tracestate, as strings.
type headers amqp091.Table

var _ propagation.TextMapCarrier = headers(nil)

// Get implements propagation.TextMapCarrier.
func (h headers) Get(key string) string {
	s, _ := h[key].(string)
	return s
}

// Set implements propagation.TextMapCarrier.
func (h headers) Set(key, value string) { h[key] = value }

// Keys implements propagation.TextMapCarrier.
func (h headers) Keys() []string {
	out := make([]string, 0, len(h))
	for k := range h {
		out = append(out, k)
	}
	return out
}

// traceParent is the W3C traceparent a message carries, if it is a valid
// one: the parent of the run the message starts.
func traceParent(h amqp091.Table) string {
	if sc := trace.SpanContextFromContext(telemetry.Propagator.Extract(context.Background(), headers(h))); sc.IsValid() {
		return headers(h).Get("traceparent")
	}
	return ""
}
