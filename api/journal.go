package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/starlark/builtins"
)

// EntryKind names a kind of journal entry. A run's journal holds one start
// entry, then tags, calls, results and the rest in the order they happened,
// and ends with one end entry. Package journal owns how entries are stored.
type EntryKind string

// Journal entry kinds, with the key (JournalEntry.Key) each is stored under.
const (
	EntryStart   EntryKind = "start"   // StartEntry; no key
	EntryTag     EntryKind = "tag"     // TagEntry; key: its sequence, 1, 2, …
	EntryCall    EntryKind = "call"    // CallEntry; key: the step id
	EntryPlace   EntryKind = "place"   // PlaceEntry; key: step id and attempt, "3.1@2"
	EntryResult  EntryKind = "result"  // ResultEntry; key: the step id
	EntryPatch   EntryKind = "patch"   // PatchEntry; key: the change id
	EntryVersion EntryKind = "version" // VersionEntry; key: its sequence, 1, 2, …
	EntryCancel  EntryKind = "cancel"  // CancelEntry; no key
	EntryEnd     EntryKind = "end"     // EndEntry; no key
)

// Known reports whether k is one of the kinds above.
func (k EntryKind) Known() bool {
	switch k {
	case EntryStart, EntryTag, EntryCall, EntryPlace, EntryResult, EntryPatch, EntryVersion, EntryCancel, EntryEnd:
		return true
	}
	return false
}

// JournalEntry is one journal entry in a portable form: its kind, its key
// (a step id, tag sequence or patch id) and the entry as JSON.
type JournalEntry struct {
	Kind EntryKind       `json:"kind"`
	Key  string          `json:"key,omitempty"`
	Data json.RawMessage `json:"data"`
}

// StartEntry is the first entry of a run.
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

// TagEntry records a tag() call.
type TagEntry struct {
	Attrs map[string]string `json:"attrs"`
	Pos   string            `json:"pos,omitempty"`
	Time  time.Time         `json:"time"`
}

// CallEntry records a step call before it executes, with its first placement.
type CallEntry struct {
	Step    string          `json:"step"`
	Builtin string          `json:"builtin"`
	Args    json.RawMessage `json:"args"`
	Pos     string          `json:"pos"`
	Node    string          `json:"node"`
	Reason  string          `json:"reason,omitempty"`
	Time    time.Time       `json:"time"`
}

// PlaceEntry records that a step was placed again: the node it was
// dispatched to was lost before it answered, or the run was adopted while the
// step was under way. Attempts are 2, 3, … (the call entry holds attempt 1).
type PlaceEntry struct {
	Step    string    `json:"step"`
	Attempt int       `json:"attempt"`
	Node    string    `json:"node"`
	Reason  string    `json:"reason,omitempty"` // why placement chose Node
	Why     string    `json:"why"`              // why the step was placed again
	Time    time.Time `json:"time"`
}

// ResultEntry records a step's outcome. Exactly one of Value and Error is set.
type ResultEntry struct {
	Step     string              `json:"step"`
	Value    json.RawMessage     `json:"value,omitempty"`
	Error    *builtins.StepError `json:"error,omitempty"`
	Node     string              `json:"node"`
	Attempts int                 `json:"attempts"`
	Start    time.Time           `json:"start"`
	Duration time.Duration       `json:"duration_ns"`
	SpanID   string              `json:"span_id,omitempty"`
	// Call is the step's call when it was journaled with its result, in one
	// entry: a step executed on its coordinator (co-located), which has no
	// call entry of its own.
	Call *CallEntry `json:"call,omitempty"`
}

// PatchEntry records the decision of a patched() call.
type PatchEntry struct {
	Value bool      `json:"value"`
	Pos   string    `json:"pos,omitempty"`
	Time  time.Time `json:"time"`
}

// VersionEntry records that a run was moved to another script version, by
// Resume.
type VersionEntry struct {
	Hash   string    `json:"hash"`
	Script string    `json:"script"`
	By     string    `json:"by,omitempty"`
	Time   time.Time `json:"time"`
}

// CancelEntry records who cancelled a run and why.
type CancelEntry struct {
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// Message is what a run cancelled by c ends with: who cancelled it and why
// ("run cancelled" when c is nil: the entry could not be read).
func (c *CancelEntry) Message() string {
	if c == nil {
		return "run cancelled"
	}
	if c.Reason == "" {
		return "cancelled by " + c.By
	}
	return "cancelled by " + c.By + ": " + c.Reason
}

// EndEntry is a run's last entry.
type EndEntry struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RunError       `json:"error,omitempty"`
	Steps  int             `json:"steps"`
	Time   time.Time       `json:"time"`
}

// ExportFormat is the format version of portable run files.
const ExportFormat = "drover.run/v1"

// Export is a self-contained run: its record, the exact script version, and
// every journal entry. `ctl runs export` writes one; a replay needs nothing
// else (see journal.ParseExport and package replay).
type Export struct {
	Format  string         `json:"format"`
	Run     Run            `json:"run"`
	Script  Script         `json:"script"`
	Journal []JournalEntry `json:"journal"`
}

// Event is one journal entry of a run as a live feed delivers it: one
// Server-Sent Event of GET /v1/runs/{id}/events, and what API.Events passes
// to its callback.
type Event struct {
	// ID is the entry's sequence in the journal stream. It increases within a
	// run; a client that reconnects sends the last one it saw as Last-Event-ID.
	// For a pinned run whose journal has expired it is the entry's position
	// (1, 2, …) in the pinned copy.
	ID uint64 `json:"id"`
	// Kind is the entry kind.
	Kind EntryKind `json:"kind"`
	// Data is the journal entry (StartEntry, CallEntry, ResultEntry, …) as one
	// line of JSON, with "key" added when the entry has one (step id, tag
	// sequence, patch id, version number) and, for a result, the "builtin" of
	// its call and its "outcome" (ok or error).
	Data json.RawMessage `json:"data"`
}

// Call is a step call as a script makes it, for divergence reports.
type Call struct {
	Builtin string          `json:"builtin"`
	Args    json.RawMessage `json:"args"`
	Pos     string          `json:"pos"`
}

// DivergenceError reports that a script, replayed against a journal, made a
// different call than the journal holds at a step id, or more or fewer calls.
// Journaled is nil when the journal has no call at Step; New is nil when the
// script made no call there.
type DivergenceError struct {
	Step      string `json:"step"`
	Journaled *Call  `json:"journaled,omitempty"`
	New       *Call  `json:"new,omitempty"`
	Missing   int    `json:"missing,omitempty"` // journaled calls the script never made
}

// Error implements error.
func (e *DivergenceError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "non-determinism at step %s: ", e.Step)
	switch {
	case e.Journaled != nil && e.New != nil:
		b.WriteString("the script now makes a different call than the journal holds")
	case e.New != nil:
		b.WriteString("the script now makes a call the journal does not hold (more steps than the original run)")
	default:
		fmt.Fprintf(&b, "the script ended without making %d journaled call(s) (fewer steps than the original run)", e.Missing)
	}
	if e.Journaled != nil {
		fmt.Fprintf(&b, "\n  journaled: %s(%s) at %s", e.Journaled.Builtin, e.Journaled.Args, e.Journaled.Pos)
	}
	if e.New != nil {
		fmt.Fprintf(&b, "\n  new:       %s(%s) at %s", e.New.Builtin, e.New.Args, e.New.Pos)
	}
	return b.String()
}

// RunErrorCode implements the interpreter's coded-error contract: a run that
// fails with a divergence ends with CodeNonDeterminism.
func (e *DivergenceError) RunErrorCode() string { return CodeNonDeterminism }

// ReplayReport says what a replay did: ctl replay's report, and the answer of
// POST /v1/runs/{id}/replay (the replay check).
type ReplayReport struct {
	Run    Run    `json:"run"`    // the original run's record
	Script string `json:"script"` // name of the script replayed
	Hash   string `json:"hash"`   // its version
	// Against says which version the run was replayed against (the replay
	// check): "live version 3", "pasted script" or "its own version".
	Against   string          `json:"against,omitempty"`
	Steps     int             `json:"steps"`     // steps answered from the journal
	Journaled int             `json:"journaled"` // steps the journal holds
	Took      time.Duration   `json:"took_ns"`
	Partial   bool            `json:"partial"` // the run was still going: its prefix was replayed
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *RunError       `json:"error,omitempty"`
	// Matches is true when the replay ended as the original run did (same
	// result, or same error message).
	Matches    bool             `json:"matches"`
	Divergence *DivergenceError `json:"divergence,omitempty"`
	// Message says the divergence in words (DivergenceError.Error).
	Message string `json:"message,omitempty"`
}

// ReplayRequest is the body of POST /v1/runs/{id}/replay: replay the run
// against Script, or with none against the live version of its script (its
// own version if the script was never deployed).
type ReplayRequest struct {
	Script *Script `json:"script,omitempty"`
}
