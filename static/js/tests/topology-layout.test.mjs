// The topology's layout (topology-layout.js): clusters, grids, whole names, and edge
// labels that never overlap a box or each other, for the largest topologies the
// workflows' parameters allow.
import assert from "node:assert/strict";
import test from "node:test";

import {
  clusterOf, curvePoint, estimateWidth, layoutGraph, lineOffsets, MAX_SCALE, MIN_SCALE, overlaps, placeLabels, SIZES, tokenKeyframes, wrapName,
} from "../topology-layout.js";
import { partRanges } from "../panels/kafka-consumer-groups.js";

const PROJECTOR_BOX = { width: 830, height: 320 }; // the topology box at 1280×720

/** kafka-consumer-groups at its maximum: 32 partitions, 4 groups × 8 members (panel.layout's rows). */
function consumerGroups(groups = 4, members = 8, partitions = 32) {
  const nodes = [{ actor: "producer", column: 0, row: 0 }];
  for (let p = 0; p < partitions; p += 1) nodes.push({ actor: `topic:orders/p${p}`, column: 1, row: p });
  ["billing", "shipping", "analytics", "audit"].slice(0, groups).forEach((g, gi) => {
    nodes.push({ actor: `group:${g}`, column: 4, row: gi * (members + 1) });
    for (let m = 1; m <= members; m += 1) {
      nodes.push({ actor: `group:${g}/member-${m}`, column: 3, row: gi * (members + 1) + m - 1,
        texts: { status: "✓ commit", note: "owns p12–p15" } });
    }
  });
  return nodes;
}

function boxes(layout) {
  return [...layout.nodes.entries()].map(([actor, p]) => ({ actor, x: p.x - p.w / 2, y: p.y - p.h / 2, w: p.w, h: p.h }));
}

function assertNoOverlap(list) {
  for (let i = 0; i < list.length; i += 1) {
    for (let j = i + 1; j < list.length; j += 1) {
      assert.ok(!overlaps(list[i], list[j]), `${list[i].actor || i} overlaps ${list[j].actor || j}`);
    }
  }
}

test("clusters are the actor up to its last slash", () => {
  assert.equal(clusterOf("group:billing/member-2"), "group:billing");
  assert.equal(clusterOf("topic:orders/p31"), "topic:orders");
  assert.equal(clusterOf("consumer:billing/1"), "consumer:billing");
  assert.equal(clusterOf("queue:billing"), null);
  assert.equal(clusterOf("producer"), null);
});

test("long names wrap onto two lines at a separator and are never cut", () => {
  const name = "invoices-archive-eu.west-2026-very-long";
  const lines = wrapName(name);
  assert.equal(lines.length, 2);
  assert.equal(lines.join(""), name);
  assert.ok(/[-._/: ]$/.test(lines[0]), `split after a separator: ${lines}`);
  assert.deepEqual(wrapName("billing"), ["billing"]);
  assert.equal(wrapName("x".repeat(40)).join(""), "x".repeat(40)); // no separator: still whole
});

test("4 groups × 8 members and 32 partitions: every box drawn once, none overlapping, legible width", () => {
  const nodes = consumerGroups();
  const layout = layoutGraph(nodes, PROJECTOR_BOX);
  assert.equal(layout.nodes.size, nodes.length);
  assertNoOverlap(boxes(layout));
  assert.ok(layout.scale >= MIN_SCALE, `scale ${layout.scale}`);
  assert.ok(layout.width * layout.scale <= PROJECTOR_BOX.width + 1, `${layout.width} × ${layout.scale} fits the box's width`);
  // Each group is one frame holding its head and all its members; the partitions one more.
  assert.deepEqual(layout.frames.map((f) => f.key).sort(),
    ["group:analytics", "group:audit", "group:billing", "group:shipping", "topic:orders"]);
  for (const frame of layout.frames) {
    for (const line of frame.lines) assert.ok(estimateWidth(line, SIZES.frame, true) + SIZES.framePad <= frame.w, `title fits ${frame.key}`);
    for (const [actor, p] of layout.nodes) {
      const inside = p.x - p.w / 2 >= frame.x && p.x + p.w / 2 <= frame.x + frame.w
        && p.y - p.h / 2 >= frame.y && p.y + p.h / 2 <= frame.y + frame.h;
      const belongs = actor === frame.key || clusterOf(actor) === frame.key;
      assert.equal(inside, belongs, `${actor} ${belongs ? "outside" : "inside"} frame ${frame.key}`);
    }
  }
  // Partitions keep their order: p0 … p31 down the grid's columns.
  const ys = [0, 1, 2].map((p) => layout.nodes.get(`topic:orders/p${p}`).y);
  assert.ok(ys[0] < ys[1] && ys[1] < ys[2], `p0, p1, p2 top to bottom: ${ys}`);
});

test("a member box shows its short name; the frame says which group", () => {
  const layout = layoutGraph(consumerGroups(2, 2, 4), PROJECTOR_BOX);
  const member = layout.nodes.get("group:billing/member-1");
  assert.deepEqual(member.lines.name, ["member-1"]);
  assert.equal(member.lines.type, "");
  const queue = layoutGraph([{ actor: "queue:billing", column: 2, row: null }], PROJECTOR_BOX).nodes.get("queue:billing");
  assert.equal(queue.lines.type, "queue");
  assert.deepEqual(queue.lines.name, ["billing"]);
});

test("boxes are as wide as their text: names and notes are never cut", () => {
  const long = "queue:invoices-archive-eu.west-2026";
  const layout = layoutGraph([{ actor: long, column: 2, row: null, texts: { status: "▼ deliver", note: "5 persons · #3c397e" } }],
    PROJECTOR_BOX);
  const p = layout.nodes.get(long);
  for (const line of p.lines.name) assert.ok(estimateWidth(line, SIZES.name, true) <= p.w - 2 * SIZES.padX + 0.01, line);
  const at = lineOffsets(p.lines, p.h);
  const ys = [at.type, ...at.name, at.status, ...at.note];
  for (let i = 1; i < ys.length; i += 1) assert.ok(ys[i] > ys[i - 1], `lines in order: ${ys}`);
  assert.ok(ys[0] > -p.h / 2 && ys[ys.length - 1] < p.h / 2, "every line inside the box");
});

test("6 queues × 4 consumers with a 29-character queue name fit the box's width, titles whole", () => {
  const queues = ["billing", "shipping", "eu", "alerts", "invoices-archive-eu.west-2026", "audit"];
  const nodes = [{ actor: "producer", column: 0, row: 0 }, { actor: "exchange:orders", column: 1, row: 0 }];
  queues.forEach((q, i) => nodes.push({ actor: `queue:${q}`, column: 2, row: i, texts: { status: "⇢ enqueue" } }));
  queues.forEach((q, i) => [1, 2, 3, 4].forEach((n) => nodes.push({ actor: `consumer:${q}/${n}`, column: 3, row: i,
    texts: { status: "✓ ack" } })));
  const layout = layoutGraph(nodes, PROJECTOR_BOX);
  assert.ok(layout.width * layout.scale <= PROJECTOR_BOX.width + 1, `${layout.width} × ${layout.scale}`);
  assertNoOverlap(boxes(layout));
  const long = layout.frames.find((f) => f.key === "consumer:invoices-archive-eu.west-2026");
  assert.equal(long.lines.join(""), "consumer invoices-archive-eu.west-2026");
  assert.deepEqual(layout.nodes.get("queue:invoices-archive-eu.west-2026").lines.name.join(""), "invoices-archive-eu.west-2026");
});

test("a small topology grows for the back of the room and spreads over the box", () => {
  const layout = layoutGraph([{ actor: "client", column: 0, row: 0 }, { actor: "server", column: 1, row: 0 }], PROJECTOR_BOX);
  assert.equal(layout.scale, MAX_SCALE);
  assert.ok(layout.width * layout.scale <= PROJECTOR_BOX.width + 1 && layout.height * layout.scale <= PROJECTOR_BOX.height + 1);
  assert.ok(layout.width * layout.scale > PROJECTOR_BOX.width * 0.6, "the columns move apart: room for edge labels");
  const client = layout.nodes.get("client");
  const server = layout.nodes.get("server");
  assert.ok(client.x < server.x && Math.abs(client.y - server.y) < 1);
});

test("edge labels: none overlaps a box or another label; a label with no free spot is left out", () => {
  const nodes = consumerGroups();
  const layout = layoutGraph(nodes, PROJECTOR_BOX);
  const obstacles = boxes(layout);
  const labels = [];
  for (let p = 0; p < 32; p += 1) {
    const from = layout.nodes.get(`topic:orders/p${p}`);
    for (const g of ["billing", "shipping", "analytics", "audit"]) {
      const to = layout.nodes.get(`group:${g}/member-${1 + (p % 8)}`);
      const s = { x: from.x + from.w / 2, y: from.y };
      const e = { x: to.x - to.w / 2, y: to.y };
      labels.push({ key: `${p}${g}`, text: `key-${p} → p${p} @3 · 4 in all`, to: `group:${g}/member-${1 + (p % 8)}`,
        curve: { s, c: { x: (s.x + e.x) / 2, y: (s.y + e.y) / 2 - 20 }, e } });
    }
  }
  const spots = placeLabels(labels, obstacles);
  const placed = [...spots.values()].filter(Boolean).map((b) => ({ x: b.x - b.w / 2, y: b.y - b.h / 2, w: b.w, h: b.h }));
  assert.ok(placed.length > 0, "some labels find room");
  assert.ok(placed.length < labels.length, "128 labels do not all fit: the rest are left out");
  assertNoOverlap(placed);
  for (const label of placed) for (const box of obstacles) assert.ok(!overlaps(label, box), `label over ${box.actor}`);
});

test("a label is placed on its own curve, and the same text into the same node is shown once", () => {
  const curve = { s: { x: 0, y: 100 }, c: { x: 200, y: 100 }, e: { x: 400, y: 100 } };
  const spots = placeLabels([
    { key: "a", text: "key order.paid", to: "queue:q", curve },
    { key: "b", text: "key order.paid", to: "queue:q", curve },
    { key: "c", text: "key order.created", to: "queue:q", curve },
  ], []);
  const a = spots.get("a");
  const mid = curvePoint(curve.s, curve.c, curve.e, 0.5);
  assert.ok(Math.abs(a.x - mid.x) < 1 && Math.abs(a.y - mid.y) < 1, "the first label sits in the middle");
  assert.equal(spots.get("b"), null);
  const c = spots.get("c");
  assert.ok(c, "another text finds its own spot");
  assert.ok(!overlaps({ x: a.x - a.w / 2, y: a.y - a.h / 2, w: a.w, h: a.h }, { x: c.x - c.w / 2, y: c.y - c.h / 2, w: c.w, h: c.h }));
});

test("the consumer-group panel's box note names partitions as ranges", () => {
  assert.equal(partRanges([0, 1, 2, 3, 8, 10, 11]), "p0–p3, p8, p10–p11");
  assert.equal(partRanges([]), "none");
  assert.equal(partRanges([5]), "p5");
});

test("a token's keyframes follow its edge's curve from start to end as translate() transforms", () => {
  const curve = { s: { x: 0, y: 0 }, c: { x: 50, y: 100 }, e: { x: 100, y: 0 } };
  const frames = tokenKeyframes(curve, 4);
  assert.equal(frames.length, 5);
  assert.deepEqual(frames.map((f) => f.offset), [0, 0.25, 0.5, 0.75, 1]);
  assert.equal(frames[0].transform, "translate(0.0px, 0.0px)");
  assert.equal(frames[4].transform, "translate(100.0px, 0.0px)");
  const mid = curvePoint(curve.s, curve.c, curve.e, 0.5);
  assert.equal(frames[2].transform, `translate(${mid.x.toFixed(1)}px, ${mid.y.toFixed(1)}px)`);
  assert.equal(tokenKeyframes(curve).length, 9); // 8 straight pieces by default
});
