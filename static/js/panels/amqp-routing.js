/* amqp-routing panel: publisher → exchange → one edge per binding → queues → consumers.

   The graph is drawn from the run's parameters (every binding, even one nothing matches)
   and brought to life by the events: each route event lights and animates exactly the
   binding edge that matched (attrs.binding_index), each deliver moves a token from its
   queue to the consumer, an unroutable message goes to the "returned" box. Queues show
   ready (routed + requeued − delivered) and unacked (delivered − acked − requeued) as the
   events say; at the end the broker's own ready count (a passive queue.declare) is shown
   beside it. Clicking a message row shows its whole route. In an interactive run the graph
   follows the bindings and consumers changed by hand (assign/revoke at queue:<name> and
   consumer:<name>), so a token travels along a binding added a moment ago. */
import { fmtMs, h, onActivate, onFrame, reducedMotion } from "../dom.js";
import { swatch } from "../legend.js";
import { entry, keepSelection, lessonLine, placeActors, renderSoon, tableHead, verdict } from "./kit.js";

const SHOWN_ROWS = 80;
const ROW_H = 92;
const TOP = 34;
const placeFixed = placeActors({ producer: [0, 0], "exchange:": [1, 0], "consumer:": [3] });

function bindingLabel(type, b) {
  if (type === "fanout") return "(all)";
  if (type === "headers") {
    const pairs = Object.entries(b.headers || {}).sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`).join(", ");
    return `x-match=${b.x_match || "all"}${pairs ? `: ${pairs}` : ""}`;
  }
  return b.key === "" ? '""' : b.key;
}

/** queue → its consumers' names as the run started: q/1 … q/n. */
export function initialConsumers(queues, counts) {
  return new Map(queues.map((q) => [q, Array.from({ length: counts[q] || 0 }, (_, k) => `${q}/${k + 1}`)]));
}

/** Add a consumer by hand (or one restarted): true when the graph gains a line. */
export function addConsumer(byQueue, queue, name) {
  const names = byQueue.get(queue) || [];
  if (names.includes(name)) return false;
  byQueue.set(queue, [...names, name]);
  return true;
}

export function removeConsumer(byQueue, queue, name) {
  const names = byQueue.get(queue) || [];
  if (!names.includes(name)) return false;
  byQueue.set(queue, names.filter((n) => n !== name));
  return true;
}

/** The bindings with one bound by hand (at its own index; a repeated event changes nothing). */
export function withBinding(bindings, binding) {
  return bindings.some((b) => b.index === binding.index) ? bindings : [...bindings, binding];
}

function keyText(m) {
  if (m.headers) return Object.entries(m.headers).map(([k, v]) => `${k}=${v}`).join(", ") || "{}";
  return m.key === "" ? '""' : m.key;
}

function freshState() {
  return { messages: new Map(), order: [], queues: new Map(), consumers: new Map(), bindingHits: new Map(),
    unroutable: 0, returned: 0, selected: null, result: null };
}

const panel = {
  title: "Exchange routing: bindings, queues, push and pull consumers",

  init(root, ctx) {
    this.ctx = ctx;
    const p = ctx.run.params || {};
    this.type = p.exchange_type || "topic";
    this.initialBindings = (p.bindings || []).map((b, i) => ({ ...b, index: i, label: bindingLabel(this.type, b) }));
    this.bindings = [...this.initialBindings];
    this.queueNames = [...new Set(this.bindings.map((b) => b.queue))];
    const overrides = p.consumers_by_queue || {};
    this.consumerCount = Object.fromEntries(this.queueNames.map((q) => [q, q in overrides ? overrides[q] : p.consumers]));
    this.consumerNames = initialConsumers(this.queueNames, this.consumerCount);
    this.mode = p.consumer_mode || "push";
    this.prefetch = p.prefetch;
    this.state = freshState();
    root.append(
      lessonLine(
        "the publisher only knows the exchange (",
        h("code", {}, `orders`), `, type ${this.type}`, "). The exchange copies each message to every queue with a ",
        "matching binding: ", ruleText(this.type), " A message no binding matches is returned to the publisher ",
        "(mandatory). ", this.mode === "push"
          ? `Consumers are pushed messages (basic.consume), at most ${this.prefetch || "∞"} unacked each (prefetch).`
          : "Consumers pull one message at a time (basic.get)."),
      (this.verdictsEl = h("div", { class: "verdicts", id: "amqp-verdicts", "aria-live": "polite" })),
      h("div", { class: "amqp-graph-wrap" }, (this.svg = h("svg:svg", { id: "amqp-graph", role: "img",
        "aria-label": "Publisher, exchange, one edge per binding, queues and consumers" }))),
      h("div", { class: "amqp-columns" },
        h("section", {},
          h("h3", {}, "Messages (newest first) — click one for its route"),
          h("div", { class: "table-wrap amqp-msgs-wrap" },
            h("table", { id: "amqp-messages", class: "amqp-messages" },
              tableHead("message", this.type === "headers" ? "headers" : "routing key", "bindings matched → queues", "status"),
              (this.tbody = h("tbody", {}))))),
        (this.detailEl = h("section", { id: "amqp-route", class: "amqp-route", "aria-live": "polite" },
          h("p", { class: "muted" }, "Click a message to see which bindings matched, which queue and consumer got it, ",
            "and when it was delivered and acked.")))));
    onActivate(this.tbody, "tr[data-message]", (row) => this.select(row.dataset.message));
    this.buildGraph();
    if (window.ResizeObserver) new ResizeObserver(() => onFrame("amqp-routing-layout", () => this.buildGraph())).observe(root);
    this.render();
  },

  reset() {
    this.state = keepSelection(this.state, freshState());
    this.bindings = [...this.initialBindings];
    this.consumerNames = initialConsumers(this.queueNames, this.consumerCount);
    this.buildGraph();
    this.render();
  },

  layout(actor) {
    if (actor.startsWith("queue:")) return { column: 2, row: Math.max(0, this.queueNames.indexOf(actor.slice(6))) };
    // A queue's consumers ("consumer:<queue>/<n>") are listed in the queues' order, beside them.
    const consumer = /^consumer:(.+)\/[^/]+$/.exec(actor);
    if (consumer && this.queueNames.includes(consumer[1])) return { column: 3, row: this.queueNames.indexOf(consumer[1]) };
    return placeFixed(actor);
  },

  /** The generic topology goes through the queue: deliver tokens start at queue:<name>. */
  route(ev, guess) {
    const a = ev.attrs || {};
    if (ev.kind === "route" && !a.unroutable) {
      // Called before onEvent sees this event: one token producer → exchange per message,
      // the exchange → queue steps are pulsed by onEvent.
      const m = this.state.messages.get(ev.message_id);
      return m && m.routes.length ? null : guess;
    }
    if (ev.kind === "deliver" && a.queue !== undefined) return `queue:${a.queue}`;
    return guess;
  },

  message(id) {
    return entry(this.state.messages, id, () => {
      const m = { id, key: "", headers: null, t: null, routes: [], unroutable: null, perceived: null, deliveries: [], acks: [] };
      this.state.order.push(m);
      return m;
    });
  },

  queue(name) {
    return entry(this.state.queues, name, () => ({ routed: 0, delivered: 0, acked: 0, requeued: 0 }));
  },

  consumer(name, queue) {
    return entry(this.state.consumers, name, () => ({ name, queue, mode: this.mode, prefetch: this.prefetch, delivered: 0, acked: 0 }));
  },

  onEvent(ev, ctx) {
    const a = ev.attrs || {};
    const state = this.state;
    switch (ev.kind) {
      case "publish": {
        const m = this.message(ev.message_id);
        // Recorded when the broker's confirm came back: perceived_ms is how long that took.
        Object.assign(m, { key: a.routing_key, headers: a.headers || null, t: ev.t_ms, perceived: a.perceived_ms });
        break;
      }
      case "route": {
        const m = this.message(ev.message_id);
        if (a.unroutable) {
          m.unroutable = { returned: Boolean(a.returned), reason: a.reason || "", t: ev.t_ms };
          state.unroutable += 1;
          if (a.returned) state.returned += 1;
          this.animate("unroutable");
          break;
        }
        m.routes.push({ index: a.binding_index, binding: a.binding, queue: a.queue, enqueued: a.enqueued !== false, t: ev.t_ms });
        state.bindingHits.set(a.binding_index, (state.bindingHits.get(a.binding_index) || 0) + 1);
        if (a.enqueued !== false) this.queue(a.queue).routed += 1;
        this.animate(`binding-${a.binding_index}`);
        ctx.topology.pulse(ev.actor, `queue:${a.queue}`, { label: `${a.binding}`, category: "routed" });
        break;
      }
      case "assign":
        if (a.by_hand && ev.actor.startsWith("queue:")) {
          this.bindings = withBinding(this.bindings, { ...a, index: a.binding_index, label: a.binding });
          this.buildGraph();
        } else if (a.consumer) {
          this.consumer(a.consumer, a.queue).down = false;
          if (addConsumer(this.consumerNames, a.queue, a.consumer)) this.buildGraph();
        }
        break;
      case "revoke":
        if (a.by_hand && ev.actor.startsWith("queue:")) {
          this.bindings = this.bindings.filter((b) => b.index !== a.binding_index);
          this.buildGraph();
        } else if (a.consumer && removeConsumer(this.consumerNames, a.queue, a.consumer)) {
          this.buildGraph();
        }
        break;
      case "crash":
        if (a.consumer) this.consumer(a.consumer, a.queue).down = true;
        break;
      case "deliver": {
        const m = this.message(ev.message_id);
        m.deliveries.push({ queue: a.queue, consumer: a.consumer, t: ev.t_ms, redelivered: Boolean(a.redelivered),
          attempt: ev.attempt, duplicate: ev.duplicate, reason: a.reason || "", mode: a.mode });
        this.queue(a.queue).delivered += 1;
        this.consumer(a.consumer, a.queue).delivered += 1;
        this.animate(`deliver-${a.consumer}`);
        break;
      }
      case "ack": {
        const m = this.message(ev.message_id);
        m.acks.push({ queue: a.queue, consumer: a.consumer, t: ev.t_ms });
        this.queue(a.queue).acked += 1;
        this.consumer(a.consumer, a.queue).acked += 1;
        break;
      }
      case "requeue":
        this.queue(a.queue).requeued += 1;
        break;
      default:
        return;
    }
    renderSoon(this);
  },

  onSummary(summary) {
    if (summary.result && summary.result.queue_counts) {
      this.state.result = summary.result;
      renderSoon(this);
    }
  },

  select(id) {
    this.state.selected = id;
    this.render();
  },

  // -- the graph ----------------------------------------------------------------------------

  buildGraph() {
    const svg = this.svg;
    const width = Math.max(820, svg.parentElement ? svg.parentElement.clientWidth : 1000);
    const queues = this.queueNames;
    const height = TOP + Math.max(2, queues.length) * ROW_H + 40;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.style.height = `${height}px`;
    const x = { pub: width * 0.07, ex: width * 0.24, q: width * 0.6, c: width * 0.83 };
    const exY = TOP + ((queues.length - 1) * ROW_H) / 2 + 20;
    const qY = (i) => TOP + i * ROW_H + 20;
    const box = (cx, cy, w, hgt, cls, data, ...lines) => h("svg:g", { class: cls, dataset: data, transform: `translate(${cx},${cy})` },
      h("svg:rect", { x: String(-w / 2), y: String(-hgt / 2), width: String(w), height: String(hgt), rx: "8" }),
      ...lines.map((text, i) => h("svg:text", { "text-anchor": "middle", y: String(-hgt / 2 + 20 + i * 19),
        class: i === 0 ? "amqp-box-title" : "amqp-box-line" }, text)));
    this.paths = new Map();
    this.queueText = new Map();
    this.consumerText = new Map();
    this.bindingLabels = new Map();
    const edges = h("svg:g", { class: "amqp-edges" });
    const nodes = h("svg:g", { class: "amqp-nodes" });
    const tokens = (this.tokenLayer = h("svg:g", { class: "amqp-tokens" }));
    const path = (id, d, cls, data) => {
      const p = h("svg:path", { d, class: cls, dataset: data, "marker-end": "url(#amqp-arrow)" });
      this.paths.set(id, p);
      edges.append(p);
      return p;
    };
    path("publish", `M${x.pub + 55},${exY} L${x.ex - 75},${exY}`, "amqp-edge amqp-publish", {});
    // One edge per binding; several bindings to one queue fan out so each label is readable.
    const perQueue = new Map();
    for (const b of this.bindings) {
      const qi = queues.indexOf(b.queue);
      const k = perQueue.get(b.queue) || 0;
      perQueue.set(b.queue, k + 1);
      const total = this.bindings.filter((o) => o.queue === b.queue).length;
      const dy = (k - (total - 1) / 2) * 24;
      const sx = x.ex + 75;
      const ex = x.q - 90;
      const ey = qY(qi) + dy;
      const d = `M${sx},${exY} C${sx + (ex - sx) * 0.45},${exY} ${sx + (ex - sx) * 0.45},${ey} ${ex},${ey}`;
      const p = path(`binding-${b.index}`, d, "amqp-edge amqp-binding", { bindingIndex: String(b.index), queue: b.queue,
        key: b.label });
      const label = h("svg:text", { class: "amqp-binding-label", "text-anchor": "middle", dataset: { bindingIndex: String(b.index) },
        x: String(sx + (ex - sx) * 0.68), y: String(ey - 6) }, b.label);
      this.bindingLabels.set(b.index, { label, path: p, text: b.label });
      edges.append(label);
    }
    for (const [i, q] of queues.entries()) {
      const names = this.consumerNames.get(q) || [];
      const n = names.length;
      const g = box(x.q, qY(i), 176, 74, "amqp-box amqp-queue", { queue: q }, `queue ${q}`, "", "");
      this.queueText.set(q, g.querySelectorAll("text"));
      nodes.append(g);
      if (!n) {
        nodes.append(h("svg:text", { class: "amqp-box-line amqp-nobody", x: String(x.c), y: String(qY(i) + 5), "text-anchor": "middle" },
          "no consumer: messages wait"));
      }
      for (const [k0, name] of names.entries()) {
        const k = k0 + 1;
        const cy = qY(i) + (k - 1 - (n - 1) / 2) * 22;
        path(`deliver-${name}`, `M${x.q + 90},${qY(i)} L${x.c - 62},${cy}`, "amqp-edge amqp-deliver", { consumer: name });
        const t = h("svg:text", { class: "amqp-consumer", x: String(x.c - 58), y: String(cy + 5), dataset: { consumer: name } }, name);
        this.consumerText.set(name, t);
        nodes.append(t);
      }
    }
    nodes.append(box(x.pub, exY, 110, 50, "amqp-box amqp-publisher", {}, "publisher", "knows the exchange"));
    nodes.append(h("svg:text", { class: "amqp-box-line amqp-column-head", x: String(x.c - 58), y: "18" },
      this.mode === "push" ? `consumers · push, prefetch ${this.prefetch || "∞"}` : "consumers · pull (basic.get)"));
    nodes.append(h("svg:text", { class: "amqp-box-line amqp-column-head", x: String(x.q), y: "18", "text-anchor": "middle" },
      "queues · ready / unacked"));
    nodes.append(box(x.ex, exY, 150, 58, "amqp-box amqp-exchange", { exchangeType: this.type }, "exchange orders", `type: ${this.type}`));
    const retY = height - 24;
    path("unroutable", `M${x.ex},${exY + 30} L${x.ex},${retY - 16}`, "amqp-edge amqp-unroutable", {});
    const ret = box(x.ex, retY, 270, 30, "amqp-box amqp-returned", {}, "");
    this.returnedText = ret.querySelector("text");
    this.returnedText.setAttribute("y", "5");
    nodes.append(ret);
    svg.replaceChildren(
      h("svg:defs", {}, h("svg:marker", { id: "amqp-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "11",
        markerHeight: "11", markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, h("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
      edges, nodes, tokens);
    this.renderGraph();
  },

  animate(pathId) {
    if (reducedMotion() || !this.paths) return;
    const p = this.paths.get(pathId);
    if (!p || this.tokenLayer.childNodes.length > 60) return;
    const cat = pathId === "unroutable" ? "error" : pathId.startsWith("deliver") ? "delivered" : "routed";
    const dot = h("svg:circle", { r: "7", class: `amqp-token cat-${cat}` });
    this.tokenLayer.append(dot);
    const length = p.getTotalLength();
    const start = performance.now();
    const step = (now) => {
      const t = (now - start) / 650;
      if (t >= 1 || !dot.isConnected) {
        dot.remove();
        return;
      }
      const pt = p.getPointAtLength(length * t);
      dot.setAttribute("cx", String(pt.x));
      dot.setAttribute("cy", String(pt.y));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  },

  renderGraph() {
    if (!this.queueText) return;
    const result = this.state.result;
    for (const [name, texts] of this.queueText) {
      const q = this.queue(name);
      const ready = q.routed + q.requeued - q.delivered;
      const unacked = q.delivered - q.acked - q.requeued;
      const broker = result && result.queue_counts && result.queue_counts[name];
      texts[1].textContent = `ready ${ready} · unacked ${unacked}`;
      texts[2].textContent = broker ? `broker says ready ${broker.broker_ready}` : "";
      Object.assign(texts[0].parentNode.dataset, { ready: String(ready), unacked: String(unacked),
        brokerReady: broker ? String(broker.broker_ready) : "" });
    }
    for (const [name, text] of this.consumerText) {
      const c = this.state.consumers.get(name);
      text.textContent = `${name} ▼${c ? c.delivered : 0} ✓${c ? c.acked : 0}${c && c.down ? " ✗ crashed" : ""}`;
      text.classList.toggle("down", Boolean(c && c.down));
    }
    for (const [index, { label, path, text }] of this.bindingLabels) {
      const hits = this.state.bindingHits.get(index) || 0;
      label.textContent = `${text} · ${hits}`;
      path.classList.toggle("hit", hits > 0);
      path.dataset.hits = String(hits);
    }
    const un = this.state.unroutable;
    this.returnedText.textContent = `↩ unroutable: ${un} (returned ${this.state.returned})`;
    this.returnedText.parentNode.dataset.unroutable = String(un);
    const selected = this.state.messages.get(this.state.selected);
    const onPath = new Set(selected ? selected.routes.map((r) => `binding-${r.index}`)
      .concat(selected.deliveries.map((d) => `deliver-${d.consumer}`)) : []);
    for (const [id, p] of this.paths) p.classList.toggle("on-path", onPath.has(id));
  },

  // -- tables and verdicts -----------------------------------------------------------------

  render() {
    if (!this.tbody) return;
    this.renderGraph();
    this.renderVerdicts();
    this.renderRows();
    this.renderDetail();
  },

  renderVerdicts() {
    const s = this.state;
    const copies = [...s.queues.values()].reduce((n, q) => n + q.routed, 0);
    const items = [
      verdict({ category: "routed", key: "routing", headline: `${s.order.length} published → ${copies} queued copies`,
        explain: `Each message went to every queue with a matching binding (one copy per queue). ${s.unroutable} matched no binding` +
        ` and ${s.returned === s.unroutable ? "all were" : `${s.returned} were`} returned to the publisher.`,
        data: { copies: String(copies), unroutable: String(s.unroutable) } }),
    ];
    const r = s.result;
    if (r && r.queue_counts) {
      const agree = r.counts_agree && (!r.disagreements || !r.disagreements.length);
      const parts = Object.entries(r.queue_counts).map(([q, c]) => `${q}: ${c.ready} ready here, ${c.broker_ready} at the broker`);
      items.push(verdict({ category: agree ? "acked" : "error", key: "broker", headline: agree ? "The broker agrees" : "The broker disagrees",
        explain: `${parts.join(" · ")}. Lost: ${r.lost}.${r.disagreements && r.disagreements.length ? ` ${r.disagreements.join("; ")}` : ""}`,
        data: { ok: String(agree) } }));
    }
    this.verdictsEl.replaceChildren(...items);
  },

  status(m) {
    if (m.unroutable) return { cat: "error", text: m.unroutable.returned ? "↩ returned (unroutable)" : "unroutable" };
    const queues = new Set(m.routes.filter((r) => r.enqueued).map((r) => r.queue));
    const consumed = [...queues].filter((q) => this.consumerCount[q] > 0);
    const acked = new Set(m.acks.map((x) => x.queue));
    const by = m.deliveries.map((d) => d.consumer).join(", ");
    if (consumed.length && consumed.every((q) => acked.has(q))) return { cat: "acked", text: `✓ acked by ${by}` };
    if (m.deliveries.length) return { cat: "delivered", text: `▼ at ${by}` };
    if (queues.size && !consumed.length) return { cat: "routed", text: "◷ waiting in queue (no consumer)" };
    return { cat: "routed", text: "⇢ routed" };
  },

  renderRows() {
    const rows = this.state.order.slice(-SHOWN_ROWS).reverse().map((m) => {
      const st = this.status(m);
      return h("tr", { class: m.id === this.state.selected ? "selected" : "", tabindex: "0",
        dataset: { message: m.id, status: st.cat } },
      h("th", { scope: "row" }, h("code", {}, m.id)),
      h("td", {}, h("code", {}, keyText(m))),
      h("td", {}, m.unroutable ? h("span", { class: "muted" }, "none") : m.routes.map((r) => h("span", { class: "chip small cat-routed" },
        `${r.binding} → ${r.queue}`))),
      h("td", { class: `amqp-status cat-${st.cat}` }, st.text));
    });
    this.tbody.replaceChildren(...rows);
  },

  renderDetail() {
    const m = this.state.messages.get(this.state.selected);
    if (!m) return;
    const items = [];
    items.push(h("li", { dataset: { step: "publish" } }, swatch("published"),
      ` published with ${m.headers ? "headers" : "routing key"} `, h("code", {}, keyText(m)),
      m.perceived !== null && m.perceived !== undefined ? `; the broker confirmed it after ${fmtMs(m.perceived)} (at ${fmtMs(m.t)})` : ""));
    if (m.unroutable) {
      items.push(h("li", { class: "cat-error", dataset: { step: "unroutable" } }, swatch("error"),
        ` no binding matched: ${m.unroutable.reason}`));
    }
    for (const r of m.routes) {
      const deliveries = m.deliveries.filter((d) => d.queue === r.queue);
      const acks = m.acks.filter((x) => x.queue === r.queue);
      const parts = [` binding `, h("code", {}, r.binding), ` matched → queue `, h("strong", {}, r.queue)];
      if (!r.enqueued) parts.push(" (already had a copy through another binding)");
      else if (!deliveries.length) parts.push(this.consumerCount[r.queue] ? " · not delivered yet" : " · waiting: nobody consumes this queue");
      for (const d of deliveries) {
        parts.push(` → ${d.mode === "pull" ? "pulled by" : "pushed to"} `, h("strong", {}, d.consumer), ` at ${fmtMs(d.t)}`,
          d.redelivered ? " (redelivered)" : "", d.duplicate ? ` ↻ duplicate: ${d.reason}` : "");
      }
      for (const x of acks) parts.push(` → acked by ${x.consumer} at ${fmtMs(x.t)}`);
      items.push(h("li", { class: "cat-routed", dataset: { step: "route", queue: r.queue, binding: r.binding,
        consumer: deliveries.map((d) => d.consumer).join(" "), acked: String(acks.length > 0) } }, swatch("routed"), ...parts));
    }
    this.detailEl.replaceChildren(
      h("h3", {}, "Route of ", h("code", {}, m.id)),
      h("ol", { class: "amqp-route-list", dataset: { message: m.id } }, items));
    this.detailEl.dataset.message = m.id;
  },
};

function ruleText(type) {
  return {
    direct: "direct = the binding key equals the routing key.",
    topic: "topic = words separated by dots, * is exactly one word, # is zero or more words.",
    fanout: "fanout = every bound queue, the routing key is ignored.",
    headers: "headers = the message's headers match the binding's (x-match=all: every one, any: at least one).",
  }[type] || "";
}


export default panel;
