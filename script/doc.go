// Package script compiles and interprets Drover scripts.
//
// Compile turns a script version (api.Script: files and the one holding
// main) into a Program: every file parsed and resolved in Drover's Starlark
// dialect against the names scripts see (Globals: the registry's builtins,
// fail, parallel and patched), with every problem reported at once as an
// *api.CompileError, including a main file that defines no main. A Compiler
// caches programs by content hash.
//
// Run executes main(input) in a Starlark thread whose step builtins call a
// builtins.Runtime: the engine's live coordinator, or package replay's
// runtime that answers from a journal. Run assigns nothing but step ids
// (NextStepID: "1", "2", … at top level, "3.2.1" inside branch 2 of the
// parallel() call that took step 3) and turns the outcome into JSON or an
// *api.RunError whose Code comes from the error's type, never its text.
package script
