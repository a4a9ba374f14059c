/* Latency charts (plotly.js, served locally): per-message latency over run time and a
   histogram per series with p50/p95/p99 marked. Perceived = what the caller waited;
   end-to-end = from publish until processing finished. One point per event carrying the
   attribute, straight from RunModel (run-model.js), so the charts agree with the event log. */
import { cssVar as readCssVar, fmtMs } from "./dom.js";
import { latencyStats } from "./run-model.js";

// Each read of a CSS variable may force a style recalculation: one read per variable until
// the theme changes.
const palette = new Map();
function cssVar(name) {
  if (!palette.has(name)) palette.set(name, readCssVar(name));
  return palette.get(name);
}

const SERIES = {
  // Distinct shapes: for sync calls both series coincide and must both stay visible.
  perceived: { title: "Perceived (caller waited)", color: "--c-published", symbol: "circle-open", size: 14 },
  end_to_end: { title: "End-to-end (until processed)", color: "--c-acked", symbol: "x", size: 8 },
};
const MARKS = [["p50", "solid"], ["p95", "dash"], ["p99", "dot"]];
const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };

function baseLayout(extra) {
  const fg = cssVar("--fg");
  const grid = cssVar("--surface-2");
  return {
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "DejaVu Sans, sans-serif", size: 16, color: fg },
    margin: { l: 70, r: 20, t: 44, b: 60 },
    xaxis: { gridcolor: grid, zerolinecolor: grid, color: fg },
    yaxis: { gridcolor: grid, zerolinecolor: grid, color: fg, rangemode: "tozero" },
    ...extra,
  };
}

// Beyond this many points a chart draws a sample (the scatter) or counts per bin (the
// histogram): a redraw stays short however long the run, and the notes give every point's stats.
const MAX_POINTS = 1500;
const BINS = 60;

/** Indices of at most `max` of n points, evenly spread, the last one always in. */
export function sampleIndices(n, max) {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const step = n / max;
  const picked = Array.from({ length: max }, (_, i) => Math.floor(i * step));
  picked[max - 1] = n - 1;
  return picked;
}

/** Equal-width bins over values: {x: bin centres, y: counts, width}; every value counted once. */
export function binCounts(values, bins) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!values.length) return { x: [], y: [], width: 0 };
  const width = hi > lo ? (hi - lo) / bins : 1;
  const y = new Array(hi > lo ? bins : 1).fill(0);
  for (const v of values) y[Math.min(y.length - 1, Math.floor((v - lo) / width))] += 1;
  return { x: y.map((_, i) => lo + (i + 0.5) * width), y, width };
}

function sampleNote(points) {
  const most = Math.max(...Object.values(points).map((series) => series.x.length));
  return most > MAX_POINTS ? ` (an even sample of ${MAX_POINTS} of ${most} points)` : "";
}

// Redraws cost O(points) in SVG: keep them to a fifth of the time, rarer when off screen.
const MIN_GAP_MS = 300;
const COST_FACTOR = 5;
const OFFSCREEN_FACTOR = 4;
const MAX_GAP_MS = 4000;
// Off screen, charts costlier than this to draw wait until they scroll into view.
const OFFSCREEN_BUDGET_MS = 16;

class LatencyCharts {
  constructor(els) {
    this.els = els; // {scatter, hist: {perceived, end_to_end}, notes: {perceived, end_to_end}}
    this.model = null;
    this.dirty = false;
    this.timer = null;
    this.cost = 0;
    this.lastRender = -Infinity;
    this.visible = true;
    window.addEventListener("themechange", () => {
      palette.clear();
      if (this.model) this.render();
    });
    this.loadPlotly(els.scatter.closest("[data-plotly-src]"));
    if (window.IntersectionObserver) {
      new IntersectionObserver((entries) => {
        this.visible = entries.some((e) => e.isIntersecting);
        if (this.visible && this.dirty) this.schedule(true);
      }).observe(els.scatter.closest("section") || els.scatter);
    }
  }

  /** plotly.min.js is big (~5 MB): fetch it after the page is live instead of before. */
  loadPlotly(section) {
    if (window.Plotly || !section) return;
    const script = document.createElement("script");
    script.src = section.dataset.plotlySrc;
    script.async = true;
    script.onload = () => this.dirty && this.schedule(true);
    script.onerror = () => {
      this.els.notes.perceived.textContent = "✗ plotly.js could not be loaded; the charts are unavailable.";
    };
    document.head.append(script);
  }

  update(model) {
    this.model = model;
    this.dirty = true;
    this.schedule(false);
  }

  schedule(now) {
    if (this.timer && !now) return;
    // Nobody sees them: the IntersectionObserver draws them when they come into view.
    if (!this.visible && this.cost > OFFSCREEN_BUDGET_MS) return;
    clearTimeout(this.timer);
    const gap = Math.min(MAX_GAP_MS, Math.max(MIN_GAP_MS, this.cost * COST_FACTOR) * (this.visible ? 1 : OFFSCREEN_FACTOR));
    const wait = now ? 0 : Math.max(0, this.lastRender + gap - performance.now());
    this.timer = setTimeout(() => this.renderInParts(), wait);
  }

  /** The three charts in three tasks: frames can be drawn between them. */
  renderInParts() {
    if (!window.Plotly || !this.model) {
      this.timer = null;
      return;
    }
    this.dirty = false;
    const parts = this.parts();
    let spent = 0;
    const next = () => {
      const started = performance.now();
      parts.shift()();
      spent += performance.now() - started;
      if (parts.length) {
        this.timer = setTimeout(next, 0);
      } else {
        this.timer = null;
        this.lastRender = performance.now();
        this.cost = spent;
      }
    };
    next();
  }

  render() {
    if (!window.Plotly || !this.model) return;
    this.dirty = false;
    for (const part of this.parts()) part();
  }

  /** Drawing the charts, one function per chart. */
  parts() {
    const points = this.model.points;
    return [() => this.renderScatter(),
      ...Object.keys(SERIES).map((name) => () => this.renderHistogram(name, points[name].y, latencyStats(points[name].y)))];
  }

  renderScatter() {
    const points = this.model.points;
    const traces = Object.entries(SERIES).map(([name, s]) => {
      const series = points[name];
      const shown = sampleIndices(series.x.length, MAX_POINTS);
      const pick = (list) => shown.map((i) => list[i]);
      const color = cssVar(s.color);
      return {
        type: "scatter",
        mode: "markers",
        name,
        legendgroup: name,
        x: pick(series.x),
        y: pick(series.y),
        customdata: pick(series.ids),
        hovertemplate: `${name} %{y:.2f} ms<br>message %{customdata}<br>t = %{x:.1f} ms<extra></extra>`,
        marker: { color, symbol: s.symbol, size: s.size, line: { width: 2.5, color } },
      };
    });
    Plotly.react(this.els.scatter, traces, baseLayout({
      title: { text: `Latency per message over the run${sampleNote(points)}`, x: 0, xanchor: "left", font: { size: 18 } },
      xaxis: { ...baseLayout().xaxis, title: { text: "run time t (ms) when the latency was recorded" } },
      yaxis: { ...baseLayout().yaxis, title: { text: "latency (ms)" } },
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.12 },
    }), CONFIG);
  }

  renderHistogram(name, values, stats) {
    const s = SERIES[name];
    const color = cssVar(s.color);
    const fg = cssVar("--fg");
    const shapes = [];
    const annotations = [];
    MARKS.forEach(([mark, dash], i) => {
      const x = stats[mark];
      if (x === null || x === undefined) return;
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: fg, width: 2, dash } });
      annotations.push({
        x, xref: "x", yref: "paper", y: 1 - i * 0.13, yanchor: "top", xanchor: "left", showarrow: false,
        text: `${mark} ${fmtMs(x)}`, bgcolor: cssVar("--bg"), bordercolor: fg, borderwidth: 1, borderpad: 2,
        font: { size: 14, color: fg },
      });
    });
    if (!values.length) {
      annotations.push({ x: 0.5, y: 0.5, xref: "paper", yref: "paper", showarrow: false, text: "no events carry this latency yet" });
    }
    const marker = { color, line: { color: fg, width: 1 } };
    const bins = values.length > MAX_POINTS ? binCounts(values, BINS) : null;
    const trace = bins
      ? { type: "bar", name, x: bins.x, y: bins.y, width: bins.width, marker,
        hovertemplate: "%{x:.2f} ms: %{y} events<extra></extra>" }
      : { type: "histogram", name, x: values.slice(), marker, hovertemplate: "%{x} ms: %{y} events<extra></extra>" };
    Plotly.react(this.els.hist[name], [trace], baseLayout({
      title: { text: s.title, x: 0, xanchor: "left", font: { size: 18 } },
      xaxis: { ...baseLayout().xaxis, title: { text: "latency (ms)" } },
      yaxis: { ...baseLayout().yaxis, title: { text: "events" } },
      bargap: 0.05,
      showlegend: false,
      shapes,
      annotations,
    }), CONFIG);
    this.els.notes[name].textContent = values.length
      ? `${values.length} events carry ${name}_ms · p50 ${fmtMs(stats.p50)} · p95 ${fmtMs(stats.p95)} · p99 ${fmtMs(stats.p99)} · max ${fmtMs(stats.max)}`
      : `no events carry ${name}_ms yet`;
  }
}

export { LatencyCharts };
