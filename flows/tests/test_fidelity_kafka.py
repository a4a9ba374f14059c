"""Fidelity on a real Kafka-protocol broker: sampled counts equal the broker's, anomalies stay individual.

``kafka-partitions`` at two sizes, sampled: the summary's counts and every partition's
route edge equal the end offsets the broker reported before the run deleted its topic.
``kafka-consumer-groups`` with the same crash, ``full`` and ``sampled``: the sampled run
records every crash, revoke, assignment, rebalance and duplicate one by one, each duplicate
with its reason, as the full run does.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from .kafka_support import Captured, kafka_mode, run_all

SIZES = {"sampled_2000": 2000, "sampled_12000": 12_000}
GROUPS = {"rate": 0, "messages": 400, "partitions": 4, "keys": 8, "process_ms": 0, "commit_every": 50,
          "groups": 2, "members": 2, "commit_mode": "after", "strategy": "range", "crash_at": 120}
ANOMALIES = ("crash", "revoke", "assign", "rebalance")


def counted_edges(run: Captured) -> dict[tuple[str, str, str], int]:
    edges: dict[tuple[str, str, str], int] = defaultdict(int)
    for flow in run.of("flow"):
        for edge in flow["attrs"]["edges"]:
            edges[edge["from"], edge["to"], edge["kind"]] += edge["count"]
    return edges


def routed_per_partition(run: Captured) -> dict[int, int]:
    """Messages routed to each partition: recorded route events plus counted route edges."""
    routed: dict[int, int] = defaultdict(int)
    for event in run.of("route"):
        routed[event["attrs"]["partition"]] += 1
    for (_source, to, kind), count in counted_edges(run).items():
        if kind == "route":
            routed[int(to.rpartition("/p")[2])] += count
    return dict(routed)


@pytest.mark.django_db(transaction=True)
class TestFidelityExternal:
    mode = "external"

    @pytest.fixture(scope="class")
    def runs(self, django_db_setup, django_db_blocker, tansu):
        url = tansu.bootstrap_servers if self.mode == "external" else None
        with django_db_blocker.unblock(), kafka_mode(self.mode, url):
            partitions = run_all("kafka-partitions", {
                name: {"rate": 0, "messages": n, "partitions": 4, "keys": 16, "fidelity": "sampled"}
                for name, n in SIZES.items()})
            groups = run_all("kafka-consumer-groups", {"full": {**GROUPS, "fidelity": "full"},
                                                       "sampled": {**GROUPS, "fidelity": "sampled"}})
            yield {**partitions, **{f"groups_{k}": v for k, v in groups.items()}}

    def test_sampled_counts_equal_the_brokers_end_offsets(self, runs) -> None:
        for name, n in SIZES.items():
            run = runs[name]
            assert run.state == "succeeded", (name, run.error)
            ends = {int(p): e for p, e in run.result["broker_at_end"]["kafka"]["end_offsets"].items()}
            assert sum(ends.values()) == n
            counts = run.summary["counts"]
            assert counts["published"] == counts["delivered"] == counts["processed"] == n, counts
            assert run.summary["kinds"]["route"] == n
            assert run.summary["progress"] == {"done": n, "expected": n}
            # Exact per edge: what was routed to each partition is that partition's end offset.
            assert routed_per_partition(run) == ends, name
            fidelity = run.summary["fidelity"]
            assert fidelity["mode"] == "sampled" and fidelity["switched_at_seq"] == 1
            assert run.summary["latency_ms"]["sampled"] is True
            # Far fewer events than four per message, and the sample's traces are whole.
            assert run.summary["last_seq"] < n
            traced = {e["message_id"] for e in run.of("publish")}
            assert traced
            for mid in traced:
                assert {e["kind"] for e in run.events if e["message_id"] == mid} >= {"publish", "route", "deliver",
                                                                                     "process"}

    def test_flow_edges_name_where_messages_came_from(self, runs) -> None:
        edges = counted_edges(runs["sampled_2000"])
        kinds_from = {(kind, source.partition("/")[0] if kind == "deliver" else source) for source, _to, kind in edges}
        assert ("route", "producer") in kinds_from
        assert ("deliver", "topic:orders") in kinds_from

    def test_every_anomaly_full_records_is_recorded_when_sampled(self, runs) -> None:
        full, sampled = runs["groups_full"], runs["groups_sampled"]
        for run in (full, sampled):
            assert run.state == "succeeded", (run.name, run.error)
            expected = GROUPS["messages"] * GROUPS["groups"]
            assert run.summary["progress"] == {"done": expected, "expected": expected}
        assert sampled.summary["fidelity"]["counted"] > 0
        for kind in ANOMALIES:
            assert full.of(kind), kind
            assert len(sampled.of(kind)) > 0, kind
        for run in (full, sampled):
            dups = [e for e in run.of("deliver") if e["duplicate"]]
            # Every duplicate the ledger counted is an event of its own, with its reason.
            from_result = sum(g["duplicates"] for g in run.result["groups"])
            assert from_result > 0
            assert len(dups) == from_result == run.summary["counts"]["duplicates"], run.name
            assert all(e["attrs"].get("reason") for e in dups)
            processed_dups = [e for e in run.of("process") if e["duplicate"]]
            assert len(processed_dups) == len(dups)
            counts = run.summary["counts"]
            assert counts["processed"] == counts["delivered"] == GROUPS["messages"] * GROUPS["groups"] + len(dups)
