package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error values. They cross the wire as codes (ErrorBody): api/client turns a
// code back into the same value, so callers test with errors.Is whether they
// talk to a node in-process or over HTTP.
var (
	// ErrUnknownRun is returned for a run id that the runs index does not hold.
	ErrUnknownRun = errors.New("drover: unknown run")
	// ErrUnknownScript is returned for a name that was never deployed.
	ErrUnknownScript = errors.New("drover: unknown script")
	// ErrBadInput is returned for a request that cannot be done as asked: input
	// that is not JSON or too large, a bad attribute or name, a run that has
	// already ended.
	ErrBadInput = errors.New("drover: bad input")
	// ErrClosed is returned when the node is shutting down.
	ErrClosed = errors.New("drover: node is shutting down")
	// ErrReplayDiverged is what a *ReplayCheckError unwraps to.
	ErrReplayDiverged = errors.New("drover: deploy refused: past runs diverge from the new version")
)

// CompileError lists every problem found while compiling a script, each as
// file:line:col: message.
type CompileError struct {
	Script string
	Errors []string
}

// Error implements error.
func (e *CompileError) Error() string {
	return fmt.Sprintf("script %s does not compile:\n  %s", e.Script, strings.Join(e.Errors, "\n  "))
}

// API error codes (ErrorBody.Error.Code).
const (
	CodeUnknownRun   = "unknown_run"   // 404
	CodeBadInput     = "bad_input"     // 400
	CodeCompileError = "compile_error" // 422, with Errors
	CodeShuttingDown = "shutting_down" // 503
	CodeInternal     = "internal"      // 500
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
	// CodeNotFound: no API route has that path (404).
	CodeNotFound = "not_found"
	// CodeMethodNotAllowed: the path exists, not with that method (405).
	CodeMethodNotAllowed = "method_not_allowed"
)

// Response headers of the API.
const (
	// RunIDHeader carries the id of the run a request started.
	RunIDHeader = "Drover-Run-Id"
	// VersionHeader carries the deployed version the run used.
	VersionHeader = "Drover-Script-Version"
)

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

// NewErrorBody returns the body of an error with code and message.
func NewErrorBody(code, msg string) ErrorBody {
	var b ErrorBody
	b.Error.Code, b.Error.Message = code, msg
	return b
}

// sentinels pairs codes with the error values they stand for, and their
// HTTP status.
var sentinels = []struct {
	code   string
	err    error
	status int
}{
	{CodeUnknownRun, ErrUnknownRun, http.StatusNotFound},
	{CodeUnknownScript, ErrUnknownScript, http.StatusNotFound},
	{CodeBadInput, ErrBadInput, http.StatusBadRequest},
	{CodeShuttingDown, ErrClosed, http.StatusServiceUnavailable},
	{CodeReplayDivergence, ErrReplayDiverged, http.StatusConflict},
}

// ErrorBodyOf returns the HTTP status and body that report err.
func ErrorBodyOf(err error) (int, ErrorBody) {
	b := NewErrorBody(CodeInternal, err.Error())
	var ce *CompileError
	if errors.As(err, &ce) {
		b.Error.Code, b.Error.Errors = CodeCompileError, ce.Errors
		return http.StatusUnprocessableEntity, b
	}
	var rc *ReplayCheckError
	if errors.As(err, &rc) {
		b.Error.Divergent = rc.Divergent
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			b.Error.Code = s.code
			return s.status, b
		}
	}
	return http.StatusInternalServerError, b
}

// Err returns the error the body reports: the error value of its code (for
// errors.Is), with the node's message; a *CompileError for compile errors.
func (b ErrorBody) Err() error {
	msg := b.Error.Message
	if b.Error.Code == CodeCompileError {
		name, _, _ := strings.Cut(strings.TrimPrefix(msg, "script "), " ")
		return &CompileError{Errors: b.Error.Errors, Script: name}
	}
	for _, s := range sentinels {
		if s.code == b.Error.Code {
			return &remoteError{s.err, msg}
		}
	}
	return errors.New(msg)
}

// remoteError keeps a node's message while matching its error value with
// errors.Is.
type remoteError struct {
	sentinel error
	msg      string
}

// Error returns the node's message.
func (e *remoteError) Error() string { return e.msg }

// Unwrap returns the error value of the body's code.
func (e *remoteError) Unwrap() error { return e.sentinel }
