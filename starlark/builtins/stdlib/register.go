// Package stdlib implements the standard builtins of Script API v0 and registers
// them into builtins.Default from its init function.
//
// Step builtins (journaled; "local" ones always run on the coordinator):
//
//	http.get(url, headers=None, timeout="30s") -> Response
//	http.post(url, body=None, json=None, headers=None, timeout="30s") -> Response
//	http.request(method, url, body=None, json=None, headers=None, timeout="30s") -> Response
//	time.now() -> time.time                      (local)
//	sleep(duration) -> None                      (local)
//	rand.int(n) -> int in [0, n)                 (local)
//	uuid() -> string, a random UUID v4           (local)
//	kv.get(key) -> value or None
//	kv.put(key, value) -> None
//	kv.delete(key) -> None
//	emit(subject, payload) -> None
//
// Inline builtins (run in the script's thread, not journaled):
//
//	json.encode(x), json.decode(s[, default]), json.encode_indent(x), json.indent(s)
//	log.debug(msg, **fields), log.info(...), log.warn(...), log.error(...)
//	tag(**attrs)
//	time.parse_duration(s), time.parse_time(s, format=, location=),
//	time.from_timestamp(sec, nsec=0), time.time(year=, ...), time.is_valid_timezone(name),
//	time.nanosecond ... time.hour
//
// docs/scripts.md is the script-facing reference.
package stdlib

import "github.com/droverhq/drover/starlark/builtins"

func init() { Register(builtins.Default) }

// Register adds every standard builtin to r. Like Registry.MustRegister it panics
// if one of the names is already taken.
func Register(r *builtins.Registry) {
	registerHTTP(r)
	registerClock(r)
	registerRand(r)
	registerKV(r)
	registerEmit(r)
	registerLog(r)
	registerTag(r)
	registerJSON(r)
}
