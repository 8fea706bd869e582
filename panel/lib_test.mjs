// Unit tests of the panel's pure helpers: node --test panel/lib_test.mjs
// (panel_test.go runs them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { attrParams, parseEvents } from "./assets/lib.js";

test("parseEvents reads events, comments and multi-line data", () => {
  const text = ": keep-alive\n\nevent: line\ndata: {\"a\":1}\n\nevent: dropped\ndata: {\"dropped\":3}\n\ndata: one\ndata: two\n\n";
  assert.deepEqual(parseEvents(text), [
    { kind: "line", data: "{\"a\":1}" },
    { kind: "dropped", data: "{\"dropped\":3}" },
    { kind: "message", data: "one\ntwo" },
  ]);
});

test("parseEvents takes CRLF and a missing blank line at the end", () => {
  assert.deepEqual(parseEvents("event: line\r\ndata: x\r\n"), [{ kind: "line", data: "x" }]);
});

test("attrParams splits on spaces and commas, dropping empties", () => {
  assert.deepEqual(attrParams(" customer=acme,tier=gold  region=eu "), ["customer=acme", "tier=gold", "region=eu"]);
  assert.deepEqual(attrParams(""), []);
});
