// The latency charts' sampling (latency-charts.js): a long run's scatter draws an even
// sample that ends at the newest point, and its histogram counts every value exactly once.
import assert from "node:assert/strict";
import test from "node:test";

import { binCounts, sampleIndices } from "../latency-charts.js";

test("sampleIndices keeps every point of a short series and an even sample ending at the last of a long one", () => {
  assert.deepEqual(sampleIndices(4, 10), [0, 1, 2, 3]);
  const picked = sampleIndices(100_000, 3000);
  assert.equal(picked.length, 3000);
  assert.equal(picked[0], 0);
  assert.equal(picked.at(-1), 99_999);
  assert.ok(picked.every((v, i) => i === 0 || v > picked[i - 1]));
});

test("binCounts counts every value once, the largest in the last bin", () => {
  const values = Array.from({ length: 10_001 }, (_, i) => i / 100);
  const bins = binCounts(values, 60);
  assert.equal(bins.y.length, 60);
  assert.equal(bins.y.reduce((a, b) => a + b, 0), values.length);
  assert.ok(bins.y.at(-1) > 0);
  assert.deepEqual(binCounts([3, 3, 3], 60), { x: [3.5], y: [3], width: 1 });
  assert.deepEqual(binCounts([], 60), { x: [], y: [], width: 0 });
});
