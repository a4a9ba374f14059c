/* outbox panel: a service stores an order and publishes "order placed", with or without one
   transaction.

   - Verdicts: each order's outcome (ok / lost / phantom / duplicate-suppressed) counted, and
     effects against orders: exactly once, or not.
   - The pipeline, left to right: the service, its database (the orders table and the
     outbox table), the relay (running / crashed / back, with its ⚡ Crash button), the
     broker, and the consumer with its inbox.
   - The outbox table's rows with their state (pending → sent, how many publishes), and the
     orders with what became of each. */
import { h } from "../dom.js";
import { actionButtons, countEffect, entry, fillTable, foldsEvents, isLive, lessonLine, newestRows, placeActors, showState, verdict } from "./kit.js";

const SHOWN_ROWS = 60;
export const OUTCOMES = ["ok", "duplicate-suppressed", "lost", "phantom"];
const OUTCOME_CATEGORY = { ok: "acked", "duplicate-suppressed": "duplicate", lost: "lost", phantom: "error", "in flight": "published" };
const OUTCOME_TEXT = { ok: "✓ ok", "duplicate-suppressed": "↻ dup. suppressed", lost: "∅ lost", phantom: "✗ phantom", "in flight": "… in flight" };
const OUTCOME_NOTE = {
  lost: "the order is stored; its message never reached the consumer",
  phantom: "the consumer acted on a message whose order was never stored",
  "duplicate-suppressed": "delivered twice; the inbox kept the second from taking effect",
};
const ROW_CATEGORY = { pending: "published", sent: "acked" };
// The topology: outbox mode goes service → database → relay → broker → consumer; dual write skips the relay.
const OUTBOX_PLACES = placeActors({ service: [0, 0], "db:orders": [1, 0], "db:outbox": [1, 1], relay: [2, 1],
  "exchange:": [3, 1], "topic:": [3, 1], "consumer:": [4, 1] });
const DUAL_WRITE_PLACES = placeActors({ service: [0, 0], "db:orders": [1, 1], "exchange:": [2, 0], "topic:": [2, 0],
  "consumer:": [3, 0] });

function freshState() {
  return { orders: new Map(), order: [], rows: [], relay: { state: "idle", crashes: 0, note: "" }, serviceCrashes: 0,
    published: 0, delivered: 0, duplicates: 0, effects: 0, suppressed: 0, ended: false, result: null, selected: null };
}

/**
 * What became of one order, as flows/outbox/outcomes.py says once the run ended; before that
 * only what is already certain (a crash decided it), else "in flight".
 * o: {stored, effects, suppressed, crashed, row}; ended: the done event was seen.
 */
export function orderOutcome(o, ended) {
  const handled = o.effects + o.suppressed > 0;
  if (o.stored && handled) return o.suppressed ? "duplicate-suppressed" : "ok";
  if (!o.stored && handled) return ended || o.crashed ? "phantom" : "in flight";
  if (ended) return "lost";
  // Crashed after its commit with no outbox row to fall back on: its message will never go.
  return o.stored && o.crashed && !o.row ? "lost" : "in flight";
}

/** Outcomes counted over the orders, and the verdict on effects. orders: [{id, effects, suppressed, outcome}]. */
export function outboxVerdict(orders, { ended }) {
  const counts = Object.fromEntries([...OUTCOMES, "in flight"].map((k) => [k, 0]));
  for (const o of orders) counts[o.outcome] += 1;
  const effects = orders.reduce((n, o) => n + o.effects, 0);
  const bad = counts.lost + counts.phantom;
  const exact = ended && !bad && orders.every((o) => o.effects === 1);
  const explain = [];
  if (counts.lost) explain.push(`Lost: ${orders.filter((o) => o.outcome === "lost").map((o) => o.id).join(", ")} — stored, never announced.`);
  if (counts.phantom) explain.push(`Phantom: ${orders.filter((o) => o.outcome === "phantom").map((o) => o.id).join(", ")} — announced, never stored.`);
  if (counts["duplicate-suppressed"]) explain.push(`${counts["duplicate-suppressed"]} published twice by the relay; the consumer's inbox suppressed the second.`);
  if (!explain.length) explain.push(ended ? "Every order stored and announced once." : "Waiting for the orders to arrive.");
  return { category: bad ? (counts.phantom ? "error" : "lost") : exact ? "acked" : "published", counts, effects, exact,
    headline: `${effects} effects for ${orders.length} orders${exact ? ": exactly once" : ""}` +
      `${counts.lost ? ` · ${counts.lost} lost` : ""}${counts.phantom ? ` · ${counts.phantom} phantom` : ""}`,
    explain: explain.join(" ") };
}

const panel = {
  ...foldsEvents("outcomes"),
  title: "Dual write or outbox: lost, phantom and duplicate messages",

  init(root, ctx) {
    this.ctx = ctx;
    const p = ctx.run.params || {};
    this.mode = p.mode || "outbox";
    this.dualOrder = p.order || "commit-then-publish";
    this.broker = p.broker || "amqp";
    this.live = isLive(ctx.run.state);
    this.state = freshState();
    const how = this.mode === "outbox"
      ? "Outbox: the order and an outbox row are written in one transaction; the relay publishes pending rows and marks them sent. A relay crash between the two publishes the row again, and the consumer's inbox suppresses the duplicate."
      : this.dualOrder === "commit-then-publish"
        ? "Dual write, commit then publish: a crash between the two leaves an order nobody hears of (lost)."
        : "Dual write, publish then commit: a crash between the two announces an order that was never stored (phantom).";
    root.append(
      lessonLine("the database and the broker share no transaction. ", how),
      (this.verdictsEl = h("div", { class: "verdicts", id: "outbox-verdicts", "aria-live": "polite" })),
      (this.pipelineEl = h("div", { class: "outbox-pipeline", id: "outbox-pipeline" })),
      h("div", { class: "outbox-grid" },
        h("section", {}, h("h3", {}, "Outbox table (newest first)"),
          (this.rowsEl = h("div", { class: "table-wrap outbox-table" }, h("table", { id: "outbox-rows", dataset: { inspect: "" } })))),
        h("section", {}, h("h3", {}, "Orders and what became of them"),
          (this.ordersEl = h("div", { class: "table-wrap outbox-table" }, h("table", { id: "outbox-orders", dataset: { inspect: "" } }))))));
    actionButtons(this.pipelineEl, "button[data-crash-relay]", () => ctx.api.action("crash", ""), (button, { ok, data }) => {
      button.title = ok ? "armed: the relay crashes after its next publish, before marking the row sent"
        : Object.values((data && data.errors) || { error: data && data.error }).join("; ");
    });
    this.render();
  },

  reset() {
    this.state = freshState();
    this.render();
  },

  layout(actor) {
    return (this.mode === "dual-write" ? DUAL_WRITE_PLACES : OUTBOX_PLACES)(actor);
  },

  route(ev, guess) {
    if (ev.kind === "crash") return null; // the service or the relay dies where it is
    // The outbox row is a table row, not a queue the consumer reads: deliveries come from the broker.
    if (ev.kind === "deliver") return this.broker === "kafka" ? "topic:orders/p0" : "exchange:orders";
    if (ev.actor === "db:orders" || (ev.actor === "db:outbox" && ev.kind === "enqueue")) return "service";
    if (ev.actor === "relay" && ev.kind === "publish") return "db:outbox";
    if (ev.actor === "db:outbox" && ev.kind === "commit") return "relay";
    return guess;
  },

  orderOf(ev) {
    const id = (ev.attrs || {}).order_id;
    if (!id) return null;
    return entry(this.state.orders, id, () => {
      const o = { id, message: ev.message_id, stored: false, row: null, publishes: 0, delivered: 0, effects: 0, suppressed: 0, crashed: false };
      this.state.order.push(o);
      return o;
    });
  },

  apply(ev, a, s) {
    const o = this.orderOf(ev);
    switch (ev.kind) {
      case "commit":
        if (ev.actor === "db:orders") o.stored = true;
        else if (a.outbox_state) o.row = a.outbox_state;
        break;
      case "enqueue":
        if (a.outbox_state && o) {
          if (!o.row) s.rows.push(o);
          o.row = a.outbox_state;
        }
        break;
      case "publish":
        if (o) o.publishes += 1;
        s.published += 1;
        break;
      case "deliver":
        if (o) o.delivered += 1;
        s.delivered += 1;
        if (ev.duplicate) s.duplicates += 1;
        break;
      case "process":
        countEffect(ev, "effects", o || { effects: 0, suppressed: 0 }, s);
        break;
      case "crash":
        if (o) o.crashed = true;
        if (ev.actor === "relay") Object.assign(s.relay, { state: "crashed", crashes: s.relay.crashes + 1, note: a.reason || "" });
        else s.serviceCrashes += 1;
        break;
      case "assign":
        if (ev.actor === "relay") Object.assign(s.relay, { state: a.restarted ? "back" : "running", note: a.reason || "" });
        break;
      case "done":
        if (s.relay.state !== "idle") s.relay.state = "stopped";
        break;
      default:
        return false;
    }
    return true;
  },

  render() {
    if (!this.verdictsEl) return;
    const s = this.state;
    const orders = s.order.map((o) => ({ ...o, outcome: orderOutcome(o, s.ended) }));
    const v = outboxVerdict(orders, s);
    this.verdictsEl.replaceChildren(
      verdict({ category: v.category, key: "outcomes", headline: v.headline, explain: v.explain,
        data: { lost: String(v.counts.lost), phantom: String(v.counts.phantom), effects: String(v.effects) } }),
      h("div", { class: "outbox-outcomes" }, ...OUTCOMES.map((k) => h("span", { class: `chip cat-${OUTCOME_CATEGORY[k]}`,
        dataset: { outcome: k, count: String(v.counts[k]) } }, `${OUTCOME_TEXT[k]} ${v.counts[k]}`))));
    this.renderPipeline(s, orders);
    this.renderRows(s);
    const rows = newestRows(orders, SHOWN_ROWS, (o) => h("tr", { tabindex: "0", title: "Open its journey in the inspector",
      dataset: { message: o.message, order: o.id, outcome: o.outcome } },
    h("th", { scope: "row" }, h("code", {}, o.id)),
    h("td", { class: o.stored ? "" : "cat-error" }, o.stored ? "✓" : "✗ none"),
    h("td", { class: "num" }, String(o.publishes)),
    h("td", { class: "num" }, String(o.delivered)),
    h("td", { class: "num", title: o.suppressed ? `${o.suppressed} more suppressed by the inbox` : "" }, `${o.effects}${o.suppressed ? ` (+${o.suppressed})` : ""}`),
    h("td", { class: `cat-${OUTCOME_CATEGORY[o.outcome]} outbox-outcome`, title: OUTCOME_NOTE[o.outcome] || "" }, OUTCOME_TEXT[o.outcome])));
    fillTable(this.ordersEl.firstChild, ["order", "stored", "published", "delivered", "effects", "outcome"], rows);
  },

  renderPipeline(s, orders) {
    const stored = orders.filter((o) => o.stored).length;
    const pending = s.rows.filter((o) => o.row === "pending").length;
    const box = (key, title, ...lines) => h("div", { class: "outbox-box", dataset: { box: key } }, h("strong", {}, title),
      ...lines.map((line) => h("div", { class: "small" }, line)));
    const relay = this.mode === "outbox"
      ? box("relay", "Relay", (this.relayState = h("span", { id: "outbox-relay-state" })),
        `crashes ${s.relay.crashes}`,
        h("button", { type: "button", dataset: { crashRelay: "" }, disabled: !this.live,
          title: "crash after its next publish, before marking the row sent" }, "⚡ Crash relay"))
      : box("relay", "No relay", "the service publishes itself", `service crashes ${s.serviceCrashes}`);
    if (this.relayState) {
      const text = { idle: "…", running: "● running", back: "● back", crashed: "✗ crashed", stopped: "■ stopped" };
      showState(this.relayState, { category: s.relay.state === "crashed" ? "error" : "acked", className: "outbox-relay",
        text: text[s.relay.state] || s.relay.state, note: s.relay.note });
      this.relayState.dataset.state = s.relay.state;
    }
    const where = this.broker === "kafka" ? "Kafka topic orders" : "AMQP exchange orders → queue billing";
    this.pipelineEl.replaceChildren(
      box("service", "Service", `orders placed ${orders.length}`, this.mode === "outbox" ? "one transaction each" : this.dualOrder),
      box("database", "Database", `orders table: ${stored} rows`,
        this.mode === "outbox" ? `outbox: ${pending} pending · ${s.rows.length - pending} sent` : "no outbox table"),
      relay,
      box("broker", "Broker", where, `published ${s.published}`),
      box("consumer", "Consumer billing + inbox", `delivered ${s.delivered} (${s.duplicates} duplicate)`,
        `effects ${s.effects} · inbox suppressed ${s.suppressed}`));
  },

  renderRows(s) {
    if (this.mode !== "outbox") {
      this.rowsEl.replaceChildren(h("p", { class: "muted" }, "Dual write keeps no outbox: the message exists only if the service lives to send it."));
      return;
    }
    const rows = newestRows(s.rows, SHOWN_ROWS, (o) => h("tr", { tabindex: "0", dataset: { message: o.message, state: o.row } },
      h("th", { scope: "row" }, h("code", {}, o.message)),
      h("td", {}, o.id),
      h("td", { class: `cat-${ROW_CATEGORY[o.row]} outbox-state` }, o.row === "sent" ? "✓ sent" : "● pending"),
      h("td", { class: "num" }, String(o.publishes))));
    fillTable(this.rowsEl.firstChild, ["message", "order", "state", "publishes"], rows);
  },
};

export default panel;
