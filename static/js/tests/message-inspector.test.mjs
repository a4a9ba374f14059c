// The message inspector's journey (message-inspector.js): which events concern a message,
// the cause linked to a redelivery, the reason in full, over a hand-made AMQP redelivery run
// shaped like flows/workflows/amqp_redelivery.py's events.
import assert from "node:assert/strict";
import { test } from "node:test";

import { buildJourney, journeyStats, messageParam, messagesOf, reasonOf, sentence, withMessageParam } from "../message-inspector.js";

let seq = 0;
const ev = (kind, actor, message_id, attrs = {}, extra = {}) =>
  ({ seq: (seq += 1), t_ms: seq * 2, kind, actor, message_id, attempt: 1, duplicate: false, attrs, ...extra });

const REASON = "redelivered: consumer:work/1 crashed after handling it, before its ack; the broker requeued the unacked message and set redelivered";
const EVENTS = [
  ev("publish", "publisher", "m2", { exchange: "jobs", routing_key: "work" }),
  ev("route", "exchange:jobs", "m2", { queue: "work", binding: "work" }),
  ev("publish", "publisher", "m3", { exchange: "jobs", routing_key: "work" }),
  ev("deliver", "consumer:work/1", "m2", { queue: "work", consumer: "work/1", delivery_tag: 2, redelivered: false }),
  ev("process", "consumer:work/1", "m2", { queue: "work", consumer: "work/1", effect: true }),
  // 6: the crash names the message it was handling and, in message_ids, every one it held.
  ev("crash", "consumer:work/1", "m3", { consumer: "work/1", reason: "crashed before ack (crash_at=2)", unacked: ["m2", "m3"], message_ids: ["m2", "m3"] }),
  ev("requeue", "queue:work", "m2", { queue: "work", cause_seq: 6 }),
  ev("deliver", "consumer:work/2", "m2", { queue: "work", consumer: "work/2", delivery_tag: 1, redelivered: true, reason: REASON, cause_seq: 6 },
    { attempt: 2, duplicate: true }),
  ev("process", "consumer:work/2", "m2", { queue: "work", consumer: "work/2", effect: false, reason: REASON,
    suppressed: "already in the inbox: the effect was applied by an earlier delivery" }, { attempt: 2, duplicate: true }),
  ev("ack", "consumer:work/2", "m2", { queue: "work", consumer: "work/2", delivery_tag: 1 }, { attempt: 2, duplicate: true }),
  ev("deliver", "consumer:work/2", "m20", { queue: "work", consumer: "work/2", delivery_tag: 2 }),
];

test("an event concerns its own message and the messages a crash lists", () => {
  assert.deepEqual(messagesOf(EVENTS[5]), ["m3", "m2"]);
  assert.deepEqual(messagesOf(EVENTS[0]), ["m2"]);
  assert.deepEqual(messagesOf({ kind: "rebalance", message_id: "", attrs: { moved: [] } }), []);
  // Celery's crash lists what it was running; the ids are strings, anything else is ignored.
  assert.deepEqual(messagesOf({ kind: "crash", message_id: "", attrs: { running: ["order-2"], message_ids: [3, ""] } }), ["order-2"]);
});

test("the journey has every event of the message, the crash that held it included, and nothing of m20", () => {
  const j = buildJourney(EVENTS, "m2");
  assert.deepEqual(j.steps.map((s) => s.seq), [1, 2, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(j.actors, ["publisher", "exchange:jobs", "consumer:work/1", "queue:work", "consumer:work/2"]);
  assert.equal(j.deliveries, 2);
  assert.equal(j.duplicates, 1);
  assert.equal(j.applied, 1);
  assert.equal(j.suppressed, 1);
  assert.equal(j.took_ms, 18);
  const crash = j.steps.find((s) => s.kind === "crash");
  assert.equal(crash.via, true);
  assert.equal(crash.title, "consumer:work/1 crashed while it held m2 and 1 other message.");
  assert.deepEqual(crash.caused, [8]);
  assert.match(journeyStats(j), /^9 events · 2 deliveries · 1 duplicate · effect applied ×1, suppressed ×1 · /);
});

test("a redelivery names the event that caused it and says why in full sentences", () => {
  const j = buildJourney(EVENTS, "m2");
  const again = j.steps.find((s) => s.seq === 8);
  assert.equal(again.title, "Delivered again to work/2.");
  assert.deepEqual(again.cause, { seq: 6, kind: "crash", actor: "consumer:work/1", inferred: false,
    text: "consumer:work/1 crashed while it held m2 and 1 other message." });
  assert.equal(again.reason, `${sentence(REASON)}`);
  assert.ok(again.reason.length > 114 && again.reason.endsWith("set redelivered."));
  assert.deepEqual(again.facts, ["attempt 2", "delivery tag 1", "redelivered flag set"]);
  const processed = j.steps.find((s) => s.seq === 9);
  assert.equal(processed.title, "Handled by work/2: effect suppressed by the inbox.");
  assert.match(processed.reason, /Already in the inbox: the effect was applied by an earlier delivery\.$/);
  // Said in the sentences, not repeated among the attributes.
  assert.deepEqual(again.attrs.map(([k]) => k), ["queue", "consumer", "delivery_tag", "redelivered"]);
});

test("a cause outside the message's events is looked up by seq; without cause_seq the latest crash that held it is named", () => {
  const kafka = [
    ev("deliver", "group:billing/member-1", "m-4", { group: "billing", member: "member-1", partition: 3, offset: 1 }),
    ev("deliver", "group:billing/member-2", "m-4", { group: "billing", member: "member-2", partition: 3, offset: 1, cause_seq: 99,
      reason: "uncommitted offset after rebalance", why: "member-1 crashed after receiving offset 1 but before committing past it" },
    { attempt: 2, duplicate: true }),
  ];
  const revoke = { seq: 99, kind: "revoke", actor: "group:billing/member-1", message_id: "", attrs: { partitions: [3] } };
  const j = buildJourney(kafka, "m-4", (s) => (s === 99 ? revoke : undefined));
  assert.equal(j.steps[1].cause.seq, 99);
  assert.equal(j.steps[1].cause.text, "Partitions 3 taken from group:billing/member-1 while it held m-4.");
  assert.equal(j.steps[1].reason, "Uncommitted offset after rebalance. member-1 crashed after receiving offset 1 but before committing past it.");
  assert.deepEqual(j.steps[1].facts, ["attempt 2", "p3@1"]);
  assert.equal(j.steps[1].title, "Delivered again to member-2 of group billing.");

  // An older run: no cause_seq, the crash held it (unacked).
  const old = EVENTS.map((e) => ({ ...e, attrs: Object.fromEntries(Object.entries(e.attrs).filter(([k]) => k !== "cause_seq" && k !== "message_ids")) }));
  const again = buildJourney(old, "m2").steps.find((s) => s.seq === 8);
  assert.equal(again.cause.seq, 6);
  assert.equal(again.cause.inferred, true);
});

test("reasons become sentences; an empty journey says so", () => {
  assert.equal(sentence("crashed before ack"), "Crashed before ack.");
  assert.equal(sentence("Done!"), "Done!");
  assert.equal(sentence("member-1 gave the partition up"), "member-1 gave the partition up.");
  assert.equal(reasonOf({ attrs: {} }), "");
  const none = buildJourney(EVENTS, "m-404");
  assert.deepEqual(none.steps, []);
  assert.equal(journeyStats(none), "no events revealed yet");
});

test("the shareable URL: ?message= is read, set and removed, other parameters kept", () => {
  assert.equal(messageParam("?message=m-4&x=1"), "m-4");
  assert.equal(messageParam(""), "");
  assert.equal(withMessageParam("http://h/runs/3/?present=1", "m 4"), "http://h/runs/3/?present=1&message=m+4");
  assert.equal(withMessageParam("http://h/runs/3/?message=m-4&present=1", ""), "http://h/runs/3/?present=1");
});
