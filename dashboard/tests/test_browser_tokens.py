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

# A token sent along the first edge now (the drawing stands still: every actor is placed),
# frozen at the start of its trip: whether it is HTML, and how far (px) its dot's centre is
# from its edge's first point on screen. null while the topology has no room for a new token
# or the token is not on its edge yet.
PROBE_TOKEN = """(n) => {
  const topology = window.flowRun.topology;
  const edge = [...topology.edges.values()].find((e) => e.curve);
  topology.pulse(edge.from, edge.to, { label: `probe ${n}`, category: "routed" });
  const token = [...document.querySelectorAll(".topology-wrap .token")]
    .find((t) => t.textContent.includes(`probe ${n}`));
  if (!token) return null;
  const animation = token.getAnimations()[0];
  animation.pause();
  animation.currentTime = 0;
  const dot = (token.querySelector(".token-dot") || token).getBoundingClientRect();
  const path = [...document.querySelectorAll("#topology-svg .edge")]
    .find((g) => g.dataset.from === edge.from && g.dataset.to === edge.to).querySelector(".edge-line");
  const p = path.getPointAtLength(0);
  const m = path.getScreenCTM();
  const off = Math.hypot(m.a * p.x + m.c * p.y + m.e - (dot.left + dot.width / 2),
                         m.b * p.x + m.d * p.y + m.f - (dot.top + dot.height / 2));
  animation.cancel();
  const html = token instanceof HTMLElement;
  // The layer follows the SVG's size in a ResizeObserver callback: asked again until it has.
  return !html || off < 2 ? { html, off } : null;
}"""


def test_tokens_are_html_and_start_on_their_edge(daphne_server, browser_page):
    page = browser_page
    browser.start_run(page, daphne_server, "http-crud", {"persons": 2, "repeat": 1, "delay_ms": 0, "rate": 0})
    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    for n, presenting in enumerate((False, True)):
        if presenting:
            page.locator("body").press("f")
            page.wait_for_function("() => document.body.classList.contains('presenting')")
        token = page.wait_for_function(PROBE_TOKEN, arg=n, timeout=10_000).json_value()
        assert token["html"], "a token is an HTML element (the compositor animates it), not an SVG one"
        assert token["off"] < 2, f"presenting={presenting}: a token starts {token['off']:.1f} px from its edge's start"


# Tokens sent along the first edge until more than `over` are in flight (a slot admits only a
# few new ones): whether their labels show then, and once all but one have been taken off.
CROWD = """(over) => {
  const topology = window.flowRun.topology;
  const edge = [...topology.edges.values()].find((e) => e.curve);
  topology.pulse(edge.from, edge.to, { label: "crowd", category: "routed" });
  if (topology.tokens.length <= over) return null;
  const shown = () => [...document.querySelectorAll(".topology-wrap .token:not(.quiet) .token-label")]
    .some((label) => getComputedStyle(label).display !== "none");
  const crowded = shown();
  while (topology.tokens.length > 1) topology.drop(topology.tokens[0]);
  return { crowded, alone: shown() };
}"""


def test_a_crowd_of_tokens_moves_without_labels(daphne_server, browser_page):
    page = browser_page
    browser.start_run(page, daphne_server, "http-crud", {"persons": 2, "repeat": 1, "delay_ms": 0, "rate": 0})
    assert browser.wait_until_finished(page) == "succeeded"
    browser.reveal_all(page)
    seen = page.wait_for_function(CROWD, arg=6, timeout=10_000).json_value()
    assert not seen["crowded"], "more than six tokens in flight: their labels would pile up on one another"
    assert seen["alone"], "a token on its own is labelled"
