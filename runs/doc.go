// Package runs is the cluster's view of its runs: the runs index (each run's
// record, kept current by its coordinator, and index keys by status, script
// and attribute), listing runs with a query planner over it, a run's detail
// and live events read from its journal, portable exports, and pinning a run
// past retention.
//
// A Store works on a bus alone: any node can answer for any run, whichever
// node coordinates it.
package runs
