package journal

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

// Output commit. A run is journaled so that it can be recovered, and it only
// needs recovering once something outside it has seen it: a step with an
// outside effect, a timer, a tag in the index, its id given to a caller. A
// run whose caller waits for its end, and learns its id only then (a
// synchronous HTTP trigger), can keep its start and its side values (time,
// random: steps with no outside effect) in memory until its first output:
//
//   - it commits (Commit): its entries are written, in order, and the run is
//     indexed as running: from then on it is journaled like any other run;
//   - or it ends first: its entries and its end are written at once as the
//     one part of a sealed journal (AppendEnd), and nothing is left to seal.
//
// Should its node die before either, nothing outside the run saw it: the
// caller's request fails and there is nothing to recover, as if the request
// had never arrived. This is the output-commit rule of message logging
// (Strom and Yemini, 1985); Temporal journals a workflow task's side effects
// the same way, with the task's completion.

// Bounds on what a run keeps in memory before its first output: past any of
// them it commits.
const (
	deferredEntries = 64
	deferredBytes   = 48 << 10 // a sealed part well under the payload limit
	deferredFor     = 100 * time.Millisecond
)

// deferred is a run's journal before its first output.
type deferred struct {
	mu      sync.Mutex // held while the journal is written
	entries []Record   // start, then side values' results
	size    int
	index   func(context.Context) error // indexes the run as running
	failed  func(error)                 // says in the index that it was not journaled
	timer   *time.Timer
	// closed is set once a caller took it to write it (or drop it); done is
	// closed once that caller is done, and err is its error.
	closed bool
	done   chan struct{}
	err    error
}

// Begin journals the start of run and indexes it (index), at once: one
// round trip; it returns once both are stored. An awaited run (one whose
// caller waits for its end and learns its id only then) is deferred instead,
// both waiting for its first output (Defer). When the start entry could not
// be written after the run was indexed, failed is told, to say so in the
// index.
func (s *Store) Begin(ctx context.Context, run string, start api.StartEntry, awaited bool, index func(context.Context) error, failed func(error)) error {
	if awaited && s.Defer(run, start, index, failed) {
		return nil
	}
	pend, err := s.AppendAsync(run, api.EntryStart, "", start)
	if err != nil {
		return err
	}
	ierr := index(ctx)
	if err := pend.Wait(ctx); err != nil {
		if ierr == nil {
			failed(err)
		}
		return err
	}
	return ierr
}

// Defer begins run's journal in memory (see "Output commit"): its start
// entry, and results of side values (AppendResult of a folded call) until
// its first output. index is called when the run commits, as its entries are
// written, to index it as running; failed, when the run was indexed but its
// entries could not be written. A run that has not committed within
// deferredFor commits on its own, so that it shows in the index. Defer
// reports false, and keeps nothing, for a start entry over the bounds: the
// caller journals it at once.
func (s *Store) Defer(run string, start api.StartEntry, index func(context.Context) error, failed func(error)) bool {
	data, err := api.EncodeJSON(start)
	if err != nil || len(data) > deferredBytes/2 {
		return false
	}
	d := &deferred{entries: []Record{{JournalEntry: api.JournalEntry{Kind: api.EntryStart, Data: data}}}, size: len(data),
		index: index, failed: failed, done: make(chan struct{})}
	s.deferred.Store(run, d)
	s.ndeferred.Add(1)
	d.timer = time.AfterFunc(deferredFor, func() {
		s.Commit(context.Background(), run) // a failure stays: the run's next write returns it
	})
	return true
}

// deferredOf returns run's deferred journal, or nil.
func (s *Store) deferredOf(run string) *deferred {
	if s.ndeferred.Load() == 0 {
		return nil
	}
	if v, ok := s.deferred.Load(run); ok {
		return v.(*deferred)
	}
	return nil
}

// take returns run's deferred journal, held, for the caller to write (or
// drop) and then release with release. It returns nil when the run is not
// deferred, or when another caller took it: once that one released it, with
// its error (a failed commit stays the run's error).
func (s *Store) take(ctx context.Context, run string) (*deferred, error) {
	d := s.deferredOf(run)
	if d == nil {
		return nil, nil
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		select {
		case <-d.done:
			return nil, d.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d.closed = true
	d.timer.Stop()
	return d, nil
}

// release records how a taken deferred journal ended and wakes the callers
// waiting for it. A journal written is forgotten; a failed one is kept, so
// that the run's later writes fail too, until Drop.
func (s *Store) release(run string, d *deferred, err error) error {
	d.err = err
	d.mu.Unlock()
	close(d.done)
	if err == nil {
		s.forget(run, d)
	}
	return err
}

// forget removes d, run's deferred journal.
func (s *Store) forget(run string, d *deferred) {
	if s.deferred.CompareAndDelete(run, d) {
		s.ndeferred.Add(-1)
	}
}

// Commit writes run's deferred journal, in order, and indexes the run as
// running, before its first output: a step with an outside effect, or its
// id given to anyone (a trigger that stops waiting answers with it). It does
// nothing for a run not deferred, or committed already; a commit under way
// is waited for, and one that failed fails every later call. It goes on if
// ctx is cancelled (a half-written commit helps nobody), for 30 s at most.
func (s *Store) Commit(ctx context.Context, run string) error {
	if s.deferredOf(run) == nil {
		return nil // the common case, on every append
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	d, err := s.take(ctx, run)
	if d == nil || err != nil {
		return err
	}
	pending := make([]Pending, 0, len(d.entries))
	for _, e := range d.entries {
		p, err := s.appendAsync(run, e.Kind, e.Key, json.RawMessage(e.Data))
		if err != nil {
			return s.release(run, d, fmt.Errorf("journal: commit run %s: %w", run, err))
		}
		pending = append(pending, p)
	}
	ierr := d.index(ctx)
	var werr error
	for _, p := range pending {
		if err := p.Wait(ctx); err != nil && werr == nil {
			werr = err
		}
	}
	if werr != nil && ierr == nil {
		d.failed(werr) // indexed as running, but not journaled: say so
	}
	if err := cmp.Or(werr, ierr); err != nil {
		return s.release(run, d, fmt.Errorf("journal: commit run %s: %w", run, err))
	}
	return s.release(run, d, nil)
}

// deferResult keeps a side value's result in run's deferred journal, and
// reports whether it did: false for a run not deferred (any more), or one
// that commits now, having reached a bound.
func (s *Store) deferResult(ctx context.Context, run string, res api.ResultEntry) (bool, error) {
	d := s.deferredOf(run)
	if d == nil {
		return false, nil
	}
	data, err := api.EncodeJSON(res)
	if err == nil {
		data, err = s.spill(ctx, data)
	}
	if err != nil {
		return false, fmt.Errorf("journal: result entry %s of run %s: %w", res.Step, run, err)
	}
	d.mu.Lock()
	if !d.closed && len(d.entries) < deferredEntries && d.size+len(data) < deferredBytes {
		d.entries = append(d.entries, Record{JournalEntry: api.JournalEntry{Kind: api.EntryResult, Key: res.Step, Data: data}})
		d.size += len(data)
		d.mu.Unlock()
		return true, nil
	}
	d.mu.Unlock()
	return false, s.Commit(ctx, run)
}

// AppendEnd is AppendAsync of run's end entry. A run still deferred ends
// without having committed: its entries and its end are written as one
// sealed part, and sealed reports so (the run was never indexed, and has
// nothing to seal); AppendEnd then returns once the part is stored, so that
// the run is indexed only once its journal is there.
func (s *Store) AppendEnd(run string, end api.EndEntry) (p Pending, sealed bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := s.take(ctx, run)
	if err != nil {
		return nil, false, err
	}
	if d == nil {
		p, err := s.appendAsync(run, api.EntryEnd, "", end)
		return p, false, err
	}
	data, err := api.EncodeJSON(end)
	if err == nil {
		data, err = s.spill(ctx, data)
	}
	if err != nil {
		return nil, true, s.release(run, d, fmt.Errorf("journal: end entry of run %s: %w", run, err))
	}
	entries := append(d.entries, Record{JournalEntry: api.JournalEntry{Kind: api.EntryEnd, Data: data}})
	// Nothing else of the run is in the journal, nor will be (an ended run
	// takes no entries): its entries are numbered from 1, in order.
	for i := range entries {
		entries[i].Seq = uint64(i + 1)
	}
	parts := s.packParts(entries)
	pending := make([]*bus.Pending, 0, len(parts))
	for i, part := range parts {
		key := strconv.Itoa(i)
		bp, err := s.b.AppendAsync(subject(run, sealedKind, key), msgID(run, sealedKind, key), nil, part)
		if err != nil {
			return nil, true, s.release(run, d, fmt.Errorf("journal: end of run %s: %w", run, err))
		}
		pending = append(pending, bp)
	}
	// Stored, so that the run is indexed after; on disk (the returned wait)
	// with the index's own writes, in one sync under the always policy.
	var durable syncWaits
	for _, bp := range pending {
		w, err := bp.Stored(ctx)
		if err != nil {
			return nil, true, s.release(run, d, fmt.Errorf("journal: end of run %s: %w", run, err))
		}
		durable = append(durable, w)
	}
	s.whole.Store(run, true)
	return durable, true, s.release(run, d, nil)
}

// syncWaits is a Pending of writes stored, waiting for them to be on disk.
type syncWaits []func(context.Context) error

// Wait implements Pending.
func (w syncWaits) Wait(ctx context.Context) error {
	for _, wait := range w {
		if err := wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Drop forgets run's deferred journal, if any, without writing it: the run
// stopped before its first output (its node is shutting down), or its
// commit failed, and nothing outside it saw it.
func (s *Store) Drop(run string) {
	d := s.deferredOf(run)
	if d == nil {
		return
	}
	if taken, _ := s.take(context.Background(), run); taken != nil {
		s.release(run, taken, errDropped)
	}
	s.forget(run, d)
}

// errDropped is the error of a deferred journal dropped.
var errDropped = errors.New("journal: the run stopped before its first output; nothing of it was kept")
