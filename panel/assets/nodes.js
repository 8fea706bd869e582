// The nodes page: each live node's meters, resources, breakers, failing
// integrations and latest placement decisions, and the cluster's events
// (nodes joined and lost, runs adopted), every 2 s.

import { h, main, api, fmtTime, every } from "./ui.js";

const pct = (/** @type {number} */ x) => (x == null ? "–" : (100 * x).toFixed(0) + " %");
const gib = (/** @type {number} */ b) => (b / (1 << 30)).toFixed(1) + " GiB";
const runLink = (/** @type {string} */ id) => (id ? h("a", { href: "/runs/" + encodeURIComponent(id), class: "mono", title: id }, "…" + id.slice(-8)) : "–");

/**
 * A meter with its figure beside it: level out of max, where lower (a load)
 * or higher (units free) is better.
 * @param {string} label @param {number} level @param {number} max @param {string} text @param {"low"|"high"} good
 */
function gauge(label, level, max, text, good) {
  const ok = Number.isFinite(level) && Number.isFinite(max) && max > 0;
  return h("span", { class: "gauge" },
    ok ? h("meter", { min: 0, max, value: Math.min(Math.max(level, 0), max), "aria-label": label,
      ...(good === "low" ? { low: 0.7 * max, high: 0.9 * max, optimum: 0 } : { low: 0.1 * max, high: 0.5 * max, optimum: max }) }) : null,
    h("span", { class: "gauge-text" }, text));
}

/**
 * The nodes page.
 * @param {AbortSignal} signal aborts when the user leaves the page: polling stops
 */
export async function nodesPage(signal) {
  const m = main();
  m.dataset.page = "nodes";
  delete m.dataset.ready;
  const body = h("div", {});
  const cluster = h("section", { class: "cluster", "aria-labelledby": "cluster-h" });
  m.replaceChildren(h("h1", {}, "Nodes"), body, cluster);
  const draw = async () => {
    let nodes, events;
    try {
      [nodes, events] = await Promise.all([
        api("/v1/nodes", signal).then((a) => a?.nodes || []),
        api("/v1/cluster/events?limit=100", signal).catch((e) => ({ failed: String(e) })),
      ]);
    } catch (e) {
      if (!signal.aborted) body.replaceChildren(h("p", { class: "empty" }, "Cannot read the nodes: " + e)), (m.dataset.ready = "1");
      return;
    }
    if (signal.aborted) return;
    body.replaceChildren(...nodes.map(nodeSection));
    if (!nodes.length) body.replaceChildren(h("p", { class: "empty" }, "No live node answers."));
    drawCluster(cluster, events);
    m.dataset.ready = "1";
  };
  every(draw, 2000, signal);
}

/** One node's section. @param {any} n */
function nodeSection(n) {
  const r = n.reading || {};
  const res = Object.entries(r.resources || {});
  const bad = (n.integrations || []).filter((/** @type {any} */ i) => i.state === "failing");
  const memText = r.mem_total ? `${gib(r.mem_used)} of ${gib(r.mem_total)}` : "–";
  return h("section", { class: "node", "aria-label": "node " + n.name, "data-node": n.name },
    h("h2", {}, n.name),
    h("dl", { class: "head meters" },
      h("dt", {}, "CPU"), h("dd", {}, gauge("CPU of " + n.name, r.cpu, 1, `${pct(r.cpu)} of ${r.cores ?? "?"} cores`, "low")),
      h("dt", {}, "Memory"), h("dd", {}, gauge("memory of " + n.name, r.mem_used, r.mem_total, memText, "low")),
      ...[["Steps in flight", String(r.in_flight_total ?? 0)], ["Waiting for units", String(r.waiting ?? 0)],
        ["Started", fmtTime(n.started)], ["API", n.http || "–"]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    res.length ? h("div", { class: "table-wrap" }, h("table", { class: "resources" },
      h("caption", { class: "sr-only" }, "Resources of " + n.name),
      h("thead", {}, h("tr", {}, ["Resource", "Kind", "Scope", "Free of capacity", "Waiting"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, res.map(([name, /** @type {any} */ st]) => h("tr", { "data-resource": name },
        h("td", { class: "mono" }, name), h("td", {}, st.kind), h("td", {}, st.scope),
        h("td", {}, gauge(`${name} free`, Number(st.free), Number(st.capacity), `${Number(st.free).toFixed(1)} of ${st.capacity}`, "high")),
        h("td", {}, String(st.waiting)))))))
      : h("p", { class: "muted" }, "No custom resources."),
    (n.breakers || []).length ? h("p", {}, "Breakers: ", (n.breakers || []).map((/** @type {any} */ b) => `${b.target} ${b.state} (${b.failures} failures)`).join("; ")) : null,
    bad.length ? h("p", { class: "status-failed" }, "Failing integrations: ", bad.map((/** @type {any} */ i) => `${i.name}: ${i.error}`).join("; ")) : null,
    placements(n));
}

/** A node's latest placement decisions as coordinator, newest first. @param {any} n */
function placements(n) {
  const title = h("h3", {}, "Latest placement decisions");
  if (!Array.isArray(n.placements)) return h("div", { class: "placements" }, title, h("p", { class: "muted" }, "Placement decisions are not available from this node."));
  if (!n.placements.length) return h("div", { class: "placements" }, title, h("p", { class: "muted" }, `${n.name} has placed no step yet as a run's coordinator.`));
  return h("div", { class: "placements" }, title, h("div", { class: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Time", "Run", "Step", "Builtin", "Placed on", "Why"].map((c, i) => h("th", { scope: "col", class: i === 2 ? "wide" : null }, c)))),
    h("tbody", {}, n.placements.map((/** @type {any} */ p) => h("tr", { class: "placement" },
      h("td", {}, fmtTime(p.time)), h("td", {}, runLink(p.run)), h("td", { class: "wide" }, String(p.step ?? "")),
      h("td", { class: "mono" }, p.builtin || ""), h("td", {}, p.node || ""), h("td", {}, p.reason || "")))))));
}

const KINDS = /** @type {Record<string, string>} */ ({ node_joined: "joined", node_lost: "lost", adopted: "adopted a run" });

/** The cluster's events: nodes lost, joined, runs adopted. @param {HTMLElement} el @param {any} answer */
function drawCluster(el, answer) {
  const title = h("h2", { id: "cluster-h" }, "Cluster events");
  if (answer === null) return el.replaceChildren(title, h("p", { class: "muted" }, "Cluster events are not available from this node."));
  if (answer?.failed) return el.replaceChildren(title, h("p", { class: "status-failed" }, "Cannot read the cluster's events: " + answer.failed));
  const events = answer?.events || [];
  const lost = events.filter((/** @type {any} */ e) => e.kind === "node_lost");
  el.replaceChildren(title,
    h("p", { class: lost.length ? "status-failed" : "muted" }, lost.length
      ? `Nodes lost: ${[...new Set(lost.map((/** @type {any} */ e) => e.node))].join(", ")} (latest ${fmtTime(lost[0].time)}).`
      : "No node lost in these events."),
    events.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Time", "Event", "Node", "Run", "From", "Detail"].map((c, i) => h("th", { scope: "col", class: i === 5 ? "wide" : null }, c)))),
      h("tbody", {}, events.map((/** @type {any} */ e) => h("tr", { class: "event-" + String(e.kind).replace(/[^a-z_]/g, "") },
        h("td", {}, fmtTime(e.time)), h("td", {}, KINDS[e.kind] || e.kind), h("td", {}, e.node || ""),
        h("td", {}, e.run ? runLink(e.run) : ""), h("td", {}, e.from || ""), h("td", { class: "wide" }, e.detail || ""))))))
      : h("p", { class: "empty" }, "No node has joined, been lost or had its runs adopted yet."));
}
