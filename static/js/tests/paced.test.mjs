// onPacedFrame's pacing (dom.js): a view that draws cheaply draws every frame; a costly one
// waits a multiple of its cost, capped, so the frames between its draws stay short.
import assert from "node:assert/strict";
import test from "node:test";

import { inViewEnough, pacedGap } from "../dom.js";

test("a cheap draw waits less than a frame, a costly one a multiple of its cost, never over the cap", () => {
  assert.equal(pacedGap(1, 4, 400), 4);
  assert.equal(pacedGap(30, 4, 400), 120);
  assert.equal(pacedGap(500, 4, 400), 400);
  assert.equal(pacedGap(-2, 4, 400), 0);
});

test("an off-screen view waits at least its minimum gap, however cheap its draw", () => {
  assert.equal(pacedGap(1, 20, 1000, 250), 250);
  assert.equal(pacedGap(30, 20, 1000, 250), 600);
  assert.equal(pacedGap(200, 20, 1000, 250), 1000);
  assert.equal(pacedGap(-5, 20, 1000, 250), 250);
});

test("a box counts as watched once 200 px of it, or half of a shorter one, is on screen", () => {
  assert.equal(inViewEnough(0, 1500), false);
  assert.equal(inViewEnough(60, 1500), false); // a panel's title line under the first screen
  assert.equal(inViewEnough(199, 1500), false);
  assert.equal(inViewEnough(200, 1500), true);
  assert.equal(inViewEnough(50, 100), true); // a short panel, half of it shown
  assert.equal(inViewEnough(40, 100), false);
});
