/* The one colour language: which category an event belongs to, its icon and its label.
   Colours live in CSS variables (--c-published …); markup always adds icon and text. */
import { h } from "./dom.js";

const CATEGORIES = {
  published: { label: "published", icon: "▲", help: "sent by a producer or client" },
  routed: { label: "routed", icon: "⇢", help: "placed by an exchange, topic or partition" },
  delivered: { label: "delivered", icon: "▼", help: "handed to and handled by a consumer" },
  acked: { label: "acked / committed", icon: "✓", help: "confirmed: ack, commit or response" },
  duplicate: { label: "duplicate", icon: "↻", help: "a delivery beyond the first" },
  lost: { label: "lost", icon: "∅", help: "confirmed but never processed" },
  error: { label: "error", icon: "✗", help: "error, crash, nack or failed status" },
};
const OTHER = { label: "other", icon: "•", help: "" };

const BY_KIND = {
  request: "published", publish: "published", retry: "published",
  route: "routed", enqueue: "routed", requeue: "routed", assign: "routed", revoke: "routed", rebalance: "routed",
  deliver: "delivered", process: "delivered",
  ack: "acked", commit: "acked", response: "acked",
  nack: "error", crash: "error", error: "error",
};

function failedStatus(attrs) {
  if (typeof attrs.status === "number" && attrs.status >= 500) return true;
  return typeof attrs.code === "string" && attrs.code !== "" && attrs.code !== "OK";
}

function categoryOf(ev) {
  const attrs = ev.attrs || {};
  if (ev.kind === "done") {
    if (Number(attrs.lost) > 0) return "lost";
    if (attrs.state === "succeeded") return "acked";
    return attrs.state === "failed" ? "error" : "other";
  }
  if (BY_KIND[ev.kind] === "error") return "error";
  if (Number(attrs.lost) > 0) return "lost";
  if (ev.duplicate) return "duplicate";
  if (failedStatus(attrs)) return "error";
  return BY_KIND[ev.kind] || "other";
}

function info(category) {
  return CATEGORIES[category] || OTHER;
}

function swatch(category) {
  return h("span", { class: `swatch cat-${category}`, "aria-hidden": "true" }, info(category).icon);
}

/** A chip for an event: coloured icon plus the event's kind as text. */
function kindChip(ev) {
  const category = categoryOf(ev);
  const text = ev.duplicate ? `${ev.kind} (dup #${ev.attempt})` : ev.kind;
  return h("span", { class: `chip cat-${category}`, title: info(category).label }, swatch(category), text);
}

function renderLegend(root) {
  root.replaceChildren(
    ...Object.entries(CATEGORIES).map(([key, c]) =>
      h("li", { class: `chip cat-${key}`, dataset: { category: key }, title: `${c.label}: ${c.help}` }, swatch(key), h("strong", {}, c.label),
        h("span", { class: "muted small" }, c.help)))
  );
}

/** A short human label for what an event says about its message, e.g. "PUT /persons/1 → 200". */
function describe(ev) {
  const a = ev.attrs || {};
  let text = "";
  if (a.method && a.path) text = `${a.method} ${a.path}`;
  else if (a.method) text = String(a.method);
  else if (a.routing_key !== undefined && a.routing_key !== "") text = `key ${a.routing_key}`;
  // The topic already names the partition's node; the key is what decided the partition.
  // Read from a partition, the edge starts at that partition's node: the key alone says it.
  else if (a.topic !== undefined && a.partition !== undefined) {
    const keyed = a.key !== undefined && a.key !== null;
    if (["publish", "route"].includes(ev.kind)) text = keyed ? `${a.key} → p${a.partition}` : `p${a.partition}`;
    else text = keyed ? String(a.key) : `p${a.partition}`;
  }
  else if (a.topic !== undefined) text = String(a.topic);
  else text = ev.message_id || ev.kind;
  if (a.offset !== undefined) text += ` @${a.offset}`;
  if (a.qos !== undefined) text += ` qos${a.qos}`;
  if (a.status !== undefined && a.status !== 0) text += ` → ${a.status}`;
  else if (a.code !== undefined && a.code !== "") text += ` → ${a.code}`;
  if (ev.duplicate) text = `↻ ${text}`;
  return text;
}

export { CATEGORIES, categoryOf, info, swatch, kindChip, renderLegend, describe };
