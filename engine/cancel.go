package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/starlark/builtins"
)

// Cancel implements api.API: it stops run id. The cancellation (who, why) is
// journaled, and every node is told, so that the coordinator's Starlark
// thread and every in-flight step, wherever it executes, are cancelled through
// their contexts. A run parked on a timer or blocked is ended at once.
// Cancelling an ended run returns its record and an api.ErrBadInput saying
// how it ended.
func (n *Node) Cancel(ctx context.Context, id, by, reason string) (*api.Run, error) {
	rec, err := n.runs.Record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Done() {
		return rec, fmt.Errorf("%w: run %s has already %s", api.ErrBadInput, id, rec.Status)
	}
	if by == "" {
		by = "unknown"
	}
	entry := api.CancelEntry{By: by, Reason: reason, Time: time.Now().UTC()}
	if err := n.journal.Append(ctx, id, api.EntryCancel, "", entry); err != nil && !errors.Is(err, journal.ErrExists) {
		return nil, err
	}
	data, _ := api.EncodeJSON(entry)
	if err := n.bus.Publish(bus.CancelSubject(id), nil, data); err != nil {
		return nil, err
	}
	n.mu.Lock()
	_, mine := n.active[id]
	n.mu.Unlock()
	if !mine {
		// The run may have no live coordinator (parked, blocked, or its node
		// is gone). Adopting a run whose journal holds a cancel entry runs no
		// script: it only ends it as cancelled. If a live coordinator ends it
		// too, both write the same outcome and the write-once end entry keeps
		// the first.
		if err := n.adopt(ctx, id); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// onCancel handles a cancellation broadcast: a run this node coordinates is
// cancelled, a parked one is woken to end, and steps this node executes for the
// run are cancelled.
func (n *Node) onCancel(m bus.Msg) {
	id := strings.TrimPrefix(m.Subject, bus.CancelPrefix)
	n.mu.Lock()
	r := n.active[id]
	n.mu.Unlock()
	parked := n.unschedule(id)
	n.worker.cancelRun(id)
	if r != nil {
		r.cancel(errCancelled)
	}
	if parked {
		ctx, cancel := context.WithTimeout(n.baseCtx, 10*time.Second)
		defer cancel()
		if err := n.adopt(ctx, id); err != nil {
			n.log.Error().Err(err).Str("run", id).Msg("end cancelled parked run")
		}
	}
}

// cancelError is the error a cancelled run ends with, naming who cancelled it
// and why, from the journal.
func (r *run) cancelError() *api.RunError {
	var ce *api.CancelEntry
	if r.j != nil {
		ce = r.j.Cancel
	}
	if ce == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var stored api.CancelEntry
		if r.n.journal.Get(ctx, r.id, api.EntryCancel, "", &stored) == nil {
			ce = &stored
		}
	}
	return &api.RunError{Code: builtins.CodeCancelled, Message: ce.Message()}
}
