// The first page's data, asked for while the other modules load: the page
// the browser opened (the runs, or one run) needs one answer before it can
// draw anything, and on a slow machine the modules take about as long to
// load as that answer. Its module is asked for here too. index.html runs this module before app.js; ui.js
// api() takes the answer when the page asks for the same URL, once.

import { firstData } from "./lib.js";

/** @type {{ url: string, resp: Promise<Response> } | null} */
let first = null;
const url = typeof location === "undefined" ? null : firstData(location.pathname, location.search); // none under node --test
if (url) {
  const resp = fetch(url, { headers: { Accept: "application/json" } });
  resp.catch(() => {}); // a failure is the page's to say, when it takes the answer
  first = { url, resp };
  // And the page's module, which app.js imports the same (one load, one module).
  (url.startsWith("/v1/runs?") ? import("./runs.js") : import("./run.js")).catch(() => {});
}

/**
 * The answer asked for early for url, if this is its URL and nobody took
 * it yet; else null. @param {string} url @returns {Promise<Response>|null}
 */
export function take(url) {
  if (!first || first.url !== url) return null;
  const { resp } = first;
  first = null;
  return resp;
}
