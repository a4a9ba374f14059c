// The Kafka panels' pure helpers for what hand actions add: keys typed by hand, members added by hand.
import assert from "node:assert/strict";
import test from "node:test";

import { memberRow } from "../panels/kafka-consumer-groups.js";
import { keyFacts, keyMessageMoved, keyOrder, keyShort, offsetsText } from "../panels/kafka-partitions.js";

test("keyShort shortens the run's keys and cuts long keys typed by hand", () => {
  assert.equal(keyShort("key-3"), "k3");
  assert.equal(keyShort("order-1"), "order-1");
  assert.equal(keyShort("key-3-extra"), "key-3-ext…");
  assert.equal(keyShort("x".repeat(200)).length, 10);
});

test("keyOrder puts the run's keys by number first, then hand keys as they came", () => {
  const keys = [
    { key: "zeta", first: 0 }, { key: "key-10", first: 1 }, { key: "alpha", first: 2 }, { key: "key-2", first: 3 },
  ];
  assert.deepEqual([...keys].sort(keyOrder).map((k) => k.key), ["key-2", "key-10", "zeta", "alpha"]);
});

test("memberRow keeps every member of a group inside its group's block, added ones too", () => {
  const slots = 8;
  assert.equal(memberRow(0, 1, slots), 0);
  assert.equal(memberRow(0, 8, slots), 7);
  assert.equal(memberRow(1, 1, slots), 9); // the next group's block starts after a spacer row
  // A replacement numbered past the bound stays in its group's last row, not the next group's first.
  assert.ok(memberRow(0, 12, slots) < memberRow(1, 1, slots));
});

test("offsetsText shows a few offsets whole and thousands as their ends with how many are left out", () => {
  assert.equal(offsetsText([0, null, 2]), "0 → ? → 2");
  const many = Array.from({ length: 2500 }, (_, i) => i);
  const text = offsetsText(many, 2);
  assert.equal(text, "0 → 1 → … 2496 more … → 2498 → 2499");
  assert.equal(offsetsText(many.slice(0, 5), 2), "0 → 1 → 2 → 3 → 4");
});

test("keyFacts: a key's partitions, whether its hash agrees, and whether its offsets keep send order", () => {
  const sent = (...pairs) => pairs.map(([partition, offset]) => ({ partition, offset }));
  assert.deepEqual(keyFacts({ expected: 2, sent: sent([2, 0], [2, null], [2, 5]) }),
    { landed: [2], agrees: true, ordered: true, offsets: "0 → ? → 5" });
  const moved = keyFacts({ expected: 2, sent: sent([2, 0], [1, 3]) });
  assert.deepEqual([moved.landed, moved.agrees, moved.ordered], [[2, 1], false, false]);
  assert.equal(keyFacts({ expected: 0, sent: sent([0, 4], [0, 2]) }).ordered, false);
  assert.equal(keyFacts({ expected: 0, sent: sent([0, 4], [0, 4]) }).ordered, false); // the same offset twice
  assert.deepEqual(keyFacts({ expected: 0, sent: [] }), { landed: [], agrees: false, ordered: true, offsets: "" });
});

test("keyFacts reads a key's settled messages once, and again after one of them moved", () => {
  let reads = 0;
  const message = (partition, offset) => {
    const msg = { partition };
    let value = offset;
    Object.defineProperty(msg, "offset", { get: () => { reads += 1; return value; }, set: (v) => { value = v; } });
    return msg;
  };
  const k = { expected: 1, sent: Array.from({ length: 100 }, (_, i) => message(1, i)) };
  k.sent.push(message(1, null), message(1, 200));
  assert.deepEqual(keyFacts(k), { landed: [1], agrees: true, ordered: true,
    offsets: "0 → 1 → 2 → 3 → 4 → 5 → 6 → 7 → … 86 more … → 94 → 95 → 96 → 97 → 98 → 99 → ? → 200" });
  reads = 0;
  keyFacts(k);
  // The first and last eight for the text, and the two from the first unknown offset on (a few
  // reads each): not the 102 a look at every message takes.
  assert.ok(reads <= 30, `${reads} offsets read`);
  // A settled message moves back: the order is broken, as a fresh look at every message says.
  k.sent[50].offset = 10;
  keyMessageMoved(k, 50);
  assert.equal(keyFacts(k).ordered, false);
  // The unknown offset arrives lower than its predecessor's: out of order too.
  const fresh = { expected: 1, sent: [message(1, 5), message(1, null), message(1, 9)] };
  assert.equal(keyFacts(fresh).ordered, true);
  fresh.sent[1].offset = 3;
  assert.equal(keyFacts(fresh).ordered, false);
});
