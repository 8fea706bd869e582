package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// The run log: the layout of one subject per run (docs/architecture.md,
// "One subject per run"), on a bus opened with RunLog. Entries a run's
// coordinator writes share one subject,
//
//	drover.journal.<run>.log   {"kind", "key", "data"} per message
//
// each written only if the subject's last message is the one its writer saw
// (bus.AppendFenced): another writer in between (a coordinator that lost the
// run, or the one that adopted it) makes the write fail rather than fork the
// journal. Readers merge the log with the run's other subjects by sequence.
// The engine writes logs with engine.Options.RunLog (experimental).

// logKind is the subject kind token of a run's log.
const logKind = "log"

// ErrFenced is returned by Log.Append when another writer appended to the
// run's log since this Log last did: the run is no longer this writer's to
// continue (read it again).
var ErrFenced = errors.New("journal: another writer appended to the run's log")

// Log appends entries to one run's log. It is safe for concurrent use;
// appends are made one at a time, each after the previous one's
// acknowledgement (each needs the sequence the previous one got).
type Log struct {
	s   *Store
	run string

	mu    sync.Mutex
	last  uint64 // the sequence of the log's last entry, as this Log knows it
	known bool   // last was read or written
	// others is set once the run has entries on subjects of their own (a
	// step's result after its call, a tag, a patch; unknown for a run this
	// Log did not start): its end then goes to a subject of its own too,
	// where the sealer's sweep looks for ended runs to seal.
	others atomic.Bool
}

// Log returns the log of run. fresh says the run is new, its log empty: the
// first append then needs no read of the log's last sequence.
func (s *Store) Log(run string, fresh bool) *Log {
	l := &Log{s: s, run: run, known: fresh}
	l.others.Store(!fresh)
	return l
}

// Append writes an entry to the log and waits until it is stored. It fails
// with an error wrapping ErrFenced when another writer appended since this
// Log's last entry. An append retried after its first try was stored (the
// acknowledgement was lost) succeeds.
func (l *Log) Append(ctx context.Context, kind api.EntryKind, key string, entry any) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.appendLocked(ctx, kind, key, entry)
	if kind == api.EntryEnd && err == nil {
		l.s.logs.Delete(l.run)
	}
	return err
}

// appendLocked is Append, l.mu held.
func (l *Log) appendLocked(ctx context.Context, kind api.EntryKind, key string, entry any) error {
	msg, data, err := encodeLogMessage(kind, key, entry)
	if err != nil {
		return fmt.Errorf("journal: encode %s entry of run %s: %w", kind, l.run, err)
	}
	if l.s.IsLarge(data) {
		if data, err = l.s.spill(ctx, data); err != nil {
			return fmt.Errorf("journal: %s entry of run %s: %w", kind, l.run, err)
		}
		msg = logMessage(kind, key, data)
	}
	subject := subject(l.run, logKind, "")
	if !l.known {
		if l.last, err = l.s.b.LastSeq(ctx, subject); err != nil {
			return fmt.Errorf("journal: read the log of run %s: %w", l.run, err)
		}
		l.known = true
	}
	if kind == api.EntryCall {
		l.others.Store(true) // its result goes to a subject of its own
	}
	seq, err := l.s.b.AppendFenced(ctx, subject, msgID(l.run, kind, key), l.last, msg)
	if errors.Is(err, bus.ErrConflict) {
		// Written since: this append's own first try, or another writer.
		seq, err = l.storedSince(ctx, subject, kind, key, msg)
	}
	if err != nil {
		return err
	}
	l.last = seq
	return nil
}

// storedSince reads the log past l.last after a refused append: it returns
// the sequence of the entry written there if it is this one (its first try
// was stored), and ErrFenced if anything else was written.
func (l *Log) storedSince(ctx context.Context, subject string, kind api.EntryKind, key string, msg []byte) (uint64, error) {
	msgs, err := l.s.b.Read(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("journal: read the log of run %s: %w", l.run, err)
	}
	var newer []bus.Msg
	for _, m := range msgs {
		if m.Seq > l.last {
			newer = append(newer, m)
		}
	}
	if len(newer) == 1 && bytes.Equal(newer[0].Data, msg) {
		return newer[0].Seq, nil
	}
	l.known = false // read again before the next append
	return 0, fmt.Errorf("%w: run %s (%d entries since sequence %d, before its %s entry %s)", ErrFenced, l.run, len(newer), l.last, kind, key)
}

// logOf returns the log that an entry of kind of run goes to, or nil when it
// goes to a subject of its own: with RunLog, a run's coordinator writes its
// start, calls, folded results and end to the log (AppendAsync,
// AppendResult); the others (tags, patches, versions, placements,
// cancellations, workers' results) stay write-once on subjects of their
// own. A Store keeps the log of each run it writes until the run's end.
func (s *Store) logOf(run string, kind api.EntryKind) *Log {
	if !s.b.RunLog() {
		return nil
	}
	switch kind {
	case api.EntryStart, api.EntryCall, api.EntryResult, api.EntryEnd:
	default:
		return nil
	}
	v, ok := s.logs.Load(run)
	if !ok {
		v, _ = s.logs.LoadOrStore(run, s.Log(run, kind == api.EntryStart))
	}
	l := v.(*Log)
	if kind == api.EntryEnd {
		if l.others.Load() {
			return nil
		}
		s.whole.Store(run, true)
	}
	return l
}

// ownSubject is told of an entry of run written to a subject of its own: the
// run then has others, and the entry waits for the log's appends under way
// (a result for its call); after the end, the log is forgotten.
func (s *Store) ownSubject(run string, kind api.EntryKind) {
	v, ok := s.logs.Load(run)
	if !ok {
		return
	}
	l := v.(*Log)
	l.others.Store(true)
	l.mu.Lock()
	l.mu.Unlock()
	if kind == api.EntryEnd {
		s.logs.Delete(run)
	}
}

// appendAsync starts Append, holding the log from now so that appends keep
// their order, and returns its wait. The log is forgotten after the end.
func (l *Log) appendAsync(kind api.EntryKind, key string, entry any) Pending {
	l.mu.Lock() // released by the append's goroutine
	p := &logPending{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.err = l.appendLocked(ctx, kind, key, entry)
		l.mu.Unlock()
		if kind == api.EntryEnd && p.err == nil {
			l.s.logs.Delete(l.run)
		}
	}()
	return p
}

// logPending is an asynchronous append to a log.
type logPending struct {
	done chan struct{}
	err  error
}

// Wait implements Pending.
func (p *logPending) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logMessage encodes an entry of a log: its kind, key and data.
func logMessage(kind api.EntryKind, key string, data []byte) []byte {
	buf := appendLogPrefix(make([]byte, 0, len(data)+64), kind, key)
	buf = append(buf, data...)
	return append(buf, '}')
}

// encodeLogMessage is logMessage of entry's encoding, written in place; data
// is that encoding, within msg.
func encodeLogMessage(kind api.EntryKind, key string, entry any) (msg, data []byte, err error) {
	prefix := appendLogPrefix(make([]byte, 0, 512), kind, key)
	if msg, err = api.AppendJSON(prefix, entry); err != nil {
		return nil, nil, err
	}
	return append(msg, '}'), msg[len(prefix):], nil
}

// appendLogPrefix appends a log message's start, up to its data.
func appendLogPrefix(buf []byte, kind api.EntryKind, key string) []byte {
	buf = append(buf, `{"kind":`...)
	buf = builtins.AppendJSONString(buf, string(kind))
	if key != "" {
		buf = append(buf, `,"key":`...)
		buf = builtins.AppendJSONString(buf, key)
	}
	return append(buf, `,"data":`...)
}

// isLog reports whether subject is run's log.
func isLog(run, subject string) bool {
	return subject == bus.JournalRunPrefix(run)+logKind
}

// unlog returns the entry of a log message, with the message's sequence.
func unlog(run string, m bus.Msg) (Record, error) {
	var e sealedEntry
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return Record{}, fmt.Errorf("journal: run %s: log entry %d is corrupt: %w", run, m.Seq, err)
	}
	return Record{JournalEntry: api.JournalEntry{Kind: e.Kind, Key: e.Key, Data: e.Data}, Seq: m.Seq}, nil
}
