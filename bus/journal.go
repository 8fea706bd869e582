package bus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Append writes one journal entry and waits for JetStream to acknowledge it.
// msgID de-duplicates retried publishes of the same entry. Writing a different
// entry to a subject that already holds one fails with ErrExists.
func (b *Bus) Append(ctx context.Context, subject, msgID string, hdr Header, data []byte) (uint64, error) {
	seq, _, err := b.AppendOnce(ctx, subject, msgID, hdr, data)
	return seq, err
}

// AppendOnce is Append that also reports whether JetStream dropped the write
// as a duplicate of an earlier one with the same msgID (within the stream's
// duplicate window): the caller's own retried write, already stored, or
// another writer's entry under the same id, whose content may differ.
func (b *Bus) AppendOnce(ctx context.Context, subject, msgID string, hdr Header, data []byte) (seq uint64, duplicate bool, err error) {
	var ack *jetstream.PubAck
	err = retry(ctx, func(ctx context.Context) (err error) {
		ack, err = b.js.PublishMsg(ctx, b.entryMsg(subject, hdr, data), append(pubRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(journalStreamOf(subject)))...)
		return err
	})
	if err != nil {
		err = b.appendErr(ctx, subject, err)
		if errors.Is(err, ErrExists) {
			// The expectation is checked before the message id: a retried
			// write that was stored may be refused rather than acknowledged
			// as a duplicate. The stored entry tells.
			if m, gerr := b.LeaderEntry(ctx, subject); gerr == nil && bytes.Equal(m.Data, data) {
				return m.Seq, true, b.synced(ctx)
			}
		}
		if errors.Is(err, ErrExists) { // the caller may rely on the stored entry
			err = errors.Join(err, b.synced(ctx))
		}
		return 0, false, err
	}
	return ack.Sequence, ack.Duplicate, b.synced(ctx)
}

// Pending is an asynchronous journal append or step dispatch.
type Pending struct {
	b       *Bus
	subject string
	fut     jetstream.PubAckFuture
	// resend publishes the message again, synchronously, with the same
	// message id (the stream drops it if the first publish was stored).
	resend func(ctx context.Context) error
	// durable is set for a journal append: Wait waits for the sync policy.
	durable bool
}

// AppendAsync starts a journal append without waiting for its acknowledgement;
// call Wait before relying on it. Appends from one Bus are stored in order.
func (b *Bus) AppendAsync(subject, msgID string, hdr Header, data []byte) (*Pending, error) {
	fut, err := b.js.PublishMsgAsync(b.entryMsg(subject, hdr, data), append(asyncRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(journalStreamOf(subject)))...)
	if err != nil {
		return nil, b.appendErr(context.Background(), subject, err)
	}
	return &Pending{b: b, subject: subject, fut: fut, durable: true, resend: func(ctx context.Context) error {
		_, err := b.Append(ctx, subject, msgID, hdr, data)
		return err
	}}, nil
}

// Err delivers the error of a failed publish; nothing is sent on success.
func (p *Pending) Err() <-chan error { return p.fut.Err() }

// Wait blocks until the append is acknowledged or fails. An acknowledgement
// that does not come (the stream's leader died with it) is not waited for
// forever: after asyncAckTimeout the entry is published again, synchronously
// and with retries, under the same message id.
func (p *Pending) Wait(ctx context.Context) error {
	select {
	case <-p.fut.Ok():
		if p.durable {
			return p.b.synced(ctx)
		}
		return nil
	case err := <-p.fut.Err():
		return p.Resend(ctx, err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stored blocks until the append is acknowledged (or, failed, appended
// again) and returns the wait for it to be on disk under the sync policy:
// take Stored of a group of writes, then call each wait, to pay one sync for
// all (see syncedLater).
func (p *Pending) Stored(ctx context.Context) (durable func(context.Context) error, err error) {
	select {
	case <-p.fut.Ok():
		if p.durable {
			return p.b.syncedLater(), nil
		}
		return noSync, nil
	case err := <-p.fut.Err():
		return noSync, p.Resend(ctx, err) // a resent append waits for its sync
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Resend handles err, the failure of the asynchronous publish: when nobody
// answered (a timeout, no responders) it publishes the message again,
// synchronously and with retries, under the same message id; otherwise it
// returns err.
func (p *Pending) Resend(ctx context.Context, err error) error {
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) || transient(err) {
		return p.resend(ctx)
	}
	return p.b.appendErr(ctx, p.subject, err)
}

// jsStoreFailed is JetStream's generic "storing the message failed" error
// code (JSStreamStoreFailedF), which is all a publish refused by the journal's
// one-message-per-subject limit gets: nats.go names no constant for it.
const jsStoreFailed jetstream.ErrorCode = 10077

// appendErr classifies the failure of an append to subject: ErrExists when
// the subject already holds an entry (a write refused by the per-subject
// limit, whose only code is the generic jsStoreFailed: the subject is read
// to tell), ErrClosed, or the error itself.
func (b *Bus) appendErr(ctx context.Context, subject string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence:
			return fmt.Errorf("%w: %s", ErrExists, subject)
		case jsStoreFailed:
			if _, gerr := b.Entry(ctx, subject); gerr == nil {
				return fmt.Errorf("%w: %s", ErrExists, subject)
			}
		}
	}
	if isClosed(err) {
		return fmt.Errorf("%w: append %s", ErrClosed, subject)
	}
	return fmt.Errorf("bus: append %s: %w", subject, err)
}

func (b *Bus) msg(subject string, hdr Header, data []byte) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: data}
	if len(hdr) > 0 {
		m.Header = nats.Header(hdr)
	}
	return m
}

// Entry returns the journal entry stored at subject, or ErrNotFound.
func (b *Bus) Entry(ctx context.Context, subject string) (Msg, error) {
	var raw *jetstream.RawStreamMsg
	err := retry(ctx, func(ctx context.Context) (err error) {
		s, err := b.journalStream(ctx, subject)
		if err != nil {
			return err
		}
		raw, err = s.GetLastMsgForSubject(ctx, subject)
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Msg{}, fmt.Errorf("%w: %s", ErrNotFound, subject)
		}
		return Msg{}, fmt.Errorf("bus: read %s: %w", subject, err)
	}
	return Msg{Subject: raw.Subject, Header: Header(raw.Header), Data: raw.Data, Seq: raw.Sequence}, nil
}

// Read returns every journal entry matching filter (e.g. JournalFilter(run)) in
// the order they were written.
func (b *Bus) Read(ctx context.Context, filter string) ([]Msg, error) {
	var out []Msg
	err := retryEach(ctx, 15*time.Second, func(ctx context.Context) (err error) {
		out, err = b.readOnce(ctx, filter)
		return err
	})
	return out, err
}

// readOnce is one try of Read: an ordered consumer whose stream leader moves
// fails with no responders, and Read tries again.
func (b *Bus) readOnce(ctx context.Context, filter string) ([]Msg, error) {
	counts, err := b.journalSubjectCounts(ctx, filter, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bus: read %s: %w", filter, err)
	}
	total := 0
	for _, n := range counts {
		total += int(n)
	}
	if total == 0 {
		return nil, nil
	}
	var cons jetstream.Consumer
	err = retry(ctx, func(ctx context.Context) (err error) {
		cons, err = b.js.OrderedConsumer(ctx, journalStreamOf(filter), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{filter},
			DeliverPolicy:  jetstream.DeliverAllPolicy,
			// The consumer is (re)created inside Fetch, retried without
			// regard to any context, forever by default: bound it, and
			// fetch under ctx (fetchCtx), so that a read during a leader
			// election fails over to the caller's retries instead of
			// hanging.
			MaxResetAttempts: 3,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bus: read %s: %w", filter, err)
	}
	// A consumer left to its inactivity threshold costs the stream work
	// on every purge (sealing) meanwhile.
	defer b.deleteConsumer(cons)
	out := make([]Msg, 0, total)
	for {
		batch, err := fetchCtx(ctx, cons, total)
		if err != nil {
			return nil, fmt.Errorf("bus: read %s: %w", filter, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, fmt.Errorf("bus: read %s: %w", filter, err)
			}
			out = append(out, Msg{Subject: m.Subject(), Header: Header(m.Headers()), Data: m.Data(), Seq: md.Sequence.Stream})
			if md.NumPending == 0 {
				return out, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("bus: read %s: %w", filter, err)
		}
		if n == 0 || ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
}

// journalSubjectCounts returns how many entries each journal subject
// matching filter holds, each try of the request bounded by attempt.
func (b *Bus) journalSubjectCounts(ctx context.Context, filter string, attempt time.Duration) (map[string]uint64, error) {
	var info *jetstream.StreamInfo
	err := retryEach(ctx, attempt, func(ctx context.Context) error {
		s, err := b.journalStream(ctx, filter)
		if err != nil {
			return err
		}
		info, err = s.Info(ctx, jetstream.WithSubjectFilter(filter))
		return err
	})
	if err != nil {
		return nil, err
	}
	return info.State.Subjects, nil
}

// fetchCtx is cons.Fetch(n) that returns when ctx ends: an ordered
// consumer's Fetch re-creates its consumer first, which does not watch any
// context. An abandoned Fetch ends on its own (MaxResetAttempts).
func fetchCtx(ctx context.Context, cons jetstream.Consumer, n int) (jetstream.MessageBatch, error) {
	type fetched struct {
		batch jetstream.MessageBatch
		err   error
	}
	ch := make(chan fetched, 1)
	go func() {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(2*time.Second))
		ch <- fetched{batch, err}
	}()
	select {
	case f := <-ch:
		return f.batch, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Follow calls fn with every journal entry matching filter (e.g.
// JournalFilter(run)) in the order they were written: first the entries
// already stored, then each new one as it is appended. It returns nil as soon
// as fn returns false, ctx.Err() when ctx ends, and ErrClosed when the bus
// closes. fn runs on the caller's goroutine; the consumer Follow reads through
// is deleted before it returns.
func (b *Bus) Follow(ctx context.Context, filter string, fn func(Msg) bool) error {
	var cons jetstream.Consumer
	err := retry(ctx, func(ctx context.Context) (err error) {
		cons, err = b.js.OrderedConsumer(ctx, journalStreamOf(filter), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{filter},
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		})
		return err
	})
	if err != nil {
		if isClosed(err) {
			return fmt.Errorf("%w: follow %s", ErrClosed, filter)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("bus: follow %s: %w", filter, err)
	}
	defer b.deleteConsumer(cons)
	// Short pulls with frequent heartbeats: a pull lost to a consumer not yet
	// known on every server of a cluster, or to a leader lost with a node,
	// is noticed in about a second and the consumer made again (the
	// defaults, 30 s pulls, left a live run page without entries for 10 s
	// and more).
	it, err := cons.Messages(jetstream.PullExpiry(2*time.Second), jetstream.PullHeartbeat(500*time.Millisecond))
	if err != nil {
		return fmt.Errorf("bus: follow %s: %w", filter, err)
	}
	defer it.Stop()
	// Stop also interrupts the ordered consumer's own re-creation after a
	// missed heartbeat, which does not watch ctx.
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case isClosed(err), errors.Is(err, jetstream.ErrConnectionClosed), b.nc.IsClosed():
				return fmt.Errorf("%w: follow %s", ErrClosed, filter)
			}
			return fmt.Errorf("bus: follow %s: %w", filter, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("bus: follow %s: %w", filter, err)
		}
		if !fn(Msg{Subject: m.Subject(), Header: Header(m.Headers()), Data: m.Data(), Seq: md.Sequence.Stream}) {
			return nil
		}
	}
}

// deleteConsumer removes an ordered consumer from the journal stream at once
// rather than leaving it to its inactivity threshold. It is best effort: the
// threshold still removes a consumer whose deletion failed.
func (b *Bus) deleteConsumer(cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil || b.nc.IsClosed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.js.DeleteConsumer(ctx, info.Stream, info.Name)
}
