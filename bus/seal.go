package bus

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Primitives for sealing a journal (journal.Store.Seal): read a run's
// entries in one request, write its sealed form only if nothing was
// appended since, and purge the entries it replaces.

// ReadDirect returns the journal entries matching filter, in order, with
// one direct get (multi_last: the last message of each matching subject,
// which for the journal's one-message subjects is every entry) and no
// consumer, which Read creates. A filter matching more than a direct get
// returns (1,024) is read through Read. On a replicated stream a replica
// that is behind may answer: pair it with AppendAfter, which the leader
// checks.
func (b *Bus) ReadDirect(ctx context.Context, filter string) ([]Msg, error) {
	var msgs []Msg
	var tooMany bool
	err := retry(ctx, func(ctx context.Context) (err error) {
		msgs, tooMany, err = b.multiLast(ctx, filter)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bus: read %s: %w", filter, err)
	}
	if tooMany {
		return b.Read(ctx, filter)
	}
	slices.SortFunc(msgs, func(a, b Msg) int { return cmp.Compare(a.Seq, b.Seq) })
	return msgs, nil
}

// multiLast makes one multi_last direct get.
func (b *Bus) multiLast(ctx context.Context, filter string) (msgs []Msg, tooMany bool, err error) {
	req, _ := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{[]string{filter}})
	w, err := b.multi.wait(b.nc)
	if err != nil {
		return nil, false, err
	}
	defer w.close()
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+journalStreamOf(filter), w.subject, req); err != nil {
		return nil, false, err
	}
	for {
		var m *nats.Msg
		select {
		case m = <-w.msgs:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of batch
			return msgs, false, nil
		case "404": // nothing matches
			return nil, false, nil
		case "413": // more subjects match than one get returns
			return nil, true, nil
		default:
			return nil, false, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("direct get: bad sequence %q", m.Header.Get(jetstream.SequenceHeader))
		}
		msgs = append(msgs, Msg{Subject: m.Header.Get(jetstream.SubjectHeader), Data: m.Data, Seq: seq})
	}
}

// AppendAfter writes one journal entry at subject only if the last entry
// matching filter has sequence last (0: none does): the stream's leader
// checks it. It fails with ErrConflict when something was appended since,
// and ErrExists when subject holds an entry already.
func (b *Bus) AppendAfter(ctx context.Context, subject, msgID, filter string, last uint64, data []byte) (uint64, error) {
	ack, err := b.publishExpecting(ctx, subject, msgID, filter, last, data)
	if err != nil {
		return 0, err
	}
	if ack.Duplicate {
		return 0, fmt.Errorf("%w: %s", ErrExists, subject)
	}
	return ack.Sequence, b.synced(ctx)
}

// PurgeJournal removes the journal entries matching filter whose sequence is
// below before, and returns how many it removed.
func (b *Bus) PurgeJournal(ctx context.Context, filter string, before uint64) (uint64, error) {
	var purged uint64
	err := retry(ctx, func(ctx context.Context) error {
		req, _ := json.Marshal(struct {
			Filter string `json:"filter"`
			Seq    uint64 `json:"seq"`
		}{filter, before})
		reply, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.PURGE."+journalStreamOf(filter), req)
		if err != nil {
			return err
		}
		var resp struct {
			Error  *jetstream.APIError `json:"error"`
			Purged uint64              `json:"purged"`
		}
		if err := json.Unmarshal(reply.Data, &resp); err != nil {
			return err
		}
		if resp.Error != nil {
			return resp.Error
		}
		purged = resp.Purged
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bus: purge %s below %d: %w", filter, before, err)
	}
	return purged, nil
}

// JournalSubjects returns the journal subjects matching filter that hold an
// entry (e.g. "drover.journal.*.end": the runs that ended), sorted (run ids
// sort by their start time).
func (b *Bus) JournalSubjects(ctx context.Context, filter string) ([]string, error) {
	counts, err := b.journalSubjectCounts(ctx, filter, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("bus: list %s: %w", filter, err)
	}
	out := make([]string, 0, len(counts))
	for s := range counts {
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// MaxPayload is the largest message the server takes.
func (b *Bus) MaxPayload() int { return int(b.nc.MaxPayload()) }
