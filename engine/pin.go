package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/droverhq/drover/bus"
)

// Pin keeps run id past retention: the run's export (record, script version and
// journal) is stored in the pinned-runs object store, which never expires, so a
// customer case can be replayed months later.
func (n *Node) Pin(ctx context.Context, id string) (*Run, error) {
	exp, err := n.Export(ctx, id)
	if err != nil {
		return nil, err
	}
	exp.Run.Pinned, exp.Run.Expires = true, nil
	data, err := encodeJSON(exp)
	if err != nil {
		return nil, err
	}
	if err := n.bus.PutPinned(ctx, id, data); err != nil {
		return nil, err
	}
	if err := n.indexRun(ctx, exp.Run, exp.Run.Status, nil); err != nil {
		return nil, err
	}
	return &exp.Run, nil
}

// pinnedExport returns the pinned copy of run id, or an error wrapping
// ErrUnknownRun.
func (n *Node) pinnedExport(ctx context.Context, id string) (*Export, error) {
	data, err := n.bus.GetPinned(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%w %q (ctl runs ls lists the runs this cluster knows; runs expire after the retention period unless pinned)", ErrUnknownRun, id)
		}
		return nil, err
	}
	var exp Export
	if err := json.Unmarshal(data, &exp); err != nil {
		return nil, fmt.Errorf("engine: pinned run %s is corrupt: %w", id, err)
	}
	return &exp, nil
}

// expires is when retention removes a run started at rec.Started.
func (n *Node) expires(rec *Run) {
	if rec.Pinned {
		rec.Expires = nil
		return
	}
	t := rec.Started.Add(n.retention())
	rec.Expires = &t
}

func (n *Node) retention() time.Duration {
	if n.opts.JournalMaxAge > 0 {
		return n.opts.JournalMaxAge
	}
	return bus.DefaultJournalMaxAge
}
