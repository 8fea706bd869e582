package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// JournalEntry is one journal message in a portable form: the entry kind
// ("start", "tag", "call", "result", "patch", "cancel", "end"), its key (a step
// id, tag sequence or patch id) and the entry as JSON.
type JournalEntry struct {
	Kind string          `json:"kind"`
	Key  string          `json:"key,omitempty"`
	Data json.RawMessage `json:"data"`
}

// CancelEntry records who cancelled a run and why (…<run>.cancel).
type CancelEntry struct {
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time"`
}

// PatchEntry records the decision of a patched() call (…<run>.patch.<id>).
type PatchEntry struct {
	Value bool      `json:"value"`
	Pos   string    `json:"pos,omitempty"`
	Time  time.Time `json:"time"`
}

// VersionEntry records that a run was moved to another script version
// (…<run>.version.<n>), by Resume.
type VersionEntry struct {
	Hash   string    `json:"hash"`
	Script string    `json:"script"`
	By     string    `json:"by,omitempty"`
	Time   time.Time `json:"time"`
}

// journal is a run's journal read into memory, for replay and recovery.
type journal struct {
	versions []VersionEntry
	start    StartEntry
	calls    map[string]*CallEntry
	results  map[string]*ResultEntry
	tags     []TagEntry
	patches  map[string]PatchEntry
	cancel   *CancelEntry
	end      *EndEntry
}

// readJournal reads every entry of run id from the bus.
func (n *Node) readJournal(ctx context.Context, id string) ([]JournalEntry, error) {
	msgs, err := n.bus.Read(ctx, bus.JournalFilter(id))
	if err != nil {
		return nil, err
	}
	prefix := bus.JournalPrefix + id + "."
	out := make([]JournalEntry, 0, len(msgs))
	for _, m := range msgs {
		kind, key, _ := strings.Cut(strings.TrimPrefix(m.Subject, prefix), ".")
		out = append(out, JournalEntry{Kind: kind, Key: key, Data: m.Data})
	}
	return out, nil
}

// parseJournal builds the in-memory view of a run's entries. Call and result
// entries (nearly all of a long journal) are decoded on every core at once.
func parseJournal(entries []JournalEntry) (*journal, error) {
	j := &journal{calls: make(map[string]*CallEntry, len(entries)/2), results: make(map[string]*ResultEntry, len(entries)/2), patches: map[string]PatchEntry{}}
	calls := make([]CallEntry, len(entries))
	results := make([]ResultEntry, len(entries))
	errs := make([]error, len(entries))
	workers := runtime.GOMAXPROCS(0)
	if len(entries) < 256 {
		workers = 1
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(entries); i += workers {
				switch entries[i].Kind {
				case "call":
					errs[i] = json.Unmarshal(entries[i].Data, &calls[i])
				case "result":
					errs[i] = json.Unmarshal(entries[i].Data, &results[i])
				}
			}
		}()
	}
	wg.Wait()
	haveStart := false
	for i, e := range entries {
		err := errs[i]
		switch e.Kind {
		case "start":
			err = json.Unmarshal(e.Data, &j.start)
			haveStart = true
		case "tag":
			var t TagEntry
			err = json.Unmarshal(e.Data, &t)
			j.tags = append(j.tags, t)
		case "call":
			j.calls[e.Key] = &calls[i]
		case "result":
			j.results[e.Key] = &results[i]
		case "patch":
			var p PatchEntry
			err = json.Unmarshal(e.Data, &p)
			j.patches[e.Key] = p
		case "version":
			var v VersionEntry
			err = json.Unmarshal(e.Data, &v)
			j.versions = append(j.versions, v)
		case "cancel":
			j.cancel = new(CancelEntry)
			err = json.Unmarshal(e.Data, j.cancel)
		case "end":
			j.end = new(EndEntry)
			err = json.Unmarshal(e.Data, j.end)
		default:
			err = fmt.Errorf("unknown entry kind %q", e.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("journal entry %d (%s %s) is corrupt: %w", i+1, e.Kind, e.Key, err)
		}
	}
	if !haveStart {
		return nil, fmt.Errorf("the journal has no start entry")
	}
	return j, nil
}

// hash is the script version the run continues on: the latest version entry's,
// else the one it started with.
func (j *journal) hash() string {
	if len(j.versions) > 0 {
		return j.versions[len(j.versions)-1].Hash
	}
	return j.start.Hash
}

// stepLess orders hierarchical step ids ("2" < "10", "4.1.2" < "4.2.1").
func stepLess(a, b string) bool {
	for a != "" && b != "" {
		x, ra, _ := strings.Cut(a, ".")
		y, rb, _ := strings.Cut(b, ".")
		if len(x) != len(y) {
			return len(x) < len(y)
		}
		if x != y {
			return x < y
		}
		a, b = ra, rb
	}
	return a == "" && b != ""
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

// match compares a call the script makes at step id with the journal. It
// returns the journaled call and result (either may be nil) or a divergence.
// pos is called only to report a divergence.
func (j *journal) match(id, builtin string, args json.RawMessage, pos func() string) (*CallEntry, *ResultEntry, error) {
	c, ok := j.calls[id]
	if !ok {
		if j.end != nil {
			return nil, nil, &DivergenceError{Step: id, New: &Call{builtin, args, pos()}}
		}
		return nil, nil, nil
	}
	if c.Builtin != builtin || !sameJSON(c.Args, args) {
		return nil, nil, &DivergenceError{Step: id, Journaled: &Call{c.Builtin, c.Args, c.Pos}, New: &Call{builtin, args, pos()}}
	}
	return c, j.results[id], nil
}

// unvisited returns a divergence if the journal holds calls the script did not
// make, given the set of step ids it did make.
func (j *journal) unvisited(visited map[string]bool) error {
	var missing []string
	for id := range j.calls {
		if !visited[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(a, b int) bool { return stepLess(missing[a], missing[b]) })
	c := j.calls[missing[0]]
	return &DivergenceError{Step: missing[0], Journaled: &Call{c.Builtin, c.Args, c.Pos}, Missing: len(missing)}
}

// ExportFormat is the format version of portable run files.
const ExportFormat = "drover.run/v1"

// Export is a self-contained run: its record, the exact script version, and
// every journal entry. `ctl runs export` writes one; Replay needs nothing else.
type Export struct {
	Format  string         `json:"format"`
	Run     Run            `json:"run"`
	Script  Script         `json:"script"`
	Journal []JournalEntry `json:"journal"`
}

// ParseExport reads a portable run file, checking its format and integrity.
func ParseExport(data []byte) (*Export, error) {
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: not a Drover run file (truncated or corrupted JSON: %v)", ErrBadInput, err)
	}
	if probe.Format != ExportFormat {
		if probe.Format == "" {
			return nil, fmt.Errorf("%w: not a Drover run file (no \"format\" field; want %q)", ErrBadInput, ExportFormat)
		}
		return nil, fmt.Errorf("%w: run file format %q is not supported by this version (it reads %q); use a matching ctl", ErrBadInput, probe.Format, ExportFormat)
	}
	var e Export
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: run file is corrupted: %v", ErrBadInput, err)
	}
	if _, err := parseJournal(e.Journal); err != nil {
		return nil, fmt.Errorf("%w: run file %s: %v", ErrBadInput, e.Run.ID, err)
	}
	if e.Script.Hash() != e.Run.Hash {
		return nil, fmt.Errorf("%w: run file %s: its script does not match the run's version hash (edited or corrupted)", ErrBadInput, e.Run.ID)
	}
	return &e, nil
}

// encodeJSON encodes a journal entry, envelope or export. Unlike json.Marshal
// it leaves <, > and & alone, so canonical arguments embedded as
// json.RawMessage keep their exact bytes (replay compares them).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// sameJSON reports whether two JSON texts hold the same value: byte equality
// first (canonical arguments), then equality of their canonical forms (a
// re-indented or escaped export file).
func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	x, err1 := builtins.Decode(a)
	y, err2 := builtins.Decode(b)
	if err1 != nil || err2 != nil {
		return false
	}
	ca, err1 := builtins.Canonical(x)
	cb, err2 := builtins.Canonical(y)
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}
