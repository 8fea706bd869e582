// The run page's model and geometry, pure and tested without a browser
// (panel/timeline_test.mjs): a run's steps as they come from GET
// /v1/runs/{id} or from its journal's events, the timeline's bars (one per
// placement of a step, queue wait apart from execution), lanes and rows,
// the window of a virtualised table, script positions.
//
// Times are milliseconds since the epoch as floats: the API's times have
// nanoseconds, kept as the fraction (Date.parse alone would drop them).

/**
 * A step as the page keeps it: StepView of GET /v1/runs/{id}, built up
 * from call, place and result events while the run goes on.
 * @typedef {{id: string, builtin: string, args?: any, pos?: string, node?: string, reason?: string,
 *   called?: string, start?: string, duration_ns?: number, attempts?: number, outcome: string,
 *   value?: any, error?: any, placements?: Placement[]}} Step
 * @typedef {{attempt: number, node: string, reason?: string, time: string, why?: string}} Placement
 */

/**
 * A bar of the timeline: one placement of a step on a node. begin is when
 * it was placed (queued), start when it began executing (null when
 * unknown: pending or lost), end when it ended (now for a pending one).
 * @typedef {{key: string, step: string, node: string, attempt: number, builtin: string,
 *   begin: number, start: number|null, end: number, outcome: string, kind: "step"|"sleep",
 *   lost: boolean, row: number}} Bar
 * @typedef {{node: string, rows: number, bars: Bar[]}} Lane
 */

/**
 * Parses an RFC 3339 time to milliseconds, keeping the digits past the
 * millisecond; null for none (absent, empty or Go's zero time).
 * @param {string|undefined|null} s @returns {number|null}
 */
export function parseTime(s) {
  if (!s || s.startsWith("0001-01-01")) return null;
  const t = fastTime(s);
  return t !== undefined ? t : parseTimeText(s);
}

/** The digits of "YYYY-MM-DDTHH:MM:SS". */
const DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];

/**
 * "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" read by character codes, without
 * a cache or a string made (a cold first draw reads 20,000 of them);
 * undefined if s is not that shape. @param {string} s @returns {number|undefined}
 */
function fastTime(s) {
  const n = s.length;
  if (n < 20 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || (s.charCodeAt(10) | 32) !== 116 ||
    s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  for (const i of DIGITS) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
  }
  const d = (/** @type {number} */ i) => (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
  let i = 19, frac = 0;
  if (s.charCodeAt(19) === 46) {
    let v = 0, k = 0;
    for (i = 20; i < n; i++) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      if (k < 15) { v = v * 10 + c; k++; }
    }
    if (k === 0) return undefined;
    frac = v / 10 ** (k - 3);
  }
  let zone = 0;
  const z = s.charCodeAt(i);
  if ((z | 32) === 122 && i + 1 === n) zone = 0;
  else if ((z === 43 || z === 45) && i + 6 === n && s.charCodeAt(i + 3) === 58) {
    zone = (d(i + 1) * 60 + d(i + 4)) * 60e3 * (z === 45 ? -1 : 1);
    if (Number.isNaN(zone)) return undefined;
  } else return undefined;
  const t = Date.UTC(d(0) * 100 + d(2), d(5) - 1, d(8), d(11), d(14), d(17));
  return Number.isNaN(t) ? undefined : t + frac - zone;
}

/** @param {string} s @returns {number|null} */
function parseTimeText(s) {
  // "YYYY-MM-DDTHH:MM:SS" then maybe ".fraction", then the zone: the
  // fraction is read here, the rest by Date.parse.
  let t;
  if (s.charCodeAt(19) === 46) {
    let end = 20;
    while (end < s.length && s.charCodeAt(end) >= 48 && s.charCodeAt(end) <= 57) end++;
    t = Date.parse(s.slice(0, 19) + s.slice(end));
    if (end > 20) t += Number("0." + s.slice(20, end)) * 1000;
  } else {
    t = Date.parse(s);
  }
  return Number.isNaN(t) ? null : t;
}

/**
 * A live timeline's span in ms: the first "nice" length (1, 1.5, 2, 3, 5
 * or 7.5 × a power of ten) at least 1.5 × elapsed, so that the timeline
 * grows in steps and its bars keep their places between them.
 * @param {number} elapsed ms @returns {number}
 */
export function niceSpan(elapsed) {
  const want = Math.max(1, elapsed * 1.5);
  const p = 10 ** Math.floor(Math.log10(want));
  for (const k of [1, 1.5, 2, 3, 5, 7.5, 10]) if (k * p >= want) return k * p;
  return 10 * p;
}

const units = { ns: 1e-6, us: 1e-3, "µs": 1e-3, "μs": 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };

/**
 * Parses a Go duration ("1h2m3.5s", "500ms", "1.2s") to milliseconds; null
 * if it is not one. @param {string|undefined|null} s @returns {number|null}
 */
export function parseGoDuration(s) {
  if (typeof s !== "string" || s === "") return null;
  if (s === "0") return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0, m, at = 0;
  const neg = s[0] === "-";
  if (neg || s[0] === "+") re.lastIndex = at = 1;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * units[/** @type {keyof typeof units} */ (m[2])];
    at = re.lastIndex;
  }
  if (at !== s.length || at === (neg ? 1 : 0)) return null;
  return neg ? -total : total;
}

/**
 * Orders hierarchical step ids as the journal does ("2" < "10",
 * "4.1.2" < "4.2.1", "4" < "4.1"); a comparator for Array.sort.
 * @param {string} a @param {string} b @returns {number}
 */
export function compareSteps(a, b) {
  const x = a.split("."), y = b.split(".");
  for (let i = 0; i < x.length && i < y.length; i++) {
    if (x[i].length !== y[i].length) return x[i].length - y[i].length;
    if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return x.length - y.length;
}

/**
 * A step's queue wait (called → start) and execution in ns; null where
 * unknown. @param {Step} s @returns {{queue: number|null, exec: number|null}}
 */
export function stepTimes(s) {
  const called = parseTime(s.called), start = parseTime(s.start);
  const queue = s.builtin !== "sleep" && called != null && start != null && s.outcome !== "pending" ? Math.max(0, (start - called) * 1e6) : null;
  return { queue, exec: s.outcome === "pending" ? null : s.duration_ns ?? null };
}

/**
 * The bars of a step: one per placement (a step placed once has one), on
 * the node of each. The placement that executed (the last on the step's
 * node) has the step's queue wait, execution and outcome; the others were
 * lost, and end where the next placement began. A pending bar ends at now.
 * A sleep's bar is the sleep: from its call to its wake.
 * @param {Step} s @param {number} now @returns {Bar[]}
 */
export function stepBars(s, now) {
  const called = parseTime(s.called) ?? parseTime(s.start) ?? now;
  const kind = s.builtin === "sleep" ? "sleep" : "step";
  const pending = s.outcome === "pending";
  let start = pending ? null : parseTime(s.start);
  let end = pending || start == null ? now : start + (s.duration_ns || 0) / 1e6;
  if (start != null && start < called) start = called; // another node's clock
  if (end < called) end = called;
  if (kind === "sleep") {
    const d = parseGoDuration(s.args?.duration);
    if (!pending && d != null) end = Math.max(end, called + d);
    start = null;
  }
  /** @type {Placement[]} */
  const ps = s.placements?.length ? s.placements : [{ attempt: 1, node: s.node || "", time: s.called || "" }];
  let exec = ps.length - 1;
  for (let i = ps.length - 1; i >= 0; i--) if (ps[i].node === (s.node || ps[i].node)) { exec = i; break; }
  return ps.map((p, i) => {
    const begin = i === 0 ? called : parseTime(p.time) ?? called;
    const mine = i === exec;
    const next = i + 1 < ps.length ? parseTime(ps[i + 1].time) ?? end : end;
    return {
      key: s.id + "@" + p.attempt, step: s.id, node: p.node || s.node || "", attempt: p.attempt, builtin: s.builtin,
      begin, start: mine ? start : null, end: Math.max(begin, mine ? end : Math.min(next, end)),
      outcome: mine ? s.outcome : "error", kind, lost: !mine, row: 0,
    };
  });
}

/**
 * Lays out the steps on the timeline: one lane per node (first the node
 * named first, then in order of their first bar), and in each lane the
 * bars in rows so that overlapping bars (parallel branches) never share a
 * row: each bar goes to the first row free at its begin. Past maxRows rows
 * a bar goes to the row that frees first (it then overlaps). t0 and t1 are
 * the timeline's ends: the run's start (or the first bar) and its end (or
 * the last bar, or now while it runs).
 * @param {Step[]} steps
 * @param {{now: number, start?: number|null, end?: number|null, first?: string, maxRows?: number}} o
 * @returns {{t0: number, t1: number, lanes: Lane[], bars: number}}
 */
export function layout(steps, o) {
  const maxRows = o.maxRows ?? 40;
  /** @type {Bar[]} */
  const all = [];
  for (const s of steps) for (const b of stepBars(s, o.now)) all.push(b);
  all.sort((a, b) => a.begin - b.begin || compareSteps(a.step, b.step) || a.attempt - b.attempt);
  let t0 = o.start ?? Infinity, t1 = o.end ?? -Infinity;
  /** @type {Map<string, {lane: Lane, ends: number[]}>} */
  const lanes = new Map();
  if (o.first) lanes.set(o.first, { lane: { node: o.first, rows: 0, bars: [] }, ends: [] });
  for (const b of all) {
    if (o.start == null) t0 = Math.min(t0, b.begin);
    if (o.end == null) t1 = Math.max(t1, b.end);
    let l = lanes.get(b.node);
    if (!l) lanes.set(b.node, (l = { lane: { node: b.node, rows: 0, bars: [] }, ends: [] }));
    let row = l.ends.findIndex((e) => e <= b.begin);
    if (row < 0) {
      if (l.ends.length < maxRows) row = l.ends.push(-Infinity) - 1;
      else row = l.ends.indexOf(Math.min(...l.ends));
    }
    l.ends[row] = Math.max(l.ends[row], b.end);
    b.row = row;
    l.lane.bars.push(b);
  }
  if (!Number.isFinite(t0)) t0 = o.now;
  if (!Number.isFinite(t1)) t1 = o.now;
  if (t1 <= t0) t1 = t0 + 1;
  const out = [...lanes.values()].map(({ lane, ends }) => ({ ...lane, rows: Math.max(1, ends.length) }));
  return { t0, t1, lanes: out, bars: all.length };
}

/**
 * Where a bar is, as fractions of the timeline's width: x (its begin), its
 * queue part's width and its execution's (the rest). A sleep, a pending or
 * a lost bar is all one part, drawn in its own style (queue 0, exec the whole).
 * @param {Bar} b @param {number} t0 @param {number} t1
 */
export function barGeometry(b, t0, t1) {
  const span = t1 - t0 || 1;
  const x = (b.begin - t0) / span;
  const w = Math.max(0, (b.end - b.begin) / span);
  if (b.start == null) return { x, w, queue: 0, exec: w };
  const queue = Math.min(w, Math.max(0, (b.start - b.begin) / span));
  return { x, w, queue, exec: w - queue };
}

/**
 * The rows of a virtualised list to draw: those in view and overscan
 * more on each side, with the heights of the space above and below them.
 * @param {number} scrollTop @param {number} viewport height of the view
 * @param {number} rowHeight @param {number} total rows @param {number} [overscan]
 * @returns {{first: number, last: number, above: number, below: number}} rows [first, last)
 */
export function visibleWindow(scrollTop, viewport, rowHeight, total, overscan = 10) {
  const top = Math.max(0, scrollTop);
  let first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((top + viewport) / rowHeight) + overscan);
  if (first > last) first = last;
  return { first, last, above: first * rowHeight, below: (total - last) * rowHeight };
}

/**
 * A script position "file.star:LINE:COL" as its parts; null if it is not
 * one. @param {string|undefined} pos @returns {{file: string, line: number, col: number}|null}
 */
export function parsePos(pos) {
  const m = /^(.*):(\d+):(\d+)$/.exec(pos || "");
  return m ? { file: m[1], line: Number(m[2]), col: Number(m[3]) } : null;
}

/**
 * The steps each script line made: "file:line" → step ids in order.
 * @param {Step[]} steps @returns {Map<string, string[]>}
 */
export function stepsByLine(steps) {
  const m = new Map();
  for (const s of steps) {
    const p = parsePos(s.pos);
    if (!p) continue;
    const k = p.file + ":" + p.line;
    const ids = m.get(k);
    ids ? ids.push(s.id) : m.set(k, [s.id]);
  }
  return m;
}

/**
 * The first script position in a text (an error's message or backtrace).
 * @param {string} text @returns {{file: string, line: number, col: number}|null}
 */
export function firstPos(text) {
  const m = /([\w./-]+\.star):(\d+):(\d+)/.exec(text || "");
  return m ? { file: m[1], line: Number(m[2]), col: Number(m[3]) } : null;
}

/**
 * A run as the page follows it: its record, its steps by id, and what of
 * its journal was applied (lastId, events).
 * @typedef {{run: any, steps: Map<string, Step>, order: string[], sorted: boolean,
 *   lastId: number, events: number, ended: boolean}} Model
 */

/** A model of run d (GET /v1/runs/{id}). @param {any} d @returns {Model} */
export function newModel(d) {
  const steps = new Map();
  for (const s of d.steps || []) steps.set(s.id, s); // the page's own copy: changed in place
  return { run: d, steps, order: [...steps.keys()], sorted: false, lastId: 0, events: 0, ended: false };
}

/** The model's steps in journal order. @param {Model} m @returns {Step[]} */
export function orderedSteps(m) {
  if (!m.sorted) {
    m.order.sort(compareSteps);
    m.sorted = true;
  }
  return m.order.map((id) => /** @type {Step} */ (m.steps.get(id)));
}

/**
 * Applies one journal event (GET /v1/runs/{id}/events) to the model: a
 * call adds a pending step on its node, a place a placement (the pending
 * step moves to its node), a result ends a step (and adds it if its call
 * came with it: co-located), a tag adds attributes, an end ends the run.
 * An event whose id is not past the last one applied is a duplicate (a
 * reconnected stream's) and changes nothing. Returns what changed: "" for
 * nothing, "step" or "run".
 * @param {Model} m @param {string} kind @param {any} data @param {number} id @returns {""|"step"|"run"}
 */
export function applyEvent(m, kind, data, id) {
  if (Number.isFinite(id) && id > 0) {
    if (id <= m.lastId) return "";
    m.lastId = id;
  }
  m.events++;
  const add = (/** @type {any} */ c) => {
    let s = m.steps.get(c.step);
    if (!s) {
      s = { id: c.step, builtin: c.builtin, args: c.args, pos: c.pos, node: c.node, reason: c.reason, called: c.time, start: c.time, outcome: "pending" };
      m.steps.set(c.step, s);
      m.order.push(c.step);
      m.sorted = false;
    }
    return s;
  };
  switch (kind) {
    case "call":
      add(data);
      return "step";
    case "place": {
      const s = m.steps.get(data.step);
      if (!s) return "";
      const ps = s.placements?.length ? s.placements : [{ attempt: 1, node: s.node || "", reason: s.reason, time: s.called || "" }];
      if (!ps.some((p) => p.attempt === data.attempt)) ps.push({ attempt: data.attempt, node: data.node, reason: data.reason, time: data.time, why: data.why });
      ps.sort((a, b) => a.attempt - b.attempt);
      s.placements = ps;
      if (s.outcome === "pending") s.node = ps[ps.length - 1].node;
      return "step";
    }
    case "result": {
      const s = m.steps.get(data.step) || (data.call ? add(data.call) : null);
      if (!s) return "";
      Object.assign(s, { node: data.node, start: data.start, duration_ns: data.duration_ns, attempts: data.attempts,
        value: data.value, error: data.error, outcome: data.error ? "error" : "ok" });
      return "step";
    }
    case "tag":
      m.run.attrs = { ...(m.run.attrs || {}), ...(data.attrs || {}) };
      return "run";
    case "cancel":
      m.run.cancel = data;
      return "run";
    case "version":
      m.run.moved = data;
      return "run";
    case "end":
      m.ended = true;
      Object.assign(m.run, { status: data.status, ended: data.time, result: data.result, error: data.error, step_count: data.steps });
      return "run";
  }
  return "";
}
