// Package engine runs Drover scripts: it executes main(input) of a Starlark script
// in a thread, turns every step builtin call into a journaled step with a
// deterministic id, asks placement which node executes it, runs it in-process when
// that is the coordinator's own node or dispatches it over the STEPS stream to the
// node's worker, and returns the result to the script only once the journal holds
// it. It also keeps the runs index, stores script sources by content hash, and
// serves the JSON API.
//
// A Node is one engine: coordinator, worker and API in one. Start one with
// NewNode; talk to it in-process through its API methods (Start, Wait, Get, List)
// or over HTTP with package engine/client, which implements the same API.
package engine
