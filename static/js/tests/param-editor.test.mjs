// The workflow form's row editors (param-editor.js): rows ↔ the JSON value the form submits,
// the example an empty AMQP binding list stands for, and the checks the server makes
// (flows/amqp/spec.py, flows/mqtt/spec.py) applied as the user types.
import assert from "node:assert/strict";
import { test } from "node:test";

import { filterProblem, formatPairs, parsePairs, problems, rowsFromText, SHAPES } from "../param-editor.js";

const AMQP = SHAPES["amqp-bindings"];
const MQTT = SHAPES["mqtt-subscribers"];
const TOPIC = { exchange_type: "topic" };
const HEADERS = { exchange_type: "headers" };
const EXAMPLE = [{ queue: "billing", key: "order.created.*" }, { queue: "alerts", key: "#.failed" }];

test("AMQP bindings: rows and value round-trip, for key and headers exchanges", () => {
  const rows = AMQP.toRows(EXAMPLE, TOPIC);
  assert.deepEqual(rows, [{ queue: "billing", key: "order.created.*" }, { queue: "alerts", key: "#.failed" }]);
  assert.deepEqual(AMQP.toValue(rows, TOPIC), EXAMPLE);
  const headers = [{ queue: "billing", x_match: "all", headers: { type: "order", region: "eu" } }];
  const hrows = AMQP.toRows(headers, HEADERS);
  assert.deepEqual(hrows, [{ queue: "billing", x_match: "all", headers: "type=order, region=eu" }]);
  assert.deepEqual(AMQP.toValue(hrows, HEADERS), headers);
  assert.deepEqual(AMQP.columns(HEADERS).map((c) => c.name), ["queue", "x_match", "headers"]);
  assert.deepEqual(AMQP.columns(TOPIC).map((c) => c.name), ["queue", "key"]);
});

test("an empty binding list is the example for the exchange type; own rows are the value", () => {
  assert.deepEqual(rowsFromText(AMQP, "[]", TOPIC, EXAMPLE), { rows: AMQP.toRows(EXAMPLE, TOPIC), example: true });
  const own = rowsFromText(AMQP, JSON.stringify([{ queue: "q", key: "a.b" }]), TOPIC, EXAMPLE);
  assert.deepEqual(own, { rows: [{ queue: "q", key: "a.b" }], example: false });
  assert.match(rowsFromText(AMQP, "[{", TOPIC, EXAMPLE).error, /does not parse/);
  assert.match(rowsFromText(AMQP, "{}", TOPIC, EXAMPLE).error, /not a list/);
  assert.match(rowsFromText(AMQP, "[1]", TOPIC, EXAMPLE).error, /object/);
  // MQTT has no example: an empty list is an empty table (and the check says so).
  assert.deepEqual(rowsFromText(MQTT, "[]", {}, null), { rows: [], example: false });
  assert.deepEqual(MQTT.check([], {}).table, "at least one subscriber");
});

test("AMQP checks as the server: queue names, key characters, topic words, headers pairs, limits", () => {
  const rows = [{ queue: "billing", key: "order.*" }, { queue: "-bad", key: "a b" }, { queue: "eu", key: "order.eu*" }];
  const result = AMQP.check(rows, TOPIC);
  assert.deepEqual(result.cells[0], {});
  assert.deepEqual(Object.keys(result.cells[1]), ["queue", "key"]);
  assert.match(result.cells[2].key, /whole words/);
  assert.equal(AMQP.check([{ queue: "eu", key: "order.eu*" }], { exchange_type: "direct" }).cells[0].key, undefined);
  assert.deepEqual(problems(AMQP, result)[0], "binding 2, queue: 1-40 letters, digits, '.', '_' or '-', starting with a letter or digit");
  const many = Array.from({ length: 13 }, (_, i) => ({ queue: "q", key: `k${i}` }));
  assert.equal(AMQP.check(many, TOPIC).table, "at most 12 bindings");
  const queues = Array.from({ length: 7 }, (_, i) => ({ queue: `q${i}`, key: "k" }));
  assert.equal(AMQP.check(queues, TOPIC).table, "at most 6 distinct queues");
  assert.match(AMQP.check([{ queue: "q", x_match: "any", headers: "type" }], HEADERS).cells[0].headers, /not name=value/);
});

test("headers text: name=value pairs, repeated names and too many refused", () => {
  assert.deepEqual(parsePairs("type=order, region = eu"), { pairs: { type: "order", region: "eu" }, error: "" });
  assert.deepEqual(parsePairs(""), { pairs: {}, error: "" });
  assert.match(parsePairs("a=1, a=2").error, /twice/);
  assert.match(parsePairs("=x").error, /not name=value/);
  assert.match(parsePairs(Array.from({ length: 9 }, (_, i) => `h${i}=1`).join(",")).error, /at most 8/);
  assert.equal(formatPairs({ type: "order", n: 1 }), "type=order, n=1");
});

test("MQTT subscribers: rows ↔ value, # only as the whole last level, + a whole level, unique names", () => {
  const value = [{ name: "s1", filter: "home/+/temp", qos: 1, clean_session: false, late: false }];
  const rows = MQTT.toRows(value);
  assert.deepEqual(rows, [{ name: "s1", filter: "home/+/temp", qos: "1", clean_session: false, late: false }]);
  assert.deepEqual(MQTT.toValue(rows), value);
  assert.equal(filterProblem("home/#"), "");
  assert.equal(filterProblem("#"), "");
  assert.equal(filterProblem("home/#/temp"), "# must be the whole last level");
  assert.equal(filterProblem("home/ki#"), "# must be the whole last level");
  assert.equal(filterProblem("home/k+"), "+ must be a whole level");
  assert.equal(filterProblem(""), "a filter is needed");
  const result = MQTT.check([...rows, { name: "s1", filter: "a/#/b", qos: "0", clean_session: true, late: false }]);
  assert.deepEqual(result.cells[1], { name: "s1 is used twice", filter: "# must be the whole last level" });
  assert.equal(MQTT.blank(rows).name, "s2");
});
