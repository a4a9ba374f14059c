"""The mqtt-qos panel in a real browser: topic tree, deliveries, a disconnect and the queue on reconnect."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

TOPICS = ["home/kitchen/temp", "home/garage/temp", "alerts/smoke"]
SUBSCRIBERS = [
    {"name": "s1", "filter": "home/+/temp", "qos": 1, "clean_session": False, "late": False},
    {"name": "s2", "filter": "#", "qos": 0, "clean_session": True, "late": False},
]


def cells(page, subscriber: str, kind: str):
    return page.locator(f'#mqtt-matrix td[data-subscriber="{subscriber}"][data-cell="{kind}"]')


def test_disconnect_a_subscriber_and_see_its_queue_arrive_on_reconnect(daphne_server, browser_page):
    page = browser_page
    run_id = browser.start_run(page, daphne_server, "mqtt-qos", {
        "messages": 60, "rate": 3, "qos": 1, "retain": False, "topics": TOPICS, "subscribers": SUBSCRIBERS,
        "disconnect": "", "disconnect_at": 0, "lose_ack": False})

    # The topic tree, with the filters that match each topic.
    tree = page.locator("#mqtt-tree")
    expect(tree.locator('[data-topic="home/kitchen/temp"] [data-filter="home/+/temp"]')).to_be_visible()
    expect(tree.locator('[data-topic="alerts/smoke"] [data-filter="#"]')).to_be_visible()
    expect(tree.locator('[data-topic="alerts/smoke"] [data-filter="home/+/temp"]')).to_have_count(0)
    # The effective QoS is the lower of the two, and the view says so.
    expect(page.locator("#mqtt-qos-note")).to_contain_text("lower of the publisher's and the subscription's")

    # Deliveries appear per message and subscriber; alerts/smoke does not match s1's filter.
    expect(cells(page, "s1", "delivered").nth(1)).to_be_visible()
    expect(cells(page, "s1", "unmatched").first).to_be_visible()

    s1 = page.locator('#mqtt-subs tr[data-subscriber="s1"]')
    expect(s1).to_have_attribute("data-state", "online")
    s1.locator('[data-mqtt-action="disconnect"]').click()
    expect(s1).to_have_attribute("data-state", "away")
    # Its persistent session makes the broker queue what arrives meanwhile.
    expect(cells(page, "s1", "queued").nth(2)).to_be_visible()
    queued = page.evaluate("""() => [...document.querySelectorAll('#mqtt-matrix td[data-subscriber="s1"][data-cell="queued"]')]
                                      .map((td) => td.closest("tr").dataset.message)""")
    s1.locator('[data-mqtt-action="reconnect"]').click()
    expect(s1).to_have_attribute("data-state", "online")
    for message in queued:
        expect(page.locator(f'#mqtt-matrix tr[data-message="{message}"] td[data-subscriber="s1"]')).to_have_attribute(
            "data-cell", "delivered")

    browser.screenshot(page, "mqtt-qos-reconnected-live")
    assert browser.wait_until_finished(page) == "succeeded"
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    # The player follows the live run to its last event; wait for that event to be shown.
    page.wait_for_function("""(n) => Number(document.querySelector('[data-counter="events"]').textContent) === n""",
                           arg=summary["counts"]["events"])
    assert browser.read_counters(page) == {k: summary["counts"][k] for k in browser.read_counters(page)}
    assert summary["result"]["manual_actions"] == 2
    assert not [x for x in summary["result"]["lost_pairs"] if x["subscriber"] == "s1"]
    expect(s1).to_have_attribute("data-lost", "0")
    expect(s1).to_have_attribute("data-queued", "0")
    expect(page.locator("#mqtt-differences")).to_be_visible()
    page.locator("#mqtt-matrix").scroll_into_view_if_needed()
    browser.screenshot(page, "mqtt-qos-reconnected")
