// The amqp-dead-letter panel's pure parts: the retry queues' TTLs as the workflow declares
// them, where the topology draws the loop, and the verdict on the poison messages per mode.
import assert from "node:assert/strict";
import { test } from "node:test";

import { deadLetterLayout, poisonVerdict, retryDelays } from "../panels/amqp-dead-letter.js";

test("one retry queue per retry, its TTL doubling; none when requeueing", () => {
  assert.deepEqual(retryDelays({ retry_delay_ms: 500, max_attempts: 4 }), [500, 1000, 2000]);
  assert.deepEqual(retryDelays({ retry_delay_ms: 20, max_attempts: 1 }), []);
  assert.deepEqual(retryDelays({ retry_delay_ms: 20, max_attempts: 3, on_failure: "requeue" }), []);
});

test("the loop: retry queues right of the consumers, in order; the DLQ below the work queue", () => {
  assert.deepEqual(deadLetterLayout("queue:retry-2"), { column: 4, row: 2 });
  assert.ok(deadLetterLayout("queue:retry-1").row < deadLetterLayout("queue:retry-2").row);
  assert.equal(deadLetterLayout("consumer:work/1").column, 3);
  assert.equal(deadLetterLayout("queue:dlq").column, deadLetterLayout("queue:work").column);
  assert.ok(deadLetterLayout("queue:dlq").row > deadLetterLayout("queue:work").row);
  assert.equal(deadLetterLayout("queue:other"), undefined);
});

const base = { mode: "dead-letter", poison: ["m3", "m6"], dead: {}, looping: [], dropped: [], replayed: [], maxAttempts: 3,
  ended: false, broker: null };

test("dead-letter: every poison message in the DLQ, the broker agreeing", () => {
  const v = poisonVerdict({ ...base, dead: { m3: 3, m6: 3 }, ended: true, broker: 2 });
  assert.equal(v.category, "acked");
  assert.equal(v.headline, "2 of 2 poison messages dead-lettered after 3 attempts");
  assert.ok(v.explain.some((line) => line.includes("broker counts 2 in the DLQ ✓")));
});

test("dead-letter: one that never reached the DLQ by the end is called lost; a replayed one leaves the count", () => {
  const v = poisonVerdict({ ...base, dead: { m3: 3 }, ended: true, broker: 1 });
  assert.equal(v.category, "lost");
  assert.ok(v.explain.some((line) => line.includes("Never reached the DLQ: m6")));
  const replayed = poisonVerdict({ ...base, dead: { m3: 3, m6: 3 }, replayed: ["m3"], ended: true, broker: 1 });
  assert.ok(replayed.explain.some((line) => line.includes("broker counts 1 in the DLQ ✓")), replayed.explain);
});

test("requeue loops and drop loses: said as such, never as success", () => {
  const looping = poisonVerdict({ ...base, mode: "requeue", looping: ["m3", "m6"], ended: true });
  assert.equal(looping.category, "error");
  assert.match(looping.headline, /2 poison messages looping: requeue forever/);
  const dropped = poisonVerdict({ ...base, mode: "drop", dropped: ["m3", "m6"], ended: true });
  assert.equal(dropped.category, "lost");
  assert.match(dropped.headline, /dropped: lost/);
});
