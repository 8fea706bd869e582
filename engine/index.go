package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/bus"
)

// The runs index lives in the runs bucket:
//
//	r.<run>                 the run's record (Run as JSON), rewritten as it changes
//	a.<name>.<value>.<run>  one empty key per attribute, for filtering by attribute
//
// Names and values are encoded with bus.EncodeKey. Run ids are ULIDs, so they
// sort by start time and --since needs no record to be read.

func recordKey(id string) string { return "r." + id }

func attrKey(k, v, id string) string {
	return "a." + bus.EncodeKey(k) + "." + bus.EncodeKey(v) + "." + id
}

// indexRun writes the run's record, and index keys for newAttrs (attributes
// just set). prevStatus is the status the index holds for the run ("" for a
// new run); when rec.Status differs, keys that depend on the status change.
func (n *Node) indexRun(ctx context.Context, rec Run, prevStatus string, newAttrs map[string]string) error {
	attrs := newAttrs
	kv := n.bus.Bucket(bus.RunsBucket)
	data, _ := json.Marshal(rec)
	if _, err := kv.Put(ctx, recordKey(rec.ID), data); err != nil {
		return err
	}
	for k, v := range attrs {
		if _, err := kv.Put(ctx, attrKey(k, v, rec.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

// record reads a run's record from the index.
func (n *Node) record(ctx context.Context, id string) (*Run, error) {
	if !bus.ValidToken(id) {
		return nil, fmt.Errorf("%w %q: run ids look like 01JD4W6Q3Z8X5M2N7P9R0S1T2V", ErrUnknownRun, id)
	}
	data, _, err := n.bus.Bucket(bus.RunsBucket).Get(ctx, recordKey(id))
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w %q (ctl runs ls lists the runs this cluster knows)", ErrUnknownRun, id)
		}
		return nil, err
	}
	var rec Run
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("engine: record of run %s is corrupt: %w", id, err)
	}
	return &rec, nil
}

// List returns runs matching f, newest first.
func (n *Node) List(ctx context.Context, f ListFilter) ([]Run, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var minID string
	if f.Since > 0 {
		minID = ulid.MustNew(ulid.Timestamp(time.Now().Add(-f.Since)), zeroEntropy{}).String()
	}
	kv := n.bus.Bucket(bus.RunsBucket)
	var recs []Run
	if len(f.Attrs) > 0 {
		ids, err := n.idsWithAttrs(ctx, f.Attrs)
		if err != nil {
			return nil, err
		}
		sort.Sort(sort.Reverse(sort.StringSlice(ids)))
		for _, id := range ids {
			if id < minID {
				break
			}
			rec, err := n.record(ctx, id)
			if err != nil {
				continue // expired between the two reads
			}
			if f.match(rec) {
				recs = append(recs, *rec)
				if len(recs) == f.Limit {
					break
				}
			}
		}
		return recs, nil
	}
	entries, err := kv.Values(ctx, "r.*")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if id := e.Key[2:]; id < minID {
			continue
		}
		var rec Run
		if json.Unmarshal(e.Value, &rec) == nil && f.match(&rec) {
			recs = append(recs, rec)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID > recs[j].ID })
	if len(recs) > f.Limit {
		recs = recs[:f.Limit]
	}
	return recs, nil
}

// idsWithAttrs returns the ids of runs having every attribute in attrs.
func (n *Node) idsWithAttrs(ctx context.Context, attrs map[string]string) ([]string, error) {
	kv := n.bus.Bucket(bus.RunsBucket)
	var ids map[string]bool
	for k, v := range attrs {
		prefix := "a." + bus.EncodeKey(k) + "." + bus.EncodeKey(v) + "."
		keys, err := kv.Keys(ctx, prefix+"*")
		if err != nil {
			return nil, err
		}
		next := map[string]bool{}
		for _, key := range keys {
			id := strings.TrimPrefix(key, prefix)
			if ids == nil || ids[id] {
				next[id] = true
			}
		}
		ids = next
	}
	out := make([]string, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	return out, nil
}

func (f ListFilter) match(r *Run) bool {
	if f.Status != "" && r.Status != f.Status {
		return false
	}
	if f.Script != "" && r.Script != f.Script {
		return false
	}
	for k, v := range f.Attrs {
		if r.Attrs[k] != v {
			return false
		}
	}
	return true
}

type zeroEntropy struct{}

func (zeroEntropy) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Get returns a run with its input and steps, read from its journal.
func (n *Node) Get(ctx context.Context, id string) (*RunDetail, error) {
	rec, err := n.record(ctx, id)
	if err != nil {
		return nil, err
	}
	msgs, err := n.bus.Read(ctx, bus.JournalFilter(id))
	if err != nil {
		return nil, err
	}
	d := &RunDetail{Run: *rec, Steps: []StepView{}}
	byID := map[string]int{}
	prefix := bus.JournalPrefix + id + "."
	for _, m := range msgs {
		kind, key, _ := strings.Cut(strings.TrimPrefix(m.Subject, prefix), ".")
		switch kind {
		case "start":
			var e StartEntry
			if json.Unmarshal(m.Data, &e) == nil {
				d.Input = e.Input
			}
		case "tag":
			var e TagEntry
			if json.Unmarshal(m.Data, &e) == nil {
				d.Tags = append(d.Tags, e)
			}
		case "call":
			var e CallEntry
			if json.Unmarshal(m.Data, &e) == nil {
				byID[key] = len(d.Steps)
				d.Steps = append(d.Steps, StepView{ID: e.Step, Builtin: e.Builtin, Args: e.Args, Pos: e.Pos, Node: e.Node, Reason: e.Reason, Start: e.Time, Outcome: "pending"})
			}
		case "result":
			var e ResultEntry
			if json.Unmarshal(m.Data, &e) != nil {
				continue
			}
			i, ok := byID[key]
			if !ok {
				continue
			}
			s := &d.Steps[i]
			s.Node, s.Start, s.Duration, s.Attempts, s.Value, s.Error = e.Node, e.Start, e.Duration, e.Attempts, e.Value, e.Error
			s.Outcome = "ok"
			if e.Error != nil {
				s.Outcome = "error"
			}
		}
	}
	sort.SliceStable(d.Steps, func(a, b int) bool { return stepLess(d.Steps[a].ID, d.Steps[b].ID) })
	return d, nil
}

// Wait blocks until run id ends (or ctx ends) and returns its final record.
// It works for runs coordinated by any node: it watches the runs index.
func (n *Node) Wait(ctx context.Context, id string) (*Run, error) {
	n.mu.Lock()
	r := n.active[id]
	n.mu.Unlock()
	if r != nil {
		select {
		case <-r.done:
			if rec := r.snapshot(); rec.Done() {
				return &rec, nil
			} // parked or blocked: wait on the index
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rec, err := n.record(ctx, id)
	if err != nil || rec.Done() {
		return rec, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	updates, err := n.bus.Bucket(bus.RunsBucket).Watch(wctx, recordKey(id))
	if err != nil {
		return nil, err
	}
	for e := range updates {
		var rec Run
		if e.Value != nil && json.Unmarshal(e.Value, &rec) == nil && rec.Done() {
			return &rec, nil
		}
	}
	return nil, ctx.Err()
}
