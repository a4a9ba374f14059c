/* celery-order panel: the order request returns at enqueue, the task finishes much later.

   - Verdicts: the customer's wait (HTTP 202, perceived) against the order being charged
     (end-to-end), medians side by side; and charges per order (a worker killed mid-task
     with acks_late runs the task again: charged twice unless the task is idempotent).
   - Orders: one row per order: 202 after …, enqueued, which worker ran it (↻ again after
     a kill, with the broker's redelivered flag), charges, finished.
   - Workers: running / killed, what each ran, and a ⚡ Kill button each. */
import { fmtMs, h } from "../dom.js";
import { actionButtons, ActorRows, attempt, attemptLines, countEffect, entry, fillTable, foldsEvents, isLive, lessonLine, newestRows, placeActors, showState, verdict } from "./kit.js";

const SHOWN_ROWS = 80;

function median(values) {
  if (!values.length) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function freshState(result = null) {
  return { orders: new Map(), order: [], workers: new Map(), perceived: [], endToEnd: [], charges: 0, suppressed: 0,
    duplicates: 0, ended: false, result };
}

/**
 * An order's task as the record shows it: "finished" (acked after returning, or, with
 * acks_late off, not in the result's unfinished list once the run ended), "lost" (killed
 * with acks_late off, or not finished when the run ended), else "running" or "queued".
 * o: {finished, abandoned, runs}; run: {ended (the done event was seen), acksLate,
 * unfinished: the result's list of unfinished order ids, or null before it is known}.
 */
export function orderOutcome(o, { ended, acksLate, unfinished }) {
  if (o.finished) return "finished";
  if (o.abandoned) return "lost";
  if (!ended) return o.runs.length ? "running" : "queued";
  if (unfinished) return unfinished.includes(o.id) ? "lost" : "finished";
  // Without the result, only acks_late records the end of a task (its ack).
  return acksLate ? "lost" : "unknown";
}

const OUTCOME_TEXT = { finished: "✓ finished", lost: "✗ lost", running: "running", queued: "queued", unknown: "ended" };
const OUTCOME_NOTE = { lost: "the task never finished: its receipt was never sent", unknown: "no end of this task was recorded" };

/**
 * The charges verdict from the orders' outcomes and charges, failures first: a task that
 * never finished (its receipt lost) is never "✓". orders: [{id, charges, suppressed, outcome}].
 */
export function chargesVerdict(orders, { duplicates }) {
  const charges = orders.reduce((n, o) => n + o.charges, 0);
  const suppressed = orders.reduce((n, o) => n + o.suppressed, 0);
  const charged = orders.filter((o) => o.charges + o.suppressed > 0);
  const twice = orders.filter((o) => o.charges > 1);
  const lost = orders.filter((o) => o.outcome === "lost");
  const base = `${charges} charges for ${charged.length} orders`;
  const explain = [];
  if (lost.length) {
    const paid = lost.filter((o) => o.charges > 0);
    explain.push(`Never finished: ${lost.map((o) => o.id).join(", ")} — ` +
      (paid.length ? `${paid.length === lost.length ? "charged" : `${paid.map((o) => o.id).join(", ")} charged`}, but the receipt was never sent` :
        "never charged") + " and no worker runs the task again (lost).");
  }
  if (twice.length) explain.push(`Charged twice: ${twice.map((o) => o.id).join(", ")} — the task ran again after its worker was killed.`);
  else if (suppressed) explain.push(`The task ran again ${suppressed}× but its inbox skipped the charge: exactly once.`);
  else if (duplicates) explain.push("A task ran again.");
  const category = twice.length ? "error" : lost.length ? "lost" : duplicates ? "duplicate" : "acked";
  if (!explain.length) explain.push("Every order was charged once.");
  return { category, headline: lost.length ? `${base} · ${lost.length} never finished` : base,
    explain: explain.join(" "), charges, orders: charged.length, lost: lost.length };
}

const panel = {
  ...foldsEvents("charges"),
  title: "Celery order: 202 at enqueue, the work later",

  init(root, ctx) {
    const p = ctx.run.params || {};
    this.acksLate = p.acks_late !== false;
    this.idempotent = Boolean(p.idempotent);
    this.live = isLive(ctx.run.state);
    this.state = freshState();
    root.append(
      lessonLine(
        "the view puts a task on the queue and answers 202 Accepted at once: the customer waits for the hand-over, not for the work. ",
        "A Celery worker charges the order and then sends the receipt. ",
        this.acksLate
          ? "acks_late is on: the task message is acked only after the task returned, so a worker killed mid-task leaves it unacked and the broker delivers it again: the task runs twice."
          : "acks_late is off: the task message is acked on receipt, so a worker killed mid-task loses the rest of that task for good.",
        this.idempotent ? " The task is idempotent: an inbox row per order makes a second run skip the charge." : ""),
      (this.verdictsEl = h("div", { class: "verdicts", id: "celery-verdicts", "aria-live": "polite" })),
      h("div", { class: "celery-grid" },
        h("section", {}, h("h3", {}, "Orders"),
          (this.ordersEl = h("div", { class: "table-wrap celery-orders" }, h("table", { id: "celery-orders", dataset: { inspect: "" } })))),
        h("section", {}, h("h3", {}, "Workers"),
          (this.workersEl = h("div", { class: "table-wrap" }, h("table", { id: "celery-workers" }))))));
    this.workerRows = new ActorRows(this.workersEl.firstChild, {
      titles: ["worker", "state", "tasks", "pid", ""], key: "worker", columns: { state: "", ran: "num", pid: "num" },
      buttons: (name) => [h("button", { type: "button", dataset: { kill: `worker:${name}` },
        title: "kill this worker now (SIGKILL on RabbitMQ)" }, "⚡ Kill")],
    });
    actionButtons(this.workersEl, "button[data-kill]", (button) => ctx.api.action("crash", button.dataset.kill));
    this.render();
  },

  reset() {
    this.state = freshState(this.state.result); // the recorded outcome stays; `ended` waits for the done event again
    this.render();
  },

  layout: placeActors({ client: [0, 0], server: [1, 0], "queue:": [2, 0], "worker:": [3] }),

  route(ev, guess) {
    if (ev.kind === "enqueue") return "client";
    if (ev.kind === "deliver") return "queue:orders";
    if (ev.kind === "response") return "server";
    return guess;
  },

  orderRow(id) {
    return entry(this.state.orders, id, () => {
      const o = { id, status: null, perceived: null, enqueued: null, runs: [], charges: 0, suppressed: 0, endToEnd: null,
        finished: false, abandoned: false };
      this.state.order.push(o);
      return o;
    });
  },

  worker(name) {
    return entry(this.state.workers, name, () => ({ name, state: "running", ran: 0, pid: null, note: "" }));
  },

  apply(ev, a, s, ctx) {
    switch (ev.kind) {
      case "request":
        this.orderRow(ev.message_id);
        break;
      case "enqueue":
        this.orderRow(ev.message_id).enqueued = ev.t_ms;
        ctx.topology.pulse("server", "queue:orders", { label: a.task, category: "routed" });
        break;
      case "response": {
        const o = this.orderRow(ev.message_id);
        o.status = a.status;
        o.perceived = a.perceived_ms;
        if (typeof a.perceived_ms === "number") s.perceived.push(a.perceived_ms);
        break;
      }
      case "assign": {
        const w = this.worker(a.worker);
        w.pid = a.pid;
        w.note = a.process || "";
        break;
      }
      case "deliver": {
        const o = this.orderRow(ev.message_id);
        o.runs.push(attempt(ev, a.worker));
        this.worker(a.worker).ran += 1;
        if (ev.duplicate) s.duplicates += 1;
        break;
      }
      case "process": {
        const o = this.orderRow(ev.message_id);
        countEffect(ev, "charges", o, s);
        if (typeof a.end_to_end_ms === "number") {
          o.endToEnd = a.end_to_end_ms;
          s.endToEnd.push(a.end_to_end_ms);
        }
        break;
      }
      case "ack":
        if (!a.early) this.orderRow(ev.message_id).finished = true;
        break;
      case "crash": {
        const w = this.worker(a.worker);
        w.state = "killed";
        w.note = `${a.signal}: ${a.reason}`;
        break;
      }
      case "error":
        if (ev.message_id) this.orderRow(ev.message_id).abandoned = true;
        break;
      default:
        return false;
    }
    return true;
  },

  render() {
    if (!this.verdictsEl) return;
    const s = this.state;
    const p50 = median(s.perceived);
    const e50 = median(s.endToEnd);
    const unfinished = s.result && Array.isArray(s.result.unfinished) ? s.result.unfinished : null;
    const run = { ended: s.ended, acksLate: this.acksLate, unfinished };
    for (const o of s.order) o.outcome = orderOutcome(o, run);
    const charges = chargesVerdict(s.order, s);
    this.verdictsEl.replaceChildren(
      verdict({ category: "acked", key: "latency", headline: p50 === null ? "Waiting for the first 202…" : `The customer waited ${fmtMs(p50)}`,
        explain: e50 === null ? "The order is processed later, by a worker." :
          `…but the order was charged ${fmtMs(e50)} after it was placed (medians): perceived latency ≪ end-to-end latency.`,
        data: { perceived: p50 === null ? "" : String(p50), endToEnd: e50 === null ? "" : String(e50) } }),
      verdict({ category: charges.category, key: "charges", headline: charges.headline, explain: charges.explain,
        data: { charges: String(charges.charges), orders: String(charges.orders), duplicates: String(s.duplicates),
          lost: String(charges.lost) } }));

    const rows = newestRows(s.order, SHOWN_ROWS, (o) => h("tr", { tabindex: "0", title: "Open its journey in the inspector", dataset: { message: o.id, charges: String(o.charges), outcome: o.outcome },
      class: o.runs.some((r) => r.duplicate) ? "dup" : "" },
    h("th", { scope: "row" }, h("code", {}, o.id)),
    h("td", { class: "num" }, o.status ? `${o.status} after ${fmtMs(o.perceived)}` : "…"),
    h("td", {}, attemptLines(o.runs, "run", (r) => `run #${r.attempt} on ${r.who}${r.redelivered ? " · redelivered" : ""}`)),
    h("td", { class: "num" }, `${o.charges}${o.suppressed ? ` (+${o.suppressed} skipped)` : ""}`),
    h("td", { class: "num" }, o.endToEnd === null ? "—" : fmtMs(o.endToEnd)),
    h("td", { class: o.outcome === "lost" ? "cat-lost" : "", title: OUTCOME_NOTE[o.outcome] || "" }, OUTCOME_TEXT[o.outcome])));
    fillTable(this.ordersEl.firstChild, ["order", "HTTP (perceived)", "task runs", "charges", "charged after", "task"], rows);

    this.workerRows.show(s.workers.keys(), ({ tr, cells, buttons: [kill] }, name) => {
      const w = s.workers.get(name);
      tr.dataset.state = w.state;
      showState(cells.state, { category: w.state === "killed" ? "error" : "acked", className: "celery-state",
        text: w.state === "killed" ? "✗ killed" : "● running", note: w.note });
      cells.ran.textContent = String(w.ran);
      cells.pid.textContent = w.pid ? String(w.pid) : "—";
      kill.disabled = !this.live || w.state === "killed";
    });
  },
};


export default panel;
