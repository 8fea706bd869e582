package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/api"
)

// events serves GET /v1/runs/{id}/events: the run's journal as Server-Sent
// Events, live until its end entry.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	// The stream goes on after Last-Event-ID (a browser's reconnection) or
	// ?after= (a client opening a stream again), the later of the two: a
	// stream opened with after= and reconnected has both.
	var after uint64
	for _, p := range [][2]string{{"Last-Event-ID", r.Header.Get("Last-Event-ID")}, {"after", r.URL.Query().Get("after")}} {
		if p[1] == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(p[1]), 10, 64)
		if err != nil {
			writeErr(w, fmt.Errorf("%w: %s %q: want the id of an event of this stream", api.ErrBadInput, p[0], p[1]))
			return
		}
		after = max(after, n)
	}
	src, err := s.b.OpenEvents(r.Context(), r.PathValue("id"))
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

	// The stream also ends when the server closes its streams, so that it
	// does not hold the server's shutdown.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	feed := make(chan api.Event)
	done := make(chan error, 1)
	go func() {
		done <- src.Follow(ctx, after, func(e api.Event) bool {
			select {
			case feed <- e:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	idle := time.NewTimer(s.opts.EventsKeepAlive)
	defer idle.Stop()
	for {
		var err error
		select {
		case e := <-feed:
			_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.ID, e.Kind, e.Data)
		case <-idle.C:
			_, err = fmt.Fprint(w, ": keep-alive\n\n")
		case err := <-done:
			if r.Context().Err() == nil && (err != nil || s.streams.Err() != nil) {
				s.streamFailed(w, r.PathValue("id"), err)
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
		idle.Reset(s.opts.EventsKeepAlive)
	}
}

// streamFailed ends an event stream that cannot go on (the node is shutting
// down, or the bus failed) with an "error" event holding the API error, so
// that the client reconnects with Last-Event-ID rather than wait.
func (s *Server) streamFailed(w http.ResponseWriter, id string, err error) {
	var body api.ErrorBody
	switch {
	case s.streams.Err() != nil || errors.Is(err, api.ErrClosed):
		body = api.NewErrorBody(api.CodeShuttingDown, fmt.Sprintf("node %s is shutting down: reconnect to another node with Last-Event-ID", s.b.Name()))
	default:
		s.log.Warn().Err(err).Str("run", id).Msg("event stream failed")
		body = api.NewErrorBody(api.CodeInternal, err.Error())
	}
	data, _ := api.EncodeJSON(body)
	fmt.Fprintf(w, "event: error\ndata: %s\n\n", data)
}
