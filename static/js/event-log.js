/* The live event log (newest first, filtered by a query — log-query.js — and by kind).
   Clicking a row (or Enter on it) picks its message: the message inspector
   (message-inspector.js) shows that message's journey from the events indexed here. */
import { h, OFF_SCREEN_PACE, onActivate, onPacedFrame } from "./dom.js";
import { categoryOf, kindChip } from "./legend.js";
import { compileQuery } from "./log-query.js";
import { messagesOf } from "./message-inspector.js";

const SHOWN_ROWS = 300;
// Following a live run with the log off screen, a flush that finds new events coming faster
// than this leaves them for later: rows nobody sees cost script, style and layout.
const UNSEEN_RATE = 1000; // events a second
const DETAIL_CHARS = 90;
// Shown in the message inspector, not squeezed into a log row.
const LONG_ATTRS = new Set(["body"]);

function formatValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function details(ev) {
  const parts = [];
  for (const [key, value] of Object.entries(ev.attrs || {})) {
    if (!LONG_ATTRS.has(key)) parts.push(`${key}=${formatValue(value)}`);
  }
  const text = parts.join("  ");
  return text.length > DETAIL_CHARS ? `${text.slice(0, DETAIL_CHARS - 1)}…` : text;
}

class EventLog {
  /** els: {tbody, query, kindFilter, dupFilter, status}; onPick(messageId, seq): a row of that message was activated. */
  constructor(els, onPick) {
    this.els = els;
    this.selected = null;
    this.reset();
    const refilter = () => this.refilter();
    els.query.addEventListener("input", refilter);
    els.kindFilter.addEventListener("change", refilter);
    els.dupFilter.addEventListener("change", refilter);
    onActivate(els.tbody, "tr[data-message]", (row) => onPick(row.dataset.message, Number(row.dataset.seq)));
    this.flushSoon = () => this.flush(); // one function for every add(), not one per event
    this.visible = true;
    this.following = false; // the page says so while its player follows a live run
    this.sinceFlush = 0;
    this.flushedAt = 0;
    if (window.IntersectionObserver) {
      new IntersectionObserver((entries) => {
        this.visible = entries.some((e) => e.isIntersecting);
        if (this.visible) onPacedFrame(this, () => this.flush());
      }).observe(els.tbody.closest("section") || els.tbody);
    }
  }

  reset() {
    this.all = [];
    this.byMessage = new Map();
    this.kinds = new Set();
    this.rendered = 0; // index in this.all up to which rows were considered
    this.shown = 0;
    this.matched = 0;
    this.els.tbody.replaceChildren();
    for (const option of [...this.els.kindFilter.options]) if (option.value) option.remove();
    this.status();
  }

  add(ev) {
    this.all.push(ev);
    this.sinceFlush += 1;
    // A crash or revoke is indexed under every message it lists: it belongs to their journeys.
    for (const id of messagesOf(ev)) {
      let list = this.byMessage.get(id);
      if (!list) this.byMessage.set(id, (list = []));
      list.push(ev);
    }
    if (!this.kinds.has(ev.kind)) {
      this.kinds.add(ev.kind);
      const options = [...this.els.kindFilter.options].filter((o) => o.value);
      const before = options.find((o) => o.value > ev.kind) || null;
      this.els.kindFilter.insertBefore(h("option", { value: ev.kind }, ev.kind), before);
    }
    // At thousands of events a second the rows are rebuilt less often than every frame; out
    // of view while following a live run, at most 4 times a second (and a fast run's bursts
    // then wait: see flush). A seek or a replay step is drawn in the coming frame.
    onPacedFrame(this, this.flushSoon, this.visible || !this.following ? undefined : OFF_SCREEN_PACE);
  }

  filter() {
    const query = compileQuery(this.els.query.value);
    const kind = this.els.kindFilter.value;
    const dupOnly = this.els.dupFilter.checked;
    return (ev) => (!kind || ev.kind === kind) && (!dupOnly || ev.duplicate) && query(ev);
  }

  refilter() {
    this.rendered = 0;
    this.shown = 0;
    this.matched = 0;
    this.els.tbody.replaceChildren();
    this.flush(true);
  }

  /** Add rows for events not yet considered, newest on top, keeping SHOWN_ROWS rows
      (off screen and far behind: later, unless `force`). */
  flush(force = false) {
    const burst = this.sinceFlush;
    const now = performance.now();
    const seconds = Math.max(1 / 60, (now - this.flushedAt) / 1000);
    this.sinceFlush = 0;
    this.flushedAt = now;
    if (!force && this.following && !this.visible && burst / seconds > UNSEEN_RATE) {
      this.els.status.textContent = `${this.all.length} events; the newest rows are drawn when the log is in view`;
      return;
    }
    const matches = this.filter();
    const fresh = [];
    for (let i = this.rendered; i < this.all.length; i += 1) {
      if (matches(this.all[i])) fresh.push(this.all[i]);
    }
    this.rendered = this.all.length;
    this.matched += fresh.length;
    const rows = fresh.slice(-SHOWN_ROWS).reverse().map((ev) => this.row(ev));
    this.els.tbody.prepend(...rows);
    this.shown += rows.length;
    while (this.shown > SHOWN_ROWS) {
      this.els.tbody.lastElementChild.remove();
      this.shown -= 1;
    }
    this.status();
  }

  row(ev) {
    const category = categoryOf(ev);
    return h("tr", {
      tabindex: "0",
      class: `${ev.duplicate ? "dup " : ""}${ev.message_id === this.selected ? "selected" : ""}`,
      // Only a row with a message has data-message: it is the one a click opens in the inspector.
      dataset: { seq: ev.seq, kind: ev.kind, category, ...(ev.message_id ? { message: ev.message_id } : {}) },
    },
    h("td", { class: "num" }, ev.seq),
    h("td", { class: "num" }, ev.t_ms.toFixed(1)),
    h("td", {}, kindChip(ev)),
    h("td", { class: "actor" }, ev.actor),
    h("td", { class: "mono" }, ev.message_id || "—"),
    h("td", { class: "details" }, details(ev)));
  }

  status() {
    const total = this.all.length;
    const text = this.matched === total
      ? `${total} events, newest first`
      : `${this.matched} of ${total} events match, newest first`;
    this.els.status.textContent = this.shown < this.matched ? `${text}; showing the latest ${this.shown}` : text;
  }

  /** Mark the rows of the message the inspector shows (null: none). */
  markSelected(messageId) {
    this.selected = messageId || null;
    for (const row of this.els.tbody.querySelectorAll("tr.selected")) row.classList.remove("selected");
    if (!this.selected) return;
    for (const row of this.els.tbody.querySelectorAll("tr[data-message]")) {
      if (row.dataset.message === this.selected) row.classList.add("selected");
    }
  }

  /** "Show only this message": an exact message term in the query box. */
  showOnly(messageId) {
    this.els.query.value = `message:${messageId}`;
    this.refilter();
  }

  /** The newest shown row of this message, or null. */
  rowOf(messageId) {
    return [...this.els.tbody.querySelectorAll("tr[data-message]")].find((r) => r.dataset.message === messageId) || null;
  }

  /** The revealed event with this seq (seqs are gapless from 1 and revealed in order). */
  eventAt(seq) {
    const ev = this.all[seq - 1];
    return ev && ev.seq === seq ? ev : this.all.find((e) => e.seq === seq);
  }

  messageEvents(messageId) {
    return this.byMessage.get(messageId) || [];
  }
}

export { EventLog };
