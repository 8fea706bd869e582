// The control panel in Debian's headless Firefox (firefox-esr), driven over
// WebDriver BiDi, the W3C protocol Firefox speaks itself (Playwright needs a
// Firefox of its own build, which cannot be downloaded here).
// e2e.TestPanelInFirefox runs
//   node --experimental-websocket firefox.mjs BASE_URL SHOTS_DIR RUN XSS_RUN
// and it checks that every page draws its data, that HTML in a run's
// attribute is shown as text, and that the page logs no error.
import { spawn } from "node:child_process";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { check } from "./harness.mjs";

const [base, shots, runID, xssRun] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "drover-firefox-"));
const ff = spawn(process.env.FIREFOX || "firefox-esr", ["--headless", "--remote-debugging-port", "0", "--profile", profile, "--no-remote", "about:blank"],
  { stdio: ["ignore", "pipe", "pipe"] });

/** The BiDi endpoint Firefox prints once it listens. */
const endpoint = await new Promise((ok, fail) => {
  let said = "";
  const on = (/** @type {Buffer} */ d) => {
    said += d;
    const m = said.match(/WebDriver BiDi listening on (ws:\/\/\S+)/);
    if (m) ok(m[1]);
  };
  ff.stdout.on("data", on);
  ff.stderr.on("data", on);
  ff.on("exit", (code) => fail(new Error(`firefox exited (${code}): ${said}`)));
  setTimeout(() => fail(new Error("firefox did not open WebDriver BiDi in 60 s: " + said)), 60000);
});

const ws = new WebSocket(endpoint + "/session");
await new Promise((ok, fail) => { ws.addEventListener("open", ok); ws.addEventListener("error", fail); });
let lastID = 0;
const waiting = new Map();
/** @type {string[]} */
const errors = [];
ws.addEventListener("message", (e) => {
  const m = JSON.parse(String(e.data));
  if (m.id && waiting.has(m.id)) {
    waiting.get(m.id)(m);
    waiting.delete(m.id);
  } else if (m.method === "log.entryAdded" && m.params.level === "error") {
    errors.push(m.params.text);
  }
});
/** Sends a BiDi command; its result, or throws its error. @param {string} method @param {any} params */
function send(method, params) {
  return new Promise((ok, fail) => {
    const id = ++lastID;
    waiting.set(id, (/** @type {any} */ m) => (m.type === "error" ? fail(new Error(`${method}: ${m.error}: ${m.message}`)) : ok(m.result)));
    ws.send(JSON.stringify({ id, method, params }));
  });
}

let context = "";
/** Evaluates expr in the page. @param {string} expr */
async function js(expr) {
  const r = await send("script.evaluate", { expression: expr, target: { context }, awaitPromise: true });
  if (r.type === "exception") throw new Error(`${expr}: ${r.exceptionDetails?.text}`);
  return r.result?.value;
}
/** Opens path and waits for its page's first draw with data; returns main's text. @param {string} path @param {string} page */
async function open(path, page) {
  await send("browsingContext.navigate", { context, url: base + path, wait: "complete" });
  const deadline = Date.now() + 15000;
  while (!(await js(`document.querySelector('main[data-page="${page}"][data-ready="1"]') !== null`))) {
    if (Date.now() > deadline) throw new Error(`${path}: the ${page} page did not draw in 15 s: ${await js("document.querySelector('main').textContent")}`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
  return /** @type {string} */ (await js("document.querySelector('main').textContent"));
}
/** Saves a screenshot of the page as name. @param {string} name */
async function shot(name) {
  const r = await send("browsingContext.captureScreenshot", { context, origin: "document" });
  writeFileSync(join(shots, name), Buffer.from(r.data, "base64"));
}

try {
  await send("session.new", { capabilities: {} });
  await send("session.subscribe", { events: ["log.entryAdded"] });
  context = (await send("browsingContext.getTree", {})).contexts[0].context;
  await send("browsingContext.setViewport", { context, viewport: { width: 1280, height: 900 } });
  console.log("ok: " + (await js("navigator.userAgent")));

  let text = await open("/?attr=customer%3Dacme", "runs");
  check(text.includes(runID) && !text.includes("globex"), "runs: acme's, filtered in the URL");
  await shot("firefox-runs.png");
  text = await open("/runs/" + runID, "run");
  check(await js(`document.querySelectorAll("[data-lane] [data-step]").length`) > 0 && text.includes("kv.put"), "a run: its timeline's bars and steps");
  await js(`document.querySelector("[data-lane] [data-step]").click()`);
  const details = await js(`new Promise((ok) => { const t = Date.now(); (function wait() { const d = document.querySelector("[data-details]"); d || Date.now() - t > 5000 ? ok(d?.textContent || "") : setTimeout(wait, 50); })(); })`);
  check(details.includes("kv.put"), "a step's details, from a click on its bar");
  await shot("firefox-run.png");
  await open("/runs/" + xssRun, "run");
  check(await js(`document.querySelectorAll("main img").length === 0 && window.pwned !== 1 && document.querySelector("main").textContent.includes("<img")`),
    "HTML in an attribute is shown as text, never run");
  text = await open("/logs?attr=customer%3Dacme", "logs");
  check(text.includes("customer=acme") || text.includes("Following"), "logs: a live tail of acme");
  text = await open("/scripts", "scripts");
  check(text.includes("No script is deployed yet"), "scripts: none deployed, and how to deploy one");
  text = await open("/nodes", "nodes");
  check(text.includes("n1") && text.includes("cores"), "nodes: n1 and its meters");
  await shot("firefox-nodes.png");
  check(errors.length === 0, "no error in the page's console: " + errors.join("; "));
} catch (e) {
  if (!process.exitCode) {
    console.error("FAIL: " + e);
    process.exitCode = 1;
  }
  await shot("firefox-failure.png").catch(() => {});
} finally {
  ws.close();
  ff.kill();
  await new Promise((ok) => { ff.once("exit", ok); setTimeout(ok, 5000); });
  rmSync(profile, { recursive: true, force: true });
}
