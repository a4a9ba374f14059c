"""The AMQP panels in a real browser: the routing graph and a message's route; a crash and its duplicate."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_topic_exchange_graph_and_the_route_of_a_message(daphne_server, browser_page):
    page = browser_page
    run_id = browser.start_run(page, daphne_server, "amqp-routing", {
        "exchange_type": "topic", "messages": 12, "rate": 8, "consumers": 1, "consumer_mode": "push"})
    run = daphne_server.get_json(f"/api/runs/{run_id}/")
    bindings = run["params"]["bindings"]  # the example topology, written into the run by validation

    graph = page.locator("#amqp-graph")
    expect(graph.locator('[data-exchange-type="topic"]')).to_be_visible()
    expect(graph.locator("path.amqp-binding")).to_have_count(len(bindings))
    for i, b in enumerate(bindings):
        expect(graph.locator(f'path.amqp-binding[data-binding-index="{i}"]')).to_have_attribute("data-key", b["key"])
        expect(graph.locator(f'[data-queue="{b["queue"]}"]').first).to_be_visible()

    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    events = daphne_server.all_events(run_id)

    # Click the first message: its route lists exactly the bindings the exchange matched,
    # the queue each put it in and the consumer that got and acked it.
    page.locator('#amqp-messages tr[data-message="m1"]').click()
    route = page.locator('#amqp-route ol[data-message="m1"]')
    expect(route).to_be_visible()
    matched = {(e["attrs"]["binding"], e["attrs"]["queue"]) for e in events
               if e["kind"] == "route" and e["message_id"] == "m1"}
    delivered = {e["attrs"]["queue"]: e["attrs"]["consumer"] for e in events
                 if e["kind"] == "deliver" and e["message_id"] == "m1"}
    assert matched and delivered
    steps = route.locator('li[data-step="route"]')
    expect(steps).to_have_count(len(matched))
    shown = {(steps.nth(i).get_attribute("data-binding"), steps.nth(i).get_attribute("data-queue")) for i in range(len(matched))}
    assert shown == matched
    for queue, consumer in delivered.items():
        step = route.locator(f'li[data-step="route"][data-queue="{queue}"]')
        expect(step).to_have_attribute("data-consumer", consumer)
        expect(step).to_have_attribute("data-acked", "true")
        expect(step).to_contain_text(consumer)

    # The unroutable example key is shown as returned, not silently gone.
    returned = page.locator(".amqp-returned")
    unroutable = sum(1 for e in events if e["kind"] == "route" and e["attrs"].get("unroutable"))
    expect(returned).to_have_attribute("data-unroutable", str(unroutable))
    assert unroutable > 0

    # Queue counts on the graph are the broker's.
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    for name, counts in summary["result"]["queue_counts"].items():
        queue_box = graph.locator(f'g.amqp-queue[data-queue="{name}"]')
        expect(queue_box).to_have_attribute("data-broker-ready", str(counts["broker_ready"]))
    assert browser.read_counters(page) == {k: summary["counts"][k] for k in browser.read_counters(page)}
    browser.screenshot(page, "amqp-routing-route")


def test_crash_consumer_button_makes_a_duplicate_appear(daphne_server, browser_page):
    page = browser_page
    # Long enough that the page is surely up while it runs; cancelled once the duplicate is seen.
    run_id = browser.start_run(page, daphne_server, "amqp-redelivery", {
        "messages": 400, "rate": 3, "consumers": 2, "crash_at": 0, "idempotent": True, "work_ms": 60, "restart_ms": 300})
    expect(page.locator('#event-log tr[data-kind="deliver"]').first).to_be_attached()
    page.locator('button[data-action="crash"]').click()

    # The crash happens after the next handled message, before its ack: the broker delivers it again.
    duplicate = page.locator("#redelivery-messages tr.dup").first
    expect(duplicate).to_be_visible()
    message = duplicate.get_attribute("data-message")
    expect(duplicate).to_contain_text("redelivered=true")
    crashed = '#redelivery-consumers tr[data-state="crashed"], #redelivery-consumers tr[data-state="back"]'
    expect(page.locator(crashed).first).to_be_attached()
    browser.screenshot(page, "amqp-redelivery-duplicate")

    page.locator('button[data-action="cancel"]').click()
    assert browser.wait_until_finished(page) == "cancelled"
    page.wait_for_function("""() => { const p = document.querySelector("#player");
                                      return p.dataset.total !== "0" && p.dataset.index === p.dataset.total; }""")
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    counts = summary["counts"]
    assert counts["duplicates"] >= 1
    # Idempotent: the inbox suppressed every duplicate's effect.
    assert counts["effects"] == counts["processed"] - counts["duplicates"]
    events = daphne_server.all_events(run_id)
    dups = [e for e in events if e["kind"] == "deliver" and e["duplicate"]]
    assert message in {e["message_id"] for e in dups} and all(e["attrs"]["redelivered"] for e in dups)
    expect(page.locator('[data-verdict="effects"]')).to_have_attribute("data-effects", str(counts["effects"]))
    assert browser.read_counters(page) == {k: counts[k] for k in browser.read_counters(page)}
