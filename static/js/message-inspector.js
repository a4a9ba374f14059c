/* The message inspector: one message's whole journey as a vertical timeline across actors.

   Pure part (tested in tests/message-inspector.test.mjs): which messages an event concerns
   (its own message_id, or the attrs.message_ids of a crash or revoke that brings them back),
   and the journey built from those events: a step per event with a sentence saying what
   happened, the facts that identify the delivery (attempt, offset, delivery tag), the
   duplicate's reason in full and the event that caused a redelivery (attrs.cause_seq).

   DOM part: MessageInspector, the wide drawer #message-path. Opening it sets ?message=<id>
   (history.replaceState) so the URL can be shared; Escape or ✕ closes it and gives the focus
   back to what opened it. */
import { fmtMs, h } from "./dom.js";
import { categoryOf, kindChip } from "./legend.js";

// Events that may bring a message back, and the attrs that have listed the messages they hold.
const CAUSE_KINDS = new Set(["crash", "revoke", "requeue", "rebalance"]);
const HELD_ATTRS = ["message_ids", "unacked", "running"];
// Said in the step's sentences, so not repeated among its attributes.
const SAID = new Set(["reason", "why", "suppressed", "cause_seq", "message_ids"]);

/** The message ids an event concerns: its own, and those a crash or revoke lists as affected. */
export function messagesOf(ev) {
  const ids = ev.message_id ? [ev.message_id] : [];
  const attrs = ev.attrs || {};
  for (const name of HELD_ATTRS) {
    const list = attrs[name];
    if (!Array.isArray(list)) continue;
    for (const id of list) if (typeof id === "string" && id && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** "crashed before ack" → "Crashed before ack."; "member-1 crashed" → "member-1 crashed." */
export function sentence(text) {
  const s = String(text || "").trim();
  if (!s) return "";
  // A plain first word gets a capital; a name (member-1, m3, crash_at=2) stays as written.
  const first = /^[a-z]+[,.:;]?(\s|$)/.test(s) ? s[0].toUpperCase() + s.slice(1) : s;
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

function list(values) {
  return Array.isArray(values) ? values.join(", ") : String(values);
}

/** Who handled it: the consumer, member, worker or subscriber (else the actor). */
function consumerOf(ev) {
  const a = ev.attrs || {};
  if (a.group && a.member) return `${a.member} of group ${a.group}`;
  return a.consumer || a.worker || a.subscriber || ev.actor;
}

/** Where the broker put it: a queue, a partition, a subscriber. */
function destinationOf(a) {
  if (a.queue) return `queue ${a.queue}`;
  if (a.partition !== undefined && a.partition !== null) return `partition ${a.partition}${a.topic ? ` of ${a.topic}` : ""}`;
  if (a.subscriber) return `subscriber ${a.subscriber}`;
  return "";
}

/** The facts that identify this delivery or hop, short: attempt, offset, delivery tag, … */
export function factsOf(ev) {
  const a = ev.attrs || {};
  const facts = [];
  if (["deliver", "process", "ack", "commit"].includes(ev.kind) && ev.attempt) facts.push(`attempt ${ev.attempt}`);
  if (a.partition !== undefined && a.partition !== null && a.offset !== undefined) facts.push(`p${a.partition}@${a.offset}`);
  else if (a.offset !== undefined) facts.push(`offset ${a.offset}`);
  if (a.delivery_tag !== undefined && a.delivery_tag !== null) facts.push(`delivery tag ${a.delivery_tag}`);
  if (a.packet_id !== undefined && a.packet_id !== null) facts.push(`packet id ${a.packet_id}`);
  if (a.key) facts.push(`key ${a.key}`);
  if (a.routing_key) facts.push(`routing key ${a.routing_key}`);
  if (a.qos !== undefined) facts.push(`QoS ${a.qos}`);
  if (a.redelivered) facts.push("redelivered flag set");
  if (a.dup) facts.push("DUP=1");
  if (a.retain) facts.push("RETAIN=1");
  if (a.status !== undefined) facts.push(`status ${a.status}`);
  if (a.code) facts.push(`code ${a.code}`);
  return facts;
}

/** What happened at this step, in one sentence, from the point of view of message `id`. */
export function titleOf(ev, id) {
  const a = ev.attrs || {};
  const who = consumerOf(ev);
  const others = messagesOf(ev).filter((m) => m !== id).length;
  const holding = others ? ` while it held ${id} and ${others} other message${others === 1 ? "" : "s"}` : ` while it held ${id}`;
  switch (ev.kind) {
    case "publish": return `Published by ${ev.actor}${a.exchange ? ` to exchange ${a.exchange}` : a.topic ? ` to ${a.topic}` : ""}.`;
    case "request": return `Sent by ${ev.actor}${a.method ? ` as ${a.method}${a.path ? ` ${a.path}` : ""}` : ""}.`;
    case "route": {
      const to = destinationOf(a);
      return `Routed by ${ev.actor}${to ? ` to ${to}` : ""}${a.binding !== undefined ? ` (binding ${a.binding})` : ""}.`;
    }
    case "enqueue": return `Enqueued${a.queue ? ` in queue ${a.queue}` : ""} by ${ev.actor}.`;
    case "deliver": return `${ev.duplicate ? "Delivered again" : "Delivered"} to ${who}.`;
    case "process": {
      if (a.effect === false) return `Handled by ${who}: effect suppressed by the inbox.`;
      if (a.effect === true) return `Handled by ${who}: effect applied.`;
      return `Handled by ${who}.`;
    }
    case "ack": return `Acknowledged by ${who}.`;
    case "commit": return `Offsets committed by ${who}.`;
    case "response": return `Answer received by ${ev.actor}${a.status !== undefined ? ` (status ${a.status})` : ""}.`;
    case "requeue": return `Put back in ${a.queue ? `queue ${a.queue}` : ev.actor} by the broker.`;
    case "crash": return `${ev.actor} crashed${holding}.`;
    case "revoke": return a.partitions
      ? `Partitions ${list(a.partitions)} taken from ${ev.actor}${holding}.`
      : `${ev.actor} disconnected${holding}.`;
    case "rebalance": return `Group ${a.group || ev.actor} rebalanced.`;
    case "nack": return `Rejected by ${who}.`;
    case "error": return `Error at ${ev.actor}.`;
    default: return `${ev.kind} at ${ev.actor}.`;
  }
}

/** The reason in full sentences: why a duplicate happened, why the effect was skipped, why it crashed. */
export function reasonOf(ev) {
  const a = ev.attrs || {};
  const parts = [a.reason, a.why, a.suppressed].filter((x) => typeof x === "string" && x.trim());
  if (a.inbox && a.effect === false && !a.suppressed) parts.push(a.inbox);
  return parts.map(sentence).join(" ");
}

/** The attributes not already said in the step's sentences, as [name, text] pairs. */
export function otherAttrs(ev) {
  return Object.entries(ev.attrs || {}).filter(([name]) => !SAID.has(name))
    .map(([name, value]) => [name, typeof value === "string" ? value : JSON.stringify(value)]);
}

/**
 * The journey of message `id`: every event that concerns it, oldest first, as steps.
 * events: that message's events (any others are skipped); eventAt(seq): any event of the run
 * by seq, or undefined (for a cause recorded without naming the message).
 */
export function buildJourney(events, id, eventAt = () => undefined) {
  const mine = events.filter((ev) => messagesOf(ev).includes(id)).sort((x, y) => x.seq - y.seq);
  const bySeq = new Map(mine.map((ev) => [ev.seq, ev]));
  const first = mine.length ? mine[0].t_ms : 0;
  const steps = mine.map((ev) => ({
    seq: ev.seq,
    t_ms: ev.t_ms,
    dt_ms: ev.t_ms - first,
    kind: ev.kind,
    actor: ev.actor,
    category: categoryOf(ev),
    duplicate: Boolean(ev.duplicate),
    attempt: ev.attempt,
    via: ev.message_id !== id, // concerns it through attrs.message_ids (a crash, a revoke)
    title: titleOf(ev, id),
    facts: factsOf(ev),
    reason: reasonOf(ev),
    attrs: otherAttrs(ev),
    cause: null,
    caused: [],
    event: ev,
  }));
  const stepAt = new Map(steps.map((s) => [s.seq, s]));
  let lastCause = null;
  for (const step of steps) {
    const ev = step.event;
    if (CAUSE_KINDS.has(ev.kind) && ev.kind !== "requeue") lastCause = ev;
    if (!(ev.kind === "deliver" && ev.duplicate)) continue;
    const named = ev.attrs && ev.attrs.cause_seq;
    // Runs recorded before cause_seq existed: the latest crash or revoke that held this message.
    const cause = named ? bySeq.get(named) || eventAt(named) || { seq: named } : lastCause;
    if (!cause) continue;
    step.cause = { seq: cause.seq, kind: cause.kind || "event", actor: cause.actor || "", inferred: !named,
      text: cause.kind ? titleOf(cause, id) : `event ${cause.seq}` };
    const target = stepAt.get(cause.seq);
    if (target) target.caused.push(step.seq);
    lastCause = null;
  }
  const actors = [];
  for (const step of steps) if (!actors.includes(step.actor)) actors.push(step.actor);
  const deliveries = steps.filter((s) => s.kind === "deliver");
  const processed = steps.filter((s) => s.kind === "process");
  return {
    id,
    steps,
    actors,
    deliveries: deliveries.length,
    duplicates: deliveries.filter((s) => s.duplicate).length,
    applied: processed.filter((s) => s.event.attrs && s.event.attrs.effect !== false).length,
    suppressed: processed.filter((s) => s.event.attrs && s.event.attrs.effect === false).length,
    first_ms: first,
    took_ms: mine.length ? mine[mine.length - 1].t_ms - first : 0,
  };
}

/** The headline under the inspector's title: how many deliveries, duplicates, effects, how long. */
export function journeyStats(j) {
  if (!j.steps.length) return "no events revealed yet";
  const parts = [`${j.steps.length} event${j.steps.length === 1 ? "" : "s"}`,
    `${j.deliveries} deliver${j.deliveries === 1 ? "y" : "ies"}`];
  if (j.duplicates) parts.push(`${j.duplicates} duplicate${j.duplicates === 1 ? "" : "s"}`);
  if (j.applied || j.suppressed) parts.push(`effect applied ×${j.applied}${j.suppressed ? `, suppressed ×${j.suppressed}` : ""}`);
  parts.push(`from t = ${j.first_ms.toFixed(1)} ms`, `took ${fmtMs(j.took_ms)}`);
  return parts.join(" · ");
}

/** The ?message= of a URL, or "". */
export function messageParam(search) {
  return new URLSearchParams(search).get("message") || "";
}

/** The same URL with ?message=<id> set (or removed for ""), keeping every other part. */
export function withMessageParam(href, id) {
  const url = new URL(href);
  if (id) url.searchParams.set("message", id);
  else url.searchParams.delete("message");
  return url.toString();
}

// -- the drawer ----------------------------------------------------------------------------

/**
 * The element that took a detached one's place: a live panel redraws its rows while the
 * inspector is open, and the row that opened it comes back as a new element with the same
 * tag, class and message.
 */
function redrawnAs(gone, inspector) {
  const id = gone.dataset && gone.dataset.message;
  if (!id) return null;
  const selector = `${gone.localName}[data-message="${CSS.escape(id)}"]`;
  const same = [...inspector.ownerDocument.querySelectorAll(selector)].filter((el) => !inspector.contains(el));
  return same.find((el) => el.className === gone.className) || same[0] || null;
}

class MessageInspector {
  /**
   * root: the #message-path drawer. source: {events(id) → that message's events revealed so
   * far, eventAt(seq)}; hooks: {changed(id|null): the selection changed, filter(id): "show
   * only this message in the log", row(id): the log row to give the focus to on close}.
   */
  constructor(root, source, hooks) {
    this.root = root;
    this.source = source;
    this.hooks = hooks;
    this.selected = null;
    this.opener = null;
    this.list = root.querySelector("[data-path-journey]");
    root.querySelector("[data-path-close]").addEventListener("click", () => this.close());
    root.querySelector("[data-path-filter]").addEventListener("click", () => {
      if (this.selected) this.hooks.filter(this.selected);
    });
    root.addEventListener("click", (event) => {
      const jump = event.target.closest("[data-jump-seq]");
      if (jump) this.jumpTo(Number(jump.dataset.jumpSeq));
    });
    root.ownerDocument.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !root.hidden && !event.defaultPrevented) {
        event.preventDefault();
        this.close();
      }
    });
  }

  /** Open (or switch) to message `id`, at the step of event `seq` if given; what has the focus now gets it back on close. */
  open(id, seq = 0) {
    if (!id) return;
    const doc = this.root.ownerDocument;
    if (!this.root.contains(doc.activeElement)) this.opener = doc.activeElement;
    this.selected = id;
    this.render();
    this.setUrl(id);
    this.hooks.changed(id);
    // Keyboard users land in the drawer (at the event they picked); Escape brings them back.
    this.root.focus({ preventScroll: true });
    if (seq) this.jumpTo(seq);
    else this.root.scrollTop = 0;
  }

  /** Close; the focus goes back to what opened it (or the message's log row) unless the user moved it elsewhere. */
  close() {
    if (!this.selected) return;
    const doc = this.root.ownerDocument;
    const id = this.selected;
    const opener = this.opener;
    const focus = doc.activeElement;
    const returning = !focus || focus === doc.body || focus === opener || this.root.contains(focus);
    this.opener = null;
    this.selected = null;
    this.render();
    this.setUrl("");
    this.hooks.changed(null);
    if (!returning) return;
    const target = opener && opener !== doc.body ? (opener.isConnected ? opener : redrawnAs(opener, this.root)) : null;
    const fallback = target || this.hooks.row(id);
    if (fallback) fallback.focus();
  }

  setUrl(id) {
    const win = this.root.ownerDocument.defaultView;
    const href = withMessageParam(win.location.href, id);
    if (href !== win.location.href) win.history.replaceState(win.history.state, "", href);
  }

  /** Scroll the timeline to the step of event `seq` and mark it. */
  jumpTo(seq) {
    const item = this.list.querySelector(`li[data-seq="${seq}"]`);
    if (!item) return;
    for (const marked of this.list.querySelectorAll("li.jumped")) marked.classList.remove("jumped");
    item.classList.add("jumped");
    item.scrollIntoView({ block: "center" });
    item.focus({ preventScroll: true });
  }

  /** Draw the selected message's journey from what is revealed now (or hide). */
  render() {
    const root = this.root;
    root.hidden = !this.selected;
    root.dataset.message = this.selected || "";
    if (!this.selected) return;
    const j = buildJourney(this.source.events(this.selected), this.selected, this.source.eventAt);
    root.querySelector("[data-path-id]").textContent = this.selected;
    root.querySelector("[data-path-route]").textContent = j.actors.join(" → ") || "no events revealed yet";
    root.querySelector("[data-path-stats]").textContent = journeyStats(j);
    Object.assign(root.dataset, { steps: String(j.steps.length), duplicates: String(j.duplicates) });
    this.list.replaceChildren(...j.steps.map((step) => this.stepItem(step)));
  }

  stepItem(step) {
    const caused = step.caused.length
      ? h("p", { class: "step-caused" }, "Caused the redelivery at ",
        ...step.caused.flatMap((seq, i) => [i ? ", " : "", jumpButton(seq, `seq ${seq}`)]), ".")
      : null;
    const cause = step.cause
      ? h("p", { class: "step-cause", dataset: { causeSeq: String(step.cause.seq), causeKind: step.cause.kind } },
        h("strong", {}, "Caused by "), jumpButton(step.cause.seq, `${step.cause.kind} · seq ${step.cause.seq}`), " ",
        step.cause.text, step.cause.inferred ? h("span", { class: "muted" }, " (the latest crash or revoke that held it)") : "")
      : null;
    return h("li", { class: `step cat-${step.category}${step.duplicate ? " dup" : ""}${step.via ? " via" : ""}`, tabindex: "-1",
      dataset: { seq: String(step.seq), kind: step.kind, actor: step.actor } },
    h("div", { class: "step-when" }, h("span", { class: "step-seq" }, `seq ${step.seq}`), h("span", { class: "muted" }, `+${step.dt_ms.toFixed(1)} ms`)),
    h("div", { class: "step-body" },
      h("p", { class: "step-head" }, kindChip(step.event), " ", h("span", { class: "step-actor" }, step.actor)),
      h("p", { class: "step-title" }, step.title),
      step.facts.length ? h("p", { class: "step-facts" }, ...step.facts.map((f) => h("span", { class: "fact" }, f))) : null,
      cause,
      step.reason ? h("p", { class: "step-reason", dataset: { reason: "" } }, h("strong", {}, step.duplicate ? "Why a duplicate: " : "Why: "), step.reason) : null,
      caused,
      step.attrs.length ? h("details", { class: "step-attrs" }, h("summary", {}, `${step.attrs.length} attributes`),
        h("dl", {}, ...step.attrs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))) : null));
  }
}

function jumpButton(seq, text) {
  return h("button", { type: "button", class: "link-button", dataset: { jumpSeq: String(seq) } }, text);
}

export { MessageInspector };
