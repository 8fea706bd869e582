// Package builtins defines how a Starlark builtin with an outside effect becomes a
// Drover step, and holds the registry of builtins that scripts can call.
//
// A step builtin is split in three so that it can be journaled, placed and replayed:
//
//   - Args turns the script's call into canonical JSON arguments (on the coordinator);
//   - Exec performs the effect with those arguments (on whichever node placement chose);
//   - Value turns the journaled JSON result back into the Starlark value the script sees.
//
// The engine supplies a Runtime through the thread (SetRuntime), so builtins never
// reach for globals: run-scoped state comes from RuntimeOf(thread).
//
// Inline builtins (json.*, log.*, tag, parallel) are plain *starlark.Builtin values;
// they run in the script's thread and are not steps.
//
// Integrations register their steps into a Registry, usually the Default one from an
// init function:
//
//	func init() { builtins.Default.MustRegister(&builtins.Step{Name: "slack.post", ...}) }
package builtins
