/* The workflow form's `multi` parameter ({type: "multi", choices: [...], default: [...]}):
   a group of checkboxes, one per choice, with "All" and "None". Native checkboxes keep it
   keyboard accessible (Tab to each, Space toggles); the group is named by the field's label.
   Pure helpers first (tested with node), then the control. */
import { h } from "./dom.js";

/** The choices a value selects: a list or a comma-separated string ("http, grpc"); unknown ones are ignored. */
export function selectedChoices(value, choices) {
  const names = Array.isArray(value) ? value.map(String) : String(value ?? "").split(",");
  const wanted = new Set(names.map((name) => name.trim()).filter(Boolean));
  return new Set(choices.map(String).filter((choice) => wanted.has(choice)));
}

/** The value sent: the checked choices in the contract's order (an empty list lets the server say why not). */
export function multiValue(checked, choices) {
  const on = new Set(checked.map(String));
  return choices.filter((choice) => on.has(String(choice)));
}

/** The field's bounds line: "one or more · default all 6" or "… · default http, grpc". */
export function multiBounds(param) {
  const choices = param.choices || [];
  const chosen = multiValue([...selectedChoices(param.default, choices)], choices);
  const shown = chosen.length === choices.length && choices.length > 1 ? `all ${choices.length}` : chosen.join(", ") || "none";
  return `one or more · default ${shown}`;
}

/** The checkboxes of a multi field, inside its form. */
export function multiBoxes(form, name) {
  return [...form.querySelectorAll(`input[type="checkbox"][name="${CSS.escape(name)}"]`)];
}

/** Check exactly the choices `value` selects. */
export function fillMulti(form, name, param, value) {
  const on = selectedChoices(value, param.choices || []);
  for (const box of multiBoxes(form, name)) box.checked = on.has(box.value);
}

/**
 * The control: a role=group labelled by the field's label (labelId), one labelled checkbox
 * per choice (id param-<name>-<choice>), and All / None buttons.
 */
export function multiControl(name, param, { labelId, describedBy }) {
  const on = selectedChoices(param.default, param.choices || []);
  const boxes = (param.choices || []).map((choice) => {
    const id = `param-${name}-${choice}`;
    return h("label", { class: "multi-choice", for: id },
      h("input", { type: "checkbox", id, name, value: String(choice), checked: on.has(String(choice)) }),
      h("span", {}, String(choice)));
  });
  const setAll = (checked) => (event) => {
    for (const box of multiBoxes(event.target.form, name)) box.checked = checked;
  };
  return h("div", { class: "multi", id: `param-${name}`, role: "group", "aria-labelledby": labelId, "aria-describedby": describedBy },
    h("div", { class: "multi-choices" }, ...boxes),
    h("div", { class: "multi-buttons" },
      h("button", { type: "button", class: "multi-all", onclick: setAll(true) }, "All"),
      h("button", { type: "button", class: "multi-none", onclick: setAll(false) }, "None")));
}
