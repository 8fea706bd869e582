package runs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
)

// stored returns run id's record and journal as the index and the journal
// hold them; or, when either no longer does (retention removed them, or
// their oldest entries: no start entry), the run's pinned copy, as pinned. An error wraps api.ErrUnknownRun for a run
// that is neither stored nor pinned.
func (s *Store) stored(ctx context.Context, id string) (rec *api.Run, records []journal.Record, pinned *api.Export, err error) {
	rec, err = s.Record(ctx, id)
	if err == nil {
		if records, err = s.journals.Read(ctx, id); err != nil {
			return nil, nil, nil, err
		}
	}
	if errors.Is(err, api.ErrUnknownRun) || err == nil && (len(records) == 0 || records[0].Kind != api.EntryStart) {
		exp, perr := s.pinned(ctx, id)
		if perr != nil {
			if err != nil {
				return nil, nil, nil, err
			}
			return nil, nil, nil, perr
		}
		return &exp.Run, nil, exp, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	s.Expires(rec)
	return rec, records, nil, nil
}

// Export returns run id as a self-contained, portable run. A pinned run whose
// journal has expired is exported from its pinned copy.
func (s *Store) Export(ctx context.Context, id string) (*api.Export, error) {
	rec, records, pinned, err := s.stored(ctx, id)
	if err != nil || pinned != nil {
		return pinned, err
	}
	script, err := s.opts.Scripts.Load(ctx, rec.Hash)
	if err != nil {
		return nil, err
	}
	return &api.Export{Format: api.ExportFormat, Run: *rec, Script: *script, Journal: journal.Entries(records)}, nil
}

// Pin keeps run id past retention: the run's export (record, script version and
// journal) is stored in the pinned-runs object store, which never expires, so a
// customer case can be replayed months later.
func (s *Store) Pin(ctx context.Context, id string) (*api.Run, error) {
	exp, err := s.Export(ctx, id)
	if err != nil {
		return nil, err
	}
	exp.Run.Pinned, exp.Run.Expires = true, nil
	data, err := api.EncodeJSON(exp)
	if err != nil {
		return nil, err
	}
	if err := s.opts.Bus.PutPinned(ctx, id, data); err != nil {
		return nil, err
	}
	if err := s.Put(ctx, exp.Run, exp.Run.Status, nil); err != nil {
		return nil, err
	}
	return &exp.Run, nil
}

// pinned returns the pinned copy of run id, or an error wrapping
// api.ErrUnknownRun.
func (s *Store) pinned(ctx context.Context, id string) (*api.Export, error) {
	data, err := s.opts.Bus.GetPinned(ctx, id)
	if err != nil {
		if errors.Is(err, bus.ErrNotFound) {
			return nil, fmt.Errorf("%w %q (ctl runs ls lists the runs this cluster knows; runs expire after the retention period unless pinned)", api.ErrUnknownRun, id)
		}
		return nil, err
	}
	var exp api.Export
	if err := json.Unmarshal(data, &exp); err != nil {
		return nil, fmt.Errorf("runs: pinned run %s is corrupt: %w", id, err)
	}
	return &exp, nil
}
