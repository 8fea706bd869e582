// The Drover control panel: a page per route, drawn from the node's JSON
// API. Every value from the cluster goes into the page as text (h() makes
// text nodes of strings): a run's result, a log line or an attribute that
// holds HTML shows as HTML source, never runs.

import { attrParams, parseEvents } from "./lib.js";

/** @param {string} tag @param {Record<string, any>} [attrs] @param {...any} children @returns {HTMLElement} */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => /** @type {HTMLElement} */ (document.getElementById("main"));
const conn = () => /** @type {HTMLElement} */ (document.getElementById("conn"));

/** Marks the node reachable or not. @param {string} [problem] */
function connection(problem) {
  conn().textContent = problem ? "node unreachable: " + problem : "";
  conn().classList.toggle("down", !!problem);
}

/** GETs a JSON answer of the API; null for a 404. @param {string} url */
async function api(url) {
  let resp;
  try {
    resp = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (e) {
    connection(String(e));
    throw e;
  }
  connection();
  if (resp.status === 404) return null;
  const body = await resp.json();
  if (!resp.ok) throw new Error(body?.error?.message || `HTTP ${resp.status}`);
  return body;
}

const fmtTime = (/** @type {string} */ t) => (t ? new Date(t).toLocaleString() : "–");
function fmtDur(/** @type {number} */ ns) {
  if (ns == null) return "–";
  const ms = ns / 1e6;
  if (ms < 1) return (ns / 1e3).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(1) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}
const attrsText = (/** @type {Record<string,string>|undefined} */ a) =>
  Object.entries(a || {}).map(([k, v]) => `${k}=${v}`).join(" ");

// ---- runs list -----------------------------------------------------------

let timer = 0;
/** @type {EventSource | null} */
let live = null; // the open run's journal events, while it is on screen

/** The runs page: filters from the URL, the list, live until paused. */
async function runsPage() {
  const q = new URLSearchParams(location.search);
  const paused = q.get("paused") === "1";
  const form = h("form", { class: "filters", role: "search", onsubmit: (/** @type {Event} */ e) => {
      e.preventDefault();
      const fd = new FormData(/** @type {HTMLFormElement} */ (e.target));
      const next = new URLSearchParams();
      for (const a of attrParams(String(fd.get("attr") || ""))) next.append("attr", a);
      for (const k of ["status", "script", "since"]) if (fd.get(k)) next.set(k, String(fd.get(k)));
      navigate("/?" + next.toString());
    } },
    h("label", {}, "Attributes", h("input", { name: "attr", placeholder: "customer=acme", value: q.getAll("attr").join(" ") })),
    h("label", {}, "Status", h("select", { name: "status" },
      ["", "running", "completed", "failed", "cancelled", "blocked"].map((s) =>
        h("option", { value: s, selected: q.get("status") === s }, s || "any")))),
    h("label", {}, "Script", h("input", { name: "script", value: q.get("script") || "" })),
    h("label", {}, "Since", h("select", { name: "since" },
      ["", "15m", "1h", "24h", "168h"].map((s) => h("option", { value: s, selected: (q.get("since") || "") === s }, s || "any time")))),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", "aria-pressed": paused, onclick: () => {
      const next = new URLSearchParams(location.search);
      paused ? next.delete("paused") : next.set("paused", "1");
      navigate("/?" + next.toString(), true);
    } }, paused ? "Resume live" : "Pause"));
  const counts = h("div", { class: "counts", "aria-live": "polite" });
  const body = h("div", { class: "table-wrap" });
  main().replaceChildren(h("h1", {}, "Runs"), form, counts, body);

  const draw = async () => {
    const api_q = new URLSearchParams(q);
    api_q.delete("paused");
    api_q.set("limit", "100");
    let list;
    try {
      list = (await api("/v1/runs?" + api_q.toString()))?.runs || [];
    } catch (e) {
      body.replaceChildren(h("p", { class: "empty" }, "Cannot list runs: " + e));
      return;
    }
    /** @type {Record<string, number>} */
    const by = {};
    for (const r of list) by[r.status] = (by[r.status] || 0) + 1;
    counts.replaceChildren(...Object.entries(by).map(([s, n]) => h("span", { class: "status-" + s }, `${s} ${n}`)));
    if (!list.length) {
      body.replaceChildren(h("p", { class: "empty" }, "No run matches these filters."));
      return;
    }
    body.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["Run", "Script", "Status", "Started", "Took", "Steps", "Attributes", "Coordinator"].map((c, i) =>
        h("th", { scope: "col", class: i >= 6 ? "wide" : null }, c)))),
      h("tbody", {}, list.map((r) => h("tr", {},
        h("td", { class: "mono" }, h("a", { href: "/runs/" + encodeURIComponent(r.id) }, r.id)),
        h("td", {}, r.script),
        h("td", { class: "status-" + r.status }, r.status),
        h("td", {}, fmtTime(r.started)),
        h("td", {}, r.ended ? fmtDur((new Date(r.ended).getTime() - new Date(r.started).getTime()) * 1e6) : "–"),
        h("td", {}, String(r.step_count ?? 0)),
        h("td", { class: "mono wide" }, attrsText(r.attrs)),
        h("td", { class: "wide" }, r.coordinator))))));
  };
  await draw();
  if (!paused) timer = window.setInterval(draw, 2000);
}

// ---- one run -------------------------------------------------------------

const SHOWN = 10000; // characters of a value shown before "show all"

/** A value, cut to SHOWN characters with a button to show all. @param {any} v */
function value(v) {
  const text = typeof v === "string" ? v : JSON.stringify(v, null, 2);
  const pre = h("pre", { class: "mono" }, text.length > SHOWN ? text.slice(0, SHOWN) + "…" : text);
  if (text.length <= SHOWN) return pre;
  const btn = h("button", { type: "button", onclick: () => { pre.textContent = text; btn.remove(); } }, `Show all ${text.length} characters`);
  return h("div", {}, pre, btn);
}

/** The page of run id: header, steps, log lines. @param {string} id */
async function runPage(id) {
  let d;
  try {
    d = await api("/v1/runs/" + encodeURIComponent(id));
  } catch (e) {
    main().replaceChildren(h("p", { class: "empty" }, "Cannot read run " + id + ": " + e));
    return;
  }
  if (!d) {
    main().replaceChildren(h("h1", {}, "No such run"),
      h("p", {}, "The cluster knows no run ", h("span", { class: "mono" }, id), ": it may have expired, or the id is mistyped. ",
        h("a", { href: "/" }, "Back to the runs")));
    return;
  }
  const head = h("dl", { class: "head" },
    ...[["Run", d.id], ["Script", `${d.script} (version ${(d.hash || "").slice(0, 12)})`],
      ["Status", d.status], ["Coordinator", d.coordinator], ["Trace", d.trace_id || "–"],
      ["Started", fmtTime(d.started)], ["Ended", d.ended ? fmtTime(d.ended) : "–"],
      ["Attributes", attrsText(d.attrs) || "–"]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "Status" ? "status-" + v : null }, v)]));
  const outcome = d.error
    ? [h("h2", {}, "Error"), value(d.error.message + (d.error.backtrace ? "\n\n" + d.error.backtrace : ""))]
    : d.status === "completed" ? [h("h2", {}, "Result"), value(d.result ?? null)] : [];
  const steps = (d.steps || []).length
    ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Step", "Builtin", "Node", "Start", "Took", "Outcome", "Position", "Placed because"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, d.steps.map((/** @type {any} */ s) => h("tr", {},
        h("td", { class: "mono" }, s.id), h("td", {}, s.builtin), h("td", {}, s.node || "–"),
        h("td", {}, s.start ? "+" + fmtDur((new Date(s.start).getTime() - new Date(d.started).getTime()) * 1e6) : "–"),
        h("td", {}, s.outcome === "pending" ? "–" : fmtDur(s.duration_ns)),
        h("td", {}, s.outcome + (s.attempts > 1 ? ` (${s.attempts} attempts)` : "")),
        h("td", { class: "mono" }, s.pos || "–"), h("td", {}, s.reason || "–"))))))
    : h("p", { class: "muted" }, "No steps.");
  const logs = h("div", {}, h("p", { class: "muted" }, "Loading log lines…"));
  const actions = d.status === "running" || d.status === "blocked"
    ? h("p", { class: "actions" }, h("button", { type: "button", onclick: () => confirmCancel(d.id) }, "Cancel run…"))
    : null;
  main().replaceChildren(h("p", {}, h("a", { href: "/" }, "← Runs")), h("h1", { class: "mono" }, d.id), head, actions, ...outcome,
    h("h2", {}, "Steps"), steps, h("h2", {}, "Log"), logs);
  if (d.status === "running" && !live) follow(id);
  try {
    const resp = await fetch("/v1/logs?run=" + encodeURIComponent(id), { headers: { Accept: "text/event-stream" } });
    const lines = parseEvents(await resp.text()).filter((e) => e.kind === "line").map((e) => JSON.parse(e.data));
    logs.replaceChildren(lines.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Time", "Level", "Node", "Step", "Message"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, lines.map((l) => {
        const { time, level, node, step, after_step, message, run, script, version, trace_id, span_id, attrs, ...rest } = l;
        return h("tr", { class: "level-" + level },
          h("td", { class: "mono" }, time ? new Date(time).toLocaleTimeString() : "–"), h("td", {}, level), h("td", {}, node),
          h("td", {}, step || (after_step ? "after " + after_step : "–")),
          h("td", { class: "mono" }, message, " ", Object.entries(rest).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")));
      })))) : h("p", { class: "muted" }, "No log lines."));
  } catch (e) {
    logs.replaceChildren(h("p", { class: "muted" }, "Cannot read the log lines: " + e));
  }
}

/** Follows run id's journal (GET /v1/runs/{id}/events) and draws the page
 * again as entries come, until the run ends; the browser reconnects a
 * broken stream with Last-Event-ID, so no entry is lost. @param {string} id */
function follow(id) {
  const es = new EventSource("/v1/runs/" + encodeURIComponent(id) + "/events");
  live = es;
  let pending = 0;
  const redraw = () => {
    if (pending) return;
    pending = window.setTimeout(() => { pending = 0; if (live === es) runPage(id); }, 150);
  };
  for (const kind of ["call", "result", "place", "tag", "patch", "version", "cancel"]) es.addEventListener(kind, redraw);
  es.addEventListener("end", () => {
    es.close();
    if (live !== es) return; // the page has moved on
    live = null;
    window.clearTimeout(pending);
    runPage(id); // the run as it ended
  });
  es.onerror = () => connection(es.readyState === EventSource.CLOSED ? "the run's live stream closed" : "reconnecting to the run's live stream");
  es.onopen = () => connection();
}

/** Asks for a reason, then cancels run id (POST /v1/runs/{id}/cancel). @param {string} id */
function confirmCancel(id) {
  const reason = /** @type {HTMLInputElement} */ (h("input", { name: "reason", required: true, placeholder: "why, e.g. customer asked" }));
  const problem = h("p", { class: "status-failed", role: "alert" });
  const dialog = /** @type {HTMLDialogElement} */ (h("dialog", { "aria-label": "Cancel run " + id },
    h("form", { method: "dialog", onsubmit: async (/** @type {SubmitEvent} */ e) => {
        if (/** @type {HTMLButtonElement} */ (e.submitter)?.value !== "cancel") return; // "Keep it running"
        e.preventDefault();
        const resp = await fetch("/v1/runs/" + encodeURIComponent(id) + "/cancel", {
          method: "POST", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ by: "panel", reason: reason.value }) });
        if (!resp.ok) {
          problem.textContent = "Not cancelled: " + ((await resp.json().catch(() => null))?.error?.message || `HTTP ${resp.status}`);
          return;
        }
        dialog.close();
        dialog.remove();
        runPage(id);
      } },
      h("p", {}, "Cancel run ", h("span", { class: "mono" }, id), "? It stops where it is; what it journaled stays."),
      h("label", {}, "Reason ", reason), problem,
      h("p", {}, h("button", { type: "submit", value: "cancel" }, "Cancel the run"), " ",
        h("button", { type: "submit", value: "keep", formnovalidate: true }, "Keep it running")))));
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  reason.focus();
}

// ---- nodes ---------------------------------------------------------------

/** The nodes page: each live node's meters, resources, breakers and integrations, every 2 s. */
async function nodesPage() {
  const body = h("div", {});
  main().replaceChildren(h("h1", {}, "Nodes"), body);
  const pct = (/** @type {number} */ x) => (x == null ? "–" : (100 * x).toFixed(0) + " %");
  const gib = (/** @type {number} */ b) => (b / (1 << 30)).toFixed(1) + " GiB";
  const draw = async () => {
    let nodes;
    try {
      nodes = (await api("/v1/nodes"))?.nodes || [];
    } catch (e) {
      body.replaceChildren(h("p", { class: "empty" }, "Cannot read the nodes: " + e));
      return;
    }
    body.replaceChildren(...nodes.map((/** @type {any} */ n) => {
      const r = n.reading || {};
      const res = Object.entries(r.resources || {});
      const bad = (n.integrations || []).filter((/** @type {any} */ i) => i.state === "failing");
      return h("section", { class: "node", "aria-label": "node " + n.name },
        h("h2", {}, n.name),
        h("dl", { class: "head" },
          ...[["CPU", `${pct(r.cpu)} of ${r.cores ?? "?"} cores`], ["Memory", r.mem_total ? `${gib(r.mem_used)} of ${gib(r.mem_total)}` : "–"],
            ["Steps in flight", String(r.in_flight_total ?? 0)], ["Waiting for units", String(r.waiting ?? 0)],
            ["Started", fmtTime(n.started)], ["API", n.http || "–"]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        res.length ? h("div", { class: "table-wrap" }, h("table", {},
          h("thead", {}, h("tr", {}, ["Resource", "Kind", "Scope", "Free", "Capacity", "Waiting"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, res.map(([name, st]) => h("tr", {}, h("td", { class: "mono" }, name), h("td", {}, st.kind), h("td", {}, st.scope),
            h("td", {}, Number(st.free).toFixed(1)), h("td", {}, String(st.capacity)), h("td", {}, String(st.waiting)))))))
          : h("p", { class: "muted" }, "No custom resources."),
        (n.breakers || []).length ? h("p", {}, "Breakers: ", (n.breakers || []).map((/** @type {any} */ b) => `${b.target} ${b.state} (${b.failures} failures)`).join("; ")) : null,
        bad.length ? h("p", { class: "status-failed" }, "Failing integrations: ", bad.map((/** @type {any} */ i) => `${i.name}: ${i.error}`).join("; ")) : null);
    }));
  };
  await draw();
  timer = window.setInterval(draw, 2000);
}

// ---- routing -------------------------------------------------------------

/** Shows path, adding it to the history (or replacing the entry). @param {string} path @param {boolean} [replace] */
function navigate(path, replace) {
  replace ? history.replaceState(null, "", path) : history.pushState(null, "", path);
  route();
}

function route() {
  window.clearInterval(timer);
  live?.close();
  live = null;
  const m = location.pathname.match(/^\/runs\/([^/]+)$/);
  if (m) return runPage(decodeURIComponent(m[1]));
  if (location.pathname === "/nodes") return nodesPage();
  return runsPage();
}

addEventListener("popstate", route);
document.addEventListener("click", (e) => {
  const a = /** @type {HTMLElement} */ (e.target).closest?.("a");
  if (!a || a.origin !== location.origin || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
});
route();
