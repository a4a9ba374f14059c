"""The live-action controls in a real browser: targets from the server, answers in its words.

The crash button's target list offers only the consumers live now (never the producer, the
exchange or the queue), and after pressing it the page shows the sentence the server
answered with; Cancel run is its own button and answers for the run, naming no target.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_crash_targets_are_live_consumers_and_the_answer_is_the_servers(daphne_server, browser_page):
    page = browser_page
    run_id = browser.start_run(page, daphne_server, "amqp-redelivery", {
        "messages": 400, "rate": 3, "consumers": 2, "crash_at": 0, "work_ms": 60, "restart_ms": 300})
    expect(page.locator('#event-log tr[data-kind="deliver"]').first).to_be_attached()

    target = page.locator('select[data-action-target="crash"]')
    target.focus()
    expect(target.locator("option")).to_have_text(["(workflow decides)", "consumer:work/1", "consumer:work/2"])
    assert "producer" not in target.locator("option").all_inner_texts()
    assert page.locator('select[data-action-target="cancel"]').count() == 0  # cancel takes no target

    target.select_option("consumer:work/2")
    with page.expect_response(lambda r: r.url.endswith(f"/api/runs/{run_id}/actions/")
                              and r.request.method == "POST") as answered:
        page.locator('button[data-action="crash"]').click()
    answer = answered.value.json()
    assert answer["target"] == "consumer:work/2"
    assert answer["result"].startswith("consumer:work/2 will crash after its next message")
    result = page.locator("#action-result")
    expect(result).to_have_text(f"✓ {answer['result']}")
    expect(page.locator('#event-log tr[data-kind="crash"]').first).to_be_attached()
    browser.screenshot(page, "live-actions-crash-answer")

    # The panel's own buttons are answered in the same place, in the server's words.
    page.locator('#redelivery-consumers button[data-crash="consumer:work/1"]').click()
    expect(result).to_have_text("✓ consumer:work/1 will crash after its next message, before the ack")

    page.locator('button[data-action="cancel"]').click()
    expect(result).to_have_text("✓ run cancelled")
    assert browser.wait_until_finished(page) == "cancelled"
    expect(page.locator('button[data-action="crash"]')).to_be_disabled()
    crashes = [e for e in daphne_server.all_events(run_id) if e["kind"] == "crash"]
    assert crashes and crashes[0]["actor"] == "consumer:work/2"
