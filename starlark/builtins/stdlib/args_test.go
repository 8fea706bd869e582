package stdlib

import (
	"strings"
	"testing"
)

// TestBadArguments checks that every bad call fails the script, before any step
// runs, with a message that names the builtin and the argument.
func TestBadArguments(t *testing.T) {
	long := strings.Repeat("k", MaxKeyLen+1)
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		// http.*
		{"http.get no url", `http.get()`, `http.get: missing argument for url`},
		{"http.get url type", `http.get(1)`, `http.get: for parameter url: got int, want string`},
		{"http.get too many", `http.get("http://x", None, "1s", 4)`, `http.get: got 4 arguments, want at most 3`},
		{"http.get unknown kwarg", `http.get("http://x", bogus="1s")`, `http.get: unexpected keyword argument "bogus"`},
		{"http.get timeout type", `http.get("http://x", timeout=5)`, `http.get: for parameter timeout: got int, want string`},
		{"http.get timeout positional type", `http.get("http://x", None, 5)`, `http.get: for parameter timeout: got int, want string`},
		{"http.get bad duration", `http.get("http://x", timeout="2x")`, `http.get: for parameter timeout: "2x" is not a duration (want e.g. "250ms", "2s", "10m")`},
		{"http.get negative duration", `http.get("http://x", timeout="-1s")`, `http.get: for parameter timeout: "-1s" is negative (want a duration ≥ 0, e.g. "2s")`},
		{"http.get zero timeout", `http.get("http://x", timeout="0s")`, `http.get: for parameter timeout: want a duration > 0, e.g. "10s"`},
		{"http.get ftp", `http.get("ftp://example.com/f")`, `http.get: for parameter url: "ftp://example.com/f" has scheme "ftp" (want http or https)`},
		{"http.get no scheme", `http.get("example.com/x")`, `http.get: for parameter url: "example.com/x" has no scheme (want e.g. "https://example.com/path")`},
		{"http.get no host", `http.get("http:///x")`, `http.get: for parameter url: "http:///x" has no host`},
		{"http.get unparsable", `http.get("http://[::1")`, `http.get: for parameter url: "http://[::1" is not a URL: missing ']' in host`},
		{"http.get headers type", `http.get("http://x", headers=[1])`, `http.get: for parameter headers: got list, want dict`},
		{"http.get header name", `http.get("http://x", headers={"bad name": "v"})`, `http.get: for parameter headers: "bad name" is not a valid header name`},
		{"http.get header value type", `http.get("http://x", headers={"X-N": 1})`, `http.get: for parameter headers: header "X-N": got int, want string`},
		{"http.get header newline", `http.get("http://x", headers={"X-N": "a\r\nX-Evil: 1"})`, `http.get: for parameter headers: header "X-N": value contains a line break or NUL`},
		{"http.get header twice", `http.get("http://x", headers={"Accept": "a", "accept": "b"})`, `http.get: for parameter headers: header "accept" given twice (as "Accept" and "accept"; names ignore case)`},
		{"http.post body and json", `http.post("http://x", body="a", json={})`, `http.post: body and json are mutually exclusive; pass one of them`},
		{"http.post body type", `http.post("http://x", body=1)`, `http.post: for parameter body: got int, want string or bytes`},
		{"http.post json not json", `http.post("http://x", json={"f": len})`, `http.post: for parameter json: builtins: value is not JSON: value["f"] is a builtin_function_or_method, which has no JSON form`},
		{"http.request no method", `http.request()`, `http.request: missing argument for method`},
		{"http.request bad method", `http.request("FETCH", "http://x")`, `http.request: for parameter method: "FETCH" is not a supported method (want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)`},
		{"http.request method type", `http.request(1, "http://x")`, `http.request: for parameter method: got int, want string`},

		// time, sleep
		{"time.now args", `time.now(1)`, `time.now: got 1 arguments, want at most 0`},
		{"sleep missing", `sleep()`, `sleep: missing argument for duration`},
		{"sleep int", `sleep(5)`, `sleep: for parameter duration: got int, want string`},
		{"sleep bad", `sleep("soon")`, `sleep: for parameter duration: "soon" is not a duration (want e.g. "250ms", "2s", "10m")`},
		{"sleep negative", `sleep(duration="-5m")`, `sleep: for parameter duration: "-5m" is negative (want a duration ≥ 0, e.g. "2s")`},
		{"time.parse_duration bad", `time.parse_duration("bogus")`, `time.parse_duration: for parameter 1: time: invalid duration "bogus"`},
		{"time.from_timestamp type", `time.from_timestamp("x")`, `time.from_timestamp: for parameter 1: got string, want int`},

		// rand, uuid
		{"rand.int zero", `rand.int(0)`, `rand.int: for parameter n: got 0, want an int > 0`},
		{"rand.int negative", `rand.int(n=-3)`, `rand.int: for parameter n: got -3, want an int > 0`},
		{"rand.int type", `rand.int("5")`, `rand.int: for parameter n: got string, want int`},
		{"rand.int missing", `rand.int()`, `rand.int: missing argument for n`},
		{"uuid args", `uuid(1)`, `uuid: got 1 arguments, want at most 0`},

		// kv
		{"kv.get empty key", `kv.get("")`, `kv.get: for parameter key: the key is empty`},
		{"kv.get space", `kv.get("a b")`, `kv.get: for parameter key: the key "a b" contains whitespace at byte 1`},
		{"kv.get tab", `kv.delete("\tx")`, `kv.delete: for parameter key: the key "\tx" contains whitespace at byte 0`},
		{"kv.get control", `kv.get("a\x01")`, `kv.get: for parameter key: the key "a\x01" contains the non-printable character U+0001 at byte 1`},
		{"kv.get too long", `kv.get("` + long + `")`, `kv.get: for parameter key: the key is 513 bytes long, over the limit of 512`},
		{"kv.get type", `kv.get(1)`, `kv.get: for parameter key: got int, want string`},
		{"kv.put missing value", `kv.put("k")`, `kv.put: missing argument for value`},
		{"kv.put not json", `kv.put("k", {1: 2})`, `kv.put: for parameter value: builtins: value is not JSON: value has a key of type int; JSON object keys must be strings`},

		// emit
		{"emit empty", `emit("", {})`, `emit: for parameter subject: the subject is empty`},
		{"emit empty token", `emit("a..b", 1)`, `emit: for parameter subject: the subject "a..b" has an empty token (want e.g. "orders.created")`},
		{"emit leading dot", `emit(".a", 1)`, `emit: for parameter subject: the subject ".a" has an empty token (want e.g. "orders.created")`},
		{"emit trailing dot", `emit("a.", 1)`, `emit: for parameter subject: the subject "a." has an empty token (want e.g. "orders.created")`},
		{"emit star", `emit("orders.*", 1)`, `emit: for parameter subject: the subject "orders.*" contains the wildcard '*'; emit needs a literal subject`},
		{"emit gt", `emit("orders.>", 1)`, `emit: for parameter subject: the subject "orders.>" contains the wildcard '>'; emit needs a literal subject`},
		{"emit space", `emit("orders created", 1)`, `emit: for parameter subject: the subject "orders created" contains whitespace at byte 6`},
		{"emit drover", `emit("drover.journal.x", 1)`, `emit: for parameter subject: the subject "drover.journal.x" is reserved (subjects starting with "drover." belong to the engine)`},
		{"emit dollar", `emit("$JS.API.INFO", 1)`, `emit: for parameter subject: the subject "$JS.API.INFO" is reserved (subjects starting with "$" belong to the message bus)`},
		{"emit type", `emit(1, 1)`, `emit: for parameter subject: got int, want string`},
		{"emit missing payload", `emit("a")`, `emit: missing argument for payload`},
		{"emit payload not json", `emit("a", [1, float("nan")])`, `emit: for parameter payload: builtins: value is not JSON: value[1] is NaN, which JSON cannot hold`},

		// tag
		{"tag empty", `tag()`, `tag: want at least one attribute, e.g. tag(customer="acme")`},
		{"tag positional", `tag("x")`, `tag: got 1 positional arguments, want keyword arguments only, e.g. tag(customer="acme")`},
		{"tag float", `tag(x=1.5)`, `tag: for attribute x: got float, want string, int or bool`},
		{"tag none", `tag(x=None)`, `tag: for attribute x: got NoneType, want string, int or bool`},
		{"tag name", `tag(**{"bad-name": "v"})`, `tag: attribute name bad-name is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)`},
		{"tag name digit", `tag(**{"1x": "v"})`, `tag: attribute name 1x is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)`},
		{"tag long name", `tag(**{"a" * 65: "v"})`, `tag: attribute name ` + strings.Repeat("a", 65) + ` is 65 bytes long, over the limit of 64`},
		{"tag long value", `tag(x="v" * 257)`, `tag: for attribute x: the value is 257 bytes long, over the limit of 256`},

		// log
		{"log no msg", `log.info()`, `log.info: missing argument for msg`},
		{"log msg type", `log.warn(1)`, `log.warn: for parameter msg: got int, want string`},
		{"log two positional", `log.error("a", "b")`, `log.error: got 2 arguments, want at most 1`},
		{"log field not json", `log.debug("m", f=len)`, `log.debug: for field f: builtins: value is not JSON: value is a builtin_function_or_method, which has no JSON form`},
		{"log reserved field", `log.info("m", level="x")`, `log.info: field level is reserved for the log line itself; choose another name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := newFake(t)
			_, err := rt.run(t, tt.src, nil)
			if err == nil {
				t.Fatalf("%s succeeded, want error %q", tt.src, tt.wantErr)
			}
			if got := evalMsg(t, err); got != tt.wantErr {
				t.Errorf("%s\n got error: %s\nwant error: %s", tt.src, got, tt.wantErr)
			}
			if calls := rt.stepCalls(); len(calls) > 0 {
				t.Errorf("%s ran %d steps before failing; bad arguments must fail first", tt.src, len(calls))
			}
			if rt.logs.Len() > 0 || len(rt.tags) > 0 {
				t.Errorf("%s logged or tagged before failing", tt.src)
			}
		})
	}
}
