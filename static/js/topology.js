/* The generic topology: one SVG node per actor, laid out in columns by the actor's prefix,
   and for each message an animated token along the actor→actor edge it travels.

   Columns (0..4): client/producer/publisher → exchange/topic/server →
   queue/partition/route → consumer/group/member/subscriber/worker → anything else.
   A workflow panel may place actors itself (panel.layout(actor) → {column, row}) and
   choose where a message came from (panel.route(ev, guess) → actor or null).
   Where boxes, cluster frames and edge labels go is topology-layout.js (pure, unit-tested);
   this module draws it. See static/js/README.md for the API panels use.

   The tokens are HTML, on a layer over the SVG (.token-layer), not SVG elements: Chromium
   runs an SVG element's transform animation on the main thread and paints the whole drawing
   again every frame, while an HTML element's transform animation runs on the compositor. */
import { h, onFrame, onPacedFrame, reducedMotion } from "./dom.js";
import { edgeRates, rateText } from "./fidelity.js";
import * as legend from "./legend.js";
import { curvePoint, layoutGraph, lineOffsets, placeLabels, SIZES, splitActor, tokenKeyframes } from "./topology-layout.js";

const COLUMN_BY_PREFIX = {
  client: 0, producer: 0, publisher: 0,
  exchange: 1, topic: 1, server: 1, broker: 1,
  queue: 2, partition: 2, route: 2,
  consumer: 3, group: 3, member: 3, subscriber: 3, worker: 3,
};
const HIDDEN_ACTORS = new Set(["", "runner"]);
// The stage each kind belongs to on a message's trail (remember).
const SOURCE_KINDS = new Set(["publish", "request", "retry"]);
const CONSUMER_KINDS = new Set(["deliver", "process", "ack", "nack", "commit", "crash"]);
const MAX_TOKENS = 40;
// Past this many tokens in flight their labels overlap one another into an unreadable heap:
// the tokens keep moving unlabelled, and each edge's own label still names its latest message.
const LABELLED_TOKENS = 6;
// At thousands of events a second only a sample of them is animated (an edge's count still
// counts every one): at most TOKENS_PER_SLOT new tokens every TOKEN_SLOT_MS, and only while
// fewer than MAX_TOKENS are in flight (one cut off half-way for a newer one cost its element,
// style, layout and paint for a fraction of its trip). They start, and the arrived ones
// leave, in the first frame of a slot: the compositor moves them, so the frames between have
// nothing to style, lay out or paint for them (starting a few every frame kept the main
// thread redrawing and re-layering every frame).
const TOKEN_SLOT_MS = 100;
const TOKENS_PER_SLOT = 8;
// The nodes' status lines and the edges' labels (whose counts change with every message) are
// drawn at most 10 times a second while events stream: each change lays out and paints the
// whole SVG again; the first change after a pause is drawn in the coming frame.
const LABELS_PACE = { factor: 4, minGapMs: 100, maxGapMs: 500 };
// Distinct texts measured; the edge labels' counts make new ones all the time.
const MEASURED_MAX = 2000;
const CURVE = 0.12; // how far an edge bends, as a share of its length
const LABEL_CHARS = 40; // longer edge labels are cut; the edge's title and the event log have it all
const DEFAULT_BOX_H = 420;

/** Text widths as the browser draws them (canvas uses the page's font); an estimate without one. */
function textMeasurer(svg) {
  const canvas = document.createElement("canvas");
  const context = canvas.getContext && canvas.getContext("2d");
  const family = getComputedStyle(svg).fontFamily || "sans-serif";
  const cache = new Map();
  return (text, size, bold) => {
    const key = `${bold ? 1 : 0}${size}|${text}`;
    let width = cache.get(key);
    if (width === undefined) {
      if (cache.size >= MEASURED_MAX) cache.clear();
      if (context) {
        context.font = `${bold ? 700 : 400} ${size}px ${family}`;
        width = context.measureText(String(text)).width;
      } else {
        width = String(text).length * size * 0.68;
      }
      cache.set(key, width);
    }
    return width;
  };
}

// Which tenth of a second it is (TOKEN_SLOT_MS), told by the clock: asking for an animation
// frame to count frames cost more than the tokens' own script.
function slotNumber() {
  return Math.floor(performance.now() / TOKEN_SLOT_MS);
}

function defaultColumn(actor) {
  const prefix = actor.split(/[:/]/)[0].toLowerCase();
  return prefix in COLUMN_BY_PREFIX ? COLUMN_BY_PREFIX[prefix] : 4;
}

function last(list) {
  return list.length ? list[list.length - 1] : null;
}

/** actor at the end of list, unless it is there already. */
function pushNew(list, actor) {
  if (list[list.length - 1] !== actor) list.push(actor);
}

/** el's attribute set to value unless it already is: an equal write still costs the SVG a
    style and layout pass. */
function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

class Topology {
  constructor(svg, options) {
    this.svg = svg;
    this.options = options || {};
    this.layoutFn = null;
    this.routeFn = null;
    this.reducedMotion = reducedMotion();
    this.measure = textMeasurer(svg);
    this.layers = {
      frames: h("svg:g", { class: "frames" }),
      edges: h("svg:g", { class: "edges" }),
      labels: h("svg:g", { class: "edge-labels" }),
      nodes: h("svg:g", { class: "nodes" }),
    };
    // The tokens' layer clips them to the drawing's band of the box; its stage maps the
    // drawing's units (viewBox) to the pixels the SVG is drawn at (placeTokenLayer).
    this.tokenStage = h("div", { class: "token-stage" });
    this.tokenLayer = h("div", { class: "token-layer" }, this.tokenStage);
    svg.after(this.tokenLayer);
    svg.append(
      h("svg:defs", {},
        h("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7",
          orient: "auto-start-reverse" }, h("svg:path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
      this.layers.frames, this.layers.edges, this.layers.nodes, this.layers.labels,
      (this.emptyText = h("svg:text", { class: "topology-empty", x: "20", y: "40" }, "Waiting for the first event…")));
    this.tick = this.tick.bind(this);
    this.flushSoon = () => this.flush(); // one function for every changed(), not one per event
    this.declutterKey = `topology-declutter-${Math.random()}`;
    this.flushKey = `topology-flush-${Math.random()}`;
    this.layoutKey = `topology-layout-${Math.random()}`;
    this.placeKey = `topology-tokens-${Math.random()}`;
    this.reset();
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        this.layoutSoon();
        this.placeTokenLayer();
      }).observe(svg.parentElement);
      // The SVG's own size changes with the layout and with presentation mode (CSS sizes it there).
      new ResizeObserver(() => this.placeTokenLayer()).observe(svg);
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
    for (const token of this.tokens || []) if (token.animation) token.animation.cancel();
    this.nodes = new Map();
    this.edges = new Map();
    this.tokens = [];
    this.budget = { slot: -1, left: TOKENS_PER_SLOT };
    this.arrived = []; // tokens at the end of their trip, taken off at the next slot (sweep)
    this.messages = new Map();
    this.highlighted = new Set();
    this.dirty = new Set();
    this.layers.frames.replaceChildren();
    this.layers.edges.replaceChildren();
    this.layers.labels.replaceChildren();
    this.layers.nodes.replaceChildren();
    this.tokenStage.replaceChildren();
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
    const place = (this.layoutFn && this.layoutFn(actor)) || {};
    node = {
      actor,
      column: Number.isInteger(place.column) ? place.column : defaultColumn(actor),
      row: Number.isInteger(place.row) ? place.row : null,
      rect: h("svg:rect", { rx: "10", ry: "10" }),
      typeText: h("svg:text", { class: "node-type", "text-anchor": "middle" }),
      nameText: h("svg:text", { class: "node-name", "text-anchor": "middle" }),
      statusText: h("svg:text", { class: "node-status", "text-anchor": "middle" }, ""),
      noteText: h("svg:text", { class: "node-note", "text-anchor": "middle" }, ""),
      status: "",
      note: "",
      x: 0,
      y: 0,
      w: 0,
      h: 0,
    };
    // Focusable, with the whole actor name: what a box shows is never all there is to know.
    node.title = h("svg:title", {}, actor);
    node.g = h("svg:g", { class: "node cat-other", tabindex: "0", role: "img", "aria-label": actor, dataset: { actor } },
      node.title, node.rect, node.typeText, node.nameText, node.statusText, node.noteText);
    this.nodes.set(actor, node);
    this.layers.nodes.append(node.g);
    this.emptyText.style.display = "none";
    // One layout per frame, however many actors a burst of events brings (a replay of a big run).
    this.layoutSoon();
    return node;
  }

  layoutSoon() {
    onFrame(this.layoutKey, () => this.layout());
  }

  /** The room on screen: the wrapper's width and the height CSS allows it (max-height; in
      presentation mode, none: the wrapper's own height, which the screen's grid gives it). */
  box() {
    const wrap = this.svg.parentElement;
    const maxHeight = parseFloat(getComputedStyle(wrap).maxHeight);
    const height = Number.isFinite(maxHeight) ? maxHeight : wrap.clientHeight || DEFAULT_BOX_H;
    return { width: Math.max(280, wrap.clientWidth || 800), height };
  }

  layout() {
    for (const node of this.nodes.values()) this.settle(node);
    const box = this.box();
    const input = [...this.nodes.values()].map((n) => ({
      actor: n.actor, column: n.column, row: n.row, texts: { status: n.status, note: n.note } }));
    const result = layoutGraph(input, box, this.measure);
    this.frames = result.frames;
    this.layers.frames.replaceChildren(...result.frames.map((f) => h("svg:g", { class: "frame", dataset: { cluster: f.key } },
      h("svg:rect", { x: String(f.x), y: String(f.y), width: String(f.w), height: String(f.h), rx: "12", ry: "12" }),
      f.lines.length ? h("svg:text", { class: "frame-title" }, f.lines.map((line, i) => h("svg:tspan",
        { x: String(f.x + SIZES.framePad), y: String(f.y + SIZES.frame + 2 + i * SIZES.frameTitle) }, line))) : null)));
    for (const node of this.nodes.values()) {
      const p = result.nodes.get(node.actor);
      if (!p) continue;
      Object.assign(node, { x: p.x, y: p.y, w: p.w, h: p.h });
      const at = lineOffsets(p.lines, p.h);
      node.g.setAttribute("transform", `translate(${p.x},${p.y})`);
      node.rect.setAttribute("x", String(-p.w / 2));
      node.rect.setAttribute("y", String(-p.h / 2));
      node.rect.setAttribute("width", String(p.w));
      node.rect.setAttribute("height", String(p.h));
      node.typeText.textContent = p.lines.type;
      node.typeText.setAttribute("y", String(at.type ?? 0));
      node.nameText.replaceChildren(...p.lines.name.map((line, i) => h("svg:tspan", { x: "0", y: String(at.name[i]) }, line)));
      node.statusText.setAttribute("y", String(at.status));
      node.noteText.replaceChildren(...p.lines.note.map((line, i) => h("svg:tspan", { x: "0", y: String(at.note[i]) }, line)));
    }
    this.size = { width: result.width, height: result.height };
    // The drawing keeps its natural proportions: it shrinks to the box's width down to a
    // legible scale, and the box scrolls beyond that (CSS: .topology-wrap).
    this.svg.setAttribute("viewBox", `0 0 ${result.width} ${result.height}`);
    this.svg.setAttribute("width", String(Math.round(result.width * result.scale)));
    this.svg.setAttribute("height", String(Math.round(result.height * result.scale)));
    this.svg.dataset.scale = result.scale.toFixed(3);
    // In the coming frame: measured now, the SVG just resized would be laid out at once.
    onFrame(this.placeKey, () => this.placeTokenLayer());
    for (const edge of this.edges.values()) this.placeEdge(edge);
    this.declutterSoon();
  }

  /** Lay the tokens' layer over the drawing: as wide as the box (a token's label may run past
      the drawing, as it did in the SVG), as tall as the SVG, its stage scaled and centred as
      the SVG draws its viewBox (preserveAspectRatio's default, xMidYMid meet). Read once per
      layout or resize, never per token. */
  placeTokenLayer() {
    if (!this.size) return;
    const wrap = this.svg.parentElement;
    const box = this.svg.getBoundingClientRect();
    const outer = wrap.getBoundingClientRect();
    if (!box.width || !box.height) return;
    const scale = Math.min(box.width / this.size.width, box.height / this.size.height);
    const left = box.left - outer.left - wrap.clientLeft + wrap.scrollLeft;
    const top = box.top - outer.top - wrap.clientTop + wrap.scrollTop;
    const layer = this.tokenLayer.style;
    layer.top = `${top}px`;
    // Not the wrap's scrollWidth: the layer itself counts in it, and would never shrink.
    layer.width = `${Math.max(wrap.clientWidth, left + box.width)}px`;
    layer.height = `${box.height}px`;
    const x = left + (box.width - this.size.width * scale) / 2;
    const y = (box.height - this.size.height * scale) / 2;
    this.tokenStage.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
  }

  declutterSoon() {
    onFrame(this.declutterKey, () => this.declutter());
  }

  /** Put each edge label where it touches no box, no frame title and no other label, or hide it. */
  declutter() {
    const obstacles = [...this.nodes.values()].map((n) => ({ x: n.x - n.w / 2, y: n.y - n.h / 2, w: n.w, h: n.h }));
    for (const f of (this.frames || []).filter((frame) => frame.label)) {
      const w = Math.max(...f.lines.map((line) => this.measure(line, SIZES.frame, true)));
      obstacles.push({ x: f.x, y: f.y, w: w + 2 * SIZES.framePad, h: SIZES.frameTitle * f.lines.length });
    }
    const edges = [...this.edges.values()].filter((e) => e.curve);
    const labels = edges.map((e) => ({ key: e.key, text: e.shown || "", from: e.from, to: e.to, curve: e.curve }));
    const bounds = this.size ? { x: 0, y: 0, w: this.size.width, h: this.size.height } : null;
    const spots = placeLabels(labels, obstacles, this.measure, bounds);
    for (const edge of edges) {
      const spot = spots.get(edge.key);
      if (spot) {
        if (edge.label.hasAttribute("display")) edge.label.removeAttribute("display");
        setAttr(edge.label, "x", String(spot.x));
        setAttr(edge.label, "y", String(spot.y + SIZES.label * 0.35));
      } else {
        setAttr(edge.label, "display", "none");
      }
    }
  }

  edge(from, to) {
    const key = `${from}\u2192${to}`;
    let edge = this.edges.get(key);
    if (edge) return edge;
    edge = {
      key, from, to, count: 0, text: "", shown: "",
      path: h("svg:path", { class: "edge-line", "marker-end": "url(#arrow)" }),
      label: h("svg:text", { class: "edge-label", "text-anchor": "middle", dataset: { from, to } }),
      labelText: h("svg:tspan", {}),
      labelCount: h("svg:tspan", { class: "edge-count" }),
      title: h("svg:title", {}, `${from} → ${to}`),
      lastToken: null,
    };
    edge.g = h("svg:g", { class: "edge cat-other", dataset: { from, to } }, edge.title, edge.path);
    edge.label.append(edge.labelText, edge.labelCount);
    this.edges.set(key, edge);
    this.layers.edges.append(edge.g);
    this.layers.labels.append(edge.label);
    this.placeEdge(edge);
    return edge;
  }

  placeEdge(edge) {
    const a = this.nodes.get(edge.from);
    const b = this.nodes.get(edge.to);
    if (!a || !b || !a.w || !b.w) return;
    const dx = b.x - a.x;
    const dy = b.y - a.y;
    const length = Math.hypot(dx, dy) || 1;
    const ux = dx / length;
    const uy = dy / length;
    const nx = -uy;
    const ny = ux;
    const clip = (node) => Math.min(Math.abs(ux) > 1e-6 ? node.w / 2 / Math.abs(ux) : Infinity,
      Math.abs(uy) > 1e-6 ? node.h / 2 / Math.abs(uy) : Infinity) + 4;
    // Two edges between the same pair (there and back) bend to opposite sides.
    const sx = a.x + ux * clip(a) + nx * 8;
    const sy = a.y + uy * clip(a) + ny * 8;
    const ex = b.x - ux * clip(b) + nx * 8;
    const ey = b.y - uy * clip(b) + ny * 8;
    const bend = Math.min(60, length * CURVE);
    const cx = (sx + ex) / 2 + nx * bend;
    const cy = (sy + ey) / 2 + ny * bend;
    edge.path.setAttribute("d", `M${sx},${sy} Q${cx},${cy} ${ex},${ey}`);
    edge.curve = { s: { x: sx, y: sy }, c: { x: cx, y: cy }, e: { x: ex, y: ey } };
    // Every token on this edge moves through the same points: computed once per layout.
    edge.keyframes = tokenKeyframes(edge.curve);
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
        return trail.seen.includes(ev.actor) ? null : trail.last;
    }
  }

  remember(ev, trail) {
    const actor = ev.actor;
    if (SOURCE_KINDS.has(ev.kind)) trail.source = trail.source || actor;
    else if (ev.kind === "route") pushNew(trail.routes, actor);
    else if ((ev.kind === "enqueue" && actor !== trail.source) || ev.kind === "requeue") pushNew(trail.queues, actor);
    else if (CONSUMER_KINDS.has(ev.kind)) pushNew(trail.consumers, actor);
    trail.last = actor;
    if (!trail.seen.includes(actor)) trail.seen.push(actor);
  }

  /** Show one event: update its actor's node and move the message along its edge. */
  onEvent(ev, options) {
    if (ev.kind === "flow") {
      this.onFlow(ev.attrs || {});
      return;
    }
    if (ev.kind === "done") this.onFlow({ window_ms: 1, edges: [] }); // the run is over: no rates
    const node = this.node(ev.actor);
    if (node) {
      // Its category and status line are worked out when drawn (settle), from the last event:
      // at thousands of events a second most of them are never drawn.
      node.lastEvent = ev;
      node.flowKind = null;
      this.changed(node);
    }
    if (!ev.message_id) return;
    let trail = this.messages.get(ev.message_id);
    if (!trail) {
      // Kept for every message of the run: the actors it met are a few, a list is lighter than a Set.
      trail = { source: null, routes: [], queues: [], consumers: [], last: null, seen: [], t_ms: ev.t_ms };
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
        event: ev,
        message: ev.message_id,
        seq: ev.seq,
        animate: !options || options.animate !== false,
        duration: Math.min(1400, Math.max(350, gap / speed)),
      });
    }
  }

  /**
   * A sampled run's flow frame: the events counted on each edge add to its count and set its
   * rate (a kind counted at its own actor shows as that node's rate). The sampled messages'
   * own events still move tokens, so the drawing shows exact numbers with a sample animated.
   */
  onFlow(attrs) {
    const moving = new Set();
    for (const { from, to, kind, count, perSecond } of edgeRates(attrs)) {
      const node = count ? this.node(to) : null;
      if (!node) continue;
      const category = legend.categoryOf({ kind, attrs: {} });
      if (from && from !== to && this.node(from)) {
        const edge = this.edge(from, to);
        edge.count += count;
        edge.rate = perSecond;
        edge.lastEvent = null;
        edge.category = category;
        edge.text = edge.text || kind;
        moving.add(edge);
        this.changed(edge);
      } else {
        node.lastEvent = null;
        node.category = category;
        node.status = `${legend.info(category).icon} ${kind} ${rateText(perSecond)}`.trim();
        node.flowKind = kind;
        moving.add(node);
        this.changed(node);
      }
    }
    // An edge no frame mentions any more has gone quiet: no rate on it.
    if (Number(attrs.window_ms) > 0) {
      for (const edge of this.edges.values()) {
        if (edge.rate && !moving.has(edge)) {
          edge.rate = null;
          this.changed(edge);
        }
      }
      for (const node of this.nodes.values()) {
        if (node.flowKind && !moving.has(node)) {
          node.lastEvent = null;
          node.status = `${legend.info(node.category).icon} ${node.flowKind}`;
          node.flowKind = null;
          this.changed(node);
        }
      }
    }
  }

  /** Move a token from one actor to another (panels may call this directly): options
      {label, category, duration, animate}, or instead of label and category the `event`
      whose category and description the edge and the token show. */
  pulse(from, to, options) {
    const opts = options || {};
    if (!this.node(from) || !this.node(to)) return;
    const edge = this.edge(from, to);
    edge.count += 1;
    edge.lastEvent = opts.event || null;
    if (!opts.event) {
      edge.category = opts.category || "other";
      edge.text = opts.label || "";
    }
    this.changed(edge);
    if (this.reducedMotion || opts.animate === false || !this.spend()) return;
    const category = opts.event ? legend.categoryOf(opts.event) : opts.category || "other";
    const label = opts.event ? legend.describe(opts.event) : opts.label;
    if (edge.lastToken) edge.lastToken.el.classList.add("quiet");
    const token = {
      edge,
      start: performance.now(),
      duration: opts.duration || 600,
      // A token of a message opens it in the inspector (run-page.js listens for clicks on [data-message]).
      el: h("div", { class: `token cat-${category}`, dataset: opts.message ? { message: opts.message, seq: String(opts.seq || "") } : {} },
        h("span", { class: "token-dot" }, legend.info(category).icon),
        h("span", { class: "token-label" }, label || "")),
    };
    edge.lastToken = token;
    this.tokenStage.append(token.el);
    this.tokens.push(token);
    this.tokenLayer.classList.toggle("crowded", this.tokens.length > LABELLED_TOKENS);
    while (this.tokens.length > MAX_TOKENS) this.drop(this.tokens[0]);
    if (edge.curve && token.el.animate) {
      // The compositor moves it (a transform animation of an HTML element): a token moved by
      // script each frame cost a style and SVG layout pass of the whole drawing every frame.
      token.animation = token.el.animate(edge.keyframes, { duration: token.duration, easing: "linear", fill: "forwards" });
      token.animation.onfinish = () => this.arrive(token);
      return;
    }
    this.place(token, 0);
    if (!this.ticking) {
      this.ticking = true;
      requestAnimationFrame(this.tick);
    }
  }

  /** Take a token off the drawing (arrived, or the oldest of too many). */
  drop(token) {
    const at = this.tokens.indexOf(token);
    if (at >= 0) this.tokens.splice(at, 1);
    if (token.animation) token.animation.cancel();
    token.el.remove();
    this.tokenLayer.classList.toggle("crowded", this.tokens.length > LABELLED_TOKENS);
  }

  /** A token at the end of its edge (it stays there, fill: forwards) leaves at the next slot. */
  arrive(token) {
    this.arrived.push(token);
    if (this.arrived.length > 1) return; // a sweep is planned
    setTimeout(() => this.sweep(), TOKEN_SLOT_MS - (performance.now() % TOKEN_SLOT_MS));
  }

  sweep() {
    const arrived = this.arrived;
    this.arrived = [];
    for (const token of arrived) this.drop(token);
  }

  /** Whether this slot may start one more token (TOKENS_PER_SLOT, and room for it: MAX_TOKENS). */
  spend() {
    const slot = slotNumber();
    if (this.budget.slot !== slot) {
      this.sweep(); // the arrived ones leave in the frame the new ones start in
      this.budget = { slot, left: TOKENS_PER_SLOT };
    }
    if (this.tokens.length >= MAX_TOKENS) return false;
    if (this.budget.left <= 0) return false;
    this.budget.left -= 1;
    return true;
  }

  /** DOM writes wait for the next frame: a burst of 10 000 events costs one write per node. */
  changed(item) {
    this.dirty.add(item);
    // Paced: at thousands of events a second the labels are placed again a few times a
    // second, not every frame (the tokens move every frame regardless).
    onPacedFrame(this.flushKey, this.flushSoon, LABELS_PACE);
  }

  /** A node's or an edge's category and text from the last event that reached it. */
  settle(item) {
    const ev = item.lastEvent;
    if (!ev) return;
    item.lastEvent = null;
    item.category = legend.categoryOf(ev);
    if (item.rect) item.status = `${legend.info(item.category).icon} ${ev.kind}${ev.duplicate ? " (dup)" : ""}`;
    else item.text = legend.describe(ev);
  }

  flush() {
    let labels = false;
    let grown = false;
    for (const item of this.dirty) {
      this.settle(item);
      if (item.rect) {
        if (this.nodes.get(item.actor) !== item) continue; // dropped by a reset
        setAttr(item.g, "class", `node cat-${item.category}${this.highlighted.has(item.actor) ? " on-path" : ""}`);
        setText(item.statusText, item.status);
        setAttr(item.g, "aria-label", [item.actor, item.status, item.note].filter(Boolean).join(" · "));
        grown = grown || this.outgrows(item);
      } else if (this.edges.get(item.key) === item) {
        const text = item.text.length > LABEL_CHARS ? `${item.text.slice(0, LABEL_CHARS - 1)}…` : item.text;
        const rate = item.rate ? ` · ${rateText(item.rate)}` : "";
        const whole = `${item.text} · ${item.count} in all${rate}`;
        item.shown = `${text} · ${item.count} in all${rate}`;
        setAttr(item.g, "class", `edge cat-${item.category}`);
        setAttr(item.label, "class", `edge-label cat-${item.category}`);
        setText(item.labelText, text);
        setText(item.labelCount, ` · ${item.count} in all${rate}`);
        item.title.textContent = `${item.from} → ${item.to}: ${whole}`;
        labels = true;
      }
    }
    this.dirty.clear();
    if (grown) this.layout();
    else if (labels) this.declutter();
  }

  /** Whether a node's status or note no longer fits its box (then the layout grows it). */
  outgrows(node) {
    const room = node.w - 2 * SIZES.padX;
    const shown = [...node.noteText.querySelectorAll("tspan")].map((t) => t.textContent).join("");
    return this.measure(node.status, SIZES.status, false) > room || shown !== node.note;
  }

  place(token, t) {
    const curve = token.edge.curve;
    if (!curve) return; // its nodes are placed in the next frame
    // Computed, not measured: getTotalLength() would force a layout per token.
    const point = curvePoint(curve.s, curve.c, curve.e, t);
    token.el.style.transform = `translate(${point.x}px, ${point.y}px)`;
  }

  /** Moves the tokens the browser does not animate itself (no Element.animate, or a curve
      not placed yet when the token started). */
  tick(now) {
    let moving = false;
    for (const token of [...this.tokens]) {
      if (token.animation) continue;
      const t = (now - token.start) / token.duration;
      if (t >= 1) {
        this.drop(token);
        continue;
      }
      this.place(token, Math.max(0, t));
      moving = true;
    }
    this.ticking = moving;
    if (moving) requestAnimationFrame(this.tick);
  }

  /** A panel's own line under an actor's node (e.g. "5 persons · state 3c397e"). */
  setNote(actor, text) {
    const node = this.node(actor);
    if (!node || node.note === (text || "")) return;
    node.note = text || "";
    this.changed(node);
  }

  /** Outline these actors (the route of the selected message); empty to clear. */
  highlight(actors) {
    this.highlighted = new Set(actors || []);
    for (const node of this.nodes.values()) node.g.classList.toggle("on-path", this.highlighted.has(node.actor));
  }
}

export { Topology, defaultColumn, splitActor };
