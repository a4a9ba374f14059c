"""A result too big for a WebSocket frame reaches the page whole, fetched over HTTP."""

from __future__ import annotations

import pytest

from dashboard.tests import browser

pytestmark = pytest.mark.browser


def test_a_cut_result_is_fetched_whole_for_the_panels(daphne_server, browser_page):
    page = browser_page
    # Enough messages that every key's offsets and seqs no longer fit the summary's bound (only a run
    # that records every event lists each read; a sampled one has each key's counts and first/last offsets).
    messages = 12_000
    run_id = browser.start_run(page, daphne_server, "kafka-partitions",
                               {"messages": messages, "rate": 0, "partitions": 4, "keys": 8, "fidelity": "full"})
    assert browser.wait_until_finished(page, 180) == "succeeded"
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    assert summary["result"]["truncated"]["full"] == f"/api/runs/{run_id}/result/"
    whole = daphne_server.get_json(f"/api/runs/{run_id}/result/")["result"]

    page.wait_for_function("() => { const s = window.flowRun.ctx.summary; return s && s.result && !s.result.truncated; }",
                           timeout=30_000)
    seen = page.evaluate("() => Object.values(window.flowRun.ctx.summary.result.keys).map((k) => k.offsets.length)")
    assert sum(seen) == messages == sum(len(k["offsets"]) for k in whole["keys"].values())
    # The panel still shows each lane's end offset from the result.
    assert page.evaluate("() => window.flowRun.ctx.summary.result.end_offsets") == whole["end_offsets"]
