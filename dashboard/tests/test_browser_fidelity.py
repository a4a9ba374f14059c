"""A sampled run in a real browser: the form offers fidelity, and the page's counters, computed
from the event log with its flow events, equal the server's exact summary."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

MESSAGES = 3000


def test_a_sampled_run_counts_every_message_on_the_page(daphne_server, browser_page):
    page = browser_page
    page.goto(f"{daphne_server.url}/workflows/kafka-partitions/")
    fidelity = page.locator("#param-fidelity")
    expect(fidelity).to_be_visible()
    assert [o.strip() for o in fidelity.locator("option").all_inner_texts()] == ["auto", "full", "sampled"]
    fidelity.scroll_into_view_if_needed()
    browser.screenshot(page, "fidelity-form")

    run_id = browser.start_run(page, daphne_server, "kafka-partitions",
                               {"messages": MESSAGES, "rate": 0, "fidelity": "sampled"})
    assert browser.wait_until_finished(page, 120) == "succeeded"
    browser.reveal_all(page)
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    assert summary["fidelity"]["mode"] == "sampled" and summary["last_seq"] < MESSAGES
    counters = browser.read_counters(page)
    assert counters["published"] == counters["processed"] == MESSAGES, counters
    expect(page.locator("#summary-check")).to_have_attribute("data-ok", "true")
    browser.screenshot(page, "fidelity-run")
