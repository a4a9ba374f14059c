/* Driving an interactive run by hand: the Publish bar under the topology, a compact form per
   other hands-on action (bind, add a consumer, slow, crash…) and Finish.

   Every control is built from the actions' contract (`actions`: name → {label, target,
   picks, hands_on, params}), the same way the start form is built from a workflow's params:
   first from the workflow's contract in the page's boot data, then from the run's own menu
   (GET /api/runs/<id>/actions/, which LiveActions asks for) — it also gives the targets
   each action applies to now and may leave out params this run does not use. The server
   answers each request with what really happened (202 `result`) or why not (400 `errors`
   by field); the answer is shown next to the form, the field it names marked. */
import { h } from "./dom.js";
import { answerText, targetOptions } from "./live-actions.js";

export const PUBLISH = "publish";
export const FINISH = "finish";
export const REMEMBERED = 10;

/** One param as a form field: which input it needs and what to say about it. */
export function fieldModel(name, param) {
  const p = param || {};
  const input = p.type === "bool" ? "checkbox" : p.type === "choice" ? "select"
    : p.type === "int" || p.type === "float" ? "number" : p.type === "json" ? "json" : "text";
  return { name, label: p.label || name.replace(/_/g, " "), input, help: p.help || "", default: p.default,
    min: p.min ?? null, max: p.max ?? null, choices: p.choices || null, step: p.type === "float" ? "any" : "1" };
}

/** The controls an actions mapping asks for: the publish bar, the other forms, a Finish button. */
export function controlsModel(actions) {
  const hands = Object.entries(actions || {}).filter(([, spec]) => spec && spec.hands_on);
  const form = ([name, spec]) => ({ name, label: spec.label || name, target: spec.target || null,
    picks: Boolean(spec.picks), fields: Object.entries(spec.params || {}).map(([key, p]) => fieldModel(key, p)) });
  const publish = hands.find(([name]) => name === PUBLISH);
  return {
    publish: publish ? form(publish) : null,
    forms: hands.filter(([name]) => name !== PUBLISH && name !== FINISH).map(form),
    finish: hands.some(([name]) => name === FINISH),
  };
}

/** A model's shape (action → its field names), to rebuild the forms only when it changes. */
export function shapeOf(model) {
  const forms = [model.publish, ...model.forms].filter(Boolean);
  return JSON.stringify(forms.map((f) => [f.name, f.target, f.fields.map((x) => [x.name, x.input, x.choices])]));
}

/** What the inputs hold, typed for the API: {params, errors}. Empty optional fields are left
    out (the server fills in the default); JSON that does not parse is an error by field. */
export function paramsFrom(fields, values) {
  const params = {};
  const errors = {};
  for (const field of fields) {
    const raw = values[field.name];
    if (field.input === "checkbox") {
      params[field.name] = Boolean(raw);
    } else if (raw === undefined || raw === "") {
      continue;
    } else if (field.input === "number") {
      params[field.name] = Number(raw);
    } else if (field.input === "json") {
      try {
        params[field.name] = JSON.parse(raw);
      } catch (e) {
        errors[field.name] = "is not valid JSON";
      }
    } else {
      params[field.name] = raw;
    }
  }
  return { params, errors };
}

/** The remembered keys after using `key`: newest first, no repeats, at most `max`. */
export function remember(list, key, max = REMEMBERED) {
  if (typeof key !== "string" || !key.trim()) return list.slice(0, max);
  return [key, ...list.filter((k) => k !== key)].slice(0, max);
}

export function storageKey(workflow) {
  return `flows.hands-on.keys.${workflow}`;
}

/** The remembered keys as stored; whatever is not a list of strings counts as none. */
export function recalled(raw) {
  try {
    const list = JSON.parse(raw || "[]");
    return Array.isArray(list) ? list.filter((k) => typeof k === "string").slice(0, REMEMBERED) : [];
  } catch (e) {
    return [];
  }
}

/** The field a refusal names first among the form's, to mark and focus it. */
export function blamedField(fields, data) {
  const errors = (data && data.errors) || {};
  return (fields.find((f) => f.name in errors) || {}).name || null;
}

/** The value a remembered entry is kept under: the first field of the publish bar. */
function keyField(model) {
  return model.publish && model.publish.fields.length ? model.publish.fields[0].name : null;
}

/** The browser's localStorage, or null where it is refused (a sandboxed frame, private mode). */
export function browserStorage() {
  try {
    return window.localStorage;
  } catch (e) {
    return null;
  }
}

function capitalised(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

/** A target select's options (live-actions.js decides them); with none it says so, readably. */
function fillTargets(select, entry) {
  const options = targetOptions(entry);
  const none = !options.some((o) => !o.disabled);
  select.replaceChildren(...options.map((o) => h("option", { value: o.value, disabled: !none && Boolean(o.disabled) }, o.label)));
  select.dataset.none = String(none);
  return select;
}

export class HandsOn {
  /** root: the (hidden) container under the topology; actions: the workflow's contract actions. */
  constructor(root, { runId, workflow, actions, api, liveActions, storage }) {
    this.root = root;
    this.runId = runId;
    this.api = api;
    this.liveActions = liveActions;
    this.storage = storage || null;
    this.key = storageKey(workflow);
    this.keys = recalled(this.read());
    this.live = true;
    this.shape = "";
    this.build(controlsModel(actions));
    root.hidden = false;
    liveActions.watch((offered, live) => this.update(offered, live));
  }

  read() {
    try {
      return this.storage ? this.storage.getItem(this.key) : null;
    } catch (e) {
      return null; // storage refused (private mode): nothing remembered
    }
  }

  /** Focus the publish bar's first field: what a user types first after Start. */
  focus() {
    const first = this.root.querySelector(".hands-on-publish input, .hands-on-publish textarea");
    if (first) first.focus();
  }

  update(offered, live) {
    this.live = live;
    if (offered) {
      const model = controlsModel(offered);
      if (shapeOf(model) !== this.shape) this.build(model);
      this.offered = offered;
      for (const select of this.root.querySelectorAll("select[data-hands-on-target]")) {
        const chosen = select.value;
        fillTargets(select, offered[select.dataset.handsOnTarget]);
        if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
      }
    }
    for (const control of this.root.querySelectorAll("input, select, textarea, button")) control.disabled = !live;
    // Nothing to apply to right now (no crashed consumer to restart): that form waits.
    for (const select of this.root.querySelectorAll("select[data-hands-on-target]")) {
      if (select.dataset.none === "true") {
        select.disabled = true;
        select.form.querySelector("button").disabled = true;
      }
    }
    this.root.classList.toggle("ended", !live);
    const title = this.root.querySelector(".hands-on-title");
    if (title) title.textContent = live ? "Drive the run by hand" : "Driven by hand — the run has ended; it replays like any other";
  }

  /** What the user has in the forms now: values, answers and the focused field with its caret. */
  snapshot() {
    const values = new Map();
    for (const control of this.root.querySelectorAll("form [name]")) {
      values.set(`${control.form.dataset.handsOn}/${control.name}`, control.type === "checkbox" ? control.checked : control.value);
    }
    const answers = new Map([...this.root.querySelectorAll("form output")].map((o) => [o.id, [o.textContent, o.dataset.ok]]));
    const active = this.root.contains(document.activeElement) ? document.activeElement : null;
    const focused = active && active.form && active.name
      ? { key: `${active.form.dataset.handsOn}/${active.name}`, start: active.selectionStart, end: active.selectionEnd } : null;
    return { values, answers, focused, hadFocus: Boolean(active) };
  }

  /** Put back what ``snapshot`` saw, where the rebuilt forms have the same field (or answer). */
  restore({ values, answers, focused, hadFocus }) {
    for (const control of this.root.querySelectorAll("form [name]")) {
      const key = `${control.form.dataset.handsOn}/${control.name}`;
      if (!values.has(key)) continue;
      if (control.type === "checkbox") control.checked = values.get(key);
      else if (control.tagName !== "SELECT" || [...control.options].some((o) => o.value === values.get(key))) control.value = values.get(key);
    }
    for (const output of this.root.querySelectorAll("form output")) {
      if (!answers.has(output.id)) continue;
      [output.textContent] = answers.get(output.id);
      if (answers.get(output.id)[1] !== undefined) output.dataset.ok = answers.get(output.id)[1];
    }
    const again = focused && [...this.root.querySelectorAll("form [name]")]
      .find((c) => `${c.form.dataset.handsOn}/${c.name}` === focused.key);
    if (again) {
      again.focus();
      if (typeof again.setSelectionRange === "function" && focused.start !== null) {
        try {
          again.setSelectionRange(focused.start, focused.end);
        } catch (e) {
          /* not a text field */
        }
      }
    } else if (hadFocus) {
      this.focus();
    }
  }

  build(model) {
    const before = this.snapshot();
    this.model = model;
    this.shape = shapeOf(model);
    const parts = [];
    if (model.publish) parts.push(this.publishBar(model.publish));
    if (model.forms.length) {
      parts.push(h("details", { class: "hands-on-more", open: true },
        h("summary", {}, "Change the run: routes, consumers, faults"),
        h("div", { class: "hands-on-forms" }, ...model.forms.map((f) => this.actionForm(f)))));
    }
    if (model.finish) {
      parts.push(h("div", { class: "hands-on-end" },
        h("button", { type: "button", class: "hands-on-finish", "data-hands-on-finish": "", onclick: () => this.finish() }, "■ Finish"),
        h("span", { class: "muted small" }, "ends the run: what is in flight settles, then the summary freezes")));
    }
    // The run's own menu may differ from the contract (its queues to choose from, params it
    // does not use): rebuilt under the user's hands, the forms keep what was typed and focused.
    this.root.replaceChildren(h("h3", { class: "hands-on-title" }, "Drive the run by hand"), ...parts);
    this.restore(before);
  }

  input(form, field, extra = {}) {
    const id = `hands-on-${form.name}-${field.name}`;
    const attrs = { ...extra };
    delete attrs.placeholder; // applied to text inputs only, below
    const common = { id, name: field.name, title: field.help, "aria-describedby": `hands-on-${form.name}-answer`, ...attrs };
    let control;
    if (field.input === "select") {
      control = h("select", common, ...(field.choices || []).map((c) => h("option", { value: String(c), selected: c === field.default }, String(c))));
    } else if (field.input === "checkbox") {
      control = h("input", { ...common, type: "checkbox", checked: Boolean(field.default) });
    } else if (field.input === "number") {
      control = h("input", { ...common, type: "number", value: String(field.default ?? ""), min: field.min ?? null,
        max: field.max ?? null, step: field.step, class: "num" });
    } else {
      // The help is the field's title; a placeholder shows what JSON looks like, or the bar's hint.
      const placeholder = field.input === "json" ? JSON.stringify(field.default) : extra.placeholder || null;
      control = h("input", { ...common, type: "text", placeholder, autocomplete: "off", spellcheck: "false" });
    }
    return h("label", { class: `hands-on-field field-${field.input}` }, h("span", {}, field.label), control);
  }

  publishBar(form) {
    const keyName = keyField(this.model);
    const list = h("datalist", { id: "hands-on-keys" }, ...this.keys.map((k) => h("option", { value: k })));
    const fields = form.fields.map((f) => this.input(form, f, f.name === keyName
      ? { list: "hands-on-keys", placeholder: "type a key, Enter publishes" } : { placeholder: f.help.split(/[;(]/)[0].trim() }));
    const answer = h("output", { class: "hands-on-answer", id: `hands-on-${form.name}-answer`, "aria-live": "polite" },
      "Enter publishes one real message through the broker");
    const el = h("form", { class: "hands-on-publish", "data-hands-on": form.name, "aria-label": form.label },
      ...fields, list, h("button", { type: "submit", class: "primary" }, `⏎ ${form.label}`), answer);
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(form, el, answer);
    });
    return el;
  }

  actionForm(form) {
    const answer = h("output", { class: "hands-on-answer", id: `hands-on-${form.name}-answer`, "aria-live": "polite" });
    const target = form.target
      ? h("label", { class: "hands-on-field" }, h("span", {}, capitalised(form.target)),
        fillTargets(h("select", { name: "target", "data-hands-on-target": form.name,
          "aria-label": `What ${form.label.toLowerCase()} applies to` }), this.offered && this.offered[form.name]))
      : null;
    const el = h("form", { class: "hands-on-action", "data-hands-on": form.name, "aria-label": form.label },
      target, ...form.fields.map((f) => this.input(form, f)),
      h("button", { type: "submit" }, form.label), answer);
    el.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(form, el, answer);
    });
    return el;
  }

  valuesOf(el, form) {
    const values = {};
    for (const field of form.fields) {
      const control = el.elements[field.name];
      values[field.name] = field.input === "checkbox" ? control.checked : control.value.trim();
    }
    return values;
  }

  /** The form of ``name`` on the page now (a rebuild replaces the elements, not the form). */
  current(name) {
    const el = this.root.querySelector(`form[data-hands-on="${name}"]`);
    const form = el && [this.model.publish, ...this.model.forms].find((f) => f && f.name === name);
    return el && form ? { form, el, answer: el.querySelector("output") } : null;
  }

  async send(form, el, answer) {
    if (!this.live) return;
    const { params, errors } = paramsFrom(form.fields, this.valuesOf(el, form));
    const target = el.elements.target ? el.elements.target.value : "";
    for (const control of el.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
    if (Object.keys(errors).length) return this.show({ form, el, answer }, false, { errors });
    answer.textContent = `${form.label.toLowerCase()}…`;
    let reply;
    try {
      reply = await this.api.action(this.runId, form.name, target, params);
    } catch (e) {
      reply = { ok: false, data: { errors: { server: "the dashboard server is not reachable" } } };
    }
    // The forms may have been rebuilt meanwhile: answer in the one on the page now.
    const now = this.current(form.name) || { form, el, answer };
    this.show(now, reply.ok, reply.data);
    const keyName = keyField(this.model);
    if (reply.ok && form.name === PUBLISH && keyName && now.el.elements[keyName]) {
      this.remembered(this.valuesOf(now.el, now.form)[keyName]);
      now.el.elements[keyName].select(); // Enter again publishes the same; typing replaces it
    }
    this.liveActions.refresh(); // the targets may have changed (a consumer added, one crashed)
  }

  show({ form, el, answer }, ok, data) {
    answer.textContent = answerText(ok, data);
    answer.dataset.ok = String(ok);
    const blamed = ok ? null : blamedField(form.fields, data);
    if (blamed && el.elements[blamed]) {
      el.elements[blamed].setAttribute("aria-invalid", "true");
      el.elements[blamed].focus();
    }
  }

  remembered(key) {
    if (typeof key !== "string") return;
    this.keys = remember(this.keys, key);
    try {
      if (this.storage) this.storage.setItem(this.key, JSON.stringify(this.keys));
    } catch (e) {
      /* storage full or refused: remembered for this page only */
    }
    const list = this.root.querySelector("#hands-on-keys");
    if (list) list.replaceChildren(...this.keys.map((k) => h("option", { value: k })));
  }

  async finish() {
    const answer = this.root.querySelector(".hands-on-end .muted");
    try {
      const reply = await this.api.action(this.runId, FINISH, "", {});
      answer.textContent = answerText(reply.ok, reply.data);
    } catch (e) {
      answer.textContent = "✗ the dashboard server is not reachable";
    }
  }
}
