"""Verdicts and progress in a real browser, computed from the recorded outcome, failures included."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_put_card_judges_only_the_puts_that_succeeded(daphne_server, browser_page):
    page = browser_page
    params = {"persons": 1, "repeat": 4, "delay_ms": 0, "rate": 0, "error_rate": 0.6}
    for _ in range(4):  # the server fails requests at random: until some PUT failed
        summary, events = browser.finished_run(page, daphne_server, "http-crud", params)
        puts = [e for e in events if e["kind"] == "response" and e["attrs"].get("step") == "repeat-put"]
        failed = sum(1 for e in puts if e["attrs"]["status"] >= 400)
        if failed:
            break
    assert failed, "no PUT failed in four runs at error_rate 0.6"
    ok = len(puts) - failed
    card = page.locator('[data-verdict="put"]')
    expect(card).to_have_attribute("data-complete", "true")
    expect(card).to_contain_text(f"{failed} of {len(puts)} PUTs failed")
    if ok >= 2:
        expect(card).to_contain_text(f"the {ok} that succeeded left the same state ✓ idempotent")
        expect(card).to_have_attribute("data-idempotent", "true")
    else:
        expect(card).to_contain_text("idempotence not shown")
        expect(card).to_have_attribute("data-idempotent", "unknown")
        expect(card.locator(".verdict-headline")).not_to_contain_text("✓")

    # The progress says what it counts and never passes what the run planned.
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-done", str(summary["progress"]["done"]))
    assert summary["progress"]["done"] <= summary["progress"]["expected"]
    expect(progress.locator(".progress-text")).to_contain_text(f"of {summary['expected']} planned responses")
    beyond = summary["completed"]["response"] - summary["progress"]["done"]
    if beyond:
        expect(progress.locator(".progress-text")).to_contain_text(f"{beyond} more outside the plan")
    page.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(page, "verdicts-http-crud-progress")
    card.scroll_into_view_if_needed()
    browser.screenshot(page, "verdicts-http-crud-failures")


def test_celery_task_killed_without_acks_late_is_lost_not_running(daphne_server, browser_page):
    page = browser_page
    params = {"orders": 3, "rate": 0, "work_ms": 400, "crash_at": 2, "workers": 2, "acks_late": False, "idempotent": False}
    summary, _ = browser.finished_run(page, daphne_server, "celery-order", params)
    assert summary["result"]["unfinished"] == ["order-2"] and summary["counts"]["lost"] == 1
    assert browser.read_counters(page)["lost"] == 1
    expect(page.locator('#celery-orders tr[data-message="order-2"]')).to_have_attribute("data-outcome", "lost")
    for order in ("order-1", "order-3"):
        expect(page.locator(f'#celery-orders tr[data-message="{order}"]')).to_have_attribute("data-outcome", "finished")
    expect(page.locator('#celery-orders [data-outcome="running"]')).to_have_count(0)
    charges = page.locator('[data-verdict="charges"]')
    expect(charges).to_have_attribute("data-lost", "1")
    expect(charges).to_have_class(r"verdict cat-lost")
    expect(charges).to_contain_text("3 charges for 3 orders · 1 never finished")
    expect(charges).to_contain_text("order-2 — charged, but the receipt was never sent")
    page.locator("#panel").scroll_into_view_if_needed()
    browser.screenshot(page, "verdicts-celery-lost-receipt")
