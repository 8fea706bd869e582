package runs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
)

// Events is the journal of one run, ready to follow (see Store.Events).
type Events struct {
	s  *Store
	id string
	// live means the run has not ended: its journal is followed on the bus.
	// Otherwise stored holds all of it, read from the bus or from the pinned
	// copy of a pinned run whose journal has expired (Seq is then the
	// position).
	live   bool
	stored []journal.Record
}

// Events checks that run id exists and returns its journal to follow. The
// journal of a run that has ended is read at once rather than followed: it
// may expire while it is read (a pinned run's record, re-indexed by Pin,
// outlives its journal), and then no end entry would ever come. It returns
// an error wrapping api.ErrUnknownRun for a run the cluster does not know.
func (s *Store) Events(ctx context.Context, id string) (*Events, error) {
	rec, err := s.Record(ctx, id)
	if err == nil && !rec.Done() {
		return &Events{s: s, id: id, live: true}, nil
	}
	if errors.Is(err, api.ErrUnknownRun) && bus.ValidToken(id) {
		// The index may lag the journal: a run just started on another
		// node is followed from its journal.
		if records, rerr := s.journals.Read(ctx, id); rerr == nil && len(records) > 0 && records[0].Kind == api.EntryStart {
			return &Events{s: s, id: id, live: true}, nil
		}
	}
	_, records, pinned, err := s.stored(ctx, id)
	if err != nil {
		return nil, err
	}
	if pinned == nil && (len(records) == 0 || records[len(records)-1].Kind != api.EntryEnd) {
		// No end yet: the record lagged the journal (a run just started,
		// or adopted). Follow it.
		return &Events{s: s, id: id, live: true}, nil
	}
	ev := &Events{s: s, id: id, stored: records}
	if pinned != nil { // its position in the pinned copy stands for its sequence
		ev.stored = make([]journal.Record, len(pinned.Journal))
		for i, e := range pinned.Journal {
			ev.stored[i] = journal.Record{JournalEntry: e, Seq: uint64(i + 1)}
		}
	}
	return ev, nil
}

// Follow calls fn with each entry whose ID is above after, until the end
// entry (sent or skipped), fn returns false or ctx ends. It returns an error
// wrapping api.ErrClosed when the store closes its streams or the bus closes.
func (ev *Events) Follow(ctx context.Context, after uint64, fn func(api.Event) bool) error {
	called := map[string]string{} // step id → builtin, from the call entries
	emit := func(r journal.Record) bool {
		switch r.Kind {
		case api.EntryCall:
			var c struct {
				Builtin string `json:"builtin"`
			}
			if json.Unmarshal(r.Data, &c) == nil {
				called[r.Key] = c.Builtin
			}
		case api.EntryResult:
			if _, ok := called[r.Key]; !ok { // a co-located step: its call is in its result
				var c struct {
					Call *struct {
						Builtin string `json:"builtin"`
					} `json:"call"`
				}
				if json.Unmarshal(r.Data, &c) == nil && c.Call != nil {
					called[r.Key] = c.Call.Builtin
				}
			}
		}
		if r.Seq > after && !fn(api.Event{ID: r.Seq, Kind: r.Kind, Data: eventData(r.JournalEntry, called)}) {
			return false
		}
		return r.Kind != api.EntryEnd
	}
	if !ev.live {
		for _, r := range ev.stored {
			if !emit(r) {
				break
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(ev.s.opts.Closing, cancel)()
	err := ev.s.journals.Follow(ctx, ev.id, emit)
	if err != nil && (ev.s.opts.Closing.Err() != nil || errors.Is(err, bus.ErrClosed)) {
		return fmt.Errorf("%w: the stream of run %s ended", api.ErrClosed, ev.id)
	}
	return err
}

// eventData returns a journal entry as one line of JSON with the fields an
// event adds: "key", and for a result "builtin" and "outcome".
func eventData(e api.JournalEntry, called map[string]string) json.RawMessage {
	var add [][2]any
	if e.Key != "" {
		add = append(add, [2]any{"key", e.Key})
	}
	if e.Kind == api.EntryResult {
		if b, ok := called[e.Key]; ok {
			add = append(add, [2]any{"builtin", b})
		}
		var r struct {
			Error json.RawMessage `json:"error"`
		}
		outcome := "ok"
		if json.Unmarshal(e.Data, &r) == nil && len(r.Error) > 0 && string(r.Error) != "null" {
			outcome = "error"
		}
		add = append(add, [2]any{"outcome", outcome})
	}
	var obj bytes.Buffer
	if err := json.Compact(&obj, e.Data); err != nil || obj.Len() < 2 || obj.Bytes()[0] != '{' {
		// Not a JSON object (a corrupt entry): pass its text on as a string.
		obj.Reset()
		raw, _ := api.EncodeJSON(string(e.Data))
		fmt.Fprintf(&obj, `{"raw":%s}`, raw)
	}
	var out bytes.Buffer
	out.Grow(obj.Len() + 64)
	out.WriteByte('{')
	for i, f := range add {
		if i > 0 {
			out.WriteByte(',')
		}
		name, _ := api.EncodeJSON(f[0])
		value, _ := api.EncodeJSON(f[1])
		out.Write(name)
		out.WriteByte(':')
		out.Write(value)
	}
	rest := obj.Bytes()[1:]
	if len(add) > 0 && rest[0] != '}' {
		out.WriteByte(',')
	}
	out.Write(rest)
	return out.Bytes()
}
