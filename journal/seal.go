package journal

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// Sealing. A live run writes each entry to a subject of its own, so that
// JetStream enforces write-once per entry. The server keeps an index entry per
// subject in memory for as long as the message is retained, which would make
// memory grow with every retained step. Once a run has ended, nothing it
// holds changes: Seal rewrites its entries into a few "sealed" parts (one
// message each, the entries keeping their sequences) and purges the entries
// they replace. A sealed run costs one subject or a few, whatever its steps.
//
//	drover.journal.<run>.sealed.<n>   part n of a sealed journal, written once
//
// Readers merge parts and entries by sequence: a run caught between the two
// (parts written, entries not yet purged) reads the same.

// sealedKind is the subject kind token of a sealed journal's parts.
const sealedKind = "sealed"

// sealedEntry is an entry in a sealed part: the entry and its sequence.
type sealedEntry struct {
	Seq  uint64          `json:"seq"`
	Kind api.EntryKind   `json:"kind"`
	Key  string          `json:"key,omitempty"`
	Data json.RawMessage `json:"data"`
}

// sealedPart is one message of a sealed journal.
type sealedPart struct {
	Entries []sealedEntry `json:"entries"`
}

// ErrNotEnded is returned by Seal for a run whose journal has no end entry:
// a live run is never sealed.
var ErrNotEnded = errors.New("journal: the run has not ended")

// Seal rewrites the journal of run, which has ended, into sealed parts and
// purges the entries they replace. It reports whether it sealed anything: a
// run already sealed, or unknown, is left as it is. A run that has not ended
// is refused with ErrNotEnded. Sealing is idempotent and safe to run from
// several nodes at once: a part is written only if nothing was appended to
// the run since its entries were read (the stream's leader checks).
func (s *Store) Seal(ctx context.Context, run string) (bool, error) {
	filter := bus.JournalFilter(run)
	for {
		msgs, err := s.b.ReadDirect(ctx, filter)
		if err != nil || len(msgs) == 0 {
			return false, err
		}
		if slices.ContainsFunc(msgs, func(m bus.Msg) bool { return isLog(run, m.Subject) }) {
			if len(msgs) == 1 {
				return false, nil // a log alone is one subject already
			}
			// ReadDirect gives a subject's last message: the log's others too.
			if msgs, err = s.b.Read(ctx, filter); err != nil {
				return false, err
			}
		}
		var entries []Record // not yet in a part
		var parts []bus.Msg
		covered := map[uint64]bool{}
		ended := false
		for _, m := range msgs {
			if !isPart(run, m.Subject) {
				continue
			}
			parts = append(parts, m)
			recs, err := unpack(run, m)
			if err != nil {
				return false, err
			}
			for _, r := range recs {
				covered[r.Seq] = true
				ended = ended || r.Kind == api.EntryEnd
			}
		}
		for _, m := range msgs {
			if isPart(run, m.Subject) {
				continue
			}
			r := record(run, m)
			if isLog(run, m.Subject) {
				if r, err = unlog(run, m); err != nil {
					return false, err
				}
			}
			ended = ended || r.Kind == api.EntryEnd
			if !covered[r.Seq] && (len(parts) == 0 || r.Seq < parts[0].Seq) {
				entries = append(entries, r)
			}
		}
		if !ended {
			return false, fmt.Errorf("%w: %s", ErrNotEnded, run)
		}
		if len(entries) == 0 && len(parts) == 0 {
			return false, nil
		}
		if err := s.keepValues(ctx, entries); err != nil {
			return false, fmt.Errorf("journal: seal run %s: %w", run, err)
		}
		first := uint64(0) // the first part's sequence: entries below it are in parts
		if len(parts) > 0 {
			first = parts[0].Seq
		}
		last := msgs[len(msgs)-1].Seq
		conflict := false
		for i, data := range s.packParts(entries) {
			n := len(parts) + i
			seq, err := s.b.AppendAfter(ctx, subject(run, sealedKind, strconv.Itoa(n)), msgID(run, sealedKind, strconv.Itoa(n)), filter, last, data)
			if errors.Is(err, bus.ErrConflict) || errors.Is(err, bus.ErrExists) {
				conflict = true // appended to, or sealed by another node, since read
				break
			}
			if err != nil {
				return false, fmt.Errorf("journal: seal run %s: %w", run, err)
			}
			last = seq
			if first == 0 {
				first = seq
			}
		}
		if conflict {
			continue
		}
		if _, err := s.b.PurgeJournal(ctx, filter, first); err != nil {
			return false, fmt.Errorf("journal: seal run %s: %w", run, err)
		}
		return len(entries) > 0, nil
	}
}

// packParts encodes entries into parts of at most about half the largest
// message the bus takes (one entry larger than that gets a part of its own).
func (s *Store) packParts(entries []Record) [][]byte {
	budget := s.b.MaxPayload() / 2
	var parts [][]byte
	var buf []byte
	for _, e := range entries {
		if len(buf) > len(`{"entries":[`) && len(buf)+len(e.Data)+100 > budget {
			parts = append(parts, append(buf, "]}"...))
			buf = nil
		}
		if buf == nil {
			buf = append(make([]byte, 0, 1024), `{"entries":[`...)
		} else {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"seq":`...)
		buf = strconv.AppendUint(buf, e.Seq, 10)
		buf = append(buf, `,"kind":`...)
		buf = builtins.AppendJSONString(buf, string(e.Kind))
		if e.Key != "" {
			buf = append(buf, `,"key":`...)
			buf = builtins.AppendJSONString(buf, e.Key)
		}
		buf = append(buf, `,"data":`...)
		buf = append(buf, e.Data...)
		buf = append(buf, '}')
	}
	if buf != nil {
		parts = append(parts, append(buf, "]}"...))
	}
	return parts
}

// isPart reports whether subject is a part of run's sealed journal.
func isPart(run, subject string) bool {
	return strings.HasPrefix(subject, bus.JournalRunPrefix(run)+sealedKind+".")
}

// unpack returns the entries of a sealed part.
func unpack(run string, m bus.Msg) ([]Record, error) {
	var p sealedPart
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return nil, fmt.Errorf("journal: run %s: sealed part %s is corrupt: %w", run, m.Subject, err)
	}
	out := make([]Record, len(p.Entries))
	for i, e := range p.Entries {
		out[i] = Record{JournalEntry: api.JournalEntry{Kind: e.Kind, Key: e.Key, Data: e.Data}, Seq: e.Seq}
	}
	return out, nil
}

// records turns the messages of run's journal, entries and sealed parts, into
// its entries in sequence order. An entry is kept once: parts and the entries
// they replace overlap until the entries are purged, and a subject purged by
// sealing could be written again by a late writer (the first entry stands,
// as write-once ensures for a live run).
func records(run string, msgs []bus.Msg) ([]Record, error) {
	out := make([]Record, 0, len(msgs))
	sealed := false
	for _, m := range msgs {
		if isLog(run, m.Subject) {
			r, err := unlog(run, m)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		if !isPart(run, m.Subject) {
			out = append(out, record(run, m))
			continue
		}
		recs, err := unpack(run, m)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		sealed = true
	}
	if !sealed {
		return out, nil
	}
	slices.SortStableFunc(out, func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) })
	seen := make(map[string]bool, len(out))
	kept := out[:0]
	var last uint64
	for _, r := range out {
		id := string(r.Kind) + "/" + r.Key
		if r.Seq == last || seen[id] {
			continue
		}
		seen[id], last = true, r.Seq
		kept = append(kept, r)
	}
	return kept, nil
}
