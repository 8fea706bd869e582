// Package replay re-executes runs against their journals. It has one runtime
// (Runtime) for every use: each step call the script makes is looked up in
// the journal by its step id; the same builtin with the same arguments is
// answered with the journaled result and nothing is executed; another call is
// a divergence (*api.DivergenceError); and where the journal runs out the
// call falls through to live execution (Live), or, with no Live, ends the
// replay there.
//
// Its users:
//
//   - ctl replay and deploy --check-replay replay finished runs with no Live
//     (Replay): zero outside calls, whatever the script does;
//   - the engine adopts an unfinished run (after its node was lost, after a
//     restart, on a durable timer's wake, on ctl runs resume) with its live
//     coordinator as Live: completed steps are answered from the journal, and
//     the run goes on live where the journal ends;
//   - a new run is the same with an empty journal.
package replay
