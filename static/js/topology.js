/* The generic topology: one SVG node per actor, laid out in columns by the actor's prefix,
   and for each message an animated token along the actor→actor edge it travels.

   Columns (0..4): client/producer/publisher → exchange/topic/server →
   queue/partition/route → consumer/group/member/subscriber/worker → anything else.
   A workflow panel may place actors itself (panel.layout(actor) → {column, row}) and
   choose where a message came from (panel.route(ev, guess) → actor or null).
   See static/js/README.md for the API panels use. */
import { h, onFrame, reducedMotion } from "./dom.js";
import * as legend from "./legend.js";

const COLUMN_BY_PREFIX = {
  client: 0, producer: 0, publisher: 0,
  exchange: 1, topic: 1, server: 1, broker: 1,
  queue: 2, partition: 2, route: 2,
  consumer: 3, group: 3, member: 3, subscriber: 3, worker: 3,
};
const HIDDEN_ACTORS = new Set(["", "runner"]);
const NODE_H = 96; // type, name, last event, panel note
const ROW_H = 150; // a node plus room for the edge labels between rows
const TOP = 62; // room for the labels of edges bending above the first row
const MAX_TOKENS = 80;
const CURVE = 52;
const LABEL_CHARS = 26; // longer edge labels are cut; the event log has the whole story

function splitActor(actor) {
  const colon = actor.indexOf(":");
  return colon < 0 ? { type: "", name: actor } : { type: actor.slice(0, colon), name: actor.slice(colon + 1) };
}

function defaultColumn(actor) {
  const prefix = actor.split(/[:/]/)[0].toLowerCase();
  return prefix in COLUMN_BY_PREFIX ? COLUMN_BY_PREFIX[prefix] : 4;
}

function last(list) {
  return list.length ? list[list.length - 1] : null;
}

class Topology {
  constructor(svg, options) {
    this.svg = svg;
    this.options = options || {};
    this.layoutFn = null;
    this.routeFn = null;
    this.reducedMotion = reducedMotion();
    this.layers = {
      edges: h("svg:g", { class: "edges" }),
      nodes: h("svg:g", { class: "nodes" }),
      tokens: h("svg:g", { class: "tokens" }),
    };
    svg.append(
      h("svg:defs", {},
        h("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7",
          orient: "auto-start-reverse" }, h("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
      this.layers.edges, this.layers.nodes, this.layers.tokens,
      (this.emptyText = h("svg:text", { class: "topology-empty", x: "20", y: "40" }, "Waiting for the first event…")));
    this.tick = this.tick.bind(this);
    this.declutterKey = `topology-declutter-${Math.random()}`;
    this.flushKey = `topology-flush-${Math.random()}`;
    this.reset();
    if (window.ResizeObserver) {
      new ResizeObserver(() => onFrame("topology-layout", () => this.layout())).observe(svg.parentElement);
    }
  }

  /** fn(actor) → {column, row} | undefined (then the default layout applies). */
  setLayout(fn) {
    this.layoutFn = fn;
    this.layout();
  }

  /** fn(ev, guess) → the actor the message came from, or null for no token. */
  setRoute(fn) {
    this.routeFn = fn;
  }

  reset() {
    this.nodes = new Map();
    this.edges = new Map();
    this.tokens = [];
    this.messages = new Map();
    this.highlighted = new Set();
    this.dirty = new Set();
    this.layers.edges.replaceChildren();
    this.layers.nodes.replaceChildren();
    this.layers.tokens.replaceChildren();
    this.emptyText.style.display = "";
    this.layout();
  }

  actors() {
    return [...this.nodes.keys()];
  }

  /** The node for an actor, created on first use; null for actors never drawn (runner). */
  node(actor) {
    if (HIDDEN_ACTORS.has(actor)) return null;
    let node = this.nodes.get(actor);
    if (node) return node;
    const { type, name } = splitActor(actor);
    const place = (this.layoutFn && this.layoutFn(actor)) || {};
    node = {
      actor,
      column: Number.isInteger(place.column) ? place.column : defaultColumn(actor),
      row: Number.isInteger(place.row) ? place.row : null,
      rect: h("svg:rect", { rx: "10", ry: "10" }),
      typeText: h("svg:text", { class: "node-type", "text-anchor": "middle" }, type),
      nameText: h("svg:text", { class: "node-name", "text-anchor": "middle" }, name),
      statusText: h("svg:text", { class: "node-status", "text-anchor": "middle" }, ""),
      noteText: h("svg:text", { class: "node-note", "text-anchor": "middle" }, ""),
      name,
      x: 0,
      y: 0,
      w: 160,
    };
    node.g = h("svg:g", { class: "node cat-other", dataset: { actor } },
      h("svg:title", {}, actor), node.rect, node.typeText, node.nameText, node.statusText, node.noteText);
    this.nodes.set(actor, node);
    this.layers.nodes.append(node.g);
    this.emptyText.style.display = "none";
    this.layout();
    return node;
  }

  layout() {
    const width = Math.max(480, this.svg.parentElement.clientWidth || 800);
    const columns = [...new Set([...this.nodes.values()].map((n) => n.column))].sort((a, b) => a - b);
    const rowsUsed = new Map();
    let rows = 1;
    for (const node of this.nodes.values()) {
      const taken = rowsUsed.get(node.column) || 0;
      node.slot = node.row !== null ? node.row : taken;
      rowsUsed.set(node.column, Math.max(taken, node.slot + 1));
      rows = Math.max(rows, node.slot + 1);
    }
    const colWidth = width / Math.max(1, columns.length);
    const nodeWidth = Math.min(250, Math.max(120, colWidth * 0.66));
    for (const node of this.nodes.values()) {
      node.x = colWidth * (columns.indexOf(node.column) + 0.5);
      node.y = TOP + node.slot * ROW_H + NODE_H / 2;
      node.w = nodeWidth;
      node.g.setAttribute("transform", `translate(${node.x},${node.y})`);
      node.rect.setAttribute("x", String(-nodeWidth / 2));
      node.rect.setAttribute("y", String(-NODE_H / 2));
      node.rect.setAttribute("width", String(nodeWidth));
      node.rect.setAttribute("height", String(NODE_H));
      const typed = Boolean(node.typeText.textContent);
      node.typeText.setAttribute("y", "-24");
      node.nameText.setAttribute("y", typed ? "-2" : "-12");
      node.statusText.setAttribute("y", typed ? "19" : "13");
      node.noteText.setAttribute("y", typed ? "39" : "36");
      const maxChars = Math.max(6, Math.floor(nodeWidth / 11));
      node.nameText.textContent = node.name.length > maxChars ? `${node.name.slice(0, maxChars - 1)}…` : node.name;
    }
    const height = TOP + rows * ROW_H;
    // CSS sizes the SVG to its container's width, so one viewBox unit is one pixel.
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    for (const edge of this.edges.values()) this.placeEdge(edge);
    this.declutterSoon();
  }

  declutterSoon() {
    onFrame(this.declutterKey, () => this.declutter());
  }

  /** Nudge edge labels off each other and, where there is room, off the nodes. */
  declutter() {
    const nodes = [...this.nodes.values()].map((n) => ({ x: n.x - n.w / 2, y: n.y - NODE_H / 2, w: n.w, h: NODE_H }));
    const hits = (a, boxes) => boxes.some((b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h - 1 && b.y + 1 < a.y + a.h);
    // Read every box first (getBBox ignores the element's own transform), then write: one layout.
    let measured;
    try {
      measured = [...this.edges.values()].filter((e) => e.label.textContent).map((e) => [e, e.label.getBBox()]);
    } catch (e) {
      return; // not rendered yet; the next layout tries again
    }
    const labels = [];
    for (const [edge, box] of measured) {
      const at = (shift) => ({ x: box.x, y: box.y + shift, w: box.width, h: box.height });
      const shifts = [0];
      for (let i = 1; i <= 10; i += 1) shifts.push((i % 2 ? 1 : -1) * Math.ceil(i / 2) * (box.height + 2));
      // Free of labels and nodes if possible, else at least free of other labels.
      const shift = shifts.find((d) => !hits(at(d), labels) && !hits(at(d), nodes))
        ?? shifts.find((d) => !hits(at(d), labels)) ?? 0;
      edge.label.setAttribute("transform", `translate(0,${shift})`);
      labels.push(at(shift));
    }
  }

  edge(from, to) {
    const key = `${from}\u2192${to}`;
    let edge = this.edges.get(key);
    if (edge) return edge;
    edge = {
      key, from, to, count: 0,
      path: h("svg:path", { class: "edge-line", "marker-end": "url(#arrow)" }),
      label: h("svg:text", { class: "edge-label", "text-anchor": "middle" }),
      lastToken: null,
    };
    edge.g = h("svg:g", { class: "edge cat-other", dataset: { from, to } }, edge.path, edge.label);
    this.edges.set(key, edge);
    this.layers.edges.append(edge.g);
    this.placeEdge(edge);
    return edge;
  }

  placeEdge(edge) {
    const a = this.nodes.get(edge.from);
    const b = this.nodes.get(edge.to);
    if (!a || !b) return;
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const length = Math.hypot(dx, dy) || 1;
    const ux = dx / length;
    const uy = dy / length;
    const nx = -uy;
    const ny = ux;
    const clip = (node) => Math.min(Math.abs(ux) > 1e-6 ? node.w / 2 / Math.abs(ux) : Infinity,
      Math.abs(uy) > 1e-6 ? NODE_H / 2 / Math.abs(uy) : Infinity) + 4;
    const sx = a.x + ux * clip(a) + nx * 12;
    const sy = a.y + uy * clip(a) + ny * 12;
    const ex = b.x - ux * clip(b) + nx * 12;
    const ey = b.y - uy * clip(b) + ny * 12;
    const cx = (sx + ex) / 2 + nx * CURVE;
    const cy = (sy + ey) / 2 + ny * CURVE;
    edge.path.setAttribute("d", `M${sx},${sy} Q${cx},${cy} ${ex},${ey}`);
    // The label sits on the outside of the bend, a little past the middle: edges fanning
    // out of one node then keep their labels apart.
    const t = 0.6;
    const mx = (1 - t) ** 2 * sx + 2 * (1 - t) * t * cx + t * t * ex + nx * 20;
    const my = (1 - t) ** 2 * sy + 2 * (1 - t) * t * cy + t * t * ey + ny * 20 + 6;
    edge.label.setAttribute("x", String(mx));
    edge.label.setAttribute("y", String(my));
  }

  /** Where the message was before this event, by the stage each kind belongs to. */
  guessSource(ev, trail) {
    const attrs = ev.attrs || {};
    const matchQueue = () => {
      const wanted = attrs.queue !== undefined ? `:${attrs.queue}`
        : attrs.partition !== undefined ? `/p${attrs.partition}` : null;
      return wanted ? trail.queues.find((q) => q.endsWith(wanted)) || null : null;
    };
    switch (ev.kind) {
      case "publish":
      case "request":
      case "retry":
        return null;
      case "route":
        return trail.source || trail.last;
      case "enqueue":
        // An enqueue reported at the publisher is the broker's confirm: nothing moves.
        if (ev.actor === trail.source) return null;
        return last(trail.routes) || trail.source || trail.last;
      case "deliver":
        return matchQueue() || last(trail.queues) || last(trail.routes) || trail.source || trail.last;
      case "requeue":
      case "response":
        return last(trail.consumers) || trail.last;
      default:
        // process, ack, commit, crash … happen where the message already is.
        return trail.seen.has(ev.actor) ? null : trail.last;
    }
  }

  remember(ev, trail) {
    const actor = ev.actor;
    const add = (list) => {
      if (list[list.length - 1] !== actor) list.push(actor);
    };
    if (["publish", "request", "retry"].includes(ev.kind)) trail.source = trail.source || actor;
    else if (ev.kind === "route") add(trail.routes);
    else if ((ev.kind === "enqueue" && actor !== trail.source) || ev.kind === "requeue") add(trail.queues);
    else if (["deliver", "process", "ack", "nack", "commit", "crash"].includes(ev.kind)) add(trail.consumers);
    trail.last = actor;
    trail.seen.add(actor);
  }

  /** Show one event: update its actor's node and move the message along its edge. */
  onEvent(ev, options) {
    const node = this.node(ev.actor);
    const category = legend.categoryOf(ev);
    if (node) {
      node.category = category;
      node.status = `${legend.info(category).icon} ${ev.kind}${ev.duplicate ? " (dup)" : ""}`;
      this.changed(node);
    }
    if (!ev.message_id) return;
    let trail = this.messages.get(ev.message_id);
    if (!trail) {
      trail = { source: null, routes: [], queues: [], consumers: [], last: null, seen: new Set(), t_ms: ev.t_ms };
      this.messages.set(ev.message_id, trail);
    }
    let from = this.guessSource(ev, trail);
    if (this.routeFn) {
      const chosen = this.routeFn(ev, from);
      if (chosen !== undefined) from = chosen;
    }
    const gap = ev.t_ms - trail.t_ms;
    this.remember(ev, trail);
    trail.t_ms = ev.t_ms;
    if (from && from !== ev.actor && node && this.node(from)) {
      const speed = (options && options.speed) || 1;
      this.pulse(from, ev.actor, {
        label: legend.describe(ev),
        category,
        animate: !options || options.animate !== false,
        duration: Math.min(1400, Math.max(350, gap / speed)),
      });
    }
  }

  /** Move a token from one actor to another (panels may call this directly). */
  pulse(from, to, options) {
    const opts = options || {};
    if (!this.node(from) || !this.node(to)) return;
    const edge = this.edge(from, to);
    const category = opts.category || "other";
    edge.count += 1;
    edge.category = category;
    edge.text = opts.label || "";
    this.changed(edge);
    if (this.reducedMotion || opts.animate === false) return;
    if (edge.lastToken) edge.lastToken.g.classList.add("quiet");
    const token = {
      edge,
      start: performance.now(),
      duration: opts.duration || 600,
      g: h("svg:g", { class: `token cat-${category}` },
        h("svg:circle", { r: "12" }),
        h("svg:text", { class: "token-icon", "text-anchor": "middle", y: "5" }, legend.info(category).icon),
        h("svg:text", { class: "token-label", x: "18", y: "-12" }, opts.label || "")),
    };
    edge.lastToken = token;
    this.layers.tokens.append(token.g);
    this.tokens.push(token);
    while (this.tokens.length > MAX_TOKENS) this.tokens.shift().g.remove();
    this.place(token, 0);
    if (this.tokens.length === 1) requestAnimationFrame(this.tick);
  }

  /** DOM writes wait for the next frame: a burst of 10 000 events costs one write per node. */
  changed(item) {
    this.dirty.add(item);
    onFrame(this.flushKey, () => this.flush());
  }

  flush() {
    let labels = false;
    for (const item of this.dirty) {
      if (item.rect) {
        if (this.nodes.get(item.actor) !== item) continue; // dropped by a reset
        item.g.setAttribute("class", `node cat-${item.category}${this.highlighted.has(item.actor) ? " on-path" : ""}`);
        item.statusText.textContent = item.status;
      } else if (this.edges.get(item.key) === item) {
        const text = item.text.length > LABEL_CHARS ? `${item.text.slice(0, LABEL_CHARS - 1)}…` : item.text;
        item.g.setAttribute("class", `edge cat-${item.category}`);
        item.label.replaceChildren(h("svg:tspan", {}, text), h("svg:tspan", { class: "edge-count" }, ` · ${item.count} in all`));
        labels = true;
      }
    }
    this.dirty.clear();
    if (labels) this.declutter();
  }

  place(token, t) {
    const length = token.edge.path.getTotalLength();
    const point = token.edge.path.getPointAtLength(length * t);
    token.g.setAttribute("transform", `translate(${point.x},${point.y})`);
  }

  tick(now) {
    this.tokens = this.tokens.filter((token) => {
      const t = (now - token.start) / token.duration;
      if (t >= 1) {
        token.g.remove();
        return false;
      }
      this.place(token, Math.max(0, t));
      return true;
    });
    if (this.tokens.length) requestAnimationFrame(this.tick);
  }

  /** A panel's own line under an actor's node (e.g. "5 persons · state 3c397e"). */
  setNote(actor, text) {
    const node = this.node(actor);
    if (node) node.noteText.textContent = text || "";
  }

  /** Outline these actors (the route of the selected message); empty to clear. */
  highlight(actors) {
    this.highlighted = new Set(actors || []);
    for (const node of this.nodes.values()) node.g.classList.toggle("on-path", this.highlighted.has(node.actor));
  }
}

export { Topology, defaultColumn, splitActor };
