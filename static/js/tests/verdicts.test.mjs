// The counters' definitions and the panels' verdicts: one definition per counter, the same
// words as docs/contracts.md, and verdicts computed from the recorded outcome, failures included.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ASYNC_COUNTERS } from "../counters.js";
import { effectsVerdict } from "../panels/amqp-redelivery.js";
import { chargesVerdict, orderOutcome } from "../panels/celery-order.js";
import { postVerdict, putVerdict } from "../panels/http-crud.js";

const CONTRACTS = readFileSync(new URL("../../../docs/contracts.md", import.meta.url), "utf8").replace(/\s+/g, " ");

test("the Duplicates counter says what docs/contracts.md says: the same logical consumer", () => {
  const [, , help] = ASYNC_COUNTERS.duplicates;
  const phrase = "a 2nd+ delivery of a message to the same logical consumer (queue, group, subscriber, task)";
  assert.ok(help.includes(phrase), help);
  assert.ok(CONTRACTS.includes(phrase), "docs/contracts.md defines duplicates in the same words");
  assert.ok(!/same consumer\b/.test(help), "not 'the same consumer': AMQP and Kafka duplicates go to another member");
});

// -- http-crud: the repeated PUT and POST, failures included -------------------------------

const snap = (persons, hash) => ({ persons, hash });
const putStep = (over) => ({ method: "PUT", path: "/persons/1", handled: 3, failed: 0, changed: 1,
  afterFirst: snap(2, "aaa"), afterLastOk: snap(2, "aaa"), after: snap(2, "aaa"), ...over });

test("PUT: three successful PUTs that leave the same state are idempotent", () => {
  const v = putVerdict(putStep({}));
  assert.equal(v.idempotent, true);
  assert.equal(v.category, "acked");
  assert.equal(v.headline, "PUT ×3 → state identical ✓ idempotent");
});

test("PUT: 2 of 3 failed is not '✓ idempotent': one success proves nothing", () => {
  const v = putVerdict(putStep({ failed: 2 }));
  assert.equal(v.idempotent, null);
  assert.notEqual(v.category, "acked");
  assert.ok(!v.headline.includes("✓"), v.headline);
  assert.match(v.explain, /2 of 3 PUTs failed/);
  assert.equal(putVerdict(putStep({ failed: 3, afterFirst: null, afterLastOk: null })).idempotent, null);
});

test("PUT: with failures, the verdict names them and judges only the PUTs that succeeded", () => {
  const v = putVerdict(putStep({ handled: 4, failed: 1 }));
  assert.equal(v.idempotent, true);
  assert.equal(v.headline, "PUT ×4 → 1 of 4 PUTs failed; the 3 that succeeded left the same state ✓ idempotent");
  // The state after the last successful PUT counts, whatever a failed one reported after it.
  const changed = putVerdict(putStep({ handled: 4, failed: 1, afterLastOk: snap(2, "bbb"), after: snap(2, "aaa") }));
  assert.equal(changed.idempotent, false);
  assert.match(changed.headline, /left different states ✗ not idempotent/);
});

test("POST: repeats that created again are not idempotent; failures are named, not counted", () => {
  const base = { method: "POST", path: "/persons", handled: 3, failed: 0, changed: 3, before: snap(1, "x"),
    afterFirst: snap(2, "b"), afterLastOk: snap(4, "d"), after: snap(4, "d"), ids: [2, 3, 4] };
  const v = postVerdict(base);
  assert.equal(v.idempotent, false);
  assert.equal(v.headline, "POST ×3 → 3 new persons ✗ not idempotent");
  const some = postVerdict({ ...base, failed: 1, afterLastOk: snap(3, "c"), after: snap(3, "c"), ids: [2, 3] });
  assert.equal(some.headline, "POST ×3 → 1 of 3 POSTs failed; the 2 that succeeded made 2 new persons ✗ not idempotent");
  const one = postVerdict({ ...base, failed: 2, afterLastOk: snap(2, "b"), after: snap(2, "b"), ids: [2] });
  assert.equal(one.idempotent, null);
});

// -- celery-order: each order's final state and the charges headline from the record -------

const order = (id, over = {}) => ({ id, finished: false, abandoned: false, runs: [{ attempt: 1 }], charges: 1, suppressed: 0, ...over });

test("an order whose task never finished is lost once the run ended, not running", () => {
  const live = { ended: false, acksLate: false, unfinished: null };
  assert.equal(orderOutcome(order("order-1"), live), "running");
  assert.equal(orderOutcome(order("order-1", { runs: [] }), live), "queued");
  assert.equal(orderOutcome(order("order-2", { abandoned: true }), live), "lost");
  // acks_late off: no ack at the end of a task; the result's unfinished list says which ones never finished.
  const ended = { ended: true, acksLate: false, unfinished: ["order-2"] };
  assert.equal(orderOutcome(order("order-1"), ended), "finished");
  assert.equal(orderOutcome(order("order-2"), ended), "lost");
  assert.equal(orderOutcome(order("order-1"), { ...ended, unfinished: null }), "unknown");
  // acks_late on: the ack after the task returned is the finish; none by the end is lost.
  assert.equal(orderOutcome(order("order-1", { finished: true }), { ended: true, acksLate: true, unfinished: null }), "finished");
  assert.equal(orderOutcome(order("order-3"), { ended: true, acksLate: true, unfinished: null }), "lost");
});

test("the charges headline is not a success when a receipt was lost", () => {
  const orders = [1, 2, 3, 4, 5].map((n) => ({ ...order(`order-${n}`), outcome: n === 2 ? "lost" : "finished" }));
  const v = chargesVerdict(orders, { duplicates: 0 });
  assert.equal(v.category, "lost");
  assert.equal(v.lost, 1);
  assert.equal(v.headline, "5 charges for 5 orders · 1 never finished");
  assert.match(v.explain, /order-2 — charged, but the receipt was never sent/);
  const clean = chargesVerdict(orders.map((o) => ({ ...o, outcome: "finished" })), { duplicates: 0 });
  assert.equal(clean.category, "acked");
  assert.equal(clean.headline, "5 charges for 5 orders");
  const twice = chargesVerdict(orders.map((o) => ({ ...o, outcome: "finished", charges: o.id === "order-2" ? 2 : 1 })), { duplicates: 1 });
  assert.equal(twice.category, "error");
  assert.match(twice.explain, /Charged twice: order-2/);
});

// -- amqp-redelivery: "exactly once" only when nothing published is left unprocessed ------

test("the side-effect verdict counts a message never processed by the end as lost", () => {
  const messages = ["m1", "m2", "m3"].map((id) => ({ id, effects: 1, suppressed: 0 }));
  const clean = effectsVerdict(messages, { ended: true });
  assert.equal(clean.headline, "3 effects for 3 messages: exactly once");
  assert.equal(clean.category, "acked");
  const lost = [...messages.slice(0, 2), { id: "m3", effects: 0, suppressed: 0 }];
  assert.equal(effectsVerdict(lost, { ended: false }).headline, "2 effects for 2 messages: exactly once"); // m3 may be in flight
  const ended = effectsVerdict(lost, { ended: true });
  assert.equal(ended.category, "lost");
  assert.equal(ended.headline, "2 effects for 2 of 3 messages · 1 never processed");
  assert.match(ended.explain, /Never processed: m3/);
  const twice = effectsVerdict([{ id: "m1", effects: 2, suppressed: 0 }], { ended: true });
  assert.equal(twice.category, "error");
  assert.match(twice.explain, /Applied twice: m1 ×2/);
  assert.match(effectsVerdict([{ id: "m1", effects: 1, suppressed: 1 }], { ended: true }).explain, /suppressed 1 duplicate/);
});
