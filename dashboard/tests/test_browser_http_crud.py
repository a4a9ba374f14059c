"""The http-crud run page in a real browser against a real server.

Covers the generic run page (live log, counters that equal the server summary, latency
chart with one point per request, message path, filters, player, reload) and the
http-crud panel's verdicts on PUT and POST idempotency.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

# Small and quick, yet slow enough (about 1.5 s) that the run is watched live.
PARAMS = {"persons": 2, "repeat": 3, "delay_ms": 5, "rate": 10}


def counts_match(page, summary: dict) -> None:
    counters = browser.read_counters(page)
    for name, value in summary["counts"].items():
        shown = counters.get(name, 0 if name == "dead_lettered" else None)  # its card appears once it is not 0
        assert shown == value, f"counter {name}: page {counters.get(name)}, API {value}"


def test_catalog_lists_http_crud_with_its_lesson_and_brokers(daphne_server, browser_page):
    page = browser_page
    page.goto(daphne_server.url + "/")
    card = page.locator('[data-group="sync"] [data-workflow="http-crud"]')
    expect(card).to_be_visible()
    expect(card).to_contain_text("idempotent")
    expect(page.locator('[data-group="async"]')).to_be_visible()
    # The broker bar says where each protocol goes and whether it answered the health check.
    page.wait_for_function("() => document.getElementById('broker-bar').dataset.checkedAt")
    health = daphne_server.get_json("/api/health/")["brokers"]
    for protocol, info in health.items():
        chip = page.locator(f'.broker[data-protocol="{protocol}"]')
        expect(chip).to_contain_text(info["mode"])
        if info["ok"]:
            expect(chip).to_have_attribute("data-ok", "true")
    browser.screenshot(page, "catalog-light")
    browser.set_theme(page, "dark")
    browser.screenshot(page, "catalog-dark")


def test_form_shows_server_validation_next_to_the_field(daphne_server, browser_page):
    page = browser_page
    page.goto(daphne_server.url + "/workflows/http-crud/")
    expect(page.locator('[data-param="persons"] .help')).not_to_be_empty()
    page.fill("#param-persons", "0")
    page.click("#start")
    expect(page.locator('[data-error-for="persons"]')).to_contain_text("at least")
    expect(page).to_have_url(re.compile(r"/workflows/http-crud/$"))
    browser.screenshot(page, "workflow-form-error-light")


def test_http_crud_run_page_live(daphne_server, browser_page):
    page = browser_page
    server = daphne_server
    run_id = browser.start_run(page, server, "http-crud", PARAMS)

    # Events arrive in the log while the run is live.
    expect(page.locator("#event-log tr[data-seq]").first).to_be_visible()
    assert browser.wait_until_finished(page) == "succeeded"
    revealed = browser.reveal_all(page)
    summary = server.get_json(f"/api/runs/{run_id}/")
    events = server.all_events(run_id)
    assert revealed == len(events) == summary["last_seq"]
    received = page.evaluate("window.flowRun.player.events.map((e) => e.seq)")
    assert received == list(range(1, len(events) + 1))
    logged = page.evaluate("[...document.querySelectorAll('#event-log tr[data-seq]')].map((r) => Number(r.dataset.seq))")
    assert sorted(logged) == list(range(1, len(events) + 1))

    # Counters equal the API summary, and the page's own cross-check agrees.
    counts_match(page, summary)
    expect(page.locator("#summary-check")).to_have_attribute("data-ok", "true")
    progress = page.locator("#progress")
    expect(progress).to_have_attribute("data-done", str(summary["progress"]["done"]))
    expect(progress).to_have_attribute("data-expected", str(summary["progress"]["expected"]))

    # The latency chart draws one point per response, i.e. per request sent.
    responses = [e for e in events if e["kind"] == "response"]
    page.locator("#latency-scatter").scroll_into_view_if_needed()
    page.wait_for_function(
        "(n) => (document.getElementById('latency-scatter').data || []).some((t) => t.name === 'perceived' && t.x.length === n)",
        arg=len(responses),
    )
    assert browser.plot_points(page, "latency-scatter", "perceived") == len(responses) == summary["counts"]["published"]
    with_e2e = [e for e in events if "end_to_end_ms" in e["attrs"]]
    assert browser.plot_points(page, "latency-scatter", "end_to_end") == len(with_e2e)
    marks = page.evaluate("document.getElementById('latency-hist-perceived').layout.annotations.map((a) => a.text)")
    assert [m.split()[0] for m in marks] == ["p50", "p95", "p99"]

    # The state table: repeated PUT leaves the state identical, repeated POST does not.
    result = summary["result"]
    put = page.locator('[data-verdict="put"]')
    expect(put).to_have_attribute("data-idempotent", "true" if result["put"]["idempotent"] else "false")
    expect(put).to_have_attribute("data-complete", "true")
    expect(put).to_contain_text(f"PUT ×{result['put']['repeats']} → state identical ✓ idempotent")
    post = page.locator('[data-verdict="post"]')
    expect(post).to_have_attribute("data-idempotent", "false")
    created = result["post"]["persons_after"] - result["post"]["persons_before"]
    expect(post).to_contain_text(f"POST ×{result['post']['repeats']} → {created} new persons ✗ not idempotent")
    hashes = page.locator('tr[data-step="repeat-put"] [data-col="hash"] code').all_text_contents()
    assert hashes == [result["put"]["state_hash_after_one"], result["put"]["state_hash_after_all"]]
    page.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(page, "run-http-crud-light")
    browser.screenshot(page, "run-http-crud-light-full", full_page=True)

    # Clicking a row opens the message's whole journey in the inspector: a step per event, and
    # the actors it met, each once, in the order it met them.
    message = responses[1]["message_id"]
    page.locator(f'#event-log tr[data-kind="response"][data-message="{message}"]').click()
    path = page.locator("#message-path")
    expect(path).to_be_visible()
    mine = [e for e in events if e["message_id"] == message]
    expect(path.locator("[data-path-journey] > li")).to_have_count(len(mine))
    expect(path.locator("[data-path-route]")).to_have_text(" → ".join(dict.fromkeys(e["actor"] for e in mine)))
    page.keyboard.press("Escape")
    expect(path).to_be_hidden()

    # Filtering by kind keeps only that kind.
    page.select_option("#filter-kind", "response")
    expect(page.locator("#event-log tbody tr")).to_have_count(len(responses))
    assert set(page.locator("#event-log tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.kind)")) == {"response"}
    page.select_option("#filter-kind", "")

    browser.set_theme(page, "dark")
    page.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(page, "run-http-crud-dark")
    browser.screenshot(page, "run-http-crud-dark-full", full_page=True)

    # The player: back to the start, step with the arrow keys, a token moves client → server.
    page.locator("body").press("Home")
    expect(page.locator("#player")).to_have_attribute("data-index", "0")
    page.locator("body").press("ArrowRight")
    page.locator("body").press("ArrowRight")
    expect(page.locator("#player")).to_have_attribute("data-index", "2")
    assert page.locator(".topology-wrap .token").count() >= 1
    assert browser.read_counters(page)["published"] == 1
    page.locator("body").press("End")
    expect(page.locator("#player")).to_have_attribute("data-index", str(len(events)))

    # Reloading rebuilds the same view from the recorded events.
    page.reload()
    browser.wait_until_finished(page)
    browser.reveal_all(page)
    counts_match(page, summary)
    expect(page.locator('[data-verdict="put"]')).to_have_attribute("data-idempotent", "true")


def test_reload_mid_run_and_reduced_motion(daphne_server, chromium_browser):
    page, errors = browser.new_page(chromium_browser, reduced_motion="reduce")
    try:
        run_id = browser.start_run(page, daphne_server, "http-crud", {"persons": 1, "repeat": 2, "delay_ms": 5, "rate": 4})
        expect(page.locator("#event-log tr[data-seq]").first).to_be_visible()
        page.reload()
        browser.wait_until_finished(page)
        browser.reveal_all(page)
        summary = daphne_server.get_json(f"/api/runs/{run_id}/")
        counts_match(page, summary)
        # Reduced motion: messages change the edges' labels but no token is animated.
        page.locator("body").press("Home")
        for _ in range(4):
            page.locator("body").press("ArrowRight")
        assert page.locator(".topology-wrap .token").count() == 0
        expect(page.locator("#topology-svg .edge-label").first).not_to_be_empty()
        assert not errors, "\n".join(errors)
    finally:
        page.context.close()


def test_runs_history_links_to_replayable_runs(daphne_server, browser_page):
    page = browser_page
    runs = daphne_server.get_json("/api/runs/")["runs"]
    if not runs:
        params = {"rate": 0, "persons": 1, "repeat": 1}
        status, created = daphne_server.post_json("/api/runs/", {"workflow": "http-crud", "params": params})
        assert status == 201, created
        runs = daphne_server.get_json("/api/runs/")["runs"]
    page.goto(daphne_server.url + "/runs/")
    row = page.locator(f'#runs tr[data-run="{runs[0]["id"]}"]')
    expect(row).to_contain_text("http-crud")
    row.locator("a").click()
    expect(page).to_have_url(re.compile(rf"/runs/{runs[0]['id']}/$"))
    expect(page.locator("#event-log tr[data-seq]").first).to_be_visible()


def test_dropped_stream_resumes_and_cancel_stops_a_live_run(daphne_server, browser_page):
    page = browser_page
    # Slow (about 20 s if left alone), so the run is surely live while the stream drops.
    run_id = browser.start_run(page, daphne_server, "http-crud", {"persons": 5, "repeat": 5, "rate": 2})
    expect(page.locator("#event-log tr[data-seq]").first).to_be_visible()

    # A dropped connection comes back by itself and resumes after the last seq it saw.
    seen = page.evaluate("window.flowRun.stream.lastSeq")
    page.evaluate("window.flowRun.stream.dropConnection()")
    page.wait_for_function("() => window.flowRun.stream.reconnects >= 1 && window.flowRun.stream.state === 'live'")
    page.wait_for_function("(n) => window.flowRun.stream.lastSeq > n", arg=seen)

    cancel = page.locator('#actions button[data-action="cancel"]')
    expect(cancel).to_be_enabled()
    cancel.click()
    assert browser.wait_until_finished(page) == "cancelled"
    expect(page.locator("#run-error")).to_contain_text("cancelled")
    expect(cancel).to_be_disabled()
    # Nothing lost, nothing twice: exactly the recorded events, in order.
    recorded = [e["seq"] for e in daphne_server.all_events(run_id)]
    assert page.evaluate("window.flowRun.player.events.map((e) => e.seq)") == recorded == list(range(1, len(recorded) + 1))
