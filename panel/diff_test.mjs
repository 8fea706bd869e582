// Unit tests of the scripts page's line diff: node --test panel/diff_test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { splitLines, diffLines, diffFiles, hunks, sideBySide } from "./assets/diff.js";

/** The diff as "op text" strings, easy to read in a failure. */
const show = (/** @type {any} */ d) => d.lines.map((/** @type {any} */ l) => l.op + l.text);

/** Checks that the diff's kept and removed lines are a, its kept and added b, with their numbers. */
function consistent(/** @type {string[]} */ a, /** @type {string[]} */ b, /** @type {any} */ d) {
  const old = d.lines.filter((/** @type {any} */ l) => l.op !== "+");
  const neu = d.lines.filter((/** @type {any} */ l) => l.op !== "-");
  assert.deepEqual(old.map((/** @type {any} */ l) => l.text), a);
  assert.deepEqual(neu.map((/** @type {any} */ l) => l.text), b);
  assert.deepEqual(old.map((/** @type {any} */ l) => l.a), a.map((_, i) => i + 1));
  assert.deepEqual(neu.map((/** @type {any} */ l) => l.b), b.map((_, i) => i + 1));
}

/** The length of a longest common subsequence, by dynamic programming. */
function lcs(/** @type {string[]} */ a, /** @type {string[]} */ b) {
  let prev = new Array(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const row = [0];
    for (let j = 1; j <= b.length; j++) row[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], row[j - 1]);
    prev = row;
  }
  return prev[b.length];
}

test("splitLines: a final newline ends the last line; empty is no lines", () => {
  assert.deepEqual(splitLines("a\nb\n"), ["a", "b"]);
  assert.deepEqual(splitLines("a\r\nb"), ["a", "b"]);
  assert.deepEqual(splitLines(""), []);
  assert.deepEqual(splitLines(undefined), []);
  assert.deepEqual(splitLines("\n\n"), ["", ""]);
});

test("identical versions: every line kept, nothing added or removed", () => {
  const a = ["def main(input):", "    return 1"];
  const d = diffLines(a, [...a]);
  assert.deepEqual(show(d), [" def main(input):", "     return 1"]);
  assert.equal(d.added + d.removed, 0);
  assert.deepEqual(hunks(d.lines), []);
  assert.deepEqual(diffLines([], []).lines, []);
});

test("a changed line reads as removed then added, with both numbers", () => {
  const d = diffLines(["a", "b", "c"], ["a", "B", "c"]);
  assert.deepEqual(show(d), [" a", "-b", "+B", " c"]);
  assert.deepEqual(d.lines[1], { op: "-", text: "b", a: 2 });
  assert.deepEqual(d.lines[2], { op: "+", text: "B", b: 2 });
  assert.equal(d.added, 1);
  assert.equal(d.removed, 1);
});

test("insertions and deletions in the middle, at the start and at the end", () => {
  assert.deepEqual(show(diffLines(["a", "c"], ["a", "b", "c"])), [" a", "+b", " c"]);
  assert.deepEqual(show(diffLines(["a", "b", "c"], ["a", "c"])), [" a", "-b", " c"]);
  assert.deepEqual(show(diffLines(["b"], ["a", "b"])), ["+a", " b"]);
  assert.deepEqual(show(diffLines(["a", "b"], ["a"])), [" a", "-b"]);
  assert.deepEqual(show(diffLines([], ["x", "y"])), ["+x", "+y"]);
  assert.deepEqual(show(diffLines(["x", "y"], [])), ["-x", "-y"]);
});

test("the diff is a shortest one (as long as the LCS says) on random inputs", () => {
  let seed = 42;
  const rnd = (/** @type {number} */ n) => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
  for (let round = 0; round < 300; round++) {
    const a = Array.from({ length: rnd(30) }, () => "xyzw"[rnd(4)]);
    const b = Array.from({ length: rnd(30) }, () => "xyzw"[rnd(4)]);
    const d = diffLines(a, b);
    consistent(a, b, d);
    const kept = d.lines.filter((l) => l.op === " ").length;
    assert.equal(kept, lcs(a, b), `a=${a.join("")} b=${b.join("")}`);
    assert.equal(d.coarse, false);
    // Removals come before the additions of each change.
    for (let i = 1; i < d.lines.length; i++) assert.ok(!(d.lines[i - 1].op === "+" && d.lines[i].op === "-"), "a + before a -");
  }
});

test("files added and removed between versions, and unchanged ones", () => {
  const files = diffFiles({ "main.star": "a\nb\n", "old.star": "x\n", "same.star": "s\n" },
    { "main.star": "a\nc\n", "new.star": "y\nz\n", "same.star": "s\n" });
  assert.deepEqual(files.map((f) => [f.file, f.status, f.added, f.removed]), [
    ["main.star", "changed", 1, 1],
    ["new.star", "added", 2, 0],
    ["old.star", "removed", 0, 1],
    ["same.star", "same", 0, 0],
  ]);
  assert.deepEqual(show(files[1]), ["+y", "+z"]);
  assert.deepEqual(show(files[2]), ["-x"]);
  assert.deepEqual(diffFiles({}, {}), []);
  // An empty file that is added is still "added", with no line.
  assert.deepEqual(diffFiles({}, { "e.star": "" }).map((f) => [f.status, f.lines.length]), [["added", 0]]);
});

test("a large file with a few changes: exact", () => {
  const a = Array.from({ length: 50000 }, (_, i) => `line ${i}`);
  const b = [...a];
  b[100] = "changed 100";
  b.splice(25000, 0, "inserted");
  b.splice(40000, 3);
  const d = diffLines(a, b);
  consistent(a, b, d);
  assert.equal(d.added, 2);
  assert.equal(d.removed, 4);
  const hs = hunks(d.lines);
  assert.equal(hs.length, 3);
  assert.equal(hs[0].header, "@@ -98,7 +98,7 @@");
});

test("two large files with nothing in common: a correct, coarse diff (the bounded fallback)", () => {
  const a = Array.from({ length: 20000 }, (_, i) => `old ${i}`);
  const b = Array.from({ length: 20000 }, (_, i) => `new ${i}`);
  const d = diffLines(a, b);
  consistent(a, b, d);
  assert.equal(d.coarse, true);
  assert.equal(d.removed, 20000);
  assert.equal(d.added, 20000);
  // Within the limit of edits it is exact, not coarse.
  const small = diffLines(["a", "b", "c"], ["x", "y", "z"], 6);
  assert.equal(small.coarse, false);
  assert.equal(diffLines(["a", "b", "c"], ["x", "y", "z"], 5).coarse, true);
});

test("hunks: context around each change, near changes merged, headers as diff -u writes them", () => {
  const a = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20".split(" ");
  const b = [...a];
  b[1] = "two";
  b[4] = "five";
  b[17] = "eighteen";
  const hs = hunks(diffLines(a, b).lines, 3);
  assert.deepEqual(hs.map((x) => x.header), ["@@ -1,8 +1,8 @@", "@@ -15,6 +15,6 @@"]);
  assert.deepEqual(show({ lines: hs[1].lines }), [" 15", " 16", " 17", "-18", "+eighteen", " 19", " 20"]);
  // A hunk that only adds to an empty file.
  assert.deepEqual(hunks(diffLines([], ["x"]).lines).map((x) => x.header), ["@@ -0,0 +1,1 @@"]);
});

test("sideBySide: removed beside added, kept on both sides, unequal runs padded", () => {
  const rows = sideBySide(diffLines(["a", "b", "c", "d"], ["a", "B", "C", "X", "d"]).lines);
  assert.deepEqual(rows.map((r) => [r.left?.op + (r.left?.text ?? ""), r.right?.op + (r.right?.text ?? "")]), [
    [" a", " a"],
    ["-b", "+B"],
    ["-c", "+C"],
    ["undefined", "+X"],
    [" d", " d"],
  ]);
});
