// Package placement chooses the node that executes a step.
//
// A Policy sees a Request (which builtin, which run, the coordinator, the
// resources the call demands, the node holding its data) and returns a
// Decision naming a node and the reason, which the engine journals with the
// step. Placement never affects a step's identity: ids are assigned before
// placement is asked.
//
// Adaptive is the production policy: custom resources are hard constraints,
// per-builtin profiles (learned from completed steps) predict the load a step
// adds, reservations cover what this coordinator placed since each node's
// last reading, two candidates are sampled (power of two choices) and the
// coordinator's own node gets the dispatch hop it saves as a bonus. When no
// node can take a step it waits, visibly and for a bounded time. Random,
// RoundRobin, LeastLoaded and PowerOfTwo sit beside it for comparison
// (placement/sim), Local and Fixed serve single-node clusters and tests.
//
// Policies read a View — the latest meter.Reading of every live node — and
// take their clock and randomness from Options, so that the simulator in
// placement/sim drives the production code in virtual time.
package placement

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/droverhq/drover/meter"
)

// Errors returned by this package.
var (
	// ErrNoNode is returned (wrapped in a *NoNodeError by Adaptive) when no
	// node can take the step: none is live, or the resources it demands
	// stayed exhausted for the maximum wait.
	ErrNoNode = errors.New("placement: no node can take the step")
)

// Request describes a step to place.
type Request struct {
	Run         string
	Step        string
	Builtin     string
	Coordinator string // node coordinating the run
	// Demands are the custom resource units one call consumes: the Go
	// integration's own (builtins.Step.Resources) plus those bound in node
	// configuration (meter.Resources.Demands). Demands named meter.CPU and
	// meter.Memory are hints of the cores and bytes a call uses, which
	// Adaptive trusts until it has measured the builtin.
	Demands []meter.Demand
	// Prefer names the node that holds the step's data, if any.
	Prefer string
}

// Decision is where a step runs, and why.
type Decision struct {
	Node string
	// Reason is a one-line explanation journaled with the step and shown by
	// `ctl runs show`, e.g. "drover: n2 (load 0.31) over n3 (0.74); n1 lacks github_api".
	Reason string
	// Score is the chosen node's score, lower is better: for Adaptive the
	// step's predicted completion time there in seconds, penalties included;
	// for the load-based baselines the node's load. Load is the node's
	// predicted load with the step (busy cores per core).
	Score float64
	Load  float64
	// Waited is how long the step waited for a node.
	Waited time.Duration
}

// Policy chooses a node for a step.
type Policy interface {
	Place(ctx context.Context, req Request) (Decision, error)
}

// A Learner is a policy that learns from completed steps (Adaptive).
type Learner interface {
	Policy
	Observe(builtin string, wall, cpu time.Duration, mem int64)
	Profiles() *Profiles
}

// A NoNodeError says why no node could take a step. It wraps ErrNoNode.
type NoNodeError struct {
	Builtin string
	// Resource is what was missing: a custom resource's name, "memory", or
	// "" when no node was live.
	Resource string
	// Waited is how long the step waited in the queue.
	Waited time.Duration
	// Detail says what placement saw, e.g. "exhausted on all 4 nodes that have it".
	Detail string
	// Err is the context's error when the wait was cancelled.
	Err error
}

// Error implements error.
func (e *NoNodeError) Error() string {
	var b strings.Builder
	b.WriteString("placement: no node can take ")
	if e.Builtin != "" {
		b.WriteString(e.Builtin)
	} else {
		b.WriteString("the step")
	}
	if e.Resource != "" {
		fmt.Fprintf(&b, ": %s", e.Resource)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " %s", e.Detail)
	}
	if e.Waited > 0 {
		fmt.Fprintf(&b, " (waited %s)", e.Waited.Round(time.Millisecond))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns ErrNoNode and, if the wait was cancelled, the context's error.
func (e *NoNodeError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrNoNode, e.Err}
	}
	return []error{ErrNoNode}
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
