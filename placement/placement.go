// Package placement chooses the node that executes a step.
//
// A Policy sees a Request (which builtin, which run, the coordinator, the
// resources the call demands) and returns a Decision naming a node and the
// reason, which the engine journals with the step. Placement never affects a
// step's identity: ids are assigned before placement is asked.
package placement

import (
	"context"
	"errors"
)

// ErrNoNode is returned when no node can take the step.
var ErrNoNode = errors.New("placement: no node can take the step")

// Request describes a step to place.
type Request struct {
	Run         string
	Step        string
	Builtin     string
	Coordinator string // node coordinating the run
}

// Decision is where a step runs, and why.
type Decision struct {
	Node   string
	Reason string
}

// Policy chooses a node for a step.
type Policy interface {
	Place(ctx context.Context, req Request) (Decision, error)
}

// Local places every step on the coordinator's own node: the co-located fast
// path, and the only choice while a cluster has one node.
type Local struct{}

// Place implements Policy.
func (Local) Place(_ context.Context, req Request) (Decision, error) {
	if req.Coordinator == "" {
		return Decision{}, ErrNoNode
	}
	return Decision{Node: req.Coordinator, Reason: "co-located: single node"}, nil
}

// Fixed places every step on one named node; tests and benchmarks use it to
// force the dispatched path.
type Fixed struct{ Node string }

// Place implements Policy.
func (f Fixed) Place(context.Context, Request) (Decision, error) {
	if f.Node == "" {
		return Decision{}, ErrNoNode
	}
	return Decision{Node: f.Node, Reason: "fixed node " + f.Node}, nil
}
