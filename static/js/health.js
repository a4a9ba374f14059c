/* The broker status bar on every page: which broker each protocol uses and whether it is
   reachable, polled from GET /api/health/ every few seconds. */
import { api } from "./api.js";

const EVERY_MS = 5000;

function render(bar, brokers) {
  for (const [protocol, b] of Object.entries(brokers)) {
    const el = bar.querySelector(`.broker[data-protocol="${protocol}"]`);
    if (!el) continue;
    el.dataset.ok = String(Boolean(b.ok));
    el.querySelector(".broker-status").textContent = b.ok ? "✓ reachable" : "✗ unreachable";
    el.querySelector(".name").textContent = b.name || "";
    el.querySelector(".mode").textContent = b.mode || "";
    el.querySelector(".url").textContent = b.url || "";
    el.querySelector(".broker-error").textContent = b.ok ? "" : b.error || "not reachable";
  }
}

function markUnknown(bar, reason) {
  for (const el of bar.querySelectorAll(".broker")) {
    el.dataset.ok = "false";
    el.querySelector(".broker-status").textContent = "? unknown";
    el.querySelector(".broker-error").textContent = reason;
  }
}

async function poll(bar) {
  if (!document.hidden) {
    try {
      const { ok, status, data } = await api.health();
      if (data && data.brokers) render(bar, data.brokers);
      else markUnknown(bar, `health check answered HTTP ${status}${ok ? "" : " (error)"}`);
      bar.dataset.checkedAt = String(Date.now());
    } catch (e) {
      markUnknown(bar, "the dashboard server is not reachable");
    }
  }
  setTimeout(() => poll(bar), EVERY_MS);
}

// Every page has the bar; a module runs once, after the document is parsed.
const bar = document.getElementById("broker-bar");
if (bar) poll(bar);
