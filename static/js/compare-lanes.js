/* sync-vs-async, the lane math: pure functions, no DOM (the panel is panels/sync-vs-async.js).

   LaneBook reads the run's events one by one (every event carries attrs.protocol) and keeps,
   per protocol, what the lanes draw and what the table says. The figures follow the rules of
   the server's tally (flows/compare/lane.py), so the live table and result.protocols agree:
   - perceived / end-to-end: every value of attrs.perceived_ms / end_to_end_ms, percentiles as
     summary.py computes them (run-model.js latencyStats);
   - placed: orders the caller started; completed: orders processed at least once;
   - errors: error events at the caller; retries: retry events; duplicates: deliveries
     marked duplicate; backlog_max: the largest attrs.depth of the lane's backlog events;
   - lost (async): accepted by the broker and never processed, known once the run ended;
     a sync caller knows what failed, so nothing is lost behind its back (0). */
import { latencyStats } from "./run-model.js";

export const PROTOCOL_NAMES = { http: "HTTP", grpc: "gRPC", celery: "Celery", amqp: "AMQP", kafka: "Kafka", mqtt: "MQTT" };
// What a lane is before its events say (a request is sync, a publish async).
const PATTERNS = { http: "sync", grpc: "sync", celery: "async", amqp: "async", kafka: "async", mqtt: "async" };
const PATTERN_OF_KIND = { request: "sync", publish: "async" };
// Actors that name no protocol belong to the lane whose kind of actor they are (Kafka's topic and group).
const LANE_OF_PREFIX = { topic: "kafka", group: "kafka" };
const CALLER = "client:";

export function protocolName(protocol) {
  return PROTOCOL_NAMES[protocol] || protocol;
}

function freshLane(protocol) {
  return {
    protocol, pattern: PATTERNS[protocol] || null, orders: new Map(), perceived: [], endToEnd: [],
    placed: new Set(), accepted: new Set(), completed: new Set(), errors: 0, retries: 0, duplicates: 0,
    reasons: new Map(), backlog: [], backlogMax: 0, backlogSource: "",
  };
}

function freshOrder(id) {
  return { id, start: null, end: null, perceived: null, outcome: "waiting", endToEnd: null, errors: [], deliveries: [] };
}

/** Everything the lanes, the table and the verdicts need, from the events revealed so far. */
export class LaneBook {
  constructor(protocols = []) {
    this.protocols = [...protocols];
    this.reset();
  }

  reset() {
    this.lanes = new Map(this.protocols.map((p) => [p, freshLane(p)]));
    this.outages = []; // [{start, end}]: end null while the downstream is down
    this.firstT = null;
    this.lastT = 0;
    this.ended = false;
  }

  lane(protocol) {
    let lane = this.lanes.get(protocol);
    if (!lane) {
      lane = freshLane(protocol);
      this.lanes.set(protocol, lane);
    }
    return lane;
  }

  feed(ev) {
    const a = ev.attrs || {};
    this.lastT = Math.max(this.lastT, ev.t_ms);
    if (ev.kind === "outage") this.outage(ev.t_ms, a.state);
    else if (ev.kind === "done") this.ended = true;
    if (!a.protocol) return;
    const lane = this.lane(a.protocol);
    if (this.firstT === null) this.firstT = ev.t_ms;
    if (PATTERN_OF_KIND[ev.kind]) lane.pattern = PATTERN_OF_KIND[ev.kind];
    if (typeof a.perceived_ms === "number") lane.perceived.push(a.perceived_ms);
    if (typeof a.end_to_end_ms === "number") lane.endToEnd.push(a.end_to_end_ms);
    if (ev.kind === "backlog") {
      const depth = Number(a.depth) || 0;
      lane.backlog.push({ t: ev.t_ms, depth });
      lane.backlogMax = Math.max(lane.backlogMax, depth);
      if (a.source) lane.backlogSource = a.source;
      return;
    }
    if (!ev.message_id) return;
    const order = lane.orders.get(ev.message_id) || freshOrder(ev.message_id);
    lane.orders.set(ev.message_id, order);
    this.orderEvent(lane, order, ev, a);
  }

  orderEvent(lane, order, ev, a) {
    const caller = ev.actor.startsWith(CALLER);
    switch (ev.kind) {
      case "request":
        if (order.start === null) order.start = ev.t_ms;
        lane.placed.add(order.id);
        break;
      case "retry":
        lane.retries += 1;
        break;
      case "response":
      case "publish":
        this.answered(lane, order, ev, a, "ok");
        lane.accepted.add(order.id);
        break;
      case "error":
        if (!caller) break;
        lane.errors += 1;
        order.errors.push({ t: ev.t_ms, reason: a.reason || "error", final: typeof a.perceived_ms === "number" });
        lane.reasons.set(a.reason || "error", (lane.reasons.get(a.reason || "error") || 0) + 1);
        if (typeof a.perceived_ms === "number") this.answered(lane, order, ev, a, "error");
        break;
      case "deliver":
        order.deliveries.push({ t: ev.t_ms, end: null, duplicate: Boolean(ev.duplicate), crashed: false, reason: a.reason || "" });
        if (ev.duplicate) lane.duplicates += 1;
        break;
      case "process": {
        const delivery = order.deliveries[order.deliveries.length - 1];
        if (delivery && delivery.end === null) delivery.end = ev.t_ms;
        if (!ev.duplicate) lane.completed.add(order.id);
        if (typeof a.end_to_end_ms === "number" && order.endToEnd === null) order.endToEnd = a.end_to_end_ms;
        break;
      }
      case "crash": {
        const delivery = order.deliveries[order.deliveries.length - 1];
        if (delivery) delivery.crashed = true;
        break;
      }
      default:
        break;
    }
  }

  /** The caller's wait ended at this event: it waited perceived_ms until t_ms. */
  answered(lane, order, ev, a, outcome) {
    lane.placed.add(order.id);
    order.end = ev.t_ms;
    order.outcome = outcome;
    if (typeof a.perceived_ms === "number") {
      order.perceived = a.perceived_ms;
      order.start = order.start === null ? ev.t_ms - a.perceived_ms : Math.min(order.start, ev.t_ms - a.perceived_ms);
    } else if (order.start === null) {
      order.start = ev.t_ms;
    }
    if (typeof a.end_to_end_ms === "number") order.endToEnd = a.end_to_end_ms;
  }

  outage(t, state) {
    const open = this.outages.find((o) => o.end === null);
    if (state === "down" && !open) this.outages.push({ start: t, end: null });
    else if (state === "up" && open) open.end = t;
  }

  /** The protocols in lane order: the run's, then any other that events named. */
  order() {
    return [...this.lanes.keys()];
  }
}

function stats(values) {
  const s = latencyStats(values);
  return { p50: s.p50, p95: s.p95, p99: s.p99, max: s.max };
}

/** One lane's figures in the shape of result.protocols[p] (lost: null until the run ended). */
export function laneFigures(lane, ended) {
  const sync = lane.pattern === "sync";
  let lost = null;
  if (sync) lost = 0;
  else if (ended) lost = [...lane.accepted].filter((id) => !lane.completed.has(id)).length;
  return {
    pattern: lane.pattern, perceived: stats(lane.perceived), end_to_end: stats(lane.endToEnd),
    placed: lane.placed.size, completed: lane.completed.size, errors: lane.errors, retries: lane.retries,
    lost, duplicates: lane.duplicates, backlog_max: lane.backlogMax,
  };
}

/** The table's columns: [key, group, title, figure(f) → number | null, kind]; a group heads its columns. */
export const TABLE_COLUMNS = [
  ["pattern", "", "pattern", (f) => f.pattern, "text"],
  ["perceived.p50", "perceived", "p50", (f) => f.perceived && f.perceived.p50, "ms"],
  ["perceived.p95", "perceived", "p95", (f) => f.perceived && f.perceived.p95, "ms"],
  ["perceived.p99", "perceived", "p99", (f) => f.perceived && f.perceived.p99, "ms"],
  ["end_to_end.p50", "end-to-end", "p50", (f) => f.end_to_end && f.end_to_end.p50, "ms"],
  ["end_to_end.p95", "end-to-end", "p95", (f) => f.end_to_end && f.end_to_end.p95, "ms"],
  ["completed", "", "completed", (f) => f.completed, "count"],
  ["errors", "", "errors", (f) => f.errors, "count"],
  ["lost", "", "lost", (f) => f.lost, "count"],
  ["duplicates", "", "duplicates", (f) => f.duplicates, "count"],
  ["backlog_max", "", "backlog max", (f) => f.backlog_max, "count"],
];

/** The table head's first row: [title, span] — a group once over its columns, else the column's own title. */
export function headGroups(columns = TABLE_COLUMNS) {
  const groups = [];
  for (const [, group, title] of columns) {
    const last = groups[groups.length - 1];
    if (group && last && last.group === group) last.span += 1;
    else groups.push({ group, title: group || title, span: 1 });
  }
  return groups;
}

/** The rows of the table: [{protocol, source, figures}], from the result once the run ended with one. */
export function tableRows(book, result) {
  const final = book.ended && result && result.protocols;
  const protocols = final ? [...new Set([...book.order(), ...Object.keys(result.protocols)])] : book.order();
  return protocols.filter((p) => !final || result.protocols[p]).map((p) => (final
    ? { protocol: p, source: "result", figures: result.protocols[p] }
    : { protocol: p, source: "live", figures: laneFigures(book.lane(p), book.ended) }));
}

// -- time axis --------------------------------------------------------------------------

const MIN_SPAN_MS = 1000;

/** The shared time axis [t0, t1] (ms of run time): from the first order to now (at least 1 s). */
export function timeDomain(book) {
  let t0 = Infinity;
  for (const lane of book.lanes.values()) {
    for (const o of lane.orders.values()) if (o.start !== null) t0 = Math.min(t0, o.start);
  }
  for (const o of book.outages) t0 = Math.min(t0, o.start);
  if (!Number.isFinite(t0)) t0 = book.firstT ?? 0;
  const t1 = Math.max(book.lastT, t0 + MIN_SPAN_MS);
  return [t0, t1];
}

/** t (ms) → x (px) over [x0, x1]; clamps to the axis. */
export function timeScale([t0, t1], [x0, x1]) {
  const k = (x1 - x0) / Math.max(1e-9, t1 - t0);
  const scale = (t) => x0 + (Math.min(t1, Math.max(t0, t)) - t0) * k;
  scale.domain = [t0, t1];
  scale.range = [x0, x1];
  return scale;
}

/** Round tick values (1, 2, 5 × 10^k ms apart) inside [t0, t1], at most `most` of them. */
export function niceTicks(t0, t1, most = 8) {
  const span = t1 - t0;
  if (!(span > 0) || most < 1) return [t0];
  const raw = span / most;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) ticks.push(Math.round(t * 1000) / 1000);
  return ticks;
}

/** A tick's label: seconds of run time ("1.5 s"), or ms on a short axis. */
export function tickLabel(t, step) {
  return step >= 100 ? `${+(t / 1000).toFixed(step >= 1000 ? 0 : 1)} s` : `${Math.round(t)} ms`;
}

// -- what a lane draws ----------------------------------------------------------------------

/**
 * The caller's waits: one bar per order from its start to its answer (or to `now` while it
 * still waits): {id, t0, t1, outcome: ok | error | waiting}.
 */
export function waitBars(lane, now) {
  const bars = [];
  for (const o of lane.orders.values()) {
    if (o.start === null) continue;
    bars.push({ id: o.id, t0: o.start, t1: o.end ?? Math.max(o.start, now), outcome: o.outcome });
  }
  return bars;
}

/** The downstream's handlings: {id, t0, t1, duplicate, crashed, open} (t1 = now while it works). */
export function workBars(lane, now) {
  const bars = [];
  for (const o of lane.orders.values()) {
    for (const d of o.deliveries) {
      bars.push({ id: o.id, t0: d.t, t1: d.end ?? Math.max(d.t, now), duplicate: d.duplicate, crashed: d.crashed,
        open: d.end === null, reason: d.reason });
    }
  }
  return bars;
}

/** Each order's trip from the caller to its first handling: {id, t0 (placed), t1 (delivered)}. */
export function trips(lane) {
  const out = [];
  for (const o of lane.orders.values()) {
    if (o.start !== null && o.deliveries.length) out.push({ id: o.id, t0: o.start, t1: o.deliveries[0].t });
  }
  return out;
}

/** The caller's errors as marks: {id, t, reason}. */
export function errorMarks(lane) {
  const out = [];
  for (const o of lane.orders.values()) for (const e of o.errors) out.push({ id: o.id, t: e.t, reason: e.reason });
  return out;
}

/**
 * The backlog as a step line, ready to fill: [[t, depth], …] from depth 0 at the first
 * sample's time, each depth held until the next sample, the last held until `until`, back to 0.
 */
export function backlogSteps(samples, until) {
  if (!samples.length) return [];
  const sorted = [...samples].sort((x, y) => x.t - y.t);
  const points = [[sorted[0].t, 0]];
  let depth = 0;
  for (const s of sorted) {
    if (s.depth === depth) continue;
    points.push([s.t, depth], [s.t, s.depth]);
    depth = s.depth;
  }
  const end = Math.max(until, sorted[sorted.length - 1].t);
  points.push([end, depth], [end, 0]);
  return points;
}

/** How long after the downstream came back the backlog was empty again (ms), or null. */
export function drainedAfter(samples, outage) {
  if (!outage || outage.end === null) return null;
  let seen = false;
  for (const s of samples) {
    if (s.t < outage.start) continue;
    if (s.depth > 0) seen = true;
    else if (seen && s.t >= outage.end) return s.t - outage.end;
  }
  return null;
}

// -- words ----------------------------------------------------------------------------------

function ms(value) {
  if (value === null || value === undefined) return "—";
  if (value >= 1000) return `${(value / 1000).toFixed(1)} s`;
  return `${value >= 10 ? Math.round(value) : +value.toFixed(1)} ms`;
}

/** The commonest reason in a lane's caller errors. */
function mainReason(lane) {
  let best = null;
  for (const [reason, n] of lane.reasons) if (!best || n > best[1]) best = [reason, n];
  return best ? best[0] : "";
}

/**
 * The median wait of the calls that were answered: a call refused in 1 ms says nothing about
 * the wait for the work, the answered calls do. null before any answer.
 */
export function answeredWait(lane) {
  const answered = [...lane.orders.values()].filter((o) => o.outcome === "ok" && o.perceived !== null);
  return latencyStats(answered.map((o) => o.perceived)).p50;
}

/**
 * One plain sentence per lane from the events so far (result.protocols[p].verdict replaces
 * it at the end): how long callers waited, what failed and why, what the backlog did.
 */
export function liveVerdict(lane, figures, outage = null) {
  const name = protocolName(lane.protocol);
  const parts = [];
  if (figures.pattern === "sync") {
    const waited = answeredWait(lane);
    parts.push(waited === null ? "no call answered yet" : `callers waited ${ms(waited)} for the whole work (median of answered calls)`);
    if (figures.errors) parts.push(`${figures.errors} failed${mainReason(lane) ? ` (${mainReason(lane)})` : ""}`);
    if (figures.retries) parts.push(`${figures.retries} retried`);
  } else {
    if (figures.perceived.p50 === null) return `${name}: no order handed over yet.`;
    parts.push(`callers waited ${ms(figures.perceived.p50)} (median)`);
    if (figures.end_to_end.p50 !== null) parts.push(`the work was done ${ms(figures.end_to_end.p50)} after placing`);
    if (figures.errors) parts.push(`${figures.errors} failed${mainReason(lane) ? ` (${mainReason(lane)})` : ""}`);
    if (figures.lost !== null) parts.push(`${figures.lost} lost`);
    if (figures.duplicates) parts.push(`${figures.duplicates} duplicate${figures.duplicates === 1 ? "" : "s"}`);
    if (figures.backlog_max) {
      const drained = drainedAfter(lane.backlog, outage);
      parts.push(`backlog peaked at ${figures.backlog_max}${drained === null ? "" : `, drained ${ms(drained)} after recovery`}`);
    }
  }
  return `${name}: ${parts.join("; ")}.`;
}

/**
 * The topology row of an actor: the lane it belongs to, found in its name ("client:http",
 * "queue:amqp.orders", "worker:celery") or by its kind (Kafka's topic and group); null if none.
 */
export function laneOfActor(actor, protocols) {
  const colon = actor.indexOf(":");
  const words = actor.slice(colon + 1).split(/[.:/_-]/);
  const named = protocols.find((p) => words.includes(p));
  if (named) return named;
  const byKind = LANE_OF_PREFIX[actor.slice(0, colon)];
  return byKind && protocols.includes(byKind) ? byKind : null;
}
