package runs

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

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

// List returns runs matching f, newest first.
func (s *Store) List(ctx context.Context, f api.ListFilter) ([]api.Run, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	buckets, err := s.buckets(ctx)
	if err != nil {
		return nil, err
	}
	if len(buckets) == 1 {
		return s.list(ctx, buckets[0], f, firstWindow, true)
	}
	// Each partition's newest matching runs, merged: ids sort by start time.
	found := make([][]api.Run, len(buckets))
	errs := make([]error, len(buckets))
	var wg sync.WaitGroup
	for i, kv := range buckets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found[i], errs[i] = s.list(ctx, kv, f, firstWindow, true)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	runs := slices.Concat(found...)
	sort.Slice(runs, func(i, j int) bool { return runs[i].ID > runs[j].ID })
	return runs[:min(len(runs), f.Limit)], nil
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
func (s *Store) list(ctx context.Context, kv *bus.KV, f api.ListFilter, window int, useIndexes bool) ([]api.Run, error) {
	var sinceID string
	if f.Since > 0 {
		sinceID = ulid.MustNew(ulid.Timestamp(time.Now().Add(-f.Since)), zeroEntropy{}).String()
	}
	indexes := indexes(f)
	size := uint64(min(window*f.Limit, maxFirstWindow))
	w, err := kv.Newest(ctx, size)
	if err != nil {
		return nil, err
	}
	decoded := map[uint64]*api.Run{} // by revision, across rounds
	for {
		bound, complete := windowBound(w, sinceID)
		var runs []api.Run
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
					rec = new(api.Run)
					if json.Unmarshal(e.Value, rec) != nil {
						rec = nil
					}
					decoded[e.Revision] = rec
				}
				if rec != nil && f.Match(rec) {
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
			return s.listStoredKeys(ctx, kv, f, indexes[bestIndex].filter, sinceID)
		case planNewestKeys:
			return s.listNewestKeys(ctx, kv, f, indexes[bestIndex].filter, sinceID, uint64(needed(keyRuns[bestIndex])))
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
func indexes(f api.ListFilter) []index {
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
func (s *Store) listStoredKeys(ctx context.Context, kv *bus.KV, f api.ListFilter, filter, sinceID string) ([]api.Run, error) {
	keys, err := kv.StoredKeys(ctx, filter)
	if err != nil {
		return nil, err
	}
	return s.newestMatching(ctx, f, keyIDs(keys, sinceID), map[string]*api.Run{})
}

// listNewestKeys lists runs matching f among those with a key matching filter,
// reading the newest keys, size revisions at first.
func (s *Store) listNewestKeys(ctx context.Context, kv *bus.KV, f api.ListFilter, filter, sinceID string, size uint64) ([]api.Run, error) {
	w, err := kv.NewestKeys(ctx, filter, size)
	if err != nil {
		return nil, err
	}
	records := map[string]*api.Run{} // across rounds
	for {
		bound, complete := windowBound(w, sinceID)
		keys := make([]string, len(w.Entries))
		for i, e := range w.Entries {
			keys[i] = e.Key
		}
		runs, err := s.newestMatching(ctx, f, keyIDs(keys, bound), records)
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
func (s *Store) newestMatching(ctx context.Context, f api.ListFilter, ids []string, records map[string]*api.Run) ([]api.Run, error) {
	if f.Before != "" { // a later page: skip the runs of earlier ones unread
		ids = ids[sort.Search(len(ids), func(i int) bool { return ids[i] < f.Before }):]
	}
	var out []api.Run
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
		recs, err := s.records(ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, id := range missing {
			records[id] = recs[i]
		}
		for _, id := range batch {
			if rec := records[id]; rec != nil && f.Match(rec) && len(out) < f.Limit {
				out = append(out, *rec)
			}
		}
	}
	return out, nil
}

// zeroEntropy makes the smallest ULID of a millisecond: a bound for ids.
type zeroEntropy struct{}

// Read fills p with zeros.
func (zeroEntropy) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
