// Package engine is the composition root of a Drover node and its run
// coordinator. A Node wires the packages beside it: the bus (NATS), the
// journal, the runs index (runs), script versions (deploy), the compiler and
// interpreter (script), replay, cluster membership (cluster), shared limits
// (limits), placement and meters, and the HTTP API (api/server).
//
// What the engine itself owns is running scripts:
//
//   - a run (run.go): main(input) interpreted in a Starlark thread whose
//     runtime is package replay's, answering steps from the run's journal
//     (empty for a new run) and falling through to the run's live side here
//     where the journal ends;
//   - a live step (step.go): its id assigned by the interpreter, placed on a
//     node, its call journaled, executed in-process when placement picks this
//     node or dispatched to that node's worker (package dispatch), and its
//     result journaled before the script sees it;
//   - the worker (worker.go): executing steps on this node, with retries,
//     resource units and deadlines;
//   - durable timers (timer.go), cancellation (cancel.go), and adoption of
//     unfinished runs (recover.go): after a restart, after their coordinator
//     was lost, on a timer's wake, on resume.
//
// Talk to a Node in-process through its API methods (it implements api.API)
// or over HTTP with package api/client. docs/architecture.md draws the map.
package engine
