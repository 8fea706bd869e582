// Package journal reads and writes runs' journals: the append-only, write-once
// record of everything a run did (started, tagged, each step's call and
// result, patches, versions, cancellation, end), from which replay rebuilds
// the run.
//
// A Store is the only code that knows where entries live on the bus (their
// subjects) and how retried writes are de-duplicated (their message ids); the
// entry kinds and payloads are api's (api.EntryKind, api.CallEntry, …), since
// exports and live events carry them. Parse turns a run's entries into a
// Journal, which answers the question replay asks of every step call: does
// the journal hold this call, and its result? ParseExport checks a portable
// run file.
//
// Layout on the bus (package bus names the stream and subject prefix):
//
//	drover.journal.<run>.<kind>[.<key>]   one message per subject, written once
//	drover.journal.<run>.sealed.<n>       part n of an ended run's sealed journal
//	drover.journal.<run>.log              the run's log, on a bus with RunLog (log.go)
//	message id <run>/<kind>[/<key>]       de-duplicates a retried write
//
// A run in partition p > 0 (its id ends in -<p>, see bus.RunPartition) has
// the same subjects under drover.journal<p>. in its partition's stream.
// Entries over DefaultLargeValue bytes are stored as references to the
// values object store (values.go).
package journal
