"""The outbox panel in a real browser: the outbox table's rows go pending → sent, a relay crash
leaves one pending until the relay is back, and each order's outcome is shown."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_outbox_rows_change_state_and_the_relay_crash_shows(daphne_server, browser_page):
    page = browser_page
    run_id = browser.start_run(page, daphne_server, "outbox", {
        "mode": "outbox", "messages": 4, "rate": 2, "crash_at": 2, "restart_ms": 2500})
    row = page.locator('#outbox-rows tr[data-message="m-2"]')
    # Written pending with its order; the relay crashes after publishing it, so it stays pending…
    expect(row).to_have_attribute("data-state", "pending", timeout=15_000)
    expect(page.locator("#outbox-relay-state")).to_have_attribute("data-state", "crashed", timeout=15_000)
    expect(row).to_have_attribute("data-state", "pending")
    # …until the restarted relay publishes it again and marks it sent.
    expect(row).to_have_attribute("data-state", "sent", timeout=15_000)
    # A run-level action: its button has no target to choose.
    expect(page.locator('select[data-action-target="crash"]')).to_have_count(0)
    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    rows = page.locator("#outbox-rows tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator('#outbox-rows tbody tr[data-state="sent"]')).to_have_count(4)
    expect(row.locator("td.num")).to_have_text("2")  # published twice
    expect(page.locator('#outbox-orders tr[data-order="order-2"]')).to_have_attribute("data-outcome", "duplicate-suppressed")
    expect(page.locator('#outbox-verdicts [data-outcome="lost"]')).to_have_attribute("data-count", "0")
    expect(page.locator('#outbox-verdicts .verdict[data-verdict="outcomes"]')).to_have_attribute("data-effects", "4")
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    assert summary["result"]["outcomes"]["order-2"] == "duplicate-suppressed" and summary["counts"]["effects"] == 4
    browser.screenshot(page, "outbox-relay-crash", full_page=True)


def test_dual_write_shows_the_lost_order(daphne_server, browser_page):
    page = browser_page
    browser.start_run(page, daphne_server, "outbox", {
        "mode": "dual-write", "order": "commit-then-publish", "messages": 4, "rate": 0, "crash_at": 3})
    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    expect(page.locator('#outbox-orders tr[data-order="order-3"]')).to_have_attribute("data-outcome", "lost")
    expect(page.locator('#outbox-verdicts [data-outcome="lost"]')).to_have_attribute("data-count", "1")
    expect(page.locator('#outbox-pipeline [data-box="relay"]')).to_contain_text("No relay")
    browser.screenshot(page, "outbox-dual-write", full_page=True)
