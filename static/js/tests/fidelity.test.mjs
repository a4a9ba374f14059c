// fidelity.js: the line naming the mode and why, and a flow frame's edges with their rates.
import assert from "node:assert/strict";
import test from "node:test";

import { edgeRates, fidelityLine, rateText } from "../fidelity.js";

test("the line says sampled, since when, why, and how many events were counted", () => {
  const line = fidelityLine({ mode: "sampled", why: "planned 1000000 completions > 20000", switched_at_seq: 2400, counted: 160840 }, "auto");
  assert.equal(line.mode, "sampled");
  assert.match(line.text, /^Fidelity: sampled since event 2400 \(planned 1000000 completions > 20000\)/);
  assert.match(line.text, /160,840 events counted/);
});

test("an auto run not (yet) sampled says full and that it may switch; a workflow without the param says nothing", () => {
  const line = fidelityLine({ mode: "full", why: "", switched_at_seq: null, counted: 0 }, "auto");
  assert.equal(line.mode, "full");
  assert.match(line.text, /^Fidelity: full — every event .* \(auto: /);
  assert.equal(fidelityLine({ mode: "full", why: "", switched_at_seq: null, counted: 0 }, undefined), null);
  assert.equal(fidelityLine(null, "sampled").mode, "sampled");
});

test("edgeRates gives each edge's count per second of the frame's window", () => {
  const edges = edgeRates({ window_ms: 250, edges: [
    { from: "producer", to: "topic:orders/p2", kind: "route", count: 812, total: 40210 },
    { from: "", to: "consumer:reader", kind: "deliver", count: "3" }] });
  assert.deepEqual(edges, [
    { from: "producer", to: "topic:orders/p2", kind: "route", count: 812, perSecond: 3248 },
    { from: "", to: "consumer:reader", kind: "deliver", count: 3, perSecond: 12 }]);
  assert.equal(edgeRates({ window_ms: 0, edges: [{ from: "a", to: "b", kind: "route", count: 1 }] })[0].perSecond, null);
  assert.deepEqual(edgeRates({}), []);
});

test("rateText keeps rates short", () => {
  assert.equal(rateText(3248), "3.2k/s");
  assert.equal(rateText(41000), "41k/s");
  assert.equal(rateText(85.4), "85/s");
  assert.equal(rateText(0.5), "0.5/s");
  assert.equal(rateText(null), "");
});
