// sync-vs-async's lane math (compare-lanes.js) over a hand-made run: an HTTP lane and a Kafka
// lane doing 100 ms of work each, the downstream down from t=1000 to t=2000 ms.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  answeredWait, backlogSteps, drainedAfter, errorMarks, headGroups, LaneBook, laneFigures, laneOfActor, liveVerdict, niceTicks, tableRows,
  TABLE_COLUMNS, tickLabel, timeDomain, timeScale, trips, waitBars, workBars,
} from "../compare-lanes.js";

let seq = 0;
const ev = (t_ms, kind, actor, message_id, attrs = {}, extra = {}) => ({
  seq: ++seq, t_ms, kind, actor, message_id, attempt: 1, duplicate: false, attrs, ...extra,
});

/** An HTTP order answered after the work, one refused during the outage, one retried after a crash. */
function httpEvents() {
  const p = { protocol: "http" };
  return [
    ev(500, "request", "client:http", "http-1", p),
    ev(502, "deliver", "server:http", "http-1", p),
    ev(602, "process", "server:http", "http-1", p),
    ev(605, "response", "client:http", "http-1", { ...p, status: 200, perceived_ms: 105, end_to_end_ms: 105 }),
    ev(1200, "request", "client:http", "http-2", p),
    ev(1203, "error", "client:http", "http-2", { ...p, reason: "connection refused", retrying: false, perceived_ms: 3 }),
    ev(2400, "request", "client:http", "http-3", p),
    ev(2401, "deliver", "server:http", "http-3", p),
    ev(2501, "process", "server:http", "http-3", p),
    ev(2502, "crash", "server:http", "http-3", { ...p, reason: "crashed" }),
    ev(2503, "error", "client:http", "http-3", { ...p, reason: "500 handler crashed", retrying: true, status: 500 }),
    ev(2504, "retry", "client:http", "http-3", p, { attempt: 2 }),
    ev(2505, "deliver", "server:http", "http-3", { ...p, reason: "the caller retried" }, { attempt: 2, duplicate: true }),
    ev(2605, "process", "server:http", "http-3", p, { attempt: 2, duplicate: true }),
    ev(2607, "response", "client:http", "http-3", { ...p, status: 200, perceived_ms: 207, end_to_end_ms: 207 }),
  ];
}

/** Kafka: three orders handed over in 3 ms each; two wait out the outage in the backlog. */
function kafkaEvents() {
  const p = { protocol: "kafka" };
  const member = "group:fulfilment/member-1";
  return [
    ev(503, "publish", "client:kafka", "kafka-1", { ...p, perceived_ms: 3 }),
    ev(504, "deliver", member, "kafka-1", p),
    ev(604, "process", member, "kafka-1", { ...p, end_to_end_ms: 104 }),
    ev(1203, "publish", "client:kafka", "kafka-2", { ...p, perceived_ms: 3 }),
    ev(1300, "backlog", "topic:orders/p0", "", { ...p, depth: 1, source: "end offset − committed" }),
    ev(1503, "publish", "client:kafka", "kafka-3", { ...p, perceived_ms: 2 }),
    ev(1600, "backlog", "topic:orders/p0", "", { ...p, depth: 2 }),
    ev(2050, "deliver", member, "kafka-2", p),
    ev(2150, "process", member, "kafka-2", { ...p, end_to_end_ms: 950 }),
    ev(2160, "backlog", "topic:orders/p0", "", { ...p, depth: 1 }),
    ev(2160, "deliver", member, "kafka-3", p),
    ev(2260, "process", member, "kafka-3", { ...p, end_to_end_ms: 760 }),
    ev(2300, "backlog", "topic:orders/p0", "", { ...p, depth: 0 }),
  ];
}

function runEvents() {
  seq = 0;
  const lanes = [...httpEvents(), ...kafkaEvents(),
    ev(1000, "outage", "runner", "", { state: "down", protocols: ["http", "kafka"], outage_ms: 1000 }),
    ev(2000, "outage", "runner", "", { state: "up", protocols: ["http", "kafka"], outage_ms: 1000 })];
  lanes.sort((x, y) => x.t_ms - y.t_ms);
  return [...lanes, ev(2700, "done", "runner", "", { state: "succeeded", lost: 0 })];
}

function book(events = runEvents(), protocols = ["http", "kafka"]) {
  const b = new LaneBook(protocols);
  for (const e of events) b.feed(e);
  return b;
}

test("the live figures follow the tally's rules, per protocol", () => {
  const b = book();
  const http = laneFigures(b.lane("http"), b.ended);
  assert.deepEqual(http, {
    pattern: "sync", perceived: { p50: 105, p95: 196.8, p99: 204.96, max: 207 },
    end_to_end: { p50: 156, p95: 201.9, p99: 205.98, max: 207 },
    placed: 3, completed: 2, errors: 2, retries: 1, lost: 0, duplicates: 1, backlog_max: 0,
  });
  const kafka = laneFigures(b.lane("kafka"), b.ended);
  assert.equal(kafka.pattern, "async");
  assert.deepEqual(kafka.perceived, { p50: 3, p95: 3, p99: 3, max: 3 });
  assert.deepEqual(kafka.end_to_end, { p50: 760, p95: 931, p99: 946.2, max: 950 });
  assert.equal(kafka.completed, 3);
  assert.equal(kafka.errors, 0);
  assert.equal(kafka.lost, 0);
  assert.equal(kafka.backlog_max, 2);
});

test("lost is unknown while the run runs, and counts accepted orders never processed once it ended", () => {
  const events = runEvents().filter((e) => !(e.message_id === "kafka-3" && e.kind !== "publish") && e.kind !== "done");
  const live = book(events);
  assert.equal(laneFigures(live.lane("kafka"), live.ended).lost, null);
  assert.equal(laneFigures(live.lane("http"), live.ended).lost, 0);
  const ended = book([...events, ev(3000, "done", "runner", "", {})]);
  assert.equal(laneFigures(ended.lane("kafka"), ended.ended).lost, 1);
});

test("the table shows live figures until the run ended with a result, then the result's", () => {
  const events = runEvents();
  const result = { protocols: { http: { pattern: "sync", completed: 2 }, kafka: { pattern: "async", completed: 3 } } };
  const running = book(events.slice(0, -1));
  assert.deepEqual(tableRows(running, result).map((r) => [r.protocol, r.source]), [["http", "live"], ["kafka", "live"]]);
  const ended = book(events);
  assert.deepEqual(tableRows(ended, null).map((r) => r.source), ["live", "live"]);
  const rows = tableRows(ended, result);
  assert.deepEqual(rows.map((r) => [r.protocol, r.source]), [["http", "result"], ["kafka", "result"]]);
  assert.equal(rows[1].figures, result.protocols.kafka);
});

test("wait bars end where perceived_ms says: long for sync, short for async, open while waiting", () => {
  const b = book();
  assert.deepEqual(waitBars(b.lane("http"), b.lastT), [
    { id: "http-1", t0: 500, t1: 605, outcome: "ok" },
    { id: "http-2", t0: 1200, t1: 1203, outcome: "error" },
    { id: "http-3", t0: 2400, t1: 2607, outcome: "ok" },
  ]);
  // A publish event carries only its end: the bar starts perceived_ms before it.
  assert.deepEqual(waitBars(b.lane("kafka"), b.lastT).map((w) => [w.t0, w.t1]), [[500, 503], [1200, 1203], [1501, 1503]]);
  const waiting = book(runEvents().filter((e) => e.t_ms <= 550));
  assert.deepEqual(waitBars(waiting.lane("http"), 550), [{ id: "http-1", t0: 500, t1: 550, outcome: "waiting" }]);
});

test("handlings, trips and error marks", () => {
  const b = book();
  const work = workBars(b.lane("http"), b.lastT);
  assert.deepEqual(work.map((w) => [w.id, w.t0, w.t1, w.duplicate, w.crashed]),
    [["http-1", 502, 602, false, false], ["http-3", 2401, 2501, false, true], ["http-3", 2505, 2605, true, false]]);
  assert.equal(work[2].reason, "the caller retried");
  // Kafka orders placed during the outage reach the consumer only after it: long trips.
  assert.deepEqual(trips(b.lane("kafka")).map((t) => [t.id, t.t1 - t.t0]), [["kafka-1", 4], ["kafka-2", 850], ["kafka-3", 659]]);
  assert.deepEqual(errorMarks(b.lane("http")).map((m) => [m.id, m.t, m.reason]),
    [["http-2", 1203, "connection refused"], ["http-3", 2503, "500 handler crashed"]]);
});

test("the backlog area rises during the outage and drains after it", () => {
  const b = book();
  const samples = b.lane("kafka").backlog;
  const steps = backlogSteps(samples, 2700);
  assert.deepEqual(steps, [[1300, 0], [1300, 0], [1300, 1], [1600, 1], [1600, 2], [2160, 2], [2160, 1],
    [2300, 1], [2300, 0], [2700, 0], [2700, 0]]);
  assert.deepEqual(backlogSteps([], 100), []);
  assert.equal(drainedAfter(samples, b.outages[0]), 300);
  assert.equal(drainedAfter(samples, { start: 1000, end: null }), null);
  assert.deepEqual(b.outages, [{ start: 1000, end: 2000 }]);
});

test("the time axis spans the first order to now, with round ticks", () => {
  const b = book();
  assert.deepEqual(timeDomain(b), [500, 2700]);
  assert.deepEqual(timeDomain(new LaneBook(["http"])), [0, 1000]);
  const x = timeScale([500, 2700], [100, 1200]);
  assert.equal(x(500), 100);
  assert.equal(x(2700), 1200);
  assert.equal(x(1600), 650);
  assert.equal(x(9999), 1200); // clamped
  assert.deepEqual(niceTicks(500, 2700, 6), [500, 1000, 1500, 2000, 2500]);
  assert.deepEqual(niceTicks(0, 40, 4), [0, 10, 20, 30, 40]);
  assert.equal(tickLabel(1500, 500), "1.5 s");
  assert.equal(tickLabel(2000, 1000), "2 s");
  assert.equal(tickLabel(20, 10), "20 ms");
});

test("a sync lane's wait is the answered calls' median: a refusal in 1 ms is not a wait for the work", () => {
  const b = book();
  const http = b.lane("http");
  assert.equal(answeredWait(http), 156);
  assert.ok(laneFigures(http, true).perceived.p50 < 156, "the perceived median counts the fast refusals too");
  assert.equal(answeredWait(new LaneBook(["grpc"]).lane("grpc")), null);
});

test("a live verdict per lane says how long callers waited and what went wrong, in words", () => {
  const b = book();
  const outage = b.outages[0];
  const http = b.lane("http");
  assert.equal(liveVerdict(http, laneFigures(http, true), outage),
    "HTTP: callers waited 156 ms for the whole work (median of answered calls); 2 failed (connection refused); 1 retried.");
  const kafka = b.lane("kafka");
  assert.equal(liveVerdict(kafka, laneFigures(kafka, true), outage),
    "Kafka: callers waited 3 ms (median); the work was done 760 ms after placing; 0 lost; backlog peaked at 2, drained 300 ms after recovery.");
  const empty = new LaneBook(["grpc"]).lane("grpc");
  assert.equal(liveVerdict(empty, laneFigures(empty, false)), "gRPC: no call answered yet.");
  const kafkaEmpty = new LaneBook(["kafka"]).lane("kafka");
  assert.equal(liveVerdict(kafkaEmpty, laneFigures(kafkaEmpty, false)), "Kafka: no order handed over yet.");
});

test("each topology actor belongs to its protocol's row", () => {
  const all = ["http", "grpc", "celery", "amqp", "kafka", "mqtt"];
  const cases = {
    "client:http": "http", "server:grpc": "grpc", "queue:amqp.orders": "amqp", "consumer:amqp": "amqp",
    "queue:celery.orders": "celery", "worker:celery": "celery", "topic:orders/p0": "kafka",
    "group:fulfilment/member-1": "kafka", "subscriber:mqtt": "mqtt", runner: null,
  };
  for (const [actor, lane] of Object.entries(cases)) assert.equal(laneOfActor(actor, all), lane, actor);
  assert.equal(laneOfActor("topic:orders/p0", ["http"]), null);
});

test("a reset book forgets everything but its protocols", () => {
  const b = book();
  b.reset();
  assert.deepEqual(b.order(), ["http", "kafka"]);
  assert.equal(b.lane("http").orders.size, 0);
  assert.deepEqual(b.outages, []);
  assert.equal(b.ended, false);
});

test("the table's columns read result.protocols[p], with perceived and end-to-end over their percentiles", () => {
  const figures = laneFigures(book().lane("kafka"), true);
  const values = Object.fromEntries(TABLE_COLUMNS.map(([key, , , get]) => [key, get(figures)]));
  assert.deepEqual(values, {
    pattern: "async", "perceived.p50": 3, "perceived.p95": 3, "perceived.p99": 3, "end_to_end.p50": 760,
    "end_to_end.p95": 931, completed: 3, errors: 0, lost: 0, duplicates: 0, backlog_max: 2,
  });
  assert.deepEqual(headGroups().map((g) => [g.title, g.span]), [["pattern", 1], ["perceived", 3], ["end-to-end", 2],
    ["completed", 1], ["errors", 1], ["lost", 1], ["duplicates", 1], ["backlog max", 1]]);
});
