// The hands-on controls: built from the actions' contract; remembered keys newest first.
import assert from "node:assert/strict";
import { test } from "node:test";

import { blamedField, controlsModel, fieldModel, paramsFrom, recalled, remember, shapeOf, storageKey } from "../hands-on.js";
import { addConsumer, initialConsumers, removeConsumer, withBinding } from "../panels/amqp-routing.js";

// As GET /api/runs/<id>/actions/ answers for an interactive topic amqp-routing run.
const ACTIONS = {
  finish: { label: "Finish", target: null, picks: false, hands_on: true, params: {}, targets: [] },
  publish: { label: "Publish", target: null, picks: false, hands_on: true, targets: [], params: {
    routing_key: { type: "text", default: "", label: "Routing key", help: "The message's routing key (at most 255 bytes)" },
    body: { type: "text", default: "", label: "Body", help: "What the message says (optional)" } } },
  bind: { label: "Bind", target: null, picks: false, hands_on: true, targets: [], params: {
    queue: { type: "text", default: "", label: "Queue", help: "One of the run's queues" },
    binding_key: { type: "text", default: "", label: "Binding key", help: "topic: a pattern" } } },
  slow: { label: "Slow down", target: "consumer", picks: false, hands_on: true, targets: ["consumer:billing/1"],
    params: { delay_ms: { type: "int", default: 500, min: 0, max: 5000, label: "Delay ms", help: "" } } },
  crash_scripted: { label: "Crash consumer", target: "consumer", picks: true, hands_on: false, params: {}, targets: [] },
  cancel: { label: "Cancel run", target: null, picks: false, hands_on: false, params: {}, targets: [] },
};

test("the publish bar, one form per other hands-on action and Finish come from the contract", () => {
  const model = controlsModel(ACTIONS);
  assert.deepEqual(model.publish.fields.map((f) => [f.name, f.input, f.label]),
    [["routing_key", "text", "Routing key"], ["body", "text", "Body"]]);
  assert.deepEqual(model.forms.map((f) => [f.name, f.target]), [["bind", null], ["slow", "consumer"]]);
  assert.equal(model.finish, true);
  // Scripted fault buttons and cancel stay where they were (the actions bar), not here.
  assert.ok(!model.forms.some((f) => f.name === "crash_scripted" || f.name === "cancel"));
  assert.deepEqual(controlsModel({ cancel: ACTIONS.cancel }), { publish: null, forms: [], finish: false });
});

test("each param type gets its input", () => {
  assert.equal(fieldModel("n", { type: "int", min: 0, max: 5 }).input, "number");
  assert.equal(fieldModel("x", { type: "float" }).step, "any");
  assert.equal(fieldModel("h", { type: "json", default: {} }).input, "json");
  assert.equal(fieldModel("m", { type: "choice", choices: ["a", "b"] }).input, "select");
  assert.equal(fieldModel("on", { type: "bool" }).input, "checkbox");
  assert.equal(fieldModel("binding_key", { type: "text" }).label, "binding key");
});

test("a run's menu without a param rebuilds the forms; the same shape does not", () => {
  const a = controlsModel(ACTIONS);
  const headersRun = { ...ACTIONS, publish: { ...ACTIONS.publish, params: { headers: { type: "json", default: {} } } } };
  assert.equal(shapeOf(a), shapeOf(controlsModel({ ...ACTIONS, slow: { ...ACTIONS.slow, targets: [] } })));
  assert.notEqual(shapeOf(a), shapeOf(controlsModel(headersRun)));
});

test("inputs become typed params; empty optional ones are left to the server's default", () => {
  const fields = [fieldModel("routing_key", { type: "text" }), fieldModel("delay_ms", { type: "int" }),
    fieldModel("headers", { type: "json" }), fieldModel("body", { type: "text" }), fieldModel("on", { type: "bool" })];
  assert.deepEqual(paramsFrom(fields, { routing_key: "order.paid", delay_ms: "250", headers: '{"a": "1"}', body: "", on: true }),
    { params: { routing_key: "order.paid", delay_ms: 250, headers: { a: "1" }, on: true }, errors: {} });
  assert.deepEqual(paramsFrom(fields, { headers: "{nope", on: false }).errors, { headers: "is not valid JSON" });
});

test("the last keys are remembered newest first, without repeats, at most ten", () => {
  let keys = [];
  for (const k of ["a", "b", "a", "", "  ", "c"]) keys = remember(keys, k);
  assert.deepEqual(keys, ["c", "a", "b"]);
  for (let i = 0; i < 20; i += 1) keys = remember(keys, `k${i}`);
  assert.equal(keys.length, 10);
  assert.equal(keys[0], "k19");
  assert.equal(storageKey("amqp-routing"), "flows.hands-on.keys.amqp-routing");
  assert.deepEqual(recalled(JSON.stringify(["x", 3, "y"])), ["x", "y"]);
  assert.deepEqual(recalled("{broken"), []);
  assert.deepEqual(recalled(null), []);
});

test("a refusal marks the field it names", () => {
  const fields = controlsModel(ACTIONS).forms[0].fields;
  assert.equal(blamedField(fields, { errors: { binding_key: "billing is bound with order.* already" } }), "binding_key");
  assert.equal(blamedField(fields, { errors: { action: "not offered" } }), null);
});

test("the amqp panel follows bindings and consumers changed by hand", () => {
  const bindings = [{ queue: "billing", key: "order.*", index: 0 }];
  const more = withBinding(bindings, { queue: "billing", key: "*.*.paid", index: 3 });
  assert.deepEqual(more.map((b) => b.index), [0, 3]);
  assert.equal(withBinding(more, { queue: "billing", key: "*.*.paid", index: 3 }), more);
  const consumers = initialConsumers(["billing", "audit"], { billing: 2, audit: 0 });
  assert.deepEqual([...consumers], [["billing", ["billing/1", "billing/2"]], ["audit", []]]);
  assert.equal(addConsumer(consumers, "audit", "audit/1"), true);
  assert.equal(addConsumer(consumers, "audit", "audit/1"), false);
  assert.equal(removeConsumer(consumers, "billing", "billing/2"), true);
  assert.deepEqual(consumers.get("billing"), ["billing/1"]);
});
