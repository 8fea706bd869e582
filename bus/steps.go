package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishStep sends a step envelope to node's subject on the STEPS stream and
// waits for the stream to store it. msgID de-duplicates a retried publish.
func (b *Bus) PublishStep(ctx context.Context, node, msgID string, hdr Header, data []byte) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	_, err := b.js.PublishMsg(ctx, b.msg(StepSubject(node), hdr, data), append(pubRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(StepsStream))...)
	if err != nil {
		return fmt.Errorf("bus: dispatch step to %s: %w", node, err)
	}
	return nil
}

// PublishStepAsync is PublishStep without waiting for the stream's
// acknowledgement: the caller waits for the worker's answer and watches
// Pending.Err for a failed publish.
func (b *Bus) PublishStepAsync(node, msgID string, hdr Header, data []byte) (*Pending, error) {
	fut, err := b.js.PublishMsgAsync(b.msg(StepSubject(node), hdr, data), append(asyncRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(StepsStream))...)
	if err != nil {
		return nil, fmt.Errorf("bus: dispatch step to %s: %w", node, err)
	}
	return &Pending{b: b, subject: StepSubject(node), fut: fut, resend: func(ctx context.Context) error {
		return b.PublishStep(ctx, node, msgID, hdr, data)
	}}, nil
}

// StepMsg is one step envelope delivered to a worker. Ack it once the result is
// journaled; Nak hands it back for redelivery.
type StepMsg struct {
	Msg
	m jetstream.Msg
}

// Ack acknowledges the envelope without waiting.
func (s StepMsg) Ack() { s.m.Ack() }

// Nak asks for redelivery.
func (s StepMsg) Nak() { s.m.Nak() }

// ConsumeSteps delivers node's step envelopes to handle, each in its own
// goroutine, until stop is called. The durable consumer remembers what was
// acknowledged across restarts.
func (b *Bus) ConsumeSteps(ctx context.Context, node string, handle func(StepMsg)) (stop func(), err error) {
	cons, err := b.js.CreateOrUpdateConsumer(ctx, StepsStream, jetstream.ConsumerConfig{
		Durable:       "worker_" + node,
		FilterSubject: StepSubject(node),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 4096,
		DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: step consumer for %s: %w", node, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, _ := m.Metadata()
		var seq uint64
		if md != nil {
			seq = md.Sequence.Stream
		}
		go handle(StepMsg{Msg: Msg{Subject: m.Subject(), Header: Header(m.Headers()), Data: m.Data(), Seq: seq}, m: m})
	}, jetstream.PullMaxMessages(512),
		// Short pulls with frequent heartbeats: when the consumer's leader dies
		// with a node, the worker notices in seconds and pulls from the new
		// leader (the defaults, 30 s pulls, stall it for half a minute or more).
		jetstream.PullExpiry(5*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return nil, fmt.Errorf("bus: consume steps for %s: %w", node, err)
	}
	return cc.Stop, nil
}

// Publish sends a core NATS message (not stored).
func (b *Bus) Publish(subject string, hdr Header, data []byte) error {
	if err := b.nc.PublishMsg(b.msg(subject, hdr, data)); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe delivers core messages on subject (wildcards allowed) to handle,
// in order, on one goroutine, until the returned function is called.
func (b *Bus) Subscribe(subject string, handle func(Msg)) (unsubscribe func(), err error) {
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) {
		handle(Msg{Subject: m.Subject, Header: Header(m.Header), Data: m.Data})
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// NewInbox returns a unique subject for replies.
func (b *Bus) NewInbox() string { return b.nc.NewInbox() }
