// Pure functions behind the run page's views and panels, against independent references:
// Kafka's own murmur2 vectors, the MQTT 3.1.1 spec's examples, a hand-encoded protobuf message.
import assert from "node:assert/strict";
import { test } from "node:test";

import { categoryOf, describe } from "../legend.js";
import { decodeWireHex, parseProto } from "../panels/grpc-person.js";
import { murmur2 } from "../panels/kafka-partitions.js";
import { countEffect, entry, keepSelection, laneRouter, partitionLayout, placeActors } from "../panels/kit.js";
import { matches } from "../panels/mqtt-qos.js";
import { defaultColumn, splitActor } from "../topology.js";

const ev = (kind, attrs = {}, extra = {}) => ({ seq: 1, t_ms: 0, kind, actor: "a", message_id: "m1", attempt: 1, duplicate: false, attrs, ...extra });

test("murmur2 is the Java client's (Apache Kafka UtilsTest.testMurmur2 vectors)", () => {
  const vectors = {
    21: -973932308,
    foobar: -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8: -58897971,
    abc: 479470107,
  };
  for (const [key, expected] of Object.entries(vectors)) assert.equal(murmur2(key), expected, key);
});

test("MQTT topic filters match as the spec's examples say", () => {
  const examples = [
    ["sport/tennis/#", "sport/tennis", true], // '#' includes the parent level [MQTT-4.7.1-2]
    ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
    ["sport/+", "sport/", true], // '+' matches an empty level
    ["sport/+", "sport", false],
    ["sport/+", "sport/tennis/player1", false],
    ["+/+", "/finance", true],
    ["#", "$SYS/broker/uptime", false], // [MQTT-4.7.2-1]
    ["+/broker/uptime", "$SYS/broker/uptime", false],
    ["$SYS/#", "$SYS/broker/uptime", true],
  ];
  for (const [filter, topic, expected] of examples) assert.equal(matches(filter, topic), expected, `${filter} ~ ${topic}`);
});

test("the gRPC panel decodes wire bytes against the .proto", () => {
  const schema = parseProto(`syntax = "proto3";
    message Person { int32 id = 1; string name = 2; Address home = 3; }
    message Address { string city = 1; }
    service Persons { rpc Get (Person) returns (Person); }`);
  assert.deepEqual(schema.rpcs.Get, { input: "Person", output: "Person" });
  // id = 150 (varint 96 01), name = "Bob", home = {city: "Oslo"}: encoded by hand.
  const fields = decodeWireHex("0896011203426f621a060a044f736c6f", "Person", schema);
  assert.deepEqual(fields.map((f) => [f.name, f.value]).slice(0, 2), [["id", 150], ["name", "Bob"]]);
  assert.deepEqual(fields[2].value.map((f) => [f.name, f.value]), [["city", "Oslo"]]);
});

test("every event kind has the category the legend documents", () => {
  assert.equal(categoryOf(ev("publish")), "published");
  assert.equal(categoryOf(ev("route")), "routed");
  assert.equal(categoryOf(ev("deliver")), "delivered");
  assert.equal(categoryOf(ev("deliver", {}, { duplicate: true, attempt: 2 })), "duplicate");
  assert.equal(categoryOf(ev("ack")), "acked");
  assert.equal(categoryOf(ev("response", { status: 503 })), "error");
  assert.equal(categoryOf(ev("response", { code: "DEADLINE_EXCEEDED" })), "error");
  assert.equal(categoryOf(ev("response", { code: "OK" })), "acked");
  assert.equal(categoryOf(ev("done", { lost: 2, state: "succeeded" })), "lost");
  assert.equal(categoryOf(ev("done", { state: "succeeded" })), "acked");
  assert.equal(categoryOf(ev("nack")), "error");
  assert.equal(categoryOf(ev("heartbeat")), "other");
});

test("edge labels say what a message carries", () => {
  assert.equal(describe(ev("response", { method: "PUT", path: "/persons/1", status: 200 })), "PUT /persons/1 → 200");
  assert.equal(describe(ev("route", { routing_key: "eu.order" })), "key eu.order");
  assert.equal(describe(ev("route", { topic: "t", partition: 2, key: "key-3", offset: 7 })), "key-3 → p2 @7");
  // Read from p2: the arrow starts at p2's node, so the label does not say it again.
  assert.equal(describe(ev("deliver", { topic: "t", partition: 2, key: "key-3", offset: 7 })), "key-3 @7");
  assert.equal(describe(ev("deliver", { topic: "a/b", qos: 1 }, { duplicate: true })), "↻ a/b qos1");
  assert.equal(describe(ev("process")), "m1");
});

test("the topology places actors by their prefix", () => {
  assert.deepEqual(splitActor("queue:work"), { type: "queue", name: "work" });
  assert.deepEqual(splitActor("runner"), { type: "", name: "runner" });
  assert.deepEqual(["producer", "exchange:orders", "queue:work", "consumer:work/1", "topic:t/p3", "group:billing/member-1", "cache"]
    .map(defaultColumn), [0, 1, 2, 3, 1, 3, 4]);
});

test("the panel kit: fixed places, partition lanes, entries, effects, kept selection", () => {
  const place = placeActors({ client: [0, 0], "worker:": [3] });
  assert.deepEqual(place("client"), { column: 0, row: 0 });
  assert.deepEqual(place("worker:w1"), { column: 3 });
  assert.equal(place("server"), undefined);

  assert.deepEqual(partitionLayout("topic:orders/p4"), { column: 1, row: 4 });
  assert.deepEqual(partitionLayout("producer"), { column: 0, row: 0 });
  assert.equal(partitionLayout("group:billing"), undefined);

  const laneOf = laneRouter();
  assert.equal(laneOf(ev("route", { partition: 1 }, { actor: "topic:t/p1" })), undefined);
  assert.equal(laneOf(ev("deliver", { partition: 1 })), "topic:t/p1");
  assert.equal(laneOf(ev("deliver", { partition: 2 })), undefined);

  const map = new Map();
  const first = entry(map, "k", () => ({ n: 1 }));
  assert.equal(entry(map, "k", () => ({ n: 2 })), first);

  const message = { effects: 0, suppressed: 0 };
  const run = { effects: 0, suppressed: 0 };
  countEffect(ev("process"), "effects", message, run);
  countEffect(ev("process", { effect: false }), "effects", message, run);
  countEffect(ev("process", { effect: true }), "effects", message, run);
  assert.deepEqual([message, run], [{ effects: 2, suppressed: 1 }, { effects: 2, suppressed: 1 }]);

  assert.deepEqual(keepSelection({ selected: "m7", x: 1 }, { selected: null, x: 0 }), { selected: "m7", x: 0 });
});
