package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/droverhq/drover/api"
)

// logsBuffer is how many lines wait for a slow client before lines are
// dropped (and counted).
const logsBuffer = 1024

// logs serves GET /v1/logs: the lines the query selects (api.ParseLogQuery)
// as Server-Sent Events, "line" events with the line as data, and, when the
// client is slower than the lines or over the node's rate cap
// (Options.LogsRate), "dropped" events saying how many it lost.
func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseLogQuery(r.URL.Query())
	if err != nil {
		writeErr(w, err)
		return
	}
	if q.Run != "" {
		if _, err := s.b.Record(r.Context(), q.Run); err != nil {
			writeErr(w, err)
			return
		}
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{}) // a tail outlives a server's WriteTimeout
	// The answer begins with the first line, or once a live tail is in
	// place (api.LogLine.Ready): a client that sees the stream open gets
	// every line written from then on; a query that fails before gets its
	// error as JSON.
	began := false
	begin := func() {
		if began {
			return
		}
		began = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		// A first byte at once: Firefox opens an EventSource only on its
		// answer's first bytes, not on its headers.
		fmt.Fprint(w, ": open\n\n")
		rc.Flush()
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	feed := make(chan api.LogLine, logsBuffer)
	var dropped int
	done := make(chan error, 1)
	go func() {
		done <- s.b.Logs(ctx, q, func(l api.LogLine) bool {
			if l.Dropped > 0 || !q.Follow {
				select { // a note of lines dropped, and stored lines, wait
				case feed <- l:
					return true
				case <-ctx.Done():
					return false
				}
			}
			select {
			case feed <- l:
			default:
				feed <- api.LogLine{Dropped: 1} // blocks only while the buffer is full of notes
			}
			return true
		})
		close(feed)
	}()
	idle := time.NewTimer(s.opts.EventsKeepAlive)
	defer idle.Stop()
	window, sent := time.Now(), 0
	note := func() error { // says how many lines were dropped since the last note
		if dropped == 0 {
			return nil
		}
		data, _ := json.Marshal(api.LogLine{Dropped: dropped})
		dropped = 0
		_, err := fmt.Fprintf(w, "event: dropped\ndata: %s\n\n", data)
		return err
	}
	for {
		var err error
		select {
		case l, ok := <-feed:
			if !ok {
				err := <-done
				if !began && err != nil {
					writeErr(w, err)
					return
				}
				begin()
				note()
				if err != nil && r.Context().Err() == nil {
					s.streamFailed(w, "", err)
					rc.Flush()
				}
				return
			}
			begin()
			if l.Ready() {
				rc.Flush()
				continue
			}
			if now := time.Now(); now.Sub(window) >= time.Second {
				window, sent = now, 0
			}
			switch {
			case l.Dropped > 0:
				dropped += l.Dropped
				continue
			case q.Follow && sent >= s.opts.LogsRate: // a tail is capped; a read back is not
				dropped++
				continue
			}
			if err = note(); err != nil {
				break
			}
			sent++
			_, err = fmt.Fprintf(w, "event: line\ndata: %s\n\n", l.Line)
		case <-idle.C:
			begin()
			if err = note(); err == nil {
				_, err = fmt.Fprint(w, ": keep-alive\n\n")
			}
		}
		if err == nil && len(feed) == 0 {
			if ferr := rc.Flush(); !errors.Is(ferr, http.ErrNotSupported) {
				err = ferr
			}
		}
		if err != nil { // the client has gone
			cancel()
			for range feed {
			}
			return
		}
		idle.Reset(s.opts.EventsKeepAlive)
	}
}
