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
// Builtins parse their arguments with UnpackArgs, which reports a bad one as an
// *ArgError naming the builtin and the parameter however it was passed
// (`http.get: for parameter timeout: got int, want string`).
//
// Each module lives in its own package below this one (http, kv, time, rand,
// emit, log, json, tag), with a Register function and an init that registers
// into Default; package all gathers them. An integration does the same:
//
//	func init() { Register(builtins.Default) }
//
//	func Register(r *builtins.Registry) { r.MustRegister(&builtins.Step{Name: "slack.post", ...}) }
//
// Package builtinstest runs builtins in tests without an engine.
package builtins
