/* amqp-redelivery panel: consumers that crash before their ack, the broker's redelivery, and
   what an idempotent consumer's inbox does with the duplicate.

   - Consumers: alive / crashed / back, what each handled and acked, a ⚡ Crash button each
     (the same fault as the page's Crash consumer button, aimed at that consumer).
   - The queue: ready and unacked as the events say (and the broker's ready count at the end).
   - Messages: deliveries (↻ with the broker's redelivered flag and the reason), effects
     applied (the side-effect counter) and, with idempotent on, duplicates suppressed by the
     inbox. The verdict compares side effects with distinct messages: exactly once or not. */
import { fmtMs, h } from "../dom.js";
import { actionButtons, ActorRows, attempt, attemptLines, countEffect, entry, fillTable, foldsEvents, isLive, lessonLine, newestRows, placeActors, showState, verdict } from "./kit.js";

const SHOWN_ROWS = 80;

function freshState() {
  return { consumers: new Map(), messages: new Map(), order: [], queue: { routed: 0, delivered: 0, acked: 0, requeued: 0 },
    crashes: [], effects: 0, suppressed: 0, duplicates: 0, ended: false, result: null, selected: null };
}

/**
 * The side-effect verdict from the messages' recorded effects, losses included: "exactly
 * once" only while no published message is left unprocessed at the end of the run.
 * messages: [{id, effects, suppressed}] (every published one); ended: the done event was seen.
 */
export function effectsVerdict(messages, { ended }) {
  const effects = messages.reduce((n, m) => n + m.effects, 0);
  const suppressed = messages.reduce((n, m) => n + m.suppressed, 0);
  const distinct = messages.filter((m) => m.effects + m.suppressed > 0).length;
  const repeated = messages.filter((m) => m.effects > 1);
  const missing = ended ? messages.filter((m) => m.effects + m.suppressed === 0) : [];
  const explain = [];
  if (missing.length) explain.push(`Never processed: ${missing.map((m) => m.id).join(", ")} (lost).`);
  if (repeated.length) explain.push(`Applied twice: ${repeated.map((m) => `${m.id} ×${m.effects}`).join(", ")}. Turn idempotent on to suppress duplicates.`);
  else if (suppressed) explain.push(`The inbox suppressed ${suppressed} duplicate${suppressed === 1 ? "" : "s"}: received, not applied again.`);
  else if (!missing.length) explain.push("Every handled message changed the world once.");
  const base = `${effects} effects for ${distinct} messages`;
  const headline = missing.length ? `${effects} effects for ${distinct} of ${messages.length} messages · ${missing.length} never processed`
    : repeated.length ? base : `${base}: exactly once`;
  return { category: repeated.length ? "error" : missing.length ? "lost" : "acked", headline, explain: explain.join(" "),
    effects, distinct, suppressed, missing: missing.length };
}

const panel = {
  ...foldsEvents("side_effects"),
  title: "Crash before ack: redelivery, duplicates and the idempotent inbox",

  init(root, ctx) {
    this.ctx = ctx;
    const p = ctx.run.params || {};
    this.idempotent = Boolean(p.idempotent);
    this.count = Number(p.consumers) || 1;
    this.live = isLive(ctx.run.state);
    this.state = freshState();
    root.append(
      lessonLine(
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
      (this.messagesEl = h("div", { class: "table-wrap redelivery-msgs" }, h("table", { id: "redelivery-messages", dataset: { inspect: "" } }))));
    this.consumerRows = new ActorRows(this.consumersEl.firstChild, {
      titles: ["consumer", "state", "delivered", "acked", "crashes", ""], key: "consumer",
      columns: { state: "", delivered: "num", acked: "num", crashes: "num" },
      buttons: (name) => [h("button", { type: "button", dataset: { crash: `consumer:${name}` },
        title: "crash after handling its next message, before the ack" }, "⚡ Crash")],
    });
    actionButtons(this.consumersEl, "button[data-crash]", (button) => ctx.api.action("crash", button.dataset.crash), (button, { ok, data }) => {
      button.title = ok ? "armed: it crashes after handling its next message, before the ack"
        : Object.values((data && data.errors) || { error: data && data.error }).join("; ");
    });
    this.render();
  },

  reset() {
    this.state = freshState();
    this.render();
  },

  layout: placeActors({ producer: [0, 0], "exchange:": [1, 0], "queue:": [2, 0] }),

  route(ev, guess) {
    if (ev.kind === "route") return guess;
    if (ev.kind === "deliver") return "queue:work";
    return guess;
  },

  consumer(name) {
    return entry(this.state.consumers, name, () => ({ name, state: "alive", delivered: 0, acked: 0, crashes: 0, note: "" }));
  },

  message(id) {
    return entry(this.state.messages, id, () => {
      const m = { id, deliveries: [], effects: 0, suppressed: 0, acked: false, requeued: 0 };
      this.state.order.push(m);
      return m;
    });
  },

  apply(ev, a, s, ctx) {
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
        m.deliveries.push(attempt(ev, a.consumer));
        this.consumer(a.consumer).delivered += 1;
        s.queue.delivered += 1;
        if (ev.duplicate) s.duplicates += 1;
        break;
      }
      case "process": {
        countEffect(ev, "effects", this.message(ev.message_id), s);
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
        return false;
    }
    return true;
  },

  render() {
    if (!this.verdictsEl) return;
    const s = this.state;
    const effects = effectsVerdict(s.order, s);
    const items = [
      verdict({ category: s.duplicates ? "duplicate" : "acked", key: "duplicates",
        headline: `${s.duplicates} duplicate deliver${s.duplicates === 1 ? "y" : "ies"}`,
        explain: s.crashes.length ? `${s.crashes.length} crash${s.crashes.length === 1 ? "" : "es"} before the ack; the broker redelivered what the crashed consumer held.`
          : "No consumer has crashed yet: press ⚡ Crash on a consumer, or set crash_at.", data: { count: String(s.duplicates) } }),
      verdict({ category: effects.category, key: "effects", headline: effects.headline, explain: effects.explain,
        data: { effects: String(effects.effects), distinct: String(effects.distinct), suppressed: String(effects.suppressed),
          missing: String(effects.missing) } }),
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
    const stateText = { alive: "● running", back: "● back", crashed: "✗ crashed" };
    this.consumerRows.show(names, ({ tr, cells, buttons: [crash] }, name) => {
      const c = s.consumers.get(name) || { state: "alive", delivered: 0, acked: 0, crashes: 0, note: "" };
      tr.dataset.state = c.state;
      showState(cells.state, { category: c.state === "crashed" ? "error" : "acked", className: "redelivery-state",
        text: stateText[c.state] || c.state, note: c.note });
      cells.delivered.textContent = String(c.delivered);
      cells.acked.textContent = String(c.acked);
      cells.crashes.textContent = String(c.crashes);
      crash.disabled = !this.live || c.state === "crashed";
    });

    const effectsList = [...s.messages.values()].filter((m) => m.effects + m.suppressed > 0);
    this.effectsEl.replaceChildren(
      h("p", { class: "side-effect-total", dataset: { total: String(s.effects), distinct: String(effects.distinct) } },
        h("strong", {}, `${s.effects}`), ` side effects applied for ${effects.distinct} distinct messages`,
        this.idempotent ? ` · ${s.suppressed} suppressed by the inbox` : ""),
      h("div", { class: "effect-cells" }, ...effectsList.map((m) => h("span", {
        class: `chip small cat-${m.effects > 1 ? "error" : m.suppressed ? "duplicate" : "acked"}`, dataset: { message: m.id, effects: String(m.effects) },
        title: m.suppressed ? `duplicate suppressed ×${m.suppressed}` : "" },
      `${m.id} ×${m.effects}${m.suppressed ? ` (+${m.suppressed} skipped)` : ""}`))));

    const rows = newestRows(s.order, SHOWN_ROWS, (m) => h("tr", { tabindex: "0", title: "Open its journey in the inspector", dataset: { message: m.id, deliveries: String(m.deliveries.length) },
      class: m.deliveries.some((d) => d.duplicate) ? "dup" : "" },
    h("th", { scope: "row" }, h("code", {}, m.id)),
    h("td", {}, attemptLines(m.deliveries, "delivery",
      (d) => `#${d.attempt} to ${d.who} at ${fmtMs(d.t)}${d.redelivered ? " · redelivered=true" : ""}`)),
    h("td", { class: "num" }, `${m.effects}${m.suppressed ? ` (+${m.suppressed} suppressed)` : ""}`),
    h("td", {}, m.acked ? "✓ acked" : m.requeued ? "↺ requeued" : "…")));
    fillTable(this.messagesEl.firstChild, ["message", "deliveries", "effects", "ack"], rows);
  },
};


export default panel;
