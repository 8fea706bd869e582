// The Drover control panel: a page per route, drawn from the node's JSON
// API. Every value from the cluster goes into the page as text (ui.js h()
// makes text nodes of strings): a run's result, a log line or an attribute
// that holds HTML shows as HTML source, never runs.
//
// Each page is a module exporting a function that draws into <main> and
// gets an AbortSignal: it aborts when the user goes to another page, and
// the page stops its timers, streams and fetches then. A page's module is
// loaded when first needed (first.js starts the opened page's at once), and
// the others once the page is drawn: a first visit compiles one page, not
// all of them, before it draws.

import { setNavigate, h } from "./ui.js";

/** Each page's module. */
const pages = {
  runs: () => import("./runs.js"),
  run: () => import("./run.js"),
  nodes: () => import("./nodes.js"),
  logs: () => import("./logs.js"),
  scripts: () => import("./scripts.js"),
};

/** @type {AbortController|null} */
let current = null;

/** Draws the page of the location, after stopping the previous one. */
function route() {
  current?.abort();
  const ctl = new AbortController();
  current = ctl;
  const p = location.pathname;
  const main = /** @type {HTMLElement} */ (document.getElementById("main"));
  delete main.dataset.ready; // each page sets it once its first draw with data is on screen
  delete main.dataset.page;
  let m;
  for (const a of document.querySelectorAll("header nav a")) {
    const href = /** @type {HTMLAnchorElement} */ (a).pathname;
    a.toggleAttribute("aria-current", href === "/" ? p === "/" || p.startsWith("/runs/") : p.startsWith(href));
  }
  /** Draws with the page's module once it is loaded, if the user is still there. @param {Promise<any>} mod @param {(m: any) => unknown} draw */
  const show = (mod, draw) => mod.then((x) => {
    if (current === ctl) draw(x);
  }, (e) => {
    if (current === ctl) main.replaceChildren(h("p", { class: "empty", role: "alert" }, `Cannot load this page (${e.message}): is the node up? Reload to try again.`));
  });
  if ((m = p.match(/^\/runs\/([^/]+)$/))) {
    const id = decodeURIComponent(m[1]);
    return show(pages.run(), (x) => x.runPage(id, ctl.signal));
  }
  if (p === "/nodes") return show(pages.nodes(), (x) => x.nodesPage(ctl.signal));
  if (p === "/logs") return show(pages.logs(), (x) => x.logsPage(ctl.signal));
  if (p === "/scripts") return show(pages.scripts(), (x) => x.scriptsPage(ctl.signal));
  if ((m = p.match(/^\/scripts\/([^/]+)$/))) {
    const name = decodeURIComponent(m[1]);
    return show(pages.scripts(), (x) => x.scriptPage(name, ctl.signal));
  }
  return show(pages.runs(), (x) => x.runsPage(ctl.signal));
}

setNavigate((path, replace) => {
  replace ? history.replaceState(null, "", path) : history.pushState(null, "", path);
  route();
});
addEventListener("popstate", route);
document.addEventListener("click", (e) => {
  const a = /** @type {HTMLElement} */ (e.target).closest?.("a");
  if (!a || a.origin !== location.origin || e.metaKey || e.ctrlKey || e.shiftKey || a.target || a.hasAttribute("download")) return;
  if (a.pathname.startsWith("/v1/")) return; // an API answer (an export), not a page
  e.preventDefault();
  const path = a.pathname + a.search;
  if (path === location.pathname + location.search) return route();
  history.pushState(null, "", path);
  route();
});
route();
// The other pages' modules, once this one has had its moment: a click to
// another page then waits for no module.
setTimeout(() => {
  const warm = () => { for (const load of Object.values(pages)) load().catch(() => {}); };
  typeof requestIdleCallback === "function" ? requestIdleCallback(warm, { timeout: 2000 }) : warm();
}, 1000);
