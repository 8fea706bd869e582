// The panel's shared pieces: building elements (as text, never HTML),
// reading and writing the node's API, formatting, dialogs and navigation.
// Every page module imports from here; app.js routes between them.

import { take } from "./first.js";

/** @param {string} tag @param {Record<string, any>} [attrs] @param {...any} children @returns {HTMLElement} */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** The page's main element, which each page fills. */
export const main = () => /** @type {HTMLElement} */ (document.getElementById("main"));
const conn = () => /** @type {HTMLElement} */ (document.getElementById("conn"));

/** Marks the node reachable or not. @param {string} [problem] */
export function connection(problem) {
  conn().textContent = problem ? "node unreachable: " + problem : "";
  conn().classList.toggle("down", !!problem);
}

/** GETs a JSON answer of the API; null for a 404. @param {string} url @param {AbortSignal} [signal] */
export async function api(url, signal) {
  let resp;
  try {
    resp = await (take(url) || fetch(url, { headers: { Accept: "application/json" }, signal }));
  } catch (e) {
    if (!signal?.aborted) connection(String(e));
    throw e;
  }
  connection();
  if (resp.status === 404) return null;
  const body = await resp.json();
  if (!resp.ok) throw new Error(body?.error?.message || `HTTP ${resp.status}`);
  return body;
}

/** POSTs body as JSON; the answer's JSON, or throws the API's error message. @param {string} url @param {any} body */
export async function post(url, body) {
  const resp = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body ?? {}) });
  const answer = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error(answer?.error?.message || `HTTP ${resp.status}`);
  return answer;
}

/** A time as the browser's locale writes it. @param {string} t */
export const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "–");

/** A duration in ns, in µs, ms or s. @param {number} ns */
export function fmtDur(ns) {
  if (ns == null) return "–";
  const ms = ns / 1e6;
  if (ms < 1) return (ns / 1e3).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(1) + " ms";
  return (ms / 1000).toFixed(2) + " s";
}

/** Attributes as "k=v k=v". @param {Record<string,string>|undefined} a */
export const attrsText = (a) => Object.entries(a || {}).map(([k, v]) => `${k}=${v}`).join(" ");

/** Characters of a value shown before "show all". */
export const SHOWN = 10000;

/** A value, cut to SHOWN characters with a button to show all. @param {any} v */
export function value(v) {
  const text = typeof v === "string" ? v : JSON.stringify(v, null, 2);
  const pre = h("pre", { class: "mono" }, text.length > SHOWN ? text.slice(0, SHOWN) + "…" : text);
  if (text.length <= SHOWN) return pre;
  const btn = h("button", { type: "button", onclick: () => { pre.textContent = text; btn.remove(); } }, `Show all ${text.length} characters`);
  return h("div", {}, pre, btn);
}

/**
 * Asks before an action: a modal dialog with text, optional extra fields,
 * a button that does it and one that does not. act gets the dialog's form
 * and throws to keep the dialog open with the error shown.
 * @param {{label: string, text: any[], fields?: HTMLElement[], yes: string, no: string,
 *          act: (form: HTMLFormElement) => Promise<void>}} o
 */
export function confirmAction(o) {
  const problem = h("p", { class: "status-failed", role: "alert" });
  const form = /** @type {HTMLFormElement} */ (h("form", { method: "dialog" },
    h("p", {}, ...o.text), ...(o.fields || []), problem,
    h("p", {}, h("button", { type: "submit", value: "yes" }, o.yes), " ",
      h("button", { type: "submit", value: "no", formnovalidate: true }, o.no))));
  const dialog = /** @type {HTMLDialogElement} */ (h("dialog", { "aria-label": o.label }, form));
  form.addEventListener("submit", async (/** @type {SubmitEvent} */ e) => {
    if (/** @type {HTMLButtonElement} */ (e.submitter)?.value !== "yes") return; // the dialog closes
    e.preventDefault();
    try {
      await o.act(form);
    } catch (err) {
      problem.textContent = String(/** @type {Error} */ (err).message || err);
      return;
    }
    dialog.close();
  });
  document.body.append(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
  /** @type {HTMLElement|null} */ (form.querySelector("input, textarea, select, button"))?.focus();
  return dialog;
}

/** @type {(path: string, replace?: boolean) => void} */
let go = () => {};

/** Shows path, adding it to the history (or replacing the entry). @param {string} path @param {boolean} [replace] */
export const navigate = (path, replace) => go(path, replace);

/** Sets what navigate does (app.js). @param {(path: string, replace?: boolean) => void} f */
export function setNavigate(f) {
  go = f;
}

/**
 * Calls f now (or, with later, after ms) and every ms milliseconds until
 * signal aborts, never two at once.
 * @param {() => Promise<void>} f @param {number} ms @param {AbortSignal} signal @param {boolean} [later]
 */
export async function every(f, ms, signal, later = false) {
  for (let first = true; !signal.aborted; first = false) {
    if (!first || !later) await f().catch(() => {});
    await new Promise((ok) => {
      const t = setTimeout(ok, ms);
      signal.addEventListener("abort", () => { clearTimeout(t); ok(undefined); }, { once: true });
    });
  }
}
