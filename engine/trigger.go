package engine

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
	"time"
)

// HTTP triggers: POST /v1/run/{name} on any node runs the live version of a
// deployed script with the request body as its input.
//
//   - Synchronous by default: waits for the end (?timeout=, default
//     Options.TriggerTimeout) and answers 200 with the run's result as the body.
//   - Asynchronous with ?async=1 or the header "Prefer: respond-async": 202
//     with the run's record at once.
//   - The run id is in the response header Drover-Run-Id either way.
//   - Request headers named in Options.HeaderAttrs become run attributes
//     (X-Customer-Id → customer); an incoming traceparent becomes the parent
//     of the run's span.
//   - Errors are ErrorBody JSON: 404 unknown_script, 400 bad_input (body not
//     JSON, bad attribute), 413 too_large, 500 script_failed (message,
//     position, backtrace, run), 504 timeout (run, which goes on).

// RunIDHeader is the response header that carries the run id.
const RunIDHeader = "Drover-Run-Id"

// VersionHeader is the response header with the deployed version the run used.
const VersionHeader = "Drover-Script-Version"

func (n *Node) scriptRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/run/{name}", n.httpTrigger)
	mux.HandleFunc("GET /v1/scripts", func(w http.ResponseWriter, r *http.Request) {
		scripts, err := n.Scripts(r.Context())
		reply(w, map[string]any{"scripts": scripts}, err)
	})
	mux.HandleFunc("POST /v1/scripts/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req DeployRequest
		if !decode(w, r, &req) {
			return
		}
		req.Script.Name = r.PathValue("name")
		dep, err := n.Deploy(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusCreated, dep)
	})
	mux.HandleFunc("GET /v1/scripts/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, err := n.ScriptSource(r.Context(), r.PathValue("name"))
		reply(w, v, err)
	})
	mux.HandleFunc("GET /v1/scripts/{name}/history", func(w http.ResponseWriter, r *http.Request) {
		hist, err := n.History(r.Context(), r.PathValue("name"))
		reply(w, map[string]any{"history": hist}, err)
	})
	mux.HandleFunc("POST /v1/scripts/{name}/rollback", func(w http.ResponseWriter, r *http.Request) {
		var req RollbackRequest
		if !decode(w, r, &req) {
			return
		}
		dep, err := n.Rollback(r.Context(), r.PathValue("name"), req.Version, req.By)
		reply(w, dep, err)
	})
}

func (n *Node) httpTrigger(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ls, err := n.deployed(r.Context(), name)
	if err != nil {
		writeErr(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(n.opts.PayloadLimit)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge,
				fmt.Sprintf("request body is over the input limit of %d bytes (engine --payload-limit)", n.opts.PayloadLimit), "")
			return
		}
		writeErr(w, fmt.Errorf("%w: reading the request body: %v", ErrBadInput, err))
		return
	}
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeErr(w, fmt.Errorf("%w: the request body is not JSON: %v; send the script's input as a JSON value (Content-Type: application/json)", ErrBadInput, jsonSyntaxError(body)))
		return
	}
	var attrs map[string]string
	for header, attr := range n.opts.HeaderAttrs {
		if v := r.Header.Get(header); v != "" {
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs[attr] = v
		}
	}
	run, err := n.startLive(r.Context(), ls, body, attrs, r.Header.Get("traceparent"))
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set(RunIDHeader, run.ID)
	w.Header().Set(VersionHeader, strconv.Itoa(ls.dep.Version))
	q := r.URL.Query()
	if q.Get("async") == "1" || q.Get("async") == "true" || strings.Contains(r.Header.Get("Prefer"), "respond-async") {
		writeJSON(w, http.StatusAccepted, run)
		return
	}
	timeout := n.opts.TriggerTimeout
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			writeErr(w, fmt.Errorf("%w: timeout=%q is not a positive duration (e.g. 5s); the run %s was started and goes on", ErrBadInput, s, run.ID))
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	end, err := n.Wait(ctx, run.ID)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeError(w, http.StatusGatewayTimeout, CodeTimeout,
			fmt.Sprintf("run %s did not end within %s; it goes on: follow it with GET /v1/runs/%s/wait or ctl runs wait %s", run.ID, timeout, run.ID, run.ID), run.ID)
		return
	case err != nil:
		writeErr(w, err)
		return
	}
	switch end.Status {
	case StatusCompleted:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(end.Result)
		w.Write([]byte("\n"))
	default:
		var body ErrorBody
		body.Error.Code, body.Error.Run = CodeScriptFailed, end.ID
		body.Error.Message = "run " + end.ID + " " + end.Status
		if end.Error != nil {
			body.Error.Message = end.Error.Message
			body.Error.Backtrace = end.Error.Backtrace
			body.Error.Position = innermostPosition(end.Error.Backtrace)
			if end.Status == StatusCancelled {
				body.Error.Message = "cancelled: " + end.Error.Message
			}
		}
		writeJSON(w, http.StatusInternalServerError, body)
	}
}

// startLive starts a run of a deployed version.
func (n *Node) startLive(ctx context.Context, ls *liveScript, input json.RawMessage, attrs map[string]string, traceParent string) (*Run, error) {
	return n.startProgram(ctx, ls.prog, ls.dep.Version, StartRequest{Script: Script{Name: ls.dep.Name}, Input: input, Attrs: attrs, TraceParent: traceParent})
}

// writeError writes an ErrorBody with the given status and code.
func writeError(w http.ResponseWriter, status int, code, msg, run string) {
	var body ErrorBody
	body.Error.Code, body.Error.Message, body.Error.Run = code, msg, run
	writeJSON(w, status, body)
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
