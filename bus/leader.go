package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaderReq asks a stream's leader for one message: by sequence, or the last
// on a subject.
type leaderReq struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
}

// leaderMsg is a message as a stream leader's message-get API returns it.
type leaderMsg struct {
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
	Hdrs    []byte    `json:"hdrs,omitempty"`
	Data    []byte    `json:"data,omitempty"`
	Time    time.Time `json:"time"`
	Header  nats.Header
}

// leaderGet reads one message of stream through its leader
// ($JS.API.STREAM.MSG.GET): what the leader has stored, where a direct get
// (which jetstream's Stream.GetMsg makes whenever a stream allows them, as
// Drover's do) may be answered by a replica that is behind. It returns
// jetstream.ErrMsgNotFound when there is no such message.
func (b *Bus) leaderGet(ctx context.Context, stream string, req leaderReq) (*leaderMsg, error) {
	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reply, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, data)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error,omitempty"`
		Message *leaderMsg          `json:"message,omitempty"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("message get: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	m := resp.Message
	if len(m.Hdrs) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(m.Hdrs); err != nil {
			return nil, fmt.Errorf("message get: headers: %w", err)
		}
	}
	return m, nil
}

// LeaderEntry is Entry read through the journal stream's leader: after a
// write refused or dropped as a duplicate, the entry that stands is there,
// whatever a replica has seen yet. It returns ErrNotFound when the subject
// holds nothing.
func (b *Bus) LeaderEntry(ctx context.Context, subject string) (Msg, error) {
	var m *leaderMsg
	err := retry(ctx, func(ctx context.Context) (err error) {
		m, err = b.leaderGet(ctx, journalStreamOf(subject), leaderReq{LastFor: subject})
		return err
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Msg{}, fmt.Errorf("%w: %s", ErrNotFound, subject)
		}
		return Msg{}, fmt.Errorf("bus: read %s: %w", subject, err)
	}
	return Msg{Subject: m.Subject, Header: Header(m.Header), Data: m.Data, Seq: m.Seq}, nil
}
