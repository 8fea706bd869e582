package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

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

// Hash returns the content hash of a script version: sha256 over its main file
// name and files, independent of its display name.
func (s *Script) Hash() string {
	names := make([]string, 0, len(s.Files))
	for k := range s.Files {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "main=%q\n", s.Main)
	for _, k := range names {
		fmt.Fprintf(h, "file=%q %d\n%s\n", k, len(s.Files[k]), s.Files[k])
	}
	return hex.EncodeToString(h.Sum(nil))
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
	// Awaited says the caller waits for the run's end and tells nobody its
	// id before: the run may then be journaled at its first output rather
	// than at its start (docs/architecture.md, "Output commit"). Not sent
	// over the API: a server sets it for its synchronous triggers.
	Awaited bool `json:"-"`
}

// Deployed reports whether the request names a deployed script rather than
// carrying a bundle.
func (r *StartRequest) Deployed() bool {
	return len(r.Script.Files) == 0 && r.Script.Main == "" && r.Script.Name != ""
}

// Check validates the request's input and attributes and returns the input
// as canonical JSON ("null" when empty). Input over limit bytes, input that
// is not JSON and a bad attribute name are refused (ErrBadInput).
func (r *StartRequest) Check(limit int) (json.RawMessage, error) {
	input := r.Input
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("null")
	}
	if len(input) > limit {
		return nil, fmt.Errorf("%w: input is %d bytes, over the payload limit of %d bytes", ErrBadInput, len(input), limit)
	}
	x, err := builtins.Decode(input)
	if err != nil {
		return nil, fmt.Errorf("%w: input is not JSON: %v", ErrBadInput, err)
	}
	if input, err = builtins.Canonical(x); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	for k := range r.Attrs {
		if err := CheckAttrName(k); err != nil {
			return nil, err
		}
	}
	return input, nil
}

// DefaultPayloadLimit is the default hard limit on a step's arguments or
// result and a run's input or result, in bytes (engine --payload-limit).
// Values over 64 KiB are journaled by reference to a copy stored once (see
// docs/architecture.md), so the limit is one of memory, not of the journal.
const DefaultPayloadLimit = 32 << 20

// Run is a run's record in the runs index.
type Run struct {
	ID     string `json:"id"`
	Script string `json:"script"`
	Hash   string `json:"hash"`
	// Version is the deployed version the run started on (0: a script run
	// from its files, not deployed).
	Version     int               `json:"version,omitempty"`
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
	// ResultLeftOut says that the result is large (over 64 KiB) and left
	// out of the index: reading one run (its record, Wait, runs show) reads
	// it from the journal; a listing leaves it out.
	ResultLeftOut bool      `json:"result_left_out,omitempty"`
	Error         *RunError `json:"error,omitempty"`
}

// Stopped reports whether the run has ended or is blocked: either way it makes
// no progress until someone acts.
func (r *Run) Stopped() bool { return r.Done() || r.Status == StatusBlocked }

// Done reports whether the run has ended (blocked runs have not).
func (r *Run) Done() bool {
	return r.Status == StatusCompleted || r.Status == StatusFailed || r.Status == StatusCancelled
}

// Run error codes (RunError.Code) set by the interpreter; a step's failure
// carries its step error's code (builtins.Code*).
const (
	// CodeNonDeterminism: replayed against its journal, the script made
	// other calls than the journal holds.
	CodeNonDeterminism = "non_determinism"
	// CodeExecLimit: the script ran more Starlark steps than its limit.
	CodeExecLimit = "exec_limit"
	// CodeNoMain: the script's main is not a function.
	CodeNoMain = "no_main"
	// CodeResultNotJSON: main returned a value that has no JSON form.
	CodeResultNotJSON = "result_not_json"
	// CodePlacement: no node could take a step in time.
	CodePlacement = "placement"
)

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
	// TraceID is the trace of the run's spans (and of its log lines).
	TraceID string          `json:"trace_id,omitempty"`
	Input   json.RawMessage `json:"input,omitempty"`
	Tags    []TagEntry      `json:"tags,omitempty"`
	Steps   []StepView      `json:"steps"`
}

// StepView is one step as `ctl runs show` displays it.
type StepView struct {
	ID      string          `json:"id"`
	Builtin string          `json:"builtin"`
	Args    json.RawMessage `json:"args,omitempty"`
	Pos     string          `json:"pos,omitempty"`
	Node    string          `json:"node,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	// Called is when the step's call was journaled: placed and queued. It
	// began executing at Start: the time between is its wait for a node,
	// a worker or resource units.
	Called   time.Time           `json:"called"`
	Start    time.Time           `json:"start"`
	Duration time.Duration       `json:"duration_ns"`
	Attempts int                 `json:"attempts,omitempty"`
	Outcome  string              `json:"outcome"` // ok, error, pending
	Value    json.RawMessage     `json:"value,omitempty"`
	Error    *builtins.StepError `json:"error,omitempty"`
	// Placements lists every placement of a step placed more than once (its
	// executing node was lost before it answered, or its run was adopted
	// while it was under way), first to last. Node is where it executed:
	// usually the last placement, but a lost node's result can reach the
	// journal after the step was placed again, and the first result journaled
	// stands. Empty when it was placed once.
	Placements []Placement `json:"placements,omitempty"`
}

// Placement is one placement of a step: the node chosen and why.
type Placement struct {
	Attempt int       `json:"attempt"`
	Node    string    `json:"node"`
	Reason  string    `json:"reason,omitempty"` // why placement chose Node
	Time    time.Time `json:"time"`
	// Why says why the step was placed again (empty for the first placement).
	Why string `json:"why,omitempty"`
}

// ListFilter selects runs from the index. Zero fields match everything.
type ListFilter struct {
	Status string            `json:"status,omitempty"`
	Script string            `json:"script,omitempty"`
	Attrs  map[string]string `json:"attrs,omitempty"`
	Since  time.Duration     `json:"since,omitempty"` // started within this long ago
	Limit  int               `json:"limit,omitempty"` // default 100
	// Version selects the runs that started on this deployed version of
	// Script; Node those coordinated by this node.
	Version int    `json:"version,omitempty"`
	Node    string `json:"node,omitempty"`
	// Before pages: only runs older than this run id (a page's Next).
	Before string `json:"before,omitempty"`
}

// RunList is the answer of GET /v1/runs: a page of runs, newest first, and
// when there may be more, Next, the ListFilter.Before of the next page.
type RunList struct {
	Runs []Run  `json:"runs"`
	Next string `json:"next,omitempty"`
}

// RunCounts is the answer of GET /v1/runs/counts: how many of the newest
// runs matching a filter (Of of them, at most CountCap) have each status.
// Capped says there are more matching runs than were counted.
type RunCounts struct {
	Counts map[string]int `json:"counts"`
	Of     int            `json:"of"`
	Capped bool           `json:"capped,omitempty"`
}

// CountCap bounds the runs GET /v1/runs/counts counts, so that counting
// costs one listing, as cheap as listing a page of runs.
const CountCap = 1000

// Statuses are a run's statuses, in the order the panel shows them.
var Statuses = []string{StatusRunning, StatusBlocked, StatusFailed, StatusCompleted, StatusCancelled}

// Match reports whether r passes the filter (Since and Limit aside).
func (f ListFilter) Match(r *Run) bool {
	if f.Status != "" && r.Status != f.Status {
		return false
	}
	if f.Script != "" && r.Script != f.Script {
		return false
	}
	if f.Version != 0 && r.Version != f.Version || f.Node != "" && r.Coordinator != f.Node {
		return false
	}
	if f.Before != "" && r.ID >= f.Before {
		return false
	}
	for k, v := range f.Attrs {
		if v2, ok := r.Attrs[k]; !ok || v2 != v {
			return false
		}
	}
	return true
}

// Query returns the filter as the query of GET /v1/runs.
func (f ListFilter) Query() url.Values {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Script != "" {
		q.Set("script", f.Script)
	}
	for k, v := range f.Attrs {
		q.Add("attr", k+"="+v)
	}
	if f.Since > 0 {
		q.Set("since", f.Since.String())
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Version > 0 {
		q.Set("version", strconv.Itoa(f.Version))
	}
	if f.Node != "" {
		q.Set("node", f.Node)
	}
	if f.Before != "" {
		q.Set("before", f.Before)
	}
	return q
}

// ParseListQuery reads a ListFilter from the query of GET /v1/runs, refusing
// (ErrBadInput) what Query would never write.
func ParseListQuery(q url.Values) (ListFilter, error) {
	f := ListFilter{Status: q.Get("status"), Script: q.Get("script"), Node: q.Get("node"), Before: q.Get("before")}
	var err error
	if f.Attrs, err = parseAttrQuery(q["attr"]); err != nil {
		return f, err
	}
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return f, fmt.Errorf("%w: since %q: want a duration such as 30m, 2h or 24h", ErrBadInput, s)
		}
		f.Since = d
	}
	if s := q.Get("limit"); s != "" {
		l, err := strconv.Atoi(s)
		if err != nil || l <= 0 {
			return f, fmt.Errorf("%w: limit %q: want a positive number", ErrBadInput, s)
		}
		f.Limit = l
	}
	if s := q.Get("version"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			return f, fmt.Errorf("%w: version %q: want a deployed version number, 1 or more", ErrBadInput, s)
		}
		if f.Script == "" {
			return f, fmt.Errorf("%w: version %d of which script? give script= too", ErrBadInput, v)
		}
		f.Version = v
	}
	if f.Before != "" && !validRunID(f.Before) {
		return f, fmt.Errorf("%w: before %q: want a run id (the next of a page of runs)", ErrBadInput, f.Before)
	}
	switch f.Status {
	case "", StatusRunning, StatusCompleted, StatusFailed, StatusCancelled, StatusBlocked:
	default:
		return f, fmt.Errorf("%w: status %q: want running, completed, failed, cancelled or blocked", ErrBadInput, f.Status)
	}
	return f, nil
}

// parseAttrQuery reads the attr=name=value parameters of a query (nil for
// none), refusing one that is not name=value (ErrBadInput).
func parseAttrQuery(values []string) (map[string]string, error) {
	var attrs map[string]string
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: attr %q: want name=value, e.g. customer=acme", ErrBadInput, kv)
		}
		if attrs == nil {
			attrs = map[string]string{}
		}
		attrs[k] = v
	}
	return attrs, nil
}

// CheckAttrName refuses a run attribute name that is not 1 to 64 letters,
// digits or underscores (ErrBadInput).
func CheckAttrName(k string) error {
	if k == "" || len(k) > 64 {
		return fmt.Errorf("%w: attribute name %q must be 1 to 64 characters", ErrBadInput, k)
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: attribute name %q may hold only letters, digits and _", ErrBadInput, k)
		}
	}
	return nil
}

// validRunID reports whether id has the form of a run id: a ULID, 26
// characters of Crockford's base 32.
func validRunID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') || c == 'I' || c == 'L' || c == 'O' || c == 'U' {
			return false
		}
	}
	return true
}
