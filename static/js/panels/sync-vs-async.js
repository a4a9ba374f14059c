/* sync-vs-async panel: the same orders over every protocol at once, one lane each.

   - Lanes on one time axis: the caller's wait as a bar on top (long for a sync call, a
     sliver for an async hand-over; ✗ where it failed), the downstream's work below, a thin
     line per order from where it was placed to where the downstream took it (steep when
     nothing waits, slanted when it waited in a broker), the backlog of an async lane as a
     filled area, and the outage shaded across every lane.
   - Verdicts: one sentence per lane (the result's at the end, worked out from the events before).
   - Table: the figures of result.protocols, computed live from the events while the run runs
     (compare-lanes.js follows the server's rules) and replaced by the result once it ended.
   - Chart (plotly): perceived against end-to-end latency per protocol, box plots with
     p50 / p95 / p99 marked, on one log scale.
   Everything is derived from the revealed events, so a replay shows the state at that point. */
import { cssVar, fmtMs, h } from "../dom.js";
import { swatch } from "../legend.js";
import {
  answeredWait, backlogSteps, errorMarks, headGroups, LaneBook, laneFigures, laneOfActor, liveVerdict, niceTicks, protocolName, TABLE_COLUMNS,
  tableRows, tickLabel, timeDomain, timeScale, trips, waitBars, workBars,
} from "../compare-lanes.js";
import { lessonLine, renderSoon } from "./kit.js";

const SVG = "svg:";
const LANE_H = 62;
const HEAD_PX = 150; // the lane's name column (panels.css: .sva-lane grid), then the track
const WAIT = { y: 5, h: 16 }; // the caller's track
const WORK = { y: 41, h: 16 }; // the downstream's track
const MIN_BAR_PX = 2; // a 3 ms hand-over is still seen
const MAX_MARKS = 150; // per lane and kind: beyond, the table and the log have the rest
const CHART_GAP_MS = 700;
// The topology: the callers, then what they talk to (a sync caller its server, an async one its
// broker), then the async consumers: sync is one hop, async two. Rows follow the lanes' order.
const ROLE_COLUMN = { client: 0, server: 1, queue: 1, topic: 1, exchange: 1, broker: 1, consumer: 2, worker: 2, subscriber: 2, group: 2 };
const MARKS = [["p50", "line-ns-open", 20], ["p95", "diamond-open", 12], ["p99", "x-thin-open", 12]];
const SERIES = [["perceived", "perceived: the caller waited", "--c-published"], ["end_to_end", "end-to-end: until the work was done", "--c-acked"]];

function protocolsOf(params) {
  const value = params.protocols;
  return (Array.isArray(value) ? value : String(value || "").split(",")).map((p) => String(p).trim()).filter(Boolean);
}

/** Rectangles [x0, x1] on one track as one path (thousands of orders stay one element). */
function barsPath(bars, x, track) {
  let d = "";
  for (const b of bars) {
    const x0 = x(b.t0);
    const w = Math.max(MIN_BAR_PX, x(b.t1) - x0);
    d += `M${x0.toFixed(1)} ${track.y}h${w.toFixed(1)}v${track.h}h${(-w).toFixed(1)}z`;
  }
  return d;
}

function mark(category, icon, cx, cy, title, id) {
  return h(`${SVG}g`, { class: `sva-mark cat-${category}`, tabindex: "0", role: "button", dataset: { message: id } },
    h(`${SVG}title`, {}, title),
    h(`${SVG}circle`, { cx: cx.toFixed(1), cy, r: 8 }),
    h(`${SVG}text`, { x: cx.toFixed(1), y: cy + 4.5, "text-anchor": "middle" }, icon));
}

function figureText(value, kind) {
  if (value === null || value === undefined) return "—";
  if (kind === "ms") return fmtMs(value);
  return String(value);
}

/** A lane's verdict colour: what went worst, never the colour alone (the sentence says it). */
function verdictCategory(f) {
  if (f.lost) return "lost";
  if (f.errors) return "error";
  if (f.duplicates) return "duplicate";
  return "acked";
}

const panel = {
  title: "Sync against async: the same orders, lane by lane",

  init(root, ctx) {
    const p = ctx.run.params || {};
    this.ctx = ctx;
    this.book = new LaneBook(protocolsOf(p));
    this.result = null;
    this.chartAt = -Infinity;
    this.chartTimer = null;
    const work = p.work_ms !== undefined ? `${p.work_ms} ms` : "the same";
    root.append(
      lessonLine(`every protocol carries the same orders to the same ${work} of work. `,
        "A sync caller (HTTP, gRPC) waits for the whole work and fails while the downstream is down. ",
        "An async caller hands the order to a broker and returns at once: the work is done later, and the broker's backlog absorbs an outage."),
      h("div", { class: "sva-key small", "aria-label": "How to read the lanes" },
        h("span", { class: "chip cat-published" }, h("span", { class: "sva-key-bar" }), "the caller waits (top)"),
        h("span", { class: "chip cat-delivered" }, h("span", { class: "sva-key-bar" }), "the downstream works (bottom)"),
        h("span", { class: "chip cat-routed" }, h("span", { class: "sva-key-area" }), "backlog in the broker"),
        h("span", { class: "chip sva-key-outage" }, "▨ downstream down"),
        h("span", { class: "chip cat-error" }, swatch("error"), "failed"),
        h("span", { class: "chip cat-duplicate" }, swatch("duplicate"), "handled again")),
      (this.lanesEl = h("div", { class: "sva-lanes", id: "sva-lanes", role: "list", "aria-label": "One lane per protocol", dataset: { inspect: "" } })),
      (this.verdictsEl = h("ul", { class: "sva-verdicts", id: "sva-verdicts", "aria-live": "polite" })),
      h("div", { class: "sva-grid" },
        h("div", { class: "table-wrap" }, (this.tableEl = h("table", { class: "sva-table", id: "sva-table" }))),
        h("figure", { class: "sva-chart-box" },
          (this.chartEl = h("div", { class: "sva-chart", id: "sva-latency" })),
          (this.chartNote = h("figcaption", { class: "small muted" }, "Perceived against end-to-end latency: the box holds the middle half, ",
            "| marks p50, ◇ p95, × p99.")))));
    if (window.ResizeObserver) new ResizeObserver(() => renderSoon(this)).observe(this.lanesEl);
    this.render();
  },

  reset() {
    this.book.reset();
    this.render();
  },

  layout(actor) {
    const protocols = this.book ? this.book.order() : [];
    const lane = laneOfActor(actor, protocols);
    const column = ROLE_COLUMN[actor.split(":")[0]];
    if (lane === null || column === undefined) return undefined;
    return { column, row: protocols.indexOf(lane) };
  },

  onEvent(ev, ctx) {
    this.book.feed(ev);
    if (ev.kind === "backlog") ctx.topology.setNote(ev.actor, `backlog ${(ev.attrs || {}).depth ?? 0}`);
    renderSoon(this);
  },

  onSummary(summary) {
    if (summary.result && summary.result.protocols) this.result = summary.result;
    renderSoon(this);
  },

  render() {
    if (!this.lanesEl) return;
    const rows = tableRows(this.book, this.result);
    this.renderLanes();
    this.renderVerdicts(rows);
    this.renderTable(rows);
    this.chartSoon(rows);
  },

  // -- lanes ------------------------------------------------------------------------------

  renderLanes() {
    const book = this.book;
    const now = book.lastT;
    const domain = timeDomain(book);
    const width = Math.max(200, (this.lanesEl.clientWidth || 900) - HEAD_PX - 8);
    const x = timeScale(domain, [0, width]);
    const lanes = book.order().map((p, i) => this.laneRow(book.lane(p), x, width, now, i === 0));
    this.lanesEl.replaceChildren(...lanes, this.axisRow(domain, x, width));
    const outage = book.outages[0];
    this.lanesEl.dataset.outageStart = outage ? String(outage.start) : "";
    this.lanesEl.dataset.outageEnd = outage && outage.end !== null ? String(outage.end) : "";
    this.lanesEl.dataset.t0 = String(domain[0]);
    this.lanesEl.dataset.t1 = String(domain[1]);
  },

  laneRow(lane, x, width, now, first) {
    const f = laneFigures(lane, this.book.ended);
    const waits = waitBars(lane, now);
    const work = workBars(lane, now);
    const svg = h(`${SVG}svg`, { class: "sva-track", viewBox: `0 0 ${width} ${LANE_H}`, width, height: LANE_H,
      role: "img", "aria-label": `${protocolName(lane.protocol)}: ${waits.length} orders placed` });
    for (const o of this.book.outages) {
      const x0 = x(o.start);
      const x1 = x(o.end ?? now);
      svg.append(h(`${SVG}rect`, { class: "sva-outage", x: x0.toFixed(1), y: 0, width: Math.max(1, x1 - x0).toFixed(1), height: LANE_H }));
      // Between the tracks, where no mark sits.
      if (first) svg.append(h(`${SVG}text`, { class: "sva-outage-label", x: (x0 + 4).toFixed(1), y: (WAIT.y + WAIT.h + WORK.y) / 2 + 5 }, "✗ downstream down"));
    }
    const samples = lane.backlog;
    const top = samples.reduce((best, s) => (!best || s.depth > best.depth ? s : best), null);
    if (samples.length) {
      const peak = Math.max(1, lane.backlogMax);
      const y = (depth) => LANE_H - 2 - (depth / peak) * (LANE_H - 8);
      const steps = backlogSteps(samples, now);
      const d = steps.map(([t, depth], i) => `${i ? "L" : "M"}${x(t).toFixed(1)} ${y(depth).toFixed(1)}`).join("") + "z";
      svg.append(h(`${SVG}path`, { class: "sva-backlog", d }));
      if (lane.backlogMax > 0) {
        const tx = Math.min(width - 70, Math.max(2, x(top.t) + 4));
        svg.append(h(`${SVG}text`, { class: "sva-backlog-label", x: tx.toFixed(1), y: 13 }, `backlog ${lane.backlogMax}`));
      }
    }
    let tripsD = "";
    for (const t of trips(lane)) tripsD += `M${x(t.t0).toFixed(1)} ${WAIT.y + WAIT.h}L${x(t.t1).toFixed(1)} ${WORK.y}`;
    svg.append(h(`${SVG}path`, { class: "sva-trips", d: tripsD }));
    for (const outcome of ["ok", "error", "waiting"]) {
      svg.append(h(`${SVG}path`, { class: `sva-waits ${outcome}`, d: barsPath(waits.filter((w) => w.outcome === outcome), x, WAIT) }));
    }
    svg.append(h(`${SVG}path`, { class: "sva-work", d: barsPath(work.filter((w) => !w.duplicate), x, WORK) }));
    svg.append(h(`${SVG}path`, { class: "sva-work duplicate", d: barsPath(work.filter((w) => w.duplicate), x, WORK) }));
    const errors = errorMarks(lane);
    for (const e of errors.slice(-MAX_MARKS)) {
      svg.append(mark("error", "✗", x(e.t), WAIT.y + WAIT.h / 2, `${e.id}: ${e.reason}`, e.id));
    }
    for (const w of work.filter((b) => b.duplicate || b.crashed).slice(-MAX_MARKS)) {
      svg.append(w.duplicate
        ? mark("duplicate", "↻", x(w.t0), WORK.y + WORK.h / 2, `${w.id} handled again${w.reason ? `: ${w.reason}` : ""}`, w.id)
        : mark("error", "✗", x(w.t1), WORK.y + WORK.h / 2, `${w.id}: the handler crashed before its ${f.pattern === "sync" ? "response" : "ack"}`, w.id));
    }
    // A sync lane's head shows the wait for the work (answered calls); a fast refusal is no such wait.
    const waited = f.pattern === "sync" ? answeredWait(lane) : f.perceived.p50;
    return h("div", {
      class: `sva-lane ${f.pattern || ""}`, role: "listitem",
      dataset: {
        protocol: lane.protocol, pattern: f.pattern || "", waits: String(waits.length), handlings: String(work.length),
        errors: String(f.errors), duplicates: String(f.duplicates), backlogMax: String(lane.backlogMax),
        backlogSamples: String(samples.length), backlogSource: lane.backlogSource,
        // When the backlog peaked and where it is now (the browser tests read these).
        backlogPeakT: top ? String(top.t) : "", backlogLast: samples.length ? String(samples[samples.length - 1].depth) : "",
      },
    },
    h("div", { class: "sva-lane-head" },
      h("strong", {}, protocolName(lane.protocol)),
      h("span", { class: "small", title: "the pattern, and the caller's median wait (sync: of the answered calls)" },
        `${f.pattern || ""}${waited === null ? "" : ` · waits ${fmtMs(waited)}`}`)),
    svg);
  },

  axisRow(domain, x, width) {
    const ticks = niceTicks(domain[0], domain[1], Math.max(2, Math.floor(width / 90)));
    const step = ticks.length > 1 ? ticks[1] - ticks[0] : 1000;
    const svg = h(`${SVG}svg`, { class: "sva-axis-svg", viewBox: `0 0 ${width} 22`, width, height: 22, "aria-hidden": "true" },
      h(`${SVG}line`, { x1: 0, x2: width, y1: 1, y2: 1 }),
      ...ticks.flatMap((t) => {
        const tx = x(t);
        const anchor = tx < 20 ? "start" : tx > width - 20 ? "end" : "middle";
        return [h(`${SVG}line`, { x1: tx.toFixed(1), x2: tx.toFixed(1), y1: 1, y2: 6 }),
          h(`${SVG}text`, { x: tx.toFixed(1), y: 19, "text-anchor": anchor }, tickLabel(t, step))];
      }));
    return h("div", { class: "sva-axis" }, h("span", { class: "sva-lane-head small muted" }, "run time"), svg);
  },

  // -- verdicts and table -----------------------------------------------------------------

  renderVerdicts(rows) {
    const outage = this.book.outages[0] || null;
    this.verdictsEl.replaceChildren(...rows.map(({ protocol, source, figures }) => {
      // The row's figures are the result's or the live ones, in one shape: the live sentence reads either.
      const text = figures.verdict || liveVerdict(this.book.lane(protocol), figures, outage);
      const category = verdictCategory(figures);
      return h("li", { class: `sva-verdict cat-${category}`, dataset: { protocol, source } }, swatch(category), text);
    }));
  },

  renderTable(rows) {
    const source = rows.length && rows.every((r) => r.source === "result") ? "result" : "live";
    this.tableEl.dataset.source = source;
    // Two head rows: "perceived" and "end-to-end" over their percentiles, the rest spanning both.
    const groups = headGroups();
    const head = h("thead", {},
      h("tr", {}, h("th", { rowspan: 2, scope: "col" }, "protocol"),
        ...groups.map((g) => (g.group
          ? h("th", { colspan: g.span, scope: "colgroup", class: "sva-group" }, g.title)
          : h("th", { rowspan: 2, scope: "col", class: g.title === "pattern" ? "" : "num" }, g.title)))),
      h("tr", {}, ...TABLE_COLUMNS.filter(([, group]) => group).map(([key, , title]) => h("th", { class: "num", scope: "col", dataset: { figure: key } }, title))));
    const body = h("tbody", {}, ...rows.map(({ protocol, figures }) => h("tr", { dataset: { protocol, source } },
      h("th", { scope: "row" }, protocolName(protocol)),
      ...TABLE_COLUMNS.map(([key, , , get, kind]) => {
        const value = get(figures);
        return h("td", { class: kind === "text" ? "" : "num", dataset: { figure: key, value: value === null || value === undefined ? "" : String(value) } },
          key === "lost" && value === null ? h("span", { title: "known once the run ended" }, "…") : figureText(value, kind));
      }))));
    this.tableEl.replaceChildren(head, body);
    this.tableEl.append(h("caption", { class: "small muted" }, source === "result"
      ? "The run's result (result.protocols), as the API returns it."
      : "Worked out from the events shown so far; the run's result replaces it at the end."));
  },

  // -- chart ------------------------------------------------------------------------------

  chartSoon(rows) {
    this.chartRows = rows;
    if (this.chartTimer) return;
    const wait = Math.max(0, this.chartAt + CHART_GAP_MS - performance.now());
    this.chartTimer = setTimeout(() => {
      this.chartTimer = null;
      if (!window.Plotly) {
        this.chartSoon(this.chartRows); // plotly.min.js is still loading (latency-charts.js fetches it)
        return;
      }
      this.chartAt = performance.now();
      this.renderChart(this.chartRows);
    }, window.Plotly ? wait : 500);
  },

  renderChart(rows) {
    const names = rows.map((r) => protocolName(r.protocol));
    const fg = cssVar("--fg");
    const grid = cssVar("--surface-2");
    const traces = [];
    SERIES.forEach(([key, title, color], i) => {
      const axis = i ? "x2" : "x";
      const xs = [];
      const ys = [];
      for (const r of rows) {
        const lane = this.book.lane(r.protocol);
        for (const v of key === "perceived" ? lane.perceived : lane.endToEnd) {
          xs.push(Math.max(v, 0.01));
          ys.push(protocolName(r.protocol));
        }
      }
      traces.push({ type: "box", orientation: "h", name: title, x: xs, y: ys, xaxis: axis, yaxis: "y", boxpoints: false,
        marker: { color: cssVar(color) }, line: { color: cssVar(color), width: 3 }, fillcolor: "rgba(0,0,0,0)", legendgroup: key,
        hoverinfo: "skip", showlegend: false });
      for (const [stat, symbol, size] of MARKS) {
        const points = rows.map((r) => [r, (r.figures[key] || {})[stat]]).filter(([, v]) => v !== null && v !== undefined);
        traces.push({ type: "scatter", mode: "markers", name: stat, legendgroup: stat, showlegend: i === 0,
          x: points.map(([, v]) => Math.max(v, 0.01)), y: points.map(([r]) => protocolName(r.protocol)), xaxis: axis, yaxis: "y",
          marker: { symbol, size, color: fg, line: { width: 2.5, color: fg } },
          hovertemplate: `%{y} ${key === "perceived" ? "perceived" : "end-to-end"} ${stat} %{x:.1f} ms<extra></extra>` });
      }
    });
    // Powers of ten only: a 0.4 ms hand-over and a 500 ms call on one readable scale.
    const axis = (title, domain) => ({ type: "log", dtick: 1, domain, title: { text: title, font: { size: 14 } }, gridcolor: grid,
      zerolinecolor: grid, color: fg, automargin: true });
    Plotly.react(this.chartEl, traces, {
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "DejaVu Sans, sans-serif", size: 14, color: fg },
      height: 110 + 52 * Math.max(1, names.length),
      margin: { l: 10, r: 10, t: 34, b: 10 },
      xaxis: axis("perceived (ms, log)", [0, 0.47]),
      xaxis2: { ...axis("end-to-end (ms, log)", [0.53, 1]), matches: "x" },
      yaxis: { type: "category", categoryorder: "array", categoryarray: [...names].reverse(), automargin: true, color: fg },
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
    }, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] });
    this.chartEl.dataset.protocols = rows.map((r) => r.protocol).join(",");
  },
};

export default panel;
