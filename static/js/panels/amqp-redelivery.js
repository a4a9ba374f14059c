/* amqp-redelivery panel: consumers that crash before their ack, the broker's redelivery, and
   what an idempotent consumer's inbox does with the duplicate.

   - Consumers: alive / crashed / back, what each handled and acked, a ⚡ Crash button each
     (the same fault as the page's Crash consumer button, aimed at that consumer).
   - The queue: ready and unacked as the events say (and the broker's ready count at the end).
   - Messages: deliveries (↻ with the broker's redelivered flag and the reason), effects
     applied (the side-effect counter) and, with idempotent on, duplicates suppressed by the
     inbox. The verdict compares side effects with distinct messages: exactly once or not. */
import { fmtMs, h, onFrame } from "../dom.js";
import { swatch } from "../legend.js";
const SHOWN_ROWS = 80;

function freshState() {
  return { consumers: new Map(), messages: new Map(), order: [], queue: { routed: 0, delivered: 0, acked: 0, requeued: 0 },
    crashes: [], effects: 0, suppressed: 0, duplicates: 0, result: null, selected: null };
}

const panel = {
  title: "Crash before ack: redelivery, duplicates and the idempotent inbox",

  init(root, ctx) {
    this.ctx = ctx;
    const p = ctx.run.params || {};
    this.idempotent = Boolean(p.idempotent);
    this.count = Number(p.consumers) || 1;
    this.live = !["succeeded", "failed", "cancelled"].includes(ctx.run.state);
    this.state = freshState();
    injectStyle();
    root.append(
      h("p", { class: "lesson-line" }, h("strong", {}, "Lesson: "),
        "a consumer receives a message, handles it, then acks. If it crashes after handling and before the ack, the ",
        "broker cannot know the work was done: it requeues the message, marks it redelivered and delivers it again. ",
        this.idempotent
          ? "This consumer is idempotent: it records every message id in an inbox (a unique row per queue and id), so a duplicate is received but its effect is skipped."
          : "This consumer is not idempotent: a duplicate applies its effect a second time."),
      (this.verdictsEl = h("div", { class: "verdicts", id: "redelivery-verdicts", "aria-live": "polite" })),
      h("div", { class: "redelivery-grid" },
        h("section", {}, h("h3", {}, "Consumers on queue work"),
          (this.consumersEl = h("div", { class: "table-wrap" }, h("table", { id: "redelivery-consumers" }))),
          (this.queueEl = h("p", { class: "redelivery-queue", id: "redelivery-queue" }))),
        h("section", {}, h("h3", {}, "Side-effect counter"),
          (this.effectsEl = h("div", { id: "side-effects", class: "side-effects" })))),
      h("h3", {}, "Messages (newest first)"),
      (this.messagesEl = h("div", { class: "table-wrap redelivery-msgs" }, h("table", { id: "redelivery-messages" }))));
    this.consumersEl.addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-crash]");
      if (!button) return;
      button.disabled = true;
      try {
        const { ok, data } = await this.ctx.api.action("crash", button.dataset.crash);
        button.title = ok ? "armed: it crashes after handling its next message, before the ack"
          : Object.values((data && data.errors) || { error: data && data.error }).join("; ");
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
    if (actor === "producer") return { column: 0, row: 0 };
    if (actor.startsWith("exchange:")) return { column: 1, row: 0 };
    if (actor.startsWith("queue:")) return { column: 2, row: 0 };
    return undefined;
  },

  route(ev, guess) {
    if (ev.kind === "route") return guess;
    if (ev.kind === "deliver") return "queue:work";
    return guess;
  },

  consumer(name) {
    let c = this.state.consumers.get(name);
    if (!c) {
      c = { name, state: "alive", delivered: 0, acked: 0, crashes: 0, note: "" };
      this.state.consumers.set(name, c);
    }
    return c;
  },

  message(id) {
    let m = this.state.messages.get(id);
    if (!m) {
      m = { id, deliveries: [], effects: 0, suppressed: 0, acked: false, requeued: 0 };
      this.state.messages.set(id, m);
      this.state.order.push(m);
    }
    return m;
  },

  onEvent(ev, ctx) {
    const a = ev.attrs || {};
    const s = this.state;
    switch (ev.kind) {
      case "publish":
        this.message(ev.message_id);
        break;
      case "route":
        s.queue.routed += 1;
        ctx.topology.pulse(ev.actor, "queue:work", { label: a.binding, category: "routed" });
        break;
      case "assign": {
        const c = this.consumer(a.consumer);
        c.state = a.restarted ? "back" : "alive";
        c.note = a.restarted ? `restarted (incarnation ${a.incarnation})` : "";
        break;
      }
      case "deliver": {
        const m = this.message(ev.message_id);
        m.deliveries.push({ consumer: a.consumer, t: ev.t_ms, attempt: ev.attempt, duplicate: ev.duplicate,
          redelivered: Boolean(a.redelivered), reason: a.reason || "" });
        this.consumer(a.consumer).delivered += 1;
        s.queue.delivered += 1;
        if (ev.duplicate) s.duplicates += 1;
        break;
      }
      case "process": {
        const m = this.message(ev.message_id);
        if (a.effect === false) {
          m.suppressed += 1;
          s.suppressed += 1;
        } else {
          m.effects += 1;
          s.effects += 1;
        }
        break;
      }
      case "ack":
        this.message(ev.message_id).acked = true;
        this.consumer(a.consumer).acked += 1;
        s.queue.acked += 1;
        break;
      case "crash": {
        const c = this.consumer(a.consumer);
        c.state = "crashed";
        c.crashes += 1;
        c.note = a.reason;
        s.crashes.push({ consumer: a.consumer, t: ev.t_ms, unacked: a.unacked || [], reason: a.reason });
        break;
      }
      case "requeue":
        this.message(ev.message_id).requeued += 1;
        s.queue.requeued += 1;
        break;
      default:
        return;
    }
    onFrame("amqp-redelivery-panel", () => this.render());
  },

  onSummary(summary) {
    if (summary.state) this.live = !["succeeded", "failed", "cancelled"].includes(summary.state);
    if (summary.result && summary.result.side_effects) this.state.result = summary.result;
    onFrame("amqp-redelivery-panel", () => this.render());
  },

  consumerRow(name) {
    this.rows = this.rows || new Map();
    let row = this.rows.get(name);
    if (row) return row;
    row = { state: h("td"), delivered: h("td", { class: "num" }), acked: h("td", { class: "num" }), crashes: h("td", { class: "num" }),
      button: h("button", { type: "button", dataset: { crash: `consumer:${name}` },
        title: "crash after handling its next message, before the ack" }, "⚡ Crash") };
    row.tr = h("tr", { dataset: { consumer: name } }, h("th", { scope: "row" }, name), row.state, row.delivered, row.acked,
      row.crashes, h("td", {}, row.button));
    this.rows.set(name, row);
    return row;
  },

  render() {
    if (!this.verdictsEl) return;
    const s = this.state;
    const distinct = [...s.messages.values()].filter((m) => m.effects + m.suppressed > 0).length;
    const repeated = [...s.messages.values()].filter((m) => m.effects > 1);
    const verdict = (cat, key, headline, explain, data) => h("div", { class: `verdict cat-${cat}`, dataset: { verdict: key, ...data } },
      h("p", { class: "verdict-headline" }, swatch(cat), headline), h("p", { class: "verdict-explain" }, explain));
    const items = [
      verdict(s.duplicates ? "duplicate" : "acked", "duplicates", `${s.duplicates} duplicate deliver${s.duplicates === 1 ? "y" : "ies"}`,
        s.crashes.length ? `${s.crashes.length} crash${s.crashes.length === 1 ? "" : "es"} before the ack; the broker redelivered what the crashed consumer held.`
          : "No consumer has crashed yet: press ⚡ Crash on a consumer, or set crash_at.", { count: String(s.duplicates) }),
      verdict(repeated.length ? "error" : "acked", "effects",
        repeated.length ? `${s.effects} effects for ${distinct} messages` : `${s.effects} effects for ${distinct} messages: exactly once`,
        repeated.length ? `Applied twice: ${repeated.map((m) => `${m.id} ×${m.effects}`).join(", ")}. Turn idempotent on to suppress duplicates.`
          : s.suppressed ? `The inbox suppressed ${s.suppressed} duplicate${s.suppressed === 1 ? "" : "s"}: received, not applied again.`
            : "Every handled message changed the world once.",
        { effects: String(s.effects), distinct: String(distinct), suppressed: String(s.suppressed) }),
    ];
    this.verdictsEl.replaceChildren(...items);

    const ready = s.queue.routed + s.queue.requeued - s.queue.delivered;
    const unacked = s.queue.delivered - s.queue.acked - s.queue.requeued;
    const broker = s.result && s.result.queue_counts && s.result.queue_counts.work;
    this.queueEl.replaceChildren(h("strong", {}, "queue work: "), `ready ${ready} · unacked ${unacked} · requeued after crashes ${s.queue.requeued}`,
      broker ? h("span", { class: `chip small cat-${broker.agrees ? "acked" : "error"}` },
        `broker says ready ${broker.broker_ready} ${broker.agrees ? "✓ agrees" : "✗ differs"}`) : "");
    Object.assign(this.queueEl.dataset, { ready: String(ready), unacked: String(unacked) });

    const names = new Set([...Array.from({ length: this.count }, (_, i) => `work/${i + 1}`), ...s.consumers.keys()]);
    const table = this.consumersEl.firstChild;
    if (!table.tHead) {
      table.append(h("thead", {}, h("tr", {}, ...["consumer", "state", "delivered", "acked", "crashes", ""].map((x) => h("th", {}, x)))),
        h("tbody", {}));
    }
    const stateText = { alive: "● running", back: "● back", crashed: "✗ crashed" };
    // Rows are kept and updated in place, so a Crash button stays clickable while events stream.
    table.tBodies[0].replaceChildren(...[...names].map((name) => {
      const c = s.consumers.get(name) || { state: "alive", delivered: 0, acked: 0, crashes: 0, note: "" };
      const row = this.consumerRow(name);
      row.tr.dataset.state = c.state;
      row.state.className = `cat-${c.state === "crashed" ? "error" : "acked"} redelivery-state`;
      row.state.textContent = stateText[c.state] || c.state;
      row.state.title = c.note;
      row.delivered.textContent = String(c.delivered);
      row.acked.textContent = String(c.acked);
      row.crashes.textContent = String(c.crashes);
      row.button.disabled = !this.live || c.state === "crashed";
      return row.tr;
    }));

    const effectsList = [...s.messages.values()].filter((m) => m.effects + m.suppressed > 0);
    this.effectsEl.replaceChildren(
      h("p", { class: "side-effect-total", dataset: { total: String(s.effects), distinct: String(distinct) } },
        h("strong", {}, `${s.effects}`), ` side effects applied for ${distinct} distinct messages`,
        this.idempotent ? ` · ${s.suppressed} suppressed by the inbox` : ""),
      h("div", { class: "effect-cells" }, ...effectsList.map((m) => h("span", {
        class: `chip small cat-${m.effects > 1 ? "error" : m.suppressed ? "duplicate" : "acked"}`, dataset: { message: m.id, effects: String(m.effects) },
        title: m.suppressed ? `duplicate suppressed ×${m.suppressed}` : "" },
      `${m.id} ×${m.effects}${m.suppressed ? ` (+${m.suppressed} skipped)` : ""}`))));

    const rows = s.order.slice(-SHOWN_ROWS).reverse().map((m) => h("tr", { dataset: { message: m.id, deliveries: String(m.deliveries.length) },
      class: m.deliveries.some((d) => d.duplicate) ? "dup" : "" },
    h("th", { scope: "row" }, h("code", {}, m.id)),
    h("td", {}, ...m.deliveries.map((d) => h("div", { class: `delivery cat-${d.duplicate ? "duplicate" : "delivered"}` },
      `${d.duplicate ? "↻" : "▼"} #${d.attempt} to ${d.consumer} at ${fmtMs(d.t)}${d.redelivered ? " · redelivered=true" : ""}`,
      d.reason ? h("div", { class: "muted small" }, d.reason) : ""))),
    h("td", { class: "num" }, `${m.effects}${m.suppressed ? ` (+${m.suppressed} suppressed)` : ""}`),
    h("td", {}, m.acked ? "✓ acked" : m.requeued ? "↺ requeued" : "…")));
    this.messagesEl.firstChild.replaceChildren(
      h("thead", {}, h("tr", {}, ...["message", "deliveries", "effects", "ack"].map((x) => h("th", {}, x)))),
      h("tbody", {}, rows));
  },
};

function injectStyle() {
  if (document.getElementById("amqp-redelivery-style")) return;
  const style = document.createElement("style");
  style.id = "amqp-redelivery-style";
  style.textContent = `
    .redelivery-grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: var(--gap); }
    .redelivery-grid h3 { margin: 0 0 6px; }
    #redelivery-consumers, #redelivery-messages { width: 100%; }
    #redelivery-consumers button, .redelivery-msgs td:last-child, .redelivery-queue .chip { white-space: nowrap; }
    .redelivery-state { border-left: 6px solid var(--cat); font-weight: 700; white-space: nowrap; }
    .redelivery-queue { font-size: 1.05rem; }
    .side-effect-total { font-size: 1.2rem; }
    .effect-cells { display: flex; flex-wrap: wrap; gap: 4px; }
    .redelivery-msgs { max-height: 380px; }
    .redelivery-msgs tr.dup { background: color-mix(in srgb, var(--c-duplicate) 18%, transparent); }
    .redelivery-msgs .delivery { border-left: 6px solid var(--cat); padding-left: 6px; margin: 2px 0; }
    .chip.small { font-size: 0.85rem; padding: 0 6px; }
    @media (max-width: 1100px) { .redelivery-grid { grid-template-columns: minmax(0, 1fr); } }
  `;
  document.head.append(style);
}

export default panel;
