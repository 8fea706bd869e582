// Unit tests of the panel's pure helpers: node --test panel/lib_test.mjs
// (panel_test.go runs them).
import { test } from "node:test";
import assert from "node:assert/strict";
import { attrParams, firstData, parseEvents, runsFilter, ulidAt, ulidTime } from "./assets/lib.js";

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

test("firstData names the answer the opened page draws first", () => {
  assert.equal(firstData("/", ""), "/v1/runs?limit=100");
  assert.equal(firstData("/", "?attr=customer%3Dacme&status=failed&paused=1&bogus=x"), "/v1/runs?attr=customer%3Dacme&status=failed&limit=100");
  assert.equal(firstData("/runs/01ABC", ""), "/v1/runs/01ABC");
  assert.equal(firstData("/runs/a%2Fb", ""), "/v1/runs/a%2Fb");
  assert.equal(firstData("/runs/%E0%A4%A", ""), null, "a malformed escape");
  assert.equal(firstData("/nodes", ""), null);
  assert.equal(firstData("/runs/x/y", ""), null);
});

test("runsFilter keeps attributes and filters, drops the page's own settings", () => {
  assert.equal(runsFilter("?attr=a%3D1&attr=b%3D2&node=n1&before=01X&paused=1").toString(), "attr=a%3D1&attr=b%3D2&node=n1&before=01X");
});
