package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/bus"
	"github.com/droverhq/drover/journal"
	"github.com/droverhq/drover/starlark/builtins"
)

// startTriggers runs the Triggers of every integration instance that has
// them (builtins.Triggerer) until ctx ends; the returned function waits for
// them to return.
func (n *Node) startTriggers(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for name, t := range n.integrations.Triggerers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.Triggers(ctx, n.startTriggered); err != nil && ctx.Err() == nil {
				n.log.Error().Str("integration", name).Msg(builtins.Redact(err.Error()))
			}
		}()
	}
	return wg.Wait
}

// startTriggered starts the run a message asks for (builtins.StartFunc),
// once per source and key: the run's id is reserved under them before the
// run starts, so that a message delivered again, even after the node that
// took it first stopped between reserving and acknowledging, finds its run
// or starts it under the reserved id.
func (n *Node) startTriggered(ctx context.Context, t builtins.TriggeredRun) (string, error) {
	id, err := n.startOnce(ctx, t)
	if errors.Is(err, builtins.ErrPermanent) {
		n.log.Warn().Str("source", t.Source).Str("key", t.Key).Str("script", t.Script).Msg("message rejected: " + err.Error())
	}
	return id, err
}

// startOnce is startTriggered.
func (n *Node) startOnce(ctx context.Context, t builtins.TriggeredRun) (string, error) {
	if !json.Valid(t.Input) {
		return "", fmt.Errorf("%w: its body is not JSON, and a run's input must be", builtins.ErrPermanent)
	}
	// The message's trace context is the run's parent: the run continues
	// its publisher's trace.
	req := api.StartRequest{Script: api.Script{Name: t.Script}, Input: t.Input, Attrs: t.Attrs, TraceParent: t.TraceParent}
	if t.Key == "" {
		return n.startClassified(ctx, req, "")
	}
	kv := n.bus.Bucket(bus.TriggersBucket)
	key := triggerKey(t.Source, t.Key)
	for {
		v, _, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			id := string(v)
			if _, err := n.runs.Record(ctx, id); err == nil {
				// Indexed: started already (the message was delivered
				// again), unless its start entry never made it to the
				// journal (runs.Store.NotStarted).
				if records, err := n.journal.Read(ctx, id); err != nil {
					return "", err
				} else if len(records) > 0 {
					return id, nil
				}
			} else if !errors.Is(err, api.ErrUnknownRun) {
				return "", err
			}
			// Reserved by a node that stopped, or failed, before the run
			// started: start it now, under the reserved id.
			return n.startClassified(ctx, req, id)
		case errors.Is(err, bus.ErrNotFound):
			id := n.newRunID(time.Now())
			if _, err := kv.Create(ctx, key, []byte(id)); errors.Is(err, bus.ErrExists) {
				continue // another delivery reserved it meanwhile
			} else if err != nil {
				return "", err
			}
			return n.startClassified(ctx, req, id)
		default:
			return "", err
		}
	}
}

// triggerKey is the key under which a message's run id is reserved.
func triggerKey(source, key string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + key))
	return hex.EncodeToString(sum[:16])
}

// startClassified starts req under id (or a new id), marking the errors a
// delivery again would meet again as builtins.ErrPermanent.
func (n *Node) startClassified(ctx context.Context, req api.StartRequest, id string) (string, error) {
	r, err := n.start(ctx, req, id)
	switch {
	case err == nil:
		return r.ID, nil
	case id != "" && (errors.Is(err, journal.ErrExists) || errors.Is(err, journal.ErrFenced)):
		// The reserved run's start is journaled, but it is not indexed: its
		// node is still starting it (the message was delivered again
		// meanwhile), or stopped in between. Unless that node is live,
		// index the run from its journal and adopt it.
		return id, n.indexFromJournal(ctx, id)
	case errors.Is(err, api.ErrUnknownScript), errors.Is(err, api.ErrBadInput):
		return "", fmt.Errorf("%w: %v", builtins.ErrPermanent, err)
	}
	return "", err
}

// indexFromJournal indexes run id as running, from its journal's start
// entry, and adopts it, unless the node that started it is live (it is
// indexing it).
func (n *Node) indexFromJournal(ctx context.Context, id string) error {
	records, err := n.journal.Read(ctx, id)
	if err != nil {
		return err
	}
	j, err := journal.Parse(journal.Entries(records))
	if err != nil {
		return fmt.Errorf("engine: run %s: %w", id, err)
	}
	n.mu.Lock()
	here := n.active[id] != nil || n.starting[id]
	n.mu.Unlock()
	st := j.Start
	switch {
	case j.End != nil:
		return nil // it ended: its coordinator indexed its end (indexing it running would undo that)
	case here:
		return nil // this node is starting it, or runs it
	case st.Coordinator != n.opts.Name && n.cluster.IsLive(st.Coordinator):
		return nil // its coordinator is at it
	}
	rec := api.Run{ID: id, Script: st.Script, Hash: st.Hash, Version: st.Version, Status: api.StatusRunning, Attrs: st.Attrs, Coordinator: st.Coordinator, Started: st.Time}
	n.log.Warn().Str("run", id).Msg("indexing a triggered run journaled but not indexed before its node stopped, and adopting it")
	if err := n.runs.Put(ctx, rec, "", st.Attrs); err != nil {
		return err
	}
	return n.adopt(ctx, id)
}
