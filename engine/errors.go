package engine

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownRun is returned for a run id that the runs index does not hold.
	ErrUnknownRun = errors.New("engine: unknown run")
	// ErrBadInput is returned when a run's input is not valid JSON or too large.
	ErrBadInput = errors.New("engine: bad input")
	// ErrClosed is returned when the node is shutting down.
	ErrClosed = errors.New("engine: node is shutting down")
	// errJournal marks a failure to write the journal (after the bus's own
	// retries): the run is interrupted and adopted again, never failed for it.
	errJournal = errors.New("engine: journal unavailable")
	// errShutdown is the cancellation cause of runs interrupted by Close: they are
	// left unfinished in the journal, for recovery, instead of being failed.
	errShutdown = errors.New("engine: node shut down")
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

// StepFailure is the error a script sees (and fails with) when a step cannot
// produce a value: retries exhausted, payload too large, cancelled.
type StepFailure struct {
	Builtin  string
	Step     string
	Code     string
	Message  string
	Attempts int
}

// Error implements error.
func (e *StepFailure) Error() string {
	if e.Attempts > 1 {
		return fmt.Sprintf("%s (step %s) failed after %d attempts: %s", e.Builtin, e.Step, e.Attempts, e.Message)
	}
	return fmt.Sprintf("%s (step %s) failed: %s", e.Builtin, e.Step, e.Message)
}
