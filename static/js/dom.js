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

export { h, fmtMs, cssVar, reducedMotion, onActivate, onFrame };
