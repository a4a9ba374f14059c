/* The event log's query language: free text plus `field:value` terms, all ANDed.

   actor:member-2      the actor, or the part of it after a ':' or '/' (group:billing/member-2)
   kind:deliver        the event kind
   message:m-1         exactly that message (not m-10); a bare word that is a message id too
   duplicate:true      the event is (or is not: false) a duplicate delivery
   attempt:2, seq:14   the event's own numbers
   key:key-4           attrs.key (or attrs.routing_key, AMQP's key)
   partition:3, offset:1, queue:…, any other name: the event's attribute of that name
   "quoted values"     may hold spaces; * in a value matches anything (key:key-*)

   Every other word is free text, searched case-insensitively in what a log row shows (seq,
   kind, actor, message id, name=value attributes). A number in it matches whole numbers only,
   so "m-1" finds m-1 and not m-10…m-19, "offset=1" not offset=12. Nothing here throws: a
   term that does not parse as a field (":x", "x:", duplicate:maybe) is free text. */

// Aliases of the event's own fields; every other field name is an attribute.
const FIELD_ALIASES = { message_id: "message", id: "message", msg: "message" };
const ATTR_ALIASES = { key: ["key", "routing_key"] };
const FIELD_NAME = /^[a-z_][\w.-]*$/i;
const TRUE_WORDS = new Set(["true", "yes", "1"]);
const FALSE_WORDS = new Set(["false", "no", "0"]);

/** Split on whitespace; double quotes group words (an unclosed quote runs to the end). */
function tokens(text) {
  const found = [];
  let current = "";
  let quoted = false;
  let inQuotes = false;
  for (const char of String(text ?? "")) {
    if (char === '"') {
      inQuotes = !inQuotes;
      quoted = true;
    } else if (!inQuotes && /\s/.test(char)) {
      if (current || quoted) found.push(current);
      current = "";
      quoted = false;
    } else {
      current += char;
    }
  }
  if (current || quoted) found.push(current);
  return found.filter((token) => token !== "");
}

/**
 * The terms of a query: {field, value} with field null for free text.
 * @param {string} text
 * @returns {{field: string|null, value: string}[]}
 */
function parseQuery(text) {
  return tokens(text).map((token) => {
    const colon = token.indexOf(":");
    const name = colon > 0 ? token.slice(0, colon).toLowerCase() : "";
    const value = colon > 0 ? token.slice(colon + 1) : "";
    if (!name || !value || !FIELD_NAME.test(name)) return { field: null, value: token };
    const field = FIELD_ALIASES[name] || name;
    if (field === "duplicate" && !TRUE_WORDS.has(value.toLowerCase()) && !FALSE_WORDS.has(value.toLowerCase())) {
      return { field: null, value: token };
    }
    return { field, value };
  });
}

function asText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** A value test: case-insensitive equality, or a glob when the value holds a '*'. */
function equalsValue(expected) {
  const wanted = expected.toLowerCase();
  if (!wanted.includes("*")) return (actual) => asText(actual).toLowerCase() === wanted;
  const pattern = wanted.split("*").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  const glob = new RegExp(`^${pattern}$`, "s");
  return (actual) => glob.test(asText(actual).toLowerCase());
}

/** The actor itself, and what follows each ':' or '/' in it: group:billing/member-2 → billing/member-2, member-2. */
function actorNames(actor) {
  const names = [actor];
  for (let i = 0; i < actor.length; i += 1) {
    if (actor[i] === ":" || actor[i] === "/") names.push(actor.slice(i + 1));
  }
  return names;
}

/** What a log row shows, as one lower-case string (cached per event). */
const rowTexts = new WeakMap();
function rowText(ev) {
  let text = rowTexts.get(ev);
  if (text === undefined) {
    const attrs = Object.entries(ev.attrs || {}).map(([key, value]) => `${key}=${asText(value)}`);
    text = [ev.seq, ev.kind, ev.actor, ev.message_id, ...attrs].map(asText).join(" ").toLowerCase();
    rowTexts.set(ev, text);
  }
  return text;
}

const isDigit = (char) => char >= "0" && char <= "9";

/** `word` occurs in `text` without cutting a number in two (m-1 is not in m-10). */
function containsWord(text, word) {
  if (!word) return true;
  const startsWithDigit = isDigit(word[0]);
  const endsWithDigit = isDigit(word[word.length - 1]);
  for (let at = text.indexOf(word); at !== -1; at = text.indexOf(word, at + 1)) {
    const before = at > 0 ? text[at - 1] : "";
    const after = text[at + word.length] || "";
    if ((!startsWithDigit || !isDigit(before)) && (!endsWithDigit || !isDigit(after))) return true;
  }
  return false;
}

/** One term as a predicate over events. */
function termTest({ field, value }) {
  if (field === null) {
    const word = value.toLowerCase();
    return (ev) => containsWord(rowText(ev), word);
  }
  const equals = equalsValue(value);
  switch (field) {
    case "actor":
      return (ev) => actorNames(asText(ev.actor)).some(equals);
    case "kind":
      return (ev) => equals(ev.kind);
    case "message":
      return (ev) => Boolean(ev.message_id) && equals(ev.message_id);
    case "duplicate": {
      const wanted = TRUE_WORDS.has(value.toLowerCase());
      return (ev) => Boolean(ev.duplicate) === wanted;
    }
    case "attempt":
    case "seq":
      return (ev) => equals(ev[field]);
    default: {
      // An attribute; failing that the literal "name:value" in the row, so a pasted
      // actor (topic:orders/p3) or an attribute that is absent here still finds its text.
      const names = ATTR_ALIASES[field] || [field];
      const literal = termTest({ field: null, value: `${field}:${value}` });
      return (ev) => names.some((name) => ev.attrs && name in ev.attrs && equals(ev.attrs[name])) || literal(ev);
    }
  }
}

/**
 * A predicate over events for a query text; an empty query matches every event.
 * @param {string} text
 * @returns {(ev: object) => boolean}
 */
function compileQuery(text) {
  const tests = parseQuery(text).map(termTest);
  return (ev) => tests.every((test) => test(ev));
}

export { compileQuery, parseQuery };
