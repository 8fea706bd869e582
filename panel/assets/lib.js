// Pure helpers of the panel, tested without a browser (panel/lib_test.mjs).

/** Parses a text/event-stream body into its events. @param {string} text */
export function parseEvents(text) {
  const events = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    let kind = "message", data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":") || line === "") continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") kind = value;
      else if (field === "data") data.push(value);
    }
    if (data.length) events.push({ kind, data: data.join("\n") });
  }
  return events;
}

/** Attribute predicates "a=b c=d" (or comma-separated) as URL values. @param {string} text */
export function attrParams(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * The smallest run id (a ULID) of the millisecond ms: runs started before
 * ms have smaller ids, so it is the `before` cursor of "runs until ms".
 * @param {number} ms milliseconds since the epoch
 */
export function ulidAt(ms) {
  let t = Math.max(0, Math.floor(ms));
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = CROCKFORD[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out + "0".repeat(16);
}

/** The time (ms since the epoch) a run id was made at. @param {string} id */
export function ulidTime(id) {
  let t = 0;
  for (const c of id.slice(0, 10)) t = t * 32 + CROCKFORD.indexOf(c);
  return t;
}

/** The filters of the runs page's URL passed on to GET /v1/runs as they are. */
export const RUN_FILTERS = ["status", "script", "version", "node", "since", "before"];

/**
 * The query of GET /v1/runs for the runs page's URL query: its attributes
 * and filters. @param {string|URLSearchParams} search
 */
export function runsFilter(search) {
  const q = new URLSearchParams(search);
  const aq = new URLSearchParams();
  for (const a of q.getAll("attr")) aq.append("attr", a);
  for (const k of RUN_FILTERS) if (q.get(k)) aq.set(k, /** @type {string} */ (q.get(k)));
  return aq;
}

/** The most runs the runs page lists at once. */
export const RUNS_PAGE = 100;

/**
 * The API URL whose answer the page at path (and query search) draws first:
 * the runs page's list, a run page's run; null for the other pages.
 * @param {string} path @param {string} search
 */
export function firstData(path, search) {
  if (path === "/") {
    const aq = runsFilter(search);
    aq.set("limit", String(RUNS_PAGE));
    return "/v1/runs?" + aq.toString();
  }
  const m = path.match(/^\/runs\/([^/]+)$/);
  if (!m) return null;
  try {
    return "/v1/runs/" + encodeURIComponent(decodeURIComponent(m[1]));
  } catch {
    return null; // a malformed escape: the page says so
  }
}
