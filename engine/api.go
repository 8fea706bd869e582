package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// API is what ctl and the control panel use: implemented in-process by *Node and
// over HTTP by engine/client.Client.
type API interface {
	Start(ctx context.Context, req StartRequest) (*Run, error)
	Wait(ctx context.Context, id string) (*Run, error)
	Get(ctx context.Context, id string) (*RunDetail, error)
	List(ctx context.Context, f ListFilter) ([]Run, error)
	Export(ctx context.Context, id string) (*Export, error)
	Cancel(ctx context.Context, id, by, reason string) (*Run, error)
	Resume(ctx context.Context, id string, script *Script, by string) (*Run, error)
	Pin(ctx context.Context, id string) (*Run, error)
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// Events calls fn with each journal entry of a run, then live ones,
	// until the run's end or fn returns false (GET /v1/runs/{id}/events).
	Events(ctx context.Context, id string, fn func(Event) bool) error

	Deploy(ctx context.Context, req DeployRequest) (*Deployment, error)
	Rollback(ctx context.Context, name string, version int, by string) (*Deployment, error)
	Scripts(ctx context.Context) ([]Deployment, error)
	History(ctx context.Context, name string) ([]Deployment, error)
	ScriptSource(ctx context.Context, name string) (*ScriptVersion, error)
}

// CancelRequest is the body of POST /v1/runs/{id}/cancel.
type CancelRequest struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// ResumeRequest is the body of POST /v1/runs/{id}/resume.
type ResumeRequest struct {
	Script *Script `json:"script,omitempty"`
	By     string  `json:"by,omitempty"`
}

var _ API = (*Node)(nil)

// ErrorBody is the JSON shape of every API error.
type ErrorBody struct {
	Error struct {
		Code    string   `json:"code"`
		Message string   `json:"message"`
		Errors  []string `json:"errors,omitempty"` // compile errors, one per problem
		// Run is the run concerned (script failures and timeouts of POST /v1/run/{name}).
		Run string `json:"run,omitempty"`
		// Position is where a script failed, file:line:col (innermost frame).
		Position  string `json:"position,omitempty"`
		Backtrace string `json:"backtrace,omitempty"`
		// Divergent lists the runs a refused deploy no longer replays.
		Divergent []DivergentRun `json:"divergent,omitempty"`
	} `json:"error"`
}

// API error codes.
const (
	CodeUnknownRun   = "unknown_run"
	CodeBadInput     = "bad_input"
	CodeCompileError = "compile_error"
	CodeShuttingDown = "shutting_down"
	CodeInternal     = "internal"
	// CodeUnknownScript: no script of that name was deployed (404).
	CodeUnknownScript = "unknown_script"
	// CodeTooLarge: the request body is over the limit (413).
	CodeTooLarge = "too_large"
	// CodeScriptFailed: the run failed (500), with its message and position.
	CodeScriptFailed = "script_failed"
	// CodeTimeout: the run did not end in time (504); it goes on.
	CodeTimeout = "timeout"
	// CodeReplayDivergence: a deploy refused by --check-replay (409).
	CodeReplayDivergence = "replay_divergence"
)

// Handler returns the node's HTTP JSON API:
//
//	POST /v1/runs               start a run (body StartRequest); ?wait=1 waits for the end
//	GET  /v1/runs               list runs: ?status= &script= &attr=k=v (repeatable) &since=2h &limit=
//	GET  /v1/runs/{id}          one run with its input and steps
//	GET  /v1/runs/{id}/wait     wait for the end: ?timeout=30s; 202 with the record if still running
//	GET  /v1/runs/{id}/export   the run as a portable file (Export)
//	GET  /v1/runs/{id}/events   the run's journal as Server-Sent Events, live until its end
//	POST /v1/runs/{id}/cancel   cancel (body CancelRequest)
//	POST /v1/runs/{id}/resume   resume a blocked or parked run, optionally on another version (body ResumeRequest)
//	POST /v1/runs/{id}/pin      keep the run past retention
//	POST /v1/run/{name}         run the deployed script name: the body is the input (see trigger.go)
//	GET  /v1/scripts            the live version of every deployed script
//	POST /v1/scripts/{name}     deploy a version (body DeployRequest)
//	GET  /v1/scripts/{name}     the live version with its sources
//	GET  /v1/scripts/{name}/history  every version, oldest first
//	POST /v1/scripts/{name}/rollback make an earlier version live (body RollbackRequest)
//	GET  /v1/nodes              live nodes with their meters
//	GET  /v1/health             node name and NATS URL
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/runs", n.httpStart)
	mux.HandleFunc("GET /v1/runs", n.httpList)
	mux.HandleFunc("GET /v1/runs/{id}", n.httpGet)
	mux.HandleFunc("GET /v1/runs/{id}/wait", n.httpWait)
	mux.HandleFunc("GET /v1/runs/{id}/events", n.httpEvents)
	mux.HandleFunc("GET /v1/runs/{id}/export", func(w http.ResponseWriter, r *http.Request) {
		exp, err := n.Export(r.Context(), r.PathValue("id"))
		reply(w, exp, err)
	})
	mux.HandleFunc("POST /v1/runs/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		var req CancelRequest
		if !decode(w, r, &req) {
			return
		}
		run, err := n.Cancel(r.Context(), r.PathValue("id"), req.By, req.Reason)
		reply(w, run, err)
	})
	mux.HandleFunc("POST /v1/runs/{id}/resume", func(w http.ResponseWriter, r *http.Request) {
		var req ResumeRequest
		if !decode(w, r, &req) {
			return
		}
		run, err := n.Resume(r.Context(), r.PathValue("id"), req.Script, req.By)
		reply(w, run, err)
	})
	mux.HandleFunc("POST /v1/runs/{id}/pin", func(w http.ResponseWriter, r *http.Request) {
		run, err := n.Pin(r.Context(), r.PathValue("id"))
		reply(w, run, err)
	})
	n.scriptRoutes(mux)
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		nodes, err := n.Nodes(r.Context())
		reply(w, map[string]any{"nodes": nodes}, err)
	})
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"node": n.opts.Name, "nats": n.bus.ClientURL()})
	})
	return mux
}

func (n *Node) httpStart(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	body := http.MaxBytesReader(w, r.Body, int64(n.opts.PayloadLimit)*4+1<<20)
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		writeErr(w, fmt.Errorf("%w: request body is not a JSON StartRequest: %v", ErrBadInput, err))
		return
	}
	run, err := n.Start(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	if r.URL.Query().Get("wait") == "" {
		writeJSON(w, http.StatusCreated, run)
		return
	}
	n.waitHTTP(w, r, run.ID)
}

func (n *Node) httpWait(w http.ResponseWriter, r *http.Request) { n.waitHTTP(w, r, r.PathValue("id")) }

func (n *Node) waitHTTP(w http.ResponseWriter, r *http.Request, id string) {
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	run, err := n.Wait(ctx, id)
	if errors.Is(err, context.DeadlineExceeded) {
		if run, err = n.record(r.Context(), id); err == nil {
			writeJSON(w, http.StatusAccepted, run)
			return
		}
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (n *Node) httpList(w http.ResponseWriter, r *http.Request) {
	f, err := ParseListQuery(r.URL.Query())
	if err != nil {
		writeErr(w, err)
		return
	}
	runs, err := n.List(r.Context(), f)
	if err != nil {
		writeErr(w, err)
		return
	}
	if runs == nil {
		runs = []Run{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

// ParseListQuery reads a ListFilter from URL query values.
func ParseListQuery(q map[string][]string) (ListFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := ListFilter{Status: get("status"), Script: get("script")}
	for _, kv := range q["attr"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("%w: attr %q: want name=value", ErrBadInput, kv)
		}
		if f.Attrs == nil {
			f.Attrs = map[string]string{}
		}
		f.Attrs[k] = v
	}
	if s := get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return f, fmt.Errorf("%w: since %q: want a duration such as 30m, 2h or 24h", ErrBadInput, s)
		}
		f.Since = d
	}
	if s := get("limit"); s != "" {
		l, err := strconv.Atoi(s)
		if err != nil || l <= 0 {
			return f, fmt.Errorf("%w: limit %q: want a positive number", ErrBadInput, s)
		}
		f.Limit = l
	}
	switch f.Status {
	case "", StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusBlocked:
	default:
		return f, fmt.Errorf("%w: status %q: want running, completed, failed, cancelled or blocked", ErrBadInput, f.Status)
	}
	return f, nil
}

func (n *Node) httpGet(w http.ResponseWriter, r *http.Request) {
	d, err := n.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// reply writes v, or err as an API error.
func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// decode reads a JSON body (an empty body leaves v as it is); on failure it
// writes a bad_input error and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(v)
	if err != nil && !errors.Is(err, io.EOF) {
		writeErr(w, fmt.Errorf("%w: request body: %v", ErrBadInput, err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	var body ErrorBody
	body.Error.Message = err.Error()
	status := http.StatusInternalServerError
	var ce *CompileError
	var rc *ReplayCheckError
	switch {
	case errors.As(err, &rc):
		status, body.Error.Code, body.Error.Divergent = http.StatusConflict, CodeReplayDivergence, rc.Divergent
	case errors.As(err, &ce):
		status, body.Error.Code, body.Error.Errors = http.StatusUnprocessableEntity, CodeCompileError, ce.Errors
	case errors.Is(err, ErrUnknownRun):
		status, body.Error.Code = http.StatusNotFound, CodeUnknownRun
	case errors.Is(err, ErrUnknownScript):
		status, body.Error.Code = http.StatusNotFound, CodeUnknownScript
	case errors.Is(err, ErrBadInput):
		status, body.Error.Code = http.StatusBadRequest, CodeBadInput
	case errors.Is(err, ErrClosed):
		status, body.Error.Code = http.StatusServiceUnavailable, CodeShuttingDown
	default:
		body.Error.Code = CodeInternal
	}
	writeJSON(w, status, body)
}
