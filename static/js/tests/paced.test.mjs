// onPacedFrame's pacing (dom.js): a view that draws cheaply draws every frame; a costly one
// waits a multiple of its cost, capped, so the frames between its draws stay short.
import assert from "node:assert/strict";
import test from "node:test";

import { pacedGap } from "../dom.js";

test("a cheap draw waits less than a frame, a costly one a multiple of its cost, never over the cap", () => {
  assert.equal(pacedGap(1, 4, 400), 4);
  assert.equal(pacedGap(30, 4, 400), 120);
  assert.equal(pacedGap(500, 4, 400), 400);
  assert.equal(pacedGap(-2, 4, 400), 0);
});
