"""The mqtt-qos form says, before Start, which MQTT 3.1.1 rules the fallback broker breaks.

A server without a mosquitto binary (``MOSQUITTO_BIN=``) runs embedded MQTT on amqtt: the form
lists its departures next to Start. The default server (Mosquitto installed) shows none.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_the_form_lists_what_amqtt_breaks_before_start(browser_page):
    page = browser_page
    with browser.LiveServer(extra_env={"MOSQUITTO_BIN": ""}) as server:
        page.goto(f"{server.url}/workflows/mqtt-qos/")
        caveats = page.locator("#workflow-caveats")
        expect(caveats).to_be_visible()
        expect(caveats.locator("li")).to_have_count(4)
        expect(caveats).to_contain_text("min(publish, subscription)")
        expect(caveats).to_contain_text("DUP=1")
        expect(caveats).to_contain_text("apt install mosquitto")
        # Between the last parameter and the Start button: read before pressing it.
        order = page.evaluate("""() => {
            const box = document.getElementById('workflow-caveats');
            const start = document.getElementById('start');
            const fields = [...document.querySelectorAll('#workflow-form .field[data-param]')];
            return [box.compareDocumentPosition(start) & Node.DOCUMENT_POSITION_FOLLOWING,
                    fields.every((f) => f.compareDocumentPosition(box) & Node.DOCUMENT_POSITION_FOLLOWING)];
        }""")
        assert all(order), order
        caveats.scroll_into_view_if_needed()
        browser.screenshot(page, "mqtt-qos-form-amqtt-caveats")

        # The run page says it again, next to the verdicts.
        browser.start_run(page, server, "mqtt-qos", {"messages": 3, "rate": 0})
        run_caveats = page.locator("#mqtt-caveats")
        expect(run_caveats).to_be_visible()
        expect(run_caveats).to_contain_text("amqtt")
        expect(run_caveats.locator("li")).to_have_count(4)


def test_the_form_shows_no_caveats_with_mosquitto(daphne_server, browser_page):
    from flows.tests.mqtt_support import require_mosquitto_binary

    require_mosquitto_binary()
    page = browser_page
    page.goto(f"{daphne_server.url}/workflows/mqtt-qos/")
    expect(page.locator("#start")).to_be_visible()
    expect(page.locator("#workflow-caveats")).to_have_count(0)
    browser.start_run(page, daphne_server, "mqtt-qos", {"messages": 3, "rate": 0})
    expect(page.locator("#mqtt-verdicts")).to_be_visible()
    expect(page.locator("#mqtt-caveats")).to_have_count(0)
