package runs

import (
	"context"
	"encoding/json"
	"github.com/droverhq/drover/telemetry"
	"sort"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/journal"
)

// Get returns a run with its input, tags and steps, read from its
// journal. A pinned run whose journal has expired is read from its pinned
// copy. Entries that do not decode are left out rather than failing the view.
func (s *Store) Get(ctx context.Context, id string) (*api.RunDetail, error) {
	rec, records, pinned, err := s.stored(ctx, id)
	if err != nil {
		return nil, err
	}
	entries := journal.Entries(records)
	if pinned != nil {
		entries = pinned.Journal
	}
	d := &api.RunDetail{Run: *rec, Steps: []api.StepView{}, TraceID: telemetry.RunTraceID(id, "").String()}
	byID := map[string]int{}
	places := map[string][]api.PlaceEntry{}
	for _, e := range entries {
		switch e.Kind {
		case api.EntryStart:
			var se api.StartEntry
			if json.Unmarshal(e.Data, &se) == nil {
				d.Input = se.Input
				d.TraceID = telemetry.RunTraceID(id, se.TraceParent).String()
			}
		case api.EntryTag:
			var te api.TagEntry
			if json.Unmarshal(e.Data, &te) == nil {
				d.Tags = append(d.Tags, te)
			}
		case api.EntryCall:
			var c api.CallEntry
			if json.Unmarshal(e.Data, &c) == nil {
				byID[e.Key] = len(d.Steps)
				d.Steps = append(d.Steps, api.StepView{ID: c.Step, Builtin: c.Builtin, Args: c.Args, Pos: c.Pos, Node: c.Node, Reason: c.Reason, Called: c.Time, Start: c.Time, Outcome: "pending"})
			}
		case api.EntryPlace:
			var p api.PlaceEntry
			if json.Unmarshal(e.Data, &p) == nil {
				places[p.Step] = append(places[p.Step], p)
			}
		case api.EntryResult:
			var r api.ResultEntry
			if json.Unmarshal(e.Data, &r) != nil {
				continue
			}
			i, ok := byID[e.Key]
			if !ok && r.Call != nil { // a co-located step: its call is in its result
				c := r.Call
				i, ok = len(d.Steps), true
				byID[e.Key] = i
				d.Steps = append(d.Steps, api.StepView{ID: c.Step, Builtin: c.Builtin, Args: c.Args, Pos: c.Pos, Node: c.Node, Reason: c.Reason, Called: c.Time, Start: c.Time})
			}
			if !ok {
				continue
			}
			st := &d.Steps[i]
			st.Node, st.Start, st.Duration, st.Attempts, st.Value, st.Error = r.Node, r.Start, r.Duration, r.Attempts, r.Value, r.Error
			st.Outcome = "ok"
			if r.Error != nil {
				st.Outcome = "error"
			}
		}
	}
	for step, ps := range places {
		i, ok := byID[step]
		if !ok {
			continue
		}
		st := &d.Steps[i]
		sort.Slice(ps, func(a, b int) bool { return ps[a].Attempt < ps[b].Attempt })
		var call api.CallEntry
		json.Unmarshal(callData(entries, step), &call)
		st.Placements = append(st.Placements, api.Placement{Attempt: 1, Node: call.Node, Reason: call.Reason, Time: call.Time})
		for _, p := range ps {
			st.Placements = append(st.Placements, api.Placement{Attempt: p.Attempt, Node: p.Node, Reason: p.Reason, Time: p.Time, Why: p.Why})
		}
		if st.Outcome == "pending" {
			st.Node = ps[len(ps)-1].Node
		}
	}
	sort.SliceStable(d.Steps, func(a, b int) bool { return journal.StepLess(d.Steps[a].ID, d.Steps[b].ID) })
	return d, nil
}

// callData returns the call entry of step among entries.
func callData(entries []api.JournalEntry, step string) json.RawMessage {
	for _, e := range entries {
		if e.Kind == api.EntryCall && e.Key == step {
			return e.Data
		}
	}
	return nil
}
