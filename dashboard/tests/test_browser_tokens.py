"""The topology's tokens: HTML on a layer over the SVG, so the compositor moves them.

The layer maps the drawing's units to the SVG's pixels by itself (topology.js,
placeTokenLayer): a token must still start where its edge starts, both on the normal page
(the SVG sized by its width and height) and in presentation mode (CSS stretches the SVG and
its viewBox is letterboxed inside it).
"""

from __future__ import annotations

import pytest

from dashboard.tests import browser

pytestmark = pytest.mark.browser

# A token frozen at the start of its trip: how far (px) its dot's centre is from the nearest
# edge's starting point, in the page's pixels; null while no token is moving.
TOKEN_OFF_ITS_EDGE = """() => {
  const token = [...document.querySelectorAll(".topology-wrap .token")].find((t) => t.getAnimations().length);
  if (!token) return null;
  const animation = token.getAnimations()[0];
  animation.pause();
  animation.currentTime = 0;
  const dot = token.querySelector(".token-dot").getBoundingClientRect();
  const cx = dot.left + dot.width / 2;
  const cy = dot.top + dot.height / 2;
  let nearest = Infinity;
  for (const path of document.querySelectorAll("#topology-svg .edge-line")) {
    const p = path.getPointAtLength(0);
    const m = path.getScreenCTM();
    nearest = Math.min(nearest, Math.hypot(m.a * p.x + m.c * p.y + m.e - cx, m.b * p.x + m.d * p.y + m.f - cy));
  }
  animation.cancel();
  return { html: token instanceof HTMLElement, off: nearest };
}"""


def test_tokens_are_html_and_start_on_their_edge(daphne_server, browser_page):
    page = browser_page
    browser.start_run(page, daphne_server, "http-crud", {"persons": 2, "repeat": 1, "delay_ms": 0, "rate": 0})
    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    page.locator("#player-speed").select_option("0.1")
    for presenting in (False, True):
        if presenting:
            page.locator("body").press("f")
            page.wait_for_function("() => document.body.classList.contains('presenting')")
        page.locator("body").press("Home")
        page.locator('#player [data-player="play"]').click()
        token = page.wait_for_function(TOKEN_OFF_ITS_EDGE).json_value()
        assert token["html"], "a token is an HTML element (the compositor animates it), not an SVG one"
        assert token["off"] < 2, f"presenting={presenting}: a token starts {token['off']:.1f} px from any edge's start"
