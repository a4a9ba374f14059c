/* amqp-dead-letter panel: poison messages, the retry loop and the dead-letter queue.

   - Topology: producer → exchange orders → queue work → consumers → the retry queues
     (each with its TTL) and their way back to orders: the retry loop; exchange dlx →
     queue dlq at the bottom.
   - The retry loop: per retry queue its TTL, the messages waiting in it now, how many came
     back and the longest wait measured (the backoff growing).
   - The DLQ as its own box: every message the broker dead-lettered, its attempts and the
     x-death header RabbitMQ stamped on it (queue, reason, count); a replayed one is struck
     through. Interactive runs replay it from here (Replay from DLQ).
   - Verdicts: what happened to the poison messages (dead-lettered, looping, dropped), the
     good ones processed once, the backoff. */
import { fmtMs, h } from "../dom.js";
import { actionButtons, attempt, attemptLines, entry, fillTable, foldsEvents, isLive, lessonLine, newestRows, verdict } from "./kit.js";

const SHOWN_ROWS = 60;
const DLQ_ROW = 90; // the dead-letter exchange and queue sit below everything else in their columns

/** A configured delay, whole: "500 ms", "2 s". */
function delayText(ms) {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

/** The TTL of each retry queue, as the workflow declares them: the first delay, doubling. */
export function retryDelays(params) {
  if ((params.on_failure || "dead-letter") === "requeue") return [];
  const first = Number(params.retry_delay_ms) || 0;
  return Array.from({ length: Math.max(0, (Number(params.max_attempts) || 1) - 1) }, (_, i) => first * 2 ** i);
}

/** Where the topology draws each actor: the retry queues after the consumers, the DLQ at the bottom. */
export function deadLetterLayout(actor) {
  const fixed = { producer: [0, 0], "exchange:orders": [1, 0], "exchange:dlx": [1, DLQ_ROW], "queue:work": [2, 0], "queue:dlq": [2, DLQ_ROW] };
  if (fixed[actor]) return { column: fixed[actor][0], row: fixed[actor][1] };
  const retry = /^queue:retry-(\d+)$/.exec(actor);
  if (retry) return { column: 4, row: Number(retry[1]) }; // right of the consumers: the way back closes the loop
  return actor.startsWith("consumer:") ? { column: 3 } : undefined;
}

/**
 * What became of the poison messages, as a verdict card's fields.
 * mode: on_failure; poison: their ids; dead: {id: attempts} dead-lettered; looping / dropped: ids;
 * maxAttempts; ended: the done event was seen; broker: the DLQ's depth the broker reported at the end (or null).
 */
export function poisonVerdict({ mode, poison, dead, looping, dropped, replayed, maxAttempts, ended, broker }) {
  const n = poison.length;
  const plural = (k, word) => `${k} ${word}${k === 1 ? "" : "s"}`;
  if (!n) return { category: "acked", headline: "No poison messages in this run", explain: "Set poison above 0 to see what happens to a message that always fails." };
  if (mode === "requeue") {
    const explain = ["No DLQ: every failure was rejected with requeue, and RabbitMQ delivered the message again at once: a hot loop that never ends by itself."];
    if (looping.length) explain.push(`The run stopped each loop after its deliveries (${looping.join(", ")}); they are still in the work queue.`);
    return { category: "error", headline: looping.length ? `${plural(looping.length, "poison message")} looping: requeue forever` : `${plural(n, "poison message")} requeued again and again`, explain };
  }
  if (mode === "drop") {
    const explain = [`Each was tried ${maxAttempts} times, then rejected without requeue; the work queue has no dead-letter exchange, so the broker discarded it.`];
    return { category: dropped.length ? "lost" : "other", headline: dropped.length ? `${plural(dropped.length, "poison message")} dropped: lost` : `${plural(n, "poison message")} being retried`, explain };
  }
  const ids = Object.keys(dead);
  const explain = [`After ${maxAttempts} failed ${maxAttempts === 1 ? "attempt" : "attempts"} the consumer rejected each without requeue; RabbitMQ routed it through the work queue's dead-letter exchange to the DLQ.`];
  const inDlq = ids.length - replayed.length;
  if (broker !== null && broker !== undefined) explain.push(`The broker counts ${broker} in the DLQ ${broker === inDlq ? "✓ agrees" : `✗ the panel counts ${inDlq}`}.`);
  if (replayed.length) explain.push(`Replayed after the fix: ${replayed.join(", ")}.`);
  const waiting = ended ? poison.filter((id) => !(id in dead)) : [];
  if (waiting.length) explain.push(`Never reached the DLQ: ${waiting.join(", ")}.`);
  return { category: waiting.length ? "lost" : ids.length === n ? "acked" : "other",
    headline: `${ids.length} of ${plural(n, "poison message")} dead-lettered after ${maxAttempts} ${maxAttempts === 1 ? "attempt" : "attempts"}`, explain };
}

function freshState() {
  return { messages: new Map(), order: [], retries: new Map(), dead: new Map(), replayed: new Set(), looping: new Set(),
    dropped: new Set(), ended: false, result: null };
}

const panel = {
  ...foldsEvents("queue_counts"),
  title: "Poison messages: retries with backoff and the dead-letter queue",

  init(root, ctx) {
    this.ctx = ctx;
    const p = ctx.run.params || {};
    this.mode = p.on_failure || "dead-letter";
    this.maxAttempts = Number(p.max_attempts) || 1;
    this.delays = retryDelays(p);
    this.interactive = Boolean(p.interactive);
    this.live = isLive(ctx.run.state);
    this.state = freshState();
    const failure = {
      "dead-letter": "after max_attempts the consumer rejects it and RabbitMQ's dead-letter exchange routes it to the DLQ, with an x-death header saying where and why it died.",
      requeue: "here there is no DLQ: the consumer requeues every failure, so the broker delivers the message again at once, forever.",
      drop: "here the work queue has no dead-letter exchange: after max_attempts the rejected message is discarded, lost.",
    }[this.mode];
    root.append(
      lessonLine("a poison message fails every time. Retrying at once only loops; the consumer retries with a growing ",
        "backoff instead (the message waits out a TTL in a retry queue, then the broker sends it back), and ", failure),
      (this.verdictsEl = h("div", { class: "verdicts", id: "dlq-verdicts", "aria-live": "polite" })),
      h("div", { class: "dlq-grid" },
        h("section", {}, h("h3", {}, "The retry loop"),
          (this.loopEl = h("div", { class: "table-wrap" }, h("table", { id: "dlq-retry-loop" })))),
        (this.boxEl = h("section", { class: "dlq-box", id: "dlq-box" }))),
      h("h3", {}, "Messages (newest first)"),
      (this.messagesEl = h("div", { class: "table-wrap dlq-msgs" }, h("table", { id: "dlq-messages", dataset: { inspect: "" } }))));
    actionButtons(this.boxEl, "button[data-replay]", () => ctx.api.action("replay", ""), (button, { ok, data }) => {
      button.title = ok ? (data && data.result) || "" : Object.values((data && data.errors) || { error: data && data.error }).join("; ");
    });
    this.drawTopology();
    this.render();
  },

  reset() {
    this.state = freshState();
    this.drawTopology();
    this.render();
  },

  /** The loop's boxes from the start, each retry queue with its TTL. */
  drawTopology() {
    const topology = this.ctx.topology;
    if (!topology) return;
    topology.node("queue:work");
    this.delays.forEach((delay, i) => topology.setNote(`queue:retry-${i + 1}`, `TTL ${delayText(delay)}`));
    if (this.mode === "dead-letter") {
      topology.node("exchange:dlx");
      topology.setNote("queue:dlq", "dead letters");
    }
  },

  layout: deadLetterLayout,

  route(ev, guess) {
    const a = ev.attrs || {};
    if (ev.kind === "deliver") return "queue:work";
    if (ev.kind === "retry") return a.replay ? "queue:dlq" : `consumer:${a.consumer}`;
    if (ev.kind === "route" && a.from_queue && !a.replay) return `queue:${a.from_queue}`;
    return guess;
  },

  message(id) {
    return entry(this.state.messages, id, () => {
      const m = { id, poison: false, deliveries: [], outcome: "", nacks: 0 };
      this.state.order.push(m);
      return m;
    });
  },

  retryQueue(name) {
    return entry(this.state.retries, name, () => ({ name, sent: 0, back: 0, waits: [] }));
  },

  apply(ev, a, s, ctx) {
    switch (ev.kind) {
      case "publish":
        this.message(ev.message_id).poison = Boolean(a.poison);
        break;
      case "route":
        if (a.dead_letter === true) {
          s.dead.set(ev.message_id, { id: ev.message_id, attempts: a.attempts, xDeath: a.x_death || [], t: ev.t_ms });
          this.message(ev.message_id).outcome = "dead-lettered";
        } else {
          if (a.from_queue && !a.replay) {
            const q = this.retryQueue(a.from_queue);
            q.back += 1;
            if (a.waited_ms !== undefined) q.waits.push(Number(a.waited_ms));
          }
          ctx.topology.pulse(ev.actor, "queue:work", { label: a.binding || "work", category: "routed" });
        }
        break;
      case "deliver":
        this.message(ev.message_id).deliveries.push(attempt(ev, a.consumer));
        break;
      case "nack": {
        const m = this.message(ev.message_id);
        m.nacks += 1;
        if (a.dropped) {
          m.outcome = "dropped";
          s.dropped.add(ev.message_id);
        }
        break;
      }
      case "retry":
        if (a.replay) {
          s.replayed.add(ev.message_id);
          this.message(ev.message_id).outcome = "replayed";
        } else {
          this.retryQueue(a.queue).sent += 1;
        }
        break;
      case "process":
        this.message(ev.message_id).outcome = "processed";
        break;
      case "error":
        if (a.looping) {
          s.looping.add(ev.message_id);
          this.message(ev.message_id).outcome = "looping";
        }
        break;
      default:
        return false;
    }
    return true;
  },

  render() {
    if (!this.verdictsEl) return;
    const s = this.state;
    const poison = s.order.filter((m) => m.poison).map((m) => m.id);
    const dead = Object.fromEntries([...s.dead.values()].map((d) => [d.id, d.attempts]));
    const counts = s.result && s.result.queue_counts;
    const broker = counts && counts.dlq ? counts.dlq.broker_ready : null;
    const pv = poisonVerdict({ mode: this.mode, poison, dead, looping: [...s.looping], dropped: [...s.dropped],
      replayed: [...s.replayed], maxAttempts: this.maxAttempts, ended: s.ended, broker });
    const good = s.order.filter((m) => !m.poison);
    const processed = good.filter((m) => m.outcome === "processed");
    const twice = good.filter((m) => m.deliveries.length > 1);
    const waits = [...s.retries.values()].map((q) => (q.waits.length ? `${q.name} ${fmtMs(Math.max(...q.waits))}` : null)).filter(Boolean);
    const items = [
      verdict({ category: pv.category, key: "poison", headline: pv.headline, explain: pv.explain,
        data: { deadLettered: String(s.dead.size), looping: String(s.looping.size), dropped: String(s.dropped.size) } }),
      verdict({ category: twice.length ? "error" : "acked", key: "good",
        headline: `${processed.length} of ${good.length} good messages processed${twice.length ? "" : " once"}`,
        explain: twice.length ? `Delivered more than once: ${twice.map((m) => m.id).join(", ")}.`
          : this.mode === "requeue" ? "Each requeue put a poison message back at the head of the work queue: the consumer's time went to the loop."
            : "The poison messages waited out their backoff in retry queues, not in front of the good ones.",
        data: { processed: String(processed.length), good: String(good.length) } }),
    ];
    if (this.delays.length) {
      items.push(verdict({ category: "published", key: "backoff", headline: `Backoff ${this.delays.map(delayText).join(" → ")}`,
        explain: waits.length ? `Longest measured wait per retry queue: ${waits.join(", ")} (never shorter than its TTL).` : "No retry has come back yet." }));
    }
    this.verdictsEl.replaceChildren(...items);
    this.renderLoop();
    this.renderBox(broker);
    const outcomes = { processed: "✓ processed", "dead-lettered": "☠ in the DLQ", dropped: "∅ dropped (lost)", looping: "↻ looping, stopped by the run", replayed: "↺ replayed" };
    const rows = newestRows(s.order, SHOWN_ROWS, (m) => h("tr", { tabindex: "0", title: "Open its journey in the inspector",
      class: m.poison ? "poison" : "", dataset: { message: m.id, outcome: m.outcome || "pending", deliveries: String(m.deliveries.length) } },
    h("th", { scope: "row" }, h("code", {}, m.id)),
    h("td", {}, m.poison ? "☣ poison" : "good"),
    h("td", {}, attemptLines(m.deliveries.slice(-4), "delivery", (d) => `#${d.attempt} to ${d.who} at ${fmtMs(d.t)}`),
      m.deliveries.length > 4 ? h("div", { class: "muted small" }, `${m.deliveries.length} deliveries in all`) : ""),
    h("td", {}, outcomes[m.outcome] || "…")));
    fillTable(this.messagesEl.firstChild, ["message", "payload", "deliveries (last 4)", "outcome"], rows);
  },

  renderLoop() {
    const rows = this.delays.map((delay, i) => {
      const q = this.state.retries.get(`retry-${i + 1}`) || { sent: 0, back: 0, waits: [] };
      return h("tr", { dataset: { retryQueue: `retry-${i + 1}`, waiting: String(q.sent - q.back) } },
        h("th", { scope: "row" }, `retry-${i + 1}`), h("td", { class: "num" }, delayText(delay)),
        h("td", { class: "num" }, String(q.sent - q.back)), h("td", { class: "num" }, String(q.back)),
        h("td", { class: "num" }, q.waits.length ? fmtMs(Math.max(...q.waits)) : "—"));
    });
    if (!rows.length) {
      const why = this.mode === "requeue" ? "No retry queues: a rejected message goes straight back to the head of work (requeue) and is delivered again at once."
        : "max_attempts is 1: no retries, the first failure is the last.";
      rows.push(h("tr", {}, h("td", { colspan: "5", class: "muted" }, why)));
    }
    fillTable(this.loopEl.firstChild, ["queue", "TTL (backoff)", "waiting now", "came back", "longest wait"], rows);
  },

  renderBox(broker) {
    const s = this.state;
    if (this.mode !== "dead-letter") {
      this.boxEl.replaceChildren(h("h3", {}, "No DLQ"), h("p", { class: "muted" },
        this.mode === "requeue" ? "on_failure = requeue: nothing is dead-lettered; a poison message stays in the work queue, looping."
          : "on_failure = drop: the work queue has no dead-letter exchange; a message rejected for the last time is gone."));
      return;
    }
    const inDlq = s.dead.size - s.replayed.size;
    const items = [...s.dead.values()].map((d) => h("li", { class: `dlq-item${s.replayed.has(d.id) ? " replayed" : ""}`,
      dataset: { message: d.id, attempts: String(d.attempts) } },
    h("strong", {}, h("code", {}, d.id)), ` after ${d.attempts} attempts${s.replayed.has(d.id) ? " · replayed" : ""}`,
    h("ul", { class: "dlq-xdeath" }, ...d.xDeath.map((x) => h("li", { dataset: { queue: x.queue, reason: x.reason } },
      `x-death: ${x.queue} · ${x.reason} ×${x.count}`)))));
    const replay = this.interactive
      ? h("button", { type: "button", dataset: { replay: "" }, disabled: !this.live || inDlq === 0,
        title: "fix the consumer, then publish every message in the DLQ back to the work queue" }, "↺ Replay from DLQ")
      : null;
    this.boxEl.replaceChildren(
      h("h3", {}, "DLQ ", h("span", { class: "chip small cat-lost", id: "dlq-depth", dataset: { depth: String(inDlq) } }, `${inDlq} held`),
        broker !== null ? h("span", { class: `chip small cat-${broker === inDlq ? "acked" : "error"}` }, `broker says ${broker} ${broker === inDlq ? "✓" : "✗"}`) : ""),
      items.length ? h("ol", { class: "dlq-list" }, ...items) : h("p", { class: "muted" }, "Empty: nothing dead-lettered yet."),
      replay || "");
  },
};

export default panel;
