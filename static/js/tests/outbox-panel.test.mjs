// The outbox panel's outcomes: the same rules as flows/outbox/outcomes.py once the run ended,
// and only what a crash already decided while it runs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { orderOutcome, outboxVerdict } from "../panels/outbox.js";

const order = (over) => ({ stored: true, effects: 1, suppressed: 0, crashed: false, row: null, ...over });

test("after the run: ok, lost, phantom and duplicate-suppressed as the server says", () => {
  assert.equal(orderOutcome(order({}), true), "ok");
  assert.equal(orderOutcome(order({ effects: 0 }), true), "lost");
  assert.equal(orderOutcome(order({ stored: false }), true), "phantom");
  assert.equal(orderOutcome(order({ suppressed: 1 }), true), "duplicate-suppressed");
  assert.equal(orderOutcome(order({ stored: false, effects: 0 }), true), "lost");
});

test("while it runs: a message not yet delivered is in flight, unless the crash already lost it", () => {
  assert.equal(orderOutcome(order({ effects: 0 }), false), "in flight");
  assert.equal(orderOutcome(order({ effects: 0, crashed: true }), false), "lost");
  // The relay crashed on it, but its outbox row is still there: it will be published again.
  assert.equal(orderOutcome(order({ effects: 0, crashed: true, row: "pending" }), false), "in flight");
  // Delivered before its commit (publish then commit): not a phantom until a crash or the end says so.
  assert.equal(orderOutcome(order({ stored: false }), false), "in flight");
  assert.equal(orderOutcome(order({ stored: false, crashed: true }), false), "phantom");
});

test("the verdict: exactly once only when the run ended with nothing lost or invented", () => {
  const outcomes = (list, ended) => list.map((o, i) => ({ id: `order-${i + 1}`, ...o, outcome: orderOutcome(o, ended) }));
  const clean = outboxVerdict(outcomes([order({}), order({ suppressed: 1 })], true), { ended: true });
  assert.equal(clean.exact, true);
  assert.equal(clean.category, "acked");
  assert.equal(clean.counts["duplicate-suppressed"], 1);
  assert.match(clean.headline, /2 effects for 2 orders: exactly once/);
  const lost = outboxVerdict(outcomes([order({}), order({ effects: 0 })], true), { ended: true });
  assert.equal(lost.category, "lost");
  assert.equal(lost.counts.lost, 1);
  assert.match(lost.explain, /order-2/);
  const phantom = outboxVerdict(outcomes([order({ stored: false })], true), { ended: true });
  assert.equal(phantom.category, "error");
  assert.equal(outboxVerdict(outcomes([order({ effects: 0 })], false), { ended: false }).exact, false);
});
