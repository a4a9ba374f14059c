"""An interactive amqp-routing run driven from the browser: publish bar, a binding, Finish, replay.

Started from the form with *interactive* ticked and no scripted messages, the run page opens
with the publish bar focused; Enter publishes and the answer is the server's sentence. A
binding added from its form shows as a new edge of the exchange graph, and the next key
travels along it to its queue (the edge counts the hit, the log has the route). Finish ends
the run, and the replay starts again from event 1.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_publish_bind_publish_finish_replay(daphne_server, browser_page):
    page = browser_page
    run_id = browser.start_run(page, daphne_server, "amqp-routing", {"interactive": True, "messages": 0, "work_ms": 0})
    hands = page.locator("#hands-on")
    key = hands.locator('.hands-on-publish input[name="routing_key"]')
    expect(key).to_be_focused()
    answer = hands.locator(".hands-on-publish output")

    # The topic preset: billing order.created.*, shipping order.paid.#, eu *.*.eu, alerts #.failed.
    page.keyboard.type("order.created.eu")
    page.keyboard.press("Enter")
    expect(answer).to_have_text("✓ m1 routed to billing, eu")
    key.fill("order.paid")
    key.press("Enter")
    expect(answer).to_have_text("✓ m2 routed to shipping")
    assert hands.locator("#hands-on-keys option").evaluate_all("os => os.map(o => o.value)") == [
        "order.paid", "order.created.eu"]
    key.fill("order.*")
    key.press("Enter")  # a refusal is shown next to the field, and the field is marked
    expect(answer).to_contain_text("✗ bad routing key")
    expect(key).to_have_attribute("aria-invalid", "true")

    bind = hands.locator('form[data-hands-on="bind"]')
    queue = bind.locator('select[name="queue"]')  # the run's own queues, from its actions menu
    expect(queue.locator("option")).to_have_text(["billing", "shipping", "eu", "alerts"])
    queue.select_option("alerts")
    bind.locator('input[name="binding_key"]').fill("refund.#")
    bind.locator('button[type="submit"]').click()
    expect(bind.locator("output")).to_have_text("✓ bound alerts to orders (refund.#)")
    new_edge = page.locator('#amqp-graph path.amqp-binding[data-key="refund.#"]')
    expect(new_edge).to_be_attached()

    key.fill("refund.issued")
    key.press("Enter")
    expect(answer).to_have_text("✓ m3 routed to alerts")
    expect(new_edge).to_have_attribute("data-hits", "1")
    expect(page.locator('#amqp-graph g.amqp-queue[data-queue="alerts"]')).to_have_attribute("data-unacked", "0")
    expect(page.locator('#event-log tr[data-kind="route"]').filter(has_text="refund.#")).to_have_count(1)
    expect(page.locator('#topology-svg g.node[data-actor="queue:alerts"]')).to_be_attached()
    browser.screenshot(page, "interactive-publish-bar", full_page=True)

    hands.locator("button.hands-on-finish").click()
    assert browser.wait_until_finished(page) == "succeeded"
    expect(key).to_be_disabled()
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    assert summary["result"]["interactive"]["ended_by"].startswith("finish")
    assert summary["result"]["published_by_hand"] == 3
    events = daphne_server.all_events(run_id)
    routes = {(e["message_id"], e["attrs"].get("queue")) for e in events if e["kind"] == "route"}
    assert routes == {("m1", "billing"), ("m1", "eu"), ("m2", "shipping"), ("m3", "alerts")}

    page.locator('[data-player="restart"]').click()
    expect(page.locator("#player-status")).to_contain_text("of")
    page.wait_for_function("() => Number(document.querySelector('#player').dataset.index) < 5")
    # Replayed from the start, the hand-made binding is drawn again when its assign comes round.
    page.wait_for_function(
        "(n) => Number(document.querySelector('#player').dataset.index) === n", arg=len(events), timeout=30000)
    expect(new_edge).to_have_attribute("data-hits", "1")
