// The runs page: filters kept in the URL, the newest matching runs, live
// until paused.

import { attrParams } from "./lib.js";
import { h, main, api, navigate, fmtTime, fmtDur, attrsText, every } from "./ui.js";

/** The runs page. @param {AbortSignal} signal */
export async function runsPage(signal) {
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
      list = (await api("/v1/runs?" + api_q.toString(), signal))?.runs || [];
    } catch (e) {
      if (!signal.aborted) body.replaceChildren(h("p", { class: "empty" }, "Cannot list runs: " + e));
      return;
    }
    if (signal.aborted) return;
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
      h("tbody", {}, list.map((/** @type {any} */ r) => h("tr", {},
        h("td", { class: "mono" }, h("a", { href: "/runs/" + encodeURIComponent(r.id) }, r.id)),
        h("td", {}, r.script),
        h("td", { class: "status-" + r.status }, r.status),
        h("td", {}, fmtTime(r.started)),
        h("td", {}, r.ended ? fmtDur((new Date(r.ended).getTime() - new Date(r.started).getTime()) * 1e6) : "–"),
        h("td", {}, String(r.step_count ?? 0)),
        h("td", { class: "mono wide" }, attrsText(r.attrs)),
        h("td", { class: "wide" }, r.coordinator))))));
  };
  if (paused) await draw();
  else every(draw, 2000, signal);
}
