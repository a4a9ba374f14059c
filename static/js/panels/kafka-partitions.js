/* kafka-partitions panel: each partition is a lane of offsets growing to the right.

   - Lanes: one per partition; every message sits at its offset, labelled with its key and
     its number among that key's messages (k3·2 = key-3's 2nd message). ⇢ stored by the
     broker (the delivery report said where), ▼ read back by the reader.
   - Keys: murmur2(key), computed here in the browser exactly as the Java client does, mod P
     gives the partition the producer's murmur2_random partitioner picks; the table checks it
     against the lane the message really landed in, and that each key's messages are in send
     order. Click a key (or a cell) to outline all of that key's messages.
   Everything is derived from the revealed events, so a replay shows the state at that point. */
import { h } from "../dom.js";
import { swatch } from "../legend.js";
import { entry, laneRouter, lessonLine, partitionLayout, renderSoon, syncChildren } from "./kit.js";

const MAX_CELLS = 160; // per lane; older cells are summarised as "… N earlier"
// While the run goes on, fewer: at a thousand messages a second nobody reads 160 cells a
// lane flash by, and each one costs layout at every render.
const LIVE_CELLS = 48;
// And while the panel is mostly off screen (panel.inView, set by the run page), fewer still:
// its lanes sit just below the first screen, where the browser still lays out and paints
// every new cell (hundreds a render at a thousand messages a second).
const UNSEEN_CELLS = 8;
const READER = "consumer:reader";

/** Kafka's Utils.murmur2 (the Java client's hash) on the UTF-8 bytes of str, as a signed int. */
export function murmur2(str) {
  const data = new TextEncoder().encode(str);
  const m = 0x5bd1e995;
  let h32 = (0x9747b28c ^ data.length) | 0;
  const whole = data.length >> 2;
  for (let i = 0; i < whole; i++) {
    const i4 = i * 4;
    let k = (data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)) | 0;
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h32 = Math.imul(h32, m) ^ k;
  }
  const base = whole * 4;
  const rest = data.length % 4;
  if (rest === 3) h32 ^= data[base + 2] << 16;
  if (rest >= 2) h32 ^= data[base + 1] << 8;
  if (rest >= 1) {
    h32 ^= data[base];
    h32 = Math.imul(h32, m);
  }
  h32 ^= h32 >>> 13;
  h32 = Math.imul(h32, m);
  h32 ^= h32 >>> 15;
  return h32 | 0;
}

function partitionFor(key, partitions) {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

function freshState() {
  return { messages: new Map(), keys: new Map(), lanes: new Map(), finished: false };
}

/** A key's offsets in send order, the first and last `ends` of them when there are more:
    thousands of offsets in one cell would cost a long layout every render. `offsetOf` reads
    an offset from an item of `list` (a key's messages are passed whole, not mapped first). */
export function offsetsText(list, ends = 8, offsetOf = (item) => item) {
  const shown = (items) => items.map((item) => offsetOf(item) ?? "?").join(" → ");
  if (list.length <= 2 * ends + 1) return shown(list);
  return `${shown(list.slice(0, ends))} → … ${list.length - 2 * ends} more … → ${shown(list.slice(-ends))}`;
}

/** The facts of a run of a key's messages: the partitions they landed in (in order of first
    landing), the last known offset, and whether the known offsets grew in send order. */
function freshScan() {
  return { upTo: 0, landed: [], last: null, ordered: true };
}

function fold(scan, msg) {
  if (!scan.landed.includes(msg.partition)) scan.landed.push(msg.partition);
  if (msg.offset === null) return;
  if (scan.last !== null && !(msg.offset > scan.last)) scan.ordered = false;
  scan.last = msg.offset;
}

/** What the keys table says of a key: the partitions its messages landed in, whether that is
    the one its hash picks, whether its known offsets grow in send order, and its offsets.

    Each render used to read every message of every key (thousands, several times a second
    while a run streams): the messages up to the first one whose offset is not known yet are
    folded once into k.scan, and only the ones after it are read again. A message in that
    settled part that moves (keyMessageMoved) makes the next call fold them all again. */
export function keyFacts(k) {
  const scan = (k.scan ||= freshScan());
  while (scan.upTo < k.sent.length && k.sent[scan.upTo].offset !== null) fold(scan, k.sent[scan.upTo++]);
  const all = { ...scan, landed: [...scan.landed] };
  for (let i = scan.upTo; i < k.sent.length; i++) fold(all, k.sent[i]);
  const ordered = all.ordered && all.landed.length <= 1;
  const agrees = all.landed.length === 1 && all.landed[0] === k.expected;
  return { landed: all.landed, agrees, ordered, offsets: offsetsText(k.sent, 8, (m) => m.offset) };
}

/** The message at `index` of k.sent changed its partition or offset: keyFacts reads it again. */
export function keyMessageMoved(k, index) {
  if (k.scan && index < k.scan.upTo) k.scan = null;
}

const KEY_LABEL_MAX = 10; // characters of a hand-typed key shown in a cell; its title has it whole

/** A cell's short name for a key: k3 for the run's key-3, a hand-typed key cut to fit. */
export function keyShort(key) {
  const text = String(key).replace(/^key-(\d+)$/, "k$1");
  return text.length > KEY_LABEL_MAX ? `${text.slice(0, KEY_LABEL_MAX - 1)}…` : text;
}

/** The keys table's order: the run's key-1, key-2… by number, then keys typed by hand as they came. */
export function keyOrder(x, y) {
  const nx = /^key-(\d+)$/.exec(x.key);
  const ny = /^key-(\d+)$/.exec(y.key);
  if (nx && ny) return Number(nx[1]) - Number(ny[1]);
  if (nx || ny) return nx ? -1 : 1;
  return x.first - y.first;
}

const panel = {
  title: "Partitions: where each key lands, in order",

  init(root, ctx) {
    const p = ctx.run.params || {};
    this.partitions = Number(p.partitions) || 1;
    this.hot = null;
    this.finalEnds = null;
    this.laneOf = laneRouter();
    this.state = freshState();
    const acks = { 0: "acks=0: the producer does not wait, so no offset comes back (the reader finds it)",
      1: "acks=1: the partition leader confirms", all: "acks=all: every in-sync replica confirms" }[String(p.acks)] || "";
    root.append(
      lessonLine(
        "a topic is split into partitions; each is an append-only log numbered by offsets. ",
        "The key decides the partition, so all messages of one key land in one lane, in the order they were sent. ",
        "Order holds per key, not across the topic."),
      h("p", { class: "kp-partitioner", id: "kp-partitioner" },
        h("strong", {}, "Partitioner: murmur2_random. "),
        "librdkafka hashes each key with murmur2, the same hash as the Java client: ",
        h("code", {}, `partition = (murmur2(key) & 0x7fffffff) mod ${this.partitions}`),
        ". So a key lands in the same partition whichever client sends it."),
      h("p", { class: "muted small" }, `${acks}${p.idempotent ? " · idempotent producer: the broker drops retried duplicates and keeps order" : ""}`),
      h("div", { class: "kp-legend small" },
        h("span", { class: "chip cat-routed" }, swatch("routed"), "stored in the partition"),
        h("span", { class: "chip cat-delivered" }, swatch("delivered"), "read back by the reader"),
        h("span", { class: "muted" }, "k3·2 = the 2nd message of key-3; the small number is its offset")),
      (this.lanesEl = h("div", { class: "kp-lanes", id: "kp-lanes", role: "list", "aria-label": "Partitions" })),
      h("h3", {}, "Keys"),
      h("div", { class: "table-wrap kp-keys-wrap" },
        h("table", { id: "kp-keys", class: "kp-keys" },
          h("thead", {}, h("tr", {},
            h("th", {}, "key"),
            h("th", { class: "num" }, "murmur2(key)"),
            h("th", { class: "num" }, `mod ${this.partitions}`),
            h("th", {}, "landed in"),
            h("th", {}, "offsets, in send order"),
            h("th", {}, "order kept"))),
          (this.keysBody = h("tbody")))));
    this.render();
  },

  reset() {
    this.state = freshState();
    this.render();
  },

  layout(actor) {
    if (actor === READER) return { column: 2, row: 0 };
    return partitionLayout(actor);
  },

  route(ev, guess) {
    const lane = this.laneOf(ev);
    if (lane && ev.actor === READER) return lane;
    if (ev.kind === "process") return null;
    return guess;
  },

  onEvent(ev) {
    const state = this.state;
    const a = ev.attrs || {};
    if (ev.kind === "publish" && ev.message_id) {
      const key = a.key;
      const k = entry(state.keys, key, () => ({ key, hash: murmur2(key), expected: partitionFor(key, this.partitions),
        sent: [], first: state.keys.size }));
      const msg = state.messages.get(ev.message_id) || { id: ev.message_id, key, partition: a.partition,
        offset: null, read: false, seq: k.sent.length + 1, number: Number(String(ev.message_id).split("-")[1]) };
      if (msg.partition !== a.partition) keyMessageMoved(k, msg.seq - 1);
      msg.partition = a.partition;
      if (Number.isInteger(a.offset)) {
        if (msg.offset !== a.offset) keyMessageMoved(k, msg.seq - 1);
        msg.offset = a.offset;
        // The delivery report says the log reaches past this offset, even before the (maybe slowed) reader gets there.
        const lane = this.lane(a.partition);
        lane.end = Math.max(lane.end ?? 0, a.offset + 1);
      }
      if (!state.messages.has(ev.message_id)) {
        state.messages.set(ev.message_id, msg);
        k.sent.push(msg);
        this.lane(a.partition).cells.push(msg);
      }
    } else if (ev.kind === "deliver" && ev.actor === READER) {
      const msg = state.messages.get(ev.message_id);
      const lane = this.lane(a.partition);
      if (Number.isInteger(a.end_offset)) lane.end = Math.max(lane.end ?? 0, a.end_offset);
      lane.read = Math.max(lane.read, a.offset + 1);
      if (msg) {
        if (msg.offset !== a.offset) keyMessageMoved(state.keys.get(msg.key), msg.seq - 1);
        msg.offset = a.offset;
        msg.read = true;
      }
    } else if (ev.kind === "done") {
      state.finished = true;
    } else if (ev.kind === "flow") {
      // A sampled run: the records not listed one by one are counted per partition.
      for (const edge of (ev.attrs && ev.attrs.edges) || []) {
        const lane = edge.kind === "route" ? /\/p(\d+)$/.exec(edge.to || "") : null;
        if (lane) this.lane(Number(lane[1])).counted += Math.trunc(Number(edge.count)) || 0;
      }
    }
    renderSoon(this);
  },

  onSummary(summary) {
    // An empty lane has no event that says so; the run's result carries its fetch-side end offset.
    const ends = summary && summary.result && summary.result.end_offsets;
    if (ends) this.finalEnds = ends;
    renderSoon(this);
  },

  lane(partition) {
    // Asked for most events: no closure made unless the lane is new.
    let lane = this.state.lanes.get(partition);
    if (!lane) this.state.lanes.set(partition, (lane = { partition, cells: [], end: null, read: 0, counted: 0 }));
    return lane;
  },

  toggleKey(key) {
    this.hot = this.hot === key ? null : key;
    this.render();
  },

  render() {
    if (!this.lanesEl) return;
    this.renderLanes();
    this.renderKeys();
  },

  renderLanes() {
    if (!this.laneEls || this.laneEls.root !== this.state) {
      // Lanes and cells are kept and updated in place: rebuilding hundreds of cells each
      // render would cost their whole layout again, thousands of times a second.
      this.laneEls = { root: this.state, lanes: new Map(), cells: new Map() };
      this.lanesEl.replaceChildren();
    }
    for (let p = 0; p < this.partitions; p++) {
      const lane = this.state.lanes.get(p) || { partition: p, cells: [], end: null, read: 0, counted: 0 };
      // Offsets grow to the right; a message whose offset is not known yet (acks=0) waits at the end.
      const cells = [...lane.cells].sort((x, y) => (x.offset ?? Infinity) - (y.offset ?? Infinity) || x.number - y.number);
      const hidden = Math.max(0, cells.length - (this.state.finished ? MAX_CELLS : this.inView === false ? UNSEEN_CELLS : LIVE_CELLS));
      if (lane.end === null && this.state.finished && this.finalEnds && this.finalEnds[p] !== undefined) {
        lane.end = this.finalEnds[p];
      }
      const els = entry(this.laneEls.lanes, p, () => {
        const made = { head: h("div", { class: "kp-lane-head" }), cells: h("div", { class: "kp-cells" }) };
        made.el = h("div", { class: "kp-lane", role: "listitem", dataset: { partition: p } }, made.head, made.cells);
        this.lanesEl.append(made.el);
        return made;
      });
      Object.assign(els.el.dataset, { count: cells.length + lane.counted, endOffset: lane.end ?? "" });
      const endText = lane.end !== null ? `end offset ${lane.end}` : "end offset —";
      els.head.replaceChildren(
        h("strong", {}, `p${p}`),
        h("span", { class: "small", title: "the highest of the reader's fetched high watermark and the delivery reports' offsets + 1" }, endText),
        h("span", { class: "muted small" }, lane.counted
          ? `${cells.length + lane.counted} msg, ${cells.length} shown` : `${cells.length} msg`),
        lane.end !== null && lane.end > lane.read
          ? h("span", { class: "small kp-unread", dataset: { unread: lane.end - lane.read } }, `${lane.end - lane.read} unread`) : null,
        hidden ? h("span", { class: "kp-more muted small" }, `… ${hidden} earlier`) : null);
      const dropped = syncChildren(els.cells, cells.slice(hidden).map((msg) => this.cell(msg, p)));
      for (const el of dropped) this.laneEls.cells.delete(el.dataset.message);
    }
  },

  /** The button of one message in its lane, made once and brought up to date. */
  cell(msg, p) {
    const made = entry(this.laneEls.cells, msg.id, () => {
      const offset = h("span", { class: "kp-offset" });
      const label = h("span", { class: "kp-label" });
      const el = h("button", { type: "button", dataset: { message: msg.id, key: msg.key, partition: p },
        onclick: () => this.toggleKey(msg.key) }, offset, label);
      return { el, offset, label, shown: "" };
    });
    const shown = `${msg.read}|${msg.offset}|${this.hot === msg.key}`;
    if (made.shown !== shown) {
      made.shown = shown;
      made.el.className = `kp-cell cat-${msg.read ? "delivered" : "routed"}${this.hot === msg.key ? " kp-hot" : ""}`;
      made.el.title = `${msg.id}: ${msg.key} #${msg.seq} at offset ${msg.offset ?? "?"} of p${p}${msg.read ? ", read" : ""}`;
      Object.assign(made.el.dataset, { offset: msg.offset ?? "", read: String(msg.read) });
      made.offset.textContent = msg.offset ?? "?";
      made.label.textContent = `${msg.read ? "▼" : "⇢"} ${keyShort(msg.key)}·${msg.seq}`;
    }
    return made.el;
  },

  renderKeys() {
    // One row per key, made once and brought up to date in place: rebuilding the table every
    // render restyled and laid out every row again, several times a second while a run streams.
    if (!this.keyRows || this.keyRows.root !== this.state) this.keyRows = { root: this.state, rows: new Map() };
    const rows = [...this.state.keys.values()].sort(keyOrder).map((k) => {
      const row = entry(this.keyRows.rows, k.key, () => this.keyRow(k));
      const facts = keyFacts(k);
      const hot = this.hot === k.key;
      const shown = `${hot}|${facts.landed}|${facts.agrees}|${facts.ordered}|${facts.offsets}`;
      if (row.shown !== shown) {
        row.shown = shown;
        row.tr.className = hot ? "kp-hot-row" : "";
        Object.assign(row.tr.dataset, { landed: facts.landed.join(","), ordered: String(facts.ordered), agrees: String(facts.agrees) });
        row.button.setAttribute("aria-pressed", String(hot));
        row.landed.replaceChildren(facts.landed.map((p) => `p${p}`).join(", "), " ", facts.agrees
          ? h("span", { class: "ok" }, "✓ as hashed") : h("span", { class: "bad" }, "✗ not where the hash says"));
        row.offsets.textContent = facts.offsets;
        row.order.replaceChildren(facts.ordered ? h("span", { class: "ok" }, "✓ in send order") : h("span", { class: "bad" }, "✗ out of order"));
      }
      return row.tr;
    });
    syncChildren(this.keysBody, rows);
  },

  /** A key's row of the keys table, without the facts renderKeys fills in. */
  keyRow(k) {
    const row = {
      shown: "",
      button: h("button", { type: "button", class: "kp-key", onclick: () => this.toggleKey(k.key) }, k.key),
      landed: h("td"),
      offsets: h("td", { class: "mono small" }),
      order: h("td"),
    };
    row.tr = h("tr", { dataset: { key: k.key, expected: k.expected } },
      h("td", {}, row.button), h("td", { class: "num mono" }, String(k.hash)), h("td", { class: "num" }, `p${k.expected}`),
      row.landed, row.offsets, row.order);
    return row;
  },
};


export default panel;
