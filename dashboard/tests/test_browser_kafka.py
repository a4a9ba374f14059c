"""The Kafka panels in a real browser, on the server's embedded Tansu broker.

``kafka-consumer-groups``: two groups both receive every message; pressing *Crash member*
makes the group rebalance, and the handled-but-uncommitted messages show up again as
duplicates, each with its reason. ``kafka-partitions``: every message sits in the lane its
key hashes to.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from dashboard.tests import browser

pytestmark = pytest.mark.browser

JOIN_TIMEOUT_MS = 60_000  # group joins take ~3 s on Tansu; a loaded machine needs more


def test_crash_member_rebalances_and_shows_duplicates(daphne_server, browser_page):
    page = browser_page
    messages = 40
    params = {"groups": 2, "members": 2, "partitions": 4, "messages": messages, "rate": 5, "process_ms": 0,
              "commit_every": 10, "commit_mode": "after", "strategy": "range"}
    run_id = browser.start_run(page, daphne_server, "kafka-consumer-groups", params)

    # Both groups joined: four live members in the panel, each group owning every partition.
    expect(page.locator('#kcg-members [data-state="live"]')).to_have_count(4, timeout=JOIN_TIMEOUT_MS)
    page.locator('button[data-action="crash"]').click()
    expect(page.locator("#action-result")).to_contain_text("will crash at its next message, before commit")

    # Live: the crash, then a rebalance, then the duplicates appear while the run goes on.
    expect(page.locator('#kcg-members [data-state="crashed"]')).to_have_count(1, timeout=JOIN_TIMEOUT_MS)
    expect(page.locator('#kcg-timeline li[data-kind="rebalance"]').filter(has_text="crashed")).to_have_count(
        1, timeout=JOIN_TIMEOUT_MS)
    expect(page.locator("#kcg-duplicates tr.kcg-dup").first).to_be_visible(timeout=JOIN_TIMEOUT_MS)

    assert browser.wait_until_finished(page, 120) == "succeeded"
    browser.reveal_all(page)
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    events = daphne_server.all_events(run_id)

    # Lesson 6: each group received every message.
    for label in ("billing", "shipping"):
        card = page.locator(f'[data-group-stat="{label}"]')
        expect(card).to_have_attribute("data-all", "true")
        expect(card).to_have_attribute("data-processed", str(messages))

    # The crash and the rebalance that named the member and the partitions that moved.
    (crash,) = [e for e in events if e["kind"] == "crash"]
    group, crashed = crash["attrs"]["group"], crash["attrs"]["member"]
    expect(page.locator(f'#kcg-members [data-member-actor="{crash["actor"]}"]')).to_have_attribute("data-state", "crashed")
    rebalance = next(e for e in events if e["kind"] == "rebalance" and e["seq"] > crash["seq"]
                     and e["attrs"]["group"] == group)
    entry = page.locator(f'#kcg-timeline li[data-seq="{rebalance["seq"]}"]')
    expect(entry).to_contain_text(f"{crashed} crashed")
    for move in rebalance["attrs"]["moved"]:
        expect(entry).to_contain_text(f"p{move['partition']}")
    history = page.locator(f'.kcg-history-table[data-group="{group}"]')
    result = next(g for g in summary["result"]["groups"] if g["group"] == group)
    expect(history.locator('td[data-moved="true"]')).to_have_count(sum(len(r["moved"]) for r in result["rebalances"]))

    # Lesson 7: the duplicates, each with its reason, agree with the server and the counters.
    duplicates = [e for e in events if e["kind"] == "deliver" and e["duplicate"]]
    assert summary["counts"]["duplicates"] == len(duplicates) > 0
    assert {(e["attrs"]["partition"], e["attrs"]["offset"]) for e in duplicates} == {
        tuple(o) for o in crash["attrs"]["uncommitted"]}
    rows = page.locator("#kcg-duplicates tr.kcg-dup")
    expect(rows).to_have_count(len(duplicates))
    expect(rows.first).to_contain_text("uncommitted offset after rebalance")
    expect(page.locator('[data-counter="duplicates"]')).to_have_text(str(len(duplicates)))
    expect(page.locator(f'[data-group-stat="{group}"]')).to_have_attribute("data-duplicates", str(len(duplicates)))
    page.locator("#kcg-history").scroll_into_view_if_needed()
    browser.screenshot(page, "kafka-consumer-groups-crash")


def test_partition_lanes_follow_the_key_hash(daphne_server, browser_page):
    page = browser_page
    params = {"partitions": 3, "keys": 5, "messages": 15, "rate": 0}
    run_id = browser.start_run(page, daphne_server, "kafka-partitions", params)
    assert browser.wait_until_finished(page, 60) == "succeeded"
    browser.reveal_all(page)
    summary = daphne_server.get_json(f"/api/runs/{run_id}/")
    expect(page.locator("#kp-partitioner")).to_contain_text("murmur2")
    for partition, end in summary["result"]["end_offsets"].items():
        lane = page.locator(f'.kp-lane[data-partition="{partition}"]')
        expect(lane).to_have_attribute("data-end-offset", str(end))
        expect(lane.locator(".kp-cell")).to_have_count(end)
    for key, info in summary["result"]["keys"].items():
        row = page.locator(f'#kp-keys tr[data-key="{key}"]')
        # The browser's own murmur2 agrees with the partition the broker's client chose.
        expect(row).to_have_attribute("data-expected", str(info["expected_partition"]))
        expect(row).to_have_attribute("data-agrees", "true")
        expect(row).to_have_attribute("data-ordered", "true")
    browser.screenshot(page, "kafka-partitions-lanes")
