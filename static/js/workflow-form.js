/* The workflow page: a form generated from the workflow's parameter contract. Start posts
   JSON to /api/runs/; a 400 puts each field's message next to the field; 201 opens the run.
   A JSON param whose contract names an `editor` (AMQP bindings, MQTT subscribers) gets a
   row editor over its textarea (param-editor.js); the textarea stays what is submitted.
   A `multi` param (a subset of its choices) is a group of checkboxes (multi-choice.js). */
import { api } from "./api.js";
import { h } from "./dom.js";
import "./health.js";
import { fillMulti, multiBounds, multiBoxes, multiControl, multiValue } from "./multi-choice.js";
import { RowEditor, SHAPES } from "./param-editor.js";

function labelFor(name, param) {
  if (param.label) return param.label;
  return name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function boundsText(param) {
  if (param.type === "multi") return multiBounds(param);
  const parts = [];
  if (param.min != null && param.max != null) parts.push(`from ${param.min} to ${param.max}`);
  else if (param.min != null) parts.push(`at least ${param.min}`);
  else if (param.max != null) parts.push(`at most ${param.max}`);
  const shown = param.type === "json" ? JSON.stringify(param.default) : String(param.default);
  parts.push(`default ${shown}`);
  return parts.join(" · ");
}

function control(name, param) {
  const id = `param-${name}`;
  const common = { id, name, "aria-describedby": `${id}-help ${id}-error` };
  switch (param.type) {
    case "bool":
      return h("input", { ...common, type: "checkbox", checked: Boolean(param.default) });
    case "multi":
      return multiControl(name, param, { labelId: `${id}-label`, describedBy: common["aria-describedby"] });
    case "choice":
      return h("select", common, ...(param.choices || []).map((choice, i) =>
        h("option", { value: String(i), selected: choice === param.default }, String(choice))));
    case "json":
      return h("textarea", { ...common, rows: 5, spellcheck: "false" }, JSON.stringify(param.default, null, 2));
    case "int":
    case "float":
      return h("input", {
        ...common, type: "number", inputmode: param.type === "int" ? "numeric" : "decimal",
        step: param.type === "int" ? "1" : "any", min: param.min ?? null, max: param.max ?? null,
        value: String(param.default),
      });
    default:
      return h("input", { ...common, type: "text", value: String(param.default ?? "") });
  }
}

function field(name, param) {
  const id = `param-${name}`;
  return h("div", { class: `field${param.type === "json" ? " wide" : ""}`, dataset: { param: name, type: param.type } },
    // A group of checkboxes is named by its label through aria-labelledby, not `for`.
    h("label", { for: param.type === "multi" ? null : id, id: `${id}-label` }, labelFor(name, param)),
    h("div", { class: "control" }, control(name, param), param.type === "bool" ? h("span", {}, "on") : null),
    h("div", { class: "help", id: `${id}-help` }, param.help || ""),
    h("div", { class: "bounds" }, boundsText(param)),
    h("div", { class: "error", id: `${id}-error`, dataset: { errorFor: name }, role: "alert" }));
}

/** The value to send: typed when it parses, the raw text otherwise so the server explains. */
function valueOf(form, name, param) {
  const el = form.elements[name];
  switch (param.type) {
    case "bool":
      return el.checked;
    case "multi":
      return multiValue(multiBoxes(form, name).filter((box) => box.checked).map((box) => box.value), param.choices || []);
    case "choice":
      return (param.choices || [])[Number(el.value)];
    case "json":
      try { return JSON.parse(el.value); } catch (e) { return el.value; }
    case "int":
    case "float": {
      const text = el.value.trim();
      const number = Number(text);
      return text !== "" && Number.isFinite(number) ? number : text;
    }
    default:
      return el.value;
  }
}

/** Put `values[name]` (the default where a name is missing) into each field of the form. */
function fill(form, params, values = {}) {
  for (const [name, param] of Object.entries(params)) {
    const el = form.elements[name];
    const value = Object.hasOwn(values, name) ? values[name] : param.default;
    if (param.type === "bool") el.checked = Boolean(value);
    else if (param.type === "multi") fillMulti(form, name, param, value);
    else if (param.type === "choice") el.value = String(Math.max(0, (param.choices || []).indexOf(value)));
    else if (param.type === "json") {
      el.value = JSON.stringify(value, null, 2);
      el.dispatchEvent(new Event("input")); // its row editor, if it has one, follows
    } else el.value = String(value ?? "");
  }
}

/** Row editors for the params whose contract names one; they follow the params they depend on. */
function rowEditors(form, params) {
  for (const [name, param] of Object.entries(params)) {
    const shape = param.type === "json" && SHAPES[param.editor];
    if (!shape) continue;
    const by = param.examples ? param.examples.by : null;
    const editor = new RowEditor(form.elements[name], shape, {
      label: labelFor(name, param),
      context: () => (by && params[by] ? { [by]: valueOf(form, by, params[by]) } : {}),
      example: (ctx) => (by ? param.examples.values[ctx[by]] || null : null),
    });
    if (by && form.elements[by]) form.elements[by].addEventListener("change", () => editor.contextChanged());
  }
}

function resetTo(form, params) {
  fill(form, params);
}

/** "Edit and run again" (?from=<run id>): the form starts from that run's parameters. */
async function fillFromRun(form, contract) {
  const from = new URLSearchParams(window.location.search).get("from");
  if (!from) return;
  const note = h("p", { class: "prefill-note", id: "prefill-note", role: "status" }, `Loading run #${from}…`);
  form.prepend(note);
  if (!/^\d+$/.test(from)) {
    note.textContent = `✗ "${from}" is not a run id; the form shows the defaults.`;
    return;
  }
  try {
    const { status, data } = await api.run(from);
    if (status !== 200) {
      note.textContent = `✗ Run #${from} was not found (HTTP ${status}); the form shows the defaults.`;
    } else if (data.workflow !== contract.slug) {
      note.textContent = `✗ Run #${from} is a ${data.workflow} run, not ${contract.slug}; the form shows the defaults.`;
    } else {
      fill(form, contract.params || {}, data.params || {});
      note.dataset.from = from;
      note.replaceChildren("Filled with the parameters of ", h("a", { href: `/runs/${from}/` }, `run #${from}`),
        ": change what you want and start it again.");
    }
  } catch (e) {
    note.textContent = "✗ The dashboard server is not reachable; the form shows the defaults.";
  }
}

function clearErrors(form) {
  for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
  for (const el of form.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
  document.getElementById("form-error").textContent = "";
}

function showErrors(form, errors) {
  const general = [];
  for (const [name, message] of Object.entries(errors || {})) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) {
      slot.textContent = `✗ ${message}`;
      slot.closest(".field").classList.add("invalid");
    } else {
      general.push(`${name}: ${message}`);
    }
  }
  document.getElementById("form-error").textContent = general.length ? `✗ ${general.join("; ")}` : "";
  const first = form.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea");
  if (first) first.focus();
}

async function submit(form, contract) {
  clearErrors(form);
  const start = document.getElementById("start");
  start.disabled = true;
  const params = {};
  for (const [name, param] of Object.entries(contract.params)) params[name] = valueOf(form, name, param);
  try {
    const { status, data } = await api.startRun(contract.slug, params);
    if (status === 201) {
      window.location.assign(data.page || `/runs/${data.id}/`);
      return;
    }
    showErrors(form, (data && data.errors) || { server: `HTTP ${status}` });
  } catch (e) {
    showErrors(form, { server: "the dashboard server is not reachable" });
  }
  start.disabled = false;
}

/** What the configured broker gets wrong for this lesson: said next to Start, before it is pressed. */
function caveatsBox(contract) {
  const caveats = contract.caveats || [];
  if (!caveats.length) return null;
  return h("section", { class: "caveats field wide", id: "workflow-caveats", role: "note",
    "aria-labelledby": "caveats-title" },
    h("h2", { id: "caveats-title" }, "⚠ Before you start: where the broker here falls short"),
    h("ul", {}, ...caveats.map((text) => h("li", {}, text))),
    contract.protocol === "mqtt"
      ? h("p", { class: "muted" }, "No mosquitto binary was found, so embedded MQTT runs on amqtt. Install Mosquitto ",
        "(Debian/Ubuntu ", h("code", {}, "apt install mosquitto"), ", macOS ", h("code", {}, "brew install mosquitto"),
        ") and restart the dashboard to see what MQTT 3.1.1 says.")
      : null);
}

function start() {
  const form = document.getElementById("workflow-form");
  const contract = JSON.parse(document.getElementById("workflow-contract").textContent);
  const actions = form.querySelector(".form-actions");
  const caveats = caveatsBox(contract);
  if (caveats) form.insertBefore(caveats, actions);
  const before = caveats || actions;
  for (const [name, param] of Object.entries(contract.params || {})) form.insertBefore(field(name, param), before);
  rowEditors(form, contract.params || {});
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form, contract);
  });
  document.getElementById("reset-defaults").addEventListener("click", () => {
    resetTo(form, contract.params || {});
    clearErrors(form);
  });
  fillFromRun(form, contract);
}

start();
