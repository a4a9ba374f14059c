// The event log's query language (log-query.js): each term type, exact message ids, free
// text and input that must not throw, over a hand-made Kafka-like run.
import assert from "node:assert/strict";
import { test } from "node:test";

import { compileQuery, parseQuery } from "../log-query.js";

let seq = 0;
const ev = (kind, actor, message_id, attrs = {}, extra = {}) =>
  ({ seq: (seq += 1), t_ms: seq, kind, actor, message_id, attempt: 1, duplicate: false, attrs, ...extra });

const EVENTS = [
  ev("publish", "producer", "m-1", { topic: "orders", partition: 3, offset: 1, key: "key-4" }),
  ev("deliver", "group:billing/member-2", "m-1", { topic: "orders", partition: 3, offset: 1, key: "key-4", group: "billing", member: "member-2" }),
  ev("deliver", "group:shipping/member-2", "m-1", { partition: 3, offset: 1, key: "key-4", group: "shipping", member: "member-2" },
    { attempt: 2, duplicate: true }),
  ev("publish", "producer", "m-10", { topic: "orders", partition: 1, offset: 12, key: "key-40" }),
  ev("deliver", "group:billing/member-1", "m-10", { partition: 1, offset: 12, key: "key-40", group: "billing", member: "member-1" }),
  ev("publish", "producer", "m-12", { topic: "orders", partition: 0, offset: 1, key: "key-4" }),
  ev("route", "exchange:orders", "a-7", { routing_key: "order.created", queue: "billing", reason: "first delivery" }),
  ev("crash", "group:billing/member-2", "", { group: "billing", member: "member-2", note: "has spaces in it" }),
  ev("done", "runner", "", { state: "succeeded", lost: 0 }),
];

const seqs = (query) => EVENTS.filter(compileQuery(query)).map((e) => e.seq);
const where = (fn) => EVENTS.filter(fn).map((e) => e.seq);

test("an empty or blank query matches every event", () => {
  assert.deepEqual(seqs(""), where(() => true));
  assert.deepEqual(seqs("   "), where(() => true));
  assert.deepEqual(seqs(undefined), where(() => true));
});

test("actor: the whole actor or the part after a ':' or '/'", () => {
  const member2 = where((e) => e.actor.endsWith("/member-2"));
  assert.equal(member2.length, 3);
  assert.deepEqual(seqs("actor:member-2"), member2);
  assert.deepEqual(seqs("actor:MEMBER-2"), member2);
  assert.deepEqual(seqs("actor:billing/member-2"), where((e) => e.actor === "group:billing/member-2"));
  assert.deepEqual(seqs("actor:group:billing/member-2"), where((e) => e.actor === "group:billing/member-2"));
  assert.deepEqual(seqs("actor:producer"), where((e) => e.actor === "producer"));
  assert.deepEqual(seqs("actor:member"), [], "a part of a name is not the name");
  assert.deepEqual(seqs("actor:billing"), [], "billing is a group, not the last part of a member");
});

test("kind:, duplicate:, attempt:, seq:", () => {
  assert.deepEqual(seqs("kind:deliver"), where((e) => e.kind === "deliver"));
  assert.deepEqual(seqs("kind:DELIVER"), where((e) => e.kind === "deliver"));
  assert.deepEqual(seqs("duplicate:true"), where((e) => e.duplicate));
  assert.deepEqual(seqs("duplicate:yes"), where((e) => e.duplicate));
  assert.deepEqual(seqs("duplicate:false"), where((e) => !e.duplicate));
  assert.deepEqual(seqs("attempt:2"), where((e) => e.attempt === 2));
  assert.deepEqual(seqs("seq:4"), [4]);
});

test("message: and a bare message id match that message exactly, never m-10…m-19", () => {
  const m1 = where((e) => e.message_id === "m-1");
  assert.equal(m1.length, 3);
  assert.deepEqual(seqs("message:m-1"), m1);
  assert.deepEqual(seqs("id:m-1"), m1);
  assert.deepEqual(seqs("message_id:M-1"), m1);
  assert.deepEqual(seqs("m-1"), m1);
  assert.deepEqual(seqs("m-10"), where((e) => e.message_id === "m-10"));
  assert.deepEqual(seqs("message:m-1*"), where((e) => e.message_id.startsWith("m-1")));
  assert.deepEqual(seqs("message:m-"), []);
});

test("attributes: partition:, offset:, key: (also AMQP's routing_key) and any other name", () => {
  assert.deepEqual(seqs("partition:3"), where((e) => e.attrs.partition === 3));
  assert.deepEqual(seqs("offset:1"), where((e) => e.attrs.offset === 1));
  assert.deepEqual(seqs("key:key-4"), where((e) => e.attrs.key === "key-4"));
  assert.deepEqual(seqs("key:key-*"), where((e) => String(e.attrs.key).startsWith("key-")));
  assert.deepEqual(seqs("key:order.created"), where((e) => e.attrs.routing_key === "order.created"));
  assert.deepEqual(seqs("member:member-2"), where((e) => e.attrs.member === "member-2"));
  assert.deepEqual(seqs("state:succeeded"), where((e) => e.kind === "done"));
  assert.deepEqual(seqs('note:"has spaces in it"'), where((e) => e.kind === "crash"));
  assert.deepEqual(seqs("reason:first*"), where((e) => e.attrs.reason === "first delivery"));
  assert.deepEqual(seqs("nosuch:thing"), [], "an unknown field matches an attribute of that name, here none");
});

test("terms are ANDed", () => {
  const want = where((e) => e.kind === "deliver" && e.actor.endsWith("/member-2") && e.attrs.partition === 3 && e.duplicate);
  assert.equal(want.length, 1);
  assert.deepEqual(seqs("actor:member-2 partition:3 kind:deliver duplicate:true key:key-4 offset:1"), want);
  assert.deepEqual(seqs("kind:deliver duplicate:true actor:member-1"), []);
});

test("free text searches what a row shows; numbers match whole", () => {
  assert.deepEqual(seqs("member-2"), where((e) => e.actor.endsWith("member-2") || e.attrs.member === "member-2"));
  assert.deepEqual(seqs("key-4"), where((e) => e.attrs.key === "key-4"));
  assert.deepEqual(seqs("offset=1"), where((e) => e.attrs.offset === 1));
  assert.deepEqual(seqs("billing"), where((e) => JSON.stringify(e).includes("billing")));
  assert.deepEqual(seqs("CRASH"), where((e) => e.kind === "crash"));
  assert.deepEqual(seqs("deliver member-2"), where((e) => e.kind === "deliver" && e.actor.endsWith("member-2")));
  assert.deepEqual(seqs('"has spaces"'), where((e) => e.kind === "crash"));
  assert.deepEqual(seqs("group:billing/member-2"), where((e) => e.actor === "group:billing/member-2"),
    "a pasted actor finds its events although 'group' is also an attribute");
});

test("bad input never throws: malformed terms are free text", () => {
  assert.deepEqual(parseQuery("duplicate:maybe :x x: a:b"), [
    { field: null, value: "duplicate:maybe" },
    { field: null, value: ":x" },
    { field: null, value: "x:" },
    { field: "a", value: "b" },
  ]);
  assert.deepEqual(parseQuery('kind:deliver "unclosed quote'), [
    { field: "kind", value: "deliver" },
    { field: null, value: "unclosed quote" },
  ]);
  for (const query of ["duplicate:maybe", ":", "::", "(", "[a-", "key:(", "*", "key:*", '"', 'a:"', "\\", "1:2:3", "a:[", "^$"]) {
    assert.doesNotThrow(() => EVENTS.filter(compileQuery(query)), query);
  }
  assert.deepEqual(seqs("duplicate:maybe"), []);
  assert.deepEqual(seqs("key:*"), where((e) => "key" in e.attrs || "routing_key" in e.attrs));
  assert.deepEqual(seqs("(["), []);
});
