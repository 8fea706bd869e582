// Package api is Drover's public vocabulary: the wire types of the HTTP JSON
// API and of portable run files, the journal's entry kinds and payloads as
// exports and live events carry them, the error values and codes that cross
// the wire, and the API interface that ctl and the control panel work through.
//
// It holds no behaviour beyond validation and encoding helpers: a Node
// (package engine) implements API in-process, package api/client implements
// it over HTTP, and package api/server serves it. Everything here is safe to
// import from any other package of Drover; api imports only leaf packages
// (starlark/builtins for step errors, meter for node readings).
package api
