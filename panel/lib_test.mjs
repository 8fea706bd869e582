// Unit tests of the panel's pure helpers: node --test panel/lib_test.mjs
// (panel_test.go runs them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { attrParams, parseEvents, ulidAt, ulidTime } from "./assets/lib.js";

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

test("ulidAt is the smallest id of its millisecond, and ulidTime reads it back", () => {
  const ms = Date.UTC(2026, 11, 2, 6, 48, 18, 337);
  const id = ulidAt(ms);
  assert.equal(id.length, 26);
  assert.equal(ulidTime(id), ms);
  // A real run id of that millisecond sorts after it, one of the millisecond before it sorts before.
  assert.ok("01M8TR5PZ170WGAASHM70QKKMF" >= ulidAt(ulidTime("01M8TR5PZ170WGAASHM70QKKMF")));
  assert.ok(ulidAt(ms - 1) < id);
  assert.equal(ulidAt(0), "0".repeat(26));
});
