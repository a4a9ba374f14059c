"""``kafka-consumer-groups`` on a real Kafka-protocol broker: groups, rebalances, duplicates, losses.

Four scenarios run at once per broker mode (group joins cost seconds each):

* ``at_least_once``: commit after processing, range, 2 groups × 2 members, member-1 crashes at its 3rd message;
* ``at_most_once``: commit before processing (roundrobin), same crash: messages are lost instead of duplicated;
* ``cooperative``: as ``at_least_once`` with cooperative-sticky assignment;
* ``button``: auto-commit, idempotent inboxes, one member per group, crashed with the *Crash member* action.

What the dashboard shows is checked against the broker's own answers (committed offsets
via OffsetFetch, end offsets via a fresh fetch, both read by the run's teardown just before
it deleted the topic and the groups) and against the recorded events.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from .causes import duplicates_name_their_cause
from .kafka_support import Captured, broker_committed, kafka_mode, run_all, wait_until

SLUG = "kafka-consumer-groups"
COMMON = {"rate": 0, "messages": 30, "partitions": 4, "keys": 8, "process_ms": 0, "commit_every": 5}
SCENARIOS = {
    "at_least_once": {**COMMON, "groups": 2, "members": 2, "commit_mode": "after", "strategy": "range", "crash_at": 3},
    "at_most_once": {**COMMON, "groups": 1, "members": 2, "commit_mode": "before", "strategy": "roundrobin",
                     "crash_at": 3},
    "cooperative": {**COMMON, "groups": 1, "members": 2, "commit_mode": "after", "strategy": "cooperative-sticky",
                    "crash_at": 3},
    "button": {**COMMON, "rate": 20, "messages": 40, "groups": 2, "members": 1, "commit_mode": "auto",
               "strategy": "range", "idempotent": True},
}
AT_LEAST_ONCE = ("at_least_once", "cooperative", "button")
BUTTON_AFTER_PROCESSED = 5


def crash_events(run: Captured) -> list[dict]:
    crashes = run.of("crash")
    assert len(crashes) == 1, (run.name, crashes)
    return crashes


def group_of(event: dict) -> str:
    return event["attrs"]["group"]


def handled_uncommitted_at_crash(run: Captured, crash: dict) -> set[tuple[int, int]]:
    """From the events alone: what the crashed member processed that its group had not committed past."""
    group, member = group_of(crash), crash["actor"]
    committed: dict[int, int] = {}
    handled: set[tuple[int, int]] = set()
    for event in run.events:
        if event["seq"] >= crash["seq"]:
            break
        if event["kind"] == "commit" and group_of(event) == group:
            committed.update({int(p): o for p, o in event["attrs"]["offsets"].items()})
        elif event["kind"] == "process" and event["actor"] == member:
            handled.add((event["attrs"]["partition"], event["attrs"]["offset"]))
    return {(p, o) for p, o in handled if o >= committed.get(p, 0)}


@pytest.mark.django_db(transaction=True)
class ConsumerGroupsContract:
    mode = ""

    @pytest.fixture(scope="class")
    def runs(self, request, django_db_setup, django_db_blocker, tansu):
        from flows.models import InboxEntry
        from flows.runner import get_runner

        def press_crash_button(started: dict) -> None:
            run = started["button"]
            wait_until(lambda: get_runner().summary(run.pk)["counts"]["processed"] >= BUTTON_AFTER_PROCESSED, 60,
                       "the button run to process its first messages")
            get_runner().act(run.pk, "crash", "")

        def count_inbox(run: Captured) -> None:
            run.extra["inbox_rows"] = InboxEntry.objects.filter(run_id=run.summary["id"]).count()

        url = tansu.bootstrap_servers if self.mode == "external" else None
        with django_db_blocker.unblock(), kafka_mode(self.mode, url) as bootstrap:
            yield bootstrap, run_all(SLUG, SCENARIOS, during=press_crash_button, after=count_inbox)

    def test_runs_succeed(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            assert run.state == "succeeded", (run.name, run.error)
            assert run.summary["counts"]["errors"] == 0, [e for e in run.events if e["kind"] == "error"]

    def test_every_group_processes_every_message(self, runs) -> None:
        _, captured = runs
        for name in AT_LEAST_ONCE:
            run = captured[name]
            published = {e["message_id"] for e in run.of("publish")}
            assert len(published) == run.params["messages"]
            processed: dict[str, set[str]] = defaultdict(set)
            for event in run.of("process"):
                processed[group_of(event)].add(event["message_id"])
            assert len(processed) == run.params["groups"]
            for group, ids in processed.items():
                assert ids == published, (name, group)
            assert run.result["lost"] == 0 and run.summary["counts"]["lost"] == 0
            expected = run.params["messages"] * run.params["groups"]
            assert run.summary["progress"] == {"done": expected, "expected": expected}

    def test_offsets_agree_with_the_broker(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            topic, partitions = run.result["topic"], run.params["partitions"]
            # The broker's answers (a fresh fetch, OffsetFetch), read by the run's teardown before it
            # deleted the topic and the groups.
            at_end = run.result["broker_at_end"]["kafka"]
            assert at_end["topic"] == topic and at_end["deleted"] is True
            ends = {int(p): e for p, e in at_end["end_offsets"].items()}
            assert sorted(ends) == list(range(partitions))
            assert {int(p): e for p, e in run.result["end_offsets"].items()} == ends, run.name
            routed = defaultdict(int)
            for event in run.of("route"):
                routed[event["attrs"]["partition"]] += 1
            assert {p: routed.get(p, 0) for p in range(partitions)} == ends
            for group in run.result["groups"]:
                shown = {int(p): o for p, o in group["committed"].items()}
                broker = {int(p): o for p, o in at_end["committed"][group["group_id"]].items()}
                assert shown == broker, (run.name, group["group"])
                # Every group read to the end and committed it: no lag left.
                assert {p: shown.get(p, 0) for p in range(partitions)} == ends
                assert set(group["lag"].values()) <= {0}
                # The last commit event per partition is what the broker holds.
                last: dict[int, int] = {}
                for event in run.of("commit"):
                    if group_of(event) == group["group"]:
                        last.update({int(p): o for p, o in event["attrs"]["offsets"].items()})
                assert last == shown

    def test_the_runs_topic_and_groups_are_gone_afterwards(self, runs) -> None:
        from flows.kafka.clients import admin_client

        bootstrap, captured = runs
        admin = admin_client(bootstrap)
        topics = admin.list_topics(timeout=10).topics
        groups = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result(timeout=15).valid}
        for run in captured.values():
            assert run.result["topic"] not in topics, run.name
            for group in run.result["groups"]:
                assert group["group_id"] not in groups, (run.name, group["group"])
                assert broker_committed(bootstrap, group["group_id"], run.result["topic"]) == {}

    def test_duplicates_are_the_crashed_members_uncommitted_messages(self, runs) -> None:
        _, captured = runs
        for name in AT_LEAST_ONCE:
            run = captured[name]
            (crash,) = crash_events(run)
            uncommitted = handled_uncommitted_at_crash(run, crash)
            assert uncommitted, (name, "the crash caught no handled-but-uncommitted message")
            assert uncommitted == {tuple(o) for o in crash["attrs"]["uncommitted"]}
            duplicates = [e for e in run.of("deliver") if e["duplicate"]]
            assert run.summary["counts"]["duplicates"] == len(duplicates) > 0
            seen = set()
            for event in duplicates:
                a = event["attrs"]
                assert group_of(event) == group_of(crash) and event["attempt"] == 2
                assert a["reason"] == "uncommitted offset after rebalance"
                assert a["previous_member"] == crash["attrs"]["member"]
                assert event["actor"] != crash["actor"]  # another member got it again
                seen.add((a["partition"], a["offset"]))
            # At-least-once: each handled-but-uncommitted message came back exactly once more.
            assert seen == uncommitted and len(seen) == len(duplicates)
            # The processing of a duplicate is marked as well.
            dup_process = [e for e in run.of("process") if e["duplicate"]]
            assert {(e["attrs"]["partition"], e["attrs"]["offset"]) for e in dup_process} == seen
            assert all(e["attrs"]["reason"] for e in dup_process)

    def test_the_crash_names_the_messages_it_affects(self, runs) -> None:
        _, captured = runs
        for name in (*AT_LEAST_ONCE, "at_most_once"):
            run = captured[name]
            (crash,) = crash_events(run)
            message_at = {(e["attrs"]["partition"], e["attrs"]["offset"]): e["message_id"]
                          for e in run.of("deliver") if group_of(e) == group_of(crash)}
            offsets = sorted(tuple(o) for o in crash["attrs"]["uncommitted"] + crash["attrs"]["unhandled"])
            assert crash["attrs"]["message_ids"] == [message_at[o] for o in offsets], name
            assert crash["message_id"] == (crash["attrs"]["message_ids"][0] if len(offsets) == 1 else ""), name
            # Every duplicate points back at the crash (or a revoke that dropped uncommitted work).
            duplicates_name_their_cause(run.events)
        # The crash of at-least-once brings back exactly what it lists.
        run = captured["at_least_once"]
        (crash,) = crash_events(run)
        caused = {e["message_id"] for e in duplicates_name_their_cause(run.events) if e["attrs"]["cause_seq"] == crash["seq"]}
        assert caused == set(crash["attrs"]["message_ids"])

    def test_at_most_once_loses_instead_of_duplicating(self, runs) -> None:
        _, captured = runs
        run = captured["at_most_once"]
        (crash,) = crash_events(run)
        counts = run.summary["counts"]
        assert counts["duplicates"] == 0 and counts["lost"] > 0
        assert run.result["lost"] == counts["lost"]
        # The lost messages are exactly those the member committed and then never handled.
        unhandled = {tuple(o) for o in crash["attrs"]["unhandled"]}
        (group,) = run.result["groups"]
        assert {tuple(o) for o in group["lost_offsets"]} == unhandled and len(unhandled) == counts["lost"]
        processed = {(e["attrs"]["partition"], e["attrs"]["offset"]) for e in run.of("process")}
        assert not processed & unhandled
        assert len(processed) == run.params["messages"] - counts["lost"]

    def test_rebalance_names_the_member_and_partitions_that_moved(self, runs) -> None:
        _, captured = runs
        for run in captured.values():
            (crash,) = crash_events(run)
            crashed = crash["attrs"]["member"]
            after = [e for e in run.of("rebalance") if e["seq"] > crash["seq"] and group_of(e) == group_of(crash)]
            assert after, (run.name, "no rebalance after the crash")
            rebalance = after[0]["attrs"]
            assert f"{crashed} crashed" in rebalance["cause"]
            moved_away = [m for m in rebalance["moved"] if m["from"] == crashed]
            assert sorted(m["partition"] for m in moved_away) == crash["attrs"]["partitions"]
            assert all(m["to"] and m["to"] != crashed for m in moved_away)
            assert crashed in rebalance["members"]
            assert crashed not in rebalance["owners"]
            # The new owners are who received the crashed member's partitions.
            for move in moved_away:
                assigns = [e for e in run.of("assign", f"group:{group_of(crash)}/{move['to']}")
                           if crash["seq"] < e["seq"] <= after[0]["seq"]]
                assert any(move["partition"] in e["attrs"]["partitions"] for e in assigns), (run.name, move)

    def test_cooperative_sticky_revokes_less(self, runs) -> None:
        _, captured = runs

        def crash_rebalance(run: Captured) -> dict:
            (crash,) = crash_events(run)
            return next(e["attrs"] for e in run.of("rebalance") if e["seq"] > crash["seq"]
                        and group_of(e) == group_of(crash))

        eager, cooperative = crash_rebalance(captured["at_least_once"]), crash_rebalance(captured["cooperative"])
        # range: the surviving member gave up its own partitions too, only to get them back.
        assert eager["revoked"] > 0 and eager["kept"] > 0
        assert cooperative["revoked"] == 0
        survivor_revokes = [e for e in captured["cooperative"].of("revoke") if e["attrs"]["why"] == "rebalance"]
        assert survivor_revokes == []
        assert all(e["attrs"]["incremental"] for e in captured["cooperative"].of("assign"))

    def test_idempotent_inbox_gives_exactly_once_effect(self, runs) -> None:
        _, captured = runs
        run = captured["button"]
        (crash,) = crash_events(run)
        assert crash["attrs"]["reason"] == "Crash member button"
        n, groups = run.params["messages"], run.params["groups"]
        counts = run.summary["counts"]
        assert counts["duplicates"] > 0
        assert counts["effects"] == counts["processed"] - counts["duplicates"] == n * groups
        for group in run.result["groups"]:
            assert group["effects"] == n  # the side-effect counter: once per message, duplicates or not
        for event in run.of("process"):
            assert event["attrs"]["effect"] is (not event["duplicate"])
        assert run.extra["inbox_rows"] == n * groups
        # The group's last member crashed, so a replacement joined and took over.
        assert any("joined" in e["attrs"]["cause"] and e["seq"] > crash["seq"] for e in run.of("rebalance"))

    def test_without_idempotence_every_processing_is_an_effect(self, runs) -> None:
        _, captured = runs
        counts = captured["at_least_once"].summary["counts"]
        assert counts["effects"] == counts["processed"] > captured["at_least_once"].params["messages"] * 2


class TestConsumerGroupsExternal(ConsumerGroupsContract):
    mode = "external"


class TestConsumerGroupsEmbedded(ConsumerGroupsContract):
    mode = "embedded"


@pytest.mark.parametrize(("given", "valid"), [
    ({"messages": 30, "crash_at": 31}, False),
    ({"messages": 30, "crash_at": 30}, True),
    ({"messages": 30, "crash_at": 0}, True),
])
def test_a_crash_beyond_the_runs_last_message_is_refused(given: dict, valid: bool) -> None:
    from flows.registry import get

    _cleaned, errors = get(SLUG).validate(given)
    assert ("crash_at" not in errors) is valid, errors
    if not valid:
        assert "31" in errors["crash_at"] and "30 messages" in errors["crash_at"]
