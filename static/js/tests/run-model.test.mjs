// run-model.js against the fixtures flows/tests/test_summary.py feeds to flows/summary.py:
// the same event sequences must give the same figures here as on the server.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { compareSummaries, latencyStats, mergeSorted, progressOf, progressText, RunModel } from "../run-model.js";

const FIXTURES = new URL("../../../flows/tests/fixtures/summary/", import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8"));
const EVENT_FIXTURES = readdirSync(FIXTURES).filter((name) => name.endsWith(".json") && name !== "latency_stats.json").sort();

function assertStats(actual, expected, what) {
  for (const [stat, value] of Object.entries(expected)) {
    if (value === null) assert.equal(actual[stat], null, `${what} ${stat}`);
    else assert.ok(Math.abs(actual[stat] - value) < 1e-9, `${what} ${stat}: ${actual[stat]}, expected ${value}`);
  }
}

function snapshotOf(events) {
  const model = new RunModel();
  for (const ev of events) model.feed(ev);
  return model.snapshot();
}

test("the fixtures are found", () => {
  assert.ok(EVENT_FIXTURES.includes("async_redelivery.json"));
  assert.ok(EVENT_FIXTURES.length >= 3);
});

for (const name of EVENT_FIXTURES) {
  test(`counts follow the rules: ${name}`, () => {
    const { events, expected } = load(name);
    const s = snapshotOf(events);
    assert.deepEqual(s.counts, expected.counts);
    assert.deepEqual(s.completed, expected.completed);
    assert.deepEqual(s.planned, expected.planned);
    assert.deepEqual(s.kinds, expected.kinds);
    for (const series of ["perceived", "end_to_end"]) assertStats(s.latency_ms[series], expected.latency_ms[series], series);
    if ("sampled" in expected.latency_ms) assert.equal(s.latency_ms.sampled, expected.latency_ms.sampled);
    if (expected.fidelity) assert.deepEqual(s.fidelity, expected.fidelity);
    assert.equal(s.last_seq, expected.last_seq);
    assert.equal(s.elapsed_ms, expected.elapsed_ms);
  });

  test(`the page's cross-check accepts the server's figures: ${name}`, () => {
    const { events, expected } = load(name);
    assert.deepEqual(compareSummaries(snapshotOf(events), expected), []);
  });

  test(`the page's cross-check names a counter that differs: ${name}`, () => {
    const { events, expected } = load(name);
    const server = { ...expected, counts: { ...expected.counts, delivered: expected.counts.delivered + 1 } };
    const problems = compareSummaries(snapshotOf(events), server);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^delivered: here \d+, server \d+$/);
  });
}

test("a model reset forgets every event", () => {
  const { events } = load("async_redelivery.json");
  const model = new RunModel();
  for (const ev of events) model.feed(ev);
  model.reset();
  assert.deepEqual(model.snapshot(), snapshotOf([]));
  assert.equal(model.points.perceived.x.length, 0);
});

test("done() counts responses for sync runs and first processings for async ones", () => {
  const { events, expected } = load("sync_retries.json");
  const model = new RunModel();
  for (const ev of events) model.feed(ev);
  assert.equal(model.done("sync"), expected.planned.response);
  assert.equal(model.done("async"), expected.planned.process);
});

test("done() counts only the planned completions: never past expected", () => {
  const { events, expected } = load("unplanned.json");
  const model = new RunModel();
  for (const ev of events) model.feed(ev);
  assert.equal(model.done("async"), 2);
  assert.equal(model.done("sync"), 1);
  assert.equal(expected.completed.process, 3);
  const progress = progressOf(model, "async", 2);
  assert.deepEqual(progress, { done: 2, expected: 2, beyond: 1, share: 1 });
});

test("the progress line says what it counts, and what lies outside the plan apart", () => {
  assert.equal(progressText(22, 22, "async"),
    "22 of 22 planned deliveries processed (first processing per logical consumer and message)");
  assert.equal(progressText(22, 22, "async", 5),
    "22 of 22 planned deliveries processed (first processing per logical consumer and message) · 5 more outside the plan");
  assert.equal(progressText(3, 4, "sync"), "3 of 4 planned responses");
});

for (const [i, { values, expected }] of load("latency_stats.json").cases.entries()) {
  test(`latency stats, case ${i + 1} (${values.length} values)`, () => {
    assertStats(latencyStats(values), expected, "latency");
  });
}

test("mergeSorted adds the points after `from` to the sorted ones, as one sort of them all would", () => {
  const values = [5, 1, 3, 3, 9, 0.5, 2, 7, 3];
  const first = mergeSorted(new Float64Array(0), values.slice(0, 4), 0);
  assert.deepEqual([...first], [1, 3, 3, 5]);
  assert.deepEqual([...mergeSorted(first, values, 4)], [...Float64Array.from(values).sort()]);
  assert.deepEqual([...mergeSorted(first, values.slice(0, 4), 4)], [1, 3, 3, 5]); // nothing new
});

test("a model's latency stats stay exact when points arrive between snapshots", () => {
  const model = new RunModel();
  const feed = (seq, ms) => model.feed({ seq, t_ms: seq, kind: "process", actor: "c", message_id: `m${seq}`, attrs: { end_to_end_ms: ms } });
  [4, 2, 8].forEach((ms, i) => feed(i + 1, ms));
  assert.equal(model.snapshot().latency_ms.end_to_end.p50, 4);
  [1, 1, 9, 3].forEach((ms, i) => feed(i + 4, ms));
  assert.deepEqual(model.snapshot().latency_ms.end_to_end, latencyStats([4, 2, 8, 1, 1, 9, 3]));
  model.reset();
  assert.equal(model.snapshot().latency_ms.end_to_end.count, 0);
});
