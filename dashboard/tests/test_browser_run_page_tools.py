"""The run page's instruments in a real browser, on one finished Kafka consumer-groups run.

The seek slider moves the view to the event it points at; the log's query box filters by
``field:value`` terms and exact message ids; Escape closes the message panel and gives the
focus back to the row that opened it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

# Twelve messages (so m-1 sits next to m-10…m-12), two members, and member-1 crashes at its
# third message: the group rebalances and redelivers, so the run has duplicates.
PARAMS = {"groups": 1, "members": 2, "partitions": 4, "keys": 6, "messages": 12, "rate": 0, "process_ms": 0,
          "commit_every": 5, "commit_mode": "after", "crash_at": 3}


@pytest.fixture(scope="module")
def finished_run(daphne_server: browser.LiveServer) -> tuple[int, list[dict[str, Any]]]:
    run = browser.api_run(daphne_server, "kafka-consumer-groups", PARAMS)
    assert run["state"] == "succeeded", run
    return run["id"], daphne_server.all_events(run["id"])


def open_run(page: Any, server: browser.LiveServer, run_id: int) -> int:
    page.goto(f"{server.url}/runs/{run_id}/")
    browser.wait_until_finished(page)
    return browser.reveal_all(page)


def logged(page: Any) -> list[int]:
    """The seqs of the log's rows, oldest first."""
    return sorted(page.locator("#event-log tbody tr[data-seq]").evaluate_all(
        "(rows) => rows.map((r) => Number(r.dataset.seq))"))


def edge_moves(page: Any) -> int:
    """Tokens the topology has moved along its arrows so far."""
    return page.evaluate("[...window.flowRun.topology.edges.values()].reduce((n, e) => n + e.count, 0)")


def set_slider(page: Any, value: int) -> None:
    """What a browser does when a user drops the thumb at `value`: the value, then input and change."""
    page.locator("#player-seek").evaluate(
        """(el, value) => { el.value = String(value);
                            el.dispatchEvent(new Event("input", { bubbles: true }));
                            el.dispatchEvent(new Event("change", { bubbles: true })); }""", value)


def test_seek_slider_moves_the_view_to_its_event(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, events = finished_run
    total = open_run(page, daphne_server, run_id)
    assert total == len(events)
    player = page.locator("#player")
    seek = page.locator("#player-seek")

    drawn_at_end = set(page.evaluate("window.flowRun.topology.actors()"))
    moves_at_end = edge_moves(page)
    page.locator("body").press("Home")
    expect(player).to_have_attribute("data-index", "0")
    drawn_at_start = set(page.evaluate("window.flowRun.topology.actors()"))  # what a panel draws up front

    middle = total // 2
    set_slider(page, middle)
    expect(player).to_have_attribute("data-index", str(middle))
    expect(player).to_have_attribute("data-playing", "false")
    expect(seek).to_have_value(str(middle))
    expect(page.locator("#player-status")).to_contain_text(f"event {middle} of {total}")
    # The log and the topology show exactly the first `middle` events.
    expect(page.locator("#event-log tbody tr[data-seq]")).to_have_count(min(middle, 300))
    assert logged(page) == list(range(1, middle + 1))
    drawn = set(page.evaluate("window.flowRun.topology.actors()"))
    assert {e["actor"] for e in events[:middle]} & drawn_at_end <= drawn
    assert drawn - drawn_at_start <= {e["actor"] for e in events[:middle]}, "actors of later events drawn already"
    moves = edge_moves(page)
    assert 0 < moves < moves_at_end
    page.wait_for_timeout(300)  # paused: the player stays where the slider put it
    expect(player).to_have_attribute("data-index", str(middle))
    expect(seek).to_have_value(str(middle))

    # Clicking the track a quarter of the way along moves there too.
    box = seek.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    page.wait_for_function("(m) => Number(document.querySelector('#player').dataset.index) < m", arg=middle)
    index = int(player.get_attribute("data-index"))
    assert 0 < index < middle
    expect(seek).to_have_value(str(index))
    assert logged(page) == list(range(1, index + 1))

    # The slider's own keys: End to the last event, Home to none, arrows one step.
    seek.focus()
    page.keyboard.press("End")
    expect(player).to_have_attribute("data-index", str(total))
    page.keyboard.press("Home")
    expect(player).to_have_attribute("data-index", "0")
    expect(page.locator("#event-log tbody tr[data-seq]")).to_have_count(0)
    page.keyboard.press("ArrowRight")
    expect(player).to_have_attribute("data-index", "1")
    # And the page's keys still work off the slider.
    page.locator("#topology-title").click()
    page.keyboard.press("End")
    expect(player).to_have_attribute("data-index", str(total))
    page.keyboard.press("Home")
    expect(player).to_have_attribute("data-index", "0")
    set_slider(page, middle)
    assert edge_moves(page) == moves
    page.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(page, "run-seek-middle")


def query_log(page: Any, text: str) -> list[int]:
    page.fill("#log-query", text)  # the log refilters on each input event
    return logged(page)


def seqs(events: list[dict[str, Any]], keep) -> list[int]:
    return [e["seq"] for e in events if keep(e)]


def test_query_box_filters_by_terms_and_exact_message_ids(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, events = finished_run
    open_run(page, daphne_server, run_id)
    expect(page.locator("#log-query-help")).to_contain_text("actor:")
    expect(page.locator("#log-query-help")).to_contain_text("duplicate:true")

    m1 = seqs(events, lambda e: e["message_id"] == "m-1")
    assert m1 and seqs(events, lambda e: e["message_id"] == "m-10")
    # Free text also finds what a row shows of m-1 elsewhere: the crash that lists it in message_ids.
    assert query_log(page, "m-1") == seqs(events, lambda e: e["message_id"] == "m-1"
                                          or "m-1" in e["attrs"].get("message_ids", []))
    assert query_log(page, "message:m-1") == m1

    member = next(e["attrs"]["member"] for e in events if e["kind"] == "deliver")
    delivered = seqs(events, lambda e: e["kind"] == "deliver" and e["actor"].endswith(f"/{member}"))
    assert delivered
    assert query_log(page, f"actor:{member} kind:deliver") == delivered

    dup = next(e for e in events if e["duplicate"])
    attrs = dup["attrs"]
    query = (f"actor:{attrs['member']} partition:{attrs['partition']} kind:{dup['kind']} duplicate:true "
             f"key:{attrs['key']} offset:{attrs['offset']}")
    want = seqs(events, lambda e: e["actor"].endswith(f"/{attrs['member']}") and e["kind"] == dup["kind"]
                and e["duplicate"] and e["attrs"].get("partition") == attrs["partition"]
                and e["attrs"].get("key") == attrs["key"] and e["attrs"].get("offset") == attrs["offset"])
    assert dup["seq"] in want
    assert query_log(page, query) == want

    # Free text: a key or a member finds the rows that show it; numbers match whole.
    for word in ("key-4", member):
        shows = re.compile(rf"(?<![0-9]){re.escape(word)}(?![0-9])")
        want = seqs(events, lambda e, shows=shows: bool(shows.search(json.dumps(
            [e["actor"], e["message_id"], list(e["attrs"].values())]))))
        assert want
        assert query_log(page, word) == want
    assert query_log(page, "offset=1") == seqs(events, lambda e: e["attrs"].get("offset") == 1)
    expect(page.locator("#log-status")).to_contain_text("match")
    page.locator("#log-query").evaluate("(el) => el.scrollIntoView({block: 'center'})")
    browser.screenshot(page, "run-log-query")

    # On a phone the query box, its help and the other filters fit the width.
    page.set_viewport_size({"width": 390, "height": 844})
    page.locator("#log-query").evaluate("(el) => el.scrollIntoView({block: 'center'})")
    right = page.evaluate("""() => Math.max(...[...document.querySelectorAll('.filters, .filters *, #log-query-help')]
                                       .map((el) => el.getBoundingClientRect().right))""")
    assert right <= 390, f"the log's filters reach x = {right} on a 390 px wide screen"
    browser.screenshot(page, "run-log-query-phone")
    page.set_viewport_size(browser.VIEWPORT)

    # The kind select and "duplicates only" still narrow the query's result.
    page.fill("#log-query", "")
    page.select_option("#filter-kind", "deliver")
    page.check("#filter-duplicates")
    assert logged(page) == seqs(events, lambda e: e["kind"] == "deliver" and e["duplicate"])
    page.uncheck("#filter-duplicates")
    page.select_option("#filter-kind", "")

    # A malformed query is free text, not an error (browser_page fails on any page error).
    assert query_log(page, "duplicate:maybe") == []
    assert query_log(page, "((") == []


def test_escape_closes_the_message_panel_and_returns_focus(daphne_server, browser_page, finished_run):
    page = browser_page
    run_id, events = finished_run
    open_run(page, daphne_server, run_id)
    path = page.locator("#message-path")
    row = page.locator('#event-log tr[data-kind="deliver"][data-message="m-2"]').first
    row.click()
    expect(path).to_be_visible()
    expect(path).to_have_attribute("data-message", "m-2")

    # From a button inside the panel: Escape closes it, the focus returns to the row.
    path.locator("[data-path-filter]").focus()
    page.keyboard.press("Escape")
    expect(path).to_be_hidden()
    assert page.evaluate("document.activeElement.matches('#event-log tr[data-message=\"m-2\"]')")

    # Opened from the keyboard (Enter on the row), closed with Escape: the same row has the focus.
    page.keyboard.press("Enter")
    expect(path).to_be_visible()
    page.keyboard.press("Escape")
    expect(path).to_be_hidden()
    seq = row.get_attribute("data-seq")
    assert page.evaluate("document.activeElement.dataset.seq") == seq

    # Escape with nothing open does nothing to the player.
    index = page.locator("#player").get_attribute("data-index")
    page.keyboard.press("Escape")
    expect(page.locator("#player")).to_have_attribute("data-index", index)

    # "Show only this message" writes an exact message term: m-1's events, none of m-10…m-12.
    page.locator('#event-log tr[data-message="m-1"]').first.click()
    path.locator("[data-path-filter]").click()
    expect(page.locator("#log-query")).to_have_value("message:m-1")
    assert logged(page) == seqs(events, lambda e: e["message_id"] == "m-1")
