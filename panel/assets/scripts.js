// The scripts pages: every deployed name with its live version, and one
// script's versions (who deployed each, when, which runs are on it), a diff
// between any two versions, its live source and a rollback.

import { diffFiles, hunks, sideBySide } from "./diff.js";
import { h, main, api, post, fmtTime, every, value, confirmAction } from "./ui.js";

/** Runs of one status read to count a script's runs per version; more shows as "N+". */
const RUNS_READ = 500;
/** Diff rows drawn per file before a button draws the rest. */
const ROWS_SHOWN = 2000;

const short = (/** @type {string} */ hash) => String(hash || "").slice(0, 12);
const enc = encodeURIComponent;

/**
 * The list of deployed scripts, refreshed every 5 s.
 * @param {AbortSignal} signal aborts when the user leaves the page
 */
export function scriptsPage(signal) {
  const m = main();
  m.dataset.page = "scripts";
  delete m.dataset.ready;
  const body = h("div", { class: "table-wrap" });
  m.replaceChildren(h("h1", {}, "Scripts"), body);
  let last = "";
  every(async () => {
    let list;
    try {
      list = await api("/v1/scripts", signal);
    } catch (e) {
      if (!signal.aborted) body.replaceChildren(h("p", { class: "empty" }, "Cannot list the scripts: " + e)), (m.dataset.ready = "1");
      return;
    }
    if (signal.aborted) return;
    const scripts = [...(list?.scripts || [])].sort((a, b) => a.name.localeCompare(b.name));
    const key = JSON.stringify(scripts);
    if (key === last) return;
    last = key;
    if (list === null) body.replaceChildren(h("p", { class: "empty" }, "Deployed scripts are not available from this node."));
    else if (!scripts.length) body.replaceChildren(h("p", { class: "empty" }, "No script is deployed yet: ctl deploy NAME FILE.star deploys one."));
    else body.replaceChildren(h("table", { class: "scripts" },
      h("thead", {}, h("tr", {}, ["Script", "Live version", "Deployed", "By", "Note", "Hash"].map((c, i) =>
        h("th", { scope: "col", class: i >= 4 ? "wide" : null }, c)))),
      h("tbody", {}, scripts.map((/** @type {any} */ s) => h("tr", { "data-script": s.name },
        h("td", {}, h("a", { href: "/scripts/" + enc(s.name) }, s.name)),
        h("td", {}, "version " + s.version),
        h("td", {}, fmtTime(s.at)),
        h("td", {}, s.by || "–"),
        h("td", { class: "wide" }, s.note || ""),
        h("td", { class: "mono wide" }, short(s.hash)))))));
    m.dataset.ready = "1";
  }, 5000, signal);
}

/**
 * One script: its versions with the runs on each, a diff of two versions
 * (from= and to= in the URL, view=side for side by side), its live source,
 * and a rollback to any earlier version.
 * @param {string} name the script's name @param {AbortSignal} signal aborts when the user leaves the page
 */
export function scriptPage(name, signal) {
  const m = main();
  m.dataset.page = "script";
  delete m.dataset.ready;
  const notice = h("p", { class: "notice", role: "status" });
  const head = h("div", {});
  const versions = h("div", { class: "table-wrap" });
  const diffBox = h("section", { class: "diff", "aria-labelledby": "diff-h" });
  const source = h("section", { class: "source", "aria-labelledby": "source-h" });
  m.replaceChildren(h("p", { class: "crumbs" }, h("a", { href: "/scripts" }, "Scripts"), " / ", name),
    h("h1", {}, name), notice, head,
    h("section", { "aria-labelledby": "versions-h" }, h("h2", { id: "versions-h" }, "Versions"), versions),
    diffBox, source);

  /** @type {Map<number, Promise<any>>} sources of each version: they never change */
  const sources = new Map();
  const versionSources = (/** @type {number} */ v) => {
    if (!sources.has(v)) {
      const p = api(`/v1/scripts/${enc(name)}/versions/${v}`, signal);
      p.catch(() => sources.delete(v));
      sources.set(v, p);
    }
    return /** @type {Promise<any>} */ (sources.get(v));
  };

  /** @type {any[]} */
  let deployments = [];
  let liveVersion = 0, lastKey = "", sourceKey = "";

  /** Reads the script's history, live version and runs, and draws what changed. */
  const refresh = async () => {
    let hist, live, running, blocked;
    try {
      [hist, live, running, blocked] = await Promise.all([
        api(`/v1/scripts/${enc(name)}/history`, signal),
        api(`/v1/scripts/${enc(name)}`, signal),
        ...["running", "blocked"].map((st) => api(`/v1/runs?script=${enc(name)}&status=${st}&limit=${RUNS_READ}`, signal).catch(() => null)),
      ]);
    } catch (e) {
      if (!signal.aborted) head.replaceChildren(h("p", { class: "status-failed", role: "alert" }, "Cannot read the script: " + e)), (m.dataset.ready = "1");
      return;
    }
    if (signal.aborted) return;
    if (hist === null || live === null) {
      head.replaceChildren(h("p", { class: "empty" }, `No script named ${name} is deployed.`));
      versions.replaceChildren();
      m.dataset.ready = "1";
      return;
    }
    deployments = hist.history || [];
    liveVersion = live.version;
    const perVersion = countRuns(running, blocked);
    const key = JSON.stringify([deployments, liveVersion, [...perVersion]]);
    if (key !== lastKey) {
      lastKey = key;
      drawHead(live);
      drawVersions(perVersion, running === null || blocked === null);
      drawDiffForm();
    }
    if (sourceKey !== live.hash) {
      sourceKey = live.hash;
      drawSource(live);
    }
    m.dataset.ready = "1";
  };

  /** @param {any} live */
  const drawHead = (live) => {
    head.replaceChildren(h("dl", { class: "head" },
      ...[["Live version", `version ${live.version}`], ["Deployed", `${fmtTime(live.at)}${live.by ? " by " + live.by : ""}`],
        ["Note", live.note || "–"], ["Main file", live.main], ["Files", (live.files || []).join(", ")], ["Hash", live.hash]]
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "Hash" ? "mono" : null }, v)])));
  };

  /** @param {Map<number, {running: number, blocked: number}>} per @param {boolean} unknown */
  const drawVersions = (per, unknown) => {
    const runsCell = (/** @type {number} */ v, /** @type {"running"|"blocked"} */ st) => {
      if (unknown) return h("td", { class: "muted" }, "?");
      const n = per.get(v)?.[st] || 0;
      if (!n) return h("td", { class: "muted" }, "–");
      return h("td", {}, h("a", { href: `/?script=${enc(name)}&version=${v}&status=${st}`, class: "status-" + st },
        `${n >= RUNS_READ ? RUNS_READ + "+" : n} ${st}`));
    };
    versions.replaceChildren(h("table", { class: "versions" },
      h("thead", {}, h("tr", {}, ["Version", "Deployed", "By", "Note", "Hash", "Replayed", "Running", "Blocked", ""].map((c, i) =>
        h("th", { scope: "col", class: i === 2 || i === 4 || i === 5 ? "wide" : null }, c)))),
      h("tbody", {}, [...deployments].reverse().map((/** @type {any} */ d) => h("tr", { "data-version": d.version, class: d.version === liveVersion ? "live" : null },
        h("th", { scope: "row" }, `version ${d.version}`, d.version === liveVersion ? h("span", { class: "badge" }, "live") : null),
        h("td", {}, fmtTime(d.at)),
        h("td", { class: "wide" }, d.by || "–"),
        h("td", {}, d.note || ""),
        h("td", { class: "mono wide" }, short(d.hash)),
        h("td", { class: "wide" }, d.replayed ? `${d.replayed} runs` : "–"),
        runsCell(d.version, "running"),
        runsCell(d.version, "blocked"),
        h("td", {}, d.version === liveVersion ? null :
          h("button", { type: "button", class: "rollback", onclick: () => rollback(d) }, `Roll back to version ${d.version}…`)))))));
  };

  /** Asks, then makes d's version live again and shows the new live version. @param {any} d */
  const rollback = (d) => confirmAction({
    label: "Roll back " + name,
    text: [`Make version ${d.version} of ${name} live again, in place of version ${liveVersion}? `,
      "It becomes a new version; new runs start on it, runs in flight keep the version they started on."],
    yes: `Roll back to version ${d.version}`, no: "Cancel",
    act: async () => {
      const now = await post(`/v1/scripts/${enc(name)}/rollback`, { version: d.version, by: "panel" });
      notice.textContent = `Version ${now.version} is live: ${now.note || "rollback to version " + d.version}.`;
      await refresh();
    },
  });

  // The diff: two versions picked in selects, kept in the URL.
  const from = /** @type {HTMLSelectElement} */ (h("select", { name: "from", onchange: () => showDiff(true) }));
  const to = /** @type {HTMLSelectElement} */ (h("select", { name: "to", onchange: () => showDiff(true) }));
  const unified = h("input", { type: "radio", name: "view", value: "unified", onchange: () => showDiff(true) });
  const side = h("input", { type: "radio", name: "view", value: "side", onchange: () => showDiff(true) });
  const diffOut = h("div", { class: "diff-out", "aria-live": "polite" });
  diffBox.replaceChildren(h("h2", { id: "diff-h" }, "Compare versions"),
    h("form", { class: "filters", onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); showDiff(true); } },
      h("label", {}, "From", from), h("label", {}, "To", to),
      h("fieldset", { class: "view" }, h("legend", {}, "View"),
        h("label", { class: "inline" }, unified, " unified"), h("label", { class: "inline" }, side, " side by side"))),
    diffOut);
  const url = new URLSearchParams(location.search);
  /** @type {HTMLInputElement} */ (url.get("view") === "side" ? side : unified).checked = true;

  const drawDiffForm = () => {
    const options = (/** @type {HTMLSelectElement} */ sel, /** @type {number} */ pick) => {
      const keep = Number(sel.value) || pick;
      sel.replaceChildren(...[...deployments].reverse().map((d) =>
        h("option", { value: d.version, selected: d.version === keep }, `version ${d.version}${d.version === liveVersion ? " (live)" : ""}`)));
    };
    const first = !from.options.length;
    const versionsKnown = deployments.map((d) => d.version);
    const want = (/** @type {string|null} */ s, /** @type {number} */ dflt) => (versionsKnown.includes(Number(s)) ? Number(s) : dflt);
    const prev = [...versionsKnown].filter((v) => v < liveVersion).pop() ?? versionsKnown[0];
    options(from, first ? want(url.get("from"), prev) : Number(from.value));
    options(to, first ? want(url.get("to"), liveVersion) : Number(to.value));
    if (first) showDiff(false);
  };

  let diffSeq = 0;
  /** Draws the diff of the two versions picked; a pick by the user goes into the URL. @param {boolean} [picked] */
  const showDiff = async (picked = true) => {
    const a = Number(from.value), b = Number(to.value);
    const sideView = /** @type {HTMLInputElement} */ (side).checked;
    const seq = ++diffSeq;
    if (signal.aborted || !a || !b) return;
    if (picked) {
      const q = new URLSearchParams({ from: String(a), to: String(b) });
      if (sideView) q.set("view", "side");
      history.replaceState(history.state, "", `${location.pathname}?${q}`);
    }
    if (deployments.length < 2) {
      diffOut.replaceChildren(h("p", { class: "muted" }, "Only one version so far: nothing to compare yet."));
      return;
    }
    diffOut.replaceChildren(h("p", { class: "muted" }, "Reading the two versions…"));
    let va, vb;
    try {
      [va, vb] = await Promise.all([versionSources(a), versionSources(b)]);
    } catch (e) {
      if (seq === diffSeq && !signal.aborted) diffOut.replaceChildren(h("p", { class: "status-failed", role: "alert" }, "Cannot read the versions: " + e));
      return;
    }
    if (seq !== diffSeq || signal.aborted) return;
    const missing = [[a, va], [b, vb]].filter(([, v]) => v === null).map(([n]) => n);
    if (missing.length) {
      diffOut.replaceChildren(h("p", { class: "empty" },
        `The sources of version ${missing.join(" and ")} are not available from this node (GET /v1/scripts/${name}/versions/N answers 404), so versions cannot be compared here.`));
      return;
    }
    drawDiff(diffOut, a, b, va, vb, sideView);
  };

  /** @param {any} live */
  const drawSource = (live) => {
    const files = Object.keys(live.sources || {}).sort((x, y) => (x === live.main ? -1 : y === live.main ? 1 : x.localeCompare(y)));
    source.replaceChildren(h("h2", { id: "source-h" }, `Live source (version ${live.version})`),
      ...files.map((f) => h("details", { class: "file", open: f === live.main || files.length === 1 },
        h("summary", {}, h("span", { class: "mono" }, f), f === live.main ? " (main)" : ""),
        value(live.sources[f]))));
    if (!files.length) source.append(h("p", { class: "muted" }, "The live version's source is not available from this node."));
  };

  every(refresh, 5000, signal);
}

/**
 * Counts runs per version from the running and blocked lists.
 * @param {any} running @param {any} blocked @returns {Map<number, {running: number, blocked: number}>}
 */
function countRuns(running, blocked) {
  /** @type {Map<number, {running: number, blocked: number}>} */
  const per = new Map();
  for (const [list, st] of /** @type {[any, "running"|"blocked"][]} */ ([[running, "running"], [blocked, "blocked"]])) {
    for (const r of list?.runs || []) {
      const v = Number(r.version) || 0;
      const c = per.get(v) || { running: 0, blocked: 0 };
      c[st]++;
      per.set(v, c);
    }
  }
  return per;
}

/**
 * Draws the diff of versions a and b into out, per file, unified or side by
 * side; each line marked by class (add, del, ctx) and by its sign.
 * @param {HTMLElement} out @param {number} a @param {number} b @param {any} va @param {any} vb @param {boolean} sideView
 */
function drawDiff(out, a, b, va, vb, sideView) {
  const files = diffFiles(va.sources || {}, vb.sources || {});
  const changed = files.filter((f) => f.status !== "same");
  const added = files.reduce((n, f) => n + f.added, 0), removed = files.reduce((n, f) => n + f.removed, 0);
  const summary = !changed.length
    ? `Versions ${a} and ${b} are identical` + (va.hash === vb.hash ? " (same hash)." : ".")
    : `Version ${a} → version ${b}: ${changed.length} file${changed.length === 1 ? "" : "s"} changed, ${added} line${added === 1 ? "" : "s"} added, ${removed} removed.`;
  out.replaceChildren(h("p", { class: "diff-summary" }, summary),
    ...files.map((f) => {
      const label = { added: "added", removed: "removed", changed: `+${f.added} −${f.removed}`, same: "unchanged" }[f.status];
      const section = h("section", { class: "difffile", "data-file": f.file, "data-status": f.status },
        h("h3", {}, h("span", { class: "mono" }, f.file), " ", h("span", { class: "badge " + f.status }, label)));
      if (f.status === "same") return section;
      if (f.coarse) section.append(h("p", { class: "muted" }, "Too many differences to align line by line: the old lines are shown removed and the new ones added."));
      const rows = sideView ? sideRows(f.lines) : unifiedRows(f.lines);
      const tbody = h("tbody", {}, rows.slice(0, ROWS_SHOWN));
      const table = h("table", { class: "difftable " + (sideView ? "side" : "unified") },
        h("thead", { class: "sr-only" }, h("tr", {}, (sideView ? [`v${a} line`, "", `version ${a}`, `v${b} line`, "", `version ${b}`] : [`v${a} line`, `v${b} line`, "", "line"])
          .map((c) => h("th", { scope: "col" }, c)))),
        tbody);
      section.append(h("div", { class: "table-wrap" }, table));
      if (rows.length > ROWS_SHOWN) {
        const more = h("button", { type: "button", onclick: () => { tbody.append(...rows.slice(ROWS_SHOWN)); more.remove(); } },
          `Show the other ${rows.length - ROWS_SHOWN} rows`);
        section.append(more);
      }
      return section;
    }));
}

const SIGN = { " ": " ", "-": "-", "+": "+" };
const CLASS = { " ": "ctx", "-": "del", "+": "add" };

/** Unified rows: hunk headers, then each line with both numbers and its sign. @param {import("./diff.js").DiffLine[]} lines */
function unifiedRows(lines) {
  return hunks(lines).flatMap((hk) => [
    h("tr", { class: "hunk" }, h("td", { colspan: 4, class: "mono" }, hk.header)),
    ...hk.lines.map((l) => h("tr", { class: CLASS[l.op] },
      h("td", { class: "ln" }, l.a ?? ""), h("td", { class: "ln" }, l.b ?? ""),
      h("td", { class: "sign", "aria-label": l.op === "+" ? "added" : l.op === "-" ? "removed" : null }, SIGN[l.op]),
      h("td", { class: "code" }, l.text))),
  ]);
}

/** Side-by-side rows within the hunks: old on the left, new on the right. @param {import("./diff.js").DiffLine[]} lines */
function sideRows(lines) {
  const half = (/** @type {import("./diff.js").DiffLine|null} */ l, /** @type {"a"|"b"} */ side) => l
    ? [h("td", { class: "ln " + CLASS[l.op] }, l[side] ?? ""), h("td", { class: "sign " + CLASS[l.op] }, SIGN[l.op]), h("td", { class: "code " + CLASS[l.op] }, l.text)]
    : [h("td", { class: "ln none" }), h("td", { class: "sign none" }), h("td", { class: "code none" })];
  return hunks(lines).flatMap((hk) => [
    h("tr", { class: "hunk" }, h("td", { colspan: 6, class: "mono" }, hk.header)),
    ...sideBySide(hk.lines).map((r) => h("tr", {}, half(r.left, "a"), half(r.right, "b"))),
  ]);
}
