// Unit tests of the run page's model and geometry: node --test panel/timeline_test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  parseTime, parseGoDuration, compareSteps, stepTimes, stepBars, layout, barGeometry, visibleWindow,
  parsePos, stepsByLine, firstPos, newModel, orderedSteps, applyEvent, niceSpan,
} from "./assets/timeline.js";

const T = "2026-12-02T06:46:";
const at = (/** @type {number} */ sec) => T + String(sec).padStart(2, "0") + ".000000000Z";
const base = Date.parse(T + "00Z");

/** A finished step: called at c s, started at st s, ran d s. */
function step(id, node, c, st, d, extra = {}) {
  return { id, builtin: "kv.put", node, called: at(c), start: at(st), duration_ns: d * 1e9, outcome: "ok", ...extra };
}

test("parseTime keeps nanoseconds and knows no time", () => {
  // A float of ms since the epoch holds a time to a quarter of a microsecond.
  assert.ok(Math.abs(parseTime("2026-12-02T06:46:22.851836173Z") - Date.parse("2026-12-02T06:46:22Z") - 851.836173) < 0.001);
  assert.equal(parseTime("2026-12-02T06:46:22Z"), Date.parse("2026-12-02T06:46:22Z"));
  assert.equal(parseTime("2026-12-02T07:46:22.5+01:00"), Date.parse("2026-12-02T06:46:22Z") + 500);
  assert.equal(parseTime("0001-01-01T00:00:00Z"), null);
  assert.equal(parseTime(""), null);
  assert.equal(parseTime(undefined), null);
});

test("parseGoDuration reads Go's durations", () => {
  assert.equal(parseGoDuration("1.2s"), 1200);
  assert.equal(parseGoDuration("1h0m0s"), 3600e3);
  assert.equal(parseGoDuration("500ms"), 500);
  assert.equal(parseGoDuration("1m30s"), 90e3);
  assert.equal(parseGoDuration("1µs"), 1e-3);
  assert.equal(parseGoDuration("0s"), 0);
  assert.equal(parseGoDuration("0"), 0);
  assert.equal(parseGoDuration("-2s"), -2000);
  for (const bad of ["", "12", "s", "1x", "1s2", null, undefined]) assert.equal(parseGoDuration(bad), null, String(bad));
});

test("compareSteps orders hierarchical ids as the journal does", () => {
  const ids = ["10", "2", "4.2.1", "4.1.2", "4", "4.1", "1", "4.10.1", "4.9.1"];
  assert.deepEqual(ids.sort(compareSteps), ["1", "2", "4", "4.1", "4.1.2", "4.2.1", "4.9.1", "4.10.1", "10"]);
});

test("queue wait and execution: called → start, then start + duration", () => {
  const s = step("1", "n1", 1, 3, 2);
  assert.deepEqual(stepTimes(s), { queue: 2e9, exec: 2e9 });
  const [b] = stepBars(s, base + 60e3);
  assert.equal(b.begin, base + 1000);
  assert.equal(b.start, base + 3000);
  assert.equal(b.end, base + 5000);
  assert.equal(b.outcome, "ok");
  const g = barGeometry(b, base, base + 10000);
  assert.ok(Math.abs(g.x - 0.1) < 1e-9 && Math.abs(g.queue - 0.2) < 1e-9 && Math.abs(g.exec - 0.2) < 1e-9, JSON.stringify(g));
});

test("a start before its call (another node's clock) has no negative queue", () => {
  const [b] = stepBars(step("1", "n2", 3, 2, 1), 0);
  assert.equal(b.start, b.begin);
  assert.equal(barGeometry(b, base, base + 10000).queue, 0);
});

test("a bar with no known start is all one part", () => {
  const b = { begin: base + 1000, start: null, end: base + 3000 };
  const g = barGeometry(b, base, base + 10000);
  assert.ok(g.queue === 0 && Math.abs(g.exec - 0.2) < 1e-9 && Math.abs(g.w - 0.2) < 1e-9, JSON.stringify(g));
});

test("a pending step grows to now, all one part", () => {
  const s = { id: "5", builtin: "http.get", node: "n2", called: at(2), start: at(2), outcome: "pending" };
  const [b] = stepBars(s, base + 7000);
  assert.equal(b.end, base + 7000);
  assert.equal(b.start, null);
  assert.equal(b.outcome, "pending");
  assert.deepEqual(stepTimes(s), { queue: null, exec: null });
  const later = stepBars(s, base + 9000)[0];
  assert.equal(later.end, base + 9000);
});

test("a sleep is its own kind and lasts from its call to its wake", () => {
  // As the journal has it: start is the wake, the duration 1 ns.
  const s = { id: "3", builtin: "sleep", args: { duration: "1.2s" }, node: "n1", called: at(2), start: "2026-12-02T06:46:03.200000000Z", duration_ns: 1, outcome: "ok" };
  const [b] = stepBars(s, base + 60e3);
  assert.equal(b.kind, "sleep");
  assert.equal(b.begin, base + 2000);
  assert.ok(Math.abs(b.end - (base + 3200)) < 1e-3);
  assert.equal(b.start, null);
  assert.equal(stepTimes(s).queue, null, "a sleep is no queue wait");
  const parked = { ...s, outcome: "pending", duration_ns: undefined, start: s.called };
  assert.equal(stepBars(parked, base + 2500)[0].end, base + 2500, "a parked sleep grows to now");
});

test("a step placed again has one bar per placement, on each node's lane", () => {
  const s = step("2", "n3", 1, 6, 1, {
    placements: [
      { attempt: 1, node: "n2", reason: "least loaded", time: at(1) },
      { attempt: 2, node: "n3", reason: "least loaded", time: at(5), why: "node n2 lost" },
    ],
  });
  const bars = stepBars(s, 0);
  assert.equal(bars.length, 2);
  assert.deepEqual(bars.map((b) => [b.node, b.attempt, b.lost, b.outcome]), [["n2", 1, true, "error"], ["n3", 2, false, "ok"]]);
  assert.equal(bars[0].end, base + 5000, "the lost placement ends where the next began");
  assert.equal(bars[1].begin, base + 5000);
  assert.equal(bars[1].start, base + 6000);
  const l = layout([s], { now: base + 60e3 });
  assert.deepEqual(l.lanes.map((x) => [x.node, x.bars.map((b) => b.step)]), [["n2", ["2"]], ["n3", ["2"]]]);
});

test("a lost node's late result stands: the bar on its node executed", () => {
  const s = step("2", "n2", 1, 2, 1, {
    placements: [{ attempt: 1, node: "n2", time: at(1) }, { attempt: 2, node: "n3", time: at(5), why: "node n2 lost" }],
  });
  const bars = stepBars(s, 0);
  assert.deepEqual(bars.map((b) => [b.node, b.lost]), [["n2", false], ["n3", true]]);
});

test("layout: a lane per node, the coordinator first, overlapping steps in rows", () => {
  const steps = [
    step("1", "n1", 0, 0, 1),
    step("2.1.1", "n2", 1, 1, 4), // parallel branches on n2
    step("2.2.1", "n2", 1, 2, 4),
    step("2.3.1", "n2", 1, 1, 1),
    step("2.3.2", "n2", 3, 3, 1), // after 2.3.1 ended: a free row
    step("3", "n1", 7, 7, 1),
  ];
  const l = layout(steps, { now: base + 60e3, first: "n1" });
  assert.deepEqual(l.lanes.map((x) => x.node), ["n1", "n2"]);
  assert.equal(l.t0, base);
  assert.equal(l.t1, base + 8000);
  assert.equal(l.bars, 6);
  const n1 = l.lanes[0], n2 = l.lanes[1];
  assert.equal(n1.rows, 1);
  assert.equal(n2.rows, 3);
  const row = Object.fromEntries(n2.bars.map((b) => [b.step, b.row]));
  assert.deepEqual(row, { "2.1.1": 0, "2.2.1": 1, "2.3.1": 2, "2.3.2": 2 });
  for (const lane of l.lanes) for (const a of lane.bars) for (const b of lane.bars) {
    if (a !== b && a.row === b.row) assert.ok(a.end <= b.begin || b.end <= a.begin, `${a.step} and ${b.step} overlap in row ${a.row}`);
  }
});

test("layout: the coordinator's lane is there with no step; a running run ends now", () => {
  const l = layout([], { now: base + 5000, start: base, first: "n1" });
  assert.deepEqual(l.lanes.map((x) => [x.node, x.rows]), [["n1", 1]]);
  assert.equal(l.t0, base);
  assert.equal(l.t1, base + 5000);
  const live = layout([{ id: "1", builtin: "http.get", node: "n1", called: at(1), outcome: "pending" }], { now: base + 9000, start: base });
  assert.equal(live.t1, base + 9000);
});

test("layout: past maxRows, bars share the row that frees first", () => {
  const steps = Array.from({ length: 10 }, (_, i) => step("2." + (i + 1) + ".1", "n1", 0, 0, 10 - i));
  const l = layout(steps, { now: 0, maxRows: 4 });
  assert.equal(l.lanes[0].rows, 4);
  assert.ok(l.lanes[0].bars.every((b) => b.row >= 0 && b.row < 4));
});

// Its speed is measured in the browser (e2e BenchmarkPanelBigRun), not here.
test("layout of 10,000 steps over three nodes", () => {
  const steps = Array.from({ length: 10000 }, (_, i) => step(String(i + 1), "n" + (i % 3), i / 100, i / 100, 0.005));
  const l = layout(steps, { now: 0 });
  assert.equal(l.bars, 10000);
  assert.equal(l.lanes.length, 3);
});

test("visibleWindow: the rows in view with overscan, and the space around them", () => {
  assert.deepEqual(visibleWindow(0, 300, 30, 10000, 5), { first: 0, last: 15, above: 0, below: 9985 * 30 });
  assert.deepEqual(visibleWindow(3000, 300, 30, 10000, 5), { first: 95, last: 115, above: 95 * 30, below: (10000 - 115) * 30 });
  assert.deepEqual(visibleWindow(299850, 300, 30, 10000, 5), { first: 9990, last: 10000, above: 9990 * 30, below: 0 });
  assert.deepEqual(visibleWindow(0, 300, 30, 3, 5), { first: 0, last: 3, above: 0, below: 0 });
  assert.deepEqual(visibleWindow(5000, 300, 30, 3, 5), { first: 3, last: 3, above: 90, below: 0 }, "scrolled past a list that shrank");
  assert.deepEqual(visibleWindow(-20, 300, 30, 0), { first: 0, last: 0, above: 0, below: 0 });
});

test("positions: a step's line, the steps of each line, an error's first position", () => {
  assert.deepEqual(parsePos("order.star:12:7"), { file: "order.star", line: 12, col: 7 });
  assert.equal(parsePos(""), null);
  assert.equal(parsePos(undefined), null);
  const m = stepsByLine([{ id: "1", pos: "a.star:3:1" }, { id: "2", pos: "a.star:5:2" }, { id: "3", pos: "a.star:3:9" }, { id: "4" }]);
  assert.deepEqual([...m], [["a.star:3", ["1", "3"]], ["a.star:5", ["2"]]]);
  assert.deepEqual(firstPos("fail: card declined\nTraceback:\n  fail.star:6:13: in main"), { file: "fail.star", line: 6, col: 13 });
  assert.equal(firstPos("no position"), null);
});

test("applyEvent: call, place, result, tag and end build the run as it goes", () => {
  const m = newModel({ id: "R", status: "running", attrs: { a: "1" }, steps: [step("1", "n1", 0, 0, 1)] });
  assert.equal(applyEvent(m, "call", { step: "2", builtin: "http.get", args: { url: "u" }, pos: "x.star:3:1", node: "n2", reason: "least loaded", time: at(2) }, 10), "step");
  let s = m.steps.get("2");
  assert.equal(s.outcome, "pending");
  assert.equal(s.node, "n2");
  assert.equal(applyEvent(m, "place", { step: "2", attempt: 2, node: "n3", reason: "only one", why: "node n2 lost", time: at(4) }, 11), "step");
  assert.equal(s.node, "n3");
  assert.deepEqual(s.placements.map((p) => [p.attempt, p.node]), [[1, "n2"], [2, "n3"]]);
  applyEvent(m, "result", { step: "2", node: "n3", attempts: 1, start: at(5), duration_ns: 1e9, value: { status: 200 } }, 12);
  assert.equal(s.outcome, "ok");
  assert.deepEqual(s.value, { status: 200 });
  // A co-located step: its call comes in its result.
  applyEvent(m, "result", { step: "1.5", node: "n1", attempts: 1, start: at(6), duration_ns: 5, error: { code: "x", message: "boom" },
    call: { step: "1.5", builtin: "time.now", pos: "x.star:4:1", node: "n1", reason: "co-located", time: at(6) } }, 13);
  assert.equal(m.steps.get("1.5").outcome, "error");
  assert.deepEqual(orderedSteps(m).map((x) => x.id), ["1", "1.5", "2"]);
  assert.equal(applyEvent(m, "tag", { attrs: { b: "2" } }, 14), "run");
  assert.deepEqual(m.run.attrs, { a: "1", b: "2" });
  assert.equal(applyEvent(m, "end", { status: "completed", result: { ok: true }, steps: 3, time: at(9) }, 15), "run");
  assert.ok(m.ended);
  assert.equal(m.run.status, "completed");
  assert.equal(m.lastId, 15);
  assert.equal(m.events, 6);
});

test("applyEvent: an event seen again (a reconnected stream) is applied once", () => {
  const m = newModel({ id: "R", steps: [] });
  const call = { step: "1", builtin: "kv.put", node: "n1", time: at(1) };
  applyEvent(m, "call", call, 5);
  assert.equal(applyEvent(m, "call", call, 5), "");
  assert.equal(applyEvent(m, "call", call, 3), "");
  assert.equal(m.events, 1);
  assert.equal(m.order.length, 1);
  // The stream replays the journal the page read with GET: the steps are not doubled.
  const m2 = newModel({ id: "R", steps: [step("1", "n1", 1, 1, 1)] });
  applyEvent(m2, "call", call, 2);
  applyEvent(m2, "result", { step: "1", node: "n1", attempts: 1, start: at(1), duration_ns: 1e9 }, 3);
  assert.equal(m2.order.length, 1);
  assert.equal(m2.steps.get("1").outcome, "ok");
});

test("parseTime reads the API's shapes by hand, as Date.parse would", () => {
  for (const s of ["2026-12-02T06:46:22.851836173Z", "2026-12-02T06:46:22Z", "2026-12-02T06:46:22.5Z", "2026-12-31T23:59:59.999999999Z",
    "2026-12-02T07:46:22.123+01:00", "2026-12-02T01:16:22-05:30", "2024-02-29T00:00:00.000000001Z", "1999-01-01T00:00:00Z"]) {
    const frac = /\.(\d+)/.exec(s);
    const want = Date.parse(s.replace(/\.\d+/, "")) + (frac ? Number("0." + frac[1]) * 1000 : 0);
    assert.ok(Math.abs(parseTime(s) - want) < 0.0005, `${s}: ${parseTime(s)} != ${want}`);
  }
  assert.equal(parseTime("2026-12-02 06:46:22Z"), Date.parse("2026-12-02 06:46:22Z")); // not the API's: Date.parse
  assert.equal(parseTime("not a time at all, no"), null);
});

test("niceSpan: a live timeline grows in nice steps of at least 1.5×", () => {
  assert.equal(niceSpan(1000), 1500);
  assert.equal(niceSpan(1001), 2000);
  assert.equal(niceSpan(3400), 7500);
  assert.equal(niceSpan(6000), 10000);
  assert.equal(niceSpan(0), 1);
  for (const e of [1, 7, 19, 230, 4999, 123456]) {
    const s = niceSpan(e);
    assert.ok(s >= 1.5 * e && s <= 3.4 * e, `${e} → ${s}`);
  }
});
