/* Row editors for the JSON parameters a workflow edits as a table: AMQP bindings and MQTT
   subscribers (a param's contract names its `editor`).

   The JSON textarea stays the parameter's one value (what the form submits, as before) and
   stays visible below the rows as "the same, as JSON": the rows write it on every change and
   are rebuilt from it when it is edited. An empty AMQP binding list means the example for
   the chosen exchange type (flows/amqp/spec.py PRESETS, sent as the param's `examples`): the
   rows show that example before Start, marked as such, and editing them makes them the value.

   Pure part (tests/param-editor.test.mjs): the shapes: columns, rows ↔ value, and the checks
   the server makes (flows/amqp/spec.py, flows/mqtt/spec.py), as the user types. */
import { h } from "./dom.js";

const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/;
const KEY_CHARS = /^[A-Za-z0-9_.*#-]{0,100}$/;
const SUBSCRIBER_NAME = /^[A-Za-z0-9_-]{1,12}$/;
const MAX_BINDINGS = 12;
const MAX_QUEUES = 6;
const MAX_HEADERS = 8;
const MAX_SUBSCRIBERS = 8;

/** "type=order, region=eu" → {pairs: {type: "order", region: "eu"}, error: ""}. */
export function parsePairs(text) {
  const pairs = {};
  const parts = String(text || "").split(",").map((p) => p.trim()).filter(Boolean);
  for (const part of parts) {
    const at = part.indexOf("=");
    if (at < 1) return { pairs, error: `"${part}" is not name=value` };
    const name = part.slice(0, at).trim();
    if (Object.hasOwn(pairs, name)) return { pairs, error: `header ${name} is given twice` };
    pairs[name] = part.slice(at + 1).trim();
  }
  if (Object.keys(pairs).length > MAX_HEADERS) return { pairs, error: `at most ${MAX_HEADERS} headers` };
  return { pairs, error: "" };
}

/** {type: "order", region: "eu"} → "type=order, region=eu". */
export function formatPairs(headers) {
  return Object.entries(headers || {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

/** A subscription filter's problem (MQTT 3.1.1 §4.7, as flows/mqtt/topic_match.check_filter), or "". */
export function filterProblem(filter) {
  if (!filter) return "a filter is needed";
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i += 1) {
    if (levels[i].includes("#") && (levels[i] !== "#" || i !== levels.length - 1)) return "# must be the whole last level";
    if (levels[i].includes("+") && levels[i] !== "+") return "+ must be a whole level";
  }
  return filter.includes("\u0000") ? "a filter cannot contain NUL" : "";
}

const isHeaders = (ctx) => ctx.exchange_type === "headers";

/**
 * Each shape: columns(ctx) [{name, label, kind: text|select|check, options, placeholder}],
 * toRows(value, ctx) and toValue(rows, ctx), blank(rows, ctx) a new row, and check(rows, ctx)
 * → {cells: [{column: message}] per row, table: message or ""}.
 */
export const SHAPES = {
  "amqp-bindings": {
    noun: "binding",
    columns(ctx) {
      const queue = { name: "queue", label: "queue", kind: "text", placeholder: "billing" };
      if (isHeaders(ctx)) {
        return [queue, { name: "x_match", label: "x-match", kind: "select", options: ["all", "any"] },
          { name: "headers", label: "headers (name=value, …)", kind: "text", placeholder: "type=order, region=eu" }];
      }
      const placeholder = { direct: "order.created", topic: "order.*.eu or order.#", fanout: "(fanout ignores keys)" }[ctx.exchange_type] || "";
      return [queue, { name: "key", label: "binding key", kind: "text", placeholder }];
    },
    toRows(value, ctx) {
      return value.map((b) => (isHeaders(ctx)
        ? { queue: String(b.queue ?? ""), x_match: b.x_match === "any" ? "any" : "all", headers: formatPairs(b.headers) }
        : { queue: String(b.queue ?? ""), key: String(b.key ?? "") }));
    },
    toValue(rows, ctx) {
      return rows.map((r) => (isHeaders(ctx)
        ? { queue: r.queue, x_match: r.x_match, headers: parsePairs(r.headers).pairs }
        : { queue: r.queue, key: r.key }));
    },
    blank(rows, ctx) {
      return isHeaders(ctx) ? { queue: "", x_match: "all", headers: "" } : { queue: "", key: "" };
    },
    check(rows, ctx) {
      const cells = rows.map((r) => {
        const bad = {};
        if (!QUEUE_NAME.test(r.queue || "")) bad.queue = "1-40 letters, digits, '.', '_' or '-', starting with a letter or digit";
        if (isHeaders(ctx)) {
          const { error } = parsePairs(r.headers);
          if (error) bad.headers = error;
        } else if (!KEY_CHARS.test(r.key || "")) {
          bad.key = "up to 100 letters, digits, '.', '_', '-', '*' or '#'";
        } else if (ctx.exchange_type === "topic" && (r.key || "").split(".").some((w) => /[*#]/.test(w) && w.length > 1)) {
          bad.key = "in a topic key * and # stand for whole words (between dots)";
        }
        return bad;
      });
      let table = "";
      if (rows.length > MAX_BINDINGS) table = `at most ${MAX_BINDINGS} bindings`;
      else if (new Set(rows.map((r) => r.queue)).size > MAX_QUEUES) table = `at most ${MAX_QUEUES} distinct queues`;
      return { cells, table };
    },
  },
  "mqtt-subscribers": {
    noun: "subscriber",
    columns() {
      return [
        { name: "name", label: "subscriber", kind: "text", placeholder: "s1" },
        { name: "filter", label: "filter (+ one level, # the rest)", kind: "text", placeholder: "home/+/temp" },
        { name: "qos", label: "QoS", kind: "select", options: ["0", "1", "2"] },
        { name: "clean_session", label: "clean session", kind: "check" },
        { name: "late", label: "late", kind: "check" },
      ];
    },
    toRows(value) {
      return value.map((s, i) => ({ name: String(s.name ?? `s${i + 1}`), filter: String(s.filter ?? ""), qos: String(s.qos ?? 0),
        clean_session: s.clean_session ?? true, late: Boolean(s.late) }));
    },
    toValue(rows) {
      return rows.map((r) => ({ name: r.name, filter: r.filter, qos: Number(r.qos), clean_session: Boolean(r.clean_session),
        late: Boolean(r.late) }));
    },
    blank(rows) {
      const names = new Set(rows.map((r) => r.name));
      let n = rows.length + 1;
      while (names.has(`s${n}`)) n += 1;
      return { name: `s${n}`, filter: "", qos: "1", clean_session: true, late: false };
    },
    check(rows) {
      const seen = new Set();
      const cells = rows.map((r) => {
        const bad = {};
        if (!SUBSCRIBER_NAME.test(r.name || "")) bad.name = "1-12 letters, digits, - or _";
        else if (seen.has(r.name)) bad.name = `${r.name} is used twice`;
        seen.add(r.name);
        const problem = filterProblem(r.filter || "");
        if (problem) bad.filter = problem;
        return bad;
      });
      const table = !rows.length ? "at least one subscriber"
        : rows.length > MAX_SUBSCRIBERS ? `at most ${MAX_SUBSCRIBERS} subscribers` : "";
      return { cells, table };
    },
  },
};

/** The rows a JSON text stands for: {rows, example: true when it is the empty list standing for the example} or {error}. */
export function rowsFromText(shape, text, ctx, example) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: "the JSON below does not parse: fix it there, or use the example" };
  }
  if (!Array.isArray(value)) return { error: "the JSON below is not a list" };
  if (!value.length && example) return { rows: shape.toRows(example, ctx), example: true };
  if (value.some((item) => !item || typeof item !== "object" || Array.isArray(item))) return { error: "each entry of the JSON list must be an object" };
  return { rows: shape.toRows(value, ctx), example: false };
}

/** The messages of a check, one line each ("binding 2, key: …"). */
export function problems(shape, result) {
  const lines = [];
  result.cells.forEach((bad, i) => {
    for (const [column, message] of Object.entries(bad)) lines.push(`${shape.noun} ${i + 1}, ${column}: ${message}`);
  });
  if (result.table) lines.push(result.table);
  return lines;
}

// -- the editor ---------------------------------------------------------------------------

class RowEditor {
  /**
   * textarea: the param's JSON control (kept, and kept in sync); shape: a SHAPES entry;
   * context(): {name: value} of the params the shape depends on; example(ctx): the rows an
   * empty value stands for, or null; label: the param's label.
   */
  constructor(textarea, shape, { context, example = () => null, label }) {
    this.textarea = textarea;
    this.shape = shape;
    this.context = context;
    this.example = example;
    this.rows = [];
    this.mode = "custom";
    const id = `${textarea.id}-rows`;
    this.table = h("table", { class: "row-editor-table", id, "aria-label": `${label}, one row each` });
    this.note = h("p", { class: "row-editor-note muted", role: "status" });
    this.errors = h("ul", { class: "row-editor-errors", "aria-live": "polite" });
    this.add = h("button", { type: "button", class: "row-add", dataset: { rowAdd: "" } }, `+ Add ${shape.noun}`);
    this.useExample = h("button", { type: "button", class: "row-example", dataset: { rowExample: "" }, hidden: true }, "↺ Use the example");
    this.root = h("div", { class: "row-editor", dataset: { editor: "" } },
      this.note, h("div", { class: "table-wrap" }, this.table), h("div", { class: "row-editor-buttons" }, this.add, this.useExample),
      this.errors, h("p", { class: "json-label muted small" }, "The same, as JSON (edit either):"));
    textarea.before(this.root);
    textarea.classList.add("row-editor-json");
    textarea.addEventListener("input", () => this.fromText());
    this.add.addEventListener("click", () => this.addRow());
    this.useExample.addEventListener("click", () => {
      this.setText("[]");
      this.fromText();
    });
    this.table.addEventListener("input", (event) => this.edited(event.target));
    this.table.addEventListener("change", (event) => this.edited(event.target));
    this.table.addEventListener("click", (event) => {
      const remove = event.target.closest("[data-row-remove]");
      if (remove) this.removeRow(Number(remove.dataset.rowRemove));
    });
    this.fromText();
  }

  /** Rebuild the rows from the JSON (typed there, filled by the form, or the context changed). */
  fromText() {
    const ctx = this.context();
    this.ctx = ctx;
    const parsed = rowsFromText(this.shape, this.textarea.value, ctx, this.example(ctx));
    this.root.dataset.mode = parsed.error ? "invalid-json" : parsed.example ? "example" : "custom";
    this.add.disabled = Boolean(parsed.error);
    this.useExample.hidden = !this.example(ctx) || Boolean(parsed.example);
    if (parsed.error) {
      this.note.textContent = `✗ ${parsed.error}.`;
      this.rows = [];
      this.table.replaceChildren();
      this.errors.replaceChildren();
      return;
    }
    this.rows = parsed.rows;
    this.mode = parsed.example ? "example" : "custom";
    this.note.textContent = parsed.example
      ? `Empty means the example for a ${Object.values(ctx).join(" ")} exchange, shown here: edit or add a row to make it your own.`
      : "";
    this.render();
  }

  /** A param the rows depend on changed (the exchange type): the example follows; own rows keep their queues in the new shape. */
  contextChanged() {
    const custom = this.mode === "custom" && this.root.dataset.mode !== "invalid-json";
    this.fromText();
    if (custom) this.toText();
  }

  setText(text) {
    this.textarea.value = text;
  }

  /** The rows are the value now: write them into the JSON. */
  toText() {
    if (this.mode === "example") {
      this.mode = "custom";
      this.root.dataset.mode = "custom";
      this.note.textContent = "";
      this.useExample.hidden = !this.example(this.ctx);
    }
    this.setText(JSON.stringify(this.shape.toValue(this.rows, this.ctx), null, 2));
    this.check();
  }

  edited(input) {
    const cell = input.closest("[data-column]");
    if (!cell) return;
    const row = this.rows[Number(cell.closest("tr").dataset.row)];
    row[cell.dataset.column] = input.type === "checkbox" ? input.checked : input.value;
    this.toText();
  }

  addRow() {
    this.rows.push(this.shape.blank(this.rows, this.ctx));
    this.toText();
    this.render();
    const first = this.table.querySelector(`tr[data-row="${this.rows.length - 1}"] input, tr[data-row="${this.rows.length - 1}"] select`);
    if (first) first.focus();
  }

  removeRow(index) {
    this.rows.splice(index, 1);
    this.toText();
    if (!this.rows.length && this.example(this.ctx)) this.fromText(); // empty is the example again
    else this.render();
    const next = this.table.querySelector(`tr[data-row="${Math.min(index, this.rows.length - 1)}"] [data-row-remove]`);
    (next || this.add).focus();
  }

  render() {
    const columns = this.shape.columns(this.ctx);
    this.table.replaceChildren(
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), ...columns.map((c) => h("th", {}, c.label)), h("th", {}, h("span", { class: "sr-only" }, "remove")))),
      h("tbody", {}, ...this.rows.map((row, i) => h("tr", { dataset: { row: String(i) } },
        h("td", { class: "num" }, String(i + 1)),
        ...columns.map((c) => h("td", { dataset: { column: c.name } }, this.input(c, row, i))),
        h("td", {}, h("button", { type: "button", class: "row-remove", dataset: { rowRemove: String(i) },
          "aria-label": `Remove ${this.shape.noun} ${i + 1}` }, "✕"))))));
    this.check();
  }

  input(column, row, i) {
    const label = `${this.shape.noun} ${i + 1} ${column.label}`;
    if (column.kind === "select") {
      return h("select", { "aria-label": label }, ...column.options.map((o) => h("option", { value: o, selected: String(row[column.name]) === o }, o)));
    }
    if (column.kind === "check") return h("input", { type: "checkbox", "aria-label": label, checked: Boolean(row[column.name]) });
    return h("input", { type: "text", "aria-label": label, value: row[column.name] ?? "", placeholder: column.placeholder || "",
      spellcheck: "false", autocomplete: "off" });
  }

  /** Mark the cells the server would refuse, and say why, as the user types. */
  check() {
    const result = this.shape.check(this.rows, this.ctx);
    for (const tr of this.table.querySelectorAll("tbody tr")) {
      const bad = result.cells[Number(tr.dataset.row)] || {};
      for (const cell of tr.querySelectorAll("[data-column]")) {
        const control = cell.querySelector("input, select");
        const message = bad[cell.dataset.column];
        cell.classList.toggle("invalid", Boolean(message));
        if (message) control.setAttribute("aria-invalid", "true");
        else control.removeAttribute("aria-invalid");
        control.title = message || "";
      }
    }
    const lines = problems(this.shape, result);
    this.root.dataset.valid = String(!lines.length);
    this.errors.replaceChildren(...lines.map((line) => h("li", {}, `✗ ${line}`)));
  }
}

export { RowEditor };
