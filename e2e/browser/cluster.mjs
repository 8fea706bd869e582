// The control panel of a real 3-node cluster in headless Chromium (Debian's
// chromium, driven by playwright-core): e2e.TestPanelCluster starts n1, n2
// and n3 (only n2 can run kv.put, only n3 kv.get), deploys two versions of
// the script "order", runs it for acme and globex, then runs this with
//   node cluster.mjs '{"n1": URL, "n2": URL, "shots": DIR, "acme": [RUN, RUN], "globex": RUN, "parked": RUN}'
// It starts the live runs itself (POST /v1/run/order?async=1) and stops them
// (a run with "stop"). For the node death it prints "drover: kill n1" and
// "drover: restart n1" for the test to do, and "drover: death {...}" with
// what the page applied. It exits non-zero on the first check that fails,
// saying which.
import { launch, check, drive } from "./harness.mjs";

const cfg = JSON.parse(process.argv[2]);
const base = cfg.n1, shots = cfg.shots;
const [acme, acme2] = cfg.acme;
const browser = await launch();
// bypassCSP: the checks evaluate in the page, which the panel's CSP forbids.
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
const errors = [];
let dying = false; // once n1 is killed, its requests fail: expected
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => m.type() === "error" && !dying && errors.push(m.text() + " " + m.location().url));
// Every request for a run's event stream: its Last-Event-ID and how it went.
const streamRequests = [];
const t0 = Date.now();
page.on("request", async (r) => {
  const m = new URL(r.url()).pathname.match(/^\/v1\/runs\/([^/]+)\/events$/);
  if (!m) return;
  // Its headers are known once it is sent: null until then, and for a request that failed to connect.
  const entry = { run: m[1], at: Date.now() - t0, lastEventId: null, status: 0, failure: "" };
  streamRequests.push(entry);
  r.allHeaders().then((hs) => { entry.lastEventId = hs["last-event-id"] || ""; }, () => {});
  r.response().then((resp) => { if (resp) entry.status = resp.status(); }, () => {});
});
page.on("requestfailed", (r) => {
  const e = streamRequests.findLast((q) => r.url().endsWith("/v1/runs/" + q.run + "/events"));
  if (e) e.failure = r.failure()?.errorText || "?";
});
// Every event the page's EventSources receive, before the page's own handlers.
await page.addInitScript(() => {
  const Native = window.EventSource;
  window.__sources = 0;
  window.__received = [];
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      window.__sources++;
      for (const kind of ["start", "call", "result", "place", "tag", "patch", "version", "cancel", "end"]) {
        super.addEventListener(kind, (e) => window.__received.push(Number(e.lastEventId)));
      }
    }
  };
});


/** GETs JSON from a node. */
async function get(url) {
  const resp = await fetch(url, { headers: { Accept: "application/json" } });
  if (!resp.ok) throw new Error(`GET ${url}: ${resp.status} ${await resp.text()}`);
  return resp.json();
}

/** Starts a run of the deployed order on node url; its id. */
async function order(url, input) {
  const resp = await fetch(url + "/v1/run/order?async=1", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(input) });
  if (!resp.ok) throw new Error(`POST /v1/run/order: ${resp.status} ${await resp.text()}`);
  return (await resp.json()).id;
}

/** Polls until node url knows run id (a run started on another node is indexed there a moment later). */
async function known(url, id) {
  for (const until = Date.now() + 30000; ; await new Promise((ok) => setTimeout(ok, 50))) { // polling interval
    const resp = await fetch(url + "/v1/runs/" + id, { headers: { Accept: "application/json" } });
    if (resp.ok) return;
    if (Date.now() > until) throw new Error(`${url} never knew run ${id}: ${resp.status}`);
  }
}

const bars = () => page.$$eval(".lanes [data-step]", (bs) => bs.length);

const ready = (page_) => page.waitForSelector(`main[data-page='${page_}'][data-ready='1']`);
const shot = (name, full = true) => page.screenshot({ path: `${shots}/cluster-${name}.png`, fullPage: full });

await drive(browser, page, shots + "/cluster-failure.png", async () => {
  // The runs, then acme's only.
  await page.goto(base + "/");
  await ready("runs");
  await page.waitForSelector("table.runs tbody tr");
  await shot("runs");
  await page.fill("input[name=attr]", "customer=acme");
  await page.click("form.filters button[type=submit]");
  await page.waitForFunction(() => location.search.includes("attr=customer%3Dacme"));
  await page.waitForFunction((ids) => {
    const rows = [...document.querySelectorAll("table.runs tbody tr")];
    return rows.length === ids.length && ids.every((id) => rows.some((r) => r.textContent.includes(id)));
  }, cfg.acme, { timeout: 15000 });
  const rows = await page.$$eval("table.runs tbody tr", (rs) => rs.map((r) => r.textContent));
  check(rows.every((r) => r.includes("customer=acme") && !r.includes("globex")) && !rows.some((r) => r.includes(cfg.globex)),
    `filtered to acme: its ${rows.length} runs, none of globex`);
  await shot("runs-acme");

  // One run: each step in its node's lane, as the API places it.
  await page.click(`a[href='/runs/${acme}']`);
  await ready("run");
  const d = await get(base + "/v1/runs/" + acme);
  const lanes = await page.$$eval("[data-lane]", (ls) => ls.map((l) => l.getAttribute("data-lane")));
  check(["n1", "n2", "n3"].every((n) => lanes.includes(n)), "a lane per node: " + lanes.join(", "));
  const placed = await page.evaluate((steps) => steps.map((s) => ({
    id: s.id, node: s.node, builtin: s.builtin,
    inLane: !!document.querySelector(`[data-lane="${CSS.escape(s.node)}"] [data-step="${CSS.escape(s.id)}"]`),
    lanes: [...document.querySelectorAll(`[data-lane] [data-step="${CSS.escape(s.id)}"]`)].map((b) => b.closest("[data-lane]").getAttribute("data-lane")),
    outcome: document.querySelector(`[data-step="${CSS.escape(s.id)}"]`)?.getAttribute("data-outcome"),
  })), d.steps);
  check(placed.length >= 3 && placed.every((p) => p.inLane && p.lanes.length === 1 && p.outcome === "ok"),
    "each step's bar in the lane of the node GET /v1/runs/{id} says: " + placed.map((p) => `${p.id} ${p.builtin}→${p.lanes.join("+")}`).join(", "));
  await shot("run");

  // A step's details: kv.put, on n2, and why.
  const put = d.steps.find((s) => s.builtin === "kv.put");
  await page.click(`[data-lane="n2"] [data-step="${put.id}"]`);
  await page.waitForSelector(`[data-details="${put.id}"]`);
  const details = await page.textContent(`[data-details="${put.id}"]`);
  check(details.includes("kv.put") && details.includes("n2") && details.includes(put.reason), `step ${put.id}'s details: kv.put, n2, "${put.reason}"`);
  await shot("step-details");

  // A replay check against a changed script: both calls side by side.
  await page.click("button:text('Replay check…')");
  await page.waitForSelector("dialog[open] textarea[name=source]");
  await page.waitForFunction(() => document.querySelector("dialog[open] textarea[name=source]").value.includes("kv.put"));
  const source = await page.inputValue("dialog textarea[name=source]");
  await page.fill("dialog textarea[name=source]", source.replace('kv.put("order/"', 'kv.put("orders/"'));
  await page.check("dialog input[name=against][value=pasted]");
  await shot("replay-dialog", false);
  await page.click("dialog button[value=yes]");
  await page.waitForSelector("section.replay[data-replay]", { timeout: 30000 });
  const verdict = await page.getAttribute("section.replay", "data-replay");
  const calls = await page.$$eval("section.replay .side-by-side .call", (cs) => cs.map((c) => c.textContent));
  check(verdict === "diverged" && calls.length === 2 && calls[0].includes("kv.put") && calls[0].includes("order/acme") &&
    calls[1].includes("kv.put") && calls[1].includes("orders/acme"), `the replay check diverged at kv.put: journaled and new call side by side: ${JSON.stringify(calls)}`);
  await shot("replay");

  // Steps appear live on a running run, without a reload; it goes on until told to stop.
  const slow = await order(base, { customer: "acme", order: 4, until: "live" });
  await known(base, slow);
  await page.goto(base + "/runs/" + slow);
  await ready("run");
  await page.evaluate(() => { window.sameDocument = true; });
  const first = await bars();
  await page.waitForFunction((n) => document.querySelectorAll(".lanes [data-step]").length >= n + 6, first, { timeout: 60000 });
  await shot("run-live");
  await order(base, { customer: "ops", stop: "live" });
  await page.waitForFunction(() => document.querySelector("dl.head")?.textContent.includes("completed"), null, { timeout: 60000 });
  const slowD = await get(base + "/v1/runs/" + slow);
  const live = await page.evaluate(() => ({ same: window.sameDocument === true, bars: document.querySelectorAll(".lanes [data-step]").length,
    rows: document.querySelectorAll("table.steps tbody tr[data-step]").length }));
  check(live.same && first < slowD.steps.length && live.bars === slowD.steps.length && live.rows === slowD.steps.length,
    `steps appear live, no reload: ${first} bars at first, ${live.bars} at the end (${slowD.steps.length} steps)`);
  await shot("run-live-done");

  // Cancel a parked run with a reason.
  await page.goto(base + "/runs/" + cfg.parked);
  await ready("run");
  await page.click("text=Cancel run…");
  await page.fill("dialog input[name=reason]", "customer asked");
  await shot("cancel", false);
  await page.click("dialog button[value=yes]");
  await page.waitForFunction(() => document.querySelector("dl.head")?.textContent.includes("cancelled"), null, { timeout: 30000 });
  const cancelled = await page.textContent("main");
  check(cancelled.includes("panel") && cancelled.includes("customer asked"), "a run cancelled from its page, with the reason");
  await shot("cancelled");

  // The nodes: all three, and n1's placement decisions.
  await page.click("nav a[href='/nodes']");
  await ready("nodes");
  await page.waitForFunction(() => ["n1", "n2", "n3"].every((n) => document.querySelector(`section.node[data-node="${n}"]`)), null, { timeout: 15000 });
  await page.waitForSelector("section.node[data-node='n1'] tr.placement");
  const decisions = await page.$$eval("section.node[data-node='n1'] tr.placement", (trs) => trs.map((t) => [...t.cells].map((c) => c.textContent)));
  check(decisions.some((c) => c[3] === "kv.put" && c[4] === "n2") && decisions.some((c) => c[3] === "kv.get" && c[4] === "n3"),
    `the nodes page: n1, n2, n3; n1 placed kv.put on n2 and kv.get on n3 (${decisions.length} decisions)`);
  await shot("nodes");

  // A script's two versions and their diff.
  await page.goto(base + "/scripts/order");
  await ready("script");
  await page.waitForSelector("section.difffile[data-status='changed']");
  const del = await page.$$eval("table.difftable tr.del td.code", (tds) => tds.map((t) => t.textContent));
  const add = await page.$$eval("table.difftable tr.add td.code", (tds) => tds.map((t) => t.textContent));
  check((await page.$$("table.versions tbody tr")).length === 2 && del.length === 1 && del[0].includes('"one"') && add.length === 1 && add[0].includes('"two"'),
    `the script's versions 1 and 2, one line changed: ${JSON.stringify([del, add])}`);
  await shot("script-diff");
  check(errors.length === 0, "no error in the page's console: " + errors.join("; "));

  // The node the panel came from dies while its page follows a run that n2
  // coordinates, and comes back.
  const startedAt = Date.now() - t0;
  const doomed = await order(cfg.n2, { customer: "initech", order: 6, until: "doomed" });
  await known(base, doomed);
  await page.goto(base + "/runs/" + doomed);
  await ready("run");
  // Its stream is open and has brought events (the first draw is from GET /v1/runs/{id}).
  await page.waitForFunction(() => Number(document.getElementById("main").dataset.events) >= 8, null, { timeout: 60000 });
  const beforeKill = await page.evaluate(() => Number(document.getElementById("main").dataset.events));
  console.log(`(run ${doomed} started on n2 ${((Date.now() - t0 - startedAt) / 1000).toFixed(1)} s before the kill)`);
  check(!(await page.textContent("dl.head")).includes("completed"), `run ${doomed} (coordinator n2) is under way on n1's page: ${beforeKill} events applied`);
  dying = true;
  const killedAt = Date.now() - t0;
  console.log("drover: kill n1");
  await page.waitForSelector("#conn.down", { timeout: 30000 });
  const conn = await page.textContent("#conn");
  check(/unreachable/.test(conn), "the page says n1 is unreachable: " + conn);
  await shot("node-down");
  // Down for longer than one reconnection: the page's stream meets n1's closed port at least once.
  for (const until = Date.now() + 30000; !streamRequests.some((r) => r.run === doomed && r.at > killedAt && r.failure === "net::ERR_CONNECTION_REFUSED");) {
    if (Date.now() > until) throw new Error("the page never tried the stream again while n1 was down: " + JSON.stringify(streamRequests.filter((r) => r.run === doomed)));
    await new Promise((ok) => setTimeout(ok, 50)); // polling interval
  }
  check(true, "the page tried the stream again and met n1's closed port");
  console.log("drover: restart n1");
  await page.waitForFunction(() => !document.querySelector("#conn.down"), null, { timeout: 120000 });
  check(true, "the page says n1 is back");
  // Steps made after the restart appear, then the run is stopped and ends.
  const back = await bars();
  await page.waitForFunction((n) => document.querySelectorAll(".lanes [data-step]").length >= n + 4, back, { timeout: 60000 });
  check(true, `steps go on appearing: ${back} bars when n1 came back, ${await bars()} now`);
  await order(cfg.n2, { customer: "ops", stop: "doomed" });
  await page.waitForFunction(() => document.querySelector("dl.head")?.textContent.includes("completed"), null, { timeout: 60000 });
  const end = await get(cfg.n2 + "/v1/runs/" + doomed);
  // The end's refresh redraws the steps: wait for the bars of every step.
  await page.waitForFunction((n) => document.querySelectorAll(".lanes [data-step]").length >= n, end.steps.length, { timeout: 10000 }).catch(() => {});
  const seen = await page.evaluate(() => {
    const m = document.getElementById("main");
    return { events: Number(m.dataset.events), lastEventId: Number(m.dataset.lastEventId),
      bars: [...document.querySelectorAll(".lanes [data-step]")].map((b) => b.getAttribute("data-step")),
      rows: document.querySelectorAll("table.steps tbody tr[data-step]").length,
      received: window.__received, sources: window.__sources };
  });
  await shot("node-back");
  const requests = streamRequests.filter((r) => r.run === doomed).map((r) => ({ ...r, at: r.at - killedAt }));
  console.log("drover: death " + JSON.stringify({ run: doomed, ...seen, beforeKill, requests }));
  check(seen.bars.length === end.steps.length && new Set(seen.bars).size === end.steps.length,
    `after n1's restart: ${seen.bars.length} bars for ${end.steps.length} steps, each once; the run's end shown`);
});
