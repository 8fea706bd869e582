package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/bus"
)

// The runs index lives in the runs bucket:
//
//	r.<run>                          the run's record (Run as JSON), rewritten as it changes
//	s.<status>.<run>                 its current status: moved (put, then removed) when it changes
//	p.<script>.<status>.<run>        its script, under every status it has had
//	a.<name>.<value>.<status>.<run>  each attribute, under every status it has had
//
// Scripts, names and values are encoded with bus.EncodeKey. Every key expires
// with the bucket's TTL, counted from its last write; every write of the record
// but a tag's writes the keys of the current status too. p. and a. keys are
// never removed: those under completed, failed or cancelled (which a run keeps)
// are exact, while those under running or blocked stay behind the run. List
// checks every run it returns against its record.
//
// Run ids are ULIDs: they sort by start time. A run's record, and its keys for
// its current status, are written when it starts or later, so the newest part
// of the bucket holds every run started since that part began. List answers
// from the newest part of the bucket, widening it until it holds limit
// matching runs, in one of three ways, whichever a first look at the newest
// revisions says costs least:
//
//   - read every revision (bus.KV.Newest), records and all: when matches are
//     common, or there is no filter;
//   - read the newest keys of the rarest index that matches (bus.KV.NewestKeys,
//     filtered by the server), then the records of their newest runs: when
//     matches are neither common nor rare (failed runs, say);
//   - list every key of that index (bus.KV.StoredKeys), then the records of
//     their newest runs: when matches are rare (an attribute's value).

// clockSkew is how far ahead of the NATS server's clock a coordinator's clock
// may be: the part of the bucket written since time T holds every run whose id
// is later than T+clockSkew.
const clockSkew = 5 * time.Millisecond

// The first look at the bucket reads firstWindow revisions per run asked for,
// up to maxFirstWindow.
const (
	firstWindow    = 12
	maxFirstWindow = 4096
)

// Costs in units of reading one revision with its value (bus.KV.Newest, about
// 4 µs on the benchmark machine), measured with 100,000 runs on file storage.
const (
	costListKey   = 0.4  // listing one key with StoredKeys
	costCountKey  = 0.06 // NewestKeys counting one matching key of the bucket
	costScanRev   = 0.03 // NewestKeys skipping one revision
	costNewestKey = 1.25 // NewestKeys reading one matching key
	costRecord    = 4    // reading one record by key (concurrently)
)

func recordKey(id string) string { return "r." + id }

func statusKey(status, id string) string { return "s." + bus.EncodeKey(status) + "." + id }

func scriptKey(script, status, id string) string {
	return scriptPrefix(script) + bus.EncodeKey(status) + "." + id
}

func scriptPrefix(script string) string { return "p." + bus.EncodeKey(script) + "." }

func attrKey(k, v, status, id string) string {
	return attrPrefix(k, v) + bus.EncodeKey(status) + "." + id
}

func attrPrefix(k, v string) string { return "a." + bus.EncodeKey(k) + "." + bus.EncodeKey(v) + "." }

// indexRun writes the run's record, and index keys for newAttrs (attributes
// just set). prevStatus is the status the index holds for the run ("" for a
// new run). When the status changed, or nothing was just set (the record is
// rewritten: parked, adopted, pinned), it writes every key of the current
// status, so that they live as long as the record, and moves the status key.
// It returns once every write is acknowledged.
func (n *Node) indexRun(ctx context.Context, rec Run, prevStatus string, newAttrs map[string]string) error {
	kv := n.bus.Bucket(bus.RunsBucket)
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("engine: index run %s: %w", rec.ID, err)
	}
	keys := []string{recordKey(rec.ID)}
	attrs := newAttrs
	if rec.Status != prevStatus || len(newAttrs) == 0 {
		attrs = rec.Attrs
		keys = append(keys, statusKey(rec.Status, rec.ID), scriptKey(rec.Script, rec.Status, rec.ID))
	}
	for k, v := range attrs {
		keys = append(keys, attrKey(k, v, rec.Status, rec.ID))
	}
	// Start every write, then wait for all: one round trip.
	puts := make([]*bus.PendingPut, 0, len(keys))
	for i, key := range keys {
		var value []byte
		if i == 0 {
			value = data
		}
		p, err := kv.PutAsync(key, value)
		if err != nil {
			return err
		}
		puts = append(puts, p)
	}
	for _, p := range puts {
		if _, err := p.Wait(ctx); err != nil {
			return err
		}
	}
	// Remove the old status key only now: a crash in between leaves a key
	// too many, which List skips, rather than none.
	if prevStatus != "" && prevStatus != rec.Status {
		return kv.Remove(ctx, statusKey(prevStatus, rec.ID))
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
	return n.list(ctx, f, firstWindow, true)
}

// plan is a way of listing runs.
type plan int

const (
	planNewest     plan = iota // read revisions with values (bus.KV.Newest)
	planNewestKeys             // read an index's newest keys (bus.KV.NewestKeys)
	planStoredKeys             // list all of an index's keys (bus.KV.StoredKeys)
)

// list lists runs matching f, starting with a look at window revisions per
// run asked for; with useIndexes false it only reads revisions with values.
func (n *Node) list(ctx context.Context, f ListFilter, window int, useIndexes bool) ([]Run, error) {
	var sinceID string
	if f.Since > 0 {
		sinceID = ulid.MustNew(ulid.Timestamp(time.Now().Add(-f.Since)), zeroEntropy{}).String()
	}
	kv := n.bus.Bucket(bus.RunsBucket)
	indexes := f.indexes()
	size := uint64(min(window*f.Limit, maxFirstWindow))
	w, err := kv.Newest(ctx, size)
	if err != nil {
		return nil, err
	}
	decoded := map[uint64]*Run{} // by revision, across rounds
	for {
		bound, complete := windowBound(w, sinceID)
		var runs []Run
		nrecs := 0                           // records in the window
		keys := make([]int, len(indexes))    // keys of each index in the window
		keyRuns := make([]int, len(indexes)) // and their runs
		seen := make([]map[string]bool, len(indexes))
		for _, e := range w.Entries {
			if id, ok := strings.CutPrefix(e.Key, "r."); ok {
				nrecs++
				if id < bound {
					continue
				}
				rec, ok := decoded[e.Revision]
				if !ok {
					rec = new(Run)
					if json.Unmarshal(e.Value, rec) != nil {
						rec = nil
					}
					decoded[e.Revision] = rec
				}
				if rec != nil && f.match(rec) {
					runs = append(runs, *rec)
				}
				continue
			}
			for i, x := range indexes {
				if strings.HasPrefix(e.Key, x.prefix) {
					keys[i]++
					if id := e.Key[strings.LastIndexByte(e.Key, '.')+1:]; !seen[i][id] {
						if seen[i] == nil {
							seen[i] = map[string]bool{}
						}
						seen[i][id] = true
						keyRuns[i]++
					}
				}
			}
		}
		if complete || len(runs) >= f.Limit {
			sort.Slice(runs, func(i, j int) bool { return runs[i].ID > runs[j].ID })
			return runs[:min(len(runs), f.Limit)], nil
		}
		// Estimate from the window what each way costs from here on.
		scale := float64(w.Total) / float64(max(len(w.Entries), 1)) // bucket / window
		found := nrecs                                              // matches in the window, at most
		for _, c := range keyRuns {
			found = min(found, c)
		}
		grow := growth(f.Limit, found)
		best, bestIndex, how := float64(grow-1)*float64(size), -1, planNewest
		if float64(f.Limit) > float64(max(found, 1))*scale {
			best = float64(w.Total) // fewer matches than limit: all of it
		}
		// Revisions that hold limit runs of an index with r runs in the window.
		needed := func(r int) float64 { return float64(size) * 1.25 * float64(f.Limit) / float64(r+1) }
		for i := range indexes {
			if !useIndexes {
				break
			}
			total := float64(keys[i]+1) * scale                // keys in the index
			fetch := costRecord * min(total, float64(f.Limit)) // records of their runs
			if cost := costListKey*total + fetch; cost < best {
				best, bestIndex, how = cost, i, planStoredKeys
			}
			revs := needed(keyRuns[i])
			read := costCountKey*total + costScanRev*revs + costNewestKey*revs*float64(keys[i])/float64(size)
			if cost := read + fetch; cost < best {
				best, bestIndex, how = cost, i, planNewestKeys
			}
		}
		switch how {
		case planStoredKeys:
			return n.listStoredKeys(ctx, f, indexes[bestIndex].filter, sinceID)
		case planNewestKeys:
			return n.listNewestKeys(ctx, f, indexes[bestIndex].filter, sinceID, uint64(needed(keyRuns[bestIndex])))
		}
		more := size * uint64(grow-1)
		if err := w.Widen(ctx, more); err != nil {
			return nil, err
		}
		size += more
	}
}

// windowBound returns the id from which on every run is in w, and whether w
// holds every run from sinceID on.
func windowBound(w *bus.Window, sinceID string) (bound string, complete bool) {
	if w.All {
		return sinceID, true
	}
	cutoff := ulid.MustNew(ulid.Timestamp(w.Since.Add(clockSkew)), zeroEntropy{}).String()
	if sinceID >= cutoff {
		return sinceID, true
	}
	return cutoff, false
}

// growth is how many times bigger a window with found matches should become
// to hold limit of them: 2 to 8.
func growth(limit, found int) int {
	return min(max(int(1.25*float64(limit)/float64(max(found, 1))+0.5), 2), 8)
}

// index is a set of index keys that holds every run matching a filter (and
// perhaps others): the keys under prefix, listed with filter.
type index struct{ prefix, filter string }

// indexes returns the indexes that can answer f.
func (f ListFilter) indexes() []index {
	var prefixes []string
	rest := "*.*" // <status>.<run>
	if f.Status != "" {
		prefixes = append(prefixes, "s.")
	}
	if f.Script != "" {
		prefixes = append(prefixes, scriptPrefix(f.Script))
	}
	for k, v := range f.Attrs {
		prefixes = append(prefixes, attrPrefix(k, v))
	}
	if f.Status != "" {
		rest = "*"
		for i := range prefixes {
			prefixes[i] += bus.EncodeKey(f.Status) + "."
		}
	}
	out := make([]index, len(prefixes))
	for i, p := range prefixes {
		out[i] = index{p, p + rest}
	}
	return out
}

// listStoredKeys lists runs matching f among those with a key matching
// filter, all listed.
func (n *Node) listStoredKeys(ctx context.Context, f ListFilter, filter, sinceID string) ([]Run, error) {
	keys, err := n.bus.Bucket(bus.RunsBucket).StoredKeys(ctx, filter)
	if err != nil {
		return nil, err
	}
	return n.newestMatching(ctx, f, keyIDs(keys, sinceID), map[string]*Run{})
}

// listNewestKeys lists runs matching f among those with a key matching filter,
// reading the newest keys, size revisions at first.
func (n *Node) listNewestKeys(ctx context.Context, f ListFilter, filter, sinceID string, size uint64) ([]Run, error) {
	w, err := n.bus.Bucket(bus.RunsBucket).NewestKeys(ctx, filter, size)
	if err != nil {
		return nil, err
	}
	records := map[string]*Run{} // across rounds
	for {
		bound, complete := windowBound(w, sinceID)
		keys := make([]string, len(w.Entries))
		for i, e := range w.Entries {
			keys[i] = e.Key
		}
		runs, err := n.newestMatching(ctx, f, keyIDs(keys, bound), records)
		if err != nil || complete || len(runs) >= f.Limit {
			return runs, err
		}
		grow := growth(f.Limit, len(runs))
		more := size * uint64(grow-1)
		if err := w.Widen(ctx, more); err != nil {
			return nil, err
		}
		size += more
	}
}

// keyIDs returns the runs of index keys from minID on, newest first.
func keyIDs(keys []string, minID string) []string {
	seen := make(map[string]bool, len(keys))
	ids := make([]string, 0, len(keys))
	for _, key := range keys {
		id := key[strings.LastIndexByte(key, '.')+1:]
		if id >= minID && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	return ids
}

// newestMatching returns up to f.Limit runs of ids (newest first) whose
// records match f, reading records newest first, and those not in records
// (which it fills).
func (n *Node) newestMatching(ctx context.Context, f ListFilter, ids []string, records map[string]*Run) ([]Run, error) {
	var out []Run
	for size := 0; len(ids) > 0 && len(out) < f.Limit; {
		// Read as many records as runs are missing, more if candidates turn
		// out not to match.
		size = min(max(f.Limit-len(out), 2*size), len(ids))
		batch := ids[:size]
		ids = ids[size:]
		var missing []string
		for _, id := range batch {
			if _, ok := records[id]; !ok {
				missing = append(missing, id)
			}
		}
		recs, err := n.records(ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, id := range missing {
			records[id] = recs[i]
		}
		for _, id := range batch {
			if rec := records[id]; rec != nil && f.match(rec) && len(out) < f.Limit {
				out = append(out, *rec)
			}
		}
	}
	return out, nil
}

// records reads the records of ids concurrently; a record that has expired
// is nil.
func (n *Node) records(ctx context.Context, ids []string) ([]*Run, error) {
	const parallel = 16
	out := make([]*Run, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = n.record(ctx, id)
			if errors.Is(errs[i], ErrUnknownRun) {
				errs[i] = nil
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (f ListFilter) match(r *Run) bool {
	if f.Status != "" && r.Status != f.Status {
		return false
	}
	if f.Script != "" && r.Script != f.Script {
		return false
	}
	for k, v := range f.Attrs {
		if v2, ok := r.Attrs[k]; !ok || v2 != v {
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
// A pinned run whose journal has expired is read from its pinned copy.
func (n *Node) Get(ctx context.Context, id string) (*RunDetail, error) {
	rec, err := n.record(ctx, id)
	var msgs []bus.Msg
	if err == nil {
		msgs, err = n.bus.Read(ctx, bus.JournalFilter(id))
	}
	if errors.Is(err, ErrUnknownRun) || err == nil && len(msgs) == 0 {
		exp, perr := n.pinnedExport(ctx, id)
		if perr != nil {
			if err != nil {
				return nil, err
			}
			return nil, perr
		}
		rec, err = &exp.Run, nil
		for _, e := range exp.Journal {
			subj := bus.JournalSubject(id, e.Kind, e.Key)
			msgs = append(msgs, bus.Msg{Subject: subj, Data: e.Data})
		}
	}
	if err != nil {
		return nil, err
	}
	n.expires(rec)
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
			if rec := r.snapshot(); rec.Stopped() {
				return &rec, nil
			} // parked or blocked: wait on the index
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rec, err := n.record(ctx, id)
	if err != nil || rec.Stopped() {
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
		if e.Value != nil && json.Unmarshal(e.Value, &rec) == nil && rec.Stopped() {
			return &rec, nil
		}
	}
	return nil, ctx.Err()
}
