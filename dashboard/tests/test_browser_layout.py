"""The run page as an instrument on a 1280×720 projector, for every workflow.

For each workflow, with its default parameters and with the largest topology its
parameters allow (messages kept few so runs are quick): once the run finished and the
player revealed every event,

- at 1280×720 the page is no wider than the window, the topology and the counters start in
  the first screen (topology near the top) and so does the workflow's panel;
- no two texts of the topology overlap, and no text overlaps another actor's box;
- at 390×844 (a phone) the page is no wider than the window either.

One run per workflow and parameter set; both viewports are checked on the same page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dashboard.tests import browser
from flows.registry import WORKFLOWS
from flows.tests.polling import wait_until

pytestmark = pytest.mark.browser

# The largest topology each workflow's parameters allow, with few messages.
LONG = "invoices-archive-eu.west-2026"  # queue names up to 40 characters must not be cut
MAX_TOPOLOGY: dict[str, dict[str, Any]] = {
    "http-crud": {"persons": 3, "repeat": 1, "rate": 0, "delay_ms": 0},
    "grpc-person": {"calls": 12, "concurrency": 32, "rate": 0, "delay_ms": 0},
    "kafka-partitions": {"partitions": 32, "keys": 64, "messages": 64, "rate": 0},
    "kafka-consumer-groups": {"groups": 4, "members": 8, "partitions": 32, "keys": 64, "messages": 40,
                              "rate": 0, "process_ms": 0},
    "amqp-routing": {
        "exchange_type": "topic", "messages": 12, "rate": 0, "work_ms": 0, "consumers": 4,
        "bindings": [{"queue": q, "key": k} for q, k in [
            ("billing", "order.created.*"), ("shipping", "order.paid.#"), ("eu", "*.*.eu"), ("alerts", "#.failed"),
            (LONG, "order.#"), ("audit", "#"), ("billing", "invoice.#"), ("shipping", "shipment.*.*"),
            ("eu", "order.*.eu"), ("alerts", "*.failed"), (LONG, "invoice.*.eu"), ("audit", "order.paid")]],
    },
    "amqp-redelivery": {"messages": 8, "rate": 0, "consumers": 4, "crash_at": 3, "work_ms": 20, "restart_ms": 100},
    "celery-order": {"orders": 6, "rate": 0, "work_ms": 200, "workers": 3, "crash_at": 2},
    "mqtt-qos": {
        "messages": 12, "rate": 0, "disconnect_at": 4, "away_messages": 2,
        "topics": [f"home/room-{i}/temp" for i in range(1, 11)] + ["alerts/smoke", "alerts/water-leak/basement"],
        "subscribers": [{"name": f"s{i}", "filter": f, "qos": i % 3, "clean_session": False, "late": False}
                        for i, f in enumerate(["home/+/temp", "home/#", "home/room-1/+", "alerts/#",
                                               "+/+/temp", "alerts/water-leak/#", "home/room-2/temp"], 1)]
                       + [{"name": "late", "filter": "#", "qos": 1, "clean_session": True, "late": True}],
        "disconnect": "s1,s2",
    },
    "sync-vs-async": {"orders": 6, "rate": 0, "work_ms": 20},
}
# Defaults, but quick: rates and delays that only pace the run.
DEFAULT_QUICK: dict[str, dict[str, Any]] = {
    "http-crud": {"rate": 0, "delay_ms": 0},
    "grpc-person": {"rate": 0, "delay_ms": 0},
    "kafka-partitions": {"rate": 0},
    "kafka-consumer-groups": {"rate": 0, "process_ms": 0},
    "amqp-routing": {"rate": 0, "work_ms": 0},
    "amqp-redelivery": {"rate": 0, "work_ms": 20, "restart_ms": 100},
    "celery-order": {"rate": 0, "work_ms": 200},
    "mqtt-qos": {"rate": 0},
    "sync-vs-async": {"rate": 0, "work_ms": 20},
}
CASES = [(slug, "default", DEFAULT_QUICK[slug]) for slug in WORKFLOWS] + [(slug, "max", MAX_TOPOLOGY[slug]) for slug in WORKFLOWS]

# Where things are after the run, in page coordinates (the page is scrolled to the top).
POSITIONS = """() => {
  const top = (s) => { const b = document.querySelector(s).getBoundingClientRect();
                       return {top: b.top + scrollY, bottom: b.bottom + scrollY}; };
  return {width: document.documentElement.scrollWidth, inner: innerWidth,
          topology: top("#topology-svg"), counters: top("#counters"), panel: top("#panel"),
          wide: [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > innerWidth + 1)
                  .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.getAttribute("class") || ""}`)};
}"""

# Texts of the topology that overlap each other or another actor's box (tokens are in flight, not layout).
OVERLAPS = """() => {
  const svg = document.querySelector("#topology-svg");
  const visible = (el) => el.getAttribute("display") !== "none" && !el.closest("[display='none']")
    && el.textContent.trim() !== "" && el.getBoundingClientRect().width > 0;
  const texts = [...svg.querySelectorAll("text")].filter((t) => !t.closest(".token") && visible(t));
  const box = (el) => el.getBoundingClientRect();
  const hit = (a, b) => a.left + 1 < b.right && b.left + 1 < a.right && a.top + 1 < b.bottom && b.top + 1 < a.bottom;
  const name = (el) => { const node = el.closest("[data-actor]");
                         return `${node ? node.dataset.actor + ": " : ""}${el.textContent.slice(0, 40)}`; };
  const problems = [];
  for (let i = 0; i < texts.length; i += 1) {
    for (let j = i + 1; j < texts.length; j += 1) {
      if (hit(box(texts[i]), box(texts[j]))) problems.push(`"${name(texts[i])}" overlaps "${name(texts[j])}"`);
    }
  }
  const rects = [...svg.querySelectorAll(".node")].map((g) => [g, box(g.querySelector("rect"))]);
  for (const t of texts) {
    const own = t.closest(".node");
    for (const [g, r] of rects) {
      if (g !== own && hit(box(t), r)) problems.push(`"${name(t)}" overlaps the box of ${g.dataset.actor}`);
    }
  }
  return {count: texts.length, problems: problems.slice(0, 12)};
}"""

# Each node's full actor name is there for focus: aria-label and <title>.
NAMES = """() => [...document.querySelectorAll("#topology-svg .node")].map((g) => ({
  actor: g.dataset.actor, focusable: g.tabIndex === 0, label: g.getAttribute("aria-label") || "",
  title: (g.querySelector("title") || {}).textContent || ""}))"""

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "layout"
SETTLE_MS = 10_000


def settled(page: Any) -> dict[str, Any]:
    """Positions once the page stopped overflowing (relayouts follow a resize by a frame or two),
    or as they are after SETTLE_MS: then the assertions below say what is wrong."""
    try:
        page.wait_for_function("() => document.documentElement.scrollWidth <= innerWidth", timeout=SETTLE_MS)
    except PlaywrightTimeout:
        pass
    page.wait_for_function("() => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(() => ok(true))))")
    return page.evaluate(POSITIONS)


def run_to_end(server: browser.LiveServer, slug: str, params: dict[str, Any]) -> int:
    status, created = server.post_json("/api/runs/", {"workflow": slug, "params": params})
    assert status == 201, created
    run_id = created["id"]
    wait_until(lambda: server.get_json(f"/api/runs/{run_id}/")["state"] in browser.FINAL_STATES, 180,
               f"{slug} run {run_id} to finish")
    return run_id


@pytest.mark.parametrize(("slug", "size", "params"), CASES, ids=[f"{s}-{n}" for s, n, _ in CASES])
def test_run_page_fits_a_projector_and_a_phone(daphne_server, browser_page, slug, size, params):
    page = browser_page
    run_id = run_to_end(daphne_server, slug, params)
    page.goto(f"{daphne_server.url}/runs/{run_id}/")
    browser.wait_until_finished(page)
    browser.reveal_all(page)
    page.evaluate("window.scrollTo(0, 0)")
    at = settled(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{slug}-{size}.png"))
    assert at["width"] <= at["inner"], f"page is {at['width']} px wide at 1280: {at['wide']}"
    # The first screen shows the topology (from near its top), the counters and the panel's top.
    assert at["topology"]["top"] < 300, at
    drawn_height = at["topology"]["bottom"] - at["topology"]["top"]
    assert min(at["topology"]["bottom"], 720) - at["topology"]["top"] >= min(drawn_height, 300), at
    assert at["counters"]["top"] < 720, at
    assert at["panel"]["top"] < 720, at

    drawn = page.evaluate(OVERLAPS)
    assert drawn["count"] >= 2, "the topology draws no text"
    assert drawn["problems"] == [], "\n".join(drawn["problems"])

    names = page.evaluate(NAMES)
    assert names, "the topology draws no actor"
    for node in names:
        assert node["focusable"] and node["label"].startswith(node["actor"]) and node["title"] == node["actor"], node
    if slug == "amqp-routing" and size == "max":
        assert any(LONG in n["actor"] for n in names)
        # The long queue name is drawn whole (wrapped onto two lines at most), not cut.
        shown = page.evaluate(f"""() => [...document.querySelectorAll(
                                     '#topology-svg .node[data-actor="queue:{LONG}"] .node-name tspan')]
                                     .map((t) => t.textContent).join('')""")
        assert shown == LONG

    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => innerWidth === 390")
    phone = settled(page)
    assert phone["width"] <= phone["inner"], f"page is {phone['width']} px wide at 390: {phone['wide']}"


def test_broker_line_opens_on_click_and_by_itself_when_a_broker_is_down(daphne_server, chromium_browser):
    from playwright.sync_api import expect

    page, errors = browser.new_page(chromium_browser)
    try:
        page.goto(daphne_server.url + "/")
        page.wait_for_function("() => document.getElementById('broker-bar').dataset.checkedAt")
        bar = page.locator("#broker-bar")
        # All brokers answer: one line, the cards folded away.
        expect(bar).to_have_attribute("data-expanded", "false")
        expect(page.locator('.broker-chip[data-protocol="kafka"]')).to_have_attribute("data-ok", "true")
        expect(page.locator("#broker-list")).to_be_hidden()
        page.click("#broker-summary")
        expect(page.locator('.broker[data-protocol="kafka"]')).to_be_visible()
        expect(page.locator("#broker-summary")).to_have_attribute("aria-expanded", "true")
        page.reload()  # remembered
        expect(page.locator('.broker[data-protocol="kafka"]')).to_be_visible()
        page.click("#broker-summary")
        expect(page.locator("#broker-list")).to_be_hidden()
    finally:
        page.context.close()
    assert not errors, errors

    # A broker that does not answer: the cards open by themselves, with its error, and stay open.
    with browser.LiveServer(extra_env={"MQTT_URL": f"mqtt://127.0.0.1:{browser.free_port()}"}) as down:
        page, errors = browser.new_page(chromium_browser)
        try:
            page.goto(down.url + "/")
            mqtt = page.locator('.broker[data-protocol="mqtt"]')
            expect(mqtt).to_have_attribute("data-ok", "false")
            expect(mqtt).to_be_visible()
            expect(mqtt.locator(".broker-error")).not_to_be_empty()
            expect(page.locator('.broker-chip[data-protocol="mqtt"]')).to_have_attribute("data-ok", "false")
            page.click("#broker-summary")
            expect(mqtt).to_be_visible()
        finally:
            page.context.close()
