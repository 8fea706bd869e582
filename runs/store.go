package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
)

// ScriptLoader returns the script version stored under a content hash
// (package deploy's Store implements it).
type ScriptLoader interface {
	Load(ctx context.Context, hash string) (*api.Script, error)
}

// Options configures a Store.
type Options struct {
	// Bus holds the runs bucket, the journals and the pinned runs.
	Bus *bus.Bus
	// Scripts loads the script version of a run for its export.
	Scripts ScriptLoader
	// Retention is how long runs are kept (default bus.DefaultJournalMaxAge).
	Retention time.Duration
	// Closing ends every event stream when it is done (the node closes):
	// Events.Follow then returns an error wrapping api.ErrClosed.
	Closing context.Context
}

// Store reads and writes the runs index, and reads runs' journals and pinned
// copies. It is safe for concurrent use.
type Store struct {
	opts     Options
	journals *journal.Store
}

// NewStore returns the runs kept on opts.Bus.
func NewStore(opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = bus.DefaultJournalMaxAge
	}
	if opts.Closing == nil {
		opts.Closing = context.Background()
	}
	return &Store{opts: opts, journals: journal.NewStore(opts.Bus)}
}

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

// Put writes the run's record, and index keys for newAttrs (attributes just
// set). prevStatus is the status the index holds for the run ("" for a new
// run). When the status changed, or nothing was just set (the record is
// rewritten: parked, adopted, pinned), it writes every key of the current
// status, so that they live as long as the record, and moves the status key.
// It returns once every write is acknowledged.
func (s *Store) Put(ctx context.Context, rec api.Run, prevStatus string, newAttrs map[string]string) error {
	removeOld, err := s.PutKeepOld(ctx, rec, prevStatus, newAttrs)
	if err != nil {
		return err
	}
	return removeOld(ctx)
}

// NotStarted marks rec, indexed as running, as failed because its start was
// never journaled (why says why: the write failed, or its node stopped
// first): no step of it ran, and nothing can recover it.
func (s *Store) NotStarted(ctx context.Context, rec api.Run, why error) error {
	now := time.Now().UTC()
	rec.Status, rec.Ended = api.StatusFailed, &now
	rec.Error = &api.RunError{Message: "the run did not start: its start entry was not journaled: " + why.Error()}
	return s.Put(ctx, rec, api.StatusRunning, nil)
}

// PutKeepOld is Put that leaves the removal of the old status key to the
// caller: it returns the function that removes it, to be called once the
// caller has answered (a key too many in between is one List skips).
func (s *Store) PutKeepOld(ctx context.Context, rec api.Run, prevStatus string, newAttrs map[string]string) (removeOld func(context.Context) error, err error) {
	none := func(context.Context) error { return nil }
	if len(rec.Result) > journal.DefaultLargeValue {
		rec.Result, rec.ResultLeftOut = nil, true // the journal's end entry holds it
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return none, fmt.Errorf("runs: index run %s: %w", rec.ID, err)
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
	kv, err := s.bucket(ctx, rec.ID)
	if err != nil {
		return none, err
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
			return none, err
		}
		puts = append(puts, p)
	}
	// Every put acknowledged, then one sync for all (under the always policy).
	durable := make([]func(context.Context) error, 0, len(puts))
	for _, p := range puts {
		d, err := p.Stored(ctx)
		if err != nil {
			return none, err
		}
		durable = append(durable, d)
	}
	for _, d := range durable {
		if err := d(ctx); err != nil {
			return none, err
		}
	}
	// Remove the old status key only now: a crash in between leaves a key
	// too many, which List skips, rather than none.
	if prevStatus != "" && prevStatus != rec.Status {
		return func(ctx context.Context) error { return kv.Remove(ctx, statusKey(prevStatus, rec.ID)) }, nil
	}
	return none, nil
}

// bucket returns the runs-index bucket of run id's partition.
func (s *Store) bucket(ctx context.Context, id string) (*bus.KV, error) {
	return s.opts.Bus.RunsBucketFor(ctx, bus.RunPartition(id))
}

// buckets returns the runs-index buckets of every partition.
func (s *Store) buckets(ctx context.Context) ([]*bus.KV, error) {
	n, err := s.opts.Bus.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*bus.KV, n)
	for p := range out {
		if out[p], err = s.opts.Bus.RunsBucketFor(ctx, p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Record reads a run's record from the index, or returns an error wrapping
// api.ErrUnknownRun.
func (s *Store) Record(ctx context.Context, id string) (*api.Run, error) {
	if !bus.ValidToken(id) {
		return nil, fmt.Errorf("%w %q: run ids look like 01JD4W6Q3Z8X5M2N7P9R0S1T2V", api.ErrUnknownRun, id)
	}
	kv, err := s.bucket(ctx, id)
	var data []byte
	if err == nil {
		data, _, err = kv.Get(ctx, recordKey(id))
	}
	if err != nil {
		if errors.Is(err, bus.ErrNotFound) {
			return nil, fmt.Errorf("%w %q (ctl runs ls lists the runs this cluster knows)", api.ErrUnknownRun, id)
		}
		return nil, err
	}
	var rec api.Run
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("runs: record of run %s is corrupt: %w", id, err)
	}
	return &rec, s.fillResult(ctx, &rec)
}

// fillResult reads a large result left out of rec from the run's journal.
func (s *Store) fillResult(ctx context.Context, rec *api.Run) error {
	if !rec.ResultLeftOut {
		return nil
	}
	var end api.EndEntry
	if err := s.journals.Get(ctx, rec.ID, api.EntryEnd, "", &end); errors.Is(err, bus.ErrNotFound) {
		return nil // expired with the journal (a pinned run's copy holds it)
	} else if err != nil {
		return fmt.Errorf("runs: the result of run %s: %w", rec.ID, err)
	}
	rec.Result, rec.ResultLeftOut = end.Result, false
	return nil
}

// records reads the records of ids concurrently; a record that has expired
// is nil.
func (s *Store) records(ctx context.Context, ids []string) ([]*api.Run, error) {
	const parallel = 16
	out := make([]*api.Run, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i], errs[i] = s.Record(ctx, id)
			if errors.Is(errs[i], api.ErrUnknownRun) {
				errs[i] = nil
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Running returns every run the index says is running, from its status keys
// (read through the stream leader) and records: no windowed scan, which
// depends on replicas answering direct gets right after a node loss.
func (s *Store) Running(ctx context.Context) ([]api.Run, error) {
	buckets, err := s.buckets(ctx)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, kv := range buckets {
		k, err := kv.StoredKeys(ctx, statusKey(api.StatusRunning, "*"))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	var runs []api.Run
	for _, key := range keys {
		id := key[strings.LastIndexByte(key, '.')+1:]
		rec, err := s.Record(ctx, id)
		if err != nil {
			if errors.Is(err, api.ErrUnknownRun) {
				continue
			}
			return nil, err
		}
		if rec.Status == api.StatusRunning {
			runs = append(runs, *rec)
		}
	}
	return runs, nil
}

// Wait blocks until run id has stopped (ended or blocked) or ctx ends, and
// returns its final record. It works for runs coordinated by any node: it
// watches the run's record.
func (s *Store) Wait(ctx context.Context, id string) (*api.Run, error) {
	rec, err := s.Record(ctx, id)
	if err != nil || rec.Stopped() {
		return rec, err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kv, err := s.bucket(ctx, id)
	if err != nil {
		return nil, err
	}
	updates, err := kv.Watch(wctx, recordKey(id))
	if err != nil {
		return nil, err
	}
	for e := range updates {
		var rec api.Run
		if e.Value != nil && json.Unmarshal(e.Value, &rec) == nil && rec.Stopped() {
			return &rec, s.fillResult(ctx, &rec)
		}
	}
	return nil, ctx.Err()
}

// Expires sets when retention removes a run (nil for a pinned run).
func (s *Store) Expires(rec *api.Run) {
	if rec.Pinned {
		rec.Expires = nil
		return
	}
	t := rec.Started.Add(s.opts.Retention)
	rec.Expires = &t
}
