"""Presentation mode of the run page in a real browser, on one finished AMQP redelivery run.

``?present=1`` opens the mode: the chrome is hidden and the topology, counters and player
fill a 1280×720 screen without horizontal overflow. The keyboard drives the player; F and
the Present button toggle the mode and the address follows it; leaving full screen keeps
the mode; Escape closes the message panel first and leaves the mode next.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

PARAMS = {"messages": 6, "rate": 0, "consumers": 2, "crash_at": 2, "work_ms": 20, "restart_ms": 100}
# Hidden while presenting: the site's chrome and the run page's small print.
CHROME = ["header.site", "#broker-bar", "#run-params", "#exports", "#run-again", ".filters", "#player .keys"]


@pytest.fixture(scope="module")
def finished_run(daphne_server: browser.LiveServer) -> tuple[int, int]:
    """(run id, number of events) of a finished run with a redelivery."""
    run = browser.api_run(daphne_server, "amqp-redelivery", PARAMS)
    assert run["state"] == "succeeded", run
    return run["id"], len(daphne_server.all_events(run["id"]))


def open_run(page: Any, server: browser.LiveServer, run_id: int, query: str = "") -> int:
    page.goto(f"{server.url}/runs/{run_id}/{query}")
    browser.wait_until_finished(page)
    return browser.reveal_all(page)


def presenting(page: Any) -> bool:
    return page.evaluate("document.body.classList.contains('presenting')")


def topology_on_screen(page: Any) -> float:
    """Area (px²) of the topology drawing inside the first screen, the page scrolled to its top."""
    return page.evaluate("""() => { window.scrollTo(0, 0);
        const r = document.querySelector("#topology-svg").getBoundingClientRect();
        const w = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0));
        const h = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
        return w * h; }""")


def page_width(page: Any) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_present_in_the_address_opens_the_mode_on_one_screen(daphne_server, chromium_browser, finished_run):
    run_id, total = finished_run
    page, errors = browser.new_page(chromium_browser)
    try:
        assert open_run(page, daphne_server, run_id) == total
        assert not presenting(page)
        normal_area = topology_on_screen(page)
        for selector in ("header.site", "#broker-bar", "#present-toggle"):
            expect(page.locator(selector).first).to_be_visible()

        assert open_run(page, daphne_server, run_id, "?present=1") == total
        assert presenting(page)
        for selector in CHROME:
            expect(page.locator(selector).first).to_be_hidden()
        # What stays fills the screen: the player, every counter and the whole topology.
        for selector in ("#player", "#counters", "#topology-svg", "#player-status", ".present-keys"):
            expect(page.locator(selector)).to_be_in_viewport(ratio=1)
        expect(page.locator("#panel")).to_be_in_viewport()
        box = page.locator("#topology-svg").bounding_box()
        assert box["width"] > 400 and box["height"] > 250, box
        assert topology_on_screen(page) > normal_area, "the topology is not larger than in the normal page"
        assert page_width(page) <= browser.VIEWPORT["width"], "horizontal overflow in presentation mode"
        # A freshly loaded page has no user gesture: the mode applies without full screen.
        assert page.evaluate("document.fullscreenElement") is None
        expect(page.locator("#player-status")).to_contain_text(f"event {total} of {total}")
        browser.screenshot(page, "presentation-amqp-redelivery")
        assert not errors, errors
    finally:
        page.context.close()


def test_the_keyboard_drives_the_player_while_presenting(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, total = finished_run
    open_run(page, daphne_server, run_id, "?present=1")
    player = page.locator("#player")
    status = page.locator("#player-status")
    expect(player).to_have_attribute("data-playing", "false")

    page.keyboard.press(" ")  # at the end of a finished run: replay from the start
    expect(player).to_have_attribute("data-playing", "true")
    page.keyboard.press(" ")
    expect(player).to_have_attribute("data-playing", "false")

    page.keyboard.press("Home")
    expect(player).to_have_attribute("data-index", "0")
    expect(status).to_contain_text(f"event 0 of {total}")
    page.keyboard.press("ArrowRight")
    expect(status).to_contain_text(f"event 1 of {total}")
    page.keyboard.press("ArrowRight")
    expect(status).to_contain_text(f"event 2 of {total}")
    page.keyboard.press("ArrowLeft")
    expect(status).to_contain_text(f"event 1 of {total}")

    speed = page.locator("#player-speed")
    expect(speed).to_have_value("1")  # a fresh browser: the default speed
    page.keyboard.press("+")
    expect(speed).to_have_value("2")
    page.keyboard.press("-")
    page.keyboard.press("-")
    expect(speed).to_have_value("0.5")

    page.keyboard.press("End")
    expect(player).to_have_attribute("data-index", str(total))
    assert presenting(page), "a player key changed the mode"


def test_f_and_the_button_toggle_the_mode_and_the_address(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, _ = finished_run
    open_run(page, daphne_server, run_id, "?present=1")
    assert presenting(page)

    page.keyboard.press("f")
    assert not presenting(page)
    assert "present=" not in page.url
    expect(page.locator("header.site")).to_be_visible()
    expect(page.locator("#present-toggle")).to_have_attribute("aria-pressed", "false")

    page.keyboard.press("F")
    assert presenting(page)
    assert re.search(r"[?&]present=1\b", page.url)
    page.keyboard.press("f")
    assert not presenting(page)

    # F in a text field is typing, not a toggle.
    page.locator("#log-query").fill("")
    page.locator("#log-query").press("f")
    assert not presenting(page)
    expect(page.locator("#log-query")).to_have_value("f")
    page.locator("#log-query").fill("")

    page.locator("#present-toggle").click()
    assert presenting(page)
    assert re.search(r"[?&]present=1\b", page.url)
    expect(page.locator("#present-toggle")).to_be_hidden()
    # The button gave the focus to Play, so Space plays instead of pressing the toggle again.
    page.keyboard.press(" ")
    expect(page.locator("#player")).to_have_attribute("data-playing", "true")
    assert presenting(page)

    # The corner's Leave button ends the mode.
    page.locator(".present-keys .present-leave").click()
    assert not presenting(page)
    assert "present=" not in page.url
    expect(page.locator(".present-keys")).to_be_hidden()


def test_full_screen_follows_the_gesture_and_leaving_it_keeps_the_mode(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, _ = finished_run
    open_run(page, daphne_server, run_id)
    if not page.evaluate("document.fullscreenEnabled"):
        pytest.skip("this Chromium does not offer full screen")
    page.locator("#present-toggle").click()
    page.wait_for_function("() => document.fullscreenElement === document.documentElement")
    expect(page.locator(".present-fullscreen")).to_be_hidden()

    # The browser's own way out (its Escape, F11) leaves full screen, not the mode.
    page.evaluate("document.exitFullscreen()")
    page.wait_for_function("() => document.fullscreenElement === null")
    assert presenting(page)
    assert "present=1" in page.url
    expect(page.locator(".present-fullscreen")).to_be_visible()
    page.locator(".present-fullscreen").click()
    page.wait_for_function("() => document.fullscreenElement !== null")

    # Leaving the mode leaves full screen too.
    page.keyboard.press("f")
    assert not presenting(page)
    page.wait_for_function("() => document.fullscreenElement === null")


def test_escape_closes_the_message_panel_first_then_leaves_the_mode(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, _ = finished_run
    open_run(page, daphne_server, run_id)
    page.locator("#event-log tbody tr[data-message]:not([data-message=''])").first.click()
    path = page.locator("#message-path")
    expect(path).to_be_visible()
    page.locator("#topology-title").click()  # the focus off the row: keys go to the page
    page.keyboard.press("f")
    assert presenting(page)

    page.keyboard.press("Escape")
    expect(path).to_be_hidden()
    assert presenting(page), "one Escape closed the panel and left the mode"
    page.keyboard.press("Escape")
    assert not presenting(page)
    assert "present=" not in page.url
    page.keyboard.press("Escape")  # nothing left to close or leave: nothing happens
    assert not presenting(page)
