// The page of one run: header, outcome, steps, log lines; live over the
// run's journal events while it runs; cancel.

import { parseEvents } from "./lib.js";
import { h, main, api, post, connection, confirmAction, fmtTime, fmtDur, attrsText, value } from "./ui.js";

/** The page of run id. @param {string} id @param {AbortSignal} signal */
export async function runPage(id, signal) {
  /** @type {EventSource|null} */
  let live = null;
  signal.addEventListener("abort", () => live?.close(), { once: true });
  const draw = async () => {
    const d = await show(id, signal);
    if (d?.status === "running" && !live && !signal.aborted) live = follow(id, signal, draw);
  };
  await draw();
}

/** Draws run id's page; returns its record (null if unknown). @param {string} id @param {AbortSignal} signal */
async function show(id, signal) {
  let d;
  try {
    d = await api("/v1/runs/" + encodeURIComponent(id), signal);
  } catch (e) {
    if (!signal.aborted) main().replaceChildren(h("p", { class: "empty" }, "Cannot read run " + id + ": " + e));
    return null;
  }
  if (signal.aborted) return null;
  if (!d) {
    main().replaceChildren(h("h1", {}, "No such run"),
      h("p", {}, "The cluster knows no run ", h("span", { class: "mono" }, id), ": it may have expired, or the id is mistyped. ",
        h("a", { href: "/" }, "Back to the runs")));
    return null;
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
    ? h("p", { class: "actions" }, h("button", { type: "button", onclick: () => confirmCancel(d.id, () => show(id, signal)) }, "Cancel run…"))
    : null;
  main().replaceChildren(h("p", {}, h("a", { href: "/" }, "← Runs")), h("h1", { class: "mono" }, d.id), head, actions, ...outcome,
    h("h2", {}, "Steps"), steps, h("h2", {}, "Log"), logs);
  try {
    const resp = await fetch("/v1/logs?run=" + encodeURIComponent(id), { headers: { Accept: "text/event-stream" }, signal });
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
    if (!signal.aborted) logs.replaceChildren(h("p", { class: "muted" }, "Cannot read the log lines: " + e));
  }
  return d;
}

/**
 * Follows run id's journal (GET /v1/runs/{id}/events) and calls redraw as
 * entries come, until the run ends or signal aborts; the browser reconnects
 * a broken stream with Last-Event-ID, so no entry is lost.
 * @param {string} id @param {AbortSignal} signal @param {() => Promise<void>} redraw
 */
function follow(id, signal, redraw) {
  const es = new EventSource("/v1/runs/" + encodeURIComponent(id) + "/events");
  let pending = 0;
  const soon = () => {
    if (pending) return;
    pending = window.setTimeout(() => { pending = 0; if (!signal.aborted) show(id, signal); }, 150);
  };
  for (const kind of ["call", "result", "place", "tag", "patch", "version", "cancel"]) es.addEventListener(kind, soon);
  es.addEventListener("end", () => {
    es.close();
    window.clearTimeout(pending);
    if (!signal.aborted) redraw(); // the run as it ended
  });
  es.onerror = () => connection(es.readyState === EventSource.CLOSED ? "the run's live stream closed" : "reconnecting to the run's live stream");
  es.onopen = () => connection();
  return es;
}

/** Asks for a reason, then cancels run id. @param {string} id @param {() => void} done */
function confirmCancel(id, done) {
  confirmAction({
    label: "Cancel run " + id,
    text: ["Cancel run ", h("span", { class: "mono" }, id), "? It stops where it is; what it journaled stays."],
    fields: [h("label", {}, "Reason ", h("input", { name: "reason", required: true, placeholder: "why, e.g. customer asked" }))],
    yes: "Cancel the run", no: "Keep it running",
    act: async (form) => {
      const reason = /** @type {HTMLInputElement} */ (form.elements.namedItem("reason")).value;
      try {
        await post("/v1/runs/" + encodeURIComponent(id) + "/cancel", { by: "panel", reason });
      } catch (e) {
        throw new Error("Not cancelled: " + /** @type {Error} */ (e).message);
      }
      done();
    },
  });
}
