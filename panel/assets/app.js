// The Drover control panel: a page per route, drawn from the node's JSON
// API. Every value from the cluster goes into the page as text (ui.js h()
// makes text nodes of strings): a run's result, a log line or an attribute
// that holds HTML shows as HTML source, never runs.
//
// Each page is a module exporting a function that draws into <main> and
// gets an AbortSignal: it aborts when the user goes to another page, and
// the page stops its timers, streams and fetches then.

import { setNavigate } from "./ui.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { nodesPage } from "./nodes.js";
import { logsPage } from "./logs.js";
import { scriptsPage, scriptPage } from "./scripts.js";

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
  if ((m = p.match(/^\/runs\/([^/]+)$/))) return runPage(decodeURIComponent(m[1]), ctl.signal);
  if (p === "/nodes") return nodesPage(ctl.signal);
  if (p === "/logs") return logsPage(ctl.signal);
  if (p === "/scripts") return scriptsPage(ctl.signal);
  if ((m = p.match(/^\/scripts\/([^/]+)$/))) return scriptPage(decodeURIComponent(m[1]), ctl.signal);
  return runsPage(ctl.signal);
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
