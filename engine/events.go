package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/bus"
)

// Event is one journal entry of a run as a live feed delivers it: one
// Server-Sent Event of GET /v1/runs/{id}/events, and what Node.Events and
// engine/client's Client.Events pass to their callback.
type Event struct {
	// ID is the entry's sequence in the journal stream. It increases within a
	// run; a client that reconnects sends the last one it saw as Last-Event-ID.
	// For a pinned run whose journal has expired it is the entry's position
	// (1, 2, …) in the pinned copy.
	ID uint64 `json:"id"`
	// Kind is the entry kind: start, tag, call, result, patch, version,
	// cancel or end.
	Kind string `json:"kind"`
	// Data is the journal entry (StartEntry, CallEntry, ResultEntry, …) as one
	// line of JSON, with "key" added when the entry's subject has one (step
	// id, tag sequence, patch id, version number) and, for a result, the
	// "builtin" of its call and its "outcome" (ok or error).
	Data json.RawMessage `json:"data"`
}

// Events calls fn with every journal entry of run id in the order it was
// written: first the entries already journaled, then each new one as it is
// written. It returns nil after the run's end entry or as soon as fn returns
// false, ctx.Err() when ctx ends, and ErrUnknownRun, before calling fn, for a
// run the cluster does not know.
func (n *Node) Events(ctx context.Context, id string, fn func(Event) bool) error {
	src, err := n.eventSource(ctx, id)
	if err != nil {
		return err
	}
	return src.follow(ctx, 0, fn)
}

// events is the journal of one run, ready to follow.
type events struct {
	n  *Node
	id string
	// live means the run has not ended: its journal is followed on the bus.
	// Otherwise stored holds all of it, read from the bus or from the pinned
	// copy of a pinned run whose journal has expired (Seq is then the
	// position).
	live   bool
	stored []bus.Msg
}

// eventSource checks that run id exists and returns its journal to follow.
// The journal of a run that has ended is read at once rather than followed:
// it may expire while it is read (a pinned run's record, re-indexed by Pin,
// outlives its journal), and then no end entry would ever come.
func (n *Node) eventSource(ctx context.Context, id string) (*events, error) {
	rec, err := n.record(ctx, id)
	if err == nil && !rec.Done() {
		return &events{n: n, id: id, live: true}, nil
	}
	if err == nil {
		msgs, err := n.bus.Read(ctx, bus.JournalFilter(id))
		if err != nil {
			return nil, err
		}
		if len(msgs) > 0 && msgs[0].Subject == bus.JournalSubject(id, "start", "") {
			return &events{n: n, id: id, stored: msgs}, nil
		}
	}
	// Unknown, or its journal has expired: a pinned run is in its copy.
	exp, perr := n.pinnedExport(ctx, id)
	if perr != nil {
		if err != nil {
			return nil, err
		}
		return nil, perr
	}
	s := &events{n: n, id: id, stored: make([]bus.Msg, len(exp.Journal))}
	for i, e := range exp.Journal {
		s.stored[i] = bus.Msg{Subject: bus.JournalSubject(id, e.Kind, e.Key), Data: e.Data, Seq: uint64(i + 1)}
	}
	return s, nil
}

// follow calls fn with each entry whose ID is above after, until the end
// entry (sent or skipped), fn returns false or ctx ends.
func (s *events) follow(ctx context.Context, after uint64, fn func(Event) bool) error {
	prefix := bus.JournalPrefix + s.id + "."
	called := map[string]string{} // step id → builtin, from the call entries
	emit := func(m bus.Msg) bool {
		kind, key, _ := strings.Cut(strings.TrimPrefix(m.Subject, prefix), ".")
		if kind == "call" {
			var c struct {
				Builtin string `json:"builtin"`
			}
			if json.Unmarshal(m.Data, &c) == nil {
				called[key] = c.Builtin
			}
		}
		if m.Seq > after && !fn(Event{ID: m.Seq, Kind: kind, Data: eventData(kind, key, m.Data, called)}) {
			return false
		}
		return kind != "end"
	}
	if !s.live {
		for _, m := range s.stored {
			if !emit(m) {
				break
			}
		}
		return nil
	}
	return s.n.bus.Follow(ctx, bus.JournalFilter(s.id), emit)
}

// eventData returns a journal entry as one line of JSON with the fields an
// event adds: "key", and for a result "builtin" and "outcome".
func eventData(kind, key string, entry []byte, called map[string]string) json.RawMessage {
	var add [][2]any
	if key != "" {
		add = append(add, [2]any{"key", key})
	}
	if kind == "result" {
		if b, ok := called[key]; ok {
			add = append(add, [2]any{"builtin", b})
		}
		var r struct {
			Error json.RawMessage `json:"error"`
		}
		outcome := "ok"
		if json.Unmarshal(entry, &r) == nil && len(r.Error) > 0 && string(r.Error) != "null" {
			outcome = "error"
		}
		add = append(add, [2]any{"outcome", outcome})
	}
	var obj bytes.Buffer
	if err := json.Compact(&obj, entry); err != nil || obj.Len() < 2 || obj.Bytes()[0] != '{' {
		// Not a JSON object (a corrupt entry): pass its text on as a string.
		obj.Reset()
		raw, _ := encodeJSON(string(entry))
		fmt.Fprintf(&obj, `{"raw":%s}`, raw)
	}
	var out bytes.Buffer
	out.Grow(obj.Len() + 64)
	out.WriteByte('{')
	for i, f := range add {
		if i > 0 {
			out.WriteByte(',')
		}
		name, _ := encodeJSON(f[0])
		value, _ := encodeJSON(f[1])
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

// httpEvents serves GET /v1/runs/{id}/events: the run's journal as
// Server-Sent Events, live until its end entry.
func (n *Node) httpEvents(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		var err error
		if after, err = strconv.ParseUint(strings.TrimSpace(s), 10, 64); err != nil {
			writeErr(w, fmt.Errorf("%w: Last-Event-ID %q: want the id of an event of this stream", ErrBadInput, s))
			return
		}
	}
	src, err := n.eventSource(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // the stream outlives a server's WriteTimeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	w.WriteHeader(http.StatusOK)
	rc.Flush()

	// The stream also ends when the node closes, so that it does not hold
	// the node's shutdown.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(n.baseCtx, cancel)()
	defer context.AfterFunc(n.streamsCtx, cancel)()
	feed := make(chan Event)
	done := make(chan error, 1)
	go func() {
		done <- src.follow(ctx, after, func(e Event) bool {
			select {
			case feed <- e:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	idle := time.NewTimer(n.opts.EventsKeepAlive)
	defer idle.Stop()
	for {
		var err error
		select {
		case e := <-feed:
			_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Kind, e.Data)
		case <-idle.C:
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		case err := <-done:
			if r.Context().Err() == nil && (err != nil || n.baseCtx.Err() != nil || n.streamsCtx.Err() != nil) {
				n.streamFailed(w, src.id, err)
				rc.Flush()
			}
			return
		}
		if err == nil {
			if ferr := rc.Flush(); !errors.Is(ferr, http.ErrNotSupported) {
				err = ferr
			}
		}
		if err != nil { // the client has gone
			cancel()
			<-done
			return
		}
		idle.Reset(n.opts.EventsKeepAlive)
	}
}

// streamFailed ends an event stream that cannot go on (the node is shutting
// down, or the bus failed) with an "error" event holding the API error, so
// that the client reconnects with Last-Event-ID rather than wait.
func (n *Node) streamFailed(w http.ResponseWriter, id string, err error) {
	var body ErrorBody
	switch {
	case n.baseCtx.Err() != nil || n.streamsCtx.Err() != nil || errors.Is(err, bus.ErrClosed):
		body.Error.Code = CodeShuttingDown
		body.Error.Message = fmt.Sprintf("node %s is shutting down: reconnect to another node with Last-Event-ID", n.opts.Name)
	default:
		n.log.Warn().Err(err).Str("run", id).Msg("event stream failed")
		body.Error.Code, body.Error.Message = CodeInternal, err.Error()
	}
	data, _ := encodeJSON(body)
	fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
}

// CloseStreams ends every open event stream with a shutting_down error event,
// so that clients reconnect elsewhere. Call it when the HTTP server shuts down
// (http.Server.RegisterOnShutdown): Shutdown waits for open responses, and a
// stream is open until its run ends.
func (n *Node) CloseStreams() { n.stopStreams() }
