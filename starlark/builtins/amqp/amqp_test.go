package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/droverhq/drover/starlark/builtins"
	"github.com/droverhq/drover/starlark/builtins/amqp"
	"github.com/droverhq/drover/starlark/builtins/builtinstest"
)

// url is the RabbitMQ this machine runs; DROVER_TEST_AMQP points elsewhere.
var url = builtinstest.FromEnv("DROVER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")

func open(t *testing.T, cfg amqp.Config) (*builtins.Registry, *builtinstest.Runtime, builtins.IntegrationStatus) {
	t.Helper()
	return builtinstest.OpenIntegration(t, amqp.Register, &cfg)
}

// queue declares a queue for one test and returns it with a channel to read it.
func queue(t *testing.T) (string, *amqp091.Channel) {
	t.Helper()
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatalf("the test RabbitMQ must be up: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("drover-test-%d", time.Now().UnixNano())
	if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	return name, ch
}

func get(t *testing.T, ch *amqp091.Channel, q string) amqp091.Delivery {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatal("no message in the queue")
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func TestPublish(t *testing.T) {
	r, rt, st := open(t, amqp.Config{URL: url})
	if st.State != builtins.StateOK {
		t.Fatalf("the test RabbitMQ must be up: %s", st.Error)
	}
	q, ch := queue(t)
	if _, err := rt.Eval(r, fmt.Sprintf(`amqp.publish("", %q, {"order": 7, "customer": "acme"}, headers={"customer": "acme"})`, q), nil); err != nil {
		t.Fatal(err)
	}
	d := get(t, ch, q)
	if string(d.Body) != `{"customer":"acme","order":7}` || d.ContentType != "application/json" || d.Headers["customer"] != "acme" ||
		d.DeliveryMode != amqp091.Persistent || !strings.HasPrefix(d.MessageId, "test/") {
		t.Fatalf("message: body %s type %s headers %v mode %d id %q", d.Body, d.ContentType, d.Headers, d.DeliveryMode, d.MessageId)
	}
	if _, err := rt.Eval(r, fmt.Sprintf(`amqp.publish("", %q, "plain", message_id="m-1")`, q), nil); err != nil {
		t.Fatal(err)
	}
	if d := get(t, ch, q); string(d.Body) != "plain" || d.ContentType != "text/plain" || d.MessageId != "m-1" {
		t.Fatalf("second message: %s %s %q", d.Body, d.ContentType, d.MessageId)
	}
}

func TestPublishErrors(t *testing.T) {
	r, rt, _ := open(t, amqp.Config{URL: url})
	for _, c := range []struct{ expr, want string }{
		{`amqp.publish("no-such-exchange-x", "k", "b")`, `amqp at 127.0.0.1:5672: NOT_FOUND - no exchange 'no-such-exchange-x'`},
		{`amqp.publish("", "k", lambda: 1)`, "amqp.publish: for parameter body"},
		{`amqp.publish("", "k", "b", headers={"a": 1})`, "amqp.publish: for parameter headers"},
	} {
		_, err := rt.Eval(r, c.expr, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.expr, err, c.want)
		}
	}
	// The node's connection is still good after a channel error.
	q, ch := queue(t)
	if _, err := rt.Eval(r, fmt.Sprintf(`amqp.publish("", %q, "after")`, q), nil); err != nil {
		t.Fatal(err)
	}
	if d := get(t, ch, q); string(d.Body) != "after" {
		t.Fatalf("after an error: %s", d.Body)
	}
}

func TestStates(t *testing.T) {
	if _, _, st := open(t, amqp.Config{}); st.State != builtins.StateUnconfigured {
		t.Errorf("no url: %+v", st)
	}
	if _, _, st := open(t, amqp.Config{URL: "amqp://guest:pw-amqp-5a5a@127.0.0.1:1/"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, "connect to 127.0.0.1:1") || strings.Contains(st.Error, "pw-amqp-5a5a") {
		t.Errorf("down: %+v", st)
	}
	if _, _, st := open(t, amqp.Config{URL: "http://x"}); st.State != builtins.StateFailing || !strings.Contains(st.Error, "url: want amqp://") {
		t.Errorf("bad url: %+v", st)
	}
	r, rt, _ := open(t, amqp.Config{})
	if _, err := rt.Eval(r, `amqp.publish("", "k", "b")`, nil); err == nil || !strings.Contains(err.Error(), "has no broker configured") {
		t.Errorf("unconfigured step: %v", err)
	}
}

// TestTriggerHandsBackAfterAPause: a message whose run cannot start, for a
// reason that may pass, is handed back after a pause rather than at once,
// and the failure shows in the integration's state.
func TestTriggerHandsBackAfterAPause(t *testing.T) {
	q, _ := queue(t)
	cfg := amqp.Config{URL: url, Triggers: []amqp.Trigger{{Queue: q, Script: "s"}}}
	inst, err := amqp.Integration.Open(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := inst.(*amqp.Client)
	defer c.Close()
	conn, err := amqp091.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if err := ch.PublishWithContext(context.Background(), "", q, false, false, amqp091.Publishing{MessageId: "m", Body: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		c.Triggers(ctx, func(context.Context, builtins.TriggeredRun) (string, error) {
			calls.Add(1)
			return "", errors.New("journal: nats: timeout")
		})
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	time.Sleep(1500 * time.Millisecond) // the window in which a hot loop would spin thousands of times
	cancel()
	<-done
	if n := calls.Load(); n < 1 || n > 3 {
		t.Fatalf("%d start attempts in 1.5 s for one message", n)
	}
	if err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "could not start its run, handed back: journal: nats: timeout") {
		t.Fatalf("state: %v", err)
	}
}
