"""Run history in a real browser: a run's parameters, Run again, Edit and run again, the Runs
page's filters in the URL with no horizontal overflow at 1280 px, and the export links."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser
from flows.tests.polling import wait_until

pytestmark = pytest.mark.browser

FAST = {"persons": 1, "repeat": 1, "rate": 0, "delay_ms": 0}


def finished_run(server: browser.LiveServer, slug: str, params: dict) -> int:
    status, created = server.post_json("/api/runs/", {"workflow": slug, "params": params})
    assert status == 201, created
    wait_until(lambda: server.get_json(f"/api/runs/{created['id']}/")["state"] in browser.FINAL_STATES,
                       60, f"run {created['id']} to finish")
    return created["id"]


def new_run_id(page, other_than: int) -> int:
    """The id of the run page the browser goes to next (not the run ``other_than``)."""
    page.wait_for_url(lambda url: re.search(r"/runs/(\d+)/$", url) is not None and not url.endswith(f"/runs/{other_than}/"))
    return int(re.search(r"/runs/(\d+)/$", page.url).group(1))


def test_run_again_and_edit_and_run_again(daphne_server, browser_page):
    page = browser_page
    params = {**FAST, "error_rate": 0.25}
    first = finished_run(daphne_server, "http-crud", params)
    stored = daphne_server.get_json(f"/api/runs/{first}/")["params"]

    page.goto(f"{daphne_server.url}/runs/{first}/")
    shown = page.locator("#run-params")
    expect(shown).to_be_visible()
    expect(shown.locator('[data-run-param="error_rate"] dd')).to_have_text("0.25")
    expect(shown.locator('[data-run-param="persons"] dd')).to_have_text("1")
    expect(shown.locator('[data-run-param="error_rate"]')).to_have_class(re.compile(r"\bchanged\b"))
    browser.screenshot(page, "history-run-header")

    page.locator("#run-again").click()
    again = new_run_id(page, first)
    assert daphne_server.get_json(f"/api/runs/{again}/")["params"] == stored

    page.goto(f"{daphne_server.url}/runs/{first}/")
    page.locator("#edit-run-again").click()
    expect(page).to_have_url(re.compile(rf"/workflows/http-crud/\?from={first}$"))
    expect(page.locator("#prefill-note")).to_have_attribute("data-from", str(first))
    for name, value in stored.items():
        field = page.locator(f"#param-{name}")
        expect(field).to_have_value(str(value) if not isinstance(value, float) or not value.is_integer() else str(int(value)))
    page.locator("#param-persons").fill("2")
    page.click("#start")
    edited = new_run_id(page, first)
    assert daphne_server.get_json(f"/api/runs/{edited}/")["params"] == {**stored, "persons": 2}


def test_edit_from_an_unknown_or_other_run_keeps_the_defaults(daphne_server, browser_page):
    page = browser_page
    other = finished_run(daphne_server, "http-crud", FAST)
    page.goto(f"{daphne_server.url}/workflows/grpc-person/?from={other}")
    expect(page.locator("#prefill-note")).to_contain_text("not grpc-person")
    page.goto(f"{daphne_server.url}/workflows/http-crud/?from=987654")
    expect(page.locator("#prefill-note")).to_contain_text("not found")
    defaults = daphne_server.get_json("/api/workflows/")
    persons = next(w for w in defaults if w["slug"] == "http-crud")["params"]["persons"]["default"]
    expect(page.locator("#param-persons")).to_have_value(str(persons))


def test_runs_page_filters_in_the_url_and_fits_1280(daphne_server, browser_page):
    page = browser_page
    crud = finished_run(daphne_server, "http-crud", FAST)
    routing = finished_run(daphne_server, "amqp-routing", {"messages": 6, "rate": 0, "work_ms": 0})

    page.goto(f"{daphne_server.url}/runs/")
    for run_id in (crud, routing):
        expect(page.locator(f'#runs tr[data-run="{run_id}"]')).to_be_visible()
    routing_row = page.locator(f'#runs tr[data-run="{routing}"]')
    expect(routing_row.locator("[data-params]")).to_contain_text("exchange_type=topic")
    expect(routing_row.locator("[data-params]")).to_contain_text("bindings=4 rows")
    counts = daphne_server.get_json(f"/api/runs/{routing}/")["counts"]
    for name in ("published", "duplicates", "lost", "errors"):
        expect(routing_row.locator(f'[data-count="{name}"]')).to_have_text(str(counts[name]))
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    assert page.evaluate("(() => { const w = document.querySelector('.runs-wrap'); return w.scrollWidth <= w.clientWidth; })()")
    browser.screenshot(page, "history-runs-page")

    # Choosing a workflow applies at once and puts the filter in the URL.
    page.locator('#runs-filter select[name="workflow"]').select_option("amqp-routing")
    expect(page).to_have_url(re.compile(r"/runs/\?workflow=amqp-routing$"))
    rows = page.locator("#runs tbody tr")
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("rows => rows.map(r => r.dataset.workflow)")) == {"amqp-routing"}
    expect(page.locator(f'#runs tr[data-run="{crud}"]')).to_have_count(0)

    page.locator('#runs-filter input[name="duplicates"]').check()
    expect(page).to_have_url(re.compile(r"/runs/\?workflow=amqp-routing&duplicates=1$"))
    expect(page.locator('#runs-filter select[name="workflow"]')).to_have_value("amqp-routing")
    expect(page.locator('#runs-filter input[name="duplicates"]')).to_be_checked()
    listed = [r["id"] for r in daphne_server.get_json("/api/runs/?workflow=amqp-routing&duplicates=1")["runs"]]
    shown = [int(n) for n in page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")]
    assert shown == listed
    if not listed:
        expect(page.locator("#runs-none")).to_be_visible()

    # The URL alone reproduces the filter (a shared link, Back, reload).
    page.goto(f"{daphne_server.url}/runs/?state=succeeded&workflow=http-crud")
    expect(page.locator('#runs-filter select[name="state"]')).to_have_value("succeeded")
    assert set(page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.state)")) == {"succeeded"}
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_export_links_download_what_the_api_serves(daphne_server, browser_page):
    page = browser_page
    run_id = finished_run(daphne_server, "http-crud", FAST)
    events = daphne_server.all_events(run_id)
    page.goto(f"{daphne_server.url}/runs/{run_id}/")
    expect(page.locator("#exports")).to_contain_text("Download events")

    def fetched(selector: str) -> str:
        href = page.locator(selector).get_attribute("href")
        with urllib.request.urlopen(daphne_server.url + href, timeout=15) as response:
            assert "attachment" in response.headers["Content-Disposition"]
            return response.read().decode()

    assert [json.loads(line) for line in fetched('[data-export="ndjson"]').splitlines()] == events
    rows = list(csv.DictReader(io.StringIO(fetched('[data-export="csv"]'))))
    assert [(int(r["seq"]), r["kind"], json.loads(r["attrs"])) for r in rows] == [
        (e["seq"], e["kind"], e["attrs"]) for e in events]
    assert json.loads(fetched('[data-export="summary"]'))["last_seq"] == events[-1]["seq"]
    with page.expect_download() as download:
        page.locator('[data-export="csv"]').click()
    assert download.value.suggested_filename == f"run-{run_id}-events.csv"
    # Each chart keeps plotly's own "download as PNG" button.
    page.locator("#latency-scatter").scroll_into_view_if_needed()
    expect(page.locator('#latency-scatter .modebar-btn[data-title*="png" i]')).to_be_attached()
