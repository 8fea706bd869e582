package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/starlark/builtins"
)

// cancelPrefix is the subject on which cancellations are broadcast to every
// node: drover.cancel.<run>.
const cancelPrefix = "drover.cancel."

// Cancel stops run id: the cancellation (who, why) is journaled, and every node
// is told, so that the coordinator's Starlark thread and every in-flight step,
// wherever it executes, are cancelled through their contexts. A run parked on a
// timer or blocked is ended at once. Cancelling an ended run returns its record
// and an ErrBadInput saying how it ended.
func (n *Node) Cancel(ctx context.Context, id, by, reason string) (*Run, error) {
	rec, err := n.record(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.Done() {
		return rec, fmt.Errorf("%w: run %s has already %s", ErrBadInput, id, rec.Status)
	}
	if by == "" {
		by = "unknown"
	}
	data, _ := encodeJSON(CancelEntry{By: by, Reason: reason, Time: time.Now().UTC()})
	if _, err := n.bus.Append(ctx, bus.JournalSubject(id, "cancel", ""), id+"/cancel", nil, data); err != nil && !errors.Is(err, bus.ErrExists) {
		return nil, err
	}
	if err := n.bus.Publish(cancelPrefix+id, nil, data); err != nil {
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
	id := strings.TrimPrefix(m.Subject, cancelPrefix)
	n.mu.Lock()
	r := n.active[id]
	t := n.sleeping[id]
	if t != nil {
		t.Stop()
		delete(n.sleeping, id)
	}
	for _, cancel := range n.stepCancels[id] {
		cancel()
	}
	n.mu.Unlock()
	if r != nil {
		r.cancel(errCancelled)
	}
	if t != nil {
		ctx, cancel := context.WithTimeout(n.baseCtx, 10*time.Second)
		defer cancel()
		if err := n.adopt(ctx, id); err != nil {
			n.log.Error().Err(err).Str("run", id).Msg("end cancelled parked run")
		}
	}
}

// trackStep registers the cancel function of a step this node executes for
// run, until the returned function is called.
func (n *Node) trackStep(run string, cancel context.CancelFunc) (untrack func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	key := new(int)
	if n.stepCancels[run] == nil {
		n.stepCancels[run] = map[*int]context.CancelFunc{}
	}
	n.stepCancels[run][key] = cancel
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.stepCancels[run], key)
		if len(n.stepCancels[run]) == 0 {
			delete(n.stepCancels, run)
		}
	}
}

// cancelError is the error a cancelled run ends with, naming who cancelled it
// and why, from the journal.
func (r *run) cancelError() *RunError {
	ce := r.j.cancelEntry()
	if ce == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if m, err := r.n.bus.Entry(ctx, bus.JournalSubject(r.id, "cancel", "")); err == nil {
			ce = new(CancelEntry)
			json.Unmarshal(m.Data, ce)
		}
	}
	msg := "run cancelled"
	if ce != nil {
		msg = "cancelled by " + ce.By
		if ce.Reason != "" {
			msg += ": " + ce.Reason
		}
	}
	return &RunError{Code: builtins.CodeCancelled, Message: msg}
}

func (j *journal) cancelEntry() *CancelEntry {
	if j == nil {
		return nil
	}
	return j.cancel
}
