// The panel's logs, scripts and nodes pages in a real headless Chromium
// (Debian's chromium, driven by playwright-core): e2e.TestPanelPages deploys
// two versions of the script "greet" (one line differs; a run sleeps on
// version 1), then runs this with
//   node pages.mjs BASE_URL SHOTS_DIR
// It starts runs itself (POST /v1/run/greet) while the logs page follows
// them. It exits non-zero on the first check that fails, saying which.
import { launch, check, drive } from "./harness.mjs";

const [base, shots] = process.argv.slice(2);
const browser = await launch();
// bypassCSP: the checks evaluate in the page, which the panel's CSP forbids; the
// panel must show HTML as text even without its CSP (panel_test.go checks the header).
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
// Expected: the logs page asks the API why it refuses a tail of everything (400),
// and endpoints that a node may not serve yet answer 404 (the page says so).
const expected = (/** @type {string} */ url) => /\/v1\/logs\?/.test(url) || /\/v1\/cluster\/events/.test(url);
page.on("console", (m) => m.type() === "error" && !expected(m.location().url) && errors.push(m.text() + " " + m.location().url));


/** Starts a run of the deployed greet with input, through the node's trigger. */
async function greet(input) {
  const resp = await fetch(base + "/v1/run/greet?async=1", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(input) });
  if (!resp.ok) throw new Error(`POST /v1/run/greet: ${resp.status} ${await resp.text()}`);
}

const ready = () => page.waitForSelector("main[data-ready='1']");

await drive(browser, page, shots + "/failure.png", async () => {
  // The scripts: greet on version 2.
  await page.goto(base + "/");
  await page.click("nav a[href='/scripts']");
  await page.waitForSelector("main[data-page='scripts'][data-ready='1']");
  const row = await page.textContent("tr[data-script='greet']");
  check(row.includes("version 2"), "the scripts page: greet, live on version 2");
  await page.screenshot({ path: shots + "/scripts.png", fullPage: true });

  // Its page: two versions, the sleeping run counted on version 1.
  await page.click("tr[data-script='greet'] a");
  await page.waitForSelector("main[data-page='script'][data-ready='1']");
  check((await page.$$("table.versions tbody tr")).length === 2, "two versions listed");
  await page.waitForFunction(() => document.querySelector("tr[data-version='1']")?.textContent.includes("1 running"));
  const runLink = await page.getAttribute("tr[data-version='1'] a.status-running", "href");
  check(runLink.includes("script=greet") && runLink.includes("version=1") && runLink.includes("status=running"), "version 1's running run, linked: " + runLink);

  // The diff of version 1 and 2: the changed line removed, then added.
  await page.waitForSelector("section.difffile[data-status='changed']");
  const del = await page.$$eval("table.difftable tr.del td.code", (tds) => tds.map((t) => t.textContent));
  const add = await page.$$eval("table.difftable tr.add td.code", (tds) => tds.map((t) => t.textContent));
  const signs = await page.$$eval("table.difftable tr.del td.sign, table.difftable tr.add td.sign", (tds) => tds.map((t) => t.textContent).join(""));
  check(del.length === 1 && del[0].includes('"hello"') && add.length === 1 && add[0].includes('"hi"') && signs === "-+",
    `version 1 → 2: the changed line shown removed (-) then added (+): ${JSON.stringify([del, add, signs])}`);
  await page.screenshot({ path: shots + "/script-diff.png", fullPage: true });
  await page.check("input[name=view][value=side]");
  await page.waitForSelector("table.difftable.side");
  const sideRow = await page.$$eval("table.difftable.side tr", (trs) => trs.map((t) => [...t.querySelectorAll("td.code")].map((c) => c.className + ":" + c.textContent))
    .find((cells) => cells.length === 2 && cells[0].includes("del")));
  check(sideRow && sideRow[0].includes('"hello"') && sideRow[1].includes("add") && sideRow[1].includes('"hi"'), "side by side: the old line beside the new");
  check(new URL(page.url()).search.includes("view=side"), "the view and versions picked are in the URL");
  await page.screenshot({ path: shots + "/script-diff-side.png", fullPage: true });

  // Roll back to version 1, after a confirmation: version 3 is live.
  await page.click("tr[data-version='1'] button.rollback");
  await page.waitForSelector("dialog[open]");
  await page.screenshot({ path: shots + "/script-rollback.png" });
  await page.click("dialog button[value=yes]");
  await page.waitForFunction(() => document.querySelector("dl.head")?.textContent.includes("version 3"));
  const notice = await page.textContent("p.notice");
  check(notice.includes("Version 3 is live") && notice.includes("rollback to version 1"), "rolled back: " + notice);
  const live = await (await fetch(base + "/v1/scripts/greet")).json();
  check(live.version === 3 && live.sources[live.main].includes('"hello"'), "the node's live version is 3, with version 1's source");
  check((await page.textContent("section.source")).includes('"hello"'), "the page shows the new live source");
  await page.screenshot({ path: shots + "/script.png", fullPage: true });
  await page.setViewportSize({ width: 375, height: 800 });
  await page.screenshot({ path: shots + "/script-phone.png", fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // Live logs: no filter is refused, with guidance.
  await page.click("nav a[href='/logs']");
  await page.waitForSelector("main[data-page='logs'][data-ready='1']");
  const guidance = await page.textContent(".guidance");
  check(guidance.includes("customer=acme") && guidance.includes("logs of what?"), "without a filter: guidance and the node's own message");
  await page.screenshot({ path: shots + "/logs-guidance.png", fullPage: true });

  // One customer's lines, live; the filter in the URL.
  await page.fill("input[name=attr]", "customer=acme");
  await page.click("form.filters button[type=submit]");
  await page.waitForFunction(() => location.search.includes("attr=customer%3Dacme"));
  await page.waitForSelector("main[data-page='logs'][data-ready='1'] .logbox");
  check((await page.textContent(".logbox")).includes("No line yet matches: customer=acme"), "an empty tail says what it waits for");
  // The stream opens before the node's tap is in place: warm up with acme runs
  // until one's lines arrive, then clear them.
  for (let i = 0; ; i++) {
    await greet({ customer: "acme", note: "warm-up" });
    const seen = await page.waitForSelector("li.logline >> text=run ended", { timeout: 2000 }).then(() => true, () => false);
    if (seen) break;
    if (i === 10) throw new Error("no line of acme's warm-up runs arrived");
  }
  await page.click("button:text('Clear')");
  await greet({ customer: "globex" });
  await greet({ customer: "acme", note: '<img src=x onerror="window.pwned=1"><b>bold</b>' });
  await page.waitForSelector("li.logline >> text=hello acme");
  await greet({ customer: "globex" });
  await greet({ customer: "acme" });
  // Each run logs its line and the engine's "run ended": 4 lines of acme's two runs.
  await page.waitForFunction(() => document.querySelectorAll("li.logline").length >= 4);
  await new Promise((ok) => setTimeout(ok, 500)); // time for a globex line to show, were it let through
  const lines = await page.$$eval("li.logline", (ls) => ls.map((l) => l.textContent));
  check(lines.length === 4 && lines.filter((l) => l.includes("hello acme")).length === 2 && lines.every((l) => l.includes("customer=acme") && !l.includes("globex")),
    `only acme's lines: ${lines.length}`);
  const runHref = await page.getAttribute("li.logline a.run", "href");
  check(/^\/runs\/[0-9A-Z]{26}$/.test(runHref), "each line links to its run: " + runHref);
  const injected = await page.evaluate(() => ({ img: document.querySelectorAll("main img, main b").length, pwned: window.pwned === 1,
    text: document.querySelector(".logbox").textContent.includes("<img src=x") }));
  check(injected.img === 0 && !injected.pwned && injected.text, "HTML in a log line is shown as text, never run");
  check((await page.getAttribute(".dropped", "data-dropped")) === "0", "the dropped counter is shown, at 0");
  await page.screenshot({ path: shots + "/logs.png", fullPage: true });

  // Pause holds lines; resume shows them.
  await page.click("button:text('Pause')");
  await greet({ customer: "acme" });
  await page.waitForFunction(() => document.querySelector(".held")?.textContent.includes("2 held"));
  check((await page.$$("li.logline")).length === 4, "paused: the new run's 2 lines are held, not shown");
  check((await page.getAttribute("button[aria-pressed=true]", "aria-pressed")) === "true", "the Pause button is pressed");
  await page.screenshot({ path: shots + "/logs-paused.png", fullPage: true });
  await page.click("button:text('Resume')");
  await page.waitForFunction(() => document.querySelectorAll("li.logline").length === 6);
  check(!(await page.textContent(".held")), "resumed: the held lines show");
  await page.setViewportSize({ width: 375, height: 800 });
  await page.screenshot({ path: shots + "/logs-phone.png", fullPage: true });
  await page.setViewportSize({ width: 1280, height: 800 });

  // The back button undoes the filter.
  await page.goBack();
  await page.waitForFunction(() => !location.search.includes("attr="));
  await page.waitForSelector(".guidance");
  check(true, "the back button goes back to the unfiltered page");

  // The nodes: meters, and the coordinator's placement decisions.
  await page.click("nav a[href='/nodes']");
  await page.waitForSelector("main[data-page='nodes'][data-ready='1'] section.node h2");
  const nodeText = await page.textContent("main");
  check(nodeText.includes("n1") && nodeText.includes("cores") && nodeText.includes("github_api"), "the nodes page: n1, its meters and its github_api resource");
  check((await page.$$("section.node meter")).length >= 2, "CPU and memory as meters");
  const nodes = await (await fetch(base + "/v1/nodes")).json();
  if (Array.isArray(nodes.nodes?.[0]?.placements)) {
    await page.waitForSelector("tr.placement");
    const placed = await page.$$eval("tr.placement", (trs) => trs.map((t) => t.textContent));
    check(placed.some((p) => p.includes("kv.put") && p.includes("n1")), `placement decisions: ${placed.length}, kv.put on n1 among them`);
    check(!!(await page.$("tr.placement a[href^='/runs/']")), "each decision links to its run");
  } else {
    check(nodeText.includes("Placement decisions are not available from this node"), "PENDING: GET /v1/nodes has no placements yet; the page says so");
  }
  const cluster = await fetch(base + "/v1/cluster/events?limit=100");
  if (cluster.ok) {
    await page.waitForSelector("section.cluster tr.event-node_joined");
    const joined = await page.textContent("section.cluster tr.event-node_joined");
    check(joined.includes("joined") && joined.includes("n1"), "the cluster section: n1 joined");
  }
  else check(nodeText.includes("Cluster events are not available from this node"), "PENDING: GET /v1/cluster/events answers " + cluster.status + "; the page says so");
  await page.screenshot({ path: shots + "/nodes.png", fullPage: true });

  check(errors.length === 0, "no error in the page's console: " + errors.join("; "));
});
