"""The sync-vs-async page: one lane per protocol, the table equal to the API, the backlog during an outage.

Runs every lane this build has (``browser.compare_protocols()``: HTTP and gRPC always; the
async lanes once their modules are merged). Stable hooks the tests read:

- ``#sva-lanes`` with ``data-outage-start`` / ``data-outage-end`` (run time, ms);
- ``.sva-lane[data-protocol][data-pattern]`` with ``data-waits`` (caller wait bars drawn),
  ``data-handlings``, ``data-errors``, ``data-duplicates``, ``data-backlog-max``,
  ``data-backlog-samples``, ``data-backlog-peak-t``, ``data-backlog-last``; inside it
  ``path.sva-backlog`` (the area) and ``rect.sva-outage``;
- ``#sva-table[data-source=live|result]`` with ``tr[data-protocol]`` and
  ``td[data-figure=<result key, e.g. perceived.p50>][data-value]``;
- ``#sva-verdicts li[data-protocol][data-source]``; ``#sva-latency[data-protocols]`` (plotly).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

FIGURES = ["pattern", "perceived.p50", "perceived.p95", "perceived.p99", "end_to_end.p50", "end_to_end.p95",
           "completed", "errors", "lost", "duplicates", "backlog_max"]
ORDERS = 8

LANES = """() => [...document.querySelectorAll("#sva-lanes .sva-lane")].map((l) => ({...l.dataset}))"""
TABLE = """() => Object.fromEntries([...document.querySelectorAll("#sva-table tbody tr")].map((tr) => [tr.dataset.protocol,
  Object.fromEntries([...tr.querySelectorAll("td[data-figure]")].map((td) => [td.dataset.figure, td.dataset.value]))]))"""


def figure(figures: dict[str, Any], key: str) -> str:
    """A figure of result.protocols[p] as the table's data-value writes it (JavaScript's String(number))."""
    value: Any = figures
    for part in key.split("."):
        value = value[part]
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_page(page: Any, server: browser.LiveServer, params: dict[str, Any]) -> dict[str, Any]:
    """Start the run from the form (the protocols ticked one by one), wait for its end, reveal it all."""
    run_id = browser.start_run(page, server, "sync-vs-async", params)
    assert browser.wait_until_finished(page, 120) == "succeeded"
    browser.reveal_all(page)
    expect(page.locator("#sva-table")).to_have_attribute("data-source", "result")
    return server.get_json(f"/api/runs/{run_id}/")


def test_lanes_draw_one_row_per_protocol_and_the_table_is_the_api(daphne_server, browser_page):
    page = browser_page
    protocols = browser.compare_protocols()
    run = run_page(page, daphne_server, {"protocols": protocols, "orders": ORDERS, "rate": 20, "work_ms": 60,
                                         "downstream": "up"})
    assert run["params"]["protocols"] == protocols
    result = run["result"]["protocols"]

    lanes = page.evaluate(LANES)
    assert [lane["protocol"] for lane in lanes] == protocols
    for lane in lanes:
        assert lane["pattern"] == result[lane["protocol"]]["pattern"], lane
        assert int(lane["waits"]) == ORDERS, lane  # every order's wait is drawn
        assert int(lane["handlings"]) >= ORDERS, lane
    assert page.locator("#sva-lanes .sva-lane path.sva-waits.ok").count() == len(protocols)

    table = page.evaluate(TABLE)
    assert sorted(table) == sorted(protocols)
    for protocol in protocols:
        assert table[protocol] == {key: figure(result[protocol], key) for key in FIGURES}, protocol
    for protocol in protocols:
        verdict = page.locator(f'#sva-verdicts li[data-protocol="{protocol}"]')
        expect(verdict).to_have_attribute("data-source", "result")
        expect(verdict).to_contain_text(result[protocol]["verdict"])
    expect(page.locator("#sva-latency")).to_have_attribute("data-protocols", ",".join(protocols))
    page.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(page, "sync-vs-async-up")

    # A replay starts from nothing: the lanes and the table follow the player, from the events.
    page.keyboard.press("Home")
    expect(page.locator("#player")).to_have_attribute("data-index", "0")
    expect(page.locator("#sva-table")).to_have_attribute("data-source", "live")
    assert all(lane["waits"] == "0" for lane in page.evaluate(LANES))
    browser.reveal_all(page)
    expect(page.locator("#sva-table")).to_have_attribute("data-source", "result")
    assert page.evaluate(TABLE) == table

    # Presentation mode: the lanes in the first screen, nothing wider than it.
    page.goto(page.url.split("?")[0] + "?present=1")
    browser.wait_until_finished(page)
    browser.reveal_all(page)
    box = page.locator("#sva-lanes").bounding_box()
    assert box is not None and box["y"] < 720 and box["x"] + box["width"] <= 1280, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    browser.screenshot(page, "sync-vs-async-present")

    # "Edit and run again" ticks the run's protocols, and only those.
    page.goto(f"{daphne_server.url}/workflows/sync-vs-async/?from={run['id']}")
    expect(page.locator("#prefill-note")).to_have_attribute("data-from", str(run["id"]))
    ticked = page.evaluate("""() => [...document.querySelectorAll("#param-protocols input:checked")].map((b) => b.value)""")
    assert ticked == protocols
    browser.screenshot(page, "sync-vs-async-form")


def settled_box(locator: Any, timeout_s: float = 5.0) -> dict | None:
    """The element's box once it has one: a panel that renders again (the run's last summary)
    replaces its lanes, and a box asked of the replaced element is None."""
    deadline = time.monotonic() + timeout_s
    while (box := locator.bounding_box()) is None and time.monotonic() < deadline:
        locator.page.wait_for_timeout(50)
    return box


def test_the_backlog_area_rises_during_an_outage_and_drains_after(daphne_server, browser_page):
    page = browser_page
    protocols = browser.compare_protocols()
    if not any(p not in ("http", "grpc") for p in protocols):
        pytest.fail("no async lane in this build: the backlog needs one (merge a lane branch)")
    run = run_page(page, daphne_server, {"protocols": protocols, "orders": 12, "rate": 10, "work_ms": 50,
                                         "downstream": "down", "outage_ms": 1000})
    result = run["result"]
    outage = result["outage"]
    lanes_el = page.locator("#sva-lanes")
    start = float(lanes_el.get_attribute("data-outage-start"))
    end = float(lanes_el.get_attribute("data-outage-end"))
    assert (start, end) == pytest.approx((outage["start_ms"], outage["end_ms"]), abs=50)
    assert page.locator("#sva-lanes rect.sva-outage").count() == len(protocols)  # shaded across every lane

    for lane in page.evaluate(LANES):
        figures = result["protocols"][lane["protocol"]]
        if lane["pattern"] == "sync":
            assert int(lane["errors"]) > 0, lane  # the outage fails sync callers
            continue
        assert int(lane["errors"]) == 0 and figures["lost"] == 0, lane
        assert int(lane["backlogMax"]) == figures["backlog_max"] > 0, lane
        # It rose while the downstream was down (not before) and drained once it was back.
        assert float(lane["backlogPeakT"]) > start, lane
        assert lane["backlogLast"] == "0", lane
        area = settled_box(page.locator(f'.sva-lane[data-protocol="{lane["protocol"]}"] path.sva-backlog'))
        assert area is not None and area["height"] > 20, area
    page.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(page, "sync-vs-async-down")
    page.locator("#panel").scroll_into_view_if_needed()
    browser.screenshot(page, "sync-vs-async-down-panel")


def test_the_protocols_field_is_a_checkbox_per_protocol(daphne_server, browser_page):
    page = browser_page
    page.goto(f"{daphne_server.url}/workflows/sync-vs-async/")
    group = page.locator("#param-protocols")
    expect(group).to_have_attribute("role", "group")
    assert group.get_attribute("aria-labelledby") == "param-protocols-label"
    boxes = group.locator("input[type=checkbox]")
    assert [b.get_attribute("value") for b in boxes.all()] == ["http", "grpc", "celery", "amqp", "kafka", "mqtt"]
    assert all(b.is_checked() for b in boxes.all())  # the default: all six
    # The keyboard alone: Tab reaches each box, Space toggles it.
    page.focus("#param-protocols-http")
    page.keyboard.press("Space")
    expect(page.locator("#param-protocols-http")).not_to_be_checked()
    page.keyboard.press("Tab")
    expect(page.locator("#param-protocols-grpc")).to_be_focused()
    # None ticked: the server says why, next to the field; nothing starts.
    group.locator("button.multi-none").click()
    page.click("#start")
    expect(page.locator('[data-error-for="protocols"]')).not_to_be_empty()
    assert "/workflows/" in page.url
    group.locator("button.multi-all").click()
    assert all(b.is_checked() for b in boxes.all())
