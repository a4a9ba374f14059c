/* The counters: one per key of summary.counts (plus responses for sync workflows), each
   with a one-line explanation of exactly what it counts, and the cross-check against the
   server's own summary. Values come from RunModel (run-model.js) over the revealed events. */
import { h } from "./dom.js";
import { swatch } from "./legend.js";

// [label, category, explanation] for async workflows, and the sync wording where it differs.
const ASYNC = {
  published: ["Published", "published", "publish and request events, first attempts only (re-sends are retries)"],
  delivered: ["Delivered", "delivered", "deliver events: a consumer received a message, duplicates included"],
  processed: ["Processed", "delivered", "process events: deliveries a consumer handled, duplicates included"],
  effects: ["Effects", "acked", "process events that applied a side effect (effect not false)"],
  duplicates: ["Duplicates", "duplicate", "deliver events marked duplicate: a 2nd+ delivery of a message to the same logical consumer (queue, group, subscriber, task)"],
  lost: ["Lost", "lost", "confirmed to the broker but never processed (checked at the end of the run)"],
  dead_lettered: ["Dead-lettered", "lost", "route events with dead_letter true: the broker routed a rejected message through a dead-letter exchange to a DLQ"],
  errors: ["Errors", "error", "error events: failures the workflow observed"],
  events: ["Events", "other", "every event recorded so far (the last seq)"],
};
// Counters only some workflows can move: their card appears once they do, so the others keep their room.
const WHEN_NONZERO = new Set(["dead_lettered"]);
const SYNC = {
  published: ["Requests", "published", "request events the client sent (first attempts only)"],
  responses: ["Responses", "acked", "response events: calls the client got an answer to"],
  delivered: ["Received", "delivered", "deliver events: requests that reached the server"],
  processed: ["Handled", "delivered", "process events: requests the server handled"],
  effects: ["Changed state", "acked", "process events that changed the server's state (effect not false)"],
  errors: ["Errors", "error", "error events: failed calls (e.g. HTTP 5xx)"],
  duplicates: ["Duplicates", "duplicate", "deliver events marked duplicate: a 2nd+ delivery of a request to the server"],
  lost: ["Lost", "lost", "messages never processed (reported at the end)"],
  events: ["Events", "other", "every event recorded so far (the last seq)"],
};

class Counters {
  constructor(root, checkEl, pattern) {
    this.root = root;
    this.checkEl = checkEl;
    this.spec = pattern === "sync" ? SYNC : ASYNC;
    this.cells = new Map();
    for (const name of Object.keys(this.spec)) if (!WHEN_NONZERO.has(name)) this.cell(name);
  }

  cell(name) {
    let value = this.cells.get(name);
    if (value) return value;
    const [label, category, help] = this.spec[name] || [name, "other", "reported by the server's summary"];
    value = h("output", { class: "counter-value", dataset: { counter: name } }, "0");
    this.root.append(h("div", { class: `counter cat-${category}`, title: help, dataset: { counterCard: name } },
      h("div", { class: "counter-head" }, swatch(category), value, h("span", { class: "counter-label" }, label)),
      h("div", { class: "counter-help" }, help)));
    this.cells.set(name, value);
    return value;
  }

  /** counts: the model's counts; completed: {response, process}; server: extra keys from the server. */
  render(counts, completed, serverCounts) {
    const values = { ...counts, responses: completed.response };
    for (const [name, value] of Object.entries(serverCounts || {})) {
      if (!(name in values)) values[name] = value; // a key this page does not compute yet
    }
    for (const [name, value] of Object.entries(values)) {
      if (name === "responses" && !(name in this.spec)) continue;
      if (WHEN_NONZERO.has(name) && !value && !this.cells.has(name)) continue;
      const el = this.cell(name);
      if (el.textContent !== String(value)) el.textContent = String(value);
    }
  }

  /** problems: [] when the client numbers equal the server summary at the same seq. */
  showCheck(seq, problems) {
    this.checkEl.dataset.ok = String(problems.length === 0);
    this.checkEl.dataset.seq = String(seq);
    this.checkEl.textContent = problems.length === 0
      ? `✓ These numbers, computed here from the event log, equal the server's summary at event ${seq}.`
      : `✗ Differs from the server's summary at event ${seq}: ${problems.join("; ")}`;
  }
}

export { Counters, ASYNC as ASYNC_COUNTERS, SYNC as SYNC_COUNTERS };
