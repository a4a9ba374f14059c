/* The broker status bar on every page: which broker each protocol uses and whether it is
   reachable, polled from GET /api/health/ every few seconds. One summary line by default
   ("Brokers: Kafka ✓ …"); the cards open on click (remembered) and by themselves while a
   broker is down, so an error is never hidden. */
import { api } from "./api.js";

const EVERY_MS = 5000;
const OPEN_KEY = "flow-brokers-open";
const MARKS = { true: ["✓", "reachable"], false: ["✗", "not reachable"], unknown: ["…", "checking"] };

function chosenOpen() {
  try {
    return localStorage.getItem(OPEN_KEY) === "1";
  } catch (e) {
    return false;
  }
}

/** Show the cards if the user opened them or any broker is down; the summary line always. */
function showState(bar) {
  const down = [...bar.querySelectorAll(".broker")].some((el) => el.dataset.ok === "false");
  const open = down || chosenOpen();
  bar.dataset.expanded = String(open);
  bar.dataset.down = String(down);
  const button = bar.querySelector(".broker-summary");
  if (!button) return;
  button.setAttribute("aria-expanded", String(open));
  button.querySelector(".broker-summary-more").textContent = down ? "" : open ? "▴" : "▾";
  button.title = down ? "A broker is not reachable: its details stay open" : open ? "Hide the brokers' details" : "Show the brokers' details";
  for (const el of bar.querySelectorAll(".broker")) {
    const chip = bar.querySelector(`.broker-chip[data-protocol="${el.dataset.protocol}"]`);
    if (!chip) continue;
    const [mark, words] = MARKS[el.dataset.ok] || MARKS.unknown;
    chip.dataset.ok = el.dataset.ok;
    const status = chip.querySelector(".broker-chip-status");
    status.textContent = mark;
    status.setAttribute("aria-label", words);
  }
}

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
    showState(bar);
  }
  setTimeout(() => poll(bar), EVERY_MS);
}

// Every page has the bar; a module runs once, after the document is parsed.
const bar = document.getElementById("broker-bar");
if (bar) {
  showState(bar);
  const button = bar.querySelector(".broker-summary");
  if (button) {
    button.addEventListener("click", () => {
      if (bar.dataset.down === "true") return; // a broker is down: its error stays in view
      try { localStorage.setItem(OPEN_KEY, bar.dataset.expanded === "true" ? "0" : "1"); } catch (e) { /* not remembered */ }
      showState(bar);
    });
  }
  poll(bar);
}
