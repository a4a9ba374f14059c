/* The live event log (newest first, filtered by a query — log-query.js — and by kind) and
   the message path: clicking a row lists every event of that message, i.e. its route;
   Escape closes it and gives the focus back to what opened it. */
import { fmtMs, h, onActivate, onFrame } from "./dom.js";
import { categoryOf, kindChip } from "./legend.js";
import { compileQuery } from "./log-query.js";

const SHOWN_ROWS = 300;
const DETAIL_CHARS = 90;
// Shown in the message path, not squeezed into a log row.
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
  /** els: {tbody, query, kindFilter, dupFilter, status, path}; onSelect(messageId|null). */
  constructor(els, onSelect) {
    this.els = els;
    this.onSelect = onSelect || (() => {});
    this.reset();
    const refilter = () => this.refilter();
    els.query.addEventListener("input", refilter);
    els.kindFilter.addEventListener("change", refilter);
    els.dupFilter.addEventListener("change", refilter);
    onActivate(els.tbody, "tr[data-seq]", (row) => this.select(row.dataset.message));
    els.path.querySelector("[data-path-close]").addEventListener("click", () => this.close());
    els.path.querySelector("[data-path-filter]").addEventListener("click", () => {
      els.query.value = this.selected ? `message:${this.selected}` : "";
      this.refilter();
    });
    els.path.ownerDocument.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !els.path.hidden && !event.defaultPrevented) {
        event.preventDefault();
        this.close();
      }
    });
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
    if (this.selected !== undefined && this.selected !== null) this.renderPath();
    this.status();
  }

  add(ev) {
    this.all.push(ev);
    if (ev.message_id) {
      let list = this.byMessage.get(ev.message_id);
      if (!list) this.byMessage.set(ev.message_id, (list = []));
      list.push(ev);
      if (ev.message_id === this.selected) onFrame("message-path", () => this.renderPath());
    }
    if (!this.kinds.has(ev.kind)) {
      this.kinds.add(ev.kind);
      const options = [...this.els.kindFilter.options].filter((o) => o.value);
      const before = options.find((o) => o.value > ev.kind) || null;
      this.els.kindFilter.insertBefore(h("option", { value: ev.kind }, ev.kind), before);
    }
    onFrame("event-log", () => this.flush());
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
    this.flush();
  }

  /** Add rows for events not yet considered, newest on top, keeping SHOWN_ROWS rows. */
  flush() {
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
      dataset: { seq: ev.seq, kind: ev.kind, message: ev.message_id, category },
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

  select(messageId) {
    const doc = this.els.path.ownerDocument;
    // Remember what opened the panel (a row, a token, a panel's button) to return to it.
    if (messageId && !this.els.path.contains(doc.activeElement)) this.opener = doc.activeElement;
    this.selected = messageId || null;
    for (const row of this.els.tbody.querySelectorAll("tr.selected")) row.classList.remove("selected");
    if (this.selected) {
      for (const row of this.els.tbody.querySelectorAll("tr[data-message]")) {
        if (row.dataset.message === this.selected) row.classList.add("selected");
      }
    }
    this.renderPath();
    this.onSelect(this.selected);
  }

  /** Close the message path; the focus goes back to what opened it (or that message's row). */
  close() {
    const doc = this.els.path.ownerDocument;
    const messageId = this.selected;
    const opener = this.opener;
    const focus = doc.activeElement;
    // Focus the user put elsewhere since (the query box, the player) stays there.
    const returning = !focus || focus === doc.body || focus === opener || this.els.path.contains(focus);
    this.opener = null;
    this.select(null);
    if (!returning) return;
    const row = messageId
      ? [...this.els.tbody.querySelectorAll("tr[data-message]")].find((r) => r.dataset.message === messageId)
      : null;
    const target = opener && opener.isConnected && opener !== doc.body ? opener : row;
    if (target) target.focus();
  }

  /** The selected message's events, in order: where it went and how long each hop took. */
  renderPath() {
    const root = this.els.path;
    const events = this.selected ? this.byMessage.get(this.selected) || [] : [];
    root.hidden = !this.selected;
    root.dataset.message = this.selected || "";
    if (!this.selected) return;
    const route = [];
    for (const ev of events) if (route[route.length - 1] !== ev.actor) route.push(ev.actor);
    const first = events.length ? events[0].t_ms : 0;
    const took = events.length ? events[events.length - 1].t_ms - first : 0;
    root.querySelector("[data-path-id]").textContent = this.selected;
    root.querySelector("[data-path-route]").textContent = route.join(" → ") || "no events revealed yet";
    root.querySelector("[data-path-stats]").textContent =
      `${events.length} event${events.length === 1 ? "" : "s"} · from t = ${first.toFixed(1)} ms · took ${fmtMs(took)}`;
    root.querySelector("tbody").replaceChildren(...events.map((ev) => h("tr", { dataset: { seq: ev.seq, kind: ev.kind } },
      h("td", { class: "num" }, ev.seq),
      h("td", { class: "num" }, `+${(ev.t_ms - first).toFixed(1)}`),
      h("td", {}, kindChip(ev)),
      h("td", { class: "actor" }, ev.actor),
      h("td", { class: "attrs" }, Object.entries(ev.attrs || {}).map(([k, v]) =>
        h("div", {}, h("span", { class: "muted" }, `${k}: `), formatValue(v)))))));
  }

  messageEvents(messageId) {
    return this.byMessage.get(messageId) || [];
  }
}

export { EventLog };
