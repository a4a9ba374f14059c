"""The amqp-dead-letter panel in a real browser, on RabbitMQ: the DLQ box fills with the
broker's dead letters and their x-death, and an interactive run replays them from it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

SLUG = "amqp-dead-letter"


def test_the_dlq_box_fills_with_the_dead_letters_and_their_x_death(rabbitmq_server, browser_page):
    page = browser_page
    summary, _ = browser.finished_run(page, rabbitmq_server, SLUG, {
        "messages": 6, "poison": 2, "max_attempts": 3, "retry_delay_ms": 40, "rate": 0, "work_ms": 0})
    dead = summary["result"]["dlq"]
    assert len(dead) == 2 == summary["counts"]["dead_lettered"]

    box = page.locator("#dlq-box")
    expect(box.locator("li.dlq-item")).to_have_count(2)
    for letter in dead:
        item = box.locator(f'li.dlq-item[data-message="{letter["message_id"]}"]')
        expect(item).to_have_attribute("data-attempts", "3")
        for x in letter["x_death"]:  # what RabbitMQ stamped, as the watcher read it back
            expect(item.locator(f'li[data-queue="{x["queue"]}"][data-reason="{x["reason"]}"]')).to_contain_text(
                f"×{x['count']}")
        expect(item).to_contain_text("x-death: work · rejected ×1")
    expect(page.locator("#dlq-depth")).to_have_attribute("data-depth", "2")
    expect(box).to_contain_text("broker says 2 ✓")
    expect(page.locator('[data-counter="dead_lettered"]')).to_have_text("2")
    # The retry loop: both retry queues, each came back twice (once per poison message), none waiting.
    for queue in ("retry-1", "retry-2"):
        expect(page.locator(f'#dlq-retry-loop tr[data-retry-queue="{queue}"]')).to_have_attribute("data-waiting", "0")
    expect(page.locator('#dlq-verdicts [data-verdict="poison"]')).to_contain_text("2 of 2 poison messages dead-lettered")
    for actor in ("queue:retry-1", "queue:retry-2", "exchange:dlx", "queue:dlq"):
        expect(page.locator(f'#topology-svg .node[data-actor="{actor}"]')).to_be_attached()
    assert browser.read_counters(page) == {k: summary["counts"][k] for k in browser.read_counters(page)}
    browser.screenshot(page, "amqp-dead-letter-dlq")
    page.locator("#panel").screenshot(path=str(browser.ARTIFACTS / "amqp-dead-letter-panel.png"))


def test_replay_from_the_dlq_in_an_interactive_run(rabbitmq_server, browser_page):
    page = browser_page
    run_id = browser.start_run(page, rabbitmq_server, SLUG, {
        "messages": 4, "poison": 2, "max_attempts": 2, "retry_delay_ms": 30, "rate": 0, "work_ms": 0,
        "interactive": True})
    box = page.locator("#dlq-box")
    expect(box.locator("li.dlq-item")).to_have_count(2, timeout=30_000)
    replay = box.locator("button[data-replay]")
    expect(replay).to_be_enabled()
    replay.click()
    expect(page.locator("#dlq-depth")).to_have_attribute("data-depth", "0", timeout=30_000)
    expect(box.locator("li.dlq-item.replayed")).to_have_count(2)
    expect(page.locator('#dlq-messages tr[data-outcome="processed"]')).to_have_count(4, timeout=30_000)
    browser.screenshot(page, "amqp-dead-letter-replayed")
    status, _ = rabbitmq_server.post_json(f"/api/runs/{run_id}/actions/", {"action": "finish", "target": ""})
    assert status == 202
    assert browser.wait_until_finished(page) == "succeeded"
    summary = rabbitmq_server.get_json(f"/api/runs/{run_id}/")
    assert sorted(summary["result"]["replayed"]) == ["m2", "m4"] and summary["result"]["queue_counts"]["dlq"]["broker_ready"] == 0


def test_the_embedded_broker_says_so_on_the_form_and_refuses_to_start(daphne_server, browser_page):
    page = browser_page
    page.goto(f"{daphne_server.url}/workflows/{SLUG}/")
    caveats = page.locator("#workflow-caveats")
    expect(caveats).to_be_visible()
    expect(caveats).to_contain_text("needs RabbitMQ")
    expect(caveats).to_contain_text("cannot dead-letter")
    page.click("#start")
    expect(page.locator("#form-error")).to_contain_text("broker: amqp-dead-letter needs RabbitMQ")
    assert page.url.endswith(f"/workflows/{SLUG}/")  # no run page: nothing started
    browser.screenshot(page, "amqp-dead-letter-form-embedded")
