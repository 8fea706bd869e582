package journal

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
)

var (
	// ErrExists is returned by Append for an entry that was already written:
	// entries are write-once. It is bus.ErrExists.
	ErrExists = bus.ErrExists
	// ErrNotFound is returned by Get for an entry that was never written. It
	// is bus.ErrNotFound.
	ErrNotFound = bus.ErrNotFound
)

// Store reads and writes journals on a bus. It is safe for concurrent use.
type Store struct {
	b     *bus.Bus
	large int // entries over this many bytes are stored as values
	// logs are the logs of the runs this Store writes (with RunLog), by run.
	logs sync.Map
	// deferred are the journals of runs before their first output, by run
	// (commit.go), and ndeferred counts them.
	deferred  sync.Map
	ndeferred atomic.Int64
	// whole are runs this Store ended on one subject, with nothing to seal
	// (their log, or a sealed part), until a Sealer is told of them.
	whole sync.Map
}

// Pending is a journal append under way: Wait for it before relying on it.
type Pending interface {
	Wait(ctx context.Context) error
}

// NewStore returns the journals kept on b.
func NewStore(b *bus.Bus) *Store { return &Store{b: b, large: DefaultLargeValue} }

// subject returns where an entry of run is stored.
func subject(run string, kind api.EntryKind, key string) string {
	return bus.JournalSubject(run, string(kind), key)
}

// msgID returns the id that de-duplicates retried writes of an entry.
func msgID(run string, kind api.EntryKind, key string) string {
	if key == "" {
		return run + "/" + string(kind)
	}
	return run + "/" + string(kind) + "/" + key
}

// Append writes an entry of run and waits until it is stored. Writing an
// entry that is already there with other content fails with ErrExists.
func (s *Store) Append(ctx context.Context, run string, kind api.EntryKind, key string, entry any) error {
	data, dup, err := s.write(ctx, run, kind, key, entry)
	if err != nil || !dup {
		return err
	}
	// Dropped as a duplicate: this write retried, or another writer's entry.
	m, err := s.b.LeaderEntry(ctx, subject(run, kind, key))
	if err != nil {
		return fmt.Errorf("%w: %s entry %s of run %s: the stored entry could not be read back: %v", ErrExists, kind, key, run, err)
	}
	if !bytes.Equal(m.Data, data) {
		return fmt.Errorf("%w: %s entry %s of run %s", ErrExists, kind, key, run)
	}
	return nil
}

// write encodes and appends an entry, returning what it wrote and whether
// the bus dropped it as a duplicate of a write with the same message id.
func (s *Store) write(ctx context.Context, run string, kind api.EntryKind, key string, entry any) (data []byte, dup bool, err error) {
	if err := s.Commit(ctx, run); err != nil {
		return nil, false, err
	}
	if data, err = api.EncodeJSON(entry); err != nil {
		return nil, false, fmt.Errorf("journal: encode %s entry of run %s: %w", kind, run, err)
	}
	if data, err = s.spill(ctx, data); err != nil {
		return nil, false, fmt.Errorf("journal: %s entry of run %s: %w", kind, run, err)
	}
	s.ownSubject(run, kind)
	_, dup, err = s.b.AppendOnce(ctx, subject(run, kind, key), msgID(run, kind, key), nil, data)
	return data, dup, err
}

// AppendAsync starts writing an entry of run without waiting; call Wait on
// the result before relying on it. Entries appended through one Store are
// stored in order.
func (s *Store) AppendAsync(run string, kind api.EntryKind, key string, entry any) (Pending, error) {
	if err := s.Commit(context.Background(), run); err != nil {
		return nil, err
	}
	return s.appendAsync(run, kind, key, entry)
}

// appendAsync is AppendAsync of a run that is not deferred (any more).
func (s *Store) appendAsync(run string, kind api.EntryKind, key string, entry any) (Pending, error) {
	if l := s.logOf(run, kind); l != nil {
		return l.appendAsync(kind, key, entry), nil
	}
	data, err := api.EncodeJSON(entry)
	if err != nil {
		return nil, fmt.Errorf("journal: encode %s entry of run %s: %w", kind, run, err)
	}
	if s.IsLarge(data) { // stored first, the one wait of a large entry
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if data, err = s.spill(ctx, data); err != nil {
			return nil, fmt.Errorf("journal: %s entry of run %s: %w", kind, run, err)
		}
	}
	s.ownSubject(run, kind)
	return s.b.AppendAsync(subject(run, kind, key), msgID(run, kind, key), nil, data)
}

// Create writes an entry unless one is there already; then it decodes the
// stored entry, read through the stream's leader, into stored and returns
// false. A result written late by an earlier attempt, or a patch decided by
// another coordinator, stands: a second writer never takes its own entry for
// the stored one. When the stored entry cannot be read back, the error wraps
// ErrExists.
func (s *Store) Create(ctx context.Context, run string, kind api.EntryKind, key string, entry, stored any) (created bool, err error) {
	_, dup, err := s.write(ctx, run, kind, key, entry)
	if err == nil && !dup || err != nil && !errors.Is(err, ErrExists) {
		return err == nil, err
	}
	m, err := s.b.LeaderEntry(ctx, subject(run, kind, key))
	if err == nil {
		m.Data, err = s.resolve(ctx, m.Data)
	}
	if err != nil {
		return false, fmt.Errorf("%w: %s entry %s of run %s: the stored entry could not be read back: %v", ErrExists, kind, key, run, err)
	}
	if err := json.Unmarshal(m.Data, stored); err != nil {
		return false, fmt.Errorf("journal: %s entry %s of run %s is corrupt: %w", kind, key, run, err)
	}
	return false, nil
}

// Get decodes the entry of run with kind and key into v, or returns an error
// wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, run string, kind api.EntryKind, key string, v any) error {
	m, err := s.b.Entry(ctx, subject(run, kind, key))
	if errors.Is(err, ErrNotFound) {
		m.Data, err = s.sealedEntry(ctx, run, kind, key, err)
	}
	if err == nil {
		m.Data, err = s.resolve(ctx, m.Data)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		return fmt.Errorf("journal: %s entry %s of run %s is corrupt: %w", kind, key, run, err)
	}
	return nil
}

// sealedEntry looks for an entry in run's sealed parts and its log,
// returning notFound when it is in neither.
func (s *Store) sealedEntry(ctx context.Context, run string, kind api.EntryKind, key string, notFound error) ([]byte, error) {
	msgs, err := s.b.ReadDirect(ctx, bus.JournalRunPrefix(run)+sealedKind+".>")
	if err == nil { // a log, if another node wrote one (it may have run logs before this one)
		var logged []bus.Msg
		logged, err = s.b.Read(ctx, subject(run, logKind, ""))
		msgs = append(msgs, logged...)
	}
	if err != nil {
		return nil, err
	}
	recs, err := records(run, msgs)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Kind == kind && r.Key == key {
			return r.Data, nil
		}
	}
	return nil, notFound
}

// Result returns the journaled result of step id of run, or an error
// wrapping ErrNotFound while it has none.
func (s *Store) Result(ctx context.Context, run, step string) (*api.ResultEntry, error) {
	res := new(api.ResultEntry)
	if err := s.Get(ctx, run, api.EntryResult, step, res); err != nil {
		return nil, err
	}
	return res, nil
}

// LookupResult returns step's result if the journal holds it, and nil if
// the journal answers that it does not. While the journal does not answer
// (a lost node may have led it, and its result may be committed by the next
// leader) it asks again, until ctx ends.
func (s *Store) LookupResult(ctx context.Context, run, step string) (*api.ResultEntry, error) {
	for {
		res, err := s.Result(ctx, run, step)
		if err == nil || errors.Is(err, ErrNotFound) {
			return res, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("journal: looking up the result of step %s of run %s: %w (last error: %v)", step, run, context.Cause(ctx), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// AppendResult journals the result of a step, write-once: if another writer
// got there first (an attempt dispatched before a crash that finished late),
// its result stands and is returned instead. The result of a folded call, in a
// run still deferred (Defer), is kept with the run's other entries: the
// caller commits a run (Commit) before executing any step but a side value.
func (s *Store) AppendResult(ctx context.Context, run string, res api.ResultEntry) (api.ResultEntry, error) {
	if res.Call != nil {
		if kept, err := s.deferResult(ctx, run, res); kept || err != nil {
			return res, err
		}
		if l := s.logOf(run, api.EntryResult); l != nil {
			// A folded co-located result: only the run's coordinator
			// writes it, and the log's fence arbitrates coordinators.
			return res, l.Append(ctx, api.EntryResult, res.Step, res)
		}
	}
	var stored api.ResultEntry
	created, err := s.Create(ctx, run, api.EntryResult, res.Step, res, &stored)
	if err != nil || created {
		return res, err
	}
	return stored, nil
}

// Record is a journal entry as stored: the entry and its sequence in the
// journal stream (increasing within a run).
type Record struct {
	api.JournalEntry
	Seq uint64
}

// record parses a message read from the bus.
func record(run string, m bus.Msg) Record {
	kind, key, _ := strings.Cut(strings.TrimPrefix(m.Subject, bus.JournalRunPrefix(run)), ".")
	return Record{JournalEntry: api.JournalEntry{Kind: api.EntryKind(kind), Key: key, Data: m.Data}, Seq: m.Seq}
}

// Read returns every entry of run in the order they were written; none for
// a run the journal does not hold (never started, or expired). A sealed
// run's entries read the same as a live one's.
func (s *Store) Read(ctx context.Context, run string) ([]Record, error) {
	msgs, err := s.b.Read(ctx, bus.JournalFilter(run))
	if err != nil {
		return nil, err
	}
	recs, err := records(run, msgs)
	if err == nil {
		err = s.resolveAll(ctx, recs)
	}
	return recs, err
}

// Entries returns the entries of records.
func Entries(records []Record) []api.JournalEntry {
	out := make([]api.JournalEntry, len(records))
	for i, r := range records {
		out[i] = r.JournalEntry
	}
	return out
}

// Follow calls fn with every entry of run in the order they were written:
// first those already stored, then each new one as it is appended. It returns
// nil as soon as fn returns false, ctx.Err() when ctx ends, and an error
// wrapping bus.ErrClosed when the bus closes. A run sealed while it is
// followed goes on where it was: the entries of its sealed parts that were
// delivered already are not delivered again.
func (s *Store) Follow(ctx context.Context, run string, fn func(Record) bool) error {
	var last uint64
	var ferr error
	err := s.b.Follow(ctx, bus.JournalFilter(run), func(m bus.Msg) bool {
		recs, err := records(run, []bus.Msg{m})
		if err != nil {
			ferr = err
			return false
		}
		for _, r := range recs {
			if r.Seq <= last {
				continue
			}
			last = r.Seq
			if r.Data, err = s.resolve(ctx, r.Data); err != nil {
				ferr = fmt.Errorf("%w (%s entry %s of run %s)", err, r.Kind, r.Key, run)
				return false
			}
			if !fn(r) {
				return false
			}
		}
		return true
	})
	return cmp.Or(ferr, err)
}
