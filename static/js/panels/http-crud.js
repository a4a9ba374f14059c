/* http-crud panel: the server-state table that makes lesson 3 visible.

   The server's process events carry its state after each request (attrs persons and
   state_hash); the client's request/response events carry the step (create, read,
   repeat-put, repeat-post, delete). Joining them by message id shows that N repeated PUTs
   leave the state identical to one PUT (idempotent) while N repeated POSTs create N
   persons (not idempotent). */
import { h } from "../dom.js";
import { swatch } from "../legend.js";
import { entry, lessonLine, placeActors, renderSoon, verdict } from "./kit.js";

const STEP_NAMES = {
  create: "create",
  read: "read",
  "repeat-put": "same PUT repeated",
  "repeat-post": "same POST repeated",
  delete: "delete",
};
const REPEATED = new Set(["repeat-put", "repeat-post"]);
// GET /persons calls the workflow makes between steps to read the whole state: listed
// under the table, not as a step of their own.
const INSPECT = "inspect";

function freshState() {
  return { requests: new Map(), steps: new Map(), last: null, finished: false, result: null };
}

function step(state, name) {
  return entry(state.steps, name, () => ({ name, method: "", path: "", sent: 0, handled: 0, responses: 0, changed: 0, failed: 0,
    before: state.last, afterFirst: null, afterLastOk: null, after: null, ids: [], lastBody: null }));
}

function shortHash(hash) {
  return hash ? String(hash) : "—";
}

function personText(body) {
  if (!body || typeof body !== "object" || body.id === undefined) return "—";
  return `#${body.id} ${body.name ?? ""}${body.age !== undefined ? `, ${body.age}` : ""}`;
}

function resultText(s) {
  if (s.method === "POST") return s.ids.length ? `created ${s.ids.map((id) => `#${id}`).join(", ")}` : "nothing created";
  if (s.method === "PUT") return `person now ${personText(s.lastBody)}`;
  if (s.method === "GET") return `read ${s.ids.map((id) => `#${id}`).join(", ") || "—"}`;
  if (s.method === "DELETE") return `${s.responses} deleted`;
  return "";
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** "n of m PUTs failed; " when some did: a failed request changed nothing and proves nothing. */
function failedPrefix(s, method) {
  return s.failed ? `${s.failed} of ${s.handled} ${method}s failed; ` : "";
}

/**
 * The repeated PUT's verdict from what the server recorded, failures included: idempotence
 * is judged only on the PUTs that succeeded (the state after the first of them against the
 * state after the last), and needs two of them. A step is the panel's tally:
 * {method, path, handled, failed, changed, afterFirst, afterLastOk} (snapshots {persons, hash}).
 * Returns {idempotent: true | false | null (not judged), category, headline, explain}.
 */
export function putVerdict(s) {
  const ok = s.handled - s.failed;
  const failed = failedPrefix(s, "PUT");
  const what = `The same ${s.method} ${s.path} sent ${s.handled} times`;
  if (ok < 2 || !s.afterFirst || !s.afterLastOk) {
    const none = ok === 0 ? "none succeeded" : "only 1 succeeded";
    return { idempotent: null, category: "error",
      headline: `PUT ×${s.handled} → ${s.failed} failed, ${none}: idempotence not shown`,
      explain: `${what}: ${failed}${ok === 0 ? "no PUT reached the state" : "one PUT alone has nothing to be compared with"}. ` +
        "Run again (with a lower error_rate) to see a repeat leave the state as it was." };
  }
  const identical = s.afterLastOk.hash === s.afterFirst.hash && s.afterLastOk.persons === s.afterFirst.persons;
  const verdictText = identical ? "✓ idempotent" : "✗ not idempotent";
  const headline = s.failed
    ? `PUT ×${s.handled} → ${failed}the ${ok} that succeeded left ${identical ? "the same state" : "different states"} ${verdictText}`
    : `PUT ×${s.handled} → ${identical ? "state identical" : "state changed"} ${verdictText}`;
  return { idempotent: identical, category: identical ? "acked" : "error", headline,
    explain: `${what}: ${failed}the state hash after the last successful one (${shortHash(s.afterLastOk.hash)}) ` +
      `${identical ? "equals" : "differs from"} the hash after the first (${shortHash(s.afterFirst.hash)}); ` +
      `${s.changed} of ${s.handled} changed anything.` };
}

/**
 * The repeated POST's verdict, failures included: a POST that failed created nothing, so
 * "not idempotent" needs two that succeeded and a state that differs after them.
 * The step also carries before (the snapshot before the step) and ids (the ids created).
 */
export function postVerdict(s) {
  const ok = s.handled - s.failed;
  const failed = failedPrefix(s, "POST");
  const before = s.before ? s.before.persons : 0;
  const last = s.afterLastOk || s.after;
  const created = last.persons - before;
  const ids = s.ids.length ? ` (new ids ${s.ids.map((id) => `#${id}`).join(", ")})` : "";
  const what = `The same ${s.method} ${s.path} body sent ${s.handled} times: ${failed}the server went from ${before} to ` +
    `${last.persons} persons${ids}`;
  if (ok < 2 || !s.afterFirst || !s.afterLastOk) {
    return { idempotent: null, category: "error",
      headline: `POST ×${s.handled} → ${plural(created, "new person")}; ${s.failed} failed: idempotence not shown`,
      explain: `${what}; fewer than two succeeded, so no repeat can show what it does.` };
  }
  const idempotent = s.afterLastOk.hash === s.afterFirst.hash;
  const headline = `POST ×${s.handled} → ${s.failed ? `${failed}the ${ok} that succeeded made ` : ""}` +
    `${plural(created, "new person")} ${idempotent ? "✓ idempotent" : "✗ not idempotent"}`;
  return { idempotent, category: idempotent ? "acked" : "error", headline,
    explain: `${what}; ${idempotent ? "the repeats changed nothing." : `every repeat that succeeded created again.`}` };
}

const panel = {
  title: "Server state: which requests are idempotent?",

  init(root, ctx) {
    this.state = freshState();
    this.repeat = Number((ctx.run.params || {}).repeat) || null;
    this.root = root;
    root.append(
      lessonLine(
        "PUT replaces a resource, so sending the same PUT again leaves the server exactly as it was (idempotent). ",
        "POST creates, so sending the same POST again creates again (not idempotent). ",
        "The state hash below is a fingerprint of everything the server stores."),
      (this.verdicts = h("div", { class: "verdicts" })),
      h("div", { class: "table-wrap state-wrap" },
        h("table", { class: "state-table", id: "state-table" },
          h("thead", {}, h("tr", {},
            h("th", {}, "Step"),
            h("th", { class: "num" }, "Requests"),
            h("th", {}, "Changed server state"),
            h("th", { class: "num" }, "Persons on server"),
            h("th", {}, "State hash after"),
            h("th", {}, "Result"))),
          (this.tbody = h("tbody")))),
      (this.inspectNote = h("p", { class: "muted small" })),
      (this.check = h("p", { class: "muted small server-check" })));
    this.render();
  },

  reset() {
    this.state = freshState();
    this.render();
  },

  layout: placeActors({ client: [0, 0], server: [1, 0] }),

  onEvent(ev, ctx) {
    const state = this.state;
    const a = ev.attrs || {};
    if (ev.kind === "request" && ev.actor === "client") {
      const s = step(state, a.step || "other");
      state.requests.set(ev.message_id, s.name);
      s.method = a.method || s.method;
      // Different ids in one step read as "/persons/{id}".
      s.path = !s.path || s.path === a.path ? a.path || s.path : String(a.path).replace(/\/\d+/g, "/{id}");
      s.sent += 1;
    } else if (ev.kind === "process" && ev.actor === "server" && a.state_hash !== undefined) {
      const s = step(state, state.requests.get(ev.message_id) || "other");
      const snapshot = { persons: a.persons, hash: a.state_hash };
      const failed = typeof a.status === "number" && a.status >= 400;
      if (s.handled === 0) s.before = state.last;
      s.handled += 1;
      s.after = snapshot;
      if (a.effect) s.changed += 1;
      if (failed) s.failed += 1;
      else s.afterLastOk = snapshot;
      // "After one" means after the first request the server carried out (a 503 changes nothing).
      if (!s.afterFirst && !failed) {
        s.afterFirst = snapshot;
        s.firstAt = s.handled;
        s.firstChanged = a.effect ? 1 : 0;
      }
      state.last = snapshot;
      ctx.topology.setNote("server", `${a.persons} persons · #${String(a.state_hash).slice(0, 6)}`);
    } else if (ev.kind === "response" && ev.actor === "client") {
      const s = step(state, a.step || state.requests.get(ev.message_id) || "other");
      s.responses += 1;
      if (a.body && typeof a.body === "object" && a.body.id !== undefined) {
        s.lastBody = a.body;
        if (!s.ids.includes(a.body.id)) s.ids.push(a.body.id);
      }
    } else if (ev.kind === "done") {
      state.finished = true;
    }
    renderSoon(this);
  },

  onSummary(summary) {
    this.state.result = summary.result || null;
    renderSoon(this);
  },

  /** Is this repeated step over (all repeats handled, a later step began, or the run ended)? */
  complete(name) {
    const s = this.state.steps.get(name);
    if (!s) return false;
    const names = [...this.state.steps.keys()].filter((n) => n !== INSPECT);
    return this.state.finished || names.indexOf(name) < names.length - 1 || (this.repeat !== null && s.handled >= this.repeat);
  },

  rows() {
    const rows = [];
    for (const s of this.state.steps.values()) {
      if (!s.after || s.name === INSPECT) continue;
      const label = `${s.method} ${s.path}`.trim();
      const persons = (snap) => (snap ? snap.persons : 0);
      if (REPEATED.has(s.name)) {
        if (s.afterFirst) {
          const retried = s.firstAt > 1 ? ` (the first that succeeded)` : "";
          rows.push({ s, which: "first", text: `${label} ×1${retried}`, n: s.firstAt, snap: s.afterFirst, changed: s.firstChanged,
            failed: s.firstAt - 1 });
        }
        if (s.handled > (s.firstAt || 0)) {
          rows.push({ s, which: "all", text: `${label} ×${s.handled}`, n: s.handled, snap: s.after, changed: s.changed, failed: s.failed });
        }
      } else {
        rows.push({ s, which: "all", text: `${label} ×${s.handled}`, n: s.handled, snap: s.after, changed: s.changed, failed: s.failed });
      }
      for (const row of rows.filter((r) => r.s === s)) row.delta = persons(row.snap) - persons(s.before);
    }
    return rows;
  },

  render() {
    if (!this.tbody) return;
    this.tbody.replaceChildren(...this.rows().map((row) => {
      const s = row.s;
      const sameAsFirst = row.which === "all" && REPEATED.has(s.name) && s.afterFirst
        ? row.snap.hash === s.afterFirst.hash : null;
      const hashCell = h("td", { dataset: { col: "hash" } }, h("code", {}, shortHash(row.snap.hash)));
      if (sameAsFirst !== null) {
        hashCell.append(" ", h("span", { class: `chip cat-${sameAsFirst ? "acked" : "error"}` },
          swatch(sameAsFirst ? "acked" : "error"),
          sameAsFirst ? `same as after ×1` : `differs from after ×1`));
      }
      const delta = row.delta ? ` (${row.delta > 0 ? "+" : ""}${row.delta})` : "";
      return h("tr", { dataset: { step: s.name, row: row.which } },
        h("th", { scope: "row" }, `${STEP_NAMES[s.name] || s.name}: `, h("span", { class: "mono" }, row.text)),
        h("td", { class: "num" }, row.n),
        h("td", { dataset: { col: "changed" } }, `${row.changed} of ${row.n}${row.failed ? ` (${row.failed} failed)` : ""}`),
        h("td", { class: "num", dataset: { col: "persons" } }, `${row.snap.persons}${delta}`),
        hashCell,
        h("td", {}, row.which === "first" ? "" : resultText(s)));
    }));
    const inspect = this.state.steps.get(INSPECT);
    this.inspectNote.textContent = inspect && inspect.handled
      ? `Between the steps the workflow read the whole state with ${inspect.method} ${inspect.path} ` +
        `(${inspect.handled} request${inspect.handled === 1 ? "" : "s"}; ${inspect.changed} changed anything: reads are safe).`
      : "";
    this.renderVerdicts();
  },

  renderVerdicts() {
    const put = this.state.steps.get("repeat-put");
    const post = this.state.steps.get("repeat-post");
    const parts = [];
    if (put && put.after) {
      const v = putVerdict(put);
      parts.push(this.verdict("put", v.idempotent, this.complete("repeat-put"), v.headline, v.explain, v.category));
    } else {
      parts.push(h("p", { class: "verdict pending", dataset: { verdict: "put" } }, "PUT: waiting for the repeated PUTs…"));
    }
    if (post && post.after) {
      const v = postVerdict(post);
      parts.push(this.verdict("post", v.idempotent, this.complete("repeat-post"), v.headline, v.explain, v.category));
    } else {
      parts.push(h("p", { class: "verdict pending", dataset: { verdict: "post" } }, "POST: waiting for the repeated POSTs…"));
    }
    this.verdicts.replaceChildren(...parts);
    const result = this.state.result;
    this.check.textContent = result && result.put && result.post
      ? `The workflow's own check, from the server's real state: PUT ${result.put.verdict || `idempotent = ${result.put.idempotent}`}; ` +
        `POST created ${result.post.created} (persons ${result.post.persons_before} → ${result.post.persons_after}).`
      : "";
  },

  /** idempotent: true, false, or null when the successful requests cannot tell. */
  verdict(name, idempotent, complete, headline, explanation, category) {
    return verdict({ category, key: name, className: complete ? "" : "in-progress",
      headline: [" ", complete ? headline : `so far: ${headline}`], explain: explanation,
      data: { idempotent: idempotent === null ? "unknown" : String(idempotent), complete: String(complete) } });
  },
};

export default panel;
