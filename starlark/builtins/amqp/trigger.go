package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/droverhq/drover/starlark/builtins"
)

// Triggers consumes the configured queues until ctx ends, starting a run
// for each message (builtins.Triggerer). It returns once the messages
// taken are acknowledged or handed back.
func (c *Client) Triggers(ctx context.Context, start builtins.StartFunc) error {
	var wg sync.WaitGroup
	for _, t := range c.cfg.Triggers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.consume(ctx, t, start)
		}()
	}
	wg.Wait()
	return nil
}

// consume consumes t's queue, again after each failure (a lost connection,
// a queue that does not exist yet), waiting a little more each time.
func (c *Client) consume(ctx context.Context, t Trigger, start builtins.StartFunc) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.consumeOnce(ctx, t, start)
		if ctx.Err() != nil {
			return
		}
		c.setTriggerErr(t.Queue, fmt.Errorf("trigger on queue %s: %s; consuming again in %s", t.Queue, builtins.Redact(err.Error()), backoff))
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// consumeOnce consumes t's queue on a channel of its own until the channel
// fails or ctx ends, handling up to Prefetch messages at once.
func (c *Client) consumeOnce(ctx context.Context, t Trigger, start builtins.StartFunc) error {
	conn, err := c.connection()
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	prefetch := t.Prefetch
	if prefetch <= 0 {
		prefetch = 32
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, t.Queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	c.setTriggerErr(t.Queue, nil)
	var wg sync.WaitGroup
	defer wg.Wait() // the messages taken are acknowledged or handed back first
	for d := range deliveries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.handle(t, d, start)
		}()
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("the channel closed")
}

// handle starts the run a message asks for, then acknowledges the message;
// one that can never start a run is rejected (dead-lettered if the queue
// has a dead-letter exchange), any other failure hands it back.
func (c *Client) handle(t Trigger, d amqp091.Delivery, start builtins.StartFunc) {
	attrs := map[string]string{}
	for attr, header := range t.Attrs {
		if v, ok := d.Headers[header].(string); ok {
			attrs[attr] = v
		}
	}
	// Not the consumer's ctx: a message taken is acknowledged or handed
	// back, whether or not the node is stopping.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := start(ctx, builtins.TriggeredRun{Script: t.Script, Input: d.Body, Attrs: attrs, Source: "amqp queue " + t.Queue, Key: d.MessageId,
		TraceParent: traceParent(d.Headers)})
	switch {
	case err == nil:
		d.Ack(false)
	case errors.Is(err, builtins.ErrPermanent):
		d.Reject(false)
	default:
		// Handed back after a pause, so that a failure that lasts (the
		// journal unavailable) does not spin the message; the failure shows
		// in the integration's state meanwhile.
		c.setTriggerErr(t.Queue, fmt.Errorf("trigger on queue %s: a message could not start its run, handed back: %s", t.Queue, builtins.Redact(err.Error())))
		time.Sleep(handBackAfter)
		d.Nack(false, true)
	}
}

// handBackAfter is how long a message that could not start its run, for a
// reason that may pass, is held before it is handed back.
const handBackAfter = time.Second
