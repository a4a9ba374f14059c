// The lesson helpers: where to pause, the question's words and choices, the truth from the run.
import assert from "node:assert/strict";
import { test } from "node:test";

import { choicesFrom, fillTemplate, isRight, pauseIndex, questionChoices, stepUrl, truthOf } from "../lessons.js";

const ev = (seq, kind, actor, message_id, attrs = {}) => ({ seq, kind, actor, message_id, attrs, t_ms: seq });

const redelivery = [
  ev(1, "publish", "publisher", "m-4"),
  ev(2, "deliver", "consumer:work/1", "m-4", { queue: "work" }),
  ev(3, "process", "consumer:work/1", "m-4", { effect: true }),
  ev(4, "crash", "consumer:work/1", "m-4", { consumer: "work/1" }),
  ev(5, "requeue", "queue:work", "m-4"),
  ev(6, "deliver", "consumer:work/2", "m-4", { queue: "work" }),
  ev(7, "process", "consumer:work/2", "m-4", { effect: false }),
  ev(8, "deliver", "group:billing/member-2", "m-5", { partition: 2 }),
];

test("pause_at: the first event matching the log query", () => {
  assert.equal(pauseIndex(redelivery, { query: "kind:crash" }), 3);
  assert.equal(pauseIndex(redelivery, { query: "kind:deliver queue:work" }), 1);
  assert.equal(pauseIndex(redelivery, { query: "kind:rebalance" }), -1);
  assert.equal(pauseIndex(redelivery, undefined), -1);
});

test("the question's words are filled from the paused event; unknown names stay as written", () => {
  const crash = redelivery[3];
  assert.equal(fillTemplate("Will {message} be processed again?", crash), "Will m-4 be processed again?");
  assert.equal(fillTemplate("{actor} / {consumer} / {nope}", crash), "consumer:work/1 / work/1 / {nope}");
  assert.equal(fillTemplate("{message}", null), "{message}");
});

test("choices from the run: queues, consumers, members, partitions, by short name", () => {
  assert.deepEqual(choicesFrom("queues", redelivery), ["work"]);
  const assigns = [ev(1, "assign", "consumer:billing/1", "", { queue: "billing" }), ev(2, "assign", "consumer:eu/1", "", { queue: "eu" })];
  assert.deepEqual(choicesFrom("queues", assigns), ["billing", "eu"], "queues named only in attributes");
  assert.deepEqual(choicesFrom("consumers", redelivery), ["work/1", "work/2"]);
  assert.deepEqual(choicesFrom("members", redelivery), ["billing/member-2"]);
  assert.deepEqual(choicesFrom("partitions", redelivery), ["partition 2"]);
  assert.deepEqual(questionChoices({ choices: ["yes", "no"], choices_from: "queues" }, redelivery), ["yes", "no"]);
  assert.deepEqual(questionChoices({ choices_from: "queues" }, redelivery), ["work"]);
});

test("the truth: a fixed answer with the run's count as evidence, or the count itself", () => {
  const crash = redelivery[3];
  const again = truthOf({ answer: "yes", answer_from: { count: "kind:process message:{message}" } }, redelivery, crash);
  assert.deepEqual(again, { answer: "yes", evidence: "2 events match “kind:process message:m-4”" });
  const effects = truthOf({ answer_from: { count: "kind:process message:{message} effect:true" } }, redelivery, crash);
  assert.equal(effects.answer, "1");
  assert.equal(effects.evidence, "1 event matches “kind:process message:m-4 effect:true”");
});

test("the truth as the distinct values of an attribute, and which choices it makes right", () => {
  const routes = [ev(1, "route", "exchange:orders", "m-1", { queue: "billing" }),
    ev(2, "route", "exchange:orders", "m-1", { queue: "audit" }),
    ev(3, "route", "exchange:orders", "m-2", { queue: "eu" })];
  const truth = truthOf({ answer_from: { values: "kind:route message:{message}", attr: "queue" } }, routes, routes[0]);
  assert.equal(truth.answer, "audit, billing");
  assert.ok(isRight("billing", truth.answer) && isRight("audit", truth.answer));
  assert.ok(!isRight("eu", truth.answer) && !isRight("bill", truth.answer));
  assert.equal(truthOf({ answer_from: { values: "kind:route message:m-9", attr: "queue" } }, routes, null).answer, null);
  assert.ok(!isRight("x", null));
});

test("a step's run page carries the lesson and the step", () => {
  assert.equal(stepUrl(12, "exactly-once", 2), "/runs/12/?lesson=exactly-once&step=2");
});
