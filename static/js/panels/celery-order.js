/* celery-order panel: the order request returns at enqueue, the task finishes much later.

   - Verdicts: the customer's wait (HTTP 202, perceived) against the order being charged
     (end-to-end), medians side by side; and charges per order (a worker killed mid-task
     with acks_late runs the task again: charged twice unless the task is idempotent).
   - Orders: one row per order: 202 after …, enqueued, which worker ran it (↻ again after
     a kill, with the broker's redelivered flag), charges, finished.
   - Workers: running / killed, what each ran, and a ⚡ Kill button each. */
import { fmtMs, h, onFrame } from "../dom.js";
import { swatch } from "../legend.js";
const SHOWN_ROWS = 80;

function median(values) {
  if (!values.length) return null;
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function freshState() {
  return { orders: new Map(), order: [], workers: new Map(), perceived: [], endToEnd: [], charges: 0, suppressed: 0,
    duplicates: 0, result: null };
}

const panel = {
  title: "Celery order: 202 at enqueue, the work later",

  init(root, ctx) {
    this.ctx = ctx;
    const p = ctx.run.params || {};
    this.acksLate = p.acks_late !== false;
    this.idempotent = Boolean(p.idempotent);
    this.live = !["succeeded", "failed", "cancelled"].includes(ctx.run.state);
    this.state = freshState();
    injectStyle();
    root.append(
      h("p", { class: "lesson-line" }, h("strong", {}, "Lesson: "),
        "the view puts a task on the queue and answers 202 Accepted at once: the customer waits for the hand-over, not for the work. ",
        "A Celery worker charges the order and then sends the receipt. ",
        this.acksLate
          ? "acks_late is on: the task message is acked only after the task returned, so a worker killed mid-task leaves it unacked and the broker delivers it again: the task runs twice."
          : "acks_late is off: the task message is acked on receipt, so a worker killed mid-task loses the rest of that task for good.",
        this.idempotent ? " The task is idempotent: an inbox row per order makes a second run skip the charge." : ""),
      (this.verdictsEl = h("div", { class: "verdicts", id: "celery-verdicts", "aria-live": "polite" })),
      h("div", { class: "celery-grid" },
        h("section", {}, h("h3", {}, "Orders"),
          (this.ordersEl = h("div", { class: "table-wrap celery-orders" }, h("table", { id: "celery-orders" })))),
        h("section", {}, h("h3", {}, "Workers"),
          (this.workersEl = h("div", { class: "table-wrap" }, h("table", { id: "celery-workers" }))))));
    this.workersEl.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-kill]");
      if (!button) return;
      button.disabled = true;
      try {
        await this.ctx.api.action("crash", button.dataset.kill);
      } finally {
        button.disabled = false;
      }
    });
    this.render();
  },

  reset() {
    this.state = freshState();
    this.render();
  },

  layout(actor) {
    if (actor === "client") return { column: 0, row: 0 };
    if (actor === "server") return { column: 1, row: 0 };
    if (actor.startsWith("queue:")) return { column: 2, row: 0 };
    if (actor.startsWith("worker:")) return { column: 3 };
    return undefined;
  },

  route(ev, guess) {
    if (ev.kind === "enqueue") return "client";
    if (ev.kind === "deliver") return "queue:orders";
    if (ev.kind === "response") return "server";
    return guess;
  },

  orderRow(id) {
    let o = this.state.orders.get(id);
    if (!o) {
      o = { id, status: null, perceived: null, enqueued: null, runs: [], charges: 0, suppressed: 0, endToEnd: null, finished: false,
        abandoned: false };
      this.state.orders.set(id, o);
      this.state.order.push(o);
    }
    return o;
  },

  worker(name) {
    let w = this.state.workers.get(name);
    if (!w) {
      w = { name, state: "running", ran: 0, pid: null, note: "" };
      this.state.workers.set(name, w);
    }
    return w;
  },

  onEvent(ev, ctx) {
    const a = ev.attrs || {};
    const s = this.state;
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
        o.runs.push({ worker: a.worker, t: ev.t_ms, attempt: ev.attempt, duplicate: ev.duplicate,
          redelivered: Boolean(a.redelivered), reason: a.reason || "" });
        this.worker(a.worker).ran += 1;
        if (ev.duplicate) s.duplicates += 1;
        break;
      }
      case "process": {
        const o = this.orderRow(ev.message_id);
        if (a.effect === false) {
          o.suppressed += 1;
          s.suppressed += 1;
        } else {
          o.charges += 1;
          s.charges += 1;
        }
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
        return;
    }
    onFrame("celery-order-panel", () => this.render());
  },

  onSummary(summary) {
    if (summary.state) this.live = !["succeeded", "failed", "cancelled"].includes(summary.state);
    if (summary.result && summary.result.charges) this.state.result = summary.result;
    onFrame("celery-order-panel", () => this.render());
  },

  workerRow(name) {
    this.rows = this.rows || new Map();
    let row = this.rows.get(name);
    if (row) return row;
    row = { state: h("td"), ran: h("td", { class: "num" }), pid: h("td", { class: "num" }),
      button: h("button", { type: "button", dataset: { kill: `worker:${name}` }, title: "kill this worker now (SIGKILL on RabbitMQ)" }, "⚡ Kill") };
    row.tr = h("tr", { dataset: { worker: name } }, h("th", { scope: "row" }, name), row.state, row.ran, row.pid, h("td", {}, row.button));
    this.rows.set(name, row);
    return row;
  },

  render() {
    if (!this.verdictsEl) return;
    const s = this.state;
    const p50 = median(s.perceived);
    const e50 = median(s.endToEnd);
    const orders = [...s.orders.values()];
    const charged = orders.filter((o) => o.charges + o.suppressed > 0);
    const twice = orders.filter((o) => o.charges > 1);
    const verdict = (cat, key, headline, explain, data) => h("div", { class: `verdict cat-${cat}`, dataset: { verdict: key, ...data } },
      h("p", { class: "verdict-headline" }, swatch(cat), headline), h("p", { class: "verdict-explain" }, explain));
    this.verdictsEl.replaceChildren(
      verdict("acked", "latency", p50 === null ? "Waiting for the first 202…" : `The customer waited ${fmtMs(p50)}`,
        e50 === null ? "The order is processed later, by a worker." :
          `…but the order was charged ${fmtMs(e50)} after it was placed (medians): perceived latency ≪ end-to-end latency.`,
        { perceived: p50 === null ? "" : String(p50), endToEnd: e50 === null ? "" : String(e50) }),
      verdict(twice.length ? "error" : s.duplicates ? "duplicate" : "acked", "charges",
        `${s.charges} charges for ${charged.length} orders`,
        twice.length ? `Charged twice: ${twice.map((o) => o.id).join(", ")} — the task ran again after its worker was killed.`
          : s.suppressed ? `The task ran again ${s.suppressed}× but its inbox skipped the charge: exactly once.`
            : s.duplicates ? "A task ran again." : "Every order was charged once.",
        { charges: String(s.charges), orders: String(charged.length), duplicates: String(s.duplicates) }));

    const rows = s.order.slice(-SHOWN_ROWS).reverse().map((o) => h("tr", { dataset: { message: o.id, charges: String(o.charges) },
      class: o.runs.some((r) => r.duplicate) ? "dup" : "" },
    h("th", { scope: "row" }, h("code", {}, o.id)),
    h("td", { class: "num" }, o.status ? `${o.status} after ${fmtMs(o.perceived)}` : "…"),
    h("td", {}, ...o.runs.map((r) => h("div", { class: `run cat-${r.duplicate ? "duplicate" : "delivered"}` },
      `${r.duplicate ? "↻" : "▼"} run #${r.attempt} on ${r.worker}${r.redelivered ? " · redelivered" : ""}`,
      r.reason ? h("div", { class: "muted small" }, r.reason) : ""))),
    h("td", { class: "num" }, `${o.charges}${o.suppressed ? ` (+${o.suppressed} skipped)` : ""}`),
    h("td", { class: "num" }, o.endToEnd === null ? "—" : fmtMs(o.endToEnd)),
    h("td", {}, o.finished ? "✓ finished" : o.abandoned ? "✗ never finished" : o.runs.length ? "running" : "queued")));
    this.ordersEl.firstChild.replaceChildren(
      h("thead", {}, h("tr", {}, ...["order", "HTTP (perceived)", "task runs", "charges", "charged after", "task"].map((x) => h("th", {}, x)))),
      h("tbody", {}, rows));

    const table = this.workersEl.firstChild;
    if (!table.tHead) {
      table.append(h("thead", {}, h("tr", {}, ...["worker", "state", "tasks", "pid", ""].map((x) => h("th", {}, x)))), h("tbody", {}));
    }
    table.tBodies[0].replaceChildren(...[...s.workers.values()].map((w) => {
      const row = this.workerRow(w.name);
      row.tr.dataset.state = w.state;
      row.state.className = `cat-${w.state === "killed" ? "error" : "acked"} celery-state`;
      row.state.textContent = w.state === "killed" ? "✗ killed" : "● running";
      row.state.title = w.note;
      row.ran.textContent = String(w.ran);
      row.pid.textContent = w.pid ? String(w.pid) : "—";
      row.button.disabled = !this.live || w.state === "killed";
      return row.tr;
    }));
  },
};

function injectStyle() {
  if (document.getElementById("celery-order-style")) return;
  const style = document.createElement("style");
  style.id = "celery-order-style";
  style.textContent = `
    .celery-grid { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: var(--gap); }
    .celery-grid h3 { margin: 0 0 6px; }
    #celery-orders, #celery-workers { width: 100%; }
    .celery-orders { max-height: 420px; }
    .celery-orders tr.dup { background: color-mix(in srgb, var(--c-duplicate) 18%, transparent); }
    .celery-orders .run { border-left: 6px solid var(--cat); padding-left: 6px; margin: 2px 0; }
    .celery-orders td:last-child, #celery-workers button, #celery-orders th, #celery-workers th { white-space: nowrap; }
    #celery-workers td, #celery-workers th { font-size: 0.92rem; padding: 4px 6px; }
    .celery-state { border-left: 6px solid var(--cat); font-weight: 700; white-space: nowrap; }
    @media (max-width: 1100px) { .celery-grid { grid-template-columns: minmax(0, 1fr); } }
  `;
  document.head.append(style);
}

export default panel;
