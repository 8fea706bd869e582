// The nodes page: each live node's meters, resources, breakers and
// integrations, every 2 s.

import { h, main, api, fmtTime, every } from "./ui.js";

/** The nodes page. @param {AbortSignal} signal */
export async function nodesPage(signal) {
  const body = h("div", {});
  main().replaceChildren(h("h1", {}, "Nodes"), body);
  const pct = (/** @type {number} */ x) => (x == null ? "–" : (100 * x).toFixed(0) + " %");
  const gib = (/** @type {number} */ b) => (b / (1 << 30)).toFixed(1) + " GiB";
  const draw = async () => {
    let nodes;
    try {
      nodes = (await api("/v1/nodes", signal))?.nodes || [];
    } catch (e) {
      if (!signal.aborted) body.replaceChildren(h("p", { class: "empty" }, "Cannot read the nodes: " + e));
      return;
    }
    if (signal.aborted) return;
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
          h("tbody", {}, res.map(([name, /** @type {any} */ st]) => h("tr", {}, h("td", { class: "mono" }, name), h("td", {}, st.kind), h("td", {}, st.scope),
            h("td", {}, Number(st.free).toFixed(1)), h("td", {}, String(st.capacity)), h("td", {}, String(st.waiting)))))))
          : h("p", { class: "muted" }, "No custom resources."),
        (n.breakers || []).length ? h("p", {}, "Breakers: ", (n.breakers || []).map((/** @type {any} */ b) => `${b.target} ${b.state} (${b.failures} failures)`).join("; ")) : null,
        bad.length ? h("p", { class: "status-failed" }, "Failing integrations: ", bad.map((/** @type {any} */ i) => `${i.name}: ${i.error}`).join("; ")) : null);
    }));
  };
  every(draw, 2000, signal);
}
