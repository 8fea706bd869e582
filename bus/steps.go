package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishStep sends a step envelope to node's subject on the STEPS stream and
// waits for the stream to store it. msgID de-duplicates a retried publish.
func (b *Bus) PublishStep(ctx context.Context, node, msgID string, hdr Header, data []byte) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	_, err := b.js.PublishMsg(ctx, b.msg(StepSubject(node), hdr, data), append(pubRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(b.stepsStream(node)))...)
	if err != nil {
		return fmt.Errorf("bus: dispatch step to %s: %w", node, err)
	}
	return nil
}

// PublishStepAsync is PublishStep without waiting for the stream's
// acknowledgement: the caller waits for the worker's answer and watches
// Pending.Err for a failed publish.
func (b *Bus) PublishStepAsync(node, msgID string, hdr Header, data []byte) (*Pending, error) {
	fut, err := b.js.PublishMsgAsync(b.msg(StepSubject(node), hdr, data), append(asyncRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(b.stepsStream(node)))...)
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
	if err := b.ensureInbox(ctx, node); err != nil {
		return nil, err
	}
	cons, err := b.js.CreateOrUpdateConsumer(ctx, b.stepsStream(node), jetstream.ConsumerConfig{
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

// PublishRequest sends a core NATS message whose answer is expected on
// reply (Msg.Reply where it is received).
func (b *Bus) PublishRequest(subject, reply string, data []byte) error {
	if err := b.nc.PublishRequest(subject, reply, data); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// Subscribe delivers core messages on subject (wildcards allowed) to handle,
// in order, on one goroutine, until the returned function is called.
func (b *Bus) Subscribe(subject string, handle func(Msg)) (unsubscribe func(), err error) {
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) {
		handle(Msg{Subject: m.Subject, Header: Header(m.Header), Data: m.Data, Reply: m.Reply})
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// NewInbox returns a unique subject for replies.
func (b *Bus) NewInbox() string { return b.nc.NewInbox() }

// Step inboxes. Every node has a stream of its own, DROVER_STEPS_<node>, on
// drover.steps.<node>. With an embedded server it has one replica, on the
// node's own server (pinned there by a server tag): dispatching a step is one
// hop and one local write, with no replication, and a node that restarts finds
// the envelopes it had not acknowledged. Losing the node loses its inbox,
// which is harmless: the coordinator places the step again (attempt + 1) when
// the node is dropped, and the journal, not the inbox, is the source of truth.
// Against an external NATS, whose servers carry no such tags, the inbox gets
// the configured replicas instead.

// stepsStream is the stream holding node's step envelopes.
func (b *Bus) stepsStream(node string) string { return StepsStream + "_" + node }

// nodeTag is the server tag of an embedded node's server.
func nodeTag(node string) string { return "drover-node:" + strings.ToLower(node) }

// ensureSteps removes the stream all nodes shared in earlier versions, whose
// subjects would overlap the inboxes (it was in memory: nothing is lost with
// it), and creates this node's inbox.
func (b *Bus) ensureSteps(ctx context.Context) error {
	if err := b.js.DeleteStream(ctx, StepsStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("bus: remove the shared steps stream: %w", err)
	}
	return b.ensureInbox(ctx, serverName(b.opts.Name))
}

// ensureInbox creates node's step inbox if it does not exist.
func (b *Bus) ensureInbox(ctx context.Context, node string) error {
	cfg := jetstream.StreamConfig{
		Name:        b.stepsStream(node),
		Description: "Drover step envelopes for node " + node,
		Subjects:    []string{StepSubject(node)},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      stepsMaxAge,
		Duplicates:  time.Minute,
		Replicas:    b.opts.Replicas,
	}
	if b.ns != nil && node == serverName(b.opts.Name) {
		cfg.Replicas = 1
		cfg.Placement = &jetstream.Placement{Tags: []string{nodeTag(node)}}
	}
	if _, err := b.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("bus: steps stream %s: %w", cfg.Name, err)
	}
	return nil
}

// RemoveInbox deletes node's step inbox, with any envelope still in it: for a
// node retired for good (a node that starts again creates it again).
func (b *Bus) RemoveInbox(ctx context.Context, node string) error {
	if err := b.js.DeleteStream(ctx, b.stepsStream(node)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("bus: remove the step inbox of %s: %w", node, err)
	}
	return nil
}
