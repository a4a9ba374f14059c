/* The run page's action controls: each action's button with the targets it applies to now.

   The server says which targets an action applies to (GET /api/runs/<id>/actions/: live
   consumers, members, workers, subscribers) and answers every request with what really
   happened (202 `result`) or why not (400 `errors`); this module shows exactly that.
   Cancel is run-level: it sends no target. */
import { h } from "./dom.js";

export const WORKFLOW_DECIDES = "(workflow decides)";

/** The <option>s of one action's target select: [{value, label, disabled?}]. */
export function targetOptions(entry) {
  const options = entry && entry.picks ? [{ value: "", label: WORKFLOW_DECIDES }] : [];
  for (const target of (entry && entry.targets) || []) options.push({ value: target, label: target });
  if (!options.length) options.push({ value: "", label: `(no live ${(entry && entry.target) || "target"})`, disabled: true });
  return options;
}

/** The line shown after an action: the server's sentence, or its reasons for refusing. */
export function answerText(ok, data) {
  if (ok) return `✓ ${data.result || `${data.action} accepted`}`;
  const errors = Object.values((data && data.errors) || {});
  return `✗ ${errors.length ? errors.join("; ") : "refused"}`;
}

// While the run is live, the targets are asked for again at most this often on new summaries.
const REFRESH_EVERY_MS = 1000;

export class LiveActions {
  /** root: #actions (buttons [data-action], selects [data-action-target=name]); result: where answers go. */
  constructor(root, result, runId, api) {
    this.root = root;
    this.result = result;
    this.runId = runId;
    this.api = api;
    this.live = true;
    this.lastAsked = 0;
    this.asking = null;
    this.offered = null; // the last GET …/actions/ answer
    this.watchers = []; // other controls built from the same answer (hands-on.js)
    for (const select of this.selects()) {
      select.addEventListener("focus", () => this.refresh());
      select.addEventListener("pointerdown", () => this.refresh());
    }
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-action]");
      if (button) this.send(button.dataset.action);
    });
  }

  /** fn(offered, live) on every new answer and every change of live: one menu, one asking. */
  watch(fn) {
    this.watchers.push(fn);
    fn(this.offered, this.live);
  }

  tell() {
    for (const fn of this.watchers) fn(this.offered, this.live);
  }

  selects() {
    return [...this.root.querySelectorAll("select[data-action-target]")];
  }

  /** Enable the controls while the run is live; a finished run has nothing to act on. */
  setLive(live) {
    this.live = live;
    for (const control of this.root.querySelectorAll("[data-action], select[data-action-target]")) control.disabled = !live;
    if (live && this.offered) this.show(this.offered);
    else this.tell();
  }

  /** Called as the run changes (summaries): asks again, at most every REFRESH_EVERY_MS. */
  changed() {
    if (this.live && Date.now() - this.lastAsked >= REFRESH_EVERY_MS) this.refresh();
  }

  async refresh() {
    if (!this.live) return;
    if (this.asking) return this.asking;
    this.lastAsked = Date.now();
    this.asking = (async () => {
      try {
        const { ok, data } = await this.api.actions(this.runId);
        if (ok) this.show(data.actions);
      } catch (e) {
        /* not reachable: the next change asks again */
      } finally {
        this.asking = null;
      }
    })();
    return this.asking;
  }

  show(actions) {
    this.offered = actions;
    for (const select of this.selects()) {
      const name = select.dataset.actionTarget;
      const chosen = select.value;
      const options = targetOptions(actions[name]);
      select.replaceChildren(...options.map((o) => h("option", { value: o.value, disabled: Boolean(o.disabled) }, o.label)));
      if (options.some((o) => o.value === chosen && !o.disabled)) select.value = chosen;
      // Nothing it applies to right now: the button waits until something is.
      const button = this.root.querySelector(`[data-action="${name}"]`);
      if (button) button.disabled = !this.live || !options.some((o) => !o.disabled);
    }
    this.tell();
  }

  async send(name) {
    const select = this.root.querySelector(`select[data-action-target="${name}"]`);
    const target = name === "cancel" || !select ? "" : select.value;
    this.result.textContent = `sending ${name}${target ? ` to ${target}` : ""}…`;
    try {
      this.answered(await this.api.action(this.runId, name, target));
    } catch (e) {
      this.result.textContent = "✗ the dashboard server is not reachable";
      this.result.dataset.ok = "false";
    }
  }

  /** Show an action's answer (also for the panels' own buttons); the targets may have changed. */
  answered({ ok, data }) {
    this.result.textContent = answerText(ok, data);
    this.result.dataset.ok = String(ok);
    this.refresh();
  }
}
