// The page of one run: its header and outcome, its actions (cancel,
// resume, pin, export, replay check), a timeline with a lane per node and
// a bar per placement of each step, the steps (a virtualised table), the
// details of the step chosen with its log lines, the script's source with
// the lines that made steps, and the run's log lines.
//
// While the run goes on (running, parked or blocked) the page follows its
// journal (GET /v1/runs/{id}/events) and applies each event to the model in
// memory (timeline.js applyEvent), redrawing once per animation frame; it
// never reads the whole run again for an event.

import { parseEvents } from "./lib.js";
import { h, main, api, post, connection, confirmAction, fmtTime, fmtDur, attrsText, value } from "./ui.js";
import {
  parseTime, parseGoDuration, stepTimes, layout, barGeometry, visibleWindow, parsePos, stepsByLine, firstPos,
  newModel, orderedSteps, applyEvent, niceSpan,
} from "./timeline.js";

/**
 * Up to this many bars a finished run's timeline is buttons; past it, and
 * while a run goes on, a canvas per lane (a frame that moves bars then paints
 * one bitmap, not every bar again). A canvas lane of up to this many bars
 * still has a button per bar, not drawn, for the keyboard and screen readers.
 */
const DOM_BARS = 2000;
/**
 * Up to this many steps the table has every row; past it, the rows in view.
 * A table lays out all its rows again when one is added: a live run of
 * hundreds of steps would spend its frames there.
 */
const ALL_ROWS = 40;
/** A steps table row's height in px (style.css: .steps tbody tr). */
const ROW_H = 30;
/** The steps table's box's most height in px (style.css: .steps-scroll, 26rem). */
const BOX_H = 416;
/** Log lines drawn before "show all". */
const LOG_LINES = 1000;
/** Statuses whose journal may still grow. */
const LIVE = new Set(["running", "blocked"]);

/** While a run goes on, its source's marks are brought up to date at most this often, in ms. */
const SOURCE_MS = 500;
/** While a run goes on, its steps table and header are drawn at most this often, in ms (its timeline at every frame). */
const LATER_MS = 250;
/** The least time between two draws of a run page, in ms. */
const FRAME_GAP = 50;
/** A live timeline's bars that grow (pending) move at most this often, in ms. */
const GROW_MS = 400;

const enc = encodeURIComponent;

/** Replaces el's children, leaving out null and false (the DOM's replaceChildren writes them as text). @param {Element} el @param {...any} kids */
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false).map((k) => (k instanceof Node ? k : String(k))));
}

/**
 * The page of run id: drawn from GET /v1/runs/{id}, then kept up to date
 * from its journal's events while it goes on, until signal aborts.
 * @param {string} id @param {AbortSignal} signal
 */
export async function runPage(id, signal) {
  const m = main();
  m.dataset.page = "run";
  delete m.dataset.ready;
  let d;
  try {
    d = await api("/v1/runs/" + enc(id), signal);
  } catch (e) {
    if (!signal.aborted) m.replaceChildren(h("p", { class: "empty" }, "Cannot read run " + id + ": " + e));
    return;
  }
  if (signal.aborted) return;
  if (!d) {
    m.dataset.page = "missing";
    m.replaceChildren(h("h1", {}, "No such run"),
      h("p", {}, "The cluster knows no run ", h("span", { class: "mono" }, id), ": it may have expired, or the id is mistyped. ",
        h("a", { href: "/" }, "Back to the runs")));
    m.dataset.ready = "1";
    return;
  }
  new RunView(id, d, signal).start();
}

/** A bar's height in a lane of n rows, in px. @param {number} n */
const barHeight = (n) => (n <= 6 ? 18 : n <= 16 ? 10 : 5);

/** "+1.20 s" from the run's start. @param {number} ms */
const offset = (ms) => "+" + fmtDur(Math.max(0, ms) * 1e6);

/** What a bar says to the keyboard and screen readers (and as its tooltip). @param {any} b @param {any} l */
function barLabel(b, l) {
  return `step ${b.step} ${b.builtin}${b.attempt > 1 ? ", placement " + b.attempt : ""} on ${b.node}: ${b.lost ? "lost" : b.outcome}, ` +
    `${offset(b.begin - l.t0)}, ${b.outcome === "pending" ? "under way" : fmtDur((b.end - b.begin) * 1e6)}`;
}

/** A tick interval of about a sixth of span ms. @param {number} span */
function tickStep(span) {
  const raw = span / 6;
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw) || p * 10;
}

/** A step as one line of text: "3 kv.put". @param {any} s */
const stepName = (s) => `step ${s.id} ${s.builtin}`;

class RunView {
  /** @param {string} id @param {any} d @param {AbortSignal} signal */
  constructor(id, d, signal) {
    this.id = id;
    this.signal = signal;
    this.model = newModel(d);
    /** @type {string|null} */
    this.selected = null;
    /** @type {any[]|null} */
    this.logs = null;
    /** @type {any} the run's script (GET /v1/runs/{id}/script), false when there is none */
    this.script = null;
    /** @type {any[]} the live nodes, for links when this node's stream breaks */
    this.nodes = [];
    /** @type {EventSource|null} */
    this.es = null;
    this.frame = 0;
    this.drawnAt = 0; // when the page last drew (performance.now)
    this.laterAt = 0; // when a live run's table and header were last drawn (LATER_MS)
    this.laterTimer = 0;
    this.dirty = { head: true, steps: true, timeline: true, details: true, source: true, later: false };
    this.stepCount = -1;
    /** @type {Map<string, HTMLButtonElement>} */
    this.bars = new Map();
    /** @type {Map<string, HTMLTableRowElement>} */
    this.rows = new Map();
    /** @type {Map<string, string>} */
    this.rowSig = new Map();
    /** @type {Map<string, HTMLElement>} "file:line" → the line's element */
    this.lines = new Map();
    /** @type {Map<string, string[]>} */
    this.detailsSig = "";
    /** @type {Map<string, {sig: string, left: string, width: string, top: string, height: string, q: string, label: string}>} each DOM bar as last drawn */
    this.barState = new Map();
    /** @type {string|null} the step whose (undrawn) canvas-lane button has the focus */
    this.focusedBar = null;
    /** the time pending bars end at: moves by GROW_MS steps, so a frame for an event leaves them be */
    this.liveNow = 0;
    /** a live timeline's span in ms (niceSpan): bars keep their places until the run outgrows it */
    this.span = 0;
    this.axisKey = "";
    /** sizes measured by the ResizeObserver, never in a frame: the steps table's head and view, its scroll */
    this.headH = 31;
    this.viewH = 416;
    this.scrollY = 0;
    /** @type {Map<Element, number>} canvas lanes' track widths */
    this.trackW = new Map();
    /** @type {(() => void)[]} canvas paints, after the frame's DOM writes */
    this.paints = [];
    /** @type {Map<string, string[]>|null} */
    this.byLine = null;
    /** @type {Map<string, number>|null} */
    this.index = null;
    this.headSig = /** @type {any[]} */ ([]);
    this.build();
  }

  /** The page's fixed frame; the parts are filled by draw(). */
  build() {
    const m = main();
    this.headEl = h("dl", { class: "head" });
    this.outcomeEl = h("div", { class: "outcome" });
    this.actionsEl = h("p", { class: "actions" });
    this.replayEl = h("section", { class: "replay", hidden: true, "aria-live": "polite" });
    this.downEl = h("p", { class: "stream-down", hidden: true, role: "alert" });
    this.axisEl = h("div", { class: "axis", "aria-hidden": "true" });
    this.lanesEl = h("div", { class: "lanes" });
    this.timelineEl = h("div", { class: "timeline" }, this.axisEl, this.lanesEl);
    this.tbody = /** @type {HTMLTableSectionElement} */ (h("tbody"));
    this.stepsScroll = h("div", { class: "steps-scroll", onscroll: () => { this.scrollY = this.stepsScroll.scrollTop; this.schedule("steps"); } },
      h("table", { class: "steps" },
        h("thead", {}, h("tr", {}, ["Step", "Builtin", "Node", "Called", "Queue", "Took", "Outcome", "Position", "Placed because"]
          .map((c) => h("th", { scope: "col" }, c)))),
        this.tbody));
    this.stepsNote = h("p", { class: "muted steps-note" });
    this.detailsEl = h("aside", { class: "details-pane", "aria-label": "Step details" });
    this.sourceEl = h("div", { class: "source-scroll" }, h("p", { class: "muted" }, "Loading the script…"));
    this.logsEl = h("div", { class: "logs" }, h("p", { class: "muted" }, "Loading log lines…"));
    this.tbody.addEventListener("click", (e) => {
      const tr = /** @type {HTMLElement} */ (e.target).closest("tr[data-step]");
      if (tr) this.select(/** @type {string} */ (tr.getAttribute("data-step")), "table");
    });
    this.lanesEl.addEventListener("click", (e) => {
      const b = /** @type {HTMLElement} */ (e.target).closest("button[data-step]");
      if (b) this.select(/** @type {string} */ (b.getAttribute("data-step")), "timeline");
    });
    this.lanesEl.addEventListener("keydown", (e) => this.barKey(e));
    // A canvas lane's buttons are not drawn: the one with the focus is outlined on the canvas.
    const focused = (/** @type {FocusEvent} */ e) => {
      const b = /** @type {HTMLElement} */ (e.target);
      this.focusedBar = e.type === "focusin" && b.matches?.("button.listed") ? b.getAttribute("data-step") : null;
      this.markCanvas();
    };
    this.lanesEl.addEventListener("focusin", focused);
    this.lanesEl.addEventListener("focusout", focused);
    m.replaceChildren(
      h("p", {}, h("a", { href: "/" }, "← Runs")),
      h("h1", { class: "mono" }, this.id), this.headEl, this.actionsEl, this.downEl, this.outcomeEl, this.replayEl,
      h("h2", {}, "Timeline"),
      h("div", { class: "timeline-wrap", tabindex: "-1" }, this.timelineEl),
      h("p", { class: "legend muted" },
        h("span", { class: "key queue" }), " waiting for a node, a worker or resource units  ",
        h("span", { class: "key exec" }), " executing  ", h("span", { class: "key sleep" }), " sleeping  ",
        h("span", { class: "key pending" }), " under way  ", h("span", { class: "key error" }), " failed or lost"),
      h("div", { class: "run-grid" },
        h("section", { class: "run-steps" }, h("h2", {}, "Steps"), this.stepsNote, this.stepsScroll),
        this.detailsEl,
        h("section", { class: "run-source" }, h("h2", {}, "Script"), this.sourceEl)),
      h("h2", {}, "Log"), this.logsEl);
    const onKey = (/** @type {KeyboardEvent} */ e) => {
      if (e.key === "Escape" && this.selected && !document.querySelector("dialog[open]")) this.select(null);
    };
    document.addEventListener("keydown", onKey);
    /** @type {WeakMap<Element, number>} */
    const widths = new WeakMap();
    const thead = /** @type {HTMLElement} */ (this.stepsScroll.querySelector("thead"));
    const ro = new ResizeObserver((entries) => { // a new width, not the first report of each
      let changed = false, rows = false;
      for (const e of entries) {
        const w = Math.round(e.contentRect.width), hgt = Math.round(e.contentRect.height);
        if (e.target === thead) {
          if (hgt && hgt !== this.headH) { this.headH = hgt; rows = true; }
          continue;
        }
        if (e.target === this.stepsScroll && hgt && hgt !== this.viewH) { this.viewH = hgt; rows = true; }
        if (this.trackW.has(e.target)) { // a canvas lane's track
          if (w && w !== this.trackW.get(e.target)) { this.trackW.set(e.target, w); changed = true; }
          continue;
        }
        const was = widths.get(e.target);
        widths.set(e.target, w);
        if (was != null && was !== w) changed = true;
      }
      if (changed) this.schedule("timeline", "steps");
      else if (rows) this.schedule("steps");
    });
    this.ro = ro;
    ro.observe(this.timelineEl);
    ro.observe(this.stepsScroll);
    ro.observe(thead);
    this.signal.addEventListener("abort", () => {
      document.removeEventListener("keydown", onKey);
      ro.disconnect();
      this.es?.close();
      cancelAnimationFrame(this.frame);
      clearInterval(this.ticker);
    }, { once: true });
  }

  /** Draws the page, then reads its log lines, its script and (live) its journal. */
  start() {
    this.draw();
    main().dataset.ready = "1";
    this.loadLogs();
    this.loadScript();
    if (LIVE.has(this.model.run.status)) this.follow();
  }

  /** Marks parts to redraw and asks for a frame. @param {...keyof RunView["dirty"]} parts */
  schedule(...parts) {
    for (const p of parts) this.dirty[p] = true;
    if (this.frame) return;
    this.frameAt = performance.now();
    if (document.hidden) { // no frames, and timers throttled to seconds: the next task
      this.frame = -1;
      (this.port ??= this.taskPort()).postMessage(0);
      return;
    }
    // At most one draw per FRAME_GAP: a live run's events come every few
    // ms, and each draw walks every bar; batching them costs at most that
    // much delay.
    const since = performance.now() - this.drawnAt;
    if (since < FRAME_GAP) {
      this.frame = -1;
      this.frameTimer = setTimeout(this.runFrame, FRAME_GAP - since);
      return;
    }
    // A frame, or a timer, whichever comes first.
    this.frame = requestAnimationFrame(this.runFrame);
    this.frameTimer = setTimeout(this.runFrame, 100);
  }

  /** Draws now what schedule asked for. */
  runFrame = () => {
    if (!this.frame) return;
    if (this.frame > 0) cancelAnimationFrame(this.frame);
    clearTimeout(this.frameTimer);
    this.frame = 0;
    this.drawnAt = performance.now();
    if (!this.signal.aborted) this.draw();
  };

  /**
   * A frame asked for more than 150 ms ago and not drawn: rAF and timers
   * can both stall (a page hidden or not painted: Chromium's background
   * budget throttles a timer by seconds after a long task), while the
   * stream's events still come; the event then draws.
   */
  overdue() {
    if (this.frame && performance.now() - (this.frameAt || 0) > 150) this.runFrame();
  }

  /** A MessageChannel to draw at the next task (not a throttled timer). */
  taskPort() {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => this.runFrame();
    return ch.port2;
  }

  /**
   * Runs f once the page is idle (soon in any case) and at least after ms,
   * once however often asked before. @param {() => void} f @param {number} [ms]
   */
  idle(f, ms = 0) {
    this.idleFn = f;
    if (this.idleWait && ms === 0) { // asked for sooner than it waits: now
      clearTimeout(this.idleWait);
      this.idleWait = 0;
    } else if (this.idleId || this.idleWait) {
      return;
    }
    const run = () => {
      this.idleId = 0;
      const g = this.idleFn;
      this.idleFn = null;
      if (g && !this.signal.aborted) g();
    };
    const soon = () => {
      this.idleWait = 0;
      this.idleId = typeof requestIdleCallback === "function" ? requestIdleCallback(run, { timeout: 300 }) : setTimeout(run, 50);
    };
    if (ms > 0) this.idleWait = setTimeout(soon, ms);
    else soon();
  }

  /** Redraws what changed. */
  draw() {
    const dirty = this.dirty;
    this.dirty = { head: false, steps: false, timeline: false, details: false, source: false, later: false };
    this.steps = orderedSteps(this.model);
    if (this.steps.length !== this.stepCount) {
      this.stepCount = this.steps.length;
      this.byLine = null; // made again when the source is marked, in an idle moment
      this.index = null;
      dirty.source = true;
    }
    // A live run's table and header follow its timeline at most every
    // LATER_MS: a table of rows costs far more to lay out and paint than a
    // lane's canvas, and events come every few ms.
    if (dirty.later) {
      const wait = this.laterAt + LATER_MS - performance.now();
      if (wait > 0) {
        this.dirty.later = true;
        this.laterTimer ||= setTimeout(() => { this.laterTimer = 0; this.schedule(); }, wait);
      } else {
        this.laterAt = performance.now();
        dirty.head = dirty.steps = true;
      }
    }
    // Each part on its own: one that fails leaves the others drawn (and says so).
    const part = (/** @type {() => void} */ f) => {
      try {
        f.call(this);
      } catch (e) {
        console.error("run page:", e);
      }
    };
    if (dirty.head) part(this.drawHead);
    if (dirty.timeline) part(this.drawTimeline);
    if (dirty.steps) part(this.drawSteps);
    if (dirty.details) part(this.drawDetails);
    // The canvases last: the one layout read (a lane's width, the first
    // time) comes after every write of the frame.
    const paints = this.paints;
    this.paints = [];
    for (const p of paints) part(p);
    if (dirty.source) {
      if (this.byLine || !this.script) part(this.markSource);
      else this.idle(() => this.markSource(), this.es ? SOURCE_MS : 0);
    }
    const m = main();
    m.dataset.lastEventId = String(this.model.lastId);
    m.dataset.events = String(this.model.events);
  }

  // --- header, outcome, actions ------------------------------------------

  drawHead() {
    const d = this.model.run;
    // An event changes the count of steps, seldom the rest: then only the count is written.
    const sig = [d, d.status, d.wake_at, d.script, d.version, d.hash, d.coordinator, d.trace_id, d.started, d.ended, d.attrs,
      d.pinned, d.expires, d.moved, d.cancel, d.error, d.result, d.input];
    if (this.stepsDd && sig.length === this.headSig.length && sig.every((v, i) => v === this.headSig[i])) {
      const n = String(this.model.steps.size);
      if (this.stepsDd.textContent !== n) this.stepsDd.textContent = n;
      return;
    }
    this.headSig = sig;
    const parked = d.status === "running" && d.wake_at;
    const status = d.status + (parked ? ` (parked until ${fmtTime(d.wake_at)})` : "");
    const started = parseTime(d.started), ended = parseTime(d.ended);
    const version = [d.version ? "version " + d.version : "", d.hash ? "hash " + d.hash.slice(0, 12) : ""].filter(Boolean).join(", ");
    /** @type {[string, any, string?][]} */
    const rows = [
      ["Script", `${d.script}${version ? " (" + version + ")" : ""}`],
      ["Status", status, "status-" + d.status],
      ["Coordinator", d.coordinator || "–"],
      ["Trace", d.trace_id || "–", "mono"],
      ["Started", fmtTime(d.started)],
      ["Ended", d.ended ? fmtTime(d.ended) + (started != null && ended != null ? ` (took ${fmtDur((ended - started) * 1e6)})` : "") : "–"],
      ["Steps", String(this.model.steps.size)],
      ["Attributes", attrsText(d.attrs) || "–"],
      ["Kept", d.pinned ? "pinned: kept past retention" : d.expires ? "until " + fmtTime(d.expires) : "–"],
    ];
    if (d.moved) rows.push(["Moved", `to ${d.moved.script || "another version"} ${String(d.moved.hash || "").slice(0, 12)} by ${d.moved.by || "?"}`]);
    if (d.cancel && !d.error) rows.push(["Cancelling", `by ${d.cancel.by}: ${d.cancel.reason}`]);
    fill(this.headEl, ...rows.flatMap(([k, v, cls]) => {
      const dd = h("dd", { class: cls || null }, v);
      if (k === "Steps") this.stepsDd = dd;
      return [h("dt", {}, k), dd];
    }),
      h("dt", {}, "Input"), h("dd", {}, d.input === undefined ? "–" : value(d.input ?? null)));
    this.drawOutcome();
    this.drawActions();
  }

  drawOutcome() {
    const d = this.model.run;
    if (d.error) {
      const text = d.error.message + (d.error.backtrace ? "\n\n" + d.error.backtrace : "");
      const pos = firstPos(text);
      this.errorPos = pos;
      fill(this.outcomeEl, h("h2", {}, d.status === "blocked" ? "Blocked" : d.status === "cancelled" ? "Cancelled" : "Error"),
        pos ? h("p", {}, "At ", h("button", { type: "button", class: "linkish mono", onclick: () => this.showLine(pos.file, pos.line) },
          `${pos.file}:${pos.line}:${pos.col}`)) : null,
        value(text));
    } else if (d.status === "completed") {
      this.errorPos = null;
      fill(this.outcomeEl, h("h2", {}, "Result"), value(d.result ?? null));
    } else {
      fill(this.outcomeEl);
    }
  }

  drawActions() {
    const d = this.model.run;
    const url = "/v1/runs/" + enc(this.id);
    const parked = d.status === "running" && d.wake_at;
    fill(this.actionsEl, 
      LIVE.has(d.status) ? h("button", { type: "button", onclick: () => this.confirmCancel() }, "Cancel run…") : null,
      d.status === "blocked" || parked ? h("button", { type: "button", onclick: () => this.confirmResume() }, "Resume…") : null,
      d.pinned ? h("span", { class: "muted" }, "Pinned") : h("button", { type: "button", onclick: () => this.confirmPin() }, "Pin…"),
      h("a", { class: "button", href: url + "/export", download: `run-${this.id}.json` }, "Download export"),
      h("button", { type: "button", onclick: () => this.confirmReplay() }, "Replay check…"));
  }

  /** Reads the run again (after an action or its end) and redraws it all. */
  async refresh() {
    let d;
    try {
      d = await api("/v1/runs/" + enc(this.id), this.signal);
    } catch {
      return;
    }
    if (!d || this.signal.aborted) return;
    const m = this.model;
    const extra = { cancel: m.run.cancel, moved: m.run.moved };
    if (m.ended && LIVE.has(d.status)) {
      // The index lags the journal: its end entry, applied, has the last word.
      const { status, ended, result, error, step_count } = m.run;
      Object.assign(d, { status, ended, result, error, step_count });
    }
    m.run = { ...extra, ...d };
    for (const s of d.steps || []) {
      if (!m.steps.has(s.id)) {
        m.order.push(s.id);
        m.sorted = false;
      }
      m.steps.set(s.id, { ...s });
    }
    this.rowSig.clear();
    this.schedule("head", "steps", "timeline", "details");
    if (LIVE.has(d.status) && !this.es && !m.ended) this.follow();
  }

  confirmCancel() {
    confirmAction({
      label: "Cancel run " + this.id,
      text: ["Cancel run ", h("span", { class: "mono" }, this.id), "? It stops where it is; what it journaled stays."],
      fields: [h("label", {}, "Reason ", h("input", { name: "reason", required: true, placeholder: "why, e.g. customer asked" }))],
      yes: "Cancel the run", no: "Keep it running",
      act: async (form) => {
        const reason = /** @type {HTMLInputElement} */ (form.elements.namedItem("reason")).value;
        try {
          await post("/v1/runs/" + enc(this.id) + "/cancel", { by: "panel", reason });
        } catch (e) {
          throw new Error("Not cancelled: " + /** @type {Error} */ (e).message);
        }
        this.refresh();
      },
    });
  }

  async confirmResume() {
    const d = this.model.run;
    /** @type {any[]} */
    let history = [];
    try {
      history = ((/** @type {any} */ (await api("/v1/scripts/" + enc(d.script) + "/history", this.signal))) ?? {}).history || [];
    } catch { /* not deployed, or the node is away: its own version only */ }
    const select = h("select", { name: "version" },
      h("option", { value: "" }, `its own version${d.version ? " (" + d.version + ")" : ""}`),
      [...history].reverse().map((v) => h("option", { value: String(v.version) },
        `version ${v.version} (${String(v.hash || "").slice(0, 12)}${v.note ? ", " + v.note : ""}, ${fmtTime(v.at)})`)));
    confirmAction({
      label: "Resume run " + this.id,
      text: ["Resume run ", h("span", { class: "mono" }, this.id), "? It is replayed from its journal and goes on live; ",
        "on another version, that version must make the same calls for the steps already taken."],
      fields: [h("label", {}, "On ", select)],
      yes: "Resume", no: "Leave it",
      act: async (form) => {
        const v = /** @type {HTMLSelectElement} */ (form.elements.namedItem("version")).value;
        try {
          await post("/v1/runs/" + enc(this.id) + "/resume", v ? { version: Number(v), by: "panel" } : { by: "panel" });
        } catch (e) {
          throw new Error("Not resumed: " + /** @type {Error} */ (e).message);
        }
        this.refresh();
      },
    });
  }

  confirmPin() {
    confirmAction({
      label: "Pin run " + this.id,
      text: ["Pin run ", h("span", { class: "mono" }, this.id), "? Its record, script and journal are kept past retention, for replays later."],
      yes: "Pin it", no: "Not now",
      act: async () => {
        try {
          await post("/v1/runs/" + enc(this.id) + "/pin", {});
        } catch (e) {
          throw new Error("Not pinned: " + /** @type {Error} */ (e).message);
        }
        this.model.run.pinned = true;
        this.schedule("head");
        this.refresh();
      },
    });
  }

  confirmReplay() {
    const script = this.script || null;
    const mainFile = script?.main || this.model.run.script + ".star";
    const area = /** @type {HTMLTextAreaElement} */ (h("textarea", { name: "source", rows: "14", spellcheck: "false", class: "mono",
      "aria-label": "Script to replay against (" + mainFile + ")" }, script?.files?.[mainFile] ?? ""));
    const pasted = h("input", { type: "radio", name: "against", value: "pasted" });
    area.addEventListener("input", () => { /** @type {HTMLInputElement} */ (pasted).checked = true; });
    confirmAction({
      label: "Replay check of run " + this.id,
      text: ["Replay run ", h("span", { class: "mono" }, this.id), " against a script: nothing is executed; each call is answered from the journal, ",
        "and the check says whether the script makes the same calls."],
      fields: [
        h("fieldset", { class: "against" }, h("legend", {}, "Against"),
          h("label", {}, h("input", { type: "radio", name: "against", value: "live", checked: true }), " the live version of ", this.model.run.script),
          h("label", {}, pasted, " this script (", h("span", { class: "mono" }, mainFile), "):")),
        area],
      yes: "Check", no: "Close",
      act: async (form) => {
        const against = /** @type {RadioNodeList} */ (form.elements.namedItem("against")).value;
        const body = against === "pasted"
          ? { script: { main: mainFile, files: { ...(script?.files || {}), [mainFile]: area.value } } }
          : {};
        const resp = await fetch("/v1/runs/" + enc(this.id) + "/replay", { method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" }, body: JSON.stringify(body) });
        const answer = await resp.json().catch(() => null);
        if (resp.status === 422) {
          throw new Error("The script does not compile:\n" + ((answer?.error?.errors || []).join("\n") || answer?.error?.message || ""));
        }
        if (resp.status === 404 && answer?.error?.code === "not_found") throw new Error("This node has no replay check yet (404).");
        if (!resp.ok) throw new Error(answer?.error?.message || `HTTP ${resp.status}`);
        this.showReplay(answer);
      },
    });
  }

  /** Shows a replay report: the same result, or the divergence side by side. @param {any} r */
  showReplay(r) {
    const same = r.matches && !r.divergence;
    const dv = r.divergence;
    const call = (/** @type {string} */ title, /** @type {any} */ c) => h("div", { class: "call" }, h("h4", {}, title),
      c ? h("dl", {}, h("dt", {}, "Builtin"), h("dd", { class: "mono" }, c.builtin), h("dt", {}, "Position"), h("dd", { class: "mono" }, c.pos || "–"),
        h("dt", {}, "Arguments"), h("dd", {}, value(c.args ?? null)))
        : h("p", { class: "muted" }, "no call"));
    this.replayEl.hidden = false;
    this.replayEl.dataset.replay = same ? "same" : "diverged";
    fill(this.replayEl, h("h2", {}, "Replay check"),
      h("p", { class: same ? "same" : "diverged" }, same ? "Same result" : dv ? `Diverged at step ${dv.step}` : "Different result",
        h("span", { class: "muted" }, ` — against ${r.against || "?"}${r.hash ? " (" + String(r.hash).slice(0, 12) + ")" : ""}, `,
          `${r.steps ?? "?"} of ${r.journaled ?? "?"} journaled calls replayed, ${fmtDur(r.took_ns)}${r.partial ? ", a prefix (the run goes on)" : ""}`)),
      r.message ? value(r.message) : null,
      dv ? h("div", { class: "side-by-side" }, call("Journaled call", dv.journaled), call("New call", dv.new)) : null,
      dv?.missing ? h("p", {}, `${dv.missing} journaled call${dv.missing > 1 ? "s were" : " was"} not made.`) : null,
      !same && r.error ? value(r.error.message || r.error) : null,
      h("button", { type: "button", onclick: () => { this.replayEl.hidden = true; } }, "Close"));
    this.replayEl.scrollIntoView({ block: "nearest" });
  }

  // --- timeline -----------------------------------------------------------

  drawTimeline() {
    const d = this.model.run;
    const ended = parseTime(d.ended);
    const live = ended == null;
    const clock = Date.now();
    // Pending bars end at liveNow, which moves by GROW_MS steps: a frame
    // for an event touches only the bars that event added or changed.
    if (!live || !this.liveNow || clock - this.liveNow >= GROW_MS) this.liveNow = clock;
    const now = this.liveNow;
    const l = layout(this.steps, { now, start: parseTime(d.started), end: live ? null : ended, first: d.coordinator });
    if (live) {
      // The span grows in steps (niceSpan) while the run goes on, not to
      // now at every frame: between steps no bar moves.
      const used = Math.max(l.t1, now) - l.t0;
      if (!this.span || used > this.span) this.span = niceSpan(used);
      l.t1 = l.t0 + this.span;
    } else {
      this.span = 0;
    }
    this.layout = l;
    const canvas = l.bars > DOM_BARS || live;
    const listed = canvas && l.bars <= DOM_BARS;
    const span = l.t1 - l.t0;
    const axisKey = l.t0 + "|" + span;
    if (axisKey !== this.axisKey) {
      this.axisKey = axisKey;
      const step = tickStep(span);
      const ticks = [];
      for (let t = 0; t <= span; t += step) {
        const tick = h("span", {}, t === 0 ? "0" : offset(t));
        tick.style.setProperty("left", (t / span) * 100 + "%");
        ticks.push(tick);
      }
      this.axisEl.replaceChildren(...ticks);
    }
    /** @type {Map<string, HTMLElement>} */
    const laneEls = new Map([...this.lanesEl.children].map((el) => [/** @type {string} */ (el.getAttribute("data-lane")), /** @type {HTMLElement} */ (el)]));
    const seen = new Set();
    const want = [];
    for (const lane of l.lanes) {
      let el = laneEls.get(lane.node);
      if (!el || (el.dataset.mode === "canvas") !== canvas) {
        if (el) this.dropTrack(/** @type {HTMLElement} */ (el.lastElementChild), lane.node);
        el?.remove();
        el = h("div", { class: "lane", "data-lane": lane.node, "data-mode": canvas ? "canvas" : "dom" },
          h("div", { class: "lane-name mono", title: lane.node }, lane.node),
          h("div", { class: "track", role: "group", "aria-label": "steps on " + lane.node }));
      }
      want.push(el);
      const track = /** @type {HTMLElement} */ (el.lastElementChild);
      const bh = barHeight(lane.rows);
      const th = lane.rows * (bh + 2) + 2 + "px";
      if (track.style.height !== th) track.style.height = th;
      if (canvas) {
        const list = this.drawCanvas(track, lane, l, bh);
        if (listed) for (const b of lane.bars) seen.add(this.listBar(list, b, l));
      } else {
        for (const b of lane.bars) seen.add(this.drawBar(track, b, l, bh));
      }
    }
    for (const [key, el] of this.bars) if (!seen.has(key)) { el.remove(); this.bars.delete(key); this.barState.delete(key); }
    for (const el of this.lanesEl.children) {
      if (!want.includes(/** @type {HTMLElement} */ (el))) this.dropTrack(/** @type {HTMLElement} */ (el.lastElementChild), el.getAttribute("data-lane") || "");
    }
    if (want.some((el, i) => this.lanesEl.children[i] !== el) || this.lanesEl.children.length !== want.length) this.lanesEl.replaceChildren(...want);
  }

  /** Forgets a lane's track that goes (a run's end makes its canvas lanes buttons). @param {HTMLElement} track @param {string} node */
  dropTrack(track, node) {
    if (!this.trackW.has(track)) return;
    this.trackW.delete(track);
    this.ro?.unobserve(track);
    if (this.hits?.get(node)?.track === track) this.hits.delete(node);
  }

  /**
   * Draws bar b in track as a button; returns its key. A bar drawn before
   * is written to only where it changed (a live run's frame leaves the
   * others alone). @param {HTMLElement} track @param {any} b @param {any} l @param {number} bh
   */
  drawBar(track, b, l, bh) {
    let el = this.bars.get(b.key);
    let st = this.barState.get(b.key);
    const sel = b.step === this.selected;
    const sig = `${b.begin}|${b.end}|${b.start}|${b.row}|${b.outcome}|${b.lost}|${b.node}|${bh}|${l.t0}|${l.t1}|${sel}`;
    if (el && st && st.sig === sig && el.parentElement === track) return b.key;
    if (!el || el.parentElement !== track) {
      el?.remove();
      el = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "bar", "data-step": b.step, "data-attempt": String(b.attempt) },
        h("span", { class: "q" }), h("span", { class: "x" })));
      this.bars.set(b.key, el);
      st = { sig: "", left: "", width: "", top: "", height: "", q: "", label: "" };
      this.barState.set(b.key, st);
      track.append(el);
    }
    st = /** @type {NonNullable<typeof st>} */ (st);
    st.sig = sig;
    const g = barGeometry(b, l.t0, l.t1);
    const cls = `bar ${b.kind} ${b.outcome}${b.lost ? " lost" : ""}${sel ? " selected" : ""}`;
    if (el.className !== cls) el.className = cls;
    if (el.dataset.outcome !== b.outcome) el.dataset.outcome = b.outcome;
    const left = g.x * 100 + "%", width = g.w * 100 + "%", top = b.row * (bh + 2) + 2 + "px", height = bh + "px";
    const q = g.w > 0 ? (g.queue / g.w) * 100 + "%" : "0";
    if (st.left !== left) el.style.setProperty("left", (st.left = left));
    if (st.width !== width) el.style.setProperty("width", (st.width = width));
    if (st.top !== top) el.style.setProperty("top", (st.top = top));
    if (st.height !== height) el.style.setProperty("height", (st.height = height));
    if (st.q !== q) /** @type {HTMLElement} */ (el.firstElementChild).style.setProperty("width", (st.q = q));
    const label = barLabel(b, l);
    if (st.label !== label) {
      st.label = label;
      el.title = label;
      el.setAttribute("aria-label", label);
    }
    return b.key;
  }

  /**
   * The button of bar b in a canvas lane's list (not drawn: the canvas
   * shows the bar), made once and written to where it changed; returns its
   * key. @param {HTMLElement} list @param {any} b @param {any} l
   */
  listBar(list, b, l) {
    let el = this.bars.get(b.key);
    let st = this.barState.get(b.key);
    if (!el || !st || el.parentElement !== list) {
      el?.remove();
      el = /** @type {HTMLButtonElement} */ (h("button", { type: "button", class: "bar listed", "data-step": b.step, "data-attempt": String(b.attempt) }));
      this.bars.set(b.key, el);
      st = { sig: "", left: "", width: "", top: "", height: "", q: "", label: "" };
      this.barState.set(b.key, st);
      list.append(el);
    }
    const outcome = b.lost ? "lost" : b.outcome;
    if (el.dataset.outcome !== outcome) el.dataset.outcome = outcome;
    const label = barLabel(b, l);
    if (st.label !== label) {
      st.label = label;
      el.setAttribute("aria-label", label);
    }
    return b.key;
  }

  /**
   * Draws a lane of many bars on a canvas: bars narrower than a pixel are
   * drawn one pixel wide. A click finds the bar under the pointer. The
   * pixels are painted after the frame's DOM writes (this.paints); the
   * selected bar is an outline over the canvas (markCanvas), so a click
   * paints no canvas again.
   * @param {HTMLElement} track @param {any} lane @param {any} l @param {number} bh
   */
  drawCanvas(track, lane, l, bh) {
    let c = /** @type {HTMLCanvasElement|null} */ (track.querySelector("canvas"));
    if (!c) {
      c = /** @type {HTMLCanvasElement} */ (h("canvas", { tabindex: "0" }));
      c.addEventListener("click", (e) => {
        const hit = this.barAt(lane.node, e.offsetX, e.offsetY);
        if (hit) this.select(hit, "timeline");
      });
      track.append(c, h("div", { class: "sel-mark", hidden: true }),
        h("div", { class: "bar-list sr-only", role: "group", "aria-label": "steps on " + lane.node }));
    }
    const label = `${lane.bars.length} steps on ${lane.node}: click one to see it; the steps table lists them all`;
    if (c.getAttribute("aria-label") !== label) c.setAttribute("aria-label", label);
    const hgt = lane.rows * (bh + 2) + 2;
    if (c.style.height !== hgt + "px") c.style.height = hgt + "px";
    if (c.dataset.bars !== String(lane.bars.length)) c.dataset.bars = String(lane.bars.length);
    const canvas = c;
    this.paints.push(() => this.paintCanvas(canvas, track, lane, l, bh, hgt));
    return /** @type {HTMLElement} */ (track.lastElementChild);
  }

  /** @param {HTMLCanvasElement} c @param {HTMLElement} track @param {any} lane @param {any} l @param {number} bh @param {number} hgt */
  paintCanvas(c, track, lane, l, bh, hgt) {
    let w = this.trackW.get(track);
    if (!w) { // the first time: one read, after the frame's writes; then the ResizeObserver's
      w = track.clientWidth || 800;
      this.trackW.set(track, w);
      this.ro?.observe(track);
    }
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.round(w * dpr), ch = Math.round(hgt * dpr);
    if (c.width !== cw) c.width = cw;
    if (c.height !== ch) c.height = ch;
    const ctx = /** @type {CanvasRenderingContext2D} */ (c.getContext("2d"));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    if (!this.colors) {
      const css = getComputedStyle(track);
      const color = (/** @type {string} */ name, /** @type {string} */ dflt) => css.getPropertyValue(name).trim() || dflt;
      this.colors = { exec: color("--bar-exec", "#2457c5"), queue: color("--bar-queue", "#b9c8ec"), sleep: color("--bar-sleep", "#8e7cc3"),
        dozing: color("--bar-sleep-pending", "#b7aadd"), pending: color("--bar-pending", "#e0a100"), error: color("--bar-error", "#b42318") };
    }
    // One path per colour: five fills, not one per bar.
    const paths = { queue: new Path2D(), exec: new Path2D(), sleep: new Path2D(), dozing: new Path2D(), pending: new Path2D(), error: new Path2D() };
    /** @type {any[]} */
    const hits = [];
    const span = l.t1 - l.t0 || 1;
    // A lane of few bars draws them as wide as its buttons would be (style.css: min-width).
    const least = l.bars <= DOM_BARS ? 3 : 1;
    for (const b of lane.bars) {
      const x = ((b.begin - l.t0) / span) * w, y = b.row * (bh + 2) + 2;
      const bw = Math.max(least, ((b.end - b.begin) / span) * w);
      hits.push([x, y, bw, b.step]);
      if (b.kind === "sleep") (b.outcome === "pending" ? paths.dozing : paths.sleep).rect(x, y, bw, bh);
      else if (b.outcome === "error") paths.error.rect(x, y, bw, bh);
      else if (b.outcome === "pending") paths.pending.rect(x, y, bw, bh);
      else {
        const qw = b.start == null ? 0 : Math.min(bw, Math.max(0, ((b.start - b.begin) / span) * w));
        if (qw >= 1) paths.queue.rect(x, y, qw, bh);
        paths.exec.rect(x + (qw >= 1 ? qw : 0), y, Math.max(1, bw - (qw >= 1 ? qw : 0)), bh);
      }
    }
    for (const k of /** @type {(keyof typeof paths)[]} */ (Object.keys(paths))) { // in the order above: queue under exec
      ctx.fillStyle = this.colors[k];
      ctx.fill(paths[k]);
    }
    (this.hits ??= new Map()).set(lane.node, { hits, bh, track });
    this.markCanvas();
  }

  /**
   * Outlines the bar of the step whose button has the focus, or else the
   * selected step's, over each canvas lane (no canvas is painted again).
   */
  markCanvas() {
    if (!this.hits) return;
    const want = this.focusedBar || this.selected;
    for (const { hits, bh, track } of this.hits.values()) {
      const mark = /** @type {HTMLElement|null} */ (track.querySelector(".sel-mark"));
      if (!mark) continue;
      const hit = want ? hits.find((/** @type {any[]} */ x) => x[3] === want) : null;
      mark.hidden = !hit;
      if (!hit) continue;
      mark.style.left = hit[0] - 1 + "px";
      mark.style.top = hit[1] - 1 + "px";
      mark.style.width = Math.max(3, hit[2] + 2) + "px";
      mark.style.height = bh + 2 + "px";
    }
  }

  /** The step of the bar at (x, y) of a lane's canvas, or the nearest within 4 px. @param {string} node @param {number} x @param {number} y */
  barAt(node, x, y) {
    const lane = this.hits?.get(node);
    if (!lane) return null;
    let best = null, dist = 5;
    for (const [bx, by, bw, step] of lane.hits) {
      if (y < by - 1 || y > by + lane.bh + 1) continue;
      const dx = x < bx ? bx - x : x > bx + bw ? x - bx - bw : 0;
      if (dx < dist) { dist = dx; best = step; }
    }
    return best;
  }

  /** Arrow keys move along a lane's bars; Home and End go to its ends. @param {KeyboardEvent} e */
  barKey(e) {
    const el = /** @type {HTMLElement} */ (e.target);
    if (!el.matches?.("button.bar") || !["ArrowLeft", "ArrowRight", "Home", "End", "ArrowUp", "ArrowDown"].includes(e.key)) return;
    e.preventDefault();
    if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      const lanes = [...this.lanesEl.querySelectorAll(".lane")];
      const i = lanes.indexOf(/** @type {HTMLElement} */ (el.closest(".lane")));
      /** @type {HTMLElement|null} */ (lanes[i + (e.key === "ArrowDown" ? 1 : -1)]?.querySelector("button.bar"))?.focus();
      return;
    }
    const bars = /** @type {HTMLElement[]} */ ([...(el.parentElement?.querySelectorAll("button.bar") || [])]);
    if (!el.classList.contains("listed")) bars.sort((a, b) => parseFloat(a.style.left) - parseFloat(b.style.left)); // a list is in order
    const i = bars.indexOf(el);
    const next = e.key === "Home" ? bars[0] : e.key === "End" ? bars[bars.length - 1] : bars[i + (e.key === "ArrowRight" ? 1 : -1)];
    next?.focus();
  }

  // --- steps table --------------------------------------------------------

  drawSteps() {
    const steps = this.steps;
    const t0 = parseTime(this.model.run.started);
    const virtual = steps.length > ALL_ROWS;
    if (this.stepsScroll.classList.contains("virtual") !== virtual) this.stepsScroll.classList.toggle("virtual", virtual);
    // Taller than its box (style.css: 26rem): the box's height is fixed, and
    // rows added lay out and paint it alone.
    const full = (steps.length + 1) * ROW_H > BOX_H;
    if (this.stepsScroll.classList.contains("full") !== full) this.stepsScroll.classList.toggle("full", full);
    const note = steps.length ? (virtual ? `${steps.length} steps: scroll the table; pick one to see it.` : "") : "No steps yet.";
    if (this.stepsNote.textContent !== note) this.stepsNote.textContent = note;
    let first = 0, last = steps.length, above = 0, below = 0;
    if (virtual) { // sizes from the ResizeObserver and the scroll event: no layout read here
      ({ first, last, above, below } = visibleWindow(this.scrollY - this.headH, this.viewH || 400, ROW_H, steps.length, 8));
    }
    /** @type {HTMLElement[]} */
    const out = [];
    if (above) out.push(this.spacer(above, "above"));
    for (let i = first; i < last; i++) out.push(this.row(steps[i], t0));
    if (below) out.push(this.spacer(below, "below"));
    const tb = this.tbody;
    if (out.length === tb.children.length && out.every((r, i) => tb.children[i] === r)) return;
    // Rows in place stay: gone ones are removed, new ones put in (a live
    // run's new step is one row appended, not a table made again).
    const active = document.activeElement;
    const keep = new Set(out);
    for (const tr of [...tb.children]) if (!keep.has(tr)) tr.remove();
    let cur = tb.firstElementChild;
    for (const r of out) {
      if (cur === r) cur = cur.nextElementSibling;
      else tb.insertBefore(r, cur);
    }
    if (active instanceof HTMLElement && active.isConnected && active !== document.activeElement) active.focus({ preventScroll: true });
  }

  /** A spacer row standing for rows not drawn. @param {number} px @param {string} which */
  spacer(px, which) {
    const key = "spacer-" + which;
    let tr = this.rows.get(key);
    if (!tr) {
      tr = /** @type {HTMLTableRowElement} */ (h("tr", { class: "spacer", "aria-hidden": "true" }, h("td", { colspan: "9" })));
      this.rows.set(key, tr);
    }
    if (tr.style.height !== px + "px") tr.style.height = px + "px";
    return tr;
  }

  /** The row of step s, made again only when s changed. @param {any} s @param {number|null} t0 */
  row(s, t0) {
    const sig = [s.outcome, s.node, s.start, s.duration_ns, s.attempts, s.placements?.length, s.id === this.selected].join("|");
    let tr = this.rows.get(s.id);
    if (tr && this.rowSig.get(s.id) === sig) return tr;
    const called = parseTime(s.called);
    const { queue, exec } = stepTimes(s);
    const next = /** @type {HTMLTableRowElement} */ (h("tr", { "data-step": s.id, class: (s.id === this.selected ? "selected " : "") + "outcome-" + s.outcome },
      h("td", { class: "mono" }, h("button", { type: "button", class: "linkish", "aria-label": "show " + stepName(s) }, s.id)),
      h("td", {}, s.builtin + (s.builtin === "sleep" && s.args?.duration ? " " + s.args.duration : "")),
      h("td", {}, s.node || "–"),
      h("td", {}, called != null && t0 != null ? offset(called - t0) : "–"),
      h("td", {}, queue == null ? "–" : fmtDur(queue)),
      h("td", {}, s.outcome === "pending" ? "–" : fmtDur(exec ?? 0)),
      h("td", { class: "status-" + s.outcome }, s.outcome + (s.attempts > 1 ? ` (${s.attempts} attempts)` : "") + (s.placements?.length > 1 ? `, placed ${s.placements.length}×` : "")),
      h("td", { class: "mono" }, s.pos || "–"),
      h("td", { title: s.reason || "" }, s.reason || "–")));
    if (tr) {
      const focused = tr.contains(document.activeElement);
      tr.replaceWith(next);
      if (focused) /** @type {HTMLElement} */ (next.querySelector("button"))?.focus({ preventScroll: true });
    }
    this.rows.set(s.id, next);
    this.rowSig.set(s.id, sig);
    return next;
  }

  // --- selection and details ---------------------------------------------

  /**
   * Selects step id (null: none): its bars, row and line are marked, its
   * details shown. from says where the choice was made, which is not
   * scrolled. @param {string|null} id @param {string} [from]
   */
  select(id, from = "") {
    const prev = this.selected;
    this.selected = id;
    for (const key of [prev, id]) {
      if (!key) continue;
      this.rowSig.delete(key);
      for (const el of this.lanesEl.querySelectorAll(`[data-step="${CSS.escape(key)}"]`)) el.classList.toggle("selected", key === id);
    }
    this.markCanvas();
    this.schedule("details", "steps", "source");
    if (!id) return;
    if (from !== "table") this.scrollToRow(id);
    if (from !== "source") this.revealLine(id);
    if (LIVE.has(this.model.run.status)) this.loadLogs();
  }

  /** Scrolls the steps table to step id's row. @param {string} id */
  scrollToRow(id) {
    const steps = this.steps || [];
    this.index ??= new Map(steps.map((s, i) => [s.id, i]));
    const i = this.index.get(id);
    if (i == null) return;
    const sc = this.stepsScroll;
    const head = this.headH;
    const top = head + i * ROW_H;
    if (steps.length > ALL_ROWS) {
      if (top < this.scrollY + head || top + ROW_H > this.scrollY + this.viewH) {
        sc.scrollTop = this.scrollY = Math.max(0, top - this.viewH / 2);
      }
      return;
    }
    const tr = this.rows.get(id);
    if (tr && tr.isConnected) {
      const y = tr.offsetTop;
      if (y < sc.scrollTop + head || y + tr.offsetHeight > sc.scrollTop + sc.clientHeight) sc.scrollTop = y - sc.clientHeight / 2;
    }
  }

  drawDetails() {
    const id = this.selected;
    const s = id ? this.model.steps.get(id) : null;
    if (!s) {
      const none = "none|" + (this.model.steps.size > 0);
      if (this.detailsSig === none) return;
      this.detailsSig = none;
      fill(this.detailsEl, h("h2", {}, "Step"), h("p", { class: "muted" },
        this.model.steps.size ? "Pick a step (a bar of the timeline, a row of the table or a marked line of the script) to see its details." : "No steps yet."));
      return;
    }
    const lines = (this.logs || []).filter((l) => l.step === s.id || l.after_step === s.id);
    const sig = [s.id, s.outcome, s.node, s.start, s.duration_ns, s.attempts, s.placements?.length, this.logs?.length].join("|");
    if (sig === this.detailsSig) return;
    this.detailsSig = sig;
    const { queue, exec } = stepTimes(s);
    const called = parseTime(s.called);
    const pos = parsePos(s.pos);
    const t0 = parseTime(this.model.run.started);
    /** @type {[string, any][]} */
    const rows = [
      ["Builtin", h("span", { class: "mono" }, s.builtin)],
      ["Outcome", h("span", { class: "status-" + s.outcome }, s.outcome)],
      ["Node", s.node || "–"],
      ["Placed because", s.reason || "–"],
      ["Attempts", s.attempts ? String(s.attempts) : "–"],
      ["Called", s.called ? fmtTime(s.called) + (called != null && t0 != null ? ` (${offset(called - t0)})` : "") : "–"],
    ];
    if (s.builtin === "sleep") {
      const dur = parseGoDuration(s.args?.duration);
      rows.push(["Sleeps", (s.args?.duration || "?") + (called != null && dur != null ? ", until " + new Date(called + dur).toLocaleString() : "")]);
    } else {
      rows.push(["Queue wait", queue == null ? "–" : fmtDur(queue) + (queue > 1e6 ? " (waiting for a node, a worker or resource units)" : "")]);
      rows.push(["Took", s.outcome === "pending" ? "under way" : fmtDur(exec ?? 0)]);
    }
    rows.push(["Position", pos ? h("button", { type: "button", class: "linkish mono", onclick: () => this.showLine(pos.file, pos.line) }, s.pos) : "–"]);
    const placements = s.placements?.length > 1
      ? [h("h3", {}, "Placements"), h("ol", { class: "step-placements" }, s.placements.map((/** @type {any} */ p) => h("li", {},
        h("strong", {}, p.node), ` at ${fmtTime(p.time)}`, p.reason ? ": " + p.reason : "", p.why ? h("span", { class: "muted" }, ` — placed again: ${p.why}`) : "")))]
      : [];
    const logList = this.logs == null ? h("p", { class: "muted" }, "Loading…")
      : lines.length ? h("ul", { class: "step-log" }, lines.map((l) => this.logItem(l)))
        : h("p", { class: "muted" }, "No log lines at this step.");
    const close = h("button", { type: "button", class: "close", "aria-label": "Close the step's details", onclick: () => this.select(null) }, "×");
    fill(this.detailsEl, h("section", { class: "details", "data-details": s.id, "aria-label": stepName(s) },
      h("h2", {}, "Step ", h("span", { class: "mono" }, s.id), " ", close),
      h("dl", { class: "head" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      ...placements,
      h("h3", {}, "Arguments"), value(s.args ?? null),
      s.outcome === "pending" ? null
        : s.error ? [h("h3", {}, "Error"), value((s.error.code ? s.error.code + ": " : "") + (s.error.message || JSON.stringify(s.error)))]
          : [h("h3", {}, "Result"), value(s.value ?? null)],
      h("h3", {}, "Log lines"), logList));
  }

  /** A log line as a list item. @param {any} l */
  logItem(l) {
    const { time, level, node, step, after_step, message, run, script, version, trace_id, span_id, attrs, pos, ...rest } = l;
    return h("li", { class: "level-" + level },
      h("span", { class: "mono muted" }, time ? new Date(time).toLocaleTimeString() : "–"), " ", h("strong", {}, level), " ",
      after_step ? h("span", { class: "muted" }, "(after) ") : null,
      h("span", { class: "mono" }, message, " ", Object.entries(rest).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")));
  }

  // --- the script's source ------------------------------------------------

  async loadScript() {
    let sc;
    try {
      sc = await api("/v1/runs/" + enc(this.id) + "/script", this.signal);
    } catch (e) {
      if (!this.signal.aborted) fill(this.sourceEl, h("p", { class: "muted" }, "Source not available: " + e));
      return;
    }
    if (this.signal.aborted) return;
    // The sources are in "sources" (file → source; "files" then lists the names), or in "files".
    const sources = sc?.sources || (sc?.files && !Array.isArray(sc.files) ? sc.files : null);
    if (!sources) {
      this.script = false;
      fill(this.sourceEl, h("p", { class: "muted" }, "Source not available."));
      return;
    }
    this.script = { ...sc, files: sources };
    const names = Object.keys(sources).sort((a, b) => (a === sc.main ? -1 : b === sc.main ? 1 : a < b ? -1 : 1));
    this.lines.clear();
    const files = names.map((name) => {
      const ol = h("ol", { class: "source mono", "aria-label": name });
      const items = String(sources[name]).split("\n").map((text, i) => {
        const li = h("li", { "data-line": String(i + 1) }, h("span", { class: "ln" }, String(i + 1)), h("code", {}, text || " "));
        this.lines.set(name + ":" + (i + 1), li);
        return li;
      });
      if (items.length > 1 && String(sources[name]).endsWith("\n")) items.pop().remove();
      ol.append(...items);
      return h("div", { class: "file" }, h("h3", { class: "mono" }, name), ol);
    });
    fill(this.sourceEl, h("p", { class: "muted" }, `${sc.name || this.model.run.script}`,
      sc.version ? `, version ${sc.version}` : "", sc.hash ? ` (${String(sc.hash).slice(0, 12)})` : "",
      ": marked lines made steps; pick one to see its step."), ...files);
    this.sourceEl.addEventListener("click", (e) => {
      const b = /** @type {HTMLElement} */ (e.target).closest("button.ln");
      if (b) this.lineClicked(/** @type {string} */ (b.getAttribute("data-key")));
    });
    this.marked = new Map();
    this.schedule("source");
  }

  /** Marks the lines that made steps (and the error's), and the selected step's. */
  markSource() {
    if (!this.script) return;
    const marked = this.marked || (this.marked = new Map());
    for (const [key, ids] of this.linesOfSteps()) {
      const li = this.lines.get(key);
      if (!li || marked.get(key) === ids.length) continue;
      marked.set(key, ids.length);
      const label = ids.length === 1 ? `line ${li.dataset.line}: step ${ids[0]}` : `line ${li.dataset.line}: ${ids.length} steps`;
      const count = ids.length === 1 ? "step " + ids[0] : ids.length + " steps";
      const num = li.querySelector("button.ln"), span = li.querySelector(".count");
      if (num && span) { // marked before: a live run's new step changes two texts
        num.setAttribute("aria-label", label);
        num.setAttribute("title", label);
        span.textContent = count;
        continue;
      }
      li.classList.add("has-step");
      /** @type {Element} */ (li.firstElementChild).replaceWith(h("button", { type: "button", class: "ln", "data-key": key, "aria-label": label, title: label }, li.dataset.line));
      li.append(h("span", { class: "count" }, count));
    }
    for (const li of this.sourceEl.querySelectorAll("li.selected, li.error-line")) li.classList.remove("selected", "error-line");
    if (this.errorPos) this.lines.get(this.errorPos.file + ":" + this.errorPos.line)?.classList.add("error-line");
    const s = this.selected ? this.model.steps.get(this.selected) : null;
    const p = parsePos(s?.pos);
    if (p) this.lines.get(p.file + ":" + p.line)?.classList.add("selected");
  }

  /** The steps each script line made (made when first needed after a new step). */
  linesOfSteps() {
    return (this.byLine ??= stepsByLine(this.steps || orderedSteps(this.model)));
  }

  /** A marked line was clicked: its step, or the next of its steps. @param {string} key */
  lineClicked(key) {
    const ids = this.linesOfSteps().get(key);
    if (!ids?.length) return;
    const i = this.selected ? ids.indexOf(this.selected) : -1;
    this.select(ids[(i + 1) % ids.length], "source");
  }

  /** Scrolls the source to step id's line. @param {string} id */
  revealLine(id) {
    const p = parsePos(this.model.steps.get(id)?.pos);
    if (p) this.scrollSource(p.file, p.line);
  }

  /** Shows a line of the script, marked. @param {string} file @param {number} line */
  showLine(file, line) {
    const li = this.scrollSource(file, line);
    if (!li) return;
    li.classList.add("flash");
    setTimeout(() => li.classList.remove("flash"), 1500);
    this.sourceEl.scrollIntoView({ block: "nearest" });
  }

  /** @param {string} file @param {number} line @returns {HTMLElement|undefined} */
  scrollSource(file, line) {
    const li = this.lines.get(file + ":" + line);
    if (!li) return;
    const sc = this.sourceEl;
    const y = li.offsetTop;
    if (y < sc.scrollTop || y + li.offsetHeight > sc.scrollTop + sc.clientHeight) sc.scrollTop = y - sc.clientHeight / 3;
    return li;
  }

  // --- log lines ----------------------------------------------------------

  /** Reads the run's log lines (again: at most one read at a time, the last asked for after). */
  async loadLogs() {
    if (this.loadingLogs) {
      this.logsAgain = true;
      return;
    }
    this.loadingLogs = true;
    try {
      const resp = await fetch("/v1/logs?run=" + enc(this.id), { headers: { Accept: "text/event-stream" }, signal: this.signal });
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      this.logs = parseEvents(await resp.text()).filter((e) => e.kind === "line").map((e) => JSON.parse(e.data));
      this.drawLogs();
      this.schedule("details");
    } catch (e) {
      if (!this.signal.aborted) fill(this.logsEl, h("p", { class: "muted" }, "Cannot read the log lines: " + e));
    } finally {
      this.loadingLogs = false;
    }
    if (this.logsAgain && !this.signal.aborted) {
      this.logsAgain = false;
      this.loadLogs();
    }
  }

  /** @param {number} [limit] */
  drawLogs(limit = LOG_LINES) {
    const lines = this.logs || [];
    if (!lines.length) {
      fill(this.logsEl, h("p", { class: "muted" }, "No log lines."));
      return;
    }
    const shown = lines.slice(0, limit);
    fill(this.logsEl, h("div", { class: "table-wrap" }, h("table", { class: "log" },
      h("thead", {}, h("tr", {}, ["Time", "Level", "Node", "Step", "Message"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, shown.map((l) => {
        const { time, level, node, step, after_step, message, run, script, version, trace_id, span_id, attrs, pos, ...rest } = l;
        const at = step || after_step;
        return h("tr", { class: "level-" + level },
          h("td", { class: "mono" }, time ? new Date(time).toLocaleTimeString() : "–"), h("td", {}, level), h("td", {}, node),
          h("td", {}, at ? h("button", { type: "button", class: "linkish mono", onclick: () => this.select(at) }, (after_step ? "after " : "") + at) : "–"),
          h("td", { class: "mono" }, message, " ", Object.entries(rest).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")));
      })))),
    lines.length > shown.length ? h("button", { type: "button", onclick: () => this.drawLogs(Infinity) }, `Show all ${lines.length} lines`) : null);
  }

  // --- live ---------------------------------------------------------------

  /**
   * Follows the run's journal: each event is applied once (an id not past
   * the last applied is a reconnected stream's repeat) and the page redrawn
   * at the next frame. The browser reconnects a broken stream with
   * Last-Event-ID; a stream the browser gave up on is opened again.
   */
  follow() {
    if (this.signal.aborted || this.model.ended) return;
    this.es?.close();
    // A stream opened again goes on after the last entry applied (after=,
    // as Last-Event-ID does for the browser's own reconnections).
    const after = this.model.lastId ? "?after=" + this.model.lastId : "";
    const es = new EventSource("/v1/runs/" + enc(this.id) + "/events" + after);
    this.es = es;
    this.fetchNodes();
    const onEvent = (/** @type {MessageEvent} */ e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return;
      }
      const changed = applyEvent(this.model, e.type, data, Number(e.lastEventId));
      if (changed === "step") this.schedule("timeline", "details", "later");
      else if (changed === "run") this.schedule("head");
      this.overdue();
      if (e.type === "end") {
        es.close();
        this.es = null;
        clearInterval(this.ticker);
        this.ticker = 0;
        this.schedule("timeline", "steps", "source");
        this.refresh();
        this.loadLogs();
      }
    };
    for (const kind of ["start", "call", "result", "place", "tag", "patch", "version", "cancel", "end"]) es.addEventListener(kind, onEvent);
    es.addEventListener("error", (e) => {
      if (this.signal.aborted || this.es !== es) return;
      const sent = /** @type {MessageEvent} */ (e).data; // the node's own "error" event (shutting down)
      let why = "";
      try {
        why = sent ? JSON.parse(sent).error?.message || "" : "";
      } catch { /* not JSON */ }
      connection("reconnecting to the run's live stream…" + (why ? " (" + why + ")" : ""));
      this.streamDown(true);
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error): open it again; applyEvent skips what was applied.
        setTimeout(() => { if (this.es === es) this.follow(); }, 2000);
      }
    });
    es.addEventListener("open", () => {
      connection();
      this.streamDown(false);
    });
    if (!this.ticker) this.ticker = setInterval(() => { // pending bars grow to now, by GROW_MS steps
      if (!document.hidden) this.schedule("timeline");
    }, GROW_MS + 100);
  }

  async fetchNodes() {
    try {
      const n = await api("/v1/nodes", this.signal);
      if (n?.nodes) this.nodes = n.nodes;
    } catch { /* keep the last list */ }
  }

  /** Shows (or hides) that this node's stream broke, with links to the other nodes' pages of the run. @param {boolean} down */
  streamDown(down) {
    this.downEl.hidden = !down;
    if (!down) return;
    const others = this.nodes.filter((n) => n.http && !n.http.startsWith(location.origin));
    fill(this.downEl, "The live stream of this run broke: this node may be down. ",
      others.length ? ["Open the run on another node: ", ...others.flatMap((n, i) => [i ? ", " : "",
        h("a", { href: n.http.replace(/\/$/, "") + "/runs/" + enc(this.id) }, n.name)])] : "It reconnects by itself.");
  }
}
