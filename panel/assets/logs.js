// The live logs page: a tail of the cluster's run log lines (GET /v1/logs
// with follow=true, Server-Sent Events), filtered by attributes, script,
// node and level kept in the URL; Pause holds lines without closing the
// stream; the lines the node dropped are counted where they show.

import { attrParams } from "./lib.js";
import { h, main, connection, navigate } from "./ui.js";

/** Lines kept on screen: past it the oldest leave the page. */
export const KEEP = 5000;
/** Lines held while paused: past it the oldest held are dropped, and counted. */
export const HOLD = 5000;

/**
 * The lines of a tail between the stream and the page: those to draw next,
 * those held while paused (up to hold: past it the oldest are dropped), and
 * the counts the page shows. No DOM: panel/logs_test.mjs tests it.
 */
export class Tail {
  /** @param {number} [keep] lines on screen @param {number} [hold] lines held while paused */
  constructor(keep = KEEP, hold = HOLD) {
    this.keep = keep;
    this.hold = hold;
    /** @type {any[]} lines to draw at the next flush */
    this.pending = [];
    /** @type {any[]} lines held while paused; may pass hold by a batch until trimmed */
    this.buf = [];
    this.paused = false;
    /** lines received from the stream */
    this.received = 0;
    /** lines the node said it dropped (dropped events) */
    this.droppedByNode = 0;
    this.trimmed = 0; // held lines dropped past hold
  }

  /** Takes a line: true when it is to be drawn (not paused). @param {any} line */
  add(line) {
    this.received++;
    if (this.paused) {
      this.buf.push(line);
      if (this.buf.length > this.hold + 512) this.trim(); // in batches: shift() per line is quadratic
      return false;
    }
    this.pending.push(line);
    if (this.pending.length > 2 * this.keep) this.pending = this.pending.slice(-this.keep); // only keep would show
    return true;
  }

  /** Counts lines the node dropped. @param {number} n */
  dropped(n) {
    this.droppedByNode += Number(n) || 0;
  }

  /** Drops the held lines past hold, counting them. */
  trim() {
    if (this.buf.length <= this.hold) return;
    this.trimmed += this.buf.length - this.hold;
    this.buf = this.buf.slice(-this.hold);
  }

  /** Lines held now (at most hold). */
  get held() {
    return Math.min(this.buf.length, this.hold);
  }

  /** Lines dropped while paused because more than hold came. */
  get droppedPaused() {
    return this.trimmed + Math.max(0, this.buf.length - this.hold);
  }

  /** Stops drawing lines; they are held. */
  pause() {
    this.paused = true;
  }

  /** Draws again: the held lines (at most hold) go to the next flush. */
  resume() {
    this.trim();
    this.paused = false;
    this.pending.push(...this.buf);
    this.buf = [];
  }

  /** The lines to draw now, at most keep (the newest), and none after. */
  take() {
    const batch = this.pending.length > this.keep ? this.pending.slice(-this.keep) : this.pending;
    this.pending = [];
    return batch;
  }
}

/** Fields of a line shown in their own places rather than among its extra fields. */
const OWN = new Set(["time", "level", "node", "run", "script", "message", "attrs", "pos", "version", "trace_id", "span_id"]);

/**
 * The live logs page.
 * @param {AbortSignal} signal aborts when the user leaves the page: the stream and timers stop
 */
export function logsPage(signal) {
  const m = main();
  m.dataset.page = "logs";
  delete m.dataset.ready;
  const q = new URLSearchParams(location.search);
  const attrs = q.getAll("attr"), script = q.get("script") || "", node = q.get("node") || "";
  const level = q.get("level") || "", since = q.get("since") || "";

  const form = h("form", { class: "filters", role: "search", onsubmit: (/** @type {Event} */ e) => {
      e.preventDefault();
      const fd = new FormData(/** @type {HTMLFormElement} */ (e.target));
      const next = new URLSearchParams();
      for (const a of attrParams(String(fd.get("attr") || ""))) next.append("attr", a);
      for (const k of ["script", "node", "level", "since"]) if (fd.get(k)) next.set(k, String(fd.get(k)).trim());
      navigate("/logs?" + next.toString());
    } },
    h("label", {}, "Attributes", h("input", { name: "attr", placeholder: "customer=acme", value: attrs.join(" ") })),
    h("label", {}, "Script", h("input", { name: "script", value: script })),
    h("label", {}, "Node", h("input", { name: "node", value: node, size: 8 })),
    h("label", {}, "Level", h("select", { name: "level" },
      [["", "any"], ["info", "info and above"], ["warn", "warn and above"], ["error", "error"]].map(([v, t]) =>
        h("option", { value: v, selected: level === v }, t)))),
    h("label", {}, "Read back", h("select", { name: "since" },
      [["", "live only"], ["15m", "last 15 min"], ["1h", "last hour"]].map(([v, t]) => h("option", { value: v, selected: since === v }, t)))),
    h("button", { type: "submit" }, "Follow"));
  const what = describe(attrs, script, node, level);
  const body = h("div", {});
  m.replaceChildren(h("h1", {}, "Live logs"), form, body);

  const params = new URLSearchParams();
  for (const a of attrs) params.append("attr", a);
  for (const [k, v] of [["script", script], ["node", node], ["level", level], ["since", since]]) if (v) params.set(k, v);
  params.set("follow", "true");

  const tail = new Tail();
  let shown = 0;
  /** @type {EventSource|null} */
  let es = null;
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let flushTimer, retryTimer;

  const state = h("span", { class: "tail-state", role: "status" }, "Connecting…");
  const count = h("span", {});
  const heldText = h("span", { class: "held" });
  const dropped = h("strong", { class: "dropped", "data-dropped": "0" }, "Dropped: 0");
  const pause = h("button", { type: "button", "aria-pressed": "false", onclick: () => (tail.paused ? resume() : hold()) }, "Pause");
  const clear = h("button", { type: "button", onclick: () => { list.replaceChildren(); shown = 0; drawBar(); } }, "Clear");
  const bar = h("div", { class: "tailbar" }, state, count, heldText, dropped);
  const empty = h("p", { class: "empty" }, `No line yet matches: ${what}. Lines appear here as runs write them.`);
  const list = h("ol", { class: "loglines", "aria-label": "log lines, oldest first" });
  const box = h("div", { class: "logbox", tabindex: "0", "aria-label": "log lines" }, empty, list);

  let link = "Connecting…"; // the stream's state: Following live, Reconnecting…
  const setLink = (/** @type {string} */ t) => { link = t; drawBar(); };
  const drawBar = () => {
    barTimer = undefined;
    const { paused, held, droppedByNode, droppedPaused, received } = tail;
    state.textContent = paused && link === "Following live" ? "Paused: still receiving" : link;
    count.textContent = `${shown} line${shown === 1 ? "" : "s"} shown` + (received > shown ? ` (${received} received)` : "");
    heldText.textContent = paused ? `${held} held` + (droppedPaused ? `, ${droppedPaused} dropped while paused` : "") : "";
    const n = droppedByNode + droppedPaused;
    dropped.textContent = `Dropped: ${n}` + (n ? ` (${droppedByNode} by the node${droppedPaused ? `, ${droppedPaused} while paused` : ""})` : "");
    dropped.dataset.dropped = String(n);
    dropped.classList.toggle("some", n > 0);
    pause.textContent = paused ? `Resume (${held} held)` : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
  };
  /** @type {ReturnType<typeof setTimeout>|undefined} */
  let barTimer;
  const drawBarSoon = () => { if (barTimer === undefined) barTimer = setTimeout(drawBar, 100); };

  const flush = () => {
    flushTimer = undefined;
    if (signal.aborted) return;
    const batch = tail.take();
    if (!batch.length) return;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const frag = document.createDocumentFragment();
    for (const l of batch) frag.append(lineItem(l));
    empty.remove();
    list.append(frag);
    shown += batch.length;
    while (shown > KEEP && list.firstChild) list.firstChild.remove(), shown--;
    if (atBottom) box.scrollTop = box.scrollHeight;
    drawBar();
  };
  const schedule = () => { if (flushTimer === undefined) flushTimer = setTimeout(flush, 100); };

  /** @param {any} line */
  const onLine = (line) => (tail.add(line) ? schedule() : drawBarSoon());
  const hold = () => { tail.pause(); drawBar(); };
  const resume = () => { tail.resume(); flush(); drawBar(); };

  const ready = () => { m.dataset.ready = "1"; };
  /** Says why no tail is shown, with the node's own words. @param {string} message @param {boolean} refused */
  const guidance = (message, refused) => {
    body.replaceChildren(h("div", { class: "guidance", role: "alert" },
      refused ? h("p", {}, "Give an attribute such as customer=acme, a script or a node to follow: a tail of every run of the cluster at once is not offered.") : null,
      h("p", { class: refused ? "muted" : "status-failed" }, message)));
    ready();
  };

  /** Asks the API why it refused the stream (an EventSource cannot read the answer). */
  const explain = async () => {
    const ctl = new AbortController();
    const stop = () => ctl.abort();
    signal.addEventListener("abort", stop, { once: true });
    try {
      const resp = await fetch("/v1/logs?" + params.toString(), { headers: { Accept: "application/json" }, signal: ctl.signal });
      if (resp.ok) { // it serves now: follow it
        ctl.abort();
        retryTimer = setTimeout(open, 1000);
        return;
      }
      connection();
      const answer = await resp.json().catch(() => null);
      if (resp.status === 404 && answer?.error?.code === "not_found") guidance("Live logs are not available from this node.", false);
      else guidance(answer?.error?.message || `HTTP ${resp.status}`, resp.status === 400);
    } catch (e) {
      if (signal.aborted) return;
      connection(String(e));
      setLink("Reconnecting…");
      if (!opened) body.replaceChildren(h("p", { class: "empty" }, "Cannot reach the node: " + e + ". Trying again…"));
      retryTimer = setTimeout(open, 2000);
    } finally {
      signal.removeEventListener("abort", stop);
    }
  };

  let opened = false;
  const open = () => {
    if (signal.aborted) return;
    const p = new URLSearchParams(params);
    if (opened) p.delete("since"); // read back once; a reconnect follows from now
    const src = new EventSource("/v1/logs?" + p.toString());
    es = src;
    src.addEventListener("open", () => {
      connection();
      if (!opened) body.replaceChildren(h("div", { class: "tailbar-wrap" }, bar, h("div", { class: "tail-actions" }, pause, clear)), box);
      opened = true;
      setLink("Following live");
      ready();
    });
    src.addEventListener("line", (e) => {
      try {
        onLine(JSON.parse(/** @type {MessageEvent} */ (e).data));
      } catch { /* a line that is not JSON is not one */ }
    });
    src.addEventListener("dropped", (e) => {
      try {
        tail.dropped(JSON.parse(/** @type {MessageEvent} */ (e).data).dropped);
      } catch { return; }
      drawBarSoon();
    });
    src.addEventListener("error", () => {
      if (signal.aborted) return;
      const refused = src.readyState === EventSource.CLOSED;
      src.close();
      if (refused && !opened) return void explain();
      // A broken stream: open again ourselves, without reading back twice.
      setLink("Reconnecting…");
      connection("the log stream broke; reconnecting");
      retryTimer = setTimeout(open, 2000);
    });
  };

  signal.addEventListener("abort", () => {
    es?.close();
    clearTimeout(flushTimer);
    clearTimeout(retryTimer);
    clearTimeout(barTimer);
  }, { once: true });

  if (!attrs.length && !script && !node) explain(); // the API's own refusal, as guidance
  else open();
}

/**
 * The filters in words, for the empty state.
 * @param {string[]} attrs @param {string} script @param {string} node @param {string} level
 */
function describe(attrs, script, node, level) {
  const parts = [...attrs];
  if (script) parts.push("script " + script);
  if (node) parts.push("node " + node);
  if (level) parts.push(level === "error" ? "level error" : `level ${level} and above`);
  return parts.join(", ") || "everything";
}

/** @param {string} t */
function clock(t) {
  const d = new Date(t);
  if (isNaN(d.getTime())) return t || "";
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

/**
 * One line of the tail: time, level, node, script, its run (a link), the
 * message and its fields, all as text.
 * @param {any} l
 */
function lineItem(l) {
  const extra = Object.entries(l || {}).filter(([k]) => !OWN.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  const attrs = Object.entries(l.attrs || {}).map(([k, v]) => `${k}=${v}`);
  const lvl = String(l.level || "");
  return h("li", { class: "logline level-" + lvl.replace(/[^a-z]/g, ""), "data-run": l.run || null },
    h("time", { datetime: l.time, title: l.time }, clock(l.time)),
    h("span", { class: "lvl" }, lvl.toUpperCase()),
    h("span", { class: "where" }, [l.node, l.script].filter(Boolean).join(" · ")),
    l.run ? h("a", { href: "/runs/" + encodeURIComponent(l.run), class: "run", title: "run " + l.run, "aria-label": "run " + l.run }, "…" + String(l.run).slice(-8)) : h("span", {}),
    h("span", { class: "msg" }, String(l.message ?? "")),
    attrs.length || extra.length || l.pos ? h("span", { class: "fields" }, [...attrs, ...extra, l.pos ? "at " + l.pos : ""].filter(Boolean).join("  ")) : null);
}
