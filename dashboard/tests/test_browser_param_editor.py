"""The workflow form's row editors in a real browser: AMQP bindings and MQTT subscribers.

The example bindings of the chosen exchange type show as rows before Start; a row added
is submitted in the run's params; "Edit and run again" fills the rows; bad rows are marked
as the user types.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser
from flows.amqp.spec import PRESETS
from flows.tests.polling import wait_until

pytestmark = pytest.mark.browser


def rows(page, param: str):
    return page.locator(f'[data-param="{param}"] .row-editor-table tbody tr')


def cell(page, param: str, row: int, column: str):
    return page.locator(f'[data-param="{param}"] tr[data-row="{row}"] [data-column="{column}"]').locator("input, select")


def test_binding_rows_show_the_example_and_a_new_row_reaches_the_run(daphne_server, browser_page):
    page = browser_page
    page.goto(f"{daphne_server.url}/workflows/amqp-routing/")
    editor = page.locator('[data-param="bindings"] .row-editor')
    textarea = page.locator("#param-bindings")

    # Before Start: the topic example as rows, marked as the example; the value sent is still [].
    expect(editor).to_have_attribute("data-mode", "example")
    expect(rows(page, "bindings")).to_have_count(len(PRESETS["topic"]["bindings"]))
    for i, b in enumerate(PRESETS["topic"]["bindings"]):
        expect(cell(page, "bindings", i, "queue")).to_have_value(b["queue"])
        expect(cell(page, "bindings", i, "key")).to_have_value(b["key"])
    assert json.loads(textarea.input_value()) == []
    browser.screenshot(page, "form-bindings-example")

    # Another exchange type: its example; headers bindings have x-match and headers columns.
    page.select_option("#param-exchange_type", label="headers")
    expect(rows(page, "bindings")).to_have_count(len(PRESETS["headers"]["bindings"]))
    expect(cell(page, "bindings", 0, "headers")).to_have_value("type=order, region=eu")
    expect(cell(page, "bindings", 1, "x_match")).to_have_value("any")
    page.select_option("#param-exchange_type", label="topic")
    expect(cell(page, "bindings", 0, "key")).to_have_value(PRESETS["topic"]["bindings"][0]["key"])

    # Add a row; a key with a wildcard inside a word is marked while typing, then fixed.
    page.click('[data-param="bindings"] [data-row-add]')
    new = len(PRESETS["topic"]["bindings"])
    expect(rows(page, "bindings")).to_have_count(new + 1)
    expect(cell(page, "bindings", new, "queue")).to_be_focused()
    page.keyboard.type("audit")
    cell(page, "bindings", new, "key").fill("order.eu*")
    expect(cell(page, "bindings", new, "key")).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-param="bindings"] .row-editor-errors')).to_contain_text(
        f"binding {new + 1}, key: in a topic key * and # stand for whole words")
    cell(page, "bindings", new, "key").fill("order.#")
    expect(cell(page, "bindings", new, "key")).not_to_have_attribute("aria-invalid", "true")
    expect(editor).to_have_attribute("data-mode", "custom")
    expect(editor).to_have_attribute("data-valid", "true")
    wanted = [*PRESETS["topic"]["bindings"], {"queue": "audit", "key": "order.#"}]
    assert json.loads(textarea.input_value()) == wanted  # the JSON follows the rows
    browser.screenshot(page, "form-bindings-added")

    page.fill("#param-messages", "3")
    page.fill("#param-rate", "0")
    page.click("#start")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run_id = int(re.search(r"/runs/(\d+)/$", page.url).group(1))
    assert daphne_server.get_json(f"/api/runs/{run_id}/")["params"]["bindings"] == wanted

    # Edit and run again: the rows are that run's bindings.
    page.goto(f"{daphne_server.url}/workflows/amqp-routing/?from={run_id}")
    expect(page.locator("#prefill-note")).to_have_attribute("data-from", str(run_id))
    expect(rows(page, "bindings")).to_have_count(len(wanted))
    expect(cell(page, "bindings", len(wanted) - 1, "queue")).to_have_value("audit")
    expect(cell(page, "bindings", len(wanted) - 1, "key")).to_have_value("order.#")

    # Removing every row leaves [] again: the example.
    for _ in wanted:
        page.locator('[data-param="bindings"] [data-row-remove="0"]').click()
        if editor.get_attribute("data-mode") == "example":
            break
    expect(editor).to_have_attribute("data-mode", "example")
    assert json.loads(textarea.input_value()) == []
    wait_until(lambda: daphne_server.get_json(f"/api/runs/{run_id}/")["state"] in browser.FINAL_STATES, 60,
               "the run with the added binding to end", step=0.5)
    assert daphne_server.get_json(f"/api/runs/{run_id}/")["state"] == "succeeded"


def test_subscriber_rows_check_filters_as_the_user_types(daphne_server, browser_page):
    page = browser_page
    page.goto(f"{daphne_server.url}/workflows/mqtt-qos/")
    textarea = page.locator("#param-subscribers")
    default = json.loads(textarea.input_value())
    expect(rows(page, "subscribers")).to_have_count(len(default))
    expect(cell(page, "subscribers", 0, "filter")).to_have_value(default[0]["filter"])
    expect(cell(page, "subscribers", 0, "qos")).to_have_value(str(default[0]["qos"]))

    cell(page, "subscribers", 0, "filter").fill("home/#/temp")
    expect(cell(page, "subscribers", 0, "filter")).to_have_attribute("aria-invalid", "true")
    expect(page.locator('[data-param="subscribers"] .row-editor-errors')).to_contain_text(
        "subscriber 1, filter: # must be the whole last level")
    cell(page, "subscribers", 0, "filter").fill("home/#")
    expect(page.locator('[data-param="subscribers"] .row-editor')).to_have_attribute("data-valid", "true")
    cell(page, "subscribers", 1, "qos").select_option("2")
    page.locator('[data-param="subscribers"] [data-row-remove="3"]').click()
    value = json.loads(textarea.input_value())
    assert value == [{**default[0], "filter": "home/#"}, {**default[1], "qos": 2}, default[2]]

    # The JSON stays editable: typing there rebuilds the rows.
    textarea.fill(json.dumps([{"name": "x", "filter": "a/+", "qos": 0, "clean_session": True, "late": False}]))
    expect(rows(page, "subscribers")).to_have_count(1)
    expect(cell(page, "subscribers", 0, "name")).to_have_value("x")
    page.set_viewport_size({"width": 390, "height": 844})
    browser.screenshot(page, "form-subscribers-phone")
    page.set_viewport_size(browser.VIEWPORT)
