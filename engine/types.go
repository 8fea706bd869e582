package engine

import (
	"encoding/json"
	"time"

	"github.com/droverhq/drover/meter"
	"github.com/droverhq/drover/starlark/builtins"
)

// Run statuses.
const (
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
	// StatusBlocked marks a run whose recovery hit a non-determinism error: it
	// is neither failed nor continued until someone resumes it after a fix.
	StatusBlocked = "blocked"
)

// Script is a script version: its files by name and the file holding main.
// The version's identity is its content hash (Hash).
type Script struct {
	Name  string            `json:"name"`
	Main  string            `json:"main"`
	Files map[string]string `json:"files"`
}

// StartRequest asks for a new run.
type StartRequest struct {
	// Script is the script to run: a bundle of files, or only a Name to run
	// the live version of a deployed script (see Deploy).
	Script Script            `json:"script"`
	Input  json.RawMessage   `json:"input,omitempty"` // JSON; empty means null
	Attrs  map[string]string `json:"attrs,omitempty"`
	// TraceParent is an incoming W3C traceparent: the run's span becomes its
	// child. Empty starts a trace of the run's own.
	TraceParent string `json:"traceparent,omitempty"`
}

// Run is a run's record in the runs index.
type Run struct {
	ID          string            `json:"id"`
	Script      string            `json:"script"`
	Hash        string            `json:"hash"`
	Status      string            `json:"status"`
	Attrs       map[string]string `json:"attrs,omitempty"`
	Coordinator string            `json:"coordinator"`
	Started     time.Time         `json:"started"`
	Ended       *time.Time        `json:"ended,omitempty"`
	Steps       int               `json:"step_count"`
	WakeAt      *time.Time        `json:"wake_at,omitempty"` // a parked run's timer
	Expires     *time.Time        `json:"expires,omitempty"` // when retention removes it (nil: pinned)
	Pinned      bool              `json:"pinned,omitempty"`
	Result      json.RawMessage   `json:"result,omitempty"`
	Error       *RunError         `json:"error,omitempty"`
}

// Stopped reports whether the run has ended or is blocked: either way it makes
// no progress until someone acts.
func (r *Run) Stopped() bool { return r.Done() || r.Status == StatusBlocked }

// Done reports whether the run has ended (blocked runs have not).
func (r *Run) Done() bool {
	return r.Status == StatusCompleted || r.Status == StatusFailed || r.Status == StatusCancelled
}

// RunError says why a run failed: the message with the root cause first, and the
// Starlark backtrace (file:line:col of every frame).
type RunError struct {
	Message   string `json:"message"`
	Backtrace string `json:"backtrace,omitempty"`
	Code      string `json:"code,omitempty"`
}

// Error implements error.
func (e *RunError) Error() string {
	if e.Backtrace != "" {
		return e.Backtrace
	}
	return e.Message
}

// RunDetail is a run with its input and its steps in order.
type RunDetail struct {
	Run
	Input json.RawMessage `json:"input,omitempty"`
	Tags  []TagEntry      `json:"tags,omitempty"`
	Steps []StepView      `json:"steps"`
}

// StepView is one step as `ctl runs show` displays it.
type StepView struct {
	ID       string              `json:"id"`
	Builtin  string              `json:"builtin"`
	Args     json.RawMessage     `json:"args,omitempty"`
	Pos      string              `json:"pos,omitempty"`
	Node     string              `json:"node,omitempty"`
	Reason   string              `json:"reason,omitempty"`
	Start    time.Time           `json:"start"`
	Duration time.Duration       `json:"duration_ns"`
	Attempts int                 `json:"attempts,omitempty"`
	Outcome  string              `json:"outcome"` // ok, error, pending
	Value    json.RawMessage     `json:"value,omitempty"`
	Error    *builtins.StepError `json:"error,omitempty"`
}

// ListFilter selects runs from the index. Zero fields match everything.
type ListFilter struct {
	Status string            `json:"status,omitempty"`
	Script string            `json:"script,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
	Since  time.Duration     `json:"since,omitempty"` // started within this long ago
	Limit  int               `json:"limit,omitempty"` // default 100
}

// Journal entries, one per subject of drover.journal.<run>.…

// StartEntry is the first entry of a run (subject …<run>.start).
type StartEntry struct {
	Run         string            `json:"run"`
	Script      string            `json:"script"`
	Hash        string            `json:"hash"`
	Input       json.RawMessage   `json:"input"`
	Attrs       map[string]string `json:"attrs,omitempty"`
	Coordinator string            `json:"coordinator"`
	Time        time.Time         `json:"time"`
	// TraceParent is the W3C traceparent the run was started with, if any.
	TraceParent string `json:"traceparent,omitempty"`
	// Version is the deployed version the run started on (0: not deployed).
	Version int `json:"version,omitempty"`
}

// TagEntry records a tag() call (subject …<run>.tag.<n>).
type TagEntry struct {
	Attrs map[string]string `json:"attrs"`
	Pos   string            `json:"pos,omitempty"`
	Time  time.Time         `json:"time"`
}

// CallEntry records a step call before it executes (…<run>.call.<step>).
type CallEntry struct {
	Step    string          `json:"step"`
	Builtin string          `json:"builtin"`
	Args    json.RawMessage `json:"args"`
	Pos     string          `json:"pos"`
	Node    string          `json:"node"`
	Reason  string          `json:"reason,omitempty"`
	Time    time.Time       `json:"time"`
}

// ResultEntry records a step's outcome (…<run>.result.<step>). Exactly one of
// Value and Error is set.
type ResultEntry struct {
	Step     string              `json:"step"`
	Value    json.RawMessage     `json:"value,omitempty"`
	Error    *builtins.StepError `json:"error,omitempty"`
	Node     string              `json:"node"`
	Attempts int                 `json:"attempts"`
	Start    time.Time           `json:"start"`
	Duration time.Duration       `json:"duration_ns"`
	SpanID   string              `json:"span_id,omitempty"`
}

// EndEntry is a run's last entry (…<run>.end).
type EndEntry struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RunError       `json:"error,omitempty"`
	Steps  int             `json:"steps"`
	Time   time.Time       `json:"time"`
}

// Envelope is what travels through the step inbox of the executing node.
type Envelope struct {
	Run      string          `json:"run"`
	Step     string          `json:"step"`
	Attempt  int             `json:"attempt"`
	Builtin  string          `json:"builtin"`
	Args     json.RawMessage `json:"args"`
	Deadline time.Time       `json:"deadline"`
	Key      string          `json:"key"` // idempotency key <run>/<step>
	Demand   []meter.Demand  `json:"demand,omitempty"`
}
