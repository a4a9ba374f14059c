/* grpc-person panel: the contract, every call against it, and one call decoded.

   - The .proto (from the workflow contract, or the run's result) is shown as agreed in
     advance; the messages a selected call used are highlighted in it.
   - A call chart: one row per call, the client's wait as a bar from its request to its
     response (coloured by status code, with method, code and latency as text), the
     server's work as a thinner bar beneath, and the client's deadline as a line. When the
     delay exceeds the deadline the client bar stops at the line while the server bar runs
     past it: the server finished for a client that had already given up.
   - Clicking a call (here or its row in the event log) decodes its request and response
     wire bytes against the .proto, field by field, and checks them against what the
     client decoded. */
import { fmtMs, h, onActivate } from "../dom.js";
import { info, swatch } from "../legend.js";
import { entry, keepSelection, lessonLine, placeActors, renderSoon } from "./kit.js";

const SHOWN_CALLS = 40;
const SCALARS = new Set(["int32", "int64", "uint32", "uint64", "sint32", "sint64", "bool", "string", "bytes",
  "double", "float", "fixed32", "fixed64", "sfixed32", "sfixed64"]);

// -- the contract -----------------------------------------------------------------------

/** Messages and rpcs of a flat proto3 file: {messages: {Name: [{name, type, number}]}, rpcs: {M: {input, output}}}. */
function parseProto(text) {
  const messages = {};
  const rpcs = {};
  const source = String(text || "").replace(/\/\/[^\n]*/g, "");
  for (const m of source.matchAll(/message\s+(\w+)\s*\{([^}]*)\}/g)) {
    messages[m[1]] = [...m[2].matchAll(/(?:repeated\s+)?([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;/g)]
      .map((f) => ({ type: f[1], name: f[2], number: Number(f[3]) }));
  }
  for (const r of source.matchAll(/rpc\s+(\w+)\s*\(\s*([\w.]+)\s*\)\s*returns\s*\(\s*([\w.]+)\s*\)/g)) {
    rpcs[r[1]] = { input: r[2], output: r[3] };
  }
  return { messages, rpcs };
}

function hexBytes(hex) {
  const out = new Uint8Array((hex || "").length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

/** Decode protobuf wire bytes as message `type` of `schema`: [{number, name, type, wire, value, bytes}]. */
function decodeWire(bytes, type, schema) {
  const fields = schema.messages[type] || [];
  const byNumber = new Map(fields.map((f) => [f.number, f]));
  const out = [];
  let pos = 0;
  const varint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= bytes.length) throw new Error("truncated varint");
      const b = bytes[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return result;
      shift += 7n;
    }
  };
  while (pos < bytes.length) {
    const start = pos;
    const key = Number(varint());
    const number = key >> 3;
    const wire = key & 7;
    const field = byNumber.get(number) || { name: `(unknown ${number})`, type: "?", number };
    let value;
    if (wire === 0) {
      const raw = varint();
      if (field.type === "bool") value = raw !== 0n;
      else if (field.type === "int32") value = Number(BigInt.asIntN(32, raw));
      else if (field.type === "int64") value = Number(BigInt.asIntN(64, raw));
      else value = Number(raw);
    } else if (wire === 2) {
      const length = Number(varint());
      const chunk = bytes.subarray(pos, pos + length);
      pos += length;
      if (field.type === "string") value = new TextDecoder().decode(chunk);
      else if (!SCALARS.has(field.type) && schema.messages[field.type]) value = decodeWire(chunk, field.type, schema);
      else value = Array.from(chunk, (b) => b.toString(16).padStart(2, "0")).join("");
    } else if (wire === 5 || wire === 1) {
      pos += wire === 5 ? 4 : 8;
      value = "(fixed-width value)";
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
    out.push({ ...field, wire, value, bytes: bytes.subarray(start, pos) });
  }
  return out;
}

/** The decoded fields as a plain object, proto3 defaults filled in for absent scalars. */
function asObject(decoded, type, schema) {
  const obj = {};
  for (const f of schema.messages[type] || []) {
    if (SCALARS.has(f.type)) obj[f.name] = f.type === "string" ? "" : f.type === "bool" ? false : 0;
    else obj[f.name] = null;
  }
  for (const f of decoded) obj[f.name] = Array.isArray(f.value) ? asObject(f.value, f.type, schema) : f.value;
  return obj;
}

function sameJSON(a, b) {
  const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === "object" && !Array.isArray(x)
    ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));
  return canon(a) === canon(b);
}

// -- state ------------------------------------------------------------------------------

function freshState() {
  // order: calls by request time; requests, responses, serving: running counts (no rescans per event).
  return { calls: new Map(), order: [], codes: new Map(), late: 0, requests: 0, responses: 0, serving: 0, selected: null };
}

function codeCategory(code) {
  if (!code) return "published";
  return code === "OK" ? "acked" : "error";
}

const panel = {
  title: "gRPC: the contract and every call against it",

  init(root, ctx) {
    this.ctx = ctx;
    this.root = root;
    this.state = freshState();
    this.params = ctx.run.params || {};
    this.proto = (ctx.workflow && ctx.workflow.proto) || "";
    this.schema = parseProto(this.proto);
    root.append(
      lessonLine(
        "client and server agreed on this contract in advance; both sides' code is generated from it. ",
        "The client waits for every call (sync): what it perceives is the whole call. ",
        "When the server takes longer than the client's deadline, the client gives up with DEADLINE_EXCEEDED ",
        "but the server, which cannot know, still finishes the work."),
      (this.verdicts = h("div", { class: "grpc-codes", id: "grpc-codes", "aria-live": "polite" })),
      h("div", { class: "grpc-grid" },
        h("section", { class: "grpc-contract", "aria-labelledby": "grpc-proto-title" },
          h("h3", { id: "grpc-proto-title" }, "Contract · ", h("code", {}, "protos/person.proto")),
          (this.protoEl = h("pre", { class: "grpc-proto", id: "grpc-proto" }))),
        h("section", { class: "grpc-calls", "aria-labelledby": "grpc-calls-title" },
          h("h3", { id: "grpc-calls-title" }, "Calls"),
          (this.scaleNote = h("p", { class: "muted small" })),
          (this.chart = h("ol", { class: "grpc-chart", id: "grpc-calls", "aria-label": "Calls, newest first" })))),
      (this.detail = h("section", { class: "grpc-detail", id: "grpc-call", "aria-live": "polite" },
        h("p", { class: "muted" }, "Click a call above, or its row in the event log, to decode its request and response against the contract."))));
    this.renderProto();
    onActivate(this.chart, "[data-message]", (row) => this.select(row.dataset.message));
    // The generic event log: a click on any event of a call selects that call here too.
    const log = document.querySelector("#event-log tbody");
    if (log) {
      log.addEventListener("click", (event) => {
        const row = event.target.closest("tr[data-seq]");
        if (row && this.state.calls.has(row.dataset.message)) this.select(row.dataset.message);
      });
    }
    this.render();
  },

  reset() {
    this.state = keepSelection(this.state, freshState());
    this.render();
  },

  layout: placeActors({ client: [0, 0], server: [1, 0] }),

  call(id) {
    return entry(this.state.calls, id, () => ({ id, method: "", n: this.state.calls.size + 1 }));
  },

  onEvent(ev, ctx) {
    const a = ev.attrs || {};
    if (!ev.message_id) return;
    const state = this.state;
    if (ev.kind === "request" && ev.actor === "client") {
      const c = this.call(ev.message_id);
      if (c.tRequest === undefined) {
        state.order.push(c);
        state.requests += 1;
      }
      Object.assign(c, {
        method: a.method, request: a.request, requestHex: a.request_hex, deadline: a.deadline_ms,
        unknownId: a.unknown_id, tRequest: ev.t_ms,
      });
    } else if (ev.kind === "deliver" && ev.actor === "server") {
      this.call(ev.message_id).tDeliver = ev.t_ms;
      state.serving += 1;
    } else if (ev.kind === "process" && ev.actor === "server") {
      Object.assign(this.call(ev.message_id), {
        tProcess: ev.t_ms, serverCode: a.code, clientGone: Boolean(a.client_gone), serverMs: a.server_ms,
      });
      state.serving = Math.max(0, state.serving - 1);
      if (a.client_gone) state.late += 1;
    } else if (ev.kind === "response" && ev.actor === "client") {
      const c = this.call(ev.message_id);
      Object.assign(c, {
        tResponse: ev.t_ms, code: a.code, details: a.details, ms: a.perceived_ms,
        response: a.response, responseHex: a.response_hex,
      });
      state.responses += 1;
      state.codes.set(a.code, (state.codes.get(a.code) || 0) + 1);
      ctx.topology.setNote("client", `${a.code} · ${fmtMs(a.perceived_ms)}`);
    } else {
      return;
    }
    ctx.topology.setNote("server", `busy ${state.serving} · late finishes ${state.late}`);
    renderSoon(this);
  },

  onSummary(summary) {
    if (!this.proto && summary.result && summary.result.proto) {
      this.proto = summary.result.proto;
      this.schema = parseProto(this.proto);
      this.renderProto();
    }
  },

  select(id) {
    this.state.selected = id;
    this.render();
    const row = this.chart.querySelector(`[data-message="${CSS.escape(id)}"]`);
    if (row) row.scrollIntoView({ block: "nearest" });
  },

  // -- rendering ------------------------------------------------------------------------

  renderProto() {
    const c = this.state && this.state.calls.get(this.state.selected);
    const rpc = c && this.schema.rpcs[c.method];
    const used = new Set(rpc ? [rpc.input, rpc.output] : []);
    for (const type of [...used]) {
      for (const f of this.schema.messages[type] || []) if (this.schema.messages[f.type]) used.add(f.type);
    }
    let inside = null;
    const lines = (this.proto || "(the contract arrives with the run's result)").split("\n").map((line, i) => {
      const open = line.match(/^\s*message\s+(\w+)/);
      if (open) inside = open[1];
      const hot = (inside && used.has(inside)) || (c && new RegExp(`rpc\\s+${c.method}\\b`).test(line));
      if (/^\s*}/.test(line)) inside = null;
      return h("span", { class: `grpc-line${hot ? " hot" : ""}`, dataset: { line: String(i + 1) } }, line || " ");
    });
    this.protoEl.replaceChildren(...lines);
  },

  render() {
    if (!this.chart) return;
    this.renderCodes();
    this.renderChart();
    this.renderProto();
    this.renderDetail();
  },

  renderCodes() {
    const chips = [...this.state.codes.entries()].sort((x, y) => y[1] - x[1]).map(([code, n]) =>
      h("span", { class: `chip cat-${codeCategory(code)}`, dataset: { code, count: String(n) } },
        swatch(codeCategory(code)), h("strong", {}, code), ` × ${n}`));
    const waiting = this.state.requests - this.state.responses;
    if (waiting) chips.push(h("span", { class: "chip cat-published", dataset: { code: "waiting" } }, swatch("published"), `waiting × ${waiting}`));
    chips.push(h("span", { class: `chip cat-${this.state.late ? "error" : "other"}`, dataset: { late: String(this.state.late) } },
      swatch(this.state.late ? "error" : "other"),
      `${this.state.late} server finish${this.state.late === 1 ? "" : "es"} after the client gave up`));
    this.verdicts.replaceChildren(...chips);
  },

  renderChart() {
    const calls = this.state.order;
    const shown = calls.slice(-SHOWN_CALLS).reverse();
    const deadline = Number(this.params.deadline_ms) || null;
    let longest = 1;
    for (const c of shown) {
      longest = Math.max(longest, c.ms || 0, c.tProcess !== undefined ? c.tProcess - c.tRequest : 0);
    }
    const deadlineShown = deadline && deadline <= longest * 2.5;
    const scale = Math.max(longest, deadlineShown ? deadline : 0) * 1.08;
    const pct = (ms) => `${Math.max(0, Math.min(100, (ms / scale) * 100)).toFixed(2)}%`;
    this.scaleNote.textContent = `Each row is one call: the client's wait (thick bar, from request to response) and the server's work ` +
      `(thin bar). Full width = ${fmtMs(scale)}.` + (deadline ? ` Deadline ${fmtMs(deadline)}${deadlineShown ? " (dashed line)" : ", beyond the right edge"}.` : "") +
      (calls.length > shown.length ? ` Newest ${shown.length} of ${calls.length} shown.` : "");
    this.chart.replaceChildren(...shown.map((c) => {
      const category = codeCategory(c.code);
      const serverStart = c.tDeliver !== undefined ? c.tDeliver - c.tRequest : null;
      const serverEnd = c.tProcess !== undefined ? c.tProcess - c.tRequest : null;
      const label = (c.code ? `${c.code} · ${fmtMs(c.ms)}` : "waiting…") +
        (c.clientGone ? ` · server done at ${fmtMs(serverEnd)} ↻` : "");
      return h("li", {
        class: `grpc-row${c.id === this.state.selected ? " selected" : ""}`,
        tabindex: "0",
        dataset: { message: c.id, code: c.code || "", method: c.method || "" },
        "aria-label": `${c.id} ${c.method} ${label}`,
      },
      h("span", { class: "grpc-row-name" }, h("code", {}, c.id), " ", h("strong", {}, c.method), " ",
        h("span", { class: "muted mono" }, shortRequest(c.request))),
      h("span", { class: "grpc-track" },
        deadlineShown ? h("span", { class: "grpc-deadline", style: `left:${pct(deadline)}`, title: `deadline ${deadline} ms` }) : null,
        h("span", {
          class: `grpc-bar client cat-${category}${c.code ? "" : " waiting"}`,
          style: `width:${c.code ? pct(c.ms) : "100%"}`,
        }, h("span", { class: "grpc-bar-label" }, info(category).icon, " ", label)),
        serverStart !== null ? h("span", {
          class: `grpc-bar server cat-delivered${serverEnd === null ? " waiting" : ""}${c.clientGone ? " late" : ""}`,
          style: `left:${pct(serverStart)};width:${serverEnd === null ? `calc(100% - ${pct(serverStart)})` : pct(serverEnd - serverStart)}`,
          title: c.clientGone ? "the server finished after the client had given up" : "the server handling the call",
        }) : null));
    }));
  },

  renderDetail() {
    const c = this.state.calls.get(this.state.selected);
    if (!c) return;
    const rpc = this.schema.rpcs[c.method] || {};
    const status = c.code ? `${c.code}${c.details ? ` (“${c.details}”)` : ""} after ${fmtMs(c.ms)}` : "no response yet";
    const server = c.tProcess === undefined ? "the server has not finished"
      : `the server answered ${c.serverCode} after ${fmtMs(c.serverMs)}${c.clientGone ? ", after the client had already given up" : ""}`;
    this.detail.replaceChildren(
      h("h3", {}, "Call ", h("code", {}, c.id), `: rpc ${c.method}(${rpc.input || "?"}) returns (${rpc.output || "?"})`),
      h("p", { dataset: { status: c.code || "" } }, h("span", { class: `chip cat-${codeCategory(c.code)}` },
        swatch(codeCategory(c.code)), status), ` · deadline ${c.deadline} ms · ${server}.`),
      h("div", { class: "grpc-messages" },
        this.messageBox("Request", rpc.input, c.requestHex, c.request, "sent by the client"),
        c.code === "OK"
          ? this.messageBox("Response", rpc.output, c.responseHex, c.response, "received by the client")
          : h("div", { class: "grpc-message", dataset: { part: "response" } },
            h("h4", {}, "Response"),
            h("p", {}, c.code ? `No ${rpc.output || "response"} message: the call ended with status ${c.code}. ` +
              "In gRPC the status travels in the trailers, not in the response message." : "waiting…"))));
  },

  messageBox(title, type, hex, recorded, who) {
    const box = h("div", { class: "grpc-message", dataset: { part: title.toLowerCase() } },
      h("h4", {}, `${title}: `, h("code", {}, type || "?"), h("span", { class: "muted small" }, ` ${who}`)));
    if (hex === undefined || hex === null) {
      box.append(h("p", { class: "muted" }, "not recorded"));
      return box;
    }
    let decoded;
    try {
      decoded = decodeWire(hexBytes(hex), type, this.schema);
    } catch (err) {
      box.append(h("p", { class: "form-error" }, `✗ could not decode the wire bytes: ${err.message}`));
      return box;
    }
    const rows = [];
    const addRows = (fields, depth) => {
      for (const f of fields) {
        const nested = Array.isArray(f.value);
        rows.push(h("tr", { dataset: { field: f.name } },
          h("td", { class: "num" }, String(f.number)),
          h("td", {}, `${" ".repeat(depth * 2)}${f.name}`),
          h("td", { class: "mono" }, f.type),
          h("td", { class: "mono" }, nested ? `{ ${f.value.length} field${f.value.length === 1 ? "" : "s"} }` : JSON.stringify(f.value)),
          h("td", { class: "mono small" }, Array.from(f.bytes.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join(" ") +
            (f.bytes.length > 24 ? " …" : ""))));
        if (nested) addRows(f.value, depth + 1);
      }
    };
    addRows(decoded, 0);
    const agrees = sameJSON(asObject(decoded, type, this.schema), recorded);
    box.append(
      h("table", { class: "grpc-fields" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "field"), h("th", {}, "name"), h("th", {}, "type"),
          h("th", {}, "value"), h("th", {}, "bytes on the wire"))),
        h("tbody", {}, rows.length ? rows : [h("tr", {}, h("td", { colspan: "5", class: "muted" },
          "no bytes: every field has its default value, which proto3 does not send"))])),
      h("p", { class: "small" }, `${hex.length / 2} bytes on the wire: `, h("code", { class: "grpc-hex" }, hex || "(empty)")),
      h("p", { class: `small grpc-agree ${agrees ? "ok" : "bad"}`, dataset: { agrees: String(agrees) } },
        agrees ? "✓ decoding the bytes against the .proto gives exactly what the client recorded"
          : `✗ differs from what the client recorded: ${JSON.stringify(recorded)}`));
    return box;
  },
};

function shortRequest(request) {
  if (!request) return "";
  if (request.person) return `{person: ${request.person.name}, ${request.person.age}}`;
  return JSON.stringify(request).replace(/"/g, "");
}


export default panel;
// For tests: the contract parser and the wire decoder (hex in, fields out).
export { parseProto };
export const decodeWireHex = (hex, type, schema) => decodeWire(hexBytes(hex), type, schema);
