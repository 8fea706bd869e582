// Package amqp is the amqp integration: scripts publish to RabbitMQ (AMQP
// 0-9-1) through the executing node's connection, opened once per node,
// with publisher confirms, so business logic never holds a channel.
//
//	amqp.publish(exchange, routing_key, body, headers=None, message_id=None) -> None
//
// The step returns once the broker has confirmed the message (it is
// routed and, for durable queues, stored: persistent delivery). body is a
// string, sent as text/plain, or any other JSON value, sent as
// application/json. message_id defaults to the step's idempotency key
// (<run>/<step>): a publish retried after a lost confirm, or executed again
// by the node that adopts the run, carries the same id, for consumers to
// drop duplicates. A message no queue is bound for is dropped by the broker,
// as AMQP does (give the exchange an alternate exchange to keep them). The
// message carries the W3C trace context of its publish's client span in
// its traceparent and tracestate headers, and a run a trigger starts from
// a message continues that trace.
//
//	integrations:
//	  amqp:
//	    url: amqp://app:${RABBIT_PASSWORD}@127.0.0.1:5672/
//
// Its init registers the integration into builtins.Default.
package amqp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.starlark.net/starlark"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/telemetry"
)

// Config is the amqp integration's configuration.
type Config struct {
	// URL is the broker's amqp:// (or amqps://) URL with its credentials
	// ("": not configured). It is a secret, and its password too.
	URL string `yaml:"url" secret:"true"`
	// Triggers bind queues to deployed scripts: each message starts a run.
	Triggers []Trigger `yaml:"triggers"`
}

// Trigger binds a queue to a deployed script: each message starts one run,
// its body the run's input (JSON), chosen headers its attributes. The
// message is acknowledged once the run is durably accepted; one delivered
// again (same message id) starts nothing more.
type Trigger struct {
	Queue  string `yaml:"queue"`
	Script string `yaml:"script"`
	// Prefetch bounds the messages a node has taken and not acknowledged
	// (default 32).
	Prefetch int `yaml:"prefetch"`
	// Attrs name run attributes after message headers: {customer:
	// x-customer} makes header x-customer the run's attribute customer.
	Attrs map[string]string `yaml:"attrs"`
}

// Client is a node's amqp instance: one connection, and channels in
// confirm mode reused by publishes one at a time.
type Client struct {
	cfg  Config
	addr string // host:port, for messages

	mu         sync.Mutex
	conn       *amqp091.Connection
	idle       []*channel
	dials      int              // connections opened
	triggerErr map[string]error // by queue: why its trigger failed last, until it consumes again
}

// channel is a channel in confirm mode, with the reason it was closed.
type channel struct {
	*amqp091.Channel
	closed chan *amqp091.Error
}

// closeReason is why the broker closed ch (a refused publish), waiting a
// little for it, or nil.
func (ch *channel) closeReason() *amqp091.Error {
	select {
	case e := <-ch.closed:
		return e
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}

// Integration is the amqp integration.
var Integration = builtins.Define("amqp", "RabbitMQ: publish with publisher confirms", Config{}, func(_ context.Context, c Config) (*Client, error) {
	cl := &Client{cfg: c}
	if c.URL == "" {
		return cl, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		return nil, errors.New("url: want amqp://user:password@host:5672/vhost")
	}
	if p, ok := u.User.Password(); ok {
		builtins.Secret(p)
	}
	cl.addr = u.Host
	for i, t := range c.Triggers {
		if t.Queue == "" || t.Script == "" {
			return nil, fmt.Errorf("triggers[%d]: give a queue and the deployed script its messages run", i)
		}
		for attr := range t.Attrs {
			if err := api.CheckAttrName(attr); err != nil {
				return nil, fmt.Errorf("triggers[%d]: attrs: %q: an attribute name is 1 to 64 letters, digits or _", i, attr)
			}
		}
	}
	return cl, nil
})

func init() {
	Integration.Steps = []*builtins.Step{{Name: "amqp.publish", Doc: "publish a message to an exchange, confirmed by the broker",
		Args: publishArgs, Exec: builtins.Call("amqp", publish), Target: target}}
	Register(builtins.Default)
}

// Register adds the amqp integration and its builtins to r.
func Register(r *builtins.Registry) { r.MustRegisterIntegration(Integration) }

// Provision opens the connection.
func (c *Client) Provision(context.Context) error {
	if c.cfg.URL == "" {
		return nil
	}
	_, err := c.connection()
	return err
}

// Check tells whether the connection is open, opening it again if it was
// lost, and whether the triggers consume their queues.
func (c *Client) Check(context.Context) error {
	if c.cfg.URL == "" {
		return fmt.Errorf("no url (add integrations: amqp: url: amqp://user:password@host:5672/ to the node's --config file): %w", builtins.ErrNotConfigured)
	}
	if _, err := c.connection(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, t := range c.cfg.Triggers {
		if err := c.triggerErr[t.Queue]; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setTriggerErr records why queue's trigger failed (nil: it consumes).
func (c *Client) setTriggerErr(queue string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.triggerErr == nil {
		c.triggerErr = map[string]error{}
	}
	c.triggerErr[queue] = err
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// connection returns the open connection, dialling when there is none or it
// was lost.
func (c *Client) connection() (*amqp091.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	conn, err := amqp091.DialConfig(c.cfg.URL, amqp091.Config{Dial: amqp091.DefaultDial(5 * time.Second), Properties: amqp091.Table{"connection_name": "drover"}})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s; is RabbitMQ up, and the url right?", c.addr, builtins.Redact(err.Error()))
	}
	c.conn, c.idle = conn, nil
	c.dials++
	return conn, nil
}

// channel takes an idle channel in confirm mode, or opens one.
func (c *Client) channel() (*channel, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	for len(c.idle) > 0 {
		ch := c.idle[len(c.idle)-1]
		c.idle = c.idle[:len(c.idle)-1]
		if !ch.IsClosed() {
			c.mu.Unlock()
			return ch, nil
		}
	}
	c.mu.Unlock()
	ach, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ach.Confirm(false); err != nil {
		ach.Close()
		return nil, err
	}
	return &channel{Channel: ach, closed: ach.NotifyClose(make(chan *amqp091.Error, 1))}, nil
}

// release gives a channel back for the next publish.
func (c *Client) release(ch *channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ch.IsClosed() && len(c.idle) < 16 {
		c.idle = append(c.idle, ch)
		return
	}
	ch.Close()
}

// args are amqp.publish's journaled arguments.
type args struct {
	Exchange    string            `json:"exchange"`
	RoutingKey  string            `json:"routing_key"`
	Body        string            `json:"body"`
	ContentType string            `json:"content_type"`
	Headers     map[string]string `json:"headers,omitempty"`
	MessageID   string            `json:"message_id,omitempty"`
}

func publishArgs(b *starlark.Builtin, a starlark.Tuple, kw []starlark.Tuple) (any, error) {
	var exchange, key string
	var body starlark.Value
	var headers *starlark.Dict
	var messageID string
	if err := builtins.UnpackArgs(b.Name(), a, kw, "exchange", &exchange, "routing_key", &key, "body", &body, "headers?", &headers, "message_id?", &messageID); err != nil {
		return nil, err
	}
	out := args{Exchange: exchange, RoutingKey: key, MessageID: messageID}
	if s, ok := body.(starlark.String); ok {
		out.Body, out.ContentType = string(s), "text/plain"
	} else {
		v, err := builtins.ToJSON(body)
		if err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "body", Err: err}
		}
		raw, err := builtins.Canonical(v)
		if err != nil {
			return nil, &builtins.ArgError{Func: b.Name(), Param: "body", Err: err}
		}
		out.Body, out.ContentType = string(raw), "application/json"
	}
	if headers != nil {
		out.Headers = map[string]string{}
		for _, k := range headers.Keys() {
			v, _, _ := headers.Get(k)
			ks, kok := k.(starlark.String)
			vs, vok := v.(starlark.String)
			if !kok || !vok {
				return nil, &builtins.ArgError{Func: b.Name(), Param: "headers", Err: fmt.Errorf("%s: %s: want string keys and values", k, v.Type())}
			}
			out.Headers[string(ks)] = string(vs)
		}
	}
	return out, nil
}

// target is the breaker target of the node's broker.
func target(env builtins.Env, _ json.RawMessage) string {
	if c, err := builtins.Use[*Client](env, "amqp"); err == nil && c.addr != "" {
		return "amqp " + c.addr
	}
	return ""
}

func publish(ctx context.Context, env builtins.Env, c *Client, a args) (any, error) {
	if c.cfg.URL == "" {
		return nil, builtins.Errorf(builtins.CodeBadArgs, "amqp: node %s has no broker configured (integrations: amqp: url in its --config file)", env.Node())
	}
	msg := amqp091.Publishing{ContentType: a.ContentType, Body: []byte(a.Body), DeliveryMode: amqp091.Persistent,
		MessageId: a.MessageID, Timestamp: time.Now().UTC(), Headers: amqp091.Table{}}
	if msg.MessageId == "" {
		msg.MessageId = builtins.StepFrom(ctx).Key
	}
	for k, v := range a.Headers {
		msg.Headers[k] = v
	}
	ctx, span := telemetry.StartClient(ctx, scope, func() (string, []attribute.KeyValue) { return c.describe(a, msg) })
	defer span.End()
	if _, ok := msg.Headers["traceparent"]; !ok { // unless the script sends its own
		telemetry.Propagator.Inject(ctx, headers(msg.Headers))
	}
	err := c.send(ctx, a, msg)
	if err != nil && span.IsRecording() {
		builtins.FailSpan(span, err)
	}
	return nil, err
}

// send publishes msg and waits for the broker's confirm.
func (c *Client) send(ctx context.Context, a args, msg amqp091.Publishing) error {
	ch, err := c.channel()
	if err != nil {
		return &builtins.StepError{Code: builtins.CodeTransport, Retryable: true, Message: fmt.Sprintf("amqp at %s: %s", c.addr, builtins.Redact(err.Error()))}
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, a.Exchange, a.RoutingKey, false, false, msg)
	if err != nil {
		ch.Close()
		return failure(c, err)
	}
	acked, err := conf.WaitContext(ctx)
	if err != nil {
		ch.Close()
		return failure(c, err)
	}
	c.release(ch)
	if !acked {
		if e := ch.closeReason(); e != nil { // the broker closed the channel: why
			return failure(c, e)
		}
		return &builtins.StepError{Code: "amqp", Retryable: true, Message: fmt.Sprintf("amqp at %s: the broker refused the message (nack) on exchange %q", c.addr, a.Exchange)}
	}
	return nil
}

// failure turns a publish error into the step's: the broker's refusal (an
// exchange that does not exist) is "amqp"; a lost connection "transport",
// retried.
func failure(c *Client, err error) error {
	var ae *amqp091.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &ae) && ae.Code == amqp091.NotFound:
		return &builtins.StepError{Code: "amqp", Message: fmt.Sprintf("amqp at %s: %s", c.addr, ae.Reason)}
	}
	return &builtins.StepError{Code: builtins.CodeTransport, Retryable: true, Message: fmt.Sprintf("amqp at %s: %s", c.addr, builtins.Redact(err.Error()))}
}
