// The runs page: filters kept in the URL (shareable; the back button undoes
// one), a page of the newest matching runs with links to older pages,
// counts by status, live until paused.

import { attrParams, ulidAt, ulidTime, runsFilter, firstData } from "./lib.js";
import { h, main, api, navigate, fmtTime, fmtDur, attrsText, every } from "./ui.js";

/** The runs page. @param {AbortSignal} signal */
export async function runsPage(signal) {
  const m = main();
  m.dataset.page = "runs";
  const q = new URLSearchParams(location.search);
  const paused = q.get("paused") === "1";
  const paging = q.has("before"); // an older page does not change: no refresh
  const until = q.get("before") && /^[0-9A-Z]{10}0{16}$/.test(q.get("before") || "") ? new Date(ulidTime(q.get("before") || "")) : null;
  const local = (/** @type {Date} */ d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const nodes = h("datalist", { id: "node-names" });
  const form = h("form", { class: "filters", role: "search", onsubmit: (/** @type {Event} */ e) => {
      e.preventDefault();
      const fd = new FormData(/** @type {HTMLFormElement} */ (e.target));
      const next = new URLSearchParams();
      for (const a of attrParams(String(fd.get("attr") || ""))) next.append("attr", a);
      for (const k of ["status", "script", "version", "node", "since"]) if (fd.get(k)) next.set(k, String(fd.get(k)).trim());
      const u = String(fd.get("until") || "");
      if (u) next.set("before", ulidAt(new Date(u).getTime()));
      if (paused) next.set("paused", "1");
      navigate("/?" + next.toString());
    } },
    h("label", {}, "Attributes", h("input", { name: "attr", placeholder: "customer=acme", value: q.getAll("attr").join(" ") })),
    h("label", {}, "Status", h("select", { name: "status" },
      ["", "running", "blocked", "failed", "completed", "cancelled"].map((s) =>
        h("option", { value: s, selected: q.get("status") === s }, s || "any")))),
    h("label", {}, "Script", h("input", { name: "script", size: 12, value: q.get("script") || "" })),
    h("label", {}, "Version", h("input", { name: "version", type: "number", min: 1, size: 4, class: "narrow", value: q.get("version") || "",
      title: "the deployed version runs started on (with a script)" })),
    h("label", {}, "Node", h("input", { name: "node", size: 8, list: "node-names", value: q.get("node") || "", title: "the coordinator" })), nodes,
    h("label", {}, "Since", h("select", { name: "since" },
      ["", "15m", "1h", "24h", "168h"].map((s) => h("option", { value: s, selected: (q.get("since") || "") === s }, s ? "last " + s : "any time")))),
    h("label", {}, "Until", h("input", { name: "until", type: "datetime-local", value: until ? local(until) : "" })),
    h("button", { type: "submit" }, "Filter"),
    h("a", { href: "/" + (paused ? "?paused=1" : ""), class: "button" }, "Clear"),
    h("button", { type: "button", "aria-pressed": paused, onclick: () => {
      const next = new URLSearchParams(location.search);
      paused ? next.delete("paused") : next.set("paused", "1");
      navigate("/?" + next.toString(), true);
    } }, paused ? "Resume live" : "Pause"));
  const counts = h("nav", { class: "counts", "aria-label": "runs by status" });
  const body = h("div", { class: "table-wrap" });
  const pager = h("nav", { class: "pager", "aria-label": "pages" });
  const live = h("span", { class: "muted live-note", "aria-live": "polite" });
  m.replaceChildren(h("h1", {}, "Runs ", live), form, counts, body, pager);

  /** The URL of this page with changes. @param {Record<string, string|null>} set */
  const withParams = (set) => {
    const next = new URLSearchParams(q);
    for (const [k, v] of Object.entries(set)) v == null ? next.delete(k) : next.set(k, v);
    return "/?" + next.toString();
  };
  const apiQuery = () => runsFilter(q);

  /** @type {string[]} */
  let shown = []; // ids on screen, to mark the new ones
  const draw = async () => {
    let page;
    try {
      page = await api(/** @type {string} */ (firstData("/", q.toString())), signal);
    } catch (e) {
      if (!signal.aborted) body.replaceChildren(h("p", { class: "empty", role: "alert" }, "Cannot list runs: " + /** @type {Error} */ (e).message));
      m.dataset.ready = "1";
      return;
    }
    if (signal.aborted) return;
    const list = page?.runs || [];
    const fresh = shown.length ? new Set(list.map((/** @type {any} */ r) => r.id).filter((/** @type {string} */ id) => !shown.includes(id))) : new Set();
    shown = list.map((/** @type {any} */ r) => r.id);
    live.textContent = paused ? "(paused)" : paging ? "" : "(live)";
    if (!list.length) {
      const any = [...q.keys()].some((k) => k !== "paused");
      body.replaceChildren(h("p", { class: "empty" }, any ? "No run matches these filters. " : "No run yet. Start one: go run ./cmd/ctl run scripts/examples/hello.star ",
        any ? h("a", { href: "/" }, "Show all runs") : null));
    } else {
      body.replaceChildren(h("table", { class: "runs" },
        h("thead", {}, h("tr", {}, ["Run", "Script", "Status", "Started", "Took", "Steps", "Attributes", "Coordinator"].map((c, i) =>
          h("th", { scope: "col", class: i >= 4 ? "wide" : null }, c)))),
        h("tbody", {}, list.map((/** @type {any} */ r) => h("tr", { class: fresh.has(r.id) ? "fresh" : null },
          h("td", { class: "mono" }, h("a", { href: "/runs/" + encodeURIComponent(r.id) }, r.id)),
          h("td", {}, r.script, r.version ? h("span", { class: "muted" }, " v" + r.version) : null),
          h("td", { class: "status-" + r.status }, r.status),
          h("td", {}, fmtTime(r.started)),
          h("td", { class: "wide" }, r.ended ? fmtDur((new Date(r.ended).getTime() - new Date(r.started).getTime()) * 1e6) : "–"),
          h("td", { class: "wide" }, String(r.step_count ?? 0)),
          h("td", { class: "mono wide" }, attrsText(r.attrs)),
          h("td", { class: "wide" }, r.coordinator))))));
    }
    pager.replaceChildren(...[
      paging ? h("a", { href: withParams({ before: null }) }, "← Newest") : null,
      page?.next ? h("a", { href: withParams({ before: page.next }), rel: "next" }, "Older →") : null].filter((x) => x !== null));
    m.dataset.ready = "1";
  };
  const drawCounts = async () => {
    const cq = apiQuery();
    cq.delete("status");
    cq.delete("before");
    let c;
    try {
      c = await api("/v1/runs/counts?" + cq.toString(), signal);
    } catch {
      return;
    }
    if (signal.aborted || !c) return;
    counts.replaceChildren(h("a", { href: withParams({ status: null, before: null }), "aria-current": !q.get("status") }, "all"),
      ...["running", "blocked", "failed", "completed", "cancelled"].map((s) =>
        h("a", { href: withParams({ status: s, before: null }), class: "status-" + s, "aria-current": q.get("status") === s }, `${s} ${c.counts[s] ?? 0}`)),
      ...(c.capped ? [h("span", { class: "muted" }, `of the latest ${c.of} runs`)] : []));
  };
  // The list first: counts and the node names come once it is on screen.
  const later = () => {
    drawCounts();
    api("/v1/nodes", signal).then((d) => nodes.replaceChildren(...(d?.nodes || []).map((/** @type {any} */ n) => h("option", { value: n.name })))).catch(() => {});
  };
  if (paused || paging) {
    await draw();
    later();
  } else {
    await draw();
    later();
    every(draw, 2000, signal, true);
    every(drawCounts, 10000, signal, true);
  }
}
