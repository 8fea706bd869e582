package engine

import (
	"context"

	"github.com/droverhq/drover/api"
	"github.com/droverhq/drover/api/server"
)

// Wait implements api.API: it blocks until run id has stopped (ended or
// blocked) or ctx ends, and returns its final record. It works for runs
// coordinated by any node: it watches the runs index, unless this node
// coordinates the run.
func (n *Node) Wait(ctx context.Context, id string) (*api.Run, error) {
	n.mu.Lock()
	r := n.active[id]
	n.mu.Unlock()
	if r != nil {
		select {
		case <-r.done:
			if rec := r.snapshot(); rec.Stopped() {
				return &rec, nil
			} // parked or blocked: wait on the index
		case <-ctx.Done():
			if err := n.journal.Commit(ctx, id); err != nil { // the caller may now give its id out
				return nil, err
			}
			return nil, ctx.Err()
		}
	}
	return n.runs.Wait(ctx, id)
}

// Record returns run id's record from the runs index (api/server's Backend).
func (n *Node) Record(ctx context.Context, id string) (*api.Run, error) {
	return n.runs.Record(ctx, id)
}

// Nodes implements api.API: the live nodes, by name.
func (n *Node) Nodes(context.Context) ([]api.NodeInfo, error) { return n.cluster.Nodes(), nil }

// ClusterEvents implements api.API.
func (n *Node) ClusterEvents(ctx context.Context, limit int) ([]api.ClusterEvent, error) {
	return n.bus.ClusterEvents(ctx, limit)
}

// Events implements api.API: it calls fn with every journal entry of run id
// in the order it was written: first the entries already journaled, then
// each new one as it is written. It returns nil after the run's end entry or
// as soon as fn returns false, ctx.Err() when ctx ends, and api.ErrUnknownRun,
// before calling fn, for a run the cluster does not know.
func (n *Node) Events(ctx context.Context, id string, fn func(api.Event) bool) error {
	ev, err := n.runs.Events(ctx, id)
	if err != nil {
		return err
	}
	return ev.Follow(ctx, 0, fn)
}

// OpenEvents checks that run id exists and returns its journal to follow
// (api/server's Backend). Following ends with an error wrapping
// api.ErrClosed when the node closes.
func (n *Node) OpenEvents(ctx context.Context, id string) (server.Events, error) {
	ev, err := n.runs.Events(ctx, id)
	if err != nil {
		return nil, err
	}
	return ev, nil
}
