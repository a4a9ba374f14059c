"""The Content-Security-Policy in a real browser: enforced, and nothing on the pages breaks it.

Every browser test already fails on a console error, and Chromium reports each blocked
script, style, socket or image as one; here a ``securitypolicyviolation`` listener also
records them, on every page a user visits, including the charts plotly draws with WebGL.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def violations(page) -> list[str]:  # a Playwright page
    return page.evaluate("() => window.__cspViolations")


@pytest.fixture
def page(browser_page):
    browser_page.add_init_script(RECORD_VIOLATIONS)
    return browser_page


def test_no_page_violates_the_policy(daphne_server, page):
    for path in ("/", "/workflows/http-crud/", "/workflows/amqp-routing/", "/runs/"):
        response = page.goto(daphne_server.url + path)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_function("() => document.getElementById('broker-bar').dataset.checkedAt")
        assert violations(page) == [], path

    run_id = browser.start_run(page, daphne_server, "http-crud", {"persons": 2, "repeat": 2, "delay_ms": 0, "rate": 0})
    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    expect(page.locator("#connection")).to_have_attribute("data-state", "complete")  # the WebSocket got through
    assert violations(page) == [], f"run {run_id}"

    # Big runs switch the latency chart to WebGL (scattergl), which compiles shaders: draw
    # one here so that path is under the policy too. plotly.js arrives after the page is live.
    page.wait_for_function("() => window.Plotly")
    drawn = page.evaluate("""async () => {
        const div = document.createElement("div");
        document.body.appendChild(div);
        const x = Array.from({length: 6000}, (_, i) => i);
        await Plotly.newPlot(div, [{type: "scattergl", mode: "markers", x, y: x}]);
        return (div._fullData || []).length; }""")
    assert drawn == 1
    assert violations(page) == []


def test_inline_script_is_blocked(daphne_server, page):
    page.goto(daphne_server.url + "/")
    ran = page.evaluate("""() => { const s = document.createElement("script");
        s.textContent = "window.__inlineRan = true"; document.head.appendChild(s);
        return window.__inlineRan === true; }""")
    assert ran is False
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert "script-src" in violations(page)[0]
    # Chromium logged the refusal as a console error: expected here, so not a test failure.
    page.flow_errors[:] = [e for e in page.flow_errors if "Content Security Policy" not in e]
