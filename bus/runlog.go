package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Run logs (Options.RunLog): many journal entries of a run on one subject,
// each write fenced by the sequence its writer last saw there.

// entryMsg is msg for a journal entry written once on a subject of its own:
// with run logs, the stream does not refuse a second message on the subject,
// the expectation that it holds none does. Every entry carries it, so that
// write-once holds on a node whose journal gets run logs under it
// (EnableRunLog on another node).
func (b *Bus) entryMsg(subject string, hdr Header, data []byte) *nats.Msg {
	m := b.msg(subject, hdr, data)
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set(expectedLastSubjectSeq, "0")
	return m
}

// ErrUnsupported is returned by EnableRunLog on a NATS server that cannot
// hold run logs safely: the journal keeps its layout.
var ErrUnsupported = errors.New("bus: not supported by this NATS server")

// guarded reports whether the NATS server keeps runLogGuard: nats-server
// 2.11 or later (AllowMsgTTL). An earlier one would ignore it, and an
// earlier Drover could update a journal with logs back.
func (b *Bus) guarded() bool {
	if b.ns != nil {
		return true // the embedded server is this build's
	}
	var major, minor int
	fmt.Sscanf(b.nc.ConnectedServerVersion(), "%d.%d", &major, &minor)
	return major > 2 || major == 2 && minor >= 11
}

// EnableRunLog gives a journal without run logs (a cluster's, made by an
// earlier release) run logs: every journal stream is updated to hold many
// messages per subject, with the guard that refuses an earlier release's
// update back (runLogGuard); then this bus writes logs. Call it once every
// node of the cluster reads logs (cluster.Upgrade, journal.FeatureRunLog):
// the other nodes' buses then do the same, the update being done already.
func (b *Bus) EnableRunLog(ctx context.Context) error {
	if b.runLog.Load() {
		return nil
	}
	if !b.guarded() {
		return fmt.Errorf("%w: run logs need nats-server 2.11 or later (this one is %s), whose streams can refuse an earlier Drover's update back", ErrUnsupported, b.nc.ConnectedServerVersion())
	}
	n, err := b.Partitions(ctx)
	if err != nil {
		return err
	}
	for p := range n {
		if _, err := b.js.UpdateStream(ctx, b.runLogJournalConfig(p)); err != nil {
			return fmt.Errorf("bus: give journal stream %s run logs: %w", JournalStreamOf(p), err)
		}
	}
	b.runLog.Store(true)
	return nil
}

// expectedLastSubjectSeq is the header that makes JetStream refuse a message
// unless its subject's last message has the given sequence (0: none).
const expectedLastSubjectSeq = "Nats-Expected-Last-Subject-Sequence"

// AppendFenced writes one entry to subject, a subject many entries share (a
// run's log, with RunLog), only if the subject's last entry has sequence
// last (0: it holds none), and returns the entry's sequence. It fails with
// ErrConflict when another entry was written there since last: the writer
// reads what was (LastSeq, Read) and decides. msgID de-duplicates a retried
// write within the stream's window; a retried write refused for its
// expectation is also a conflict, which the read shows to be the writer's own.
func (b *Bus) AppendFenced(ctx context.Context, subject, msgID string, last uint64, data []byte) (uint64, error) {
	ack, err := b.publishExpecting(ctx, subject, msgID, "", last, data)
	if err != nil {
		return 0, err
	}
	if ack.Duplicate {
		return 0, fmt.Errorf("%w: %s: a write with id %s is stored already", ErrConflict, subject, msgID)
	}
	return ack.Sequence, b.synced(ctx)
}

// publishExpecting publishes data to subject only if the last message on
// filter (subject when "") has sequence last; a message since fails it with
// ErrConflict.
func (b *Bus) publishExpecting(ctx context.Context, subject, msgID, filter string, last uint64, data []byte) (*jetstream.PubAck, error) {
	m := b.msg(subject, nil, data)
	m.Header = nats.Header{expectedLastSubjectSeq: {strconv.FormatUint(last, 10)}}
	if filter != "" {
		m.Header.Set("Nats-Expected-Last-Subject-Sequence-Subject", filter)
	}
	var ack *jetstream.PubAck
	err := retry(ctx, func(ctx context.Context) (err error) {
		ack, err = b.js.PublishMsg(ctx, m, append(pubRetry, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(journalStreamOf(subject)))...)
		return err
	})
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, fmt.Errorf("%w: %s: written since sequence %d", ErrConflict, cmp.Or(filter, subject), last)
		}
		return nil, b.appendErr(ctx, subject, err)
	}
	return ack, nil
}

// LastSeq returns the sequence of subject's last entry, or 0 when it holds
// none.
func (b *Bus) LastSeq(ctx context.Context, subject string) (uint64, error) {
	m, err := b.Entry(ctx, subject)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return m.Seq, err
}
