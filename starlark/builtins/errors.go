package builtins

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrUnknownBuiltin is returned by Registry.Lookup for a name nobody registered.
	ErrUnknownBuiltin = errors.New("builtins: unknown builtin")
	// ErrNoRuntime is returned when a step builtin is called on a thread that the
	// engine did not prepare (for example from a plain starlark.ExecFile).
	ErrNoRuntime = errors.New("builtins: no Drover runtime on this thread")
	// ErrNotJSON is returned when a Starlark value has no JSON form.
	ErrNotJSON = errors.New("builtins: value is not JSON")
)

// Stable codes carried by a StepError across nodes.
const (
	CodeTransport       = "transport"         // network failure: connection refused, reset, DNS
	CodeTimeout         = "timeout"           // the step's deadline passed
	CodeBadArgs         = "bad_args"          // the arguments could not be used
	CodePayloadTooLarge = "payload_too_large" // result above the configured limit
	CodeCancelled       = "cancelled"         // the run was cancelled
	CodeCircuitOpen     = "circuit_open"      // the target failed repeatedly: calls fail fast for a while
	CodeResource        = "resource"          // the attempt's resource units could not be taken
	CodeInternal        = "internal"          // anything else
)

// StepError is the error of one step execution. It crosses NATS as JSON, so it
// carries a stable Code that callers compare with errors.Is against another
// StepError holding only a Code.
type StepError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable,omitempty"`
}

// Error implements error.
func (e *StepError) Error() string { return e.Message }

// Is reports whether target is a *StepError with the same code.
func (e *StepError) Is(target error) bool {
	t, ok := target.(*StepError)
	return ok && t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Errorf returns a non-retryable StepError with the given code.
func Errorf(code, format string, args ...any) *StepError {
	return &StepError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Retryable returns a retryable StepError with the given code.
func Retryable(code, format string, args ...any) *StepError {
	return &StepError{Code: code, Message: fmt.Sprintf(format, args...), Retryable: true}
}

// AsStepError converts any error into a *StepError, keeping one that already is.
func AsStepError(err error) *StepError {
	if err == nil {
		return nil
	}
	var se *StepError
	if errors.As(err, &se) {
		return se
	}
	return &StepError{Code: CodeInternal, Message: err.Error()}
}

// TransportError is the StepError of a call, described by what (e.g.
// `kv.get "k"`), whose request to a service failed with err: a retryable
// CodeTimeout if ctx's deadline passed, a final CodeCancelled if ctx was
// cancelled (the run was), and otherwise a retryable CodeTransport.
func TransportError(ctx context.Context, what string, err error) *StepError {
	switch ctxErr := ctx.Err(); {
	case ctxErr == nil:
		return Retryable(CodeTransport, "%s: %v", what, err)
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return Retryable(CodeTimeout, "%s: timed out", what)
	default:
		return Errorf(CodeCancelled, "%s: cancelled", what)
	}
}
