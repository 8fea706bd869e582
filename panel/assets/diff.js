// Line diffs of script versions for the scripts page: pure functions, tested
// without a browser (panel/diff_test.mjs).
//
// diffLines is Myers' O((N+M)·D) algorithm on the lines left once the common
// head and tail are cut off, so a small change in a large file costs little.
// Past MAX_EDITS differences it stops aligning and reports the middle as
// removed then added (coarse: true): still a correct diff, only not the
// shortest, and it keeps the page's memory and time bounded.

/**
 * One line of a diff: kept (" "), removed ("-") or added ("+"), with its
 * number in the old version (a) and in the new one (b), 1-based.
 * @typedef {{op: " "|"-"|"+", text: string, a?: number, b?: number}} DiffLine
 */

/** How many differing lines diffLines aligns before it gives up (coarse). */
export const MAX_EDITS = 2000;

/**
 * A source as lines. A final newline ends the last line rather than
 * starting an empty one; "" is no lines at all.
 * @param {string|undefined|null} text @returns {string[]}
 */
export function splitLines(text) {
  if (!text) return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * The line diff turning a into b: every line of a, in order, is kept or
 * removed, every line of b kept or added; removed lines come before the
 * added ones that replace them.
 * @param {string[]} a the old lines @param {string[]} b the new lines
 * @param {number} [maxEdits] differences aligned before giving up (MAX_EDITS)
 * @returns {{lines: DiffLine[], added: number, removed: number, coarse: boolean}}
 */
export function diffLines(a, b, maxEdits = MAX_EDITS) {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  /** @type {DiffLine[]} */
  const lines = [];
  for (let i = 0; i < head; i++) lines.push({ op: " ", text: a[i], a: i + 1, b: i + 1 });
  const midA = a.slice(head, a.length - tail), midB = b.slice(head, b.length - tail);
  const ops = myers(midA, midB, maxEdits);
  const coarse = ops === null;
  let i = 0, j = 0;
  for (const op of ops ?? [...midA.map(() => "-"), ...midB.map(() => "+")]) {
    if (op === " ") lines.push({ op, text: midA[i], a: head + ++i, b: head + ++j });
    else if (op === "-") lines.push({ op, text: midA[i], a: head + ++i });
    else lines.push({ op: "+", text: midB[j], b: head + ++j });
  }
  for (let k = tail; k > 0; k--) lines.push({ op: " ", text: a[a.length - k], a: a.length - k + 1, b: b.length - k + 1 });
  let added = 0, removed = 0;
  for (const l of lines) l.op === "+" ? added++ : l.op === "-" && removed++;
  return { lines, added, removed, coarse };
}

/**
 * Myers' greedy shortest edit script: the ops (" ", "-", "+") turning a into
 * b, removals before additions at each change, or null past maxEdits.
 * @param {string[]} a @param {string[]} b @param {number} maxEdits @returns {string[]|null}
 */
function myers(a, b, maxEdits) {
  const n = a.length, m = b.length;
  if (n === 0 || m === 0) return [...a.map(() => "-"), ...b.map(() => "+")];
  // Lines as numbers, so the inner loop compares integers.
  /** @type {Map<string, number>} */
  const ids = new Map();
  const id = (/** @type {string} */ s) => { let v = ids.get(s); if (v === undefined) ids.set(s, (v = ids.size)); return v; };
  const A = Int32Array.from(a, id), B = Int32Array.from(b, id);
  const max = n + m, off = max + 1;
  const v = new Int32Array(2 * max + 3);
  /** @type {Int32Array[]} */
  const trace = [];
  for (let d = 0; d <= Math.min(max, maxEdits); d++) {
    trace.push(v.slice(off - d, off + d + 1)); // v as it was before step d, diagonals -d..d
    for (let k = -d; k <= d; k += 2) {
      // From diagonal k+1 (an addition) when it reached further, else from k-1 (a removal).
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && A[x] === B[y]) x++, y++;
      v[off + k] = x;
      if (x >= n && y >= m) return backtrack(trace, n, m, d);
    }
  }
  return null;
}

/**
 * Walks the saved frontiers back from (n, m) to (0, 0).
 * @param {Int32Array[]} trace @param {number} n @param {number} m @param {number} dEnd @returns {string[]}
 */
function backtrack(trace, n, m, dEnd) {
  /** @type {string[]} */
  const ops = [];
  let x = n, y = m;
  for (let d = dEnd; d > 0; d--) {
    const vd = trace[d]; // diagonals -d..d at offset d, as they were after step d-1
    const at = (/** @type {number} */ k) => vd[k + d];
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = at(prevK), prevY = prevX - prevK;
    while (x > prevX && y > prevY) ops.push(" "), x--, y--;
    ops.push(prevK === k + 1 ? "+" : "-");
    x = prevX, y = prevY;
  }
  while (x > 0 && y > 0) ops.push(" "), x--, y--;
  ops.reverse();
  return ordered(ops);
}

/**
 * Puts the removals of each run of changes before its additions, so that a
 * changed line reads as "-old" then "+new".
 * @param {string[]} ops @returns {string[]}
 */
function ordered(ops) {
  /** @type {string[]} */
  const out = [];
  let minus = 0, plus = 0;
  const flush = () => { for (; minus > 0; minus--) out.push("-"); for (; plus > 0; plus--) out.push("+"); };
  for (const op of ops) {
    if (op === "-") minus++;
    else if (op === "+") plus++;
    else flush(), out.push(op);
  }
  flush();
  return out;
}

/**
 * Every file of two versions (file name → source) with its diff: "added"
 * (only in b), "removed" (only in a), "changed" or "same", in name order.
 * @param {Record<string,string>} a @param {Record<string,string>} b
 * @returns {{file: string, status: "added"|"removed"|"changed"|"same", lines: DiffLine[], added: number, removed: number, coarse: boolean}[]}
 */
export function diffFiles(a, b) {
  const names = [...new Set([...Object.keys(a || {}), ...Object.keys(b || {})])].sort();
  return names.map((file) => {
    const inA = Object.hasOwn(a || {}, file), inB = Object.hasOwn(b || {}, file);
    const d = diffLines(splitLines(inA ? a[file] : ""), splitLines(inB ? b[file] : ""));
    const status = !inA ? "added" : !inB ? "removed" : d.added || d.removed ? "changed" : "same";
    return { file, status, ...d };
  });
}

/**
 * The lines of a diff in hunks for a unified view: each change with up to
 * context kept lines around it, and a "@@ -a,n +b,m @@" header.
 * @param {DiffLine[]} lines @param {number} [context]
 * @returns {{header: string, lines: DiffLine[]}[]}
 */
export function hunks(lines, context = 3) {
  /** @type {{header: string, lines: DiffLine[]}[]} */
  const out = [];
  let i = 0;
  while (i < lines.length) {
    while (i < lines.length && lines[i].op === " ") i++;
    if (i >= lines.length) break;
    let start = Math.max(0, i - context), end = i;
    // Extend while the next change is within 2·context kept lines.
    for (;;) {
      while (end < lines.length && lines[end].op !== " ") end++;
      let next = end;
      while (next < lines.length && lines[next].op === " ") next++;
      if (next < lines.length && next - end <= 2 * context) end = next;
      else { end = Math.min(lines.length, end + context); break; }
    }
    const part = lines.slice(start, end);
    const aLines = part.filter((l) => l.op !== "+"), bLines = part.filter((l) => l.op !== "-");
    const aStart = aLines[0]?.a ?? before(lines, start, "a"), bStart = bLines[0]?.b ?? before(lines, start, "b");
    out.push({ header: `@@ -${aStart},${aLines.length} +${bStart},${bLines.length} @@`, lines: part });
    i = end;
  }
  return out;
}

/** The line number a hunk with no line on that side starts after. @param {DiffLine[]} lines @param {number} i @param {"a"|"b"} side */
function before(lines, i, side) {
  for (let k = i - 1; k >= 0; k--) if (lines[k][side] != null) return /** @type {number} */ (lines[k][side]);
  return 0;
}

/**
 * The lines of a diff as rows of a side-by-side view: kept lines on both
 * sides, each run of removals beside the additions that replace it.
 * @param {DiffLine[]} lines @returns {{left: DiffLine|null, right: DiffLine|null}[]}
 */
export function sideBySide(lines) {
  /** @type {{left: DiffLine|null, right: DiffLine|null}[]} */
  const rows = [];
  for (let i = 0; i < lines.length;) {
    if (lines[i].op === " ") { rows.push({ left: lines[i], right: lines[i] }); i++; continue; }
    const minus = [], plus = [];
    while (i < lines.length && lines[i].op === "-") minus.push(lines[i++]);
    while (i < lines.length && lines[i].op === "+") plus.push(lines[i++]);
    for (let k = 0; k < Math.max(minus.length, plus.length); k++) rows.push({ left: minus[k] ?? null, right: plus[k] ?? null });
  }
  return rows;
}
