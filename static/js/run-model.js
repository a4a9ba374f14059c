/* The run's numbers computed from events alone, with the SAME rules as flows/summary.py.

   The page feeds this model the events the timeline has revealed, so the counters and
   charts always agree with the event log beside them; compareSummaries() cross-checks the
   result against the server's summary at the same seq. Keep this file in step with
   flows/summary.py (rules in its docstring):
   - published: publish and request events of first attempts that are not duplicates;
   - delivered: deliver events; duplicates: deliver events marked duplicate;
   - processed: process events; effects: process events whose attr effect is not false;
   - errors: error events; lost: attr lost of the done event;
   - dead_lettered: route events whose attr dead_letter is true;
   - completed: non-duplicate response events (sync) / process events (async);
     planned: those of them whose attr planned is not false (the workflow's plan, which
     the run's expected counts): the progress, never above expected;
   - latency: every event may carry attrs perceived_ms and/or end_to_end_ms;
   - flow events (a sampled run): each edge's count (never its total) adds to its kind as
     that many plain events (first attempts, not duplicates, effect and plan kept);
     latency_ms.sampled once anything was counted; fidelity {mode, why, switched_at_seq, counted}. */
const PERCENTILES = [50, 95, 99];
// Each latency series and the attribute that carries it (made once: feed() runs for every event).
const LATENCY_ATTRS = [["perceived", "perceived_ms"], ["end_to_end", "end_to_end_ms"]];

/** Linear interpolation between closest ranks (numpy's default method), as in summary.py. */
function percentile(sorted, p) {
  const n = sorted.length;
  if (n === 0) return null;
  if (n === 1) return sorted[0];
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

function round3(value) {
  return value === null ? null : Math.round(value * 1000) / 1000;
}

function latencyStats(values) {
  return sortedStats(Float64Array.from(values).sort());
}

/** `sorted` (the first `from` of values, in order) with the rest of values merged in: the
    cross-check asks for percentiles at every summary, and sorting every point again each
    time grew with the run; the new points alone are sorted, then merged in one pass. */
function mergeSorted(sorted, values, from) {
  const tail = Float64Array.from(values.slice(from)).sort();
  const merged = new Float64Array(sorted.length + tail.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < sorted.length && j < tail.length) merged[k++] = sorted[i] <= tail[j] ? sorted[i++] : tail[j++];
  while (i < sorted.length) merged[k++] = sorted[i++];
  while (j < tail.length) merged[k++] = tail[j++];
  return merged;
}

function sortedStats(sorted) {
  const stats = {};
  for (const p of PERCENTILES) stats[`p${p}`] = round3(percentile(sorted, p));
  stats.max = sorted.length ? round3(sorted[sorted.length - 1]) : null;
  stats.count = sorted.length;
  return stats;
}

class RunModel {
  constructor() {
    this.reset();
  }

  reset() {
    this.kinds = {};
    this.published = 0;
    this.delivered = 0;
    this.duplicates = 0;
    this.processed = 0;
    this.effects = 0;
    this.responses = 0;
    this.firstProcessed = 0;
    this.planned = { response: 0, process: 0 };
    this.lost = 0;
    this.deadLettered = 0;
    this.errors = 0;
    this.lastSeq = 0;
    this.lastTms = 0;
    this.fidelity = { mode: "full", why: "", switched_at_seq: null, counted: 0 };
    // One point per event carrying the attribute: x = t_ms, y = latency, id = message.
    this.points = {
      perceived: { x: [], y: [], ids: [], seqs: [] },
      end_to_end: { x: [], y: [], ids: [], seqs: [] },
    };
    // Each series' points sorted so far, for snapshot() (mergeSorted).
    this.sorted = { perceived: new Float64Array(0), end_to_end: new Float64Array(0) };
  }

  /** A series' latency stats, from its points sorted so far and the ones added since. */
  latency(series) {
    const values = this.points[series].y;
    if (this.sorted[series].length !== values.length) this.sorted[series] = mergeSorted(this.sorted[series], values, this.sorted[series].length);
    return sortedStats(this.sorted[series]);
  }

  feed(ev) {
    const kind = ev.kind;
    const attrs = ev.attrs || {};
    const duplicate = ev.duplicate;
    this.kinds[kind] = (this.kinds[kind] || 0) + 1;
    this.lastSeq = ev.seq;
    this.lastTms = ev.t_ms;
    if (kind === "publish" || kind === "request") {
      if (ev.attempt === 1 && !duplicate) this.published += 1;
    } else if (kind === "deliver") {
      this.delivered += 1;
      if (duplicate) this.duplicates += 1;
    } else if (kind === "process") {
      this.processed += 1;
      if (attrs.effect !== false) this.effects += 1;
    } else if (kind === "route") {
      if (attrs.dead_letter === true) this.deadLettered += 1;
    } else if (kind === "error") {
      this.errors += 1;
    } else if (kind === "done") {
      this.lost = Math.trunc(Number(attrs.lost || 0)) || 0;
    } else if (kind === "flow") {
      this.feedFlow(ev.seq, attrs);
    }
    if (!duplicate) {
      if (kind === "response") this.responses += 1;
      else if (kind === "process") this.firstProcessed += 1;
      if (kind in this.planned && attrs.planned !== false) this.planned[kind] += 1;
    }
    for (const [name, key] of LATENCY_ATTRS) {
      const value = attrs[key];
      if (value !== null && value !== undefined) {
        const series = this.points[name];
        series.x.push(ev.t_ms);
        series.y.push(Number(value));
        series.ids.push(ev.message_id);
        series.seqs.push(ev.seq);
      }
    }
  }

  feedFlow(seq, attrs) {
    for (const edge of attrs.edges || []) this.addPlain(edge.kind, Math.trunc(Number(edge.count)) || 0);
    if (attrs.why) {
      this.fidelity = { ...this.fidelity, mode: attrs.mode || "sampled", why: attrs.why };
      if (this.fidelity.mode === "sampled" && this.fidelity.switched_at_seq === null) this.fidelity.switched_at_seq = seq;
    }
    const counted = Math.trunc(Number(attrs.counted || 0)) || 0;
    if (counted > this.fidelity.counted) this.fidelity = { ...this.fidelity, counted };
  }

  /** n counted events of one kind: first attempts, not duplicates, effect and plan kept. */
  addPlain(kind, n) {
    this.kinds[kind] = (this.kinds[kind] || 0) + n;
    if (kind === "publish" || kind === "request") this.published += n;
    else if (kind === "deliver") this.delivered += n;
    else if (kind === "process") {
      this.processed += n;
      this.effects += n;
      this.firstProcessed += n;
      this.planned.process += n;
    } else if (kind === "response") {
      this.responses += n;
      this.planned.response += n;
    }
  }

  counts() {
    return {
      published: this.published,
      delivered: this.delivered,
      processed: this.processed,
      effects: this.effects,
      duplicates: this.duplicates,
      lost: this.lost,
      dead_lettered: this.deadLettered,
      errors: this.errors,
      events: this.lastSeq,
    };
  }

  completed() {
    return { response: this.responses, process: this.firstProcessed };
  }

  /** Progress: the planned completions, responses for sync workflows, first processings for async. */
  done(pattern) {
    return this.planned[pattern === "sync" ? "response" : "process"];
  }

  snapshot() {
    return {
      counts: this.counts(),
      kinds: { ...this.kinds },
      completed: this.completed(),
      planned: { ...this.planned },
      latency_ms: {
        perceived: this.latency("perceived"),
        end_to_end: this.latency("end_to_end"),
        sampled: this.fidelity.counted > 0,
      },
      fidelity: { ...this.fidelity },
      last_seq: this.lastSeq,
      elapsed_ms: this.lastTms,
    };
  }
}

/** Differences between a client snapshot and the server summary at the same last_seq. */
function compareSummaries(client, server) {
  const problems = [];
  const same = (a, b) => (a === null || b === null || a === undefined || b === undefined
    ? (a ?? null) === (b ?? null) : Math.abs(a - b) <= 0.0015);
  for (const [key, value] of Object.entries(server.counts || {})) {
    if (key in client.counts && client.counts[key] !== value) problems.push(`${key}: here ${client.counts[key]}, server ${value}`);
  }
  for (const figure of ["completed", "planned"]) {
    for (const key of ["response", "process"]) {
      const theirs = (server[figure] || {})[key];
      if (theirs !== undefined && client[figure][key] !== theirs) problems.push(`${figure} ${key}: here ${client[figure][key]}, server ${theirs}`);
    }
  }
  for (const series of ["perceived", "end_to_end"]) {
    const ours = client.latency_ms[series];
    const theirs = ((server.latency_ms || {})[series]) || {};
    for (const stat of ["p50", "p95", "p99", "max", "count"]) {
      if (stat in theirs && !same(ours[stat], theirs[stat])) problems.push(`${series} ${stat}: here ${ours[stat]}, server ${theirs[stat]}`);
    }
  }
  return problems;
}

/**
 * The progress line: what is counted, against the plan. done counts planned completions
 * only, so it never exceeds expected; `beyond` (completions outside the plan) is said apart.
 */
function progressText(done, expected, pattern, beyond = 0) {
  const unit = pattern === "sync"
    ? "planned responses"
    : "planned deliveries processed (first processing per logical consumer and message)";
  const extra = beyond > 0 ? ` · ${beyond} more outside the plan` : "";
  return `${done} of ${expected} ${unit}${extra}`;
}

/** {done, expected, beyond, share} for the progress bar from a model and the run's expected. */
function progressOf(model, pattern, expected) {
  const key = pattern === "sync" ? "response" : "process";
  const done = model.done(pattern);
  const beyond = model.completed()[key] - done;
  return { done, expected, beyond, share: expected ? Math.min(1, done / expected) : 0 };
}

export { RunModel, percentile, latencyStats, mergeSorted, compareSummaries, progressOf, progressText, PERCENTILES };
