// The control panel's performance in a real headless Chromium (Debian's,
// driven by playwright-core), for the benchmarks of e2e/panel_bench_test.go:
//
//   node bench.mjs runs BASE_URL LOADS
//     the runs page loaded LOADS times: navigation start → the page's first
//     draw with data (main[data-page=runs][data-ready="1"] with rows) and the
//     frame after it; floor: fetch("/v1/runs?limit=100") + JSON in the page.
//   node bench.mjs run BASE_URL RUN_ID LOADS
//     a run's page loaded LOADS times: navigation start → ready and the frame
//     after it, then a click on a step's row → its details [data-details] on
//     screen; floor: fetch("/v1/runs/RUN_ID") + JSON.parse in the page.
//   node bench.mjs live BASE_URL RUN_ID GATE_URL
//     a running run's page, open on BASE_URL (another node than the run's
//     coordinator): a MutationObserver added here stamps each new
//     [data-step] element with Date.now(); beside it, in the same page, a
//     bare EventSource on the run's events stamps each step's first entry
//     (its call, or its result carrying its call) as it arrives: the
//     delivery floor; and the same in a page of its own (another browser
//     context) that draws nothing. Then GET GATE_URL lets the run go on (it
//     waits at an http.get). Ends after the run's end entry.
//
// It prints one line of JSON (the Go side parses it) and exits non-zero,
// saying why on stderr, if a page never gets ready.
import { launch } from "./harness.mjs";

const [mode, base, ...rest] = process.argv.slice(2);

// Stamps, from the document's start, when the page becomes ready for want
// (a CSS selector that must match), and the frame after it: rAF runs just
// before the frame's paint, the task after it just after. rows is the
// selector of the data drawn; "rows" is stamped apart, so that a page that
// draws its data but never says so (no data-ready) is seen.
function probe({ ready, rows }) {
  const b = (window.__bench = { ready: null, rows: null, painted: null });
  const check = () => {
    if (b.rows == null && document.querySelector(rows)) b.rows = performance.now();
    if (b.ready == null && document.querySelector(ready) && document.querySelector(rows)) {
      b.ready = performance.now();
      requestAnimationFrame(() => setTimeout(() => { b.painted = performance.now(); }));
    }
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-ready", "data-page"] });
}

/** The nearest-rank quantile q of xs. */
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] : null;
}
const summary = (xs) => ({ n: xs.length, p50: quantile(xs, 0.5), p99: quantile(xs, 0.99), max: xs.length ? Math.max(...xs) : null, all: xs });

/**
 * Loads url and waits for the probe's stamps: returns them with the page's
 * own request for api (resource timing) and its navigation's timings.
 */
async function load(page, url, api) {
  await page.goto(url, { waitUntil: "commit" });
  try {
    // Ready and painted; or data drawn 3 s ago and still no data-ready.
    await page.waitForFunction(() => window.__bench?.painted != null || (window.__bench?.rows != null && performance.now() - window.__bench.rows > 3000),
      null, { timeout: 15000, polling: 20 });
  } catch { /* said below */ }
  const r = await page.evaluate((api) => {
    const nav = performance.getEntriesByType("navigation")[0];
    const req = performance.getEntriesByType("resource").find((e) => e.name.includes(api));
    return {
      ...window.__bench,
      nav: { responseEnd: nav?.responseEnd, dcl: nav?.domContentLoadedEventEnd },
      api: req ? { start: req.startTime, end: req.responseEnd } : null,
    };
  }, api);
  if (r.painted != null) return { ...r, contract: true };
  // The data is drawn but the page never said so: the time to the data, flagged.
  if (r.rows != null) return { ...r, contract: false, ready: r.rows, painted: r.rows };
  throw new Error(`${url}: not ready within 15s (${JSON.stringify(r)})`);
}

/**
 * Waits until the page's first requests (each a part of a URL) have been
 * answered, so that a floor is not taken while the page's own requests
 * load the node; returns every request of the load with its times.
 */
async function settle(page, parts) {
  try {
    await page.waitForFunction((parts) => parts.every((p) => performance.getEntriesByType("resource").some((e) => e.name.includes(p))),
      parts, { timeout: 15000, polling: 50 });
  } catch { /* the resources show which never came */ }
  await page.waitForTimeout(100);
  return page.evaluate(() => performance.getEntriesByType("resource").map((e) => ({
    name: e.name.replace(location.origin, ""), start: Math.round(e.startTime), end: Math.round(e.responseEnd),
  })));
}

/** Times fetch(path) and the parse of its answer in the page, n times. */
function floor(page, path, n) {
  return page.evaluate(async ({ path, n }) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const r = await fetch(path, { cache: "no-store" });
      const text = await r.text();
      JSON.parse(text);
      out.push(performance.now() - t0);
    }
    return out;
  }, { path, n });
}

/**
 * Navigates to url (the API's JSON as a document: no script, nothing drawn)
 * and returns the time from the navigation's start to its load event: the
 * browser's own cost of loading a document and the data, which no page's
 * first render can beat.
 */
async function navFloor(page, url) {
  await page.goto(url, { waitUntil: "load" });
  return page.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd);
}

const modes = {
  async runs(browser, loads) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    await page.addInitScript(probe, { ready: 'main[data-page="runs"][data-ready="1"]', rows: "main table tbody tr" });
    // The browser's own first navigation (its renderer starting) comes
    // before the panel's: a user's browser is running when they open the
    // panel. The first load below is then the panel's first visit, its
    // assets and compiled code in no cache yet.
    const browserFirst = await navFloor(page, base + "/v1/nodes");
    const ready = [], painted = [], floors = [], apis = [], loadsOut = [], navs = [], parts = { html: [], dcl: [], api: [] };
    let contract = true;
    for (let i = 0; i < loads; i++) {
      const r = await load(page, base + "/", "/v1/runs?");
      if (r.nav?.responseEnd != null) parts.html.push(r.nav.responseEnd);
      if (r.nav?.dcl != null) parts.dcl.push(r.nav.dcl);
      if (r.api) parts.api.push(r.api.end);
      contract &&= r.contract;
      ready.push(r.ready);
      painted.push(r.painted);
      if (r.api) apis.push(r.api.end - r.api.start);
      r.resources = await settle(page, ["/v1/runs/counts", "/v1/nodes"]);
      loadsOut.push(r);
      floors.push(...(await floor(page, "/v1/runs?limit=100", 3)));
      navs.push(await navFloor(page, base + "/v1/runs?limit=100"));
    }
    await page.goto(base + "/");
    await page.waitForSelector("main table tbody tr");
    const rows = await page.$$eval("main table tbody tr", (rs) => rs.length);
    return { mode: "runs", browser_first: browserFirst, contract, rows, ready: summary(ready), painted: summary(painted), floor: summary(floors), nav_floor: summary(navs), page_api: summary(apis),
      parts: { html: summary(parts.html), dcl: summary(parts.dcl), api: summary(parts.api) }, loads: loadsOut };
  },

  async run(browser, id, loads) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    await page.addInitScript(probe, { ready: 'main[data-page="run"][data-ready="1"]', rows: "main [data-lane] [data-step], main [data-lane] canvas" });
    // The browser's own first navigation (its renderer starting) comes
    // before the panel's: a user's browser is running when they open the
    // panel. The first load below is then the panel's first visit, its
    // assets and compiled code in no cache yet.
    const browserFirst = await navFloor(page, base + "/v1/nodes");
    const ready = [], painted = [], clicks = [], floors = [], apis = [], loadsOut = [];
    let contract = true;
    for (let i = 0; i < loads; i++) {
      const r = await load(page, base + "/runs/" + encodeURIComponent(id), "/v1/runs/" + id);
      contract &&= r.contract;
      ready.push(r.ready);
      painted.push(r.painted);
      if (r.api) apis.push(r.api.end - r.api.start);
      // A click on a step's row (the i-th in view): its details on screen.
      const click = await page.evaluate(async (i) => {
        const rows = document.querySelectorAll(".steps tbody tr[data-step]");
        const tr = rows[i % rows.length];
        if (!tr) return { error: "no step row" };
        const step = tr.getAttribute("data-step");
        const sel = `[data-details="${CSS.escape(step)}"]`;
        const t0 = performance.now();
        return await new Promise((done) => {
          let shown = null;
          const mo = new MutationObserver(() => {
            if (shown == null && document.querySelector(sel)) {
              shown = performance.now();
              mo.disconnect();
              requestAnimationFrame(() => setTimeout(() => done({ step, shown: shown - t0, painted: performance.now() - t0 })));
            }
          });
          mo.observe(document.getElementById("main"), { subtree: true, childList: true });
          /** @type {HTMLElement} */ (tr.querySelector("button") || tr).click();
          setTimeout(() => done({ step, error: "no details within 10s" }), 10000);
        });
      }, i);
      if (click.error) throw new Error(click.error);
      clicks.push(click.painted);
      r.resources = await settle(page, ["/script"]);
      loadsOut.push({ ...r, click });
      floors.push(...(await floor(page, "/v1/runs/" + encodeURIComponent(id), 2)));
    }
    const bars = await page.evaluate(() => ({
      dom: document.querySelectorAll("main [data-lane] [data-step]").length,
      canvas: [...document.querySelectorAll("main [data-lane] canvas")].reduce((n, c) => n + Number(c.dataset.bars || 0), 0),
      rows: document.querySelectorAll(".steps tbody tr[data-step]").length,
    }));
    return { mode: "run", browser_first: browserFirst, contract, bars, ready: summary(ready), painted: summary(painted), click: summary(clicks), floor: summary(floors), page_api: summary(apis), loads: loadsOut };
  },

  async live(browser, id, gate) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e?.stack || e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(base + "/runs/" + encodeURIComponent(id));
    await page.waitForSelector('main[data-page="run"][data-ready="1"]', { timeout: 15000 });
    // Added by the benchmark, not the app: the first time each step has an
    // element in the page, and the same events through a bare EventSource.
    const installed = await page.evaluate((id) => {
      const b = (window.__live = { appeared: {}, received: {}, called: {}, ended: false, before: [] });
      for (const el of document.querySelectorAll("main [data-step]")) b.before.push(el.getAttribute("data-step"));
      const stamp = (el) => {
        const s = el.getAttribute("data-step");
        if (s != null && !(s in b.appeared)) b.appeared[s] = Date.now();
      };
      new MutationObserver((records) => {
        for (const r of records) for (const n of r.addedNodes) {
          if (!(n instanceof Element)) continue;
          if (n.hasAttribute("data-step")) stamp(n);
          for (const el of n.querySelectorAll("[data-step]")) stamp(el);
        }
      }).observe(document.getElementById("main"), { subtree: true, childList: true });
      const es = new EventSource("/v1/runs/" + encodeURIComponent(id) + "/events");
      // A co-located step's call comes with its result (data.call).
      const got = (e) => {
        const now = Date.now();
        const d = JSON.parse(e.data);
        const s = String(d.step ?? d.key);
        if (!(s in b.received)) { b.received[s] = now; b.called[s] = Date.parse(d.time ?? d.call?.time); }
      };
      es.addEventListener("start", () => { b.started = true; });
      es.addEventListener("call", got);
      es.addEventListener("result", got);
      es.addEventListener("end", () => { b.ended = true; es.close(); });
      // The page's main thread: its tasks over 50 ms while the run goes on.
      b.long = [];
      new PerformanceObserver((l) => { for (const e of l.getEntries()) b.long.push(Math.round(e.duration)); }).observe({ type: "longtask" });
      return Date.now();
    }, id);
    // The same events in a page of its own (another browser context: its
    // own renderer process), drawing nothing: the browser's delivery floor
    // without the panel's work on the same main thread.
    const bare = await (await browser.newContext()).newPage();
    await bare.goto(base + "/v1/nodes");
    await bare.evaluate((id) => {
      const b = (window.__bare = { received: {}, ended: false });
      const es = new EventSource("/v1/runs/" + encodeURIComponent(id) + "/events");
      const got = (e) => {
        const now = Date.now();
        const d = JSON.parse(e.data);
        const s = String(d.step ?? d.key);
        if (!(s in b.received)) b.received[s] = now;
      };
      es.addEventListener("start", () => { b.started = true; });
      es.addEventListener("call", got);
      es.addEventListener("result", got);
      es.addEventListener("end", () => { b.ended = true; es.close(); });
    }, id);
    // The page is open once every stream is: each has had the run's start
    // entry (journaled before the gate), the panel's applied it. Entries
    // written from then on are the ones an open page must show in time.
    await page.waitForFunction(() => window.__live.started && Number(document.getElementById("main").dataset.events) >= 1, null, { timeout: 30000, polling: 20 });
    await bare.waitForFunction(() => window.__bare.started, null, { timeout: 30000, polling: 20 });
    // The run waits at its gate until now.
    // $DROVER_PANEL_CHROME_TRACE names a file for Chromium's performance
    // trace of the live run (open it in DevTools' Performance panel).
    const traceTo = process.env.DROVER_PANEL_CHROME_TRACE;
    if (traceTo) await browser.startTracing(page, { path: traceTo, categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8.execute", "blink.user_timing"] });
    if (gate) await fetch(gate);
    await page.waitForFunction(() => window.__live.ended, null, { timeout: 600000, polling: 200 });
    if (traceTo) await browser.stopTracing();
    // The page draws once per frame: give it a moment past the end.
    await page.waitForTimeout(1000);
    const b = await page.evaluate(() => window.__live);
    await bare.waitForFunction(() => window.__bare.ended, null, { timeout: 30000, polling: 200 });
    const other = await bare.evaluate(() => window.__bare.received);
    return { mode: "live", installed, appeared: b.appeared, received: b.received, called: b.called, before: b.before.length, other, long: b.long, errors,
      events: await page.evaluate(() => document.getElementById("main")?.dataset.events) };
  },
};

const browser = await launch();
try {
  const out = mode === "runs" ? await modes.runs(browser, Number(rest[0] || 20))
    : mode === "run" ? await modes.run(browser, rest[0], Number(rest[1] || 10))
      : mode === "live" ? await modes.live(browser, rest[0], rest[1])
        : null;
  if (!out) throw new Error("usage: node bench.mjs runs|run|live BASE_URL [RUN_ID] [LOADS]");
  out.chromium = browser.version();
  console.log(JSON.stringify(out));
} catch (e) {
  console.error("FAIL: " + (e?.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
