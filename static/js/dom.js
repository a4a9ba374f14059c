/* Small DOM helpers shared by every page module. */
/** h("td", {class: "num", dataset: {seq: 3}}, "text", childNode) */
function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function fmtMs(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  const v = Number(value);
  if (Math.abs(v) < 10) return `${v.toFixed(2)} ms`;
  if (Math.abs(v) < 1000) return `${v.toFixed(1)} ms`;
  return `${(v / 1000).toFixed(2)} s`;
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function reducedMotion() {
  return Boolean(window.matchMedia && matchMedia("(prefers-reduced-motion: reduce)").matches);
}

/** Run fn once in the next animation frame, however often it is asked for before then. */
const queued = new Map();
function onFrame(key, fn) {
  if (queued.has(key)) {
    queued.set(key, fn);
    return;
  }
  queued.set(key, fn);
  requestAnimationFrame(() => {
    const run = queued.get(key);
    queued.delete(key);
    run();
  });
}

/** How long a paced view waits after a draw that took costMs: a share of the time, at least
    minGapMs, never over maxGapMs. */
function pacedGap(costMs, factor, maxGapMs, minGapMs = 0) {
  return Math.min(maxGapMs, Math.max(minGapMs, Math.max(0, costMs) * factor));
}

/** Whether enough of a box is on screen to be watched: `enough` px of it, or half of a shorter one. */
function inViewEnough(visibleHeight, height, enough = 200) {
  return visibleHeight > 0 && visibleHeight >= Math.min(enough, height / 2);
}

const FRAME_MS = 1000 / 60;
// A view mostly off screen draws at most 4 times a second (panels, the event log): it still
// costs script, style and layout below the fold, and nobody watches it move.
const OFF_SCREEN_PACE = { factor: 20, minGapMs: 250, maxGapMs: 1000 };
const paced = new Map();
/**
 * Like onFrame, for a view whose drawing grows with the run: after a frame in which it drew
 * took c ms (its script and the style, layout and paint it caused, measured to the next
 * frame), the next draw waits c × factor ms (at most maxGapMs). A costly view then takes
 * about 1 / (1 + factor) of the time and the frames between its draws stay short; a cheap
 * view draws every frame, as with onFrame.
 */
function onPacedFrame(key, fn, pace) {
  let entry = paced.get(key);
  if (!entry) paced.set(key, (entry = { next: 0, queued: false }));
  entry.fn = fn;
  // Asked for once per event at thousands a second: the pace is read only when a draw is queued.
  if (entry.queued) return;
  const { factor = 4, maxGapMs = 500, minGapMs = 0 } = pace || {};
  entry.queued = true;
  const attempt = (now) => {
    if (now < entry.next) {
      // Asked again in the frame after its time, not in every frame until then: each paced
      // view polling every frame cost a callback a frame apiece.
      setTimeout(() => requestAnimationFrame(attempt), entry.next - now);
      return;
    }
    entry.queued = false;
    entry.fn();
    requestAnimationFrame((after) => {
      entry.next = after + pacedGap(after - now - FRAME_MS, factor, maxGapMs, minGapMs);
    });
  };
  requestAnimationFrame(attempt);
}

/** fn(el) when an element matching `selector` in `root` is clicked, or has the focus when Enter or Space is pressed. */
function onActivate(root, selector, fn) {
  root.addEventListener("click", (event) => {
    const el = event.target.closest(selector);
    if (el) fn(el);
  });
  root.addEventListener("keydown", (event) => {
    const el = event.target.closest(selector);
    if (el && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      fn(el);
    }
  });
}

export { h, fmtMs, cssVar, reducedMotion, inViewEnough, onActivate, onFrame, onPacedFrame, pacedGap, OFF_SCREEN_PACE };
