// Unit tests of the live logs page's tail (what is drawn, held while paused,
// dropped and counted): node --test panel/logs_test.mjs
import { test } from "node:test";
import assert from "node:assert/strict";
import { Tail, KEEP, HOLD } from "./assets/logs.js";

test("lines go to the next flush, at most keep of them, the newest", () => {
  const t = new Tail(3, 10);
  for (let i = 1; i <= 5; i++) assert.equal(t.add(i), true);
  assert.deepEqual(t.take(), [3, 4, 5]);
  assert.deepEqual(t.take(), []);
  assert.equal(t.received, 5);
  // Far more than keep between two flushes (a hidden tab): memory stays bounded.
  for (let i = 0; i < 100; i++) t.add(i);
  assert.ok(t.pending.length <= 6);
  assert.deepEqual(t.take(), [97, 98, 99]);
});

test("paused: lines are held, not drawn; resume draws them in order", () => {
  const t = new Tail(100, 10);
  t.add("a");
  t.take();
  t.pause();
  assert.equal(t.add("b"), false);
  assert.equal(t.add("c"), false);
  assert.equal(t.held, 2);
  assert.deepEqual(t.take(), []);
  t.resume();
  assert.equal(t.held, 0);
  assert.deepEqual(t.take(), ["b", "c"]);
  assert.equal(t.droppedPaused, 0);
});

test("paused past the cap: the oldest held lines are dropped and counted, exactly", () => {
  const t = new Tail(100, 10);
  t.pause();
  for (let i = 1; i <= 25; i++) t.add(i);
  assert.equal(t.held, 10);
  assert.equal(t.droppedPaused, 15);
  for (let i = 26; i <= 2000; i++) t.add(i); // past the batch the buffer is trimmed at
  assert.ok(t.buf.length <= 10 + 512, "the held buffer stays bounded");
  assert.equal(t.held, 10);
  assert.equal(t.droppedPaused, 1990);
  t.resume();
  assert.deepEqual(t.take(), [1991, 1992, 1993, 1994, 1995, 1996, 1997, 1998, 1999, 2000]);
  assert.equal(t.droppedPaused, 1990, "the count stays after resuming");
  assert.equal(t.received, 2000);
});

test("the node's dropped notes add up", () => {
  const t = new Tail();
  t.dropped(120);
  t.dropped("3");
  t.dropped(undefined);
  assert.equal(t.droppedByNode, 123);
  assert.equal(KEEP, 5000);
  assert.equal(HOLD, 5000);
});
