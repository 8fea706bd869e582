// The control panel in a real headless Chromium (Debian's chromium, driven by
// playwright-core): e2e.TestPanelInChromium starts an engine with runs for two
// customers and one whose attribute holds HTML, then runs this with
//   node panel.mjs BASE_URL SHOTS_DIR ACME_RUN XSS_RUN SLEEPING_RUN
// It exits non-zero on the first check that fails, saying which.
import { readFileSync } from "node:fs";
import { launch, check, drive } from "./harness.mjs";

const [base, shots, acmeRun, xssRun, sleepingRun] = process.argv.slice(2);
const browser = await launch();
// bypassCSP: the checks evaluate in the page, which the panel's CSP forbids; the
// panel must show HTML as text even without its CSP (panel_test.go checks the header).
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
// The unknown run's 404 is the one error the page is meant to meet.
page.on("console", (m) => m.type() === "error" && !m.location().url.includes("01NOSUCHRUN") && errors.push(m.text()));


await drive(browser, page, shots + "/failure.png", async () => {
  // The runs, then one customer's: the filter goes into the URL.
  await page.goto(base + "/");
  await page.waitForSelector("table tbody tr");
  await page.screenshot({ path: shots + "/runs.png", fullPage: true });
  await page.fill("input[name=attr]", "customer=acme");
  await page.click("button[type=submit]");
  await page.waitForFunction(() => location.search.includes("attr=customer%3Dacme"));
  // At least one row: while the filtered list loads the table is empty, and
  // "every row is acme's" holds of no rows at all.
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("table.runs tbody tr")];
    return rows.length > 0 && rows.every((r) => r.textContent.includes("customer=acme"));
  });
  const rows = await page.$$eval("table.runs tbody tr", (rs) => rs.map((r) => r.textContent));
  check(rows.length >= 1 && rows.every((r) => !r.includes("globex")), `filtered to acme: ${rows.length} rows, none of globex`);
  await page.waitForFunction(() => document.querySelector("nav.counts")?.textContent.includes("completed 2"));
  check(true, "acme's runs counted by status: completed 2");
  await page.screenshot({ path: shots + "/runs-acme.png", fullPage: true });
  // Combined with a status (from the counts) and a time range that holds none of them.
  await page.click("nav.counts a.status-completed");
  await page.waitForFunction(() => location.search.includes("status=completed") && location.search.includes("attr=customer%3Dacme"));
  await page.fill("input[name=until]", "2001-01-01T00:00");
  await page.click("button[type=submit]");
  await page.waitForFunction(() => location.search.includes("before=") && document.querySelector("main[data-ready='1'] p.empty")?.textContent.includes("No run matches"));
  check(true, "attribute, status and a time range combined: no run before 2001");
  await page.goBack();
  await page.goBack();
  await page.waitForFunction(() => location.search.includes("attr=") && !location.search.includes("status="));
  await page.goBack();
  await page.waitForFunction(() => !location.search.includes("attr="));
  check(true, "the back button undoes each filter");

  // One run: its steps with their nodes, its log lines.
  await page.goto(base + "/runs/" + acmeRun);
  await page.waitForSelector("h2:text('Steps')");
  await page.waitForFunction(() => document.body.textContent.includes("checking order"));
  const text = await page.textContent("main");
  check(text.includes("kv.put") && text.includes("n1") && text.includes("co-located"), "each step with the node that ran it and why");
  check(text.includes("checking order"), "the run's log lines");
  await page.screenshot({ path: shots + "/run.png", fullPage: true });

  // HTML in an attribute and a log line is text.
  await page.goto(base + "/runs/" + xssRun);
  await page.waitForFunction(() => document.body.textContent.includes("<img"));
  const injected = await page.evaluate(() => ({ img: document.querySelectorAll("main img").length, pwned: window.pwned === 1 }));
  check(injected.img === 0 && !injected.pwned, "HTML in an attribute is shown as text, never run");
  await page.screenshot({ path: shots + "/run-html-as-text.png", fullPage: true });

  // A run that does not exist.
  await page.goto(base + "/runs/01NOSUCHRUN000000000000000");
  await page.waitForSelector("h1:text('No such run')");
  check(true, "a clear page for a run that does not exist");
  await page.screenshot({ path: shots + "/no-such-run.png", fullPage: true });

  // A run's page follows it live: its parked run wakes, makes its last step
  // and ends, all drawn without a reload.
  // Started here, so that it still sleeps when its page opens however slow the steps before were.
  const order = { name: "order", main: "order.star", files: { "order.star": readFileSync(new URL("order.star", import.meta.url), "utf8") } };
  const started = await fetch(base + "/v1/runs", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ script: order, input: { customer: "initech", order: 6, wait: "3s" } }) });
  const wakingRun = (await started.json()).id;
  await page.goto(base + "/runs/" + wakingRun);
  await page.waitForSelector("h2:text('Steps')");
  await page.evaluate(() => { window.sameDocument = true; });
  const before = await page.textContent("main");
  check(before.includes("running"), "a sleeping run's page shows it running");
  await page.waitForFunction(() => document.querySelector("dl.head")?.textContent.includes("completed"), null, { timeout: 30000 });
  const after = await page.evaluate(() => ({ same: window.sameDocument === true, rows: document.querySelectorAll("table")[0]?.querySelectorAll("tbody tr").length }));
  check(after.same && after.rows === 3, `the run's steps and end appear live, no reload (${after.rows} steps)`);
  await page.screenshot({ path: shots + "/run-live.png", fullPage: true });

  // Cancel a run, with a reason, after a confirmation.
  await page.goto(base + "/runs/" + sleepingRun);
  await page.click("text=Cancel run…");
  await page.fill("dialog input[name=reason]", "customer asked");
  await page.screenshot({ path: shots + "/cancel.png" });
  await page.click("dialog button[value=yes]");
  await page.waitForFunction(() => document.querySelector("dl.head")?.textContent.includes("cancelled"));
  const cancelled = await page.textContent("main");
  check(cancelled.includes("cancelled by panel") && cancelled.includes("customer asked"), "a run cancelled from its page, with the reason");

  // A huge result: cut, with a button that shows it all.
  const huge = await fetch(base + "/v1/runs?wait=1", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ script: { name: "huge", main: "huge.star", files: { "huge.star": "def main(input):\n    return \"<b>\" + \"x\" * 30000\n" } } }) });
  const hugeRun = (await huge.json()).id;
  await page.goto(base + "/runs/" + hugeRun);
  await page.waitForSelector("main[data-ready='1']");
  const cut = await page.evaluate(() => ({
    button: [...document.querySelectorAll("main button")].find((b) => /Show all 30003 characters/.test(b.textContent))?.textContent,
    longest: Math.max(...[...document.querySelectorAll("main pre")].map((p) => p.textContent.length)),
  }));
  check(cut.button && cut.longest < 12000, `a huge result is cut (${cut.longest} characters shown) with "${cut.button}"`);
  await page.click("main button:text('Show all 30003 characters')");
  const whole = await page.evaluate(() => Math.max(...[...document.querySelectorAll("main pre")].map((p) => p.textContent.length)));
  check(whole >= 30003, `"Show all" shows the whole result (${whole} characters)`);
  await page.screenshot({ path: shots + "/huge-result.png" });

  // The nodes: the engine's own, with its meters and its resource.
  await page.click("nav a[href='/nodes']");
  await page.waitForSelector("section.node h2");
  const nodeText = await page.textContent("main");
  check(nodeText.includes("n1") && nodeText.includes("cores") && nodeText.includes("github_api"), "the nodes page: n1, its meters and its github_api resource");
  await page.screenshot({ path: shots + "/nodes.png", fullPage: true });

  check(errors.length === 0, "no error in the page's console: " + errors.join("; "));
});
