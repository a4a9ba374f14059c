"""``kafka-consumer-groups`` big enough to sample, with a crash half-way, ``full`` against ``sampled``.

One partition and one member per group make the crash's effect exact: member-1 of the first
group handles offsets in order and commits every ``commit_every``, so crashing after its
``crash_at``-th message leaves the offsets since its last commit handled but uncommitted;
its replacement gets exactly those again. Both runs must show each of them as a duplicate
event of its own, with the same reason, and the sampled run's counts (recorded events plus
counted ``flow`` edges) must equal what the broker holds: its end offsets and the groups'
committed offsets, read by the run's teardown before it deleted the topic.
"""

from __future__ import annotations

import pytest

from .kafka_support import Captured, kafka_mode, run_all
from .test_fidelity_kafka import routed_per_partition

MESSAGES = 30_000
CRASH_AT = 15_000
COMMIT_EVERY = 7
SCENARIO = {"rate": 0, "messages": MESSAGES, "partitions": 1, "keys": 8, "process_ms": 0,
            "commit_every": COMMIT_EVERY, "groups": 2, "members": 1, "commit_mode": "after", "strategy": "range",
            "crash_at": CRASH_AT}
# Offsets 0 .. CRASH_AT-1 handled; the last commit was after a multiple of COMMIT_EVERY of them.
LAST_COMMITTED = CRASH_AT - (CRASH_AT % COMMIT_EVERY or COMMIT_EVERY)
REDELIVERED = set(range(LAST_COMMITTED, CRASH_AT))


def duplicates(run: Captured) -> dict[tuple[str, int], tuple]:
    """Every duplicate event, by (kind, offset): its message, group, reason, previous holder and cause's kind."""
    kind_at = {e["seq"]: e["kind"] for e in run.events}
    out = {}
    for event in run.events:
        if event["duplicate"]:
            a = event["attrs"]
            key = (event["kind"], a["offset"])
            assert key not in out, (run.name, key)
            out[key] = (event["message_id"], a["group"], a["reason"], a.get("previous_member"),
                        kind_at.get(a.get("cause_seq")), event["attempt"])
    return out


@pytest.mark.django_db(transaction=True)
class TestBigCrashFullAndSampled:
    @pytest.fixture(scope="class")
    def runs(self, django_db_setup, django_db_blocker, tansu):
        with django_db_blocker.unblock(), kafka_mode("external", tansu.bootstrap_servers):
            yield run_all("kafka-consumer-groups", {"full": {**SCENARIO, "fidelity": "full"},
                                                    "sampled": {**SCENARIO, "fidelity": "sampled"}})

    def test_both_succeed_in_their_mode(self, runs) -> None:
        for name, run in runs.items():
            assert run.state == "succeeded", (name, run.error)
            assert run.summary["counts"]["errors"] == 0, [e for e in run.events if e["kind"] == "error"]
            assert run.summary["fidelity"]["mode"] == name
        # Sampling records a small share of what the full run does.
        assert runs["sampled"].summary["last_seq"] * 10 < runs["full"].summary["last_seq"]

    def test_every_duplicate_of_the_full_run_is_recorded_alike_when_sampled(self, runs) -> None:
        full, sampled = duplicates(runs["full"]), duplicates(runs["sampled"])
        assert full == sampled
        assert {offset for _kind, offset in full} == REDELIVERED
        assert {kind for kind, _offset in full} == {"deliver", "process"}
        for (_kind, offset), (message_id, group, reason, previous, cause, attempt) in full.items():
            assert (group, reason, previous, cause, attempt) == (
                "billing", "uncommitted offset after rebalance", "member-1", "crash", 2)
            assert message_id == f"m-{offset + 1}"  # one partition, filled in send order
        for run in runs.values():
            (crash,) = run.of("crash")
            assert {o for _p, o in crash["attrs"]["uncommitted"]} == REDELIVERED
            assert crash["attrs"]["reason"] == f"crash_at={CRASH_AT}"
            ledger = {g["group"]: g for g in run.result["groups"]}
            assert ledger["billing"]["duplicate_offsets"] == [[0, o] for o in sorted(REDELIVERED)]
            assert ledger["billing"]["duplicates"] == run.summary["counts"]["duplicates"] == len(REDELIVERED)
            assert ledger["shipping"]["duplicates"] == 0
            # The crash, its revoke, the replacement's assignment and the rebalance are all recorded.
            assert run.of("rebalance") and run.of("assign", "group:billing/member-2")

    def test_counts_equal_the_brokers_numbers_in_both_modes(self, runs) -> None:
        for name, run in runs.items():
            at_end = run.result["broker_at_end"]["kafka"]
            ends = {int(p): e for p, e in at_end["end_offsets"].items()}
            assert ends == {0: MESSAGES}, name
            counts = run.summary["counts"]
            groups = SCENARIO["groups"]
            assert counts["published"] == MESSAGES and run.summary["kinds"]["route"] == MESSAGES
            assert routed_per_partition(run) == ends, name
            assert counts["delivered"] == counts["processed"] == MESSAGES * groups + len(REDELIVERED), name
            assert counts["lost"] == 0 and run.result["lost"] == 0
            assert run.summary["progress"] == {"done": MESSAGES * groups, "expected": MESSAGES * groups}
            for group in run.result["groups"]:
                shown = {int(p): o for p, o in group["committed"].items()}
                assert shown == {int(p): o for p, o in at_end["committed"][group["group_id"]].items()} == ends
                assert group["delivered"] == group["processed"] == MESSAGES + group["duplicates"]
                # Commits carry no message: recorded one by one even when sampled, the last is the broker's.
                last: dict[int, int] = {}
                for event in run.of("commit"):
                    if event["attrs"]["group"] == group["group"]:
                        last.update({int(p): o for p, o in event["attrs"]["offsets"].items()})
                assert last == shown, (name, group["group"])
