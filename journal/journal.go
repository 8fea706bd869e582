package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/starlark/builtins"
)

// FeatureFoldedCall names the journal's folded form: a co-located step's call
// in its result entry (api.ResultEntry.Call). A build without it adopting a
// run would execute such steps again, so a node writes it only once every
// node has it (cluster.Membership.AllHave).
const FeatureFoldedCall = "journal.folded-call"

// FeatureRunLog names run logs (log.go): a build without them would not see
// a run's entries in its log, and would update the journal back to one
// message per subject. A cluster's journal gets logs once every node has it
// (bus.Bus.EnableRunLog, through cluster.Upgrade).
const FeatureRunLog = "journal.run-log"

// Features are the journal forms this build reads (api.NodeInfo.Features).
var Features = []string{FeatureFoldedCall, FeatureRunLog}

// Journal is a run's journal read into memory, for replay and recovery. Its
// fields are read-only once Parse returns it.
type Journal struct {
	Start    api.StartEntry
	Calls    map[string]*api.CallEntry   // by step id
	Results  map[string]*api.ResultEntry // by step id
	Places   map[string][]api.PlaceEntry // by step id, attempt 2 on
	Tags     []api.TagEntry
	Patches  map[string]api.PatchEntry // by change id
	Versions []api.VersionEntry
	Cancel   *api.CancelEntry
	End      *api.EndEntry
}

// Parse builds the in-memory view of a run's entries, refusing a journal
// without a start entry, with an entry of unknown kind or a corrupt one.
// Call and result entries (nearly all of a long journal) are decoded on every
// core at once.
func Parse(entries []api.JournalEntry) (*Journal, error) {
	j := &Journal{
		Calls:   make(map[string]*api.CallEntry, len(entries)/2),
		Results: make(map[string]*api.ResultEntry, len(entries)/2),
		Places:  map[string][]api.PlaceEntry{},
		Patches: map[string]api.PatchEntry{},
	}
	calls := make([]api.CallEntry, len(entries))
	results := make([]api.ResultEntry, len(entries))
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
				case api.EntryCall:
					errs[i] = json.Unmarshal(entries[i].Data, &calls[i])
				case api.EntryResult:
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
		case api.EntryStart:
			err = json.Unmarshal(e.Data, &j.Start)
			haveStart = true
		case api.EntryTag:
			var t api.TagEntry
			err = json.Unmarshal(e.Data, &t)
			j.Tags = append(j.Tags, t)
		case api.EntryCall:
			j.Calls[e.Key] = &calls[i]
		case api.EntryResult:
			j.Results[e.Key] = &results[i]
		case api.EntryPlace:
			var p api.PlaceEntry
			err = json.Unmarshal(e.Data, &p)
			j.Places[p.Step] = append(j.Places[p.Step], p)
		case api.EntryPatch:
			var p api.PatchEntry
			err = json.Unmarshal(e.Data, &p)
			j.Patches[e.Key] = p
		case api.EntryVersion:
			var v api.VersionEntry
			err = json.Unmarshal(e.Data, &v)
			j.Versions = append(j.Versions, v)
		case api.EntryCancel:
			j.Cancel = new(api.CancelEntry)
			err = json.Unmarshal(e.Data, j.Cancel)
		case api.EntryEnd:
			j.End = new(api.EndEntry)
			err = json.Unmarshal(e.Data, j.End)
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
	// A co-located step's call is journaled with its result.
	for id, res := range j.Results {
		if res.Call != nil && j.Calls[id] == nil {
			j.Calls[id] = res.Call
		}
	}
	return j, nil
}

// Hash is the script version the run continues on: the latest version
// entry's, else the one it started with.
func (j *Journal) Hash() string {
	if len(j.Versions) > 0 {
		return j.Versions[len(j.Versions)-1].Hash
	}
	return j.Start.Hash
}

// Match compares a call the script makes at step id with the journal. It
// returns the journaled call and result (either may be nil: the journal ends
// before the call, or holds the call but not yet its result) or a
// *api.DivergenceError. pos is called only to report a divergence.
func (j *Journal) Match(id, builtin string, args json.RawMessage, pos func() string) (*api.CallEntry, *api.ResultEntry, error) {
	c, ok := j.Calls[id]
	if !ok {
		if j.End != nil {
			return nil, nil, &api.DivergenceError{Step: id, New: &api.Call{Builtin: builtin, Args: args, Pos: pos()}}
		}
		return nil, nil, nil
	}
	if c.Builtin != builtin || !SameJSON(c.Args, args) {
		return nil, nil, &api.DivergenceError{Step: id,
			Journaled: &api.Call{Builtin: c.Builtin, Args: c.Args, Pos: c.Pos},
			New:       &api.Call{Builtin: builtin, Args: args, Pos: pos()}}
	}
	return c, j.Results[id], nil
}

// Unvisited returns a *api.DivergenceError if the journal holds calls the
// script did not make, given the set of step ids it did make.
func (j *Journal) Unvisited(visited map[string]bool) error {
	var missing []string
	for id := range j.Calls {
		if !visited[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Slice(missing, func(a, b int) bool { return StepLess(missing[a], missing[b]) })
	c := j.Calls[missing[0]]
	return &api.DivergenceError{Step: missing[0], Journaled: &api.Call{Builtin: c.Builtin, Args: c.Args, Pos: c.Pos}, Missing: len(missing)}
}

// StepLess orders hierarchical step ids ("2" < "10", "4.1.2" < "4.2.1").
func StepLess(a, b string) bool {
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

// SameJSON reports whether two JSON texts hold the same value: byte equality
// first (canonical arguments), then equality of their canonical forms (a
// re-indented or escaped export file).
func SameJSON(a, b []byte) bool {
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
