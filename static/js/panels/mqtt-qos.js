/* mqtt-qos panel: the topic tree, the subscribers with their filters and sessions, and for
   every message which filters matched and what each subscriber actually got.

   - Topic tree: the run's topics level by level; each topic shows how many messages it
     got, its retained message (⚑) and the filters that match it (+ one level, # the rest).
   - Subscribers: filter, requested QoS, the effective QoS (the lower of the publisher's and
     the subscription's), persistent or clean session, online / away, and buttons to
     disconnect and reconnect it while the run is live.
   - Messages × subscribers: one row per message (newest first), one cell per subscriber:
     ✓ delivered, ↻ duplicate (why), ◷ queued by the broker while away, ∅ lost, – no match,
     ⚠ delivered although the filter does not match. Clicking a row explains that message.
   Everything is derived from the revealed events, so a replay shows the state at that point. */
import { fmtMs, h, onActivate } from "../dom.js";
import { swatch } from "../legend.js";
import { actionButtons, ActorRows, entry, isLive, keepSelection, lessonLine, placeActors, renderSoon, verdict } from "./kit.js";

const SHOWN_ROWS = 60;
const CELL = {
  delivered: { cat: "delivered", icon: "✓", text: "delivered", short: "delivered" },
  duplicate: { cat: "duplicate", icon: "↻", text: "duplicate", short: "duplicate" },
  queued: { cat: "routed", icon: "◷", text: "queued by the broker", short: "queued" },
  waiting: { cat: "published", icon: "…", text: "on its way", short: "on its way" },
  dropped: { cat: "lost", icon: "∅", text: "dropped: subscriber away", short: "dropped" },
  lost: { cat: "lost", icon: "∅", text: "lost: never delivered", short: "lost" },
  unexpected: { cat: "error", icon: "⚠", text: "delivered, but the filter does not match", short: "no match!" },
  unmatched: { cat: "other", icon: "–", text: "filter does not match", short: "no match" },
  before: { cat: "other", icon: "◌", text: "published before it subscribed", short: "before it subscribed" },
};

/** MQTT 3.1.1 §4.7: + is one whole level, # the rest (and the parent); $ topics only by name. */
function matches(filter, topic) {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

function freshState(params) {
  const subs = new Map();
  for (const s of params.subscribers || []) {
    subs.set(s.name, {
      name: s.name, filter: s.filter, qos: s.qos, clean: s.clean_session !== false, late: Boolean(s.late),
      state: s.late ? "late" : "new", granted: null, delivered: 0, duplicates: 0, queued: 0, lost: 0, note: "",
    });
  }
  const topics = new Map();
  for (const t of params.topics || []) topics.set(t, { topic: t, count: 0, last: null, retained: null });
  return { subs, topics, messages: new Map(), order: [], done: false, selected: null, publisherQos: params.qos };
}

const panel = {
  title: "MQTT: topic tree, QoS and sessions",

  init(root, ctx) {
    this.ctx = ctx;
    this.params = ctx.run.params || {};
    this.state = freshState(this.params);
    this.live = isLive(ctx.run.state);
    this.differences = null;
    root.append(
      lessonLine(
        "the publisher only names a topic; the broker hands the message to every subscriber whose filter matches ",
        "(+ matches one level, # everything below). Each delivery uses the lower of the publisher's and the ",
        "subscription's QoS. A persistent session keeps QoS 1/2 messages while its subscriber is away; QoS 0 ones ",
        "are gone. A QoS 1 message whose PUBACK was lost comes again with DUP set: a duplicate. QoS 2 never ",
        "hands a message over twice."),
      (this.verdictsEl = h("div", { class: "verdicts", id: "mqtt-verdicts", "aria-live": "polite" })),
      h("div", { class: "mqtt-grid" },
        h("section", { "aria-labelledby": "mqtt-tree-title" },
          h("h3", { id: "mqtt-tree-title" }, "Topic tree"),
          h("p", { class: "muted small" }, "Under ", h("code", {}, "flows/run…/"), " (each run has its own prefix). ",
            "⚑ = the broker's retained copy."),
          (this.treeEl = h("div", { class: "mqtt-tree", id: "mqtt-tree" }))),
        h("section", { "aria-labelledby": "mqtt-subs-title" },
          h("h3", { id: "mqtt-subs-title" }, "Subscribers"),
          (this.qosNote = h("p", { class: "muted small", id: "mqtt-qos-note" })),
          (this.subsEl = h("div", { class: "table-wrap" }, h("table", { class: "mqtt-subs", id: "mqtt-subs" }))),
          (this.notesEl = h("ul", { class: "mqtt-notes small", id: "mqtt-sub-notes", "aria-live": "polite" })))),
      h("section", { "aria-labelledby": "mqtt-matrix-title" },
        h("h3", { id: "mqtt-matrix-title" }, "Messages × subscribers"),
        h("p", { class: "muted small" }, ...Object.values(CELL).map((c) =>
          h("span", { class: `mqtt-key cat-${c.cat}` }, h("span", { class: "swatch" }, c.icon), ` ${c.text}  `))),
        (this.matrixEl = h("div", { class: "table-wrap mqtt-matrix-wrap" }, h("table", { class: "mqtt-matrix", id: "mqtt-matrix" })))),
      (this.detailEl = h("section", { class: "mqtt-detail", id: "mqtt-message", "aria-live": "polite" },
        h("p", { class: "muted" }, "Click a message row to see its way through the broker."))));
    const button = (name, action, label) => h("button", { type: "button", dataset: { mqttAction: action, target: `subscriber:${name}` } }, label);
    this.subRows = new ActorRows(this.subsEl.firstChild, {
      titles: ["name", "filter", "QoS → effective", "session", "state", "got", "queued", "lost", ""], key: "subscriber",
      columns: { filter: "", qos: "num", session: "", state: "mqtt-state", delivered: "num", queued: "num", lost: "num" },
      buttons: (name) => (this.state.subs.get(name).late ? []
        : [button(name, "disconnect", "⚡ Disconnect"), button(name, "reconnect", "↺ Reconnect")]),
      buttonsClass: "mqtt-buttons",
    });
    actionButtons(this.subsEl, "button[data-mqtt-action]", (button) => ctx.api.action(button.dataset.mqttAction, button.dataset.target),
      (button, { ok, data }) => {
        button.title = ok ? `${button.dataset.mqttAction} sent` : Object.values((data && data.errors) || {}).join("; ");
      });
    onActivate(this.matrixEl, "tr[data-message]", (row) => this.select(row.dataset.message));
    this.render();
  },

  reset() {
    this.state = keepSelection(this.state, freshState(this.params));
    this.render();
  },

  layout: placeActors({ publisher: [0, 0], broker: [1, 0] }),

  message(id) {
    return entry(this.state.messages, id, () => ({ id, topic: "", qos: null, retain: false, routes: new Map(), got: new Map(),
      crashes: new Map(), perceived: null }));
  },

  onEvent(ev, ctx) {
    const a = ev.attrs || {};
    const state = this.state;
    const sub = a.subscriber !== undefined ? state.subs.get(a.subscriber) : null;
    switch (ev.kind) {
      case "publish": {
        const m = this.message(ev.message_id);
        Object.assign(m, { topic: a.topic, qos: a.qos, retain: Boolean(a.retain), n: a.n, t: ev.t_ms });
        state.order.push(m);
        const t = state.topics.get(a.topic) || { topic: a.topic, count: 0, last: null, retained: null };
        t.count += 1;
        t.last = m.id;
        if (m.retain) t.retained = m.id;
        state.topics.set(a.topic, t);
        state.publisherQos = a.qos;
        break;
      }
      case "route": {
        const m = this.message(ev.message_id);
        m.routes.set(a.subscriber, { outcome: a.outcome, why: a.why, qos: a.qos });
        if (sub && a.outcome === "queue") sub.queued += 1;
        break;
      }
      case "ack":
        this.message(ev.message_id).perceived = a.perceived_ms;
        break;
      case "deliver": {
        if (!sub) break;
        const m = this.message(ev.message_id);
        const got = m.got.get(sub.name) || { count: 0, deliveries: [] };
        got.count += 1;
        got.deliveries.push({ qos: a.qos, dup: a.dup, retain: a.retain, reason: a.reason || "", note: a.note || "",
          unexpected: Boolean(a.unexpected), expectedQos: a.qos_expected });
        m.got.set(sub.name, got);
        sub.delivered += 1;
        if (ev.duplicate) sub.duplicates += 1;
        const route = m.routes.get(sub.name);
        if (route && route.outcome === "queue" && got.count === 1) sub.queued = Math.max(0, sub.queued - 1);
        if (!m.topic && a.topic) m.topic = a.topic;
        break;
      }
      case "assign":
        if (!sub) break;
        if (a.action === "subscribe") sub.granted = a.granted_qos;
        else sub.state = "online";
        sub.note = a.action === "reconnect"
          ? (a.session_present ? "back: the broker kept its session" : "back with a fresh session")
          : sub.note;
        break;
      case "crash":
      case "revoke":
        if (!sub) break;
        if (ev.kind === "crash" && ev.message_id) this.message(ev.message_id).crashes.set(sub.name, a.reason);
        sub.state = "away";
        sub.note = ev.kind === "crash" ? a.reason : (sub.clean ? "left; clean session: nothing is kept"
          : "left; persistent session keeps QoS 1/2");
        break;
      case "done":
        state.done = true;
        for (const m of state.messages.values()) {
          for (const [name, route] of m.routes) {
            if (!m.got.has(name)) {
              const s = state.subs.get(name);
              if (s) {
                s.lost += 1;
                if (route.outcome === "queue") s.queued = Math.max(0, s.queued - 1);
              }
            }
          }
        }
        break;
      default:
        return;
    }
    if (sub && ["assign", "crash", "revoke"].includes(ev.kind)) {
      ctx.topology.setNote(sub.name ? `subscriber:${sub.name}` : ev.actor, `${sub.filter} · ${sub.state}`);
    }
    renderSoon(this);
  },

  onSummary(summary) {
    if (summary.state) this.live = isLive(summary.state);
    if (summary.result && summary.result.differences) {
      this.differences = { list: summary.result.differences, broker: summary.result.broker || {},
        partial: Number(summary.result.manual_actions) > 0 };
    }
    renderSoon(this);
  },

  select(id) {
    this.state.selected = id;
    this.render();
  },

  /** What a cell says about message m for subscriber s. */
  cell(m, s) {
    const got = m.got.get(s.name);
    const route = m.routes.get(s.name);
    if (got) {
      if (got.deliveries.some((d) => d.unexpected)) return "unexpected";
      return got.count > 1 ? "duplicate" : "delivered";
    }
    if (!route) {
      if (!s.late || !matches(s.filter, m.topic)) return "unmatched";
      // A late subscriber can only get the retained copy: the topic's last retained message.
      const t = this.state.topics.get(m.topic);
      return t && t.retained === m.id && !this.state.done ? "waiting" : "before";
    }
    if (this.state.done) return route.outcome === "drop" ? "dropped" : "lost";
    if (route.outcome === "queue") return "queued";
    if (route.outcome === "drop") return "dropped";
    return "waiting";
  },

  // -- rendering --------------------------------------------------------------------------

  render() {
    if (!this.treeEl) return;
    this.renderVerdicts();
    this.renderTree();
    this.renderSubs();
    this.renderMatrix();
    this.renderDetail();
  },

  renderVerdicts() {
    const subs = [...this.state.subs.values()];
    const total = (key) => subs.reduce((sum, s) => sum + s[key], 0);
    const dups = total("duplicates");
    const lost = total("lost");
    const dropped = [...this.state.messages.values()].reduce((n, m) =>
      n + [...m.routes].filter(([name, r]) => r.outcome === "drop" && !m.got.has(name)).length, 0);
    const items = [
      verdict({ category: dups ? "duplicate" : "acked", key: "duplicates", headline: `${dups} duplicate deliver${dups === 1 ? "y" : "ies"}`,
        explain: dups ? "A subscriber got a message again: see ↻ cells for why (DUP after a lost PUBACK, a retained copy…)."
          : "No subscriber got any message twice." }),
      verdict({ category: lost || dropped ? "lost" : "acked", key: "lost",
        headline: this.state.done ? `${lost} lost` : `${dropped} dropped so far`,
        explain: "Messages a subscriber's filter matched but that never reached it: QoS 0 while away, or a clean session." }),
    ];
    const caveats = (this.ctx.workflow && this.ctx.workflow.caveats) || [];
    if (caveats.length) {
      // Known before any message moves (the form said so too): the fallback broker's departures.
      items.push(verdict({ category: "error", key: "caveats", id: "mqtt-caveats",
        headline: "amqtt (the fallback broker) breaks MQTT 3.1.1 here", explain: caveats }));
    }
    if (this.differences) {
      const list = this.differences.list;
      items.push(verdict({ category: list.length ? "error" : "acked", key: "broker", id: "mqtt-differences",
        data: { count: String(list.length) },
        headline: list.length ? `${this.differences.broker.name || "The broker"} differs from MQTT 3.1.1` : "The broker did what MQTT 3.1.1 says",
        explain: list.length ? list : this.differences.partial
          ? "Every delivery matched its filter at the right QoS. (Buttons were pressed, so totals are not compared with a prediction.)"
          : "Deliveries, duplicates and losses are exactly the protocol's prediction." }));
    }
    this.verdictsEl.replaceChildren(...items);
  },

  renderTree() {
    const root = { name: "", children: new Map(), topic: null };
    for (const t of this.state.topics.values()) {
      let node = root;
      for (const level of t.topic.split("/")) {
        if (!node.children.has(level)) node.children.set(level, { name: level, children: new Map(), topic: null });
        node = node.children.get(level);
      }
      node.topic = t;
    }
    const selected = this.state.messages.get(this.state.selected) || this.state.order[this.state.order.length - 1];
    const subs = [...this.state.subs.values()];
    const draw = (node, path) => [...node.children.values()].map((child) => {
      const full = path ? `${path}/${child.name}` : child.name;
      const t = child.topic;
      const hot = selected && selected.topic === full;
      const filters = t ? subs.filter((s) => matches(s.filter, full)) : [];
      return h("li", { dataset: { level: full } },
        h("div", { class: `mqtt-node${hot ? " hot" : ""}${t ? " topic" : ""}`, dataset: t ? { topic: full, retained: t.retained || "" } : {} },
          h("code", {}, child.name || "(empty)"),
          t ? h("span", { class: "muted small" }, ` ${t.count} msg${t.count === 1 ? "" : "s"}`) : null,
          t && t.retained ? h("span", { class: "chip small", title: "the broker's retained copy" }, `⚑ ${t.retained}`) : null,
          ...filters.map((s) => h("span", { class: `chip small mqtt-filter${hot ? " cat-routed" : ""}`, dataset: { filter: s.filter } },
            hot ? swatch("routed") : null, `${s.name}: ${s.filter}`))),
        child.children.size ? h("ul", {}, ...draw(child, full)) : null);
    });
    this.treeEl.replaceChildren(h("ul", { class: "mqtt-tree-root" }, ...draw(root, "")));
  },

  renderSubs() {
    const pq = this.state.publisherQos;
    this.qosNote.textContent = `Publisher QoS ${pq}. Effective QoS = the lower of the publisher's and the subscription's: ` +
      `min(${pq}, subscription QoS).`;
    this.subRows.show(this.state.subs.keys(), (row, name) => {
      const s = this.state.subs.get(name);
      const eff = Math.min(pq, s.qos);
      const stateText = { online: "● online", away: "○ away", late: "◌ joins after the last message", new: "… connecting" }[s.state];
      Object.assign(row.tr.dataset, { state: s.state, delivered: String(s.delivered), duplicates: String(s.duplicates),
        queued: String(s.queued), lost: String(s.lost) });
      const c = row.cells;
      c.filter.replaceChildren(h("code", {}, s.filter));
      c.qos.title = `effective = min(publisher ${pq}, subscription ${s.qos})`;
      c.qos.replaceChildren(`${s.qos}${s.granted !== null && s.granted !== s.qos ? ` (granted ${s.granted})` : ""} → `,
        h("strong", { dataset: { effectiveQos: String(eff) } }, String(eff)), eff < s.qos ? " ↓" : "");
      c.session.textContent = s.clean ? "clean" : "persistent";
      c.state.className = `mqtt-state ${s.state}`;
      c.state.textContent = stateText;
      c.state.title = s.note;
      c.delivered.replaceChildren(`${s.delivered}`, s.duplicates ? h("span", { class: "chip small cat-duplicate" }, `↻ ${s.duplicates}`) : "");
      c.queued.replaceChildren(s.queued ? h("span", { class: "chip small cat-routed" }, `◷ ${s.queued}`) : "0");
      c.lost.replaceChildren(s.lost ? h("span", { class: "chip small cat-lost" }, `∅ ${s.lost}`) : "0");
      const [disconnect, reconnect] = row.buttons;
      if (disconnect) {
        disconnect.disabled = !this.live || s.state !== "online";
        reconnect.disabled = !this.live || s.state !== "away";
      }
    });
    this.notesEl.replaceChildren(...[...this.state.subs.values()].filter((s) => s.note).map((s) =>
      h("li", { dataset: { subscriber: s.name } }, h("strong", {}, `${s.name}: `), s.note)));
  },

  renderMatrix() {
    const subs = [...this.state.subs.values()];
    const shown = this.state.order.slice(-SHOWN_ROWS).reverse();
    const head = h("tr", {}, h("th", {}, "message"), h("th", {}, "topic"),
      ...subs.map((s) => h("th", { dataset: { subscriber: s.name } }, s.name, h("div", { class: "muted small" }, s.filter))));
    const rows = shown.map((m) => h("tr", { class: m.id === this.state.selected ? "selected" : "", tabindex: "0",
      dataset: { message: m.id } },
    h("th", { scope: "row" }, h("code", {}, m.id), h("span", { class: "muted small" }, ` QoS ${m.qos}${m.retain ? " ⚑" : ""}`)),
    h("td", {}, h("code", {}, m.topic)),
    ...subs.map((s) => {
      const kind = this.cell(m, s);
      const c = CELL[kind];
      const got = m.got.get(s.name);
      const last = got ? got.deliveries[got.deliveries.length - 1] : null;
      const flags = last ? [`q${last.qos}`, last.dup ? "DUP" : "", last.retain ? "RET" : ""].filter(Boolean).join(" ") : "";
      const route = m.routes.get(s.name);
      return h("td", { class: `mqtt-cell cat-${c.cat}`, dataset: { subscriber: s.name, cell: kind },
        title: [c.text, route ? route.why : "", ...(got ? got.deliveries.map((d) => d.reason || d.note) : [])].filter(Boolean).join(" · ") },
      h("span", { class: "swatch" }, c.icon), " ", got && got.count > 1 ? `×${got.count} ` : "", flags || c.short);
    })));
    this.matrixEl.firstChild.replaceChildren(h("thead", {}, head), h("tbody", {}, rows));
  },

  renderDetail() {
    const m = this.state.messages.get(this.state.selected);
    if (!m) return;
    const pq = m.qos;
    const lines = [...this.state.subs.values()].map((s) => {
      const route = m.routes.get(s.name);
      const got = m.got.get(s.name);
      const kind = this.cell(m, s);
      const parts = [];
      if (route) parts.push(`filter ${s.filter} matches ${m.topic}: ${route.why}`);
      else if (!matches(s.filter, m.topic)) parts.push(`filter ${s.filter} does not match ${m.topic}`);
      else if (s.late) parts.push("subscribes only after the last message: only a retained copy can reach it");
      for (const [i, d] of (got ? got.deliveries : []).entries()) {
        parts.push(`delivery ${i + 1}: QoS ${d.qos}${d.dup ? ", DUP=1" : ""}${d.retain ? ", RETAIN=1" : ""}` +
          `${d.reason ? ` — ${d.reason}` : ""}${d.note ? ` (${d.note})` : ""}`);
        if (i === 0 && m.crashes.has(s.name)) parts.push(`then ${m.crashes.get(s.name)}`);
      }
      return h("li", { class: `cat-${CELL[kind].cat}`, dataset: { subscriber: s.name, cell: kind } },
        h("span", { class: "swatch" }, CELL[kind].icon), " ", h("strong", {}, s.name), ": ", parts.join("; "));
    });
    this.detailEl.replaceChildren(
      h("h3", {}, "Message ", h("code", {}, m.id), " on ", h("code", {}, m.topic),
        ` · QoS ${pq}${m.retain ? " · retained" : ""}${m.perceived !== null ? ` · broker confirmed after ${fmtMs(m.perceived)}` : ""}`),
      h("ul", { class: "mqtt-detail-list" }, lines));
  },
};


export default panel;
export { matches }; // for tests
