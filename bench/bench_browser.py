"""The run page at a high event rate: frame intervals while following a live run.

A real daphne (dashboard/tests/browser.py's LiveServer) and Debian's Chromium, headless,
1280×720. Each case starts a ``kafka-partitions`` run through the API, opens its run page,
waits until events stream, then records ``requestAnimationFrame`` intervals over
``WINDOW_S`` seconds inside the page: median, p95 and max frame, with the events per
second the page received meanwhile. The server's RSS growth is its peak during the run
minus its RSS before the run. Goal (issue 14): frame p95 ≤ 50 ms, RSS growth < 150 MB.

Frame intervals on a shared machine also measure everything else it runs: the notes give
the page's own cost beside them, as the share of the window its main thread was busy
(CDP ``Performance.getMetrics``) and the CPU time Chromium's processes used (``/proc``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .proc import stat_fields

WINDOW_S = 10.0
FRAME_P95_GOAL_MS = 50.0
RSS_GOAL_MB = 150.0
# After the window: how long the run may go on (its RSS peak is watched meanwhile); the 1M
# message run takes a minute or two on a shared machine.
FINISH_S = 300.0


@dataclass(frozen=True)
class Case:
    name: str
    params: dict[str, Any]


CASES = [
    # ~4 events per message: 1,250 messages/s is about 5,000 events/s, every one stored and streamed.
    Case("full run at ~5,000 events/s", {"messages": 40_000, "rate": 1250, "keys": 16, "fidelity": "full"}),
    # The workflow's most messages (1M, sampled from the start: FLOWS_FIDELITY_MAX_PLANNED), as
    # fast as the embedded Kafka broker (Tansu) takes them.
    Case("1M-message auto run", {"messages": 1_000_000, "rate": 0, "keys": 16, "fidelity": "auto"}),
]

# Runs inside the page: frame intervals and the events received over the window.
MEASURE_JS = """async (windowMs) => {
  const received = () => (window.flowRun ? window.flowRun.received.lastSeq : 0);
  const shown = () => (window.flowRun ? window.flowRun.player.index : 0);
  const start = { received: received(), shown: shown(), t: performance.now() };
  const frames = [];
  await new Promise((resolve) => {
    let last = null;
    const step = (now) => {
      if (last !== null) frames.push(now - last);
      last = now;
      if (now - start.t < windowMs) requestAnimationFrame(step); else resolve();
    };
    requestAnimationFrame(step);
  });
  const seconds = (performance.now() - start.t) / 1000;
  return { frames, received: (received() - start.received) / seconds, shown: (shown() - start.shown) / seconds };
}"""


def frame_stats(intervals: list[float]) -> dict[str, float]:
    """median, p95 (nearest rank) and max of frame intervals in ms; fps over their sum."""
    ordered = sorted(intervals)
    if not ordered:
        return {"median": float("nan"), "p95": float("nan"), "max": float("nan"), "fps": 0.0}
    rank = min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))
    return {"median": ordered[len(ordered) // 2], "p95": ordered[rank], "max": ordered[-1],
            "fps": len(ordered) / (sum(ordered) / 1000)}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (daphne runs the workflows in threads)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def accepted_params(server: Any, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The case's params the workflow knows, capped at its maxima; notes on what changed."""
    workflows = server.get_json("/api/workflows/")
    items = workflows.get("workflows", workflows) if isinstance(workflows, dict) else workflows
    spec = next(w for w in items if w.get("slug") == "kafka-partitions")
    known = spec.get("params", {})
    if isinstance(known, list):
        known = {p["name"]: p for p in known}
    kept, notes = {}, []
    for name, value in params.items():
        if name not in known:
            notes.append(f"no {name} param")
            continue
        maximum = known[name].get("max")
        if maximum is not None and isinstance(value, (int, float)) and value > maximum:
            notes.append(f"{name} capped at {maximum:,}")
            value = maximum
        kept[name] = value
    return kept, notes


def measure(server: Any, browser: Any, case: Case) -> dict[str, Any]:
    from dashboard.tests import browser as helpers
    from flows.tests.polling import wait_until

    params, notes = accepted_params(server, case.params)
    before = rss_mb(server.proc.pid)
    status, created = server.post_json("/api/runs/", {"workflow": "kafka-partitions", "params": params})
    assert status == 201, created
    run_id = created["id"]
    page, errors = helpers.new_page(browser)
    peak = before
    try:
        page.goto(f"{server.url}/runs/{run_id}/")
        # Following, not loading: the window opens once events stream and plotly.js (5 MB,
        # loaded after the page is live) has been evaluated.
        page.wait_for_function("() => window.flowRun && window.flowRun.received.lastSeq > 200 && window.Plotly",
                               timeout=60_000)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        work_before, cpu_before = main_thread_work(cdp), chromium_cpu_s()
        result = page.evaluate(MEASURE_JS, WINDOW_S * 1000)
        work = {k: (v - work_before[k]) / WINDOW_S for k, v in main_thread_work(cdp).items()}
        work["chromium CPU"] = (chromium_cpu_s() - cpu_before) / WINDOW_S
        peak = max(peak, rss_mb(server.proc.pid))
        path = f"/api/runs/{run_id}/"
        # The RSS peak is over the whole run: a server that buffers for a slow client grows late.
        def finished() -> bool:
            nonlocal peak
            peak = max(peak, rss_mb(server.proc.pid))
            return server.get_json(path)["state"] in helpers.FINAL_STATES
        try:
            wait_until(finished, FINISH_S, "the run to finish", step=1.0)
        except AssertionError:
            notes.append(f"run still going after {FINISH_S:g} s: cancelled")
        notes.append(run_outcome(server.get_json(path)))
        helpers.screenshot(page, f"bench-browser-{case.params.get('fidelity', 'run')}")
    finally:
        page.context.close()
        server.post_json(f"/api/runs/{run_id}/actions/", {"action": "cancel"})  # answered 409 once finished
    if errors:
        notes.append(f"{len(errors)} page errors, first: {errors[0][:120]}")
    return {**frame_stats(result["frames"]), "received": result["received"], "shown": result["shown"],
            "rss_growth": peak - before, "work": work, "notes": notes}


def descendants(pid: int, table: dict[int, list[str]]) -> list[int]:
    """Every process under pid in a stat_fields() table (here: Playwright's driver and its Chromium)."""
    children: dict[int, list[int]] = {}
    for child, fields in table.items():
        children.setdefault(int(fields[1]), []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def chromium_cpu_s() -> float:
    """CPU seconds (user + system) Chromium's processes under this one have used so far.

    On a shared machine a frame interval also measures the other processes; the CPU the
    browser spends on the page does not."""
    table = stat_fields()
    ticks = 0
    for pid in descendants(os.getpid(), table):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"chrom" not in cmdline.read().split(b"\0", 1)[0]:
                    continue
        except OSError:
            continue
        ticks += int(table[pid][11]) + int(table[pid][12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_outcome(summary: dict[str, Any]) -> str:
    """What the run did: its state, messages processed, events recorded, and its fidelity."""
    counts = summary.get("counts") or {}
    fidelity = (summary.get("fidelity") or {}).get("mode", "full")
    return (f"run {summary.get('state')}: {counts.get('processed', 0):,} processed, "
            f"{counts.get('events', 0):,} events recorded ({fidelity})")


def main_thread_work(cdp: Any) -> dict[str, float]:
    """Seconds the page's main thread spent so far: in all, in scripts, in style and layout.

    Frame intervals depend on what else the machine runs; the share of time the page itself
    keeps its main thread busy says what the page costs."""
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {"busy": metrics["TaskDuration"], "script": metrics["ScriptDuration"],
            "style+layout": metrics["RecalcStyleDuration"] + metrics["LayoutDuration"]}


def run(report: Any) -> None:
    from playwright.sync_api import sync_playwright

    from dashboard.tests import browser as helpers

    with helpers.LiveServer() as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=helpers.CHROMIUM, args=helpers.CHROMIUM_ARGS, headless=True)
        try:
            for case in CASES:
                figures = measure(server, browser, case)
                note = (f"median {figures['median']:.1f} ms, max {figures['max']:.0f} ms, {figures['fps']:.0f} fps; "
                        f"page received {figures['received']:,.0f} events/s, showed {figures['shown']:,.0f}/s")
                work = figures["work"]
                note += "; main thread busy " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in work.items())
                if figures["notes"]:
                    note += "; " + "; ".join(figures["notes"])
                report.add(f"run page following a {case.name}: frame p95", figures["p95"], "ms",
                           f"≤ {FRAME_P95_GOAL_MS:g} ms", figures["p95"] <= FRAME_P95_GOAL_MS, note)
                report.add(f"run page following a {case.name}: server RSS growth", figures["rss_growth"], "MB",
                           f"< {RSS_GOAL_MB:g} MB", figures["rss_growth"] < RSS_GOAL_MB)
        finally:
            browser.close()
