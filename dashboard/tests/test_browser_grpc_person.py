"""The grpc-person panel in a real browser: contract, calls with their codes, a call decoded."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def finished_run(page, server, params):
    return browser.finished_run(page, server, "grpc-person", params)


def test_calls_codes_and_a_call_decoded_against_the_proto(daphne_server, browser_page):
    page = browser_page
    # A generous deadline: the first calls of a run share the server process with the page loading.
    params = {"calls": 8, "error_rate": 0.5, "delay_ms": 5, "deadline_ms": 5000, "rate": 20}
    summary, events = finished_run(page, daphne_server, params)
    codes = summary["result"]["codes"]
    assert set(codes) == {"OK", "NOT_FOUND"}

    # The contract as agreed, and one chip per status code with the server's counts.
    expect(page.locator("#grpc-proto")).to_contain_text("service PersonService")
    for code, n in codes.items():
        expect(page.locator(f'#grpc-codes [data-code="{code}"]')).to_have_attribute("data-count", str(n))
    rows = page.locator("#grpc-calls [data-message]")
    expect(rows).to_have_count(8)

    # A successful GetPerson: both messages decoded from their wire bytes, agreeing with the client.
    responses = [e for e in events if e["kind"] == "response"]
    ok_get = next(e for e in responses if e["attrs"]["method"] == "GetPerson" and e["attrs"]["code"] == "OK")
    page.click(f'#grpc-calls [data-message="{ok_get["message_id"]}"]')
    detail = page.locator("#grpc-call")
    expect(detail).to_contain_text("rpc GetPerson(GetPersonRequest) returns (PersonResponse)")
    name = ok_get["attrs"]["response"]["person"]["name"]
    expect(detail.locator('[data-part="response"] [data-field="name"]')).to_contain_text(name)
    expect(detail.locator("[data-agrees]")).to_have_count(2)
    expect(detail.locator('[data-agrees="true"]')).to_have_count(2)
    expect(page.locator("#grpc-proto .grpc-line.hot").first).to_be_visible()
    detail.scroll_into_view_if_needed()
    browser.screenshot(page, "grpc-person-decoded-light")

    # Clicking a NOT_FOUND call's row in the generic event log selects it in the panel.
    missing = next(e for e in responses if e["attrs"]["code"] == "NOT_FOUND")
    page.locator(f'#event-log tr[data-seq="{missing["seq"]}"]').click()
    expect(detail.locator('[data-status="NOT_FOUND"]')).to_be_visible()
    expect(detail.locator('[data-part="response"]')).to_contain_text("status NOT_FOUND")


def test_deadline_exceeded_while_the_server_finishes_late(daphne_server, browser_page):
    page = browser_page
    params = {"calls": 4, "concurrency": 2, "delay_ms": 200, "deadline_ms": 60, "rate": 0}
    summary, _ = finished_run(page, daphne_server, params)
    assert summary["result"]["codes"] == {"DEADLINE_EXCEEDED": 4}
    late = summary["result"]["late_server_finishes"]
    assert late > 0
    expect(page.locator('#grpc-codes [data-code="DEADLINE_EXCEEDED"]')).to_have_attribute("data-count", "4")
    expect(page.locator("#grpc-codes [data-late]")).to_have_attribute("data-late", str(late))
    # A call that expired before reaching a handler has no server bar; every other one ran late.
    expect(page.locator("#grpc-calls .grpc-bar.server.late")).to_have_count(late)
    expect(page.locator("#grpc-calls .grpc-deadline")).to_have_count(4)
    browser.set_theme(page, "dark")
    page.locator("#grpc-calls").scroll_into_view_if_needed()
    browser.screenshot(page, "grpc-person-deadline-dark")
