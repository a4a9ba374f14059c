/* The panel kit: what the workflow panels would otherwise each write again. Styles live in
   static/css/run.css (verdicts, tables) and static/css/panels.css. See README.md. */
import { h, OFF_SCREEN_PACE, onPacedFrame } from "../dom.js";
import { swatch } from "../legend.js";
import { FINAL_STATES } from "../run-stream.js";

/** Whether a run in this state still runs, i.e. its action buttons can do anything. */
export function isLive(state) {
  return !FINAL_STATES.has(state);
}

/** A panel's onSummary: whether the run still runs, its result once it has `resultKey`, a re-render. */
export function followSummary(panel, summary, resultKey) {
  if (summary.state) panel.live = isLive(summary.state);
  if (summary.result && summary.result[resultKey]) panel.state.result = summary.result;
  renderSoon(panel);
}

/**
 * The event loop of a panel that folds events into its state, spread into the panel object:
 * `onEvent` marks the run ended at `done` and hands every event to the panel's
 * `apply(ev, attrs, state, ctx)`, which returns false for kinds it does not draw (no
 * re-render); `onSummary` follows the run's state and takes its result once it has `resultKey`.
 */
export function foldsEvents(resultKey) {
  return {
    onEvent(ev, ctx) {
      const s = this.state;
      if (ev.kind === "done") s.ended = true;
      if (this.apply(ev, ev.attrs || {}, s, ctx) === false && ev.kind !== "done") return;
      renderSoon(this);
    },
    onSummary(summary) {
      followSummary(this, summary, resultKey);
    },
  };
}

/** A fresh state for reset() that keeps the message the user selected: a seek must not lose it. */
export function keepSelection(previous, fresh) {
  fresh.selected = previous.selected;
  return fresh;
}

/** Re-render the panel once in a coming frame, however many events ask for it before then;
    a panel whose render grows costly with the run renders less often (onPacedFrame), and one
    mostly off screen (run-page.js sets panel.inView) at most 4 times a second. */
export function renderSoon(panel) {
  onPacedFrame(panel, renderOf(panel), panel.inView === false ? OFF_SCREEN_PACE : undefined);
}

// One render function per panel, not one per event (renderSoon is called for most events).
const renders = new WeakMap();
function renderOf(panel) {
  let render = renders.get(panel);
  if (!render) renders.set(panel, (render = () => panel.render()));
  return render;
}

/**
 * Make `parent`'s children the `nodes`, in order, moving as little as it can: a list that
 * lost some from its front and grew at its end (a log that scrolls) keeps the nodes in
 * between where they are, so the browser does not lay them out again. Returns the nodes
 * taken out.
 */
export function syncChildren(parent, nodes) {
  const current = [...parent.children];
  const start = nodes.length ? current.indexOf(nodes[0]) : current.length;
  const kept = current.length - Math.max(start, 0);
  const scrolled = start >= 0 && kept <= nodes.length && current.slice(start).every((node, i) => node === nodes[i]);
  const wanted = new Set(nodes);
  if (scrolled) {
    for (const node of current.slice(0, start)) node.remove();
    if (kept < nodes.length) parent.append(...nodes.slice(kept));
  } else {
    parent.replaceChildren(...nodes);
  }
  return current.filter((node) => !wanted.has(node));
}

/** The entry of `map` under `key`, made by `make()` and stored on first use. */
export function entry(map, key, make) {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/** The panel's opening line: what the workflow teaches. */
export function lessonLine(...parts) {
  return h("p", { class: "lesson-line" }, h("strong", {}, "Lesson: "), ...parts);
}

/**
 * A verdict card (run.css): the category's colour and icon, a headline, an explanation.
 * explain: text, or a list of strings shown as bullets; data: more data-* attributes for tests.
 */
export function verdict({ category, key, headline, explain, data = {}, id = null, className = "" }) {
  const body = Array.isArray(explain)
    ? h("ul", { class: "verdict-explain" }, ...explain.map((line) => h("li", {}, line)))
    : h("p", { class: "verdict-explain" }, explain);
  return h("div", { class: `verdict cat-${category}${className ? ` ${className}` : ""}`, id, dataset: { verdict: key, ...data } },
    h("p", { class: "verdict-headline" }, swatch(category), headline), body);
}

/** A table head of plain column titles. */
export function tableHead(...titles) {
  return h("thead", {}, h("tr", {}, ...titles.map((title) => h("th", {}, title))));
}

/** Give `table` its head once; its one tbody, for rows updated in place. */
export function tableBody(table, ...titles) {
  if (!table.tHead) table.append(tableHead(...titles), h("tbody", {}));
  return table.tBodies[0];
}

/**
 * A table of actors (consumers, workers, subscribers): a row each, built once and then
 * updated in place, so a button in a row stays clickable while events stream.
 * key: the rows' data-* name; columns: {cell name: td class} after the name cell;
 * buttons(name): the row's buttons, in a last cell of class buttonsClass.
 */
export class ActorRows {
  constructor(table, { titles, key, columns, buttons = () => [], buttonsClass = "" }) {
    this.table = table;
    this.titles = titles;
    Object.assign(this, { key, columns, buttons, buttonsClass });
    this.rows = new Map();
  }

  /** {tr, cells: {name: td}, buttons: [button]} for one actor. */
  row(name) {
    return entry(this.rows, name, () => {
      const cells = Object.fromEntries(Object.entries(this.columns).map(([cell, cls]) => [cell, h("td", { class: cls })]));
      const buttons = this.buttons(name);
      const tr = h("tr", { dataset: { [this.key]: name } }, h("th", { scope: "row" }, name), ...Object.values(cells),
        h("td", { class: this.buttonsClass }, ...buttons));
      return { tr, cells, buttons };
    });
  }

  /** Show these actors, in this order, each row brought up to date by update(row, name). */
  show(names, update) {
    tableBody(this.table, ...this.titles).replaceChildren(...[...names].map((name) => {
      const row = this.row(name);
      update(row, name);
      return row.tr;
    }));
  }
}

/** A cell saying what state an actor is in, in its category's colour. */
export function showState(cell, { category, className, text, note = "" }) {
  cell.className = `cat-${category} ${className}`;
  cell.textContent = text;
  cell.title = note;
}

/** One delivery of a message to `who` (a consumer, a worker), from its deliver event. */
export function attempt(ev, who) {
  const a = ev.attrs || {};
  return { who, t: ev.t_ms, attempt: ev.attempt, duplicate: ev.duplicate, redelivered: Boolean(a.redelivered), reason: a.reason || "" };
}

/** A message's deliveries, one line each (↻ for a duplicate, with its reason); text(attempt) says what happened. */
export function attemptLines(attempts, className, text) {
  return attempts.map((d) => h("div", { class: `${className} cat-${d.duplicate ? "duplicate" : "delivered"}` },
    `${d.duplicate ? "↻" : "▼"} ${text(d)}`, d.reason ? h("div", { class: "muted small" }, d.reason) : ""));
}

/**
 * A process event, counted on every tally (the message's, the run's): as an effect applied
 * (tally[applied] += 1), or as a duplicate the idempotent consumer's inbox suppressed.
 */
export function countEffect(ev, applied, ...tallies) {
  const key = (ev.attrs || {}).effect === false ? "suppressed" : applied;
  for (const tally of tallies) tally[key] += 1;
}

/** The newest `shown` items first, as table rows: a message table's body. */
export function newestRows(items, shown, row) {
  return items.slice(-shown).reverse().map(row);
}

/** Replace a table's head and rows. */
export function fillTable(table, titles, rows) {
  // A live run redraws the table many times a second: the row a keyboard user is on keeps
  // the focus in its redrawn self (same message), instead of dropping it to the page.
  const focused = table.contains(document.activeElement) ? document.activeElement.dataset.message : null;
  table.replaceChildren(tableHead(...titles), h("tbody", {}, rows));
  if (!focused) return;
  const again = table.querySelector(`[data-message="${CSS.escape(focused)}"]`);
  if (again) again.focus({ preventScroll: true });
}

/**
 * A click on a button in `root` matching `selector` sends send(button) (an action request,
 * ctx.api.action(...)); the button is disabled until it is answered, then done(button, answer).
 */
export function actionButtons(root, selector, send, done) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest(selector);
    if (!button) return;
    button.disabled = true;
    try {
      const answer = await send(button);
      if (done) done(button, answer);
    } finally {
      button.disabled = false;
    }
  });
}

/**
 * A fixed placement for the topology: {actor: [column, row]}; a key ending in ":" is a
 * prefix ("worker:" places every worker), a missing row lets the topology stack them.
 */
export function placeActors(places) {
  return (actor) => {
    const place = places[actor] || places[`${actor.split(":")[0]}:`];
    if (!place) return undefined;
    const [column, row] = place;
    return row === undefined ? { column } : { column, row };
  };
}

/** Kafka panels: the producer, then one topology row per partition lane ("topic:<name>/p<n>"). */
export function partitionLayout(actor) {
  if (actor === "producer") return { column: 0, row: 0 };
  const lane = /^topic:.+\/p(\d+)$/.exec(actor);
  return lane ? { column: 1, row: Number(lane[1]) } : undefined;
}

/** For Kafka panels' route(): the lane a delivered record came from, learnt from route events. */
export function laneRouter() {
  const lanes = new Map(); // partition → its topology actor
  return (ev) => {
    const partition = (ev.attrs || {}).partition;
    if (ev.kind === "route") lanes.set(partition, ev.actor);
    return ev.kind === "deliver" ? lanes.get(partition) : undefined;
  };
}
