package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/droverhq/drover/api"
)

// HTTP triggers: POST /v1/run/{name} on any node runs the live version of a
// deployed script with the request body as its input.
//
//   - Synchronous by default: waits for the end (?timeout=, default
//     Options.TriggerTimeout) and answers 200 with the run's result as the body.
//   - Asynchronous with ?async=1 or the header "Prefer: respond-async": 202
//     with the run's record at once.
//   - The run id is in the response header Drover-Run-Id either way, the
//     deployed version in Drover-Script-Version.
//   - Request headers named in Options.HeaderAttrs become run attributes
//     (X-Customer-Id → customer); an incoming traceparent becomes the parent
//     of the run's span.
//   - Errors are ErrorBody JSON: 404 unknown_script, 400 bad_input (body not
//     JSON, bad attribute, bad ?timeout= or ?async=), 413 too_large, 500
//     script_failed (message, position, backtrace, run), 504 timeout (run,
//     which goes on). Nothing is started unless the request is valid.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := s.b.ScriptSource(r.Context(), name); err != nil {
		writeErr(w, err)
		return
	}
	q := r.URL.Query()
	timeout, err := timeoutParam(r, s.opts.TriggerTimeout)
	if err != nil {
		writeErr(w, err)
		return
	}
	async := strings.Contains(r.Header.Get("Prefer"), "respond-async")
	switch v := q.Get("async"); v {
	case "":
	case "1", "true":
		async = true
	case "0", "false":
	default:
		writeErr(w, fmt.Errorf("%w: async=%q: want 1 or true (or 0, false)", api.ErrBadInput, v))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.PayloadLimit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge,
				fmt.Sprintf("request body is over the input limit of %d bytes (engine --payload-limit)", s.opts.PayloadLimit), "")
			return
		}
		writeErr(w, fmt.Errorf("%w: reading the request body: %v", api.ErrBadInput, err))
		return
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeErr(w, fmt.Errorf("%w: the request body is not JSON: %v; send the script's input as a JSON value (Content-Type: application/json)", api.ErrBadInput, jsonSyntaxError(body)))
		return
	}
	var attrs map[string]string
	for header, attr := range s.opts.HeaderAttrs {
		if v := r.Header.Get(header); v != "" {
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs[attr] = v
		}
	}
	run, err := s.b.Start(r.Context(), api.StartRequest{Script: api.Script{Name: name}, Input: body, Attrs: attrs, TraceParent: r.Header.Get("traceparent"), Awaited: !async})
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set(api.RunIDHeader, run.ID)
	w.Header().Set(api.VersionHeader, strconv.Itoa(run.Version))
	if async {
		writeJSON(w, http.StatusAccepted, run)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	end, err := s.b.Wait(ctx, run.ID)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout, api.CodeTimeout,
			fmt.Sprintf("run %s did not end within %s; it goes on: follow it with GET /v1/runs/%s/wait or ctl runs wait %s", run.ID, timeout, run.ID, run.ID), run.ID)
		return
	case errors.Is(err, api.ErrUnknownRun):
		// The run this request started is gone: its node stopped before the
		// run's first output, and kept nothing of it (output commit).
		writeErr(w, fmt.Errorf("%w: it stopped before run %s had any outside effect, and kept nothing of it: send the request again", api.ErrClosed, run.ID))
		return
	case err != nil:
		writeErr(w, err)
		return
	}
	if end.Status == api.StatusCompleted {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(end.Result)
		w.Write([]byte("\n"))
		return
	}
	b := api.NewErrorBody(api.CodeScriptFailed, "run "+end.ID+" "+end.Status)
	b.Error.Run = end.ID
	if end.Error != nil {
		b.Error.Message = end.Error.Message
		b.Error.Backtrace = end.Error.Backtrace
		b.Error.Position = innermostPosition(end.Error.Backtrace)
		if end.Status == api.StatusCancelled {
			b.Error.Message = "cancelled: " + end.Error.Message
		}
	}
	writeJSON(w, http.StatusInternalServerError, b)
}

// jsonSyntaxError says where body stops being JSON.
func jsonSyntaxError(body []byte) error {
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v at byte %d", se, se.Offset)
	}
	return err
}

var framePos = regexp.MustCompile(`(?m)^\s*(\S+:\d+:\d+): in `)

// innermostPosition returns the file:line:col of a Starlark backtrace's last
// frame, where the error happened.
func innermostPosition(backtrace string) string {
	m := framePos.FindAllStringSubmatch(backtrace, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}
