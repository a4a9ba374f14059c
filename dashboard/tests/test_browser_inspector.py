"""The message inspector in a real browser, on a finished amqp-redelivery run with a crash.

A duplicated message's journey shows the crash that caused the redelivery (by its seq, with a
jump to it) and the duplicate's reason in full; ``?message=`` opens it; Escape closes it and
gives the focus back; a panel row and a topology token open it too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

PARAMS = {"messages": 8, "rate": 0, "consumers": 2, "prefetch": 1, "crash_at": 2, "work_ms": 10, "restart_ms": 100,
          "idempotent": True}


@pytest.fixture(scope="module")
def redelivered(daphne_server: browser.LiveServer, chromium_browser: Any) -> tuple[int, list[dict[str, Any]]]:
    page, _ = browser.new_page(chromium_browser)
    try:
        summary, events = browser.finished_run(page, daphne_server, "amqp-redelivery", PARAMS)
    finally:
        page.context.close()
    assert summary["counts"]["duplicates"] >= 1
    return summary["id"], events


def duplicate_and_crash(events: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    dup = next(e for e in events if e["kind"] == "deliver" and e["duplicate"])
    crash = next(e for e in events if e["seq"] == dup["attrs"]["cause_seq"])
    return dup, crash


def test_the_inspector_of_a_duplicate_shows_its_cause_and_reason(daphne_server, browser_page, redelivered):
    page = browser_page
    run_id, events = redelivered
    dup, crash = duplicate_and_crash(events)
    message = dup["message_id"]
    assert crash["kind"] == "crash" and message in crash["attrs"]["message_ids"]

    page.goto(f"{daphne_server.url}/runs/{run_id}/")
    browser.wait_until_finished(page)
    browser.reveal_all(page)
    row = page.locator(f'#event-log tr[data-seq="{dup["seq"]}"]')
    row.click()
    inspector = page.locator("#message-path")
    expect(inspector).to_be_visible()
    expect(inspector).to_have_attribute("data-message", message)
    assert f"message={message}" in page.url

    # The whole journey, the crash that held it included, oldest first.
    mine = [e["seq"] for e in events if e["message_id"] == message or message in e["attrs"].get("message_ids", [])]
    steps = inspector.locator("[data-path-journey] > li")
    expect(steps).to_have_count(len(mine))
    assert [int(s) for s in steps.evaluate_all("(items) => items.map((li) => li.dataset.seq)")] == mine

    # The redelivery names the crash by its seq; the reason is there in full.
    step = inspector.locator(f'li[data-seq="{dup["seq"]}"]')
    cause = step.locator(".step-cause")
    expect(cause).to_have_attribute("data-cause-seq", str(crash["seq"]))
    expect(cause).to_have_attribute("data-cause-kind", "crash")
    expect(cause).to_contain_text(f"crash · seq {crash['seq']}")
    expect(cause).to_contain_text(f"{crash['actor']} crashed while it held {message}")
    reason = step.locator(".step-reason")
    # Untruncated, made a sentence (a capital, a full stop).
    expect(reason).to_contain_text(re.compile(re.escape(dup["attrs"]["reason"]) + r"\.", re.IGNORECASE))
    box = reason.bounding_box()
    assert box["width"] >= 400, f"the reason sits in a {box['width']:.0f} px column"
    # The crash's step says which redelivery it caused; the cause link jumps to the crash.
    expect(inspector.locator(f'li[data-seq="{crash["seq"]}"] .step-caused')).to_contain_text(f"seq {dup['seq']}")
    cause.locator("[data-jump-seq]").click()
    expect(inspector.locator(f'li[data-seq="{crash["seq"]}"]')).to_be_focused()
    expect(inspector.locator(f'li[data-seq="{crash["seq"]}"]')).to_have_class(re.compile(r"\bjumped\b"))
    # The inspector is wide: at 1280 px, more than half the window.
    width = inspector.bounding_box()["width"]
    assert width >= 0.55 * browser.VIEWPORT["width"], width
    browser.screenshot(page, "inspector-duplicate")

    # Escape closes it, the URL forgets the message, the focus is back on the row.
    page.keyboard.press("Escape")
    expect(inspector).to_be_hidden()
    assert "message=" not in page.url
    assert page.evaluate("document.activeElement.dataset.seq") == str(dup["seq"])

    # On a phone it takes the whole width.
    page.set_viewport_size({"width": 390, "height": 844})
    row.click()
    expect(inspector).to_be_visible()
    assert inspector.bounding_box()["width"] == pytest.approx(390, abs=1)
    # Nothing inside it is wider than the phone (the page behind it is another matter).
    assert inspector.evaluate("(el) => el.scrollWidth <= el.clientWidth"), "the inspector scrolls sideways on a phone"
    browser.screenshot(page, "inspector-duplicate-phone")
    page.set_viewport_size(browser.VIEWPORT)


def test_a_shared_link_opens_the_inspector_and_a_panel_row_opens_it_too(daphne_server, browser_page, redelivered):
    page = browser_page
    run_id, events = redelivered
    dup, crash = duplicate_and_crash(events)
    message = dup["message_id"]

    page.goto(f"{daphne_server.url}/runs/{run_id}/?message={message}")
    inspector = page.locator("#message-path")
    expect(inspector).to_be_visible()
    expect(inspector).to_have_attribute("data-message", message)
    browser.wait_until_finished(page)
    browser.reveal_all(page)
    expect(inspector.locator(f'li[data-seq="{dup["seq"]}"] .step-cause')).to_have_attribute("data-cause-seq", str(crash["seq"]))
    page.keyboard.press("Escape")
    expect(inspector).to_be_hidden()

    # The panel's message table: a row opens the inspector (click or Enter) on that message.
    other = next(e["message_id"] for e in events if e["kind"] == "deliver" and not e["duplicate"] and e["message_id"] != message)
    panel_row = page.locator(f'#redelivery-messages tr[data-message="{other}"]')
    panel_row.focus()
    page.keyboard.press("Enter")
    expect(inspector).to_have_attribute("data-message", other)
    actors = list(dict.fromkeys(e["actor"] for e in events if e["message_id"] == other))
    expect(inspector.locator("[data-path-route]")).to_have_text(" → ".join(actors))
    page.keyboard.press("Escape")
    expect(inspector).to_be_hidden()
    expect(panel_row).to_be_focused()

    # A token travelling on the topology opens its message too. Tokens move and vanish within
    # 1.4 s, so the click is dispatched on one at once rather than waiting for it to stand still.
    page.locator("#player-speed").select_option("0.1")
    page.keyboard.press("Home")
    page.locator('#player [data-player="play"]').click()
    # Found and clicked in one turn of the page's script, so the token is still there.
    clicked = page.wait_for_function("""() => {
        const token = document.querySelector(".topology-wrap .token[data-message]");
        if (!token) return null;
        token.dispatchEvent(new MouseEvent("click", { bubbles: true }));
        return token.dataset.message; }""").json_value()
    expect(inspector).to_have_attribute("data-message", clicked)
